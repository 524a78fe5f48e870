//! WASM agents in the service, over real HTTP on 127.0.0.1:0, with the Rust
//! guests of `agents/examples/wasm` built from source by
//! `switchyard_runtime::wasm::authoring::build` (the library call behind
//! `switchyard agent build`; the runtime's tests build the same crates).
//!
//! Needs the wasm32-wasip2 standard library (rust-toolchain.toml lists it);
//! where it is missing each test says so on stderr and returns.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use common::{TOKEN, http};
use serde_json::Value;
use switchyard_runtime::wasm::authoring;

/// Builds `krate` of the guest workspace (once per test binary and crate).
fn guest(krate: &str) -> PathBuf {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_cargo_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../agents/examples/wasm")
        .join(krate);
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-guests");
    authoring::build(&dir, Some(&target)).unwrap_or_else(|e| panic!("building {krate}: {e}"))
}

fn skip() -> bool {
    static INSTALLED: OnceLock<bool> = OnceLock::new();
    let installed = *INSTALLED.get_or_init(authoring::target_installed);
    if !installed {
        eprintln!(
            "SKIPPED: the {} target is not installed; Rust guests not built",
            authoring::TARGET
        );
    }
    !installed
}

/// One service at a time in this binary: the compiled-component cache
/// directory is process-wide, and each service sets it from its config (one
/// test turns it off), so services started side by side would redirect each
/// other's cache.
async fn one_service_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static SERVICE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERVICE.lock().await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

async fn post(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> (u16, String) {
    http(addr, "POST", path, Some(TOKEN), body).await
}

async fn ask(addr: std::net::SocketAddr, agent: &str, payload: &str) -> String {
    let (status, body) = post(
        addr,
        &format!("/v1/agents/{agent}/ask?timeout_ms=10000"),
        payload.as_bytes(),
    )
    .await;
    assert_eq!(status, 200, "ask {agent} {payload}: {body}");
    body
}

/// The stats of `agent` (a single agent, not a pool) from `GET /v1/agents`.
async fn stats(addr: std::net::SocketAddr, agent: &str) -> Value {
    let (status, body) = http(addr, "GET", "/v1/agents", Some(TOKEN), b"").await;
    assert_eq!(status, 200, "{body}");
    json(&body)["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .find(|a| a["name"] == agent)
        .unwrap_or_else(|| panic!("{agent} listed: {body}"))["stats"]
        .clone()
}

fn toml_path(p: &Path) -> String {
    p.display().to_string().replace('\\', "\\\\")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_send_ask_and_reload_under_traffic() {
    if skip() {
        return;
    }
    let _serial = one_service_at_a_time().await;
    let echo = guest("echo");
    let echo_v2 = guest("echo-v2");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wasm-deploy-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&cache);
    let svc = common::start(&format!(
        r#"
[wasm]
cache_dir = "{}"
[[agents]]
name = "wboot"
kind = "wasm"
path = "{}"
memory_mib = 8
cpu_per_message_ms = 1000
config = "ignored by echo-v2"
"#,
        toml_path(&cache),
        // echo-v2: no other test of this binary compiles it, so it is not in
        // the process's in-memory cache of compilations and must be compiled
        // (and written to the disk cache) here.
        toml_path(&echo_v2)
    ))
    .await;
    let addr = svc.http;

    // Started from the config file, with the compile cache in the configured dir.
    assert_eq!(ask(addr, "wboot", "boot").await, "v2:boot");
    let cached = std::fs::read_dir(&cache).expect("cache dir made").count();
    assert!(cached >= 1, "a compiled component in {}", cache.display());

    // Deployed from a JSON spec naming a file.
    let spec = serde_json::json!({ "name": "wjson", "kind": "wasm", "path": echo });
    let (status, body) = post(addr, "/v1/agents", spec.to_string().as_bytes()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(json(&body)["generation"], 1);
    assert_eq!(ask(addr, "wjson", "hi").await, "hi");

    // Deployed by uploading the component bytes, as a pool of 2 whose
    // members start (and run the guest's init) at their first message.
    let bytes = std::fs::read(&echo).unwrap();
    let (status, body) = post(
        addr,
        "/v1/agents?name=wup&pool_size=2&lazy_start=true",
        &bytes,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(ask(addr, "wup", "up").await, "up");
    let (status, body) = post(addr, "/v1/agents/wup/messages", b"tell").await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = http(addr, "GET", "/v1/agents", Some(TOKEN), b"").await;
    assert_eq!(status, 200);
    let listed = json(&body);
    let kinds: Vec<&str> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["kind"].as_str())
        .filter(|k| k.starts_with("wasm:"))
        .collect();
    assert!(kinds.contains(&"wasm:upload:wup.wasm"), "{kinds:?}");
    // The one ask and the one tell went to different members (round robin),
    // so both lazy members have started; the eager agents always have.
    let started = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["started"] == true);
    assert!(started, "{listed}");

    // A name in use is refused, and the running agent is untouched.
    let (status, body) = post(addr, "/v1/agents?name=wjson", &bytes).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(ask(addr, "wjson", "still").await, "still");

    // Hot reload while tells and asks keep arriving: nothing lost, every
    // reply from one version or the other, everything after the swap from v2.
    // Counted from `accepted`: the "still" ask's reply leaves before its
    // batch is counted as handled, so `handled` can be one short here.
    let before = stats(addr, "wjson").await["accepted"].as_u64().unwrap();
    const TELLS: u64 = 300;
    const ASKS: usize = 60;
    let tells = tokio::spawn(async move {
        for i in 0..TELLS {
            let (status, body) = post(
                addr,
                "/v1/agents/wjson/messages",
                format!("t{i}").as_bytes(),
            )
            .await;
            assert_eq!(status, 202, "{body}");
        }
    });
    let asks = tokio::spawn(async move {
        let mut replies = Vec::with_capacity(ASKS);
        for i in 0..ASKS {
            replies.push((i, ask(addr, "wjson", &format!("a{i}")).await));
        }
        replies
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    let v2 = std::fs::read(&echo_v2).unwrap();
    let (status, body) = post(addr, "/v1/agents/wjson/reload", &v2).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["generation"], 2);
    assert_eq!(ask(addr, "wjson", "after").await, "v2:after");
    tells.await.unwrap();
    let replies = asks.await.unwrap();
    let mut switched = false;
    for (i, r) in &replies {
        if *r == format!("v2:a{i}") {
            switched = true;
        } else {
            assert!(!switched, "a v1 reply after a v2 one: {replies:?}");
            assert_eq!(*r, format!("a{i}"));
        }
    }
    // Every tell and ask was handled: the `before` accepted so far + tells +
    // asks + the "after" ask.
    let want = before + TELLS + ASKS as u64 + 1;
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = stats(addr, "wjson").await;
        if s["handled"].as_u64().unwrap() >= want {
            assert_eq!(s["dead_lettered"], 0, "{s}");
            assert_eq!(s["handled"].as_u64().unwrap(), want, "{s}");
            break;
        }
        assert!(std::time::Instant::now() < until, "not all handled: {s}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Reload from the deployed file (empty body): back to v1.
    let (status, body) = post(addr, "/v1/agents/wjson/reload", b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["generation"], 3);
    assert_eq!(ask(addr, "wjson", "v1 again").await, "v1 again");
    // ... or from another file named in JSON.
    let spec = serde_json::json!({ "path": echo_v2 });
    let (status, body) = post(addr, "/v1/agents/wjson/reload", spec.to_string().as_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ask(addr, "wjson", "x").await, "v2:x");

    // An upload has no file to read again.
    let (status, body) = post(addr, "/v1/agents/wup/reload", b"").await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(json(&body)["error"]["code"], "invalid_request", "{body}");

    // Native agents still restart on reload, and refuse a body.
    let (status, _) = post(addr, "/v1/agents/counter/reload", b"").await;
    assert_eq!(status, 202);
    let (status, body) = post(addr, "/v1/agents/counter/reload", &v2).await;
    assert_eq!(status, 400, "{body}");

    let report = svc.stop().await;
    assert!(report.shutdown.accounting.balanced(), "{report:?}");
    let _ = std::fs::remove_dir_all(&cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_components_are_refused_and_nothing_running_is_affected() {
    if skip() {
        return;
    }
    let _serial = one_service_at_a_time().await;
    let echo = guest("echo");
    let wrong = guest("wrong-world");
    let trapper = guest("trapper");
    let svc = common::start("[wasm]\ncache_dir = \"none\"\n").await;
    let addr = svc.http;
    let spec = serde_json::json!({ "name": "good", "kind": "wasm", "path": echo });
    let (status, body) = post(addr, "/v1/agents", spec.to_string().as_bytes()).await;
    assert_eq!(status, 201, "{body}");

    let refused = |status: u16, body: &str, code: &str, needles: &[&str]| {
        assert_eq!(status, 400, "{body}");
        let v = json(body);
        assert_eq!(v["error"]["code"], code, "{body}");
        let msg = v["error"]["message"].as_str().unwrap_or("");
        for n in needles {
            assert!(msg.contains(n), "{n:?} in {msg}");
        }
    };

    // Not WASM: a text file named by path.
    let text = Path::new(env!("CARGO_TARGET_TMPDIR")).join("not-wasm.txt");
    std::fs::write(&text, "hello, not a component").unwrap();
    let spec = serde_json::json!({ "name": "bad1", "kind": "wasm", "path": text });
    let (s, b) = post(addr, "/v1/agents", spec.to_string().as_bytes()).await;
    refused(
        s,
        &b,
        "invalid_component",
        &["not-wasm.txt", "not a WebAssembly file"],
    );

    // Native code (an ELF header) as the body: neither JSON nor a component.
    let (s, b) = post(addr, "/v1/agents?name=bad2", b"\x7fELF\x02\x01\x01\0\0\0").await;
    refused(s, &b, "bad_body", &["not a WebAssembly component"]);

    // A core module, not a component.
    let (s, b) = post(addr, "/v1/agents?name=bad3", b"\0asm\x01\0\0\0").await;
    refused(
        s,
        &b,
        "invalid_component",
        &["upload:bad3.wasm", "core WebAssembly module"],
    );

    // A component of another world (missing exports).
    let spec = serde_json::json!({ "name": "bad4", "kind": "wasm", "path": wrong });
    let (s, b) = post(addr, "/v1/agents", spec.to_string().as_bytes()).await;
    refused(
        s,
        &b,
        "invalid_component",
        &["wrong_world.wasm", "does not implement the world"],
    );

    // A module that traps in init.
    let spec = serde_json::json!({
        "name": "bad5", "kind": "wasm", "path": trapper, "config": "panic-in-init"
    });
    let (s, b) = post(addr, "/v1/agents", spec.to_string().as_bytes()).await;
    refused(s, &b, "invalid_component", &["trapper.wasm", "init failed"]);

    // Capabilities that cannot be granted, named by key.
    let spec = serde_json::json!({
        "name": "bad6", "kind": "wasm", "path": echo,
        "capabilities": { "filesystem": "/etc" }
    });
    let (s, b) = post(addr, "/v1/agents", spec.to_string().as_bytes()).await;
    refused(
        s,
        &b,
        "invalid_agent",
        &["body.capabilities.filesystem", "no filesystem"],
    );

    // A bad reload changes nothing.
    let (s, b) = post(addr, "/v1/agents/good/reload", b"\0asm\x0d\0\x01\0garbage").await;
    refused(s, &b, "invalid_component", &["upload:good.wasm"]);

    // None of the refused agents exists; the good one still answers, v1.
    for name in ["bad1", "bad2", "bad3", "bad4", "bad5", "bad6"] {
        let (s, _) = post(addr, &format!("/v1/agents/{name}/messages"), b"x").await;
        assert_eq!(s, 404, "{name} must not exist");
    }
    assert_eq!(ask(addr, "good", "fine").await, "fine");
    assert_eq!(ask(addr, "echo", "native").await, "native");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_capabilities_from_the_config_apply() {
    if skip() {
        return;
    }
    let _serial = one_service_at_a_time().await;
    let looper = guest("looper");
    let caps = guest("caps");
    let svc = common::start(&format!(
        r#"
[wasm]
cache_dir = "none"
[[agents]]
name = "looper"
kind = "wasm"
path = "{}"
cpu_per_message_ms = 1000
supervision = {{ backoff_initial_ms = 1, backoff_max_ms = 5, max_restarts = 100 }}
[[agents]]
name = "caps-denied"
kind = "wasm"
path = "{}"
config = "PATH"
[[agents]]
name = "caps-granted"
kind = "wasm"
path = "{}"
config = "PATH"
capabilities = {{ clock = true, env = ["PATH"] }}
"#,
        toml_path(&looper),
        toml_path(&caps),
        toml_path(&caps)
    ))
    .await;
    let addr = svc.http;

    // A looping message is stopped by its CPU limit and dead-lettered; the
    // agent is restarted and answers the next one. The limit is wall-clock
    // time, which the restart and the next ask must not miss on a loaded
    // machine: 1 s, not 20 ms.
    let (status, body) = post(addr, "/v1/agents/looper/messages", b"loop").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(ask(addr, "looper", "after").await, "after");
    let (status, body) = http(addr, "GET", "/v1/dead-letters", Some(TOKEN), b"").await;
    assert_eq!(status, 200);
    let letters = json(&body);
    let looped: Vec<&Value> = letters["letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["agent"].as_str().is_some_and(|a| a.starts_with("looper")))
        .collect();
    assert_eq!(looped.len(), 1, "{body}");
    assert_eq!(looped[0]["reason"], "failed", "{body}");
    assert!(
        looped[0]["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("deadline:")),
        "{body}"
    );
    assert!(stats(addr, "looper").await["restarts"].as_u64().unwrap() >= 1);

    // Capabilities: denied by default, granted from the config.
    assert_eq!(ask(addr, "caps-denied", "?").await, "clock=no;env=none");
    let path = std::env::var("PATH").expect("PATH is set");
    assert_eq!(
        ask(addr, "caps-granted", "?").await,
        format!("clock=yes;env={path}")
    );
    svc.stop().await;
}
