//! The HTTP ingress and admin API on 127.0.0.1:0, with a raw HTTP/1.1 client.

mod common;

use common::{TOKEN, http, start};

const T: Option<&str> = Some(TOKEN);

/// method, path, token, body, expected status, expected error code
type Case = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static [u8],
    u16,
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_tells_and_asks() {
    let svc = start("").await;
    let (status, body) = http(svc.http, "POST", "/v1/agents/counter/messages", T, b"").await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = http(
        svc.http,
        "POST",
        "/v1/agents/echo/ask",
        T,
        br#"{"hello":1}"#,
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"hello":1}"#));
    let (status, body) = http(
        svc.http,
        "POST",
        "/v1/agents/echo/ask?key=user-7&timeout_ms=5000",
        T,
        b"k",
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "k"));
    let report = svc.stop().await;
    assert!(report.shutdown.accounting.balanced());
    assert_eq!(report.shutdown.accounting.handled, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_json_with_fitting_statuses() {
    let svc = start("limits = { max_http_body_bytes = 64 }").await;
    let cases: [Case; 7] = [
        (
            "POST",
            "/v1/agents/nobody/messages",
            T,
            b"",
            404,
            "unknown_agent",
        ),
        (
            "POST",
            "/v1/agents/echo/messages",
            None,
            b"",
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/agents/echo/messages",
            Some("wrong"),
            b"",
            401,
            "unauthorized",
        ),
        (
            "POST",
            "/v1/agents/echo/ask?timeout_ms=0",
            T,
            b"",
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/agents/echo/ask?bogus=1",
            T,
            b"",
            400,
            "bad_query",
        ),
        (
            "POST",
            "/v1/agents/echo/messages",
            T,
            &[b'x'; 100],
            413,
            "bad_body",
        ),
        ("GET", "/v1/nothing-here", T, b"", 404, "not_found"),
    ];
    for (method, path, token, body, want, code) in cases {
        let (status, text) = http(svc.http, method, path, token, body).await;
        assert_eq!(status, want, "{method} {path}: {text}");
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        assert_eq!(v["error"]["code"], code, "{path}: {text}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_need_no_token() {
    let svc = start("").await;
    assert_eq!(http(svc.http, "GET", "/healthz", None, b"").await.0, 200);
    let (status, body) = http(svc.http, "GET", "/readyz", None, b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ready"));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_lists_starts_reloads_and_removes_agents() {
    let svc = start("").await;
    let (status, body) = http(svc.http, "GET", "/v1/agents", T, b"").await;
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let names: Vec<&str> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["counter", "echo#0", "echo#1"]);
    assert_eq!(v["agents"][1]["kind"], "native:echo");

    let spec = br#"{"name":"c2","kind":"native","builtin":"counter","capacity":16}"#;
    assert_eq!(http(svc.http, "POST", "/v1/agents", T, spec).await.0, 201);
    assert_eq!(http(svc.http, "POST", "/v1/agents", T, spec).await.0, 409);
    let bad = br#"{"name":"x","kind":"native","builtin":"rm-rf"}"#;
    let (status, body) = http(svc.http, "POST", "/v1/agents", T, bad).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("builtin"), "{body}");
    let typo = br#"{"name":"x","kind":"native","builtin":"echo","capcity":1}"#;
    assert_eq!(http(svc.http, "POST", "/v1/agents", T, typo).await.0, 400);
    let wasm = br#"{"name":"w","kind":"wasm","path":"/tmp/agent.wasm"}"#;
    let (status, body) = http(svc.http, "POST", "/v1/agents", T, wasm).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid_component") && body.contains("/tmp/agent.wasm"),
        "{body}"
    );
    assert_eq!(
        http(svc.http, "POST", "/v1/agents/c2/messages", T, b"")
            .await
            .0,
        202
    );

    assert_eq!(
        http(svc.http, "POST", "/v1/agents/c2/reload", T, b"")
            .await
            .0,
        202
    );
    assert_eq!(
        http(svc.http, "POST", "/v1/agents/nobody/reload", T, b"")
            .await
            .0,
        404
    );
    let (status, body) = http(svc.http, "DELETE", "/v1/agents/c2", T, b"").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"accepted\":1"), "{body}");
    assert_eq!(
        http(svc.http, "DELETE", "/v1/agents/c2", T, b"").await.0,
        404
    );
    assert!(svc.stop().await.shutdown.accounting.balanced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_slo_and_metrics() {
    let svc = start("").await;
    // The counter fails on a 3-byte payload: one dead letter with reason failed.
    assert_eq!(
        http(svc.http, "POST", "/v1/agents/counter/messages", T, b"abc")
            .await
            .0,
        202
    );
    // The dead letter is queued after the 202: wait for it, up to 10 s.
    let mut letters = serde_json::Value::Null;
    for _ in 0..500 {
        let (_, body) = http(svc.http, "GET", "/v1/dead-letters?limit=10", T, b"").await;
        letters = serde_json::from_str(&body).unwrap();
        if letters["queued"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(letters["letters"][0]["reason"], "failed", "{letters}");
    assert_eq!(letters["letters"][0]["agent"], "counter");
    let (status, body) = http(svc.http, "GET", "/v1/slo", T, b"").await;
    assert_eq!(status, 200, "{body}");
    let slo: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        slo["overall"].is_string() && slo["verdicts"].is_array(),
        "{body}"
    );
    let (status, body) = http(svc.http, "GET", "/metrics", T, b"").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(http(svc.http, "GET", "/metrics", None, b"").await.0, 401);
    let report = svc.stop().await;
    assert_eq!(
        report
            .shutdown
            .accounting
            .dead(switchyard_runtime::DeadLetterReason::Failed),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_slo_is_the_overall_target() {
    let svc = start("[defaults]\nslo = { p99_us = 777 }").await;
    let (status, body) = http(svc.http, "GET", "/v1/slo", T, b"").await;
    assert_eq!(status, 200, "{body}");
    let slo: serde_json::Value = serde_json::from_str(&body).unwrap();
    let overall = slo["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["subject"] == "overall")
        .cloned()
        .unwrap_or_default();
    assert_eq!(overall["targets"]["p99"], 777, "{body}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_listing_reports_stats_and_latency_percentiles() {
    let svc = start("").await;
    for i in 0..20u8 {
        let (status, body) = http(svc.http, "POST", "/v1/agents/echo/ask", T, &[i]).await;
        assert_eq!(status, 200, "{body}");
        let (status, body) = http(svc.http, "POST", "/v1/agents/counter/messages", T, b"").await;
        assert_eq!(status, 202, "{body}");
    }
    // Tells are handled after the 202, and an ask's reply leaves before its
    // batch is counted as handled: wait (up to 10 s) until the counter and
    // the echo pool have counted all 20.
    let mut v = serde_json::Value::Null;
    for _ in 0..500 {
        let (status, body) = http(svc.http, "GET", "/v1/agents", T, b"").await;
        assert_eq!(status, 200, "{body}");
        v = serde_json::from_str(&body).unwrap();
        if v["agents"][0]["stats"]["handled"] == 20 && v["pools"][0]["stats"]["handled"] == 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let counter = &v["agents"][0];
    assert_eq!(counter["name"], "counter", "{v}");
    assert_eq!(counter["stats"]["handled"], 20, "{v}");
    assert_eq!(counter["depth"], 0, "{v}");
    assert_eq!(counter["stats"]["restarts"], 0, "{v}");
    assert_eq!(counter["stats"]["dead_lettered"], 0, "{v}");
    let sojourn = &counter["latency"]["sojourn_us"];
    assert_eq!(sojourn["count"], 20, "{v}");
    let (p50, p99, max) = (
        sojourn["p50"].as_u64().unwrap(),
        sojourn["p99"].as_u64().unwrap(),
        sojourn["max"].as_u64().unwrap(),
    );
    assert!(1 <= p50 && p50 <= p99 && p99 <= max, "{sojourn}");
    for key in ["queue_us", "service_us", "ask_us"] {
        assert!(counter["latency"][key].is_object(), "{key}: {v}");
    }

    // The echo pool: members carry counters, the pool entry the merged latency.
    let members: Vec<&serde_json::Value> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["pool"] == "echo")
        .collect();
    assert_eq!(members.len(), 2, "{v}");
    let handled: u64 = members
        .iter()
        .map(|m| m["stats"]["handled"].as_u64().unwrap())
        .sum();
    assert_eq!(handled, 20, "{v}");
    assert!(members.iter().all(|m| m["latency"].is_null()), "{v}");
    let pool = &v["pools"][0];
    assert_eq!(
        (&pool["name"], &pool["members"]),
        (&"echo".into(), &2.into()),
        "{v}"
    );
    assert_eq!(pool["stats"]["handled"], 20, "{v}");
    let sojourn = &pool["latency"]["sojourn_us"];
    assert_eq!(sojourn["count"], 20, "{v}");
    assert!(sojourn["p50"].as_u64() <= sojourn["p99"].as_u64(), "{v}");
    assert!(sojourn["p99"].as_u64() <= sojourn["max"].as_u64(), "{v}");
    // Every ask reached the runtime as an ask: the ask histogram saw all 20.
    assert_eq!(pool["latency"]["ask_us"]["count"], 20, "{v}");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_connections_beyond_the_limit_wait_until_one_closes() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let svc = start("limits = { max_connections = 1 }").await;
    // An idle keep-alive connection holds the only permit.
    let holder = tokio::net::TcpStream::connect(svc.http).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let mut waiting = tokio::net::TcpStream::connect(svc.http).await.unwrap();
    waiting
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let early = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        waiting.read_to_end(&mut buf),
    )
    .await;
    assert!(early.is_err(), "served beyond the limit: {buf:?}");
    drop(holder);
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        waiting.read_to_end(&mut buf),
    )
    .await
    .expect("served once the first connection closed")
    .unwrap();
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    svc.stop().await;
}

/// Waits on a gate before each message, so its one-slot mailbox stays full
/// until the test opens the gate (a fixed sleep could end, and make room,
/// while a slow machine was still sending the third tell).
struct Slow(std::sync::Arc<tokio::sync::Semaphore>);

impl switchyard_runtime::Agent for Slow {
    async fn handle(
        &mut self,
        _ctx: &mut switchyard_runtime::Context,
        _msg: &switchyard_runtime::Envelope,
    ) -> Result<(), switchyard_runtime::AgentError> {
        self.0
            .acquire()
            .await
            .map_err(|e| switchyard_runtime::AgentError::new(e.to_string()))?
            .forget();
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tell_that_waits_too_long_for_room_is_counted_in_the_report() {
    let text = r#"
listen = { tcp = "", http = "127.0.0.1:0" }
limits = { ask_timeout_ms = 100 }
shutdown = { grace_ms = 5000 }
"#;
    let config = switchyard_service::config::Config::parse(text, "test.toml")
        .unwrap()
        .validate()
        .unwrap();
    let server = switchyard_service::Server::bind(config).await.unwrap();
    let cfg = switchyard_runtime::AgentConfig::default()
        .capacity(1)
        .overflow(switchyard_runtime::Overflow::Block);
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    server
        .runtime()
        .spawn("slow", cfg, move || Slow(g.clone()))
        .unwrap();
    let rt = server.runtime().clone();
    let addr = server.http_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    // The first is being handled, the second fills the mailbox, the third waits 100 ms.
    assert_eq!(
        http(addr, "POST", "/v1/agents/slow/messages", None, b"1")
            .await
            .0,
        202
    );
    // Wait (up to 10 s) until the agent holds the first, so that the second
    // finds the room without waiting the 100 ms for it.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rt.agents().iter().any(|a| a.name == "slow" && a.depth > 0) {
        assert!(
            std::time::Instant::now() < until,
            "the agent never took the first message"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        http(addr, "POST", "/v1/agents/slow/messages", None, b"2")
            .await
            .0,
        202
    );
    let (status, body) = http(addr, "POST", "/v1/agents/slow/messages", None, b"3").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("mailbox_full"), "{body}");
    gate.add_permits(2);
    let _ = tx.send(());
    let report = task.await.unwrap();
    assert_eq!(report.refused_wait_timeout, 1, "{report}");
    assert_eq!(report.shutdown.accounting.accepted, 2, "{report}");
    assert!(report.shutdown.accounting.balanced(), "{report}");
    assert!(
        report.to_string().contains("1 mailbox_full_timeout"),
        "{report}"
    );
}
