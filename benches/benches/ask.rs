//! # How long does one ask round trip take?
//!
//! **Workload.** One producer task on a Tokio runtime asks one
//! [`Echo`] agent (default [`AgentConfig`]: capacity 1,024, overflow `Block`)
//! 200,000 times in a row, each with a 16-byte static payload, awaiting each
//! reply before the next ask (closed loop: one ask in flight). 10,000 asks
//! before that warm the agent, the allocator and the caches and are not recorded.
//! It runs three times: on 2 workers (the benches' default), on 1 worker (the
//! set-up actix always runs in), and on 2 workers whose idle worker spins
//! 50 µs before it parks ([`switchyard_runtime::park`], opt-in). With two
//! workers, Tokio unparks the idle worker every few hops (it limits how many
//! times in a row a woken task may skip the run queue), and that sets the
//! p99; the spin keeps that worker awake (decision 0022).
//!
//! **Timed section.** Per ask: `Instant::now()` before `rt.ask(..)` to the
//! moment its reply is in hand (building the envelope, routing by name, the
//! reply slot, the agent's wake-up, its handler, the reply and the asker's
//! wake-up). Each round trip is recorded in an HdrHistogram (ns, 3 significant
//! digits); the table prints mean, p50, p90, p99, p99.9 and max. Clock reads add
//! about 20-40 ns to each sample.
//!
//! **Decision rule / targets** (issue 2): p50 ≤ 0.5 µs, p99 ≤ 2 µs.
//!
//! **Run.** `cargo bench -p switchyard-benches --bench ask` (a few seconds).

use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard_benches::{Percentiles, WORKERS, run_in_task, tokio_runtime_spinning};
use switchyard_examples::Echo;
use switchyard_runtime::park::ASK_PARK_SPIN;
use switchyard_runtime::{AgentConfig, Envelope, Runtime};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

/// The 16-byte payload of every ask.
static PAYLOAD: &[u8; 16] = b"switchyard-bench";

/// Recorded asks.
const ASKS: usize = 200_000;

/// Unrecorded asks before the recorded ones.
const WARM_UP: usize = 10_000;

/// Generous: an ask that takes this long is a failure, not a sample.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

fn main() {
    for (workers, spin) in [
        (WORKERS, Duration::ZERO),
        (1, Duration::ZERO),
        (WORKERS, ASK_PARK_SPIN),
    ] {
        let (hist, total) = asks(workers, spin);
        println!(
            "\nask: {ASKS} sequential asks to one Echo agent ({workers} Tokio worker{}{}, producer in a task)",
            if workers == 1 { "" } else { "s" },
            if spin.is_zero() {
                String::new()
            } else {
                format!(", idle workers spin {} µs before parking", spin.as_micros())
            }
        );
        Percentiles::print_header();
        hist.print_row("rt.ask(\"echo\", 16 B) round trip");
        println!(
            "throughput: {:.0} asks/s (one in flight); targets: p50 <= 0.5 µs, p99 <= 2 µs",
            ASKS as f64 / total.as_secs_f64()
        );
    }
}

/// The recorded round trips on a Tokio runtime of `workers` workers whose
/// idle workers spin `spin` before they park, and the time all of them took.
fn asks(workers: usize, spin: Duration) -> (Percentiles, Duration) {
    run_in_task(&tokio_runtime_spinning(workers, spin), async {
        let rt = Runtime::new();
        rt.spawn("echo", AgentConfig::default(), || Echo)
            .expect("a valid, unique name");
        for _ in 0..WARM_UP {
            rt.ask(
                "echo",
                Envelope::ask(Bytes::from_static(PAYLOAD)),
                ASK_TIMEOUT,
            )
            .await
            .expect("echo answers");
        }
        let mut hist = Percentiles::new();
        let started = Instant::now();
        for _ in 0..ASKS {
            let t = Instant::now();
            let reply = rt
                .ask(
                    "echo",
                    Envelope::ask(Bytes::from_static(PAYLOAD)),
                    ASK_TIMEOUT,
                )
                .await;
            hist.record(t.elapsed());
            assert_eq!(reply.expect("echo answers").payload().len(), PAYLOAD.len());
        }
        let total = started.elapsed();
        let report = rt.shutdown(Duration::from_secs(5)).await;
        assert!(report.accounting.balanced(), "{}", report.accounting);
        (hist, total)
    })
}
