//! The machine's floor for a message between cores: how long one cache
//! line takes to move from one core to the other.
//!
//! Two threads bounce one 64-byte-aligned counter: each waits until the
//! other has written it, then writes it back. Every hop is one transfer of
//! the line, so the round's time over the hops is the one-way transfer
//! latency. A tell whose agent runs on the other core cannot be
//! cheaper than the lines it must take from there: the mailbox's lock word,
//! the queue slot the agent read last, and the agent task's header that the
//! wake writes (`docs/decisions/0020-one-line-mailbox.md`).
//!
//! ```sh
//! cargo build --release -p switchyard-benches --example line_transfer
//! target/release/examples/line_transfer [ROUNDS [HOPS]]   # default 5 rounds of 2,000,000 hops
//! ```
//!
//! Prints the one-way latency of each round, then the median. The threads
//! are left to the scheduler, as Tokio's workers are; on a 2-vCPU machine
//! they run on the two CPUs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One cache line, so the counter shares it with nothing else.
#[repr(align(64))]
struct Line(AtomicU64);

/// Bounces the line `hops` times between two threads; returns ns per hop.
fn round(hops: u64) -> f64 {
    let line = Arc::new(Line(AtomicU64::new(0)));
    let other = Arc::clone(&line);
    let pairs = hops / 2;
    let echo = std::thread::spawn(move || {
        for i in 0..pairs {
            while other.0.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            other.0.store(2 * i + 2, Ordering::Release);
        }
    });
    let started = Instant::now();
    for i in 0..pairs {
        line.0.store(2 * i + 1, Ordering::Release);
        while line.0.load(Ordering::Acquire) != 2 * i + 2 {
            std::hint::spin_loop();
        }
    }
    let elapsed = started.elapsed();
    echo.join().expect("the echo thread only spins and stores");
    elapsed.as_nanos() as f64 / (2 * pairs) as f64
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let hops: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let mut each: Vec<f64> = (0..rounds.max(1)).map(|_| round(hops.max(2))).collect();
    for (i, ns) in each.iter().enumerate() {
        println!("round {}: {ns:.1} ns per one-way transfer", i + 1);
    }
    each.sort_by(f64::total_cmp);
    println!("median: {:.1} ns", each[each.len() / 2]);
}
