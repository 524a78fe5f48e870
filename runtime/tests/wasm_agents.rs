//! WASM agents run like native ones: ask round trips, key-value state across
//! restarts, CPU and memory limits, traps, pools, sends to other agents.

mod wasm_common;

use std::time::Duration;

use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits};
use switchyard_runtime::{DeadLetterReason, Envelope, Runtime, Strategy};
use wasm_common::{ask, config, eventually, scripted, write_temp};

fn kind(limits: WasmLimits) -> std::sync::Arc<WasmAgentKind> {
    let path = write_temp("scripted.wasm", &scripted(1));
    WasmAgentKind::load(&path, limits).expect("the scripted agent loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_round_trip_through_ask() {
    let rt = Runtime::new();
    rt.spawn("echo", config(), kind(WasmLimits::default()).factory())
        .unwrap();
    assert_eq!(ask(&rt, "echo", b"hello").await, b"hello");
    // Many asks in flight at once arrive as batches.
    let mut calls = Vec::new();
    for i in 0..200u32 {
        let rt = rt.clone();
        calls.push(tokio::spawn(async move {
            ask(&rt, "echo", &i.to_le_bytes()).await == i.to_le_bytes()
        }));
    }
    for c in calls {
        assert!(c.await.unwrap());
    }
    let report = rt.shutdown(Duration::from_secs(5)).await;
    assert!(report.accounting.balanced(), "{report:?}");
    assert_eq!(report.accounting.dead_lettered(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counter_state_survives_a_restart() {
    let rt = Runtime::new();
    let kind = kind(WasmLimits::default());
    rt.spawn("counter", config(), kind.factory()).unwrap();
    for n in 1..=3u64 {
        assert_eq!(ask(&rt, "counter", b"count").await, n.to_le_bytes());
    }
    // A trap kills the instance; the next one finds the count in the store.
    rt.tell("counter", Envelope::tell(b"trap".as_slice()))
        .await
        .unwrap();
    assert_eq!(ask(&rt, "counter", b"count").await, 4u64.to_le_bytes());
    assert!(rt.restart("counter"));
    assert_eq!(ask(&rt, "counter", b"count").await, 5u64.to_le_bytes());
    assert_eq!(
        kind.kv().get("counter", "count"),
        Some(5u64.to_le_bytes().to_vec())
    );
    let counter = rt.agent_accounting("counter").unwrap();
    assert!(counter.restarts >= 2, "{counter:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_infinite_loop_hits_the_cpu_limit_and_the_agent_recovers() {
    let rt = Runtime::new();
    // The limit is wall-clock time (epoch ticks), and the restarted instance
    // and the "after" ask get the same budget: 20 ms was missed on a loaded
    // machine. The loop never ends, so any limit stops it.
    let limits = WasmLimits::default().cpu_per_message(Duration::from_secs(1));
    rt.spawn("looper", config(), kind(limits).factory())
        .unwrap();
    rt.spawn("bystander", config(), kind(WasmLimits::default()).factory())
        .unwrap();
    rt.tell("looper", Envelope::tell(b"loop".as_slice()))
        .await
        .unwrap();
    assert_eq!(ask(&rt, "looper", b"after").await, b"after");
    assert_eq!(ask(&rt, "bystander", b"fine").await, b"fine");
    let dead = rt.dead_letters().drain();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].reason, DeadLetterReason::Failed);
    let detail = dead[0].detail.as_deref().unwrap_or_default();
    assert!(detail.starts_with("deadline:"), "{detail}");
    assert_eq!(dead[0].envelope.payload().as_ref(), b"loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_bomb_hits_the_cap() {
    let rt = Runtime::new();
    let limits = WasmLimits::default().memory_bytes(2 << 20);
    rt.spawn("bomb", config(), kind(limits).factory()).unwrap();
    rt.tell("bomb", Envelope::tell(b"bomb".as_slice()))
        .await
        .unwrap();
    assert_eq!(ask(&rt, "bomb", b"still here").await, b"still here");
    let dead = rt.dead_letters().drain();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let detail = dead[0].detail.as_deref().unwrap_or_default();
    assert!(detail.starts_with("memory:"), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traps_and_errors_are_classified_and_only_the_culprit_is_dead_lettered() {
    let rt = Runtime::new();
    rt.spawn(
        "trapper",
        config().max_batch(64),
        kind(WasmLimits::default()).factory(),
    )
    .unwrap();
    // One batch: ok, ok, trap, ok. Only the trap is dead-lettered; the rest are handled once.
    let batch = vec![
        Envelope::tell(b"count".as_slice()),
        Envelope::tell(b"count".as_slice()),
        Envelope::tell(b"trap".as_slice()),
        Envelope::tell(b"count".as_slice()),
        Envelope::tell(b"fail".as_slice()),
    ];
    rt.tell_batch("trapper", batch).await.unwrap();
    assert_eq!(ask(&rt, "trapper", b"count").await, 4u64.to_le_bytes());
    let mut dead = rt.dead_letters().drain();
    dead.sort_by_key(|d| d.envelope.payload().to_vec());
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].envelope.payload().as_ref(), b"fail");
    assert!(
        dead[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("error: asked to fail"),
        "{dead:?}"
    );
    assert_eq!(dead[1].envelope.payload().as_ref(), b"trap");
    assert!(
        dead[1]
            .detail
            .as_deref()
            .unwrap_or_default()
            .starts_with("unreachable:"),
        "{dead:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wasm_pool_spreads_work_and_keeps_state_per_member() {
    let rt = Runtime::new();
    let kind = kind(WasmLimits::default());
    rt.spawn_pool("workers", 3, Strategy::RoundRobin, config(), kind.factory())
        .unwrap();
    for _ in 0..9 {
        ask(&rt, "workers", b"count").await;
    }
    for i in 0..3 {
        let count = kind
            .kv()
            .get(&format!("workers#{i}"), "count")
            .expect("every member counted");
        assert_eq!(count, 3u64.to_le_bytes(), "member {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_reaches_other_agents_and_reports_unknown_names() {
    let rt = Runtime::new();
    let kind = kind(WasmLimits::default());
    rt.spawn("fanout", config(), kind.factory()).unwrap();
    rt.spawn("sink", config(), kind.factory()).unwrap();
    // The fan-out sends the payload "sink" to "sink", which echoes nothing (a tell).
    assert_eq!(ask(&rt, "fanout", b"send:sink").await, b"sent");
    assert_eq!(ask(&rt, "fanout", b"send:nobody").await, b"refused");
    eventually("the sink handled the send", || {
        rt.agent_accounting("sink").unwrap().handled == 1
    })
    .await;
    assert_eq!(rt.agent_accounting("sink").unwrap().accepted, 1);
}

/// The bench's WASM echo fixture answers the asks of a mixed batch with
/// their own payloads and handles the tells around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_fixture_replies_to_asks_in_a_packed_batch() {
    let kind = WasmAgentKind::from_bytes("echo.wat", &wasm_common::echo(), WasmLimits::default())
        .expect("the echo fixture loads");
    let rt = Runtime::new();
    rt.spawn(
        "echo",
        switchyard_runtime::AgentConfig::default(),
        kind.factory(),
    )
    .expect("spawn");
    let tells: Vec<Envelope> = (0..63u8).map(|i| Envelope::tell(vec![i; 64])).collect();
    rt.tell_batch("echo", tells).await.expect("accepted");
    for payload in [&b"first"[..], b"", &[9u8; 300]] {
        let reply = rt
            .ask(
                "echo",
                Envelope::ask(payload.to_vec()),
                Duration::from_secs(10),
            )
            .await
            .expect("the echo answers");
        assert_eq!(reply.payload().as_ref(), payload);
    }
    // The reply leaves before the batch is counted as handled.
    eventually("the echo counted all 66 messages", || {
        rt.agent_accounting("echo").expect("agent").handled == 63 + 3
    })
    .await;
    rt.shutdown(Duration::from_secs(5)).await;
}
