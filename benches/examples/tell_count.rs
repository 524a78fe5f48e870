//! Sends `N` routed tells round-robin over `AGENTS` sink agents and waits until
//! all are handled: a fixed workload for instruction counting, which is
//! repeatable on a busy machine where wall-clock benches are not.
//!
//! ```sh
//! cargo build --release -p switchyard-benches --example tell_count
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     target/release/examples/tell_count 100 200000
//! callgrind_annotate /tmp/cg.out | head -40
//! ```
//! Run it with `0` messages too and subtract, to get instructions per message.
//!
//! Arguments: `AGENTS MESSAGES [BATCH [WORKERS [PAYLOAD]]]` (defaults 100,
//! 200,000, 1, the benches' 2 workers and `static`). `PAYLOAD` is how each
//! message's 16 bytes are carried: `static` (`Bytes::from_static`), `inline`
//! (copied into a [`Payload`], no allocation) or `heap` (a fresh `Bytes`, one
//! allocation that the agent frees). It prints the send-to-handled rate on
//! stderr, with the share of that time the producer took to send everything
//! (near 100 %: the producer is the bottleneck, not the agents). For A/B
//! runs on a noisy machine, one worker on one CPU:
//! `taskset -c 1 target/release/examples/tell_count 100 4000000 1 1`.

use bytes::Bytes;
use switchyard_benches::{Done, Sink, WORKERS, names, run_in_task, tokio_runtime_with};
use switchyard_runtime::{AgentConfig, Envelope, Payload, Runtime};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

/// Every message's 16 bytes.
const PAYLOAD: &[u8; 16] = b"switchyard-bench";

fn main() {
    let mut args = std::env::args().skip(1);
    let agents: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(200_000);
    let batch: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    // One worker pinned with `taskset` gives a CPU cost per message that
    // does not depend on how two workers happen to share the agents.
    let workers: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(WORKERS);
    let payload: fn() -> Payload = match args.next().as_deref() {
        None | Some("static") => || Bytes::from_static(PAYLOAD).into(),
        Some("inline") => || Payload::copy_from_slice(PAYLOAD),
        Some("heap") => || Bytes::copy_from_slice(PAYLOAD).into(),
        Some(other) => panic!("PAYLOAD {other:?}: expected static, inline or heap"),
    };
    let tokio = tokio_runtime_with(workers);
    let done = Done::new();
    let names = names("sink", agents);
    let handled = run_in_task(&tokio, async move {
        let rt = Runtime::new();
        for name in names.iter() {
            let d = done.clone();
            rt.spawn(name, AgentConfig::default(), move || Sink::new(d.clone()))
                .expect("valid names");
        }
        let target = done.expect(n);
        let started = std::time::Instant::now();
        let mut sent = 0u64;
        let mut i = 0usize;
        while sent < n {
            let name = &names[i % agents];
            i += 1;
            if batch <= 1 {
                rt.tell(name, Envelope::tell(payload()))
                    .await
                    .expect("sinks stay up");
                sent += 1;
            } else {
                let k = batch.min((n - sent) as usize);
                let msgs = (0..k).map(|_| Envelope::tell(payload())).collect();
                rt.tell_batch(name, msgs).await.expect("sinks stay up");
                sent += k as u64;
            }
        }
        let sent_in = started.elapsed().as_secs_f64();
        done.wait(target).await;
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{:.2} M msg/s (the producer sent all in {:.0} % of the time)",
            n as f64 / secs / 1e6,
            100.0 * sent_in / secs
        );
        rt.shutdown(std::time::Duration::from_secs(5)).await;
        done.handled()
    });
    println!("handled {handled}");
}
