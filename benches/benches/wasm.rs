//! # What does running an agent as WASM cost over a native one?
//!
//! **Workload.** The echo agent as a WASM component (the scripted fixture
//! `runtime/tests/fixtures/scripted.wat`, wrapped by wit-component with the
//! real WIT) and the native `switchyard_examples::Echo`, each one agent on a
//! 2-worker Tokio runtime, fed 64-byte tells with `tell_batch` of 1, 16 and
//! 64 messages (max batch 64, so a batch reaches the agent as one call).
//! - `instantiate`: `WasmAgentKind::probe`: a store, an instance from the
//!   `InstancePre` (pooling allocator) and the guest's `init` call.
//! - `echo/{native,wasm}/{1,16,64}`: sending until the agent has handled
//!   every message (the producer polls the agent's `handled` counter).
//!
//! Before criterion runs, the bench spawns 10,000 WASM echo agents, asks each
//! once (so each holds a live instance) and prints the resident memory per
//! idle instance.
//!
//! **Timed section.** Envelope and batch building, routing, the agent's
//! handling; the agents are spawned outside it.
//!
//! **Decision rule / targets** (issue 4): instantiate ≤ 10 µs; WASM echo
//! per-message overhead over native ≤ 300 ns at batch 1 and ≤ 60 ns at
//! batch 64 (report the ratio at 1/16/64); ≤ 128 KiB per idle instance;
//! 10,000 live WASM agents.
//!
//! **Run.** `cargo bench -p switchyard-benches --bench wasm`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard_benches::{rss_bytes, run_in_task, tokio_runtime};
use switchyard_examples::Echo;
use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits};
use switchyard_runtime::{AgentConfig, Envelope, Runtime};

/// Live WASM agents spawned for the memory figure.
const LIVE_AGENTS: usize = 10_000;
/// Batch sizes compared.
const BATCHES: [usize; 3] = [1, 16, 64];
/// Messages per timed round (a multiple of every batch size).
const ROUND: usize = 1024;

fn component() -> Vec<u8> {
    let wat = include_str!("../../runtime/tests/fixtures/scripted.wat");
    let mut module = wat::parse_str(wat).expect("the fixture parses");
    let mut resolve = wit_parser::Resolve::default();
    let wit = concat!(env!("CARGO_MANIFEST_DIR"), "/../agents/sdk/wit");
    let (pkg, _) = resolve.push_path(wit).expect("the WIT parses");
    let world = resolve
        .select_world(&[pkg], Some("agent"))
        .expect("the world exists");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .encode()
        .expect("component encodes")
}

fn kind() -> Arc<WasmAgentKind> {
    WasmAgentKind::from_bytes("scripted.wasm", &component(), WasmLimits::default())
        .expect("the fixture loads")
}

/// Spawns 10,000 WASM agents, wakes each with an ask, prints RSS per instance.
fn live_agents() {
    let tokio = tokio_runtime();
    let kind = kind();
    let figure = run_in_task(&tokio, async move {
        let rt = Runtime::new();
        let before = rss_bytes();
        let started = Instant::now();
        for i in 0..LIVE_AGENTS {
            rt.spawn(&format!("wasm-{i}"), AgentConfig::default(), kind.factory())
                .expect("spawn");
        }
        for i in 0..LIVE_AGENTS {
            rt.ask(
                &format!("wasm-{i}"),
                Envelope::ask(Bytes::from_static(b"x")),
                Duration::from_secs(30),
            )
            .await
            .expect("every agent answers");
        }
        let took = started.elapsed();
        let per = (rss_bytes().saturating_sub(before)) / LIVE_AGENTS as u64;
        let live = rt.agent_count();
        rt.shutdown(Duration::from_secs(30)).await;
        (live, per, took)
    });
    println!(
        "wasm/live: {} WASM agents live and answering; {:.1} KiB RSS per idle instance; spawn+first ask of all took {:?}",
        figure.0,
        figure.1 as f64 / 1024.0,
        figure.2
    );
}

fn bench(c: &mut Criterion) {
    live_agents();
    let kind = kind();
    c.bench_function("wasm/instantiate", |b| {
        b.iter(|| kind.probe().expect("probe"))
    });

    let tokio = tokio_runtime();
    let config = AgentConfig::default().max_batch(64).capacity(4096);
    let rt = {
        let _guard = tokio.enter();
        let rt = Runtime::new();
        rt.spawn("native", config, || Echo).expect("spawn");
        rt.spawn("wasm", config, kind.factory()).expect("spawn");
        rt
    };
    let payload = Bytes::from(vec![7u8; 64]);
    let mut group = c.benchmark_group("wasm/echo");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(ROUND as u64));
        for agent in ["native", "wasm"] {
            group.bench_with_input(BenchmarkId::new(agent, batch), &batch, |b, &batch| {
                b.iter_custom(|iters| {
                    let rt = rt.clone();
                    let payload = payload.clone();
                    run_in_task(&tokio, async move {
                        let start_handled = rt.agent_accounting(agent).expect("agent").handled;
                        let target = start_handled + iters * ROUND as u64;
                        let started = Instant::now();
                        for _ in 0..iters {
                            for _ in 0..ROUND / batch {
                                let msgs: Vec<Envelope> = (0..batch)
                                    .map(|_| Envelope::tell(payload.clone()))
                                    .collect();
                                rt.tell_batch(agent, msgs).await.expect("accepted");
                            }
                        }
                        while rt.agent_accounting(agent).expect("agent").handled < target {
                            tokio::task::yield_now().await;
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3));
    targets = bench
}
criterion_main!(benches);
