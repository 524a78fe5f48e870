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
//! idle agent as the RSS slope between 2,000 and 10,000 live agents (median
//! of five reads at each end; fixed costs drop out), then the slope of 8,000
//! more native echo agents in the same runtime (the runtime's own share).
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

/// Resident memory now: the median of five reads 20 ms apart (one read
/// catches allocator and kernel noise: a free slot being reset, a worker's
/// stack growing).
async fn settled_rss() -> u64 {
    let mut reads = Vec::with_capacity(5);
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        reads.push(rss_bytes());
    }
    reads.sort_unstable();
    reads[2]
}

/// Resident bytes of the mappings of at least 1 GiB: the pooling
/// allocator's reservations (linear memories, tables, instance slots), so
/// what the WASM instances themselves commit, apart from the heap.
fn pool_rss_bytes() -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut total = 0;
    let mut big = false;
    for line in smaps.lines() {
        if let Some(kib) = line.strip_prefix("Rss:") {
            if big {
                let kib: u64 = kib
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .unwrap_or(0);
                total += kib * 1024;
            }
        } else if let Some((range, _)) = line.split_once(' ')
            && let Some((lo, hi)) = range.split_once('-')
            && let (Ok(lo), Ok(hi)) = (u64::from_str_radix(lo, 16), u64::from_str_radix(hi, 16))
        {
            big = hi - lo >= 1 << 30;
        }
    }
    total
}

/// Spawns agents `lo..hi` named `{prefix}-{i}` from `factory` and wakes
/// each with an ask (so a WASM agent holds a live instance).
async fn spawn_awake<A, F>(rt: &Runtime, prefix: &str, lo: usize, hi: usize, factory: Arc<F>)
where
    A: switchyard_runtime::Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    for i in lo..hi {
        let factory = Arc::clone(&factory);
        rt.spawn(
            &format!("{prefix}-{i}"),
            AgentConfig::default(),
            move || factory(),
        )
        .expect("spawn");
    }
    for i in lo..hi {
        rt.ask(
            &format!("{prefix}-{i}"),
            Envelope::ask(Bytes::from_static(b"x")),
            Duration::from_secs(30),
        )
        .await
        .expect("every agent answers");
    }
}

/// Prints the resident memory per idle WASM echo agent and, for scale, per
/// idle native echo agent (the runtime's own per-agent cost).
///
/// Method: RSS (median of five reads) after 2,000 WASM agents, after 10,000
/// WASM agents, then after 8,000 more native ones, all live in one runtime
/// (nothing freed in between, so no allocation reuses freed memory). The
/// slopes exclude fixed costs: the engine, the pool's bookkeeping, the
/// allocator's warm-up.
fn live_agents() {
    let tokio = tokio_runtime();
    let kind = kind();
    let figure = run_in_task(&tokio, async move {
        let rt = Runtime::new();
        let wasm = Arc::new(kind.factory());
        let started = Instant::now();
        let first = LIVE_AGENTS / 5;
        let more = LIVE_AGENTS - first;
        spawn_awake(&rt, "wasm", 0, first, Arc::clone(&wasm)).await;
        let mark0 = settled_rss().await;
        let pool0 = pool_rss_bytes();
        spawn_awake(&rt, "wasm", first, LIVE_AGENTS, wasm).await;
        let took = started.elapsed();
        let mark1 = settled_rss().await;
        let pool1 = pool_rss_bytes();
        let live = rt.agent_count();
        spawn_awake(&rt, "native", 0, more, Arc::new(|| Echo)).await;
        let mark2 = settled_rss().await;
        rt.shutdown(Duration::from_secs(30)).await;
        let slope = |a: u64, b: u64| b.saturating_sub(a) as f64 / more as f64 / 1024.0;
        (
            live,
            took,
            slope(mark0, mark1),
            slope(mark1, mark2),
            slope(pool0, pool1),
        )
    });
    println!(
        "wasm/live: {} WASM agents live and answering (spawn+first ask of all took {:?}); \
         RSS per idle agent (slope over 8,000 agents, median of 5 reads): WASM {:.1} KiB, native {:.1} KiB; \
         of which the instance's pooled slots (memory, tables, instance state) {:.1} KiB",
        figure.0, figure.1, figure.2, figure.3, figure.4,
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
