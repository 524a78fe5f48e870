//! Tokio workers that spin a little before they park.
//!
//! An ask is a ping-pong between two tasks, and on a multi-thread Tokio
//! runtime each hop goes through the worker's LIFO slot. After three such
//! polls in a row Tokio sends the woken task to the run queue and unparks an
//! idle worker to help: an `eventfd` write and a cross-CPU wake-up. On the
//! 2-core development VM that costs 5-8 µs, about one ask in 21, and it set
//! the ask p99 at 6.5-9 µs against a p50 of 0.42 µs (decision 0012).
//!
//! A worker that spins before it parks still counts as awake, so Tokio
//! notifies no one while it spins. The worker that holds the queued task runs
//! it itself a moment later, as it would have anyway. With a 50 µs spin the
//! ask p99 on 2 workers read 0.93-1.17 µs (decision 0022).
//!
//! The cost is CPU. Each time a worker runs out of work, it burns up to the
//! spin before it sleeps, and work that arrives for it meanwhile waits at
//! most that long. A TCP service parks its workers between reads all the
//! time. There the spin took 15 % off the closed-loop ask rate of
//! `service_load`. So it is off unless asked for: `runtime.park_spin_us` for
//! `switchyard serve`, this function for a program that builds its own
//! Tokio runtime for in-process asks.
//!
//! Tokio offers no hook inside its idle loop, so the spin is the
//! `on_thread_park` callback, which runs before the worker marks itself
//! parked.

use std::time::{Duration, Instant};

/// The spin that took the 2-worker ask p99 under 2 µs on the development
/// machine (decision 0022). Not a default: see the module docs.
pub const ASK_PARK_SPIN: Duration = Duration::from_micros(50);

/// The longest spin accepted: beyond it a spinning worker is a busy one.
pub const MAX_PARK_SPIN: Duration = Duration::from_millis(10);

/// Makes the workers of `builder` spin up to `spin` (at most
/// [`MAX_PARK_SPIN`]) each time they run out of work, before they park.
/// [`Duration::ZERO`] leaves Tokio's behaviour as it is: park at once.
///
/// This sets the builder's `on_thread_park` callback, replacing one set
/// before.
///
/// ```
/// let mut builder = tokio::runtime::Builder::new_multi_thread();
/// switchyard_runtime::park::spin_before_park(&mut builder, switchyard_runtime::park::ASK_PARK_SPIN);
/// let tokio = builder.enable_all().build().unwrap();
/// # drop(tokio);
/// ```
pub fn spin_before_park(
    builder: &mut tokio::runtime::Builder,
    spin: Duration,
) -> &mut tokio::runtime::Builder {
    let spin = spin.min(MAX_PARK_SPIN);
    if spin.is_zero() {
        return builder;
    }
    builder.on_thread_park(move || {
        let start = Instant::now();
        while start.elapsed() < spin {
            std::hint::spin_loop();
        }
    })
}
