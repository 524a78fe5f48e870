//! The machine's own floor for open-loop latency: an open loop whose
//! operations do nothing.
//!
//! One busy thread per CPU schedules an operation every `INTERVAL_US`
//! microseconds and "starts" each one as soon as it sees it due, measuring
//! the lateness from the intended start exactly as `service_load` measures
//! asks. With nothing else to do, every microsecond of lateness is time the
//! thread did not run: the host took the vCPU away, or the kernel ran
//! something else. No open-loop latency percentile measured on the same
//! machine can be lower than this one; `docs/benchmarks.md` compares the
//! service's ask p99 against it.
//!
//! ```sh
//! cargo build --release -p switchyard-benches --example idle_open_loop
//! target/release/examples/idle_open_loop [SECS [INTERVAL_US]]   # default 10 s, 5 µs
//! ```
//!
//! Prints a row per CPU (count, mean, p50, p90, p99, p99.9 and max of the
//! lateness, as the benches' other tables), and the share of operations
//! started 200 µs or more late (issue 5's ask
//! p99 bound): at a high rate one stall of the vCPU delays every operation
//! due during it, so this share is what a stall costs an open loop.

use std::time::{Duration, Instant};

use switchyard_benches::Percentiles;

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

/// Issue 5's bound on ask p99: the share of no-ops at least this late is printed.
const LATE: Duration = Duration::from_micros(200);

fn main() {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10.0);
    let interval_us: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            std::thread::spawn(move || (cpu, lateness(secs, Duration::from_micros(interval_us))))
        })
        .collect();
    Percentiles::print_header();
    for t in threads {
        let (cpu, (late, over)) = t.join().expect("a measuring thread panicked");
        late.print_row(&format!(
            "thread {cpu}: a no-op every {interval_us} us, lateness"
        ));
        println!(
            "thread {cpu}: {:.2} % of no-ops at least {} us late",
            100.0 * over as f64 / late.len().max(1) as f64,
            LATE.as_micros()
        );
    }
}

/// Lateness of each scheduled no-op, and how many were at least [`LATE`].
fn lateness(secs: f64, interval: Duration) -> (Percentiles, u64) {
    let total = (secs / interval.as_secs_f64()).max(1.0) as u64;
    let (mut late, mut over) = (Percentiles::new(), 0);
    let begin = Instant::now();
    let due = |i: u64| begin + interval.mul_f64(i as f64);
    let mut i = 0;
    while i < total {
        let now = Instant::now();
        while i < total && due(i) <= now {
            let d = now.duration_since(due(i));
            late.record(d);
            over += u64::from(d >= LATE);
            i += 1;
        }
    }
    (late, over)
}
