//! Latency histograms and SLO verdicts, end to end (the Prometheus metrics
//! are in `metrics.rs`, a test binary of their own).

use std::time::Duration;

use switchyard_runtime::slo::{SloReport, SloStatus, SloTargets};
use switchyard_runtime::{
    Agent, AgentConfig, AgentError, Context, Envelope, Runtime, Strategy, Supervision,
};

/// Handles each message after `delay` of real time.
#[derive(Clone, Copy)]
struct Delayed(Duration);

impl Agent for Delayed {
    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        if !self.0.is_zero() {
            tokio::time::sleep(self.0).await;
        }
        let _ = ctx.reply(msg, "ok");
        Ok(())
    }
}

fn targets(p99_ms: u64) -> SloTargets {
    SloTargets {
        p50: None,
        p99: Some(Duration::from_millis(p99_ms)),
        ..SloTargets::seed()
    }
}

/// Waits until every accepted message is handled or dead-lettered: at least
/// 10 s (10,000 sleeps of at least 1 ms), so that a loaded machine is not a failure.
async fn settle(rt: &Runtime) {
    for _ in 0..10_000 {
        if rt.accounting().in_flight() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("runtime did not settle: {}", rt.accounting());
}

/// Rolls the windows and reports. A tick in progress on the ticker thread
/// holds samples it took from the agents; rolling waits for it, so the
/// report counts them.
fn rolled_report(rt: &Runtime) -> SloReport {
    rt.roll_windows();
    rt.slo_report()
}

#[tokio::test]
async fn a_slow_agent_fails_its_p99_and_a_fast_one_passes() {
    let rt = Runtime::new();
    // The fast agent's target is one a loaded machine cannot miss: with 5 ms,
    // one descheduling of the test's thread failed its p99 (of 20 samples).
    rt.spawn("fast", AgentConfig::default().slo(targets(1000)), || {
        Delayed(Duration::ZERO)
    })
    .unwrap();
    rt.spawn("slow", AgentConfig::default().slo(targets(5)), || {
        Delayed(Duration::from_millis(8))
    })
    .unwrap();
    for _ in 0..20 {
        rt.ask("fast", Envelope::ask("x"), Duration::from_secs(5))
            .await
            .unwrap();
        rt.ask("slow", Envelope::ask("x"), Duration::from_secs(5))
            .await
            .unwrap();
    }
    // A reply leaves before its batch's latency is recorded.
    settle(&rt).await;
    let report = rolled_report(&rt);
    let verdict = |name: &str, window: u64| {
        report
            .verdicts
            .iter()
            .find(|v| v.subject == name && v.window_s == window)
            .cloned()
            .unwrap()
    };
    for window in [10, 60] {
        let fast = verdict("fast", window);
        assert_eq!(fast.status, SloStatus::Pass, "{fast:?}");
        assert_eq!(fast.latency_us.count, 20);
        let slow = verdict("slow", window);
        assert_eq!(slow.status, SloStatus::Fail, "{slow:?}");
        assert!(slow.latency_us.p99 >= 8_000, "{slow:?}");
        assert!(
            slow.violations[0].contains("p99") && slow.violations[0].contains("target 5.00ms"),
            "{slow:?}"
        );
    }
    let overall = verdict("overall", 10);
    assert_eq!(overall.latency_us.count, 40);
    let text = report.to_string();
    assert!(text.contains("slow") && text.contains("FAIL"), "{text}");
    // Asks are timed end to end on the asker's side too.
    let slow = rt.latency("slow").unwrap();
    assert_eq!(slow.ask_us.count, 20);
    assert!(
        slow.ask_us.p50 >= 8_000 && slow.service_us.p50 >= 8_000,
        "{slow:?}"
    );
}

#[tokio::test]
async fn no_traffic_means_no_data() {
    let rt = Runtime::new();
    rt.spawn("idle", AgentConfig::default(), || Delayed(Duration::ZERO))
        .unwrap();
    rt.roll_windows();
    let report = rt.slo_report();
    assert_eq!(report.overall(), SloStatus::NoData);
    assert!(
        report.verdicts.iter().all(|v| v.subject == "overall"),
        "idle agents have no verdict rows"
    );
}

#[tokio::test]
async fn errors_count_against_the_error_budget() {
    let rt = Runtime::new();
    struct Failing;
    impl Agent for Failing {
        async fn handle(&mut self, _ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
            if msg.payload().as_ref() == b"bad" {
                Err("bad input".into())
            } else {
                Ok(())
            }
        }
    }
    // Restarts without backoff: the default backoff doubles from 10 ms over
    // the ten failures, about 10 s in all, which outlasted `settle` and let
    // the first errors age out of the 10 s window.
    let cfg = AgentConfig::default()
        .slo(SloTargets {
            max_error_rate: Some(0.05),
            ..targets(1000)
        })
        .supervision(Supervision::immediate());
    rt.spawn("f", cfg, || Failing).unwrap();
    for i in 0..100 {
        rt.tell("f", Envelope::tell(if i % 10 == 0 { "bad" } else { "ok" }))
            .await
            .unwrap();
    }
    settle(&rt).await;
    rt.roll_windows();
    let v = rt
        .slo_report()
        .verdicts
        .into_iter()
        .find(|v| v.subject == "f" && v.window_s == 10)
        .unwrap();
    assert_eq!(v.status, SloStatus::Fail, "{v:?}");
    assert!((v.error_rate - 0.10).abs() < 1e-9, "{v:?}");
    assert!(
        v.violations.iter().any(|s| s.contains("error rate 10.00%")),
        "{v:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn recording_under_concurrency_loses_no_samples() {
    let rt = Runtime::new();
    rt.spawn_pool(
        "pool",
        4,
        Strategy::RoundRobin,
        AgentConfig::default(),
        || Delayed(Duration::ZERO),
    )
    .unwrap();
    rt.spawn("single", AgentConfig::default(), || Delayed(Duration::ZERO))
        .unwrap();
    let mut producers = Vec::new();
    for p in 0..4 {
        let rt = rt.clone();
        producers.push(tokio::spawn(async move {
            for i in 0..5_000 {
                let target = if (i + p) % 2 == 0 { "pool" } else { "single" };
                if i % 50 == 0 {
                    let batch: Vec<Envelope> = (0..10).map(|_| Envelope::tell("b")).collect();
                    rt.tell_batch(target, batch).await.unwrap();
                } else {
                    rt.tell(target, Envelope::tell("x")).await.unwrap();
                }
            }
        }));
    }
    for p in producers {
        p.await.unwrap();
    }
    settle(&rt).await;
    let handled = rt.accounting().handled;
    let samples = rt.latency("pool").unwrap().sojourn_us.count
        + rt.latency("single").unwrap().sojourn_us.count;
    assert_eq!(samples, handled);
    let overall = rolled_report(&rt)
        .verdicts
        .into_iter()
        .find(|v| v.subject == "overall" && v.window_s == 60)
        .unwrap();
    assert_eq!(overall.latency_us.count, handled);
}

#[tokio::test]
async fn latency_off_records_nothing() {
    let rt = Runtime::builder().latency(false).build();
    rt.spawn("a", AgentConfig::default(), || Delayed(Duration::ZERO))
        .unwrap();
    rt.ask("a", Envelope::ask("x"), Duration::from_secs(5))
        .await
        .unwrap();
    assert!(rt.latency("a").is_none());
}

/// The ticker runs on its own thread: windows roll without any call from the
/// test and without the test's Tokio runtime driving a timer for it.
#[tokio::test]
async fn the_ticker_rolls_windows_on_its_own_thread() {
    let rt = Runtime::builder()
        .telemetry(switchyard_runtime::TelemetryConfig {
            tick: Duration::from_millis(10),
            ..Default::default()
        })
        .build();
    rt.spawn("fast", AgentConfig::default(), || Delayed(Duration::ZERO))
        .unwrap();
    rt.ask("fast", Envelope::ask("x"), Duration::from_secs(5))
        .await
        .unwrap();
    // Verdicts are computed from the windows the ticker fills; poll until the
    // ask shows up there (no roll_windows call anywhere in this test).
    for _ in 0..10_000 {
        let report = rt.slo_report();
        if report
            .verdicts
            .iter()
            .any(|v| v.subject == "fast" && v.latency_us.count == 1)
        {
            let ticker_alive = std::fs::read_dir("/proc/self/task")
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
                .any(|name| name.trim() == "switchyard-tele");
            assert!(
                ticker_alive,
                "the ticker thread is named switchyard-telemetry"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the ticker never rolled the windows: {:?}", rt.slo_report());
}
