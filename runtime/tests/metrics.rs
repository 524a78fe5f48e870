//! Prometheus metrics, end to end.
//!
//! A test binary of its own: the recorder is process-wide, and every live
//! runtime's ticker thread publishes its totals to it (counters as a running
//! maximum, gauges overwritten). Beside the other SLO tests, a runtime of a
//! test running in parallel (thousands handled) raised
//! `switchyard_messages_handled_total` above this test's 10 whenever its
//! ticker fired during this test.

use std::time::Duration;

use switchyard_runtime::{Agent, AgentConfig, AgentError, Context, Envelope, Runtime, Strategy};

/// Replies to asks with "ok".
struct Echo;

impl Agent for Echo {
    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        let _ = ctx.reply(msg, "ok");
        Ok(())
    }
}

#[tokio::test]
async fn prometheus_output_parses_and_matches_the_counters() {
    let handle =
        switchyard_runtime::telemetry::prometheus().expect("no other recorder in this test binary");
    let rt = Runtime::new();
    rt.spawn_pool(
        "workers",
        2,
        Strategy::RoundRobin,
        AgentConfig::default(),
        || Echo,
    )
    .unwrap();
    for _ in 0..10 {
        rt.ask("workers", Envelope::ask("x"), Duration::from_secs(5))
            .await
            .unwrap();
    }
    let _ = rt.tell("nobody", Envelope::tell("x")).await;
    rt.roll_windows();
    let text = handle.render();
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let value = |name: &str, label: Option<(&str, &str)>| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => f64::NAN,
            })
    };
    assert_eq!(
        value("switchyard_messages_handled_total", None),
        Some(10.0),
        "{text}"
    );
    assert_eq!(
        value("switchyard_messages_rejected_total", None),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            "switchyard_agent_messages_handled_total",
            Some(("agent", "workers"))
        ),
        Some(10.0),
        "{text}"
    );
    assert_eq!(value("switchyard_agents_live", None), Some(2.0), "{text}");
    assert!(
        value(
            "switchyard_messages_dead_lettered_total",
            Some(("reason", "expired"))
        )
        .is_some(),
        "{text}"
    );
}
