//! The Rust guests (agents/sdk + agents/examples/wasm) built from source with
//! `cargo build --target wasm32-wasip2` and run through the host.
//!
//! Needs the wasm32-wasip2 standard library (`rustup target add
//! wasm32-wasip2`; rust-toolchain.toml lists it). Where it is missing the
//! test says so on stderr and returns: the WAT-based suites (wasm_agents,
//! wasm_load, wasm_reload) cover the host either way.

mod wasm_common;

use std::path::Path;
use std::sync::Arc;

use switchyard_runtime::wasm::{Capabilities, WasmAgentKind, WasmLimits, authoring};
use switchyard_runtime::{Envelope, Runtime};
use wasm_common::{ask, config};

/// Builds the whole guest workspace once; returns the component of `krate`.
fn guest(krate: &str) -> std::path::PathBuf {
    static BUILT: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents/examples/wasm");
        let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-guests");
        let status = std::process::Command::new(env!("CARGO"))
            .current_dir(&ws)
            .args([
                "build",
                "--locked",
                "--release",
                "--workspace",
                "--target",
                authoring::TARGET,
                "--target-dir",
            ])
            .arg(&target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the guest workspace failed");
        target.join(authoring::TARGET).join("release")
    });
    dir.join(format!("{}.wasm", krate.replace('-', "_")))
}

fn load(krate: &str, limits: WasmLimits) -> Arc<WasmAgentKind> {
    WasmAgentKind::load(guest(krate), limits).unwrap_or_else(|e| panic!("{krate}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_guests_run_under_the_host() {
    if !authoring::target_installed() {
        eprintln!(
            "SKIPPED: the {} target is not installed; Rust guests not built",
            authoring::TARGET
        );
        return;
    }
    let rt = Runtime::new();
    rt.spawn(
        "echo",
        config(),
        load("echo", WasmLimits::default()).factory(),
    )
    .unwrap();
    assert_eq!(ask(&rt, "echo", b"hi").await, b"hi");

    let counter = load("counter", WasmLimits::default());
    rt.spawn("counter", config(), counter.factory()).unwrap();
    ask(&rt, "counter", b"x").await;
    rt.restart("counter");
    assert_eq!(ask(&rt, "counter", b"x").await, 2u64.to_le_bytes());

    rt.spawn(
        "fanout",
        config(),
        load("fanout", WasmLimits::default().config("echo,nobody")).factory(),
    )
    .unwrap();
    assert_eq!(ask(&rt, "fanout", b"x").await, 1u32.to_le_bytes());

    // Wall-clock time per message, which the restarted instance and the
    // "after" ask must not miss on a loaded machine; the loop never ends.
    let cpu = WasmLimits::default().cpu_per_message(std::time::Duration::from_secs(1));
    rt.spawn("looper", config(), load("looper", cpu).factory())
        .unwrap();
    rt.tell("looper", Envelope::tell(b"loop".as_slice()))
        .await
        .unwrap();
    assert_eq!(ask(&rt, "looper", b"after").await, b"after");

    rt.spawn(
        "bomb",
        config(),
        load("bomb", WasmLimits::default().memory_bytes(4 << 20)).factory(),
    )
    .unwrap();
    rt.tell("bomb", Envelope::tell(b"bomb".as_slice()))
        .await
        .unwrap();
    assert_eq!(ask(&rt, "bomb", b"after").await, b"after");

    rt.spawn(
        "trapper",
        config(),
        load("trapper", WasmLimits::default()).factory(),
    )
    .unwrap();
    rt.tell("trapper", Envelope::tell(b"trap".as_slice()))
        .await
        .unwrap();
    assert_eq!(ask(&rt, "trapper", b"after").await, b"after");

    let mut details: Vec<String> = rt
        .dead_letters()
        .drain()
        .into_iter()
        .filter_map(|d| d.detail)
        .collect();
    details.sort();
    assert_eq!(details.len(), 3, "{details:?}");
    assert!(details[0].starts_with("deadline:"), "{details:?}");
    assert!(details[1].starts_with("memory:"), "{details:?}");
    assert!(details[2].starts_with("unreachable:"), "{details:?}");

    let err = WasmAgentKind::load(guest("wrong-world"), WasmLimits::default()).unwrap_err();
    assert!(err.to_string().contains("wrong_world.wasm"), "{err}");
    let err = WasmAgentKind::load(
        guest("trapper"),
        WasmLimits::default().config("panic-in-init"),
    )
    .unwrap_err();
    assert!(err.to_string().contains("init failed"), "{err}");
}

/// Capabilities are denied by default and granted only from the limits:
/// the clock and named environment variables (read by the host at deploy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_are_denied_unless_granted() {
    if !authoring::target_installed() {
        eprintln!(
            "SKIPPED: the {} target is not installed; Rust guests not built",
            authoring::TARGET
        );
        return;
    }
    // The host process's PATH is always set: without a grant the guest must
    // not see it.
    let rt = Runtime::new();
    rt.spawn(
        "denied",
        config(),
        load("caps", WasmLimits::default().config("PATH")).factory(),
    )
    .unwrap();
    assert_eq!(ask(&rt, "denied", b"?").await, b"clock=no;env=none");

    let path = std::env::var("PATH").expect("PATH is set for tests");
    let granted = WasmLimits::default()
        .config("PATH")
        .capabilities(Capabilities::default().clock(true).env_from_host(&["PATH"]));
    rt.spawn("granted", config(), load("caps", granted).factory())
        .unwrap();
    assert_eq!(
        ask(&rt, "granted", b"?").await,
        format!("clock=yes;env={path}").as_bytes()
    );

    // A grant of one variable does not reveal another.
    let other = WasmLimits::default()
        .config("PATH")
        .capabilities(Capabilities::default().env_value("REGION", "eu-1"));
    rt.spawn("other", config(), load("caps", other).factory())
        .unwrap();
    assert_eq!(ask(&rt, "other", b"?").await, b"clock=no;env=none");
}

/// A panic in the middle of a batch dead-letters that message only: the SDK
/// marks each message in its batch cursor, which the host reads after the trap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_mid_batch_dead_letters_only_that_message() {
    if !authoring::target_installed() {
        eprintln!(
            "SKIPPED: the {} target is not installed; Rust guests not built",
            authoring::TARGET
        );
        return;
    }
    let rt = Runtime::new();
    rt.spawn(
        "trapper",
        config().max_batch(64),
        load("trapper", WasmLimits::default()).factory(),
    )
    .unwrap();
    let batch = vec![
        Envelope::tell(b"one".as_slice()),
        Envelope::tell(b"two".as_slice()),
        Envelope::tell(b"trap".as_slice()),
        Envelope::tell(b"four".as_slice()),
    ];
    rt.tell_batch("trapper", batch).await.unwrap();
    assert_eq!(ask(&rt, "trapper", b"after").await, b"after");
    let dead = rt.dead_letters().drain();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].envelope.payload().as_ref(), b"trap", "{dead:?}");
    assert!(
        dead[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("unreachable:"),
        "{dead:?}"
    );
}
