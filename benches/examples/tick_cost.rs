//! How long does one telemetry tick take when many agents are busy?
//!
//! The ticker thread rolls every recording agent's interval histograms into
//! its cumulative histograms and SLO windows once a second, on a thread that
//! shares the machine's two cores with the workers. This sends `PER_AGENT`
//! tells to each of `AGENTS` sink agents (round-robin, by name, so their
//! latencies spread as under real load), waits until all are handled, then
//! times `Runtime::roll_windows`, which is the ticker's own work. The
//! runtime's ticker period is an hour, so only the timed calls roll.
//!
//! ```sh
//! cargo build --release -p switchyard-benches --example tick_cost
//! target/release/examples/tick_cost 10000 200 5
//! ```
//!
//! Arguments: `AGENTS PER_AGENT ROUNDS` (defaults 10,000, 200 and 5). It
//! prints each round's tick in ms and per agent in µs.

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_benches::{Done, Sink, names, run_in_task, tokio_runtime};
use switchyard_runtime::{AgentConfig, Envelope, Runtime, TelemetryConfig};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

fn main() {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let per_agent: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let tokio = tokio_runtime();
    let names = names("sink", agents);
    run_in_task(&tokio, async move {
        let telemetry = TelemetryConfig {
            tick: Duration::from_secs(3600),
            ..TelemetryConfig::default()
        };
        let rt = Runtime::builder().telemetry(telemetry).build();
        let done = Done::new();
        for name in names.iter() {
            let d = done.clone();
            rt.spawn(name, AgentConfig::default(), move || Sink::new(d.clone()))
                .expect("valid names");
        }
        let mut ticks = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let target = done.expect(per_agent * agents as u64);
            for _ in 0..per_agent {
                for name in names.iter() {
                    rt.tell(
                        name,
                        Envelope::tell(Bytes::from_static(b"switchyard-bench")),
                    )
                    .await
                    .expect("sinks stay up");
                }
            }
            done.wait(target).await;
            let rt2 = rt.clone();
            let started = Instant::now();
            // The ticker's work, on a blocking thread as the ticker has its own.
            tokio::task::spawn_blocking(move || rt2.roll_windows())
                .await
                .expect("the tick does not panic");
            ticks.push(started.elapsed());
        }
        for (i, t) in ticks.iter().enumerate() {
            println!(
                "round {i}: tick {:.2} ms, {:.2} µs per agent",
                t.as_secs_f64() * 1e3,
                t.as_secs_f64() * 1e6 / agents as f64
            );
        }
        rt.shutdown(Duration::from_secs(5)).await;
    });
}
