//! # How many routed tells per second does one producer get through?
//!
//! **Workload.** One producer task on a 2-worker Tokio runtime sends 16-byte
//! tells round-robin *by name* over N [`Sink`] agents (N = 1, 100, 10,000),
//! default [`AgentConfig`] (capacity 1,024, overflow `Block`: backpressure on,
//! max batch 64). Variants:
//! - `by_name/static`: `rt.tell(name, Envelope::tell(Bytes::from_static(..)))`;
//!   cloning a static `Bytes` touches no reference count.
//! - `by_name/shared`: the payload is one heap `Bytes` cloned per message (an
//!   atomic increment on send, a decrement when the agent drops it).
//! - `by_name/inline`: each message's 16 bytes copied into a [`Payload`],
//!   which keeps them inline (no allocation); what a sender of fresh small
//!   data pays.
//! - `resolved/static`: `rt.resolve(name)` once outside the timed section, then
//!   `addr.tell(..)` (skips the registry lookup).
//! - `batch64/static`: `rt.tell_batch(name, vec_of_64)` rotating over 100
//!   agents; one criterion iteration is one call of 64 messages.
//!
//! **Timed section.** From the first send until every agent has *handled* its
//! share: each agent adds its batch size to a shared counter and the producer
//! awaits that count ([`Done`]). Building each envelope (and each batch `Vec`)
//! is inside the timed section, since a real sender pays for it; names,
//! payloads, resolved addresses and agents are built outside it. Agents live
//! across criterion samples, so spawning is not timed either.
//!
//! **Decision rule / targets** (issue 2): ≥ 10 M msg/s to 100 agents
//! unbatched, ≥ 50 M msg/s with `tell_batch` of 64, ≥ 8 M msg/s to 10,000
//! agents. Read the criterion `thrpt` line (elements = messages).
//!
//! **Run.** `cargo bench -p switchyard-benches --bench tell`
//! (about a minute; figures go to `docs/benchmarks.md`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use switchyard_benches::{Done, Sink, names, run_in_task, tokio_runtime};
use switchyard_runtime::{Addr, AgentConfig, Envelope, Payload, Runtime};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

/// The 16-byte payload of every message.
static PAYLOAD: &[u8; 16] = b"switchyard-bench";

/// Messages per `tell_batch` call.
const BATCH: usize = 64;

/// Agents spawned once per N and fed by every variant.
struct Fixture {
    tokio: tokio::runtime::Runtime,
    rt: Runtime,
    names: Arc<[String]>,
    addrs: Arc<[Addr]>,
    done: Arc<Done>,
    /// Where the next round starts, so every agent gets its share over time.
    cursor: usize,
}

impl Fixture {
    fn new(n: usize) -> Fixture {
        let tokio = tokio_runtime();
        let done = Done::new();
        let names = names("sink", n);
        let (rt, addrs) = {
            let (done, names) = (done.clone(), names.clone());
            run_in_task(&tokio, async move {
                let rt = Runtime::new();
                for name in names.iter() {
                    let d = done.clone();
                    rt.spawn(name, AgentConfig::default(), move || Sink::new(d.clone()))
                        .expect("bench agent names are valid and unique");
                }
                let addrs: Arc<[Addr]> = names
                    .iter()
                    .map(|n| rt.resolve(n).expect("just spawned"))
                    .collect();
                (rt, addrs)
            })
        };
        Fixture {
            tokio,
            rt,
            names,
            addrs,
            done,
            cursor: 0,
        }
    }

    /// Runs one timed round of `iters` sends, each built by `send`.
    fn round<F, Fut>(&mut self, iters: u64, per_iter: u64, send: F) -> Duration
    where
        F: Fn(Runtime, Arc<[String]>, Arc<[Addr]>, u64, usize) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (rt, names, addrs, done) = (
            self.rt.clone(),
            self.names.clone(),
            self.addrs.clone(),
            self.done.clone(),
        );
        let start = self.cursor;
        self.cursor = (self.cursor + iters as usize) % self.names.len();
        run_in_task(&self.tokio, async move {
            let target = done.expect(iters * per_iter);
            let t = Instant::now();
            send(rt, names, addrs, iters, start).await;
            done.wait(target).await;
            t.elapsed()
        })
    }

    /// One timed round of `iters` tells by name, round robin over the agents,
    /// each message's payload made by `payload` inside the timed section.
    fn by_name<P>(&mut self, iters: u64, payload: P) -> Duration
    where
        P: Fn() -> Payload + Clone + Send + 'static,
    {
        self.round(iters, 1, move |rt, names, _, iters, start| {
            let payload = payload.clone();
            async move {
                let len = names.len();
                for i in 0..iters as usize {
                    rt.tell(&names[(start + i) % len], Envelope::tell(payload()))
                        .await
                        .expect("sink agents stay up");
                }
            }
        })
    }

    fn shutdown(self) {
        let rt = self.rt.clone();
        let report = run_in_task(&self.tokio, async move {
            rt.shutdown(Duration::from_secs(5)).await
        });
        assert!(
            report.accounting.balanced(),
            "every accepted message is accounted for: {}",
            report.accounting
        );
    }
}

fn tell(c: &mut Criterion) {
    println!(
        "size_of::<Envelope>() = {} bytes (moved by value through the send path)",
        size_of::<Envelope>()
    );
    let mut group = c.benchmark_group("tell");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for n in [1usize, 100, 10_000] {
        let mut fx = Fixture::new(n);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("by_name/static", n), |b| {
            b.iter_custom(|iters| fx.by_name(iters, || Bytes::from_static(PAYLOAD).into()));
        });
        group.bench_function(BenchmarkId::new("by_name/shared", n), |b| {
            b.iter_custom(|iters| {
                let payload = Bytes::copy_from_slice(PAYLOAD);
                fx.by_name(iters, move || payload.clone().into())
            });
        });
        group.bench_function(BenchmarkId::new("by_name/inline", n), |b| {
            b.iter_custom(|iters| fx.by_name(iters, || Payload::copy_from_slice(PAYLOAD)));
        });
        group.bench_function(BenchmarkId::new("resolved/static", n), |b| {
            b.iter_custom(|iters| {
                fx.round(iters, 1, |_, _, addrs, iters, start| async move {
                    let len = addrs.len();
                    for i in 0..iters as usize {
                        let env = Envelope::tell(Bytes::from_static(PAYLOAD));
                        addrs[(start + i) % len]
                            .tell(env)
                            .await
                            .expect("sink agents stay up");
                    }
                })
            });
        });
        if n == 100 {
            group.throughput(Throughput::Elements(BATCH as u64));
            group.bench_function(BenchmarkId::new("batch64/static", n), |b| {
                b.iter_custom(|iters| {
                    fx.round(
                        iters,
                        BATCH as u64,
                        |rt, names, _, iters, start| async move {
                            let len = names.len();
                            for i in 0..iters as usize {
                                let batch: Vec<Envelope> = (0..BATCH)
                                    .map(|_| Envelope::tell(Bytes::from_static(PAYLOAD)))
                                    .collect();
                                rt.tell_batch(&names[(start + i) % len], batch)
                                    .await
                                    .expect("sink agents stay up");
                            }
                        },
                    )
                });
            });
        }
        fx.shutdown();
    }
    group.finish();
}

criterion_group!(benches, tell);
criterion_main!(benches);
