//! Supervision, control lane, shutdown, and the accounting identity under
//! concurrency and failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_runtime::{
    Agent, AgentConfig, AgentError, Context, DeadLetterReason, Envelope, Overflow, RestartPolicy,
    Runtime, SendError, Strategy, Supervision,
};

/// Panics on "panic", fails on "fail", counts starts and stops, handles the rest.
#[derive(Clone, Default)]
struct Moody {
    starts: Arc<AtomicU64>,
    stops: Arc<AtomicU64>,
    handled: Arc<AtomicU64>,
}

impl Agent for Moody {
    async fn on_start(&mut self, _ctx: &mut Context) -> Result<(), AgentError> {
        self.starts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        match msg.payload().as_ref() {
            b"panic" => panic!("told to panic"),
            b"fail" => return Err(AgentError::new("told to fail")),
            b"stop" => ctx.stop(),
            b"slow" => tokio::time::sleep(Duration::from_millis(20)).await,
            _ => {}
        }
        self.handled.fetch_add(1, Ordering::SeqCst);
        let _ = ctx.reply(msg, "ok");
        Ok(())
    }

    async fn on_stop(&mut self, _ctx: &mut Context) {
        self.stops.fetch_add(1, Ordering::SeqCst);
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

fn quiet() {
    // The agents' own panics are expected here; keep every other panic
    // (a failing assertion) as loud as usual.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&"told to panic") {
            default(info);
        }
    }));
}

#[tokio::test]
async fn a_panic_dead_letters_one_message_and_the_mailbox_survives() {
    quiet();
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    rt.spawn(
        "moody",
        AgentConfig::default().supervision(Supervision::immediate()),
        move || agent.clone(),
    )
    .unwrap();
    let batch: Vec<Envelope> = ["a", "panic", "b", "fail", "c"]
        .into_iter()
        .map(Envelope::tell)
        .collect();
    rt.tell_batch("moody", batch).await.unwrap();
    let reply = rt
        .ask("moody", Envelope::ask("after"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.payload().as_ref(), b"ok");
    settle(&rt).await;
    let a = rt.accounting();
    assert_eq!(a.accepted, 6);
    assert_eq!(a.handled, 4, "a, b, c and the ask");
    assert_eq!(a.dead(DeadLetterReason::Panicked), 1);
    assert_eq!(a.dead(DeadLetterReason::Failed), 1);
    assert_eq!(a.restarts, 2);
    assert_eq!(m.starts.load(Ordering::SeqCst), 3);
    let letters = rt.dead_letters().drain();
    assert_eq!(letters.len(), 2);
    assert_eq!(letters[0].envelope.payload().as_ref(), b"panic");
    assert_eq!(letters[0].detail.as_deref(), Some("told to panic"));
    assert_eq!(letters[1].detail.as_deref(), Some("told to fail"));
}

#[tokio::test]
async fn never_policy_stops_the_agent_and_dead_letters_its_queue() {
    quiet();
    let rt = Runtime::new();
    let agent = Moody::default();
    rt.spawn(
        "fragile",
        AgentConfig::default().supervision(Supervision::never()),
        move || agent.clone(),
    )
    .unwrap();
    let batch: Vec<Envelope> = ["panic", "x", "y"]
        .into_iter()
        .map(Envelope::tell)
        .collect();
    rt.tell_batch("fragile", batch).await.unwrap();
    settle(&rt).await;
    let a = rt.accounting();
    assert_eq!(a.dead(DeadLetterReason::Panicked), 1);
    assert_eq!(a.dead(DeadLetterReason::AgentStopped), 2);
    assert!(a.balanced());
    let err = rt.tell("fragile", Envelope::tell("z")).await.unwrap_err();
    assert!(matches!(err, SendError::UnknownAgent { .. }), "{err}");
    assert_eq!(rt.agent_count(), 0);
}

#[tokio::test]
async fn restart_budget_runs_out() {
    quiet();
    let rt = Runtime::new();
    let sup = Supervision {
        max_restarts: 2,
        ..Supervision::immediate()
    };
    let agent = Moody::default();
    rt.spawn(
        "flaky",
        AgentConfig::default().supervision(sup),
        move || agent.clone(),
    )
    .unwrap();
    let batch: Vec<Envelope> = ["panic", "panic", "panic", "never-handled"]
        .into_iter()
        .map(Envelope::tell)
        .collect();
    rt.tell_batch("flaky", batch).await.unwrap();
    settle(&rt).await;
    let a = rt.accounting();
    assert_eq!(a.restarts, 2);
    assert_eq!(a.dead(DeadLetterReason::Panicked), 3);
    assert_eq!(a.dead(DeadLetterReason::AgentStopped), 1);
    assert_eq!(a.handled, 0);
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_the_restart() {
    quiet();
    let rt = Runtime::new();
    let sup = Supervision {
        policy: RestartPolicy::OnFailure,
        backoff_initial: Duration::from_secs(1),
        backoff_max: Duration::from_secs(1),
        max_restarts: 5,
        window: Duration::from_secs(60),
    };
    let m = Moody::default();
    let agent = m.clone();
    rt.spawn("b", AgentConfig::default().supervision(sup), move || {
        agent.clone()
    })
    .unwrap();
    rt.tell("b", Envelope::tell("panic")).await.unwrap();
    rt.tell("b", Envelope::tell("queued")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(m.handled.load(Ordering::SeqCst), 0, "still backing off");
    tokio::time::sleep(Duration::from_millis(600)).await;
    settle(&rt).await;
    assert_eq!(
        m.handled.load(Ordering::SeqCst),
        1,
        "queued message handled after the restart"
    );
}

#[tokio::test]
async fn self_stop_drains_and_always_restarts() {
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    rt.spawn("quitter", AgentConfig::default(), move || agent.clone())
        .unwrap();
    let batch: Vec<Envelope> = ["stop", "after-1", "after-2"]
        .into_iter()
        .map(Envelope::tell)
        .collect();
    rt.tell_batch("quitter", batch).await.unwrap();
    settle(&rt).await;
    assert_eq!(
        m.handled.load(Ordering::SeqCst),
        3,
        "queued messages are drained"
    );
    assert_eq!(m.stops.load(Ordering::SeqCst), 1);
    assert!(rt.tell("quitter", Envelope::tell("x")).await.is_err());

    let m = Moody::default();
    let agent = m.clone();
    let always = Supervision {
        policy: RestartPolicy::Always,
        ..Supervision::immediate()
    };
    rt.spawn(
        "phoenix",
        AgentConfig::default().supervision(always),
        move || agent.clone(),
    )
    .unwrap();
    rt.tell("phoenix", Envelope::tell("stop")).await.unwrap();
    rt.ask(
        "phoenix",
        Envelope::ask("still here"),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    assert_eq!(m.starts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn control_lane_overtakes_queued_messages() {
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    rt.spawn("busy", AgentConfig::default().max_batch(1), move || {
        agent.clone()
    })
    .unwrap();
    for _ in 0..20 {
        rt.tell("busy", Envelope::tell("slow")).await.unwrap();
    }
    assert!(rt.restart("busy"));
    // The restart lands at the next batch boundary, long before 20 x 20 ms of
    // queue (the handled count below says so); wait up to 10 s for it.
    for _ in 0..2000 {
        if m.starts.load(Ordering::SeqCst) == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(m.starts.load(Ordering::SeqCst), 2);
    assert!(
        m.handled.load(Ordering::SeqCst) < 10,
        "restart was not stuck behind the queue"
    );
    settle(&rt).await;
    assert_eq!(
        m.handled.load(Ordering::SeqCst),
        20,
        "the mailbox survived the restart"
    );
}

#[tokio::test]
async fn shutdown_drains_runs_on_stop_and_refuses_new_work() {
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    rt.spawn_pool(
        "p",
        3,
        Strategy::RoundRobin,
        AgentConfig::default(),
        move || agent.clone(),
    )
    .unwrap();
    for _ in 0..3000 {
        rt.tell("p", Envelope::tell("x")).await.unwrap();
    }
    let report = rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.accounting.handled, 3000);
    assert!(report.accounting.balanced());
    assert!(report.forced.is_empty() && report.aborted.is_empty());
    assert_eq!(m.stops.load(Ordering::SeqCst), 3);
    let err = rt.tell("p", Envelope::tell("late")).await.unwrap_err();
    assert_eq!(err.into_message().payload().as_ref(), b"late");
    assert!(
        rt.spawn("new", AgentConfig::default(), Moody::default)
            .is_err()
    );
}

#[tokio::test]
async fn shutdown_grace_expires_and_dead_letters_the_rest() {
    let rt = Runtime::new();
    let agent = Moody::default();
    rt.spawn("slow", AgentConfig::default().max_batch(1), move || {
        agent.clone()
    })
    .unwrap();
    for _ in 0..50 {
        rt.tell("slow", Envelope::tell("slow")).await.unwrap();
    }
    let report = rt.shutdown(Duration::from_millis(50)).await;
    let a = report.accounting;
    assert_eq!(report.forced, vec!["slow".to_string()]);
    assert!(a.handled < 50);
    assert_eq!(a.handled + a.dead(DeadLetterReason::Shutdown), 50, "{a}");
    assert!(a.balanced());
}

#[tokio::test]
async fn a_stuck_handler_is_aborted_and_still_accounted() {
    let rt = Runtime::new();
    struct Stuck;
    impl Agent for Stuck {
        async fn handle(&mut self, _ctx: &mut Context, _msg: &Envelope) -> Result<(), AgentError> {
            std::future::pending::<()>().await;
            Ok(())
        }
    }
    rt.spawn("stuck", AgentConfig::default().max_batch(4), || Stuck)
        .unwrap();
    for _ in 0..10 {
        rt.tell("stuck", Envelope::tell("x")).await.unwrap();
    }
    let report = rt.shutdown(Duration::from_millis(20)).await;
    assert_eq!(report.aborted, vec!["stuck".to_string()]);
    assert_eq!(report.accounting.dead(DeadLetterReason::Shutdown), 10);
    assert!(report.accounting.balanced());
}

#[tokio::test]
async fn remove_drains_one_agent_and_keeps_the_rest() {
    let rt = Runtime::new();
    rt.spawn("keep", AgentConfig::default(), Moody::default)
        .unwrap();
    rt.spawn("go", AgentConfig::default(), Moody::default)
        .unwrap();
    for _ in 0..100 {
        rt.tell("go", Envelope::tell("x")).await.unwrap();
    }
    let a = rt.remove("go", Duration::from_secs(5)).await.unwrap();
    assert_eq!(a.handled, 100);
    assert!(rt.remove("go", Duration::from_secs(1)).await.is_none());
    rt.ask("keep", Envelope::ask("x"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(rt.agent_count(), 1);
    assert!(rt.accounting().balanced());
}

/// Many producers, pools and single agents, every overflow policy, random
/// panics and failures, and a shutdown in the middle of the traffic: every
/// accepted message must end handled or dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn accounting_balances_under_concurrency_failure_and_shutdown() {
    quiet();
    let rt = Runtime::new();
    let sup = Supervision::immediate();
    let small = AgentConfig::default()
        .capacity(16)
        .max_batch(8)
        .supervision(sup);
    rt.spawn("block", small, Moody::default).unwrap();
    rt.spawn("reject", small.overflow(Overflow::Reject), Moody::default)
        .unwrap();
    rt.spawn("shed", small.overflow(Overflow::DropOldest), Moody::default)
        .unwrap();
    rt.spawn_pool("pool", 4, Strategy::LeastLoaded, small, Moody::default)
        .unwrap();
    rt.spawn(
        "never",
        small.supervision(Supervision::never()),
        Moody::default,
    )
    .unwrap();
    rt.spawn("lazy", small.lazy_start(true), Moody::default)
        .unwrap();
    // Members that start at their first message, some of them racing the
    // shutdown, some never started at all.
    rt.spawn_pool(
        "lazypool",
        64,
        Strategy::RoundRobin,
        small.lazy_start(true),
        Moody::default,
    )
    .unwrap();
    let refused = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for p in 0..6u64 {
        let rt = rt.clone();
        let refused = refused.clone();
        producers.push(tokio::spawn(async move {
            let targets = [
                "block", "reject", "shed", "pool", "never", "lazy", "lazypool",
            ];
            for i in 0..4000u64 {
                let payload: &'static str = match (i * 7 + p) % 97 {
                    0 => "panic",
                    1 => "fail",
                    _ => "x",
                };
                let target = targets[((i + p) % 7) as usize];
                let env = Envelope::tell(payload).with_ttl(Duration::from_millis(if i % 13 == 0 {
                    0
                } else {
                    500
                }));
                let result = if i % 10 == 0 {
                    rt.tell_batch(target, vec![env, Envelope::tell("x")])
                        .await
                        .map_err(|e| e.into_message().len())
                } else {
                    rt.tell(target, env).await.map_err(|_| 1)
                };
                if let Err(n) = result {
                    refused.fetch_add(n as u64, Ordering::Relaxed);
                }
                if i % 64 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }));
    }
    // Shut down once traffic is flowing (something handled and something
    // dead-lettered), not after a fixed sleep: on a loaded machine the
    // producers may not have sent anything in 15 ms.
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let a = rt.accounting();
        if a.handled > 0 && a.dead_lettered() > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < until,
            "no traffic within 10 s: {a}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = rt.shutdown(Duration::from_millis(100)).await;
    for p in producers {
        p.await.unwrap();
    }
    let a = rt.accounting();
    assert!(a.balanced(), "{a}");
    assert!(report.accounting.balanced(), "{}", report.accounting);
    assert_eq!(
        a.accepted + a.rejected,
        6 * (4000 + 400),
        "every send was either accepted or refused: {a}"
    );
    assert_eq!(a.rejected, refused.load(Ordering::Relaxed));
    assert!(a.handled > 0 && a.dead_lettered() > 0, "{a}");
}

#[tokio::test]
async fn a_lazy_agent_starts_at_its_first_message() {
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    let config = AgentConfig::default().lazy_start(true);
    rt.spawn("lazy", config, move || agent.clone()).unwrap();
    tokio::task::yield_now().await;
    assert_eq!(
        m.starts.load(Ordering::SeqCst),
        0,
        "started before any message"
    );
    assert!(!rt.agents()[0].started);
    let reply = rt
        .ask("lazy", Envelope::ask("x"), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(reply.payload().as_ref(), b"ok");
    assert_eq!(m.starts.load(Ordering::SeqCst), 1);
    assert!(rt.agents()[0].started);
    rt.tell("lazy", Envelope::tell("y")).await.unwrap();
    let report = rt.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.accounting.handled, 2, "{}", report.accounting);
    assert!(report.accounting.balanced());
    assert_eq!(m.starts.load(Ordering::SeqCst), 1);
    assert_eq!(m.stops.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_lazy_agent_that_never_had_a_message_stops_without_starting() {
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    let config = AgentConfig::default().lazy_start(true);
    rt.spawn_pool("idle", 8, Strategy::RoundRobin, config, move || {
        agent.clone()
    })
    .unwrap();
    let single = m.clone();
    rt.spawn("one", config, move || single.clone()).unwrap();
    assert_eq!(rt.agent_count(), 9);
    let removed = rt.remove("one", Duration::from_secs(10)).await.unwrap();
    assert_eq!(removed.accepted, 0);
    assert!(rt.tell("one", Envelope::tell("x")).await.is_err());
    // One member of the pool gets a message; the other seven never start.
    rt.tell("idle", Envelope::tell("x")).await.unwrap();
    let report = rt.shutdown(Duration::from_secs(10)).await;
    assert_eq!(report.accounting.handled, 1, "{}", report.accounting);
    assert!(report.accounting.balanced());
    assert_eq!(m.starts.load(Ordering::SeqCst), 1);
    assert_eq!(m.stops.load(Ordering::SeqCst), 1);
    assert_eq!(rt.agent_count(), 0, "every agent retired");
}

#[tokio::test]
async fn a_lazy_agent_starts_on_a_control_request() {
    let rt = Runtime::new();
    let m = Moody::default();
    let agent = m.clone();
    rt.spawn("lazy", AgentConfig::default().lazy_start(true), move || {
        agent.clone()
    })
    .unwrap();
    assert!(rt.restart("lazy"));
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while m.starts.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < until,
            "a restart request did not start it"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let report = rt.shutdown(Duration::from_secs(10)).await;
    assert!(report.accounting.balanced());
    assert_eq!(m.stops.load(Ordering::SeqCst), 1);
}
