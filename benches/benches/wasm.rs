//! # What does running an agent as WASM cost over a native one?
//!
//! **Workload.** One echo agent per row on a 2-worker Tokio runtime, fed
//! 64-byte tells with `tell_batch` of 1, 16 and 64 messages (max batch 64,
//! so a batch reaches the agent as one call):
//! - `native`: `switchyard_examples::Echo` (replies to asks, nothing on tells);
//! - `wasm`: the same echo as a hand-written core module
//!   (`runtime/tests/fixtures/echo.wat`, wrapped by wit-component with the
//!   real WIT): per tell it stores the batch cursor and moves on, so the
//!   difference to `native` is the host's per-message cost (the issue's
//!   "WASM echo overhead");
//! - `sdk`: the Rust echo users get from the guest SDK
//!   (`agents/examples/wasm/echo`, built from source for wasm32-wasip2 into
//!   `target/tmp/wasm-guests`, as the runtime tests do; skipped with a note
//!   when the target is not installed): host cost plus the SDK's unpacking.
//!
//! After each echo row the bench prints the agent's messages per
//! `handle_batch` call and the ns per message spent inside `handle_batch`
//! (the handling alone, apart from the producer/agent scheduling that makes
//! the end-to-end rows swing between runs).
//!
//! Rows:
//! - `instantiate`: `WasmAgentKind::probe` of the `wasm` kind: a store, an
//!   instance from the `InstancePre` (pooling allocator) and `init`.
//! - `echo/{native,wasm,sdk}/{1,16,64}`: sending until the agent has handled
//!   every message (the producer polls the agent's `handled` counter).
//!
//! Before criterion runs, the bench spawns 10,000 `wasm` echo agents, asks
//! each once (so each holds a live instance) and prints the resident memory
//! per idle agent as the RSS slope between 2,000 and 10,000 live agents
//! (median of five reads at each end; fixed costs drop out), then the slope
//! of 8,000 more native echo agents in the same runtime (the runtime's own
//! share). Set `SWITCHYARD_BENCH_SKIP_LIVE=1` to skip that phase (about 5 s
//! and 2 GiB of address space) when only timing rows are wanted.
//!
//! **Timed section.** Envelope and batch building, routing, the agent's
//! handling; the agents are spawned outside it.
//!
//! **Decision rule / targets** (issue 4): instantiate ≤ 10 µs; WASM echo
//! per-message overhead over native ≤ 300 ns at batch 1 and ≤ 60 ns at
//! batch 64 (report the ratio at 1/16/64); ≤ 128 KiB per idle instance;
//! 10,000 live WASM agents.
//!
//! **Run.** `cargo bench -p switchyard-benches --bench wasm`, or only the
//! echo rows: `SWITCHYARD_BENCH_SKIP_LIVE=1 cargo bench -p
//! switchyard-benches --bench wasm -- echo/`

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard_benches::{rss_bytes, run_in_task, tokio_runtime};
use switchyard_examples::Echo;
use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits, authoring};
use switchyard_runtime::{Agent, AgentConfig, AgentError, Context, Envelope, Runtime};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

/// Live WASM agents spawned for the memory figure.
const LIVE_AGENTS: usize = 10_000;
/// Batch sizes compared.
const BATCHES: [usize; 3] = [1, 16, 64];
/// Messages per timed round (a multiple of every batch size).
const ROUND: usize = 1024;

/// The runtime tests' WASM helpers: `echo()` wraps the WAT echo fixture
/// into a component of the agent world.
#[path = "../../runtime/tests/wasm_common/mod.rs"]
mod wasm_common;

fn kind() -> Arc<WasmAgentKind> {
    WasmAgentKind::from_bytes("echo.wat", &wasm_common::echo(), WasmLimits::default())
        .expect("the fixture loads")
}

/// The SDK's Rust echo guest, built from source; `None` (with a note) when
/// the wasm32-wasip2 target is missing or the build fails.
fn sdk_kind() -> Option<Arc<WasmAgentKind>> {
    if !authoring::target_installed() {
        eprintln!(
            "wasm/echo/sdk: SKIPPED, the {} target is not installed",
            authoring::TARGET
        );
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents/examples/wasm/echo");
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-guests");
    let built = authoring::build(&dir, Some(&target))
        .map_err(|e| eprintln!("wasm/echo/sdk: SKIPPED, {e}"))
        .ok()?;
    Some(WasmAgentKind::load(built, WasmLimits::default()).expect("the SDK echo loads"))
}

/// Counts an agent's `handle_batch` calls and the nanoseconds spent in
/// them, so each row can print how many messages the agent took per
/// wake-up (the producer/agent interplay) and what handling alone cost per
/// message, apart from scheduling (two clock reads and two relaxed adds per
/// batch, the same for every row).
struct Calls<A> {
    inner: A,
    stats: Arc<CallStats>,
}

#[derive(Default)]
struct CallStats {
    calls: AtomicU64,
    nanos: AtomicU64,
}

impl<A: Agent> Agent for Calls<A> {
    async fn on_start(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        self.inner.on_start(ctx).await
    }

    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        self.handle_batch(ctx, std::slice::from_ref(msg)).await
    }

    async fn handle_batch(
        &mut self,
        ctx: &mut Context,
        batch: &[Envelope],
    ) -> Result<(), AgentError> {
        let started = Instant::now();
        let result = self.inner.handle_batch(ctx, batch).await;
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stats.calls.fetch_add(1, Ordering::Relaxed);
        self.stats.nanos.fetch_add(nanos, Ordering::Relaxed);
        result
    }
}

/// Spawns `name` from `factory`, wrapped in [`Calls`]; returns its stats.
fn spawn_counted<A: Agent>(
    rt: &Runtime,
    name: &str,
    config: AgentConfig,
    factory: impl Fn() -> A + Send + Sync + 'static,
) -> Arc<CallStats> {
    let stats = Arc::new(CallStats::default());
    let shared = Arc::clone(&stats);
    rt.spawn(name, config, move || Calls {
        inner: factory(),
        stats: Arc::clone(&shared),
    })
    .expect("spawn");
    stats
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
    if std::env::var_os("SWITCHYARD_BENCH_SKIP_LIVE").is_none() {
        live_agents();
    }
    let kind = kind();
    let sdk = sdk_kind();
    c.bench_function("wasm/instantiate", |b| {
        b.iter(|| kind.probe().expect("probe"))
    });

    let tokio = tokio_runtime();
    let config = AgentConfig::default().max_batch(64).capacity(4096);
    let (rt, calls) = {
        let _guard = tokio.enter();
        let rt = Runtime::new();
        let mut calls = HashMap::new();
        calls.insert("native", spawn_counted(&rt, "native", config, || Echo));
        calls.insert("wasm", spawn_counted(&rt, "wasm", config, kind.factory()));
        if let Some(sdk) = &sdk {
            calls.insert("sdk", spawn_counted(&rt, "sdk", config, sdk.factory()));
        }
        (rt, calls)
    };
    let agents: &[&'static str] = if sdk.is_some() {
        &["native", "wasm", "sdk"]
    } else {
        &["native", "wasm"]
    };
    let payload = Bytes::from(vec![7u8; 64]);
    let mut group = c.benchmark_group("wasm/echo");
    for batch in BATCHES {
        group.throughput(Throughput::Elements(ROUND as u64));
        for &agent in agents {
            let stats = &calls[agent];
            let before = (
                stats.calls.load(Ordering::Relaxed),
                stats.nanos.load(Ordering::Relaxed),
                rt.agent_accounting(agent).expect("agent").handled,
            );
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
            let calls = stats.calls.load(Ordering::Relaxed) - before.0;
            let nanos = stats.nanos.load(Ordering::Relaxed) - before.1;
            let handled = rt.agent_accounting(agent).expect("agent").handled - before.2;
            if calls > 0 && handled > 0 {
                println!(
                    "wasm/echo/{agent}/{batch}: {:.1} messages per handle_batch call, \
                     {:.1} ns per message inside handle_batch",
                    handled as f64 / calls as f64,
                    nanos as f64 / handled as f64,
                );
            }
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
