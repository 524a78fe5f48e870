//! Delivery contracts: patterns, overflow policies, deadlines, pools, bad input.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use switchyard_runtime::{
    Agent, AgentConfig, AgentError, AskError, Context, DeadLetterReason, Envelope, Kind, Overflow,
    Runtime, SENDS_PER_YIELD, SendError, SpawnError, Strategy,
};

/// Replies to asks with its payload; records every payload it handles.
#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<std::sync::Mutex<Vec<Bytes>>>,
}

impl Agent for Recorder {
    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        self.seen.lock().unwrap().push(msg.payload().to_bytes());
        if msg.kind() == Kind::Ask {
            let _ = ctx.reply(msg, msg.payload().clone());
        }
        Ok(())
    }
}

/// Waits on a gate before handling each message, so tests can fill its mailbox.
#[derive(Clone)]
struct Gated {
    gate: Arc<tokio::sync::Semaphore>,
    handled: Arc<AtomicU64>,
}

impl Gated {
    fn new() -> Gated {
        Gated {
            gate: Arc::new(tokio::sync::Semaphore::new(0)),
            handled: Arc::default(),
        }
    }
}

impl Agent for Gated {
    async fn handle(&mut self, _ctx: &mut Context, _msg: &Envelope) -> Result<(), AgentError> {
        self.gate
            .acquire()
            .await
            .map_err(|e| AgentError::new(e.to_string()))?
            .forget();
        self.handled.fetch_add(1, Ordering::SeqCst);
        Ok(())
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

#[tokio::test]
async fn tell_ask_and_batch_keep_fifo_order() {
    let rt = Runtime::new();
    let rec = Recorder::default();
    let r = rec.clone();
    rt.spawn("rec", AgentConfig::default(), move || r.clone())
        .unwrap();
    rt.tell("rec", Envelope::tell("1")).await.unwrap();
    let batch = vec![
        Envelope::tell("2"),
        Envelope::tell("3"),
        Envelope::tell("4"),
    ];
    rt.tell_batch("rec", batch).await.unwrap();
    let reply = rt
        .ask("rec", Envelope::ask("5"), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(reply.kind(), Kind::Reply);
    assert_eq!(reply.payload().as_ref(), b"5");
    let seen: Vec<Bytes> = rec.seen.lock().unwrap().clone();
    assert_eq!(seen, vec!["1", "2", "3", "4", "5"]);
    let report = rt.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.accounting.accepted, 5);
    assert_eq!(report.accounting.handled, 5);
    assert!(report.accounting.balanced());
}

#[tokio::test]
async fn unknown_name_hands_the_message_back() {
    let rt = Runtime::new();
    let err = rt
        .tell("nobody", Envelope::tell("lost?"))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::UnknownAgent { .. }));
    assert!(err.to_string().contains("nobody"), "{err}");
    assert_eq!(err.into_message().payload().as_ref(), b"lost?");
    let err = rt
        .tell_batch("nobody", vec![Envelope::tell("a"), Envelope::tell("b")])
        .await
        .unwrap_err();
    assert_eq!(err.into_message().len(), 2);
    let err = rt
        .ask("nobody", Envelope::ask("q?"), Duration::from_secs(5))
        .await
        .unwrap_err();
    let AskError::Send(err) = err else {
        panic!("an unknown name refuses the request: {err}");
    };
    assert!(matches!(err, SendError::UnknownAgent { .. }), "{err}");
    assert_eq!(err.into_message().payload().as_ref(), b"q?");
    assert_eq!(rt.accounting().rejected, 4);
}

/// Every answered ask's round trip is recorded, for a pool on the member
/// the request was routed to (the pool's figures merge its members').
#[tokio::test]
async fn ask_round_trips_are_recorded_for_agents_and_pools() {
    let rt = Runtime::new();
    rt.spawn_pool(
        "pool",
        3,
        Strategy::RoundRobin,
        AgentConfig::default(),
        Recorder::default,
    )
    .unwrap();
    for _ in 0..6 {
        rt.ask("pool", Envelope::ask("q"), Duration::from_secs(5))
            .await
            .unwrap();
    }
    rt.spawn("one", AgentConfig::default(), Recorder::default)
        .unwrap();
    for _ in 0..4 {
        rt.ask("one", Envelope::ask("q"), Duration::from_secs(5))
            .await
            .unwrap();
    }
    for (name, asks) in [("pool", 6), ("one", 4)] {
        let latency = rt.latency(name).expect("agents that handled asks");
        assert_eq!(latency.ask_us.count, asks, "{name}");
        assert_eq!(latency.sojourn_us.count, asks, "{name}");
    }
}

#[tokio::test]
async fn bad_spawns_name_the_problem() {
    let rt = Runtime::new();
    rt.spawn("a", AgentConfig::default(), Recorder::default)
        .unwrap();
    let dup = rt
        .spawn("a", AgentConfig::default(), Recorder::default)
        .unwrap_err();
    assert_eq!(dup, SpawnError::Duplicate("a".into()));
    assert!(dup.to_string().contains("already registered"));
    let zero = rt
        .spawn("b", AgentConfig::default().capacity(0), Recorder::default)
        .unwrap_err();
    assert!(zero.to_string().contains("capacity 0"), "{zero}");
    let name = rt
        .spawn("bad name", AgentConfig::default(), Recorder::default)
        .unwrap_err();
    assert!(name.to_string().contains("bad name"), "{name}");
    let pool = rt
        .spawn_pool(
            "p",
            0,
            Strategy::RoundRobin,
            AgentConfig::default(),
            Recorder::default,
        )
        .unwrap_err();
    assert!(pool.to_string().contains("pool size 0"), "{pool}");
    let taken = rt
        .spawn_pool(
            "a",
            4,
            Strategy::RoundRobin,
            AgentConfig::default(),
            Recorder::default,
        )
        .unwrap_err();
    assert_eq!(taken, SpawnError::Duplicate("a".into()));
    assert_eq!(rt.agent_count(), 1, "failed spawns leave nothing behind");
    assert_eq!(rt.agents().len(), 1, "and no stray agent ids");
}

#[tokio::test]
async fn reject_policy_refuses_when_full_and_counts_it() {
    let rt = Runtime::new();
    let g = Gated::new();
    let agent = g.clone();
    rt.spawn(
        "slow",
        AgentConfig::default()
            .capacity(2)
            .overflow(Overflow::Reject),
        move || agent.clone(),
    )
    .unwrap();
    // The first message is taken into the agent's batch and waits on the gate.
    rt.tell("slow", Envelope::tell("0")).await.unwrap();
    settle_depth(&rt, "slow", 0).await;
    rt.tell("slow", Envelope::tell("1")).await.unwrap();
    rt.tell("slow", Envelope::tell("2")).await.unwrap();
    let err = rt.tell("slow", Envelope::tell("3")).await.unwrap_err();
    assert!(matches!(err, SendError::Full { .. }), "{err}");
    assert_eq!(err.into_message().payload().as_ref(), b"3");
    assert!(rt.try_tell("slow", Envelope::tell("4")).is_err());
    g.gate.add_permits(3);
    settle(&rt).await;
    let a = rt.accounting();
    assert_eq!((a.accepted, a.handled, a.rejected), (3, 3, 2));
}

async fn settle_depth(rt: &Runtime, name: &str, depth: usize) {
    for _ in 0..10_000 {
        if rt
            .agents()
            .iter()
            .any(|a| a.name == name && a.depth == depth)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{name} never reached depth {depth}");
}

#[tokio::test]
async fn drop_oldest_sheds_to_dead_letters() {
    let rt = Runtime::new();
    let g = Gated::new();
    let agent = g.clone();
    rt.spawn(
        "slow",
        AgentConfig::default()
            .capacity(2)
            .overflow(Overflow::DropOldest),
        move || agent.clone(),
    )
    .unwrap();
    rt.tell("slow", Envelope::tell("in-hand")).await.unwrap();
    settle_depth(&rt, "slow", 0).await;
    for p in ["a", "b", "c", "d"] {
        rt.tell("slow", Envelope::tell(p)).await.unwrap();
    }
    let letters = rt.dead_letters().drain();
    let shed: Vec<&[u8]> = letters
        .iter()
        .map(|l| l.envelope.payload().as_ref())
        .collect();
    assert_eq!(shed, vec![b"a".as_slice(), b"b"]);
    assert!(
        letters
            .iter()
            .all(|l| l.reason == DeadLetterReason::DroppedOldest && &*l.agent_name == "slow")
    );
    g.gate.add_permits(10);
    settle(&rt).await;
    let a = rt.accounting();
    assert_eq!(a.accepted, 5);
    assert_eq!(a.handled, 3);
    assert_eq!(a.dead(DeadLetterReason::DroppedOldest), 2);
    assert!(a.balanced());
}

#[tokio::test(start_paused = true)]
async fn block_policy_waits_until_the_deadline_then_hands_back() {
    let rt = Runtime::new();
    let g = Gated::new();
    let agent = g.clone();
    rt.spawn("slow", AgentConfig::default().capacity(1), move || {
        agent.clone()
    })
    .unwrap();
    rt.tell("slow", Envelope::tell("in-hand")).await.unwrap();
    settle_depth(&rt, "slow", 0).await;
    rt.tell("slow", Envelope::tell("queued")).await.unwrap();
    let err = rt
        .tell(
            "slow",
            Envelope::tell("late").with_ttl(Duration::from_millis(50)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Timeout { .. }), "{err}");
    // Without a deadline the sender waits for room and gets in.
    let rt2 = rt.clone();
    let waiter = tokio::spawn(async move { rt2.tell("slow", Envelope::tell("patient")).await });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(!waiter.is_finished());
    g.gate.add_permits(10);
    waiter.await.unwrap().unwrap();
    settle(&rt).await;
    assert_eq!(rt.accounting().handled, 3);
}

#[tokio::test(start_paused = true)]
async fn expired_messages_are_dead_lettered_not_handled() {
    let rt = Runtime::new();
    let g = Gated::new();
    let agent = g.clone();
    rt.spawn("slow", AgentConfig::default(), move || agent.clone())
        .unwrap();
    rt.tell("slow", Envelope::tell("in-hand")).await.unwrap();
    settle_depth(&rt, "slow", 0).await;
    rt.tell(
        "slow",
        Envelope::tell("short").with_ttl(Duration::from_millis(5)),
    )
    .await
    .unwrap();
    rt.tell(
        "slow",
        Envelope::tell("long").with_ttl(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    g.gate.add_permits(10);
    settle(&rt).await;
    let a = rt.accounting();
    assert_eq!(a.handled, 2);
    assert_eq!(a.dead(DeadLetterReason::Expired), 1);
    let letters = rt.dead_letters().drain();
    assert_eq!(letters[0].envelope.payload().as_ref(), b"short");
}

#[tokio::test(start_paused = true)]
async fn an_asks_timeout_includes_the_wait_for_mailbox_room() {
    let rt = Runtime::new();
    let g = Gated::new();
    let agent = g.clone();
    rt.spawn("slow", AgentConfig::default().capacity(1), move || {
        agent.clone()
    })
    .unwrap();
    rt.tell("slow", Envelope::tell("in-hand")).await.unwrap();
    settle_depth(&rt, "slow", 0).await;
    rt.tell("slow", Envelope::tell("queued")).await.unwrap();
    // The ask waits for room (overflow `block`, no message deadline), then
    // for its reply; its 100 ms count from the call, not from the room.
    let rt2 = rt.clone();
    let start = tokio::time::Instant::now();
    let asker = tokio::spawn(async move {
        let out = rt2
            .ask("slow", Envelope::ask("q"), Duration::from_millis(100))
            .await;
        (out, start.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    g.gate.add_permits(1);
    let (out, took) = asker.await.unwrap();
    assert!(matches!(out, Err(AskError::Timeout { .. })), "{out:?}");
    assert!(
        took < Duration::from_millis(350),
        "the timeout ran from the call: {took:?}"
    );
    g.gate.add_permits(10);
    settle(&rt).await;
}

#[tokio::test]
async fn ask_timeout_counts_the_late_reply() {
    let rt = Runtime::new();
    /// Replies only once the test opens the gate, after the ask has timed
    /// out: a fixed sleep raced the asker's timer on a loaded machine.
    struct Sleepy(Arc<tokio::sync::Semaphore>);
    impl Agent for Sleepy {
        async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
            self.0
                .acquire()
                .await
                .map_err(|e| AgentError::new(e.to_string()))?
                .forget();
            let _ = ctx.reply(msg, "late");
            Ok(())
        }
    }
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let g = gate.clone();
    rt.spawn("sleepy", AgentConfig::default(), move || Sleepy(g.clone()))
        .unwrap();
    let err = rt
        .ask("sleepy", Envelope::ask("q"), Duration::from_millis(5))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::Timeout { .. }), "{err}");
    assert_eq!(rt.asks_timed_out(), 1);
    gate.add_permits(1);
    settle(&rt).await;
    assert_eq!(rt.late_replies(), 1);
}

#[tokio::test]
async fn an_agent_that_does_not_reply_releases_the_asker() {
    let rt = Runtime::new();
    struct Mute;
    impl Agent for Mute {
        async fn handle(&mut self, _ctx: &mut Context, _msg: &Envelope) -> Result<(), AgentError> {
            Ok(())
        }
    }
    rt.spawn("mute", AgentConfig::default(), || Mute).unwrap();
    let err = rt
        .ask("mute", Envelope::ask("q"), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::NoReply { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asker_released_by_a_failure_finds_its_dead_letter() {
    let rt = Runtime::new();
    struct Broken;
    impl Agent for Broken {
        async fn handle(&mut self, _ctx: &mut Context, _msg: &Envelope) -> Result<(), AgentError> {
            Err(AgentError::new("broken"))
        }
    }
    let config = AgentConfig::default().supervision(switchyard_runtime::Supervision::never());
    rt.spawn("broken", config, || Broken).unwrap();
    let err = rt
        .ask("broken", Envelope::ask("q"), Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::NoReply { .. }), "{err}");
    // Queued before the asker was told: no wait needed.
    let letters = rt.dead_letters().drain();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, DeadLetterReason::Failed);
    assert_eq!(letters[0].envelope.payload().as_ref(), b"q");
}

#[tokio::test]
async fn publish_reaches_every_subscriber_once() {
    let rt = Runtime::new();
    let (a, b) = (Recorder::default(), Recorder::default());
    let (ac, bc) = (a.clone(), b.clone());
    rt.spawn("a", AgentConfig::default(), move || ac.clone())
        .unwrap();
    rt.spawn_pool(
        "b",
        3,
        Strategy::RoundRobin,
        AgentConfig::default(),
        move || bc.clone(),
    )
    .unwrap();
    rt.subscribe("news", "a").unwrap();
    rt.subscribe("news", "b").unwrap();
    rt.subscribe("news", "a").unwrap();
    assert!(rt.subscribe("news", "ghost").is_err());
    for i in 0..9u8 {
        let r = rt.publish("news", Envelope::publish(vec![i])).await;
        assert_eq!((r.delivered, r.rejected), (2, 0));
    }
    assert_eq!(
        rt.publish("nobody-listens", Envelope::publish("x"))
            .await
            .delivered,
        0
    );
    settle(&rt).await;
    assert_eq!(a.seen.lock().unwrap().len(), 9);
    assert_eq!(b.seen.lock().unwrap().len(), 9);
    assert!(rt.unsubscribe("news", "a"));
    assert_eq!(
        rt.publish("news", Envelope::publish("y")).await.delivered,
        1
    );
}

#[tokio::test]
async fn pools_route_by_strategy() {
    let rt = Runtime::new();
    let ids = rt
        .spawn_pool(
            "rr",
            4,
            Strategy::RoundRobin,
            AgentConfig::default(),
            Recorder::default,
        )
        .unwrap();
    assert_eq!(ids.len(), 4);
    for _ in 0..400 {
        rt.tell("rr", Envelope::tell("x")).await.unwrap();
    }
    rt.spawn_pool(
        "keyed",
        8,
        Strategy::KeyAffinity,
        AgentConfig::default(),
        Recorder::default,
    )
    .unwrap();
    for _ in 0..50 {
        rt.tell("keyed", Envelope::tell("k").with_key(b"customer-42"))
            .await
            .unwrap();
    }
    settle(&rt).await;
    let agents = rt.agents();
    let rr: Vec<u64> = agents
        .iter()
        .filter(|a| a.pool.as_deref() == Some("rr"))
        .map(|a| a.accounting.handled)
        .collect();
    assert_eq!(rr, vec![100, 100, 100, 100]);
    let keyed: Vec<u64> = agents
        .iter()
        .filter(|a| a.pool.as_deref() == Some("keyed"))
        .map(|a| a.accounting.handled)
        .collect();
    assert_eq!(
        keyed.iter().filter(|h| **h == 50).count(),
        1,
        "one key, one member: {keyed:?}"
    );
    assert_eq!(keyed.iter().sum::<u64>(), 50);
}

#[tokio::test]
async fn least_loaded_avoids_the_busy_member() {
    let rt = Runtime::new();
    let g = Gated::new();
    let agent = g.clone();
    // One message in hand per member at most, so depth is what waits.
    let cfg = AgentConfig::default().max_batch(1);
    rt.spawn_pool("ll", 2, Strategy::LeastLoaded, cfg, move || agent.clone())
        .unwrap();
    for _ in 0..12 {
        rt.tell("ll", Envelope::tell("y")).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let depths: Vec<usize> = rt.agents().iter().map(|a| a.depth).collect();
    assert!(
        (10..=12).contains(&depths.iter().sum::<usize>()),
        "{depths:?}"
    );
    assert!(
        depths[0].abs_diff(depths[1]) <= 1,
        "least-loaded keeps members level: {depths:?}"
    );
    g.gate.add_permits(100);
    settle(&rt).await;
}

#[tokio::test]
async fn key_affinity_batches_split_by_key() {
    let rt = Runtime::new();
    rt.spawn_pool(
        "keyed",
        4,
        Strategy::KeyAffinity,
        AgentConfig::default(),
        Recorder::default,
    )
    .unwrap();
    let batch: Vec<Envelope> = (0..100u32)
        .map(|i| Envelope::tell("x").with_key(&(i % 10).to_le_bytes()))
        .collect();
    rt.tell_batch("keyed", batch).await.unwrap();
    settle(&rt).await;
    assert_eq!(rt.accounting().handled, 100);
}

/// On a one-thread runtime, a producer whose sends never wait for room
/// still yields at least once per `SENDS_PER_YIELD` sends, by every async
/// send path: another task and the agent it feeds both run before it is done.
#[tokio::test]
async fn a_producer_that_never_waits_still_yields() {
    let rt = Runtime::new();
    let roomy = AgentConfig::default().capacity(1 << 20);
    rt.spawn("sink", roomy, Recorder::default).unwrap();
    rt.subscribe("news", "sink").unwrap();
    let addr = rt.resolve("sink").unwrap();
    let id = addr.ids()[0];
    let every = SENDS_PER_YIELD as u64;
    for path in ["tell", "tell_id", "addr", "tell_batch", "publish"] {
        let ticks = Arc::new(AtomicU64::new(0));
        let t = ticks.clone();
        let other = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        });
        let handled_before = rt.accounting().handled;
        let (mut sent, mut ticks_seen, mut handled_seen) = (0u64, Vec::new(), 0);
        while sent < 4 * every {
            let env = Envelope::tell("m");
            match path {
                "tell" => rt.tell("sink", env).await.unwrap(),
                "tell_id" => rt.tell_id(id, env).await.unwrap(),
                "addr" => addr.tell(env).await.unwrap(),
                "tell_batch" => {
                    let batch = (0..64).map(|_| Envelope::tell("m")).collect();
                    rt.tell_batch("sink", batch).await.unwrap();
                    sent += 63;
                }
                _ => assert_eq!(rt.publish("news", env).await.delivered, 1),
            }
            sent += 1;
            if sent % every < 64 {
                ticks_seen.push(ticks.load(Ordering::SeqCst));
                handled_seen = rt.accounting().handled - handled_before;
            }
        }
        other.abort();
        // Sampled at the start of each budget: the other task ran in (almost) every one.
        ticks_seen.dedup();
        assert!(
            ticks_seen.len() >= 3,
            "{path}: the other task ran only at {ticks_seen:?} over {sent} sends"
        );
        assert!(
            handled_seen > 0,
            "{path}: the agent handled nothing while {sent} sends were made"
        );
    }
    settle(&rt).await;
}
