//! Service throughput and latency through the pooled batching client.
//!
//! Question: does the TCP path (client batching + wire codec + server +
//! runtime) reach 2 M tells/s, and what is ask latency through it?
//! Workload: an in-process service (embedded config, ports 0) with a counter
//! agent (capacity 65536) and echo; client and server share this machine.
//! - tells: `TASKS` tasks each call `Client::tell` (one message per call, 8-byte
//!   payload) `TELLS / TASKS` times; timed until the counter has *handled* all.
//! - asks: open loop at a fixed rate (half the measured closed-loop maximum),
//!   latency from the intended send time (no coordinated omission), HdrHistogram.
//!
//! Run: `cargo run --release -p switchyard-service --example service_load`

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use switchyard_client::{Client, ClientConfig, Message};
use switchyard_service::Server;
use switchyard_service::config::Config;

/// The counter adds this little-endian 1.
const ONE: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 0];
const TELLS: u64 = 4_000_000;
const TASKS: u64 = 4;
const CLOSED_LOOP_ASKS: u64 = 200_000;
const ASK_CONCURRENCY: u64 = 64;
const OPEN_LOOP_SECS: u64 = 3;

const CONFIG: &str = r#"
listen = { tcp = "127.0.0.1:0", http = "" }
[[agents]]
name = "counter"
kind = "native"
builtin = "counter"
capacity = 65536
max_batch = 256
[[agents]]
name = "echo"
kind = "native"
builtin = "echo"
"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::bind(Config::parse(CONFIG, "service_load")?.validate()?).await?;
    let addr = server.tcp_addr().ok_or("no tcp listener")?;
    let rt = server.runtime().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(server.run(async move {
        let _ = stop_rx.await;
    }));
    let client = Client::connect(ClientConfig::new(addr.to_string()).connections(2)).await?;

    // Tell throughput.
    let started = Instant::now();
    let senders: Vec<_> = (0..TASKS)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..TELLS / TASKS {
                    c.tell("counter", Message::new(ONE)).await?;
                }
                Ok::<_, switchyard_client::ClientError>(())
            })
        })
        .collect();
    for s in senders {
        s.await??;
    }
    while rt.agent_accounting("counter").map_or(0, |a| a.handled) < TELLS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "tells: {TELLS} in {secs:.2}s = {:.2} M msg/s ({} frames)",
        TELLS as f64 / secs / 1e6,
        client
            .stats()
            .frames_sent
            .load(std::sync::atomic::Ordering::Relaxed)
    );

    // Closed-loop ask maximum.
    let started = Instant::now();
    let askers: Vec<_> = (0..ASK_CONCURRENCY)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..CLOSED_LOOP_ASKS / ASK_CONCURRENCY {
                    c.ask("echo", "x").await?;
                }
                Ok::<_, switchyard_client::ClientError>(())
            })
        })
        .collect();
    for a in askers {
        a.await??;
    }
    let max_rate = CLOSED_LOOP_ASKS as f64 / started.elapsed().as_secs_f64();
    println!(
        "asks: closed-loop maximum {:.0} asks/s at concurrency {ASK_CONCURRENCY}",
        max_rate
    );

    // Open loop at half the maximum, latency from the intended send time.
    let rate = max_rate / 2.0;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let hist = Arc::new(std::sync::Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let begin = tokio::time::Instant::now();
    let total = (rate * OPEN_LOOP_SECS as f64) as u64;
    let mut tasks = Vec::with_capacity(1024);
    for i in 0..total {
        let intended = begin + interval.mul_f64(i as f64);
        tokio::time::sleep_until(intended).await;
        let (c, h) = (client.clone(), hist.clone());
        tasks.push(tokio::spawn(async move {
            let ok = c.ask("echo", "x").await.is_ok();
            let us = intended.elapsed().as_micros() as u64;
            if ok {
                let _ = h.lock().map(|mut h| h.record(us.max(1)));
            }
        }));
        if tasks.len() >= 1024 {
            for t in tasks.drain(..) {
                let _ = t.await;
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let summary = {
        let h = hist.lock().map_err(|_| "poisoned")?;
        format!(
            "asks: open loop {:.0}/s for {OPEN_LOOP_SECS}s: p50 {} us, p99 {} us, p99.9 {} us, max {} us ({} ok of {total})",
            rate,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            h.len()
        )
    };
    println!("{summary}");
    client.close().await;
    let _ = stop_tx.send(());
    let report = service.await?;
    println!("{report}");
    Ok(())
}
