//! # What do latency histograms and metrics cost on routed tells?
//!
//! **Workload.** One producer task on a 2-worker Tokio runtime sends 16-byte
//! tells round-robin by name over 100 [`Sink`] agents (default config), as in
//! `tell.rs`, on two runtimes side by side in one run:
//! - `on`: latency histograms on (an enqueue stamp per message, two clock
//!   reads and one per-agent lock per batch), the Prometheus recorder
//!   installed, and the telemetry ticker publishing every second;
//! - `off`: `latency(false)` and a ticker period of one hour, so nothing is
//!   stamped, recorded or published during the run.
//!
//! **Timed section.** From the first send until every agent has handled its
//! share (as in `tell.rs`).
//!
//! **Decision rule** (issue 3): `on` must be within 5% of `off`. Read the two
//! `thrpt` lines; the ratio is recorded in `docs/benchmarks.md`.
//!
//! **Run.** `cargo bench -p switchyard-benches --bench telemetry`

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use switchyard_benches::{Done, Sink, names, run_in_task, tokio_runtime};
use switchyard_runtime::{AgentConfig, Envelope, Runtime, TelemetryConfig};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

/// The 16-byte payload of every message.
static PAYLOAD: &[u8; 16] = b"switchyard-bench";

/// Agents fed round-robin.
const AGENTS: usize = 100;

fn fixture(tokio: &tokio::runtime::Runtime, on: bool) -> (Runtime, Arc<[String]>, Arc<Done>) {
    let telemetry = if on {
        TelemetryConfig::default()
    } else {
        TelemetryConfig {
            latency: false,
            tick: Duration::from_secs(3600),
            ..TelemetryConfig::default()
        }
    };
    let done = Done::new();
    let names = names("sink", AGENTS);
    let rt = {
        let _guard = tokio.enter();
        Runtime::builder().telemetry(telemetry).build()
    };
    for name in names.iter() {
        let d = done.clone();
        rt.spawn(name, AgentConfig::default(), move || Sink::new(d.clone()))
            .expect("fresh names");
    }
    (rt, names, done)
}

fn bench(c: &mut Criterion) {
    let _ = switchyard_runtime::telemetry::prometheus();
    let tokio = tokio_runtime();
    let mut group = c.benchmark_group("telemetry");
    group.throughput(Throughput::Elements(1));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for on in [true, false] {
        let (rt, names, done) = fixture(&tokio, on);
        group.bench_function(if on { "on/100" } else { "off/100" }, |b| {
            b.iter_custom(|iters| {
                let (rt, names, done) = (rt.clone(), names.clone(), done.clone());
                run_in_task(&tokio, async move {
                    let target = done.expect(iters);
                    let started = Instant::now();
                    for i in 0..iters as usize {
                        let env = Envelope::tell(Bytes::from_static(PAYLOAD));
                        rt.tell(&names[i % names.len()], env)
                            .await
                            .expect("agents are running");
                    }
                    done.wait(target).await;
                    started.elapsed()
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
