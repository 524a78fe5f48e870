//! Short real runs: embedded, over TCP and HTTP against an in-process
//! service on 127.0.0.1:0, a burst, and the setup errors. Each run sends for
//! at most ~2 s at low rates; nothing here asserts on timing.

use std::time::Duration;

use switchyard_loadtest::progress::Display;
use switchyard_loadtest::scenario::{Overrides, Scenario};
use switchyard_loadtest::{LoadError, Report, report, run};
use switchyard_service::Server;
use switchyard_service::config::Config;
use tokio::sync::oneshot;

const TOKEN: &str = "load-token";

fn scenario(pairs: &[(&str, &str)]) -> Scenario {
    let mut o = Overrides::default();
    for (k, v) in pairs {
        o.set(k, *v);
    }
    Scenario::default_with(&o).unwrap()
}

/// sent = ok + rejected + timed_out + errors + lost, with nothing lost.
fn assert_balanced(r: &Report) {
    assert_eq!(
        r.sent,
        r.ok + r.rejected + r.timed_out + r.errors + r.lost,
        "{}",
        report::text(r)
    );
    assert_eq!(r.lost, 0, "{}", report::text(r));
    assert!(r.sent > 0);
}

struct Service {
    tcp: std::net::SocketAddr,
    http: std::net::SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<switchyard_service::ServiceReport>,
}

async fn service() -> Service {
    let text = format!(
        r#"
listen = {{ tcp = "127.0.0.1:0", http = "127.0.0.1:0" }}
auth = {{ token = "{TOKEN}" }}
shutdown = {{ grace_ms = 2000 }}
[[agents]]
name = "echo"
kind = "native"
builtin = "echo"
pool_size = 2
[[agents]]
name = "counter"
kind = "native"
builtin = "counter"
"#
    );
    let config = Config::parse(&text, "test.toml")
        .unwrap()
        .validate()
        .unwrap();
    let server = Server::bind(config).await.unwrap();
    let (tcp, http) = (server.tcp_addr().unwrap(), server.http_addr().unwrap());
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Service {
        tcp,
        http,
        stop,
        task,
    }
}

impl Service {
    async fn stop(self) {
        let _ = self.stop.send(());
        let _ = tokio::time::timeout(Duration::from_secs(20), self.task).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_mixed_run_balances_and_renders_every_report() {
    let s = scenario(&[
        ("rate", "3000"),
        ("duration", "1500ms"),
        ("ramp_up", "200ms"),
        ("agents", "20"),
        ("workload", "mix"),
        ("ask_ratio", "0.2"),
        ("payload", "256"),
        ("slo.p99", "10s"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    assert_eq!(r.ok, r.sent, "{}", report::text(&r));
    assert_eq!(r.latency_us.count, r.ok);
    assert!(r.slo.pass, "{}", report::text(&r));
    assert_eq!(r.exit_code(), 0);
    assert!(!r.timeline.is_empty());

    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    for key in [
        "scenario",
        "target",
        "duration_s",
        "target_rate",
        "achieved_rate",
        "sent",
        "ok",
        "rejected",
        "timed_out",
        "errors",
        "lost",
    ] {
        assert!(json.get(key).is_some(), "JSON lacks {key}");
    }
    for key in ["p50", "p90", "p99", "p999", "max"] {
        assert!(json["latency_us"][key].is_u64(), "latency_us lacks {key}");
    }
    for key in ["p50_us", "p99_us", "pass"] {
        assert!(json["slo"].get(key).is_some(), "slo lacks {key}");
    }
    assert_eq!(json["sent"], r.sent);

    let html = report::html(&r);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert_eq!(html.matches("<svg").count(), 3, "three charts");
    assert!(
        html.contains("<polyline") || html.contains("<path"),
        "charts have lines"
    );
    assert!(!html.contains("chart not drawn"));

    let text = report::text(&r);
    assert!(text.contains("Value   Percentile   TotalCount"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_slo_is_a_verdict_not_an_error() {
    let s = scenario(&[
        ("rate", "500"),
        ("duration", "500ms"),
        ("ramp_up", "0s"),
        ("agents", "4"),
        ("slo.p99", "1us"),
        ("slo.p50", "1us"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    assert!(!r.slo.pass);
    assert!(
        r.slo.violations.iter().any(|v| v.starts_with("p99")),
        "{:?}",
        r.slo.violations
    );
    assert_eq!(r.exit_code(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reject_mailbox_counts_rejections() {
    // One agent with room for 1 message and a burst of sends: some are refused.
    let s = scenario(&[
        ("rate", "20000"),
        ("duration", "300ms"),
        ("ramp_up", "0s"),
        ("agents", "1"),
        ("capacity", "1"),
        ("max_batch", "1"),
        ("overflow", "reject"),
        ("slo.min_success", "0"),
        ("slo.p99", "10s"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    assert_eq!(r.ok + r.rejected, r.sent, "{}", report::text(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_reports_its_peak_depth_and_recovery() {
    let s = scenario(&[
        ("rate", "300"),
        ("duration", "2500ms"),
        ("ramp_up", "0s"),
        ("agents", "10"),
        ("burst.rate", "6000"),
        ("burst.at", "1s"),
        ("burst.length", "500ms"),
        ("slo.p99", "10s"),
        ("slo.min_success", "1"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    let b = r.burst.expect("a burst scenario reports its burst");
    assert_eq!((b.start_s, b.end_s), (1.0, 1.5));
    assert!(b.recovery_s.is_some(), "{}", report::text(&r));
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    assert!(json["burst"]["recovery_s"].is_f64());
    assert!(json["burst"]["peak_depth"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_tells_are_confirmed_by_the_servers_counters() {
    let svc = service().await;
    let s = scenario(&[
        ("target", &format!("tcp://{}", svc.tcp)),
        ("admin", &format!("http://{}", svc.http)),
        ("token", TOKEN),
        ("agent", "echo"),
        ("rate", "2000"),
        ("duration", "1s"),
        ("ramp_up", "0s"),
        ("slo.p99", "10s"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    assert_eq!(r.ok, r.sent, "{}", report::text(&r));
    assert!(r.slo.pass, "{}", report::text(&r));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_asks_and_closed_loop_get_replies() {
    let svc = service().await;
    let s = scenario(&[
        ("target", &format!("tcp://{}", svc.tcp)),
        ("token", TOKEN),
        ("agent", "echo"),
        ("workload", "ask"),
        ("mode", "closed"),
        ("concurrency", "8"),
        ("duration", "500ms"),
        ("ramp_up", "0s"),
        ("slo.p99", "10s"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    assert_eq!(r.ok, r.sent, "{}", report::text(&r));
    assert_eq!(r.generator.mode, "closed");
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_open_loop_asks_get_replies() {
    // Many asks in flight at once from the open loop's ticks.
    let svc = service().await;
    let s = scenario(&[
        ("target", &format!("tcp://{}", svc.tcp)),
        ("token", TOKEN),
        ("agent", "echo"),
        ("workload", "ask"),
        ("rate", "20000"),
        ("duration", "500ms"),
        ("ramp_up", "0s"),
        ("slo.p99", "10s"),
    ]);
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_balanced(&r);
    assert_eq!(r.generator.mode, "open");
    assert_eq!(r.sent, r.generator.scheduled, "{}", report::text(&r));
    assert_eq!(r.ok, r.sent, "{}", report::text(&r));
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_tells_and_asks_are_confirmed() {
    let svc = service().await;
    for (workload, agent) in [("tell", "echo"), ("ask", "echo")] {
        let s = scenario(&[
            ("target", &format!("http://{}", svc.http)),
            ("token", TOKEN),
            ("agent", agent),
            ("workload", workload),
            ("rate", "500"),
            ("duration", "1s"),
            ("ramp_up", "0s"),
            ("concurrency", "8"),
            ("slo.p99", "10s"),
        ]);
        let r = run(&s, Display::Quiet).await.unwrap();
        assert_balanced(&r);
        assert_eq!(r.ok, r.sent, "{workload}: {}", report::text(&r));
    }
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_name_the_problem() {
    let svc = service().await;
    // Unknown agent, over HTTP and TCP (admin API and ask probe).
    let http = scenario(&[
        ("target", &format!("http://{}", svc.http)),
        ("token", TOKEN),
        ("agent", "nobody"),
    ]);
    let e = run(&http, Display::Quiet).await.unwrap_err();
    assert!(matches!(e, LoadError::UnknownAgent { .. }), "{e}");
    assert!(e.to_string().contains("counter"), "lists the agents: {e}");
    let tcp = scenario(&[
        ("target", &format!("tcp://{}", svc.tcp)),
        ("token", TOKEN),
        ("agent", "nobody"),
        ("workload", "ask"),
    ]);
    let e = run(&tcp, Display::Quiet).await.unwrap_err();
    assert!(matches!(e, LoadError::UnknownAgent { .. }), "{e}");
    // Wrong token.
    let bad = scenario(&[
        ("target", &format!("http://{}", svc.http)),
        ("token", "wrong"),
        ("agent", "echo"),
    ]);
    let e = run(&bad, Display::Quiet).await.unwrap_err();
    assert!(e.to_string().contains("token"), "{e}");
    // TCP tells without an admin address cannot be confirmed.
    let no_admin = scenario(&[("target", &format!("tcp://{}", svc.tcp)), ("token", TOKEN)]);
    let e = run(&no_admin, Display::Quiet).await.unwrap_err();
    assert!(e.to_string().contains("--admin"), "{e}");
    svc.stop().await;

    // Unreachable: a port nothing listens on. The socket stays bound (and
    // never listens) until the end, so no test running beside this one can
    // be given the port, as it could once a listener was dropped.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap();
    for target in [format!("tcp://{addr}"), format!("http://{addr}")] {
        let s = scenario(&[("target", &target), ("workload", "ask"), ("agent", "echo")]);
        let e = run(&s, Display::Quiet).await.unwrap_err();
        assert!(matches!(e, LoadError::Target { .. }), "{target}: {e}");
    }
    drop(closed);
}
