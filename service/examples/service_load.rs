//! Service throughput and latency through the pooled batching client.
//!
//! Question: does the TCP path (client batching + wire codec + server +
//! runtime) reach 2 M tells/s, and is ask p99 at most 200 µs at half the
//! maximum ask rate?
//!
//! Workload: a service with a counter agent (capacity 65536) and an echo
//! agent, either in this process (embedded config, port 0, sharing the Tokio
//! workers with the client) or a running `switchyard serve` (`--addr`).
//! - tells: `--tasks` tasks each call `Client::tell` (one message per call,
//!   8-byte payload); timed until the counter has *handled* all (in process) or
//!   until every tell is written (`--addr`: the server's counter is not visible).
//! - asks, closed loop: `--concurrency` tasks ask back to back; the rate is
//!   the maximum, the latency is service time without queueing.
//! - asks, open loop: `--generators` tasks (default 4) on the Tokio workers
//!   share the rate, half the closed-loop maximum (or `--rate`). Each starts
//!   every ask that is due and keeps them in flight in one
//!   `FuturesUnordered` (no task or lock per ask); latency is measured
//!   from the *intended* start, so a late generator or a stalled server
//!   counts against the result (no coordinated omission). HdrHistogram.
//!   A generator keeps at most `--max-in-flight` asks (default 1,024) in
//!   flight, as wrk2's connections and k6's VU pool do: at the cap its next
//!   ask starts when one is answered, still timed from its intended start.
//!   Without a cap, a stall left hundreds of thousands of asks waiting for
//!   room in the client's queue inside one `FuturesUnordered`, whose polls
//!   then grow with that number (futures-rs issue 2526): one run in ten on one
//!   core took 20-120 s to drain instead of 3 s.
//!   A generator runs whenever one of its asks is answered; only with none
//!   in flight does it yield until the next ask is due (Tokio's timer ticks
//!   in milliseconds), which keeps an in-process server's workers awake at
//!   low rates; with `--addr` the server's workers park as in production.
//!
//! Run: `cargo run --release -p switchyard-service --example service_load -- [--phase tells|asks|all]
//! [--addr HOST:PORT --token T] [--tasks 4] [--concurrency 64] [--asks 300000] [--generators 4] [--rate N] [--secs 5] [--connections 2] [--workers 2] [--max-in-flight 1024] [--park-spin-us 0]`

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hdrhistogram::Histogram;
use switchyard_client::{Client, ClientConfig, ClientError, Message};
use switchyard_runtime::Runtime;
use switchyard_service::config::Config;
use switchyard_service::{Server, ServiceReport};
use tokio::task::JoinHandle;

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The counter adds this little-endian 1.
const ONE: &[u8] = &[1, 0, 0, 0, 0, 0, 0, 0];
/// Tells sent in the throughput phase.
const TELLS: u64 = 4_000_000;
/// Asks the warm-up sends before anything is timed.
const WARMUP_ASKS: u64 = 20_000;

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

struct Args {
    phase: String,
    addr: Option<String>,
    token: String,
    tasks: u64,
    concurrency: u64,
    rate: Option<f64>,
    secs: f64,
    connections: usize,
    workers: usize,
    asks: u64,
    generators: usize,
    max_in_flight: usize,
    park_spin: Duration,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        phase: "all".into(),
        addr: None,
        token: String::new(),
        tasks: 4,
        concurrency: 64,
        rate: None,
        secs: 5.0,
        connections: 2,
        workers: 2,
        asks: 300_000,
        generators: 4,
        max_in_flight: 1024,
        park_spin: Duration::ZERO,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{flag} {v}: {e}"));
        match flag.as_str() {
            "--phase" => a.phase = value,
            "--addr" => a.addr = Some(value),
            "--token" => a.token = value,
            "--tasks" => a.tasks = num(&value)? as u64,
            "--concurrency" => a.concurrency = num(&value)? as u64,
            "--rate" => a.rate = Some(num(&value)?),
            "--secs" => a.secs = num(&value)?,
            "--connections" => a.connections = num(&value)? as usize,
            "--workers" => a.workers = num(&value)? as usize,
            "--asks" => a.asks = num(&value)? as u64,
            "--generators" => a.generators = num(&value)? as usize,
            "--max-in-flight" => a.max_in_flight = (num(&value)? as usize).max(1),
            "--park-spin-us" => a.park_spin = Duration::from_micros(num(&value)? as u64),
            _ => {
                return Err(format!(
                    "unknown flag {flag}; see the //! doc of service_load.rs"
                ));
            }
        }
    }
    Ok(a)
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid")
}

/// Records `d` in whole microseconds (at least 1, the histogram's floor).
fn record_us(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).max(1));
}

fn summary(h: &Histogram<u64>) -> String {
    format!(
        "p50 {} us, p90 {} us, p99 {} us, p99.9 {} us, max {} us ({} samples)",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // `runtime.park_spin_us` of `switchyard serve` (default 0).
    switchyard_runtime::park::spin_before_park(&mut builder, a.park_spin)
        .worker_threads(a.workers.max(1))
        .enable_all()
        .build()?
        .block_on(run(a))
}

async fn run(a: Args) -> Result<(), Box<dyn std::error::Error>> {
    let mut local: Option<(
        Runtime,
        tokio::sync::oneshot::Sender<()>,
        JoinHandle<ServiceReport>,
    )> = None;
    let addr = match &a.addr {
        Some(addr) => addr.clone(),
        None => {
            let server = Server::bind(Config::parse(CONFIG, "service_load")?.validate()?).await?;
            let addr = server.tcp_addr().ok_or("no tcp listener")?;
            let rt = server.runtime().clone();
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let service = tokio::spawn(server.run(async move {
                let _ = stop_rx.await;
            }));
            local = Some((rt, stop_tx, service));
            addr.to_string()
        }
    };
    let config = ClientConfig::new(addr)
        .token(a.token.clone())
        .connections(a.connections);
    let client = Client::connect(config).await?;
    println!(
        "service_load: {} connections, {}",
        a.connections,
        if local.is_some() {
            "server in this process"
        } else {
            "external server"
        }
    );

    if a.phase == "all" || a.phase == "tells" {
        tells(&client, a.tasks, local.as_ref().map(|l| &l.0)).await?;
    }
    if a.phase == "all" || a.phase == "asks" {
        closed_loop(&client, WARMUP_ASKS.min(a.asks), a.concurrency).await?;
        let (max_rate, h) = closed_loop(&client, a.asks, a.concurrency).await?;
        println!(
            "asks: closed loop, {} callers: {max_rate:.0} asks/s; {}",
            a.concurrency,
            summary(&h)
        );
        let rate = a.rate.unwrap_or(max_rate / 2.0);
        if rate <= 0.0 || a.secs <= 0.0 {
            return Err("open loop skipped: --rate and --secs must be positive".into());
        }
        let (h, lag, failed) =
            open_loop(&client, rate, a.secs, a.generators, a.max_in_flight).await;
        println!(
            "asks: open loop, intended start to the generator starting it: {}",
            summary(&lag)
        );
        println!(
            "asks: open loop at {rate:.0}/s for {}s, from the intended start: {} ({failed} failed)",
            a.secs,
            summary(&h)
        );
    }
    client.close().await;
    if let Some((_, stop, service)) = local {
        let _ = stop.send(());
        println!("{}", service.await?);
    }
    Ok(())
}

async fn tells(client: &Client, tasks: u64, rt: Option<&Runtime>) -> Result<(), ClientError> {
    let before = rt
        .and_then(|rt| rt.agent_accounting("counter"))
        .map_or(0, |a| a.handled);
    let frames_before = client.stats().frames_sent.load(Ordering::Relaxed);
    let started = Instant::now();
    let senders: Vec<_> = (0..tasks)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                for _ in 0..TELLS / tasks {
                    c.tell("counter", Message::new(ONE)).await?;
                }
                Ok::<_, ClientError>(())
            })
        })
        .collect();
    for s in senders {
        s.await
            .map_err(|e| ClientError::Protocol(e.to_string()))??;
    }
    let sent = TELLS / tasks * tasks;
    if let Some(rt) = rt {
        while rt.agent_accounting("counter").map_or(0, |a| a.handled) < before + sent {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let frames = client.stats().frames_sent.load(Ordering::Relaxed) - frames_before;
    println!(
        "tells: {sent} from {tasks} tasks in {secs:.2}s = {:.2} M msg/s ({frames} frames){}",
        sent as f64 / secs / 1e6,
        if rt.is_some() {
            ", all handled"
        } else {
            ", all written (external server)"
        }
    );
    Ok(())
}

/// `total` asks from `concurrency` callers back to back: (asks/s, latency).
async fn closed_loop(
    client: &Client,
    total: u64,
    concurrency: u64,
) -> Result<(f64, Histogram<u64>), ClientError> {
    let started = Instant::now();
    let askers: Vec<_> = (0..concurrency)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move {
                let mut h = histogram();
                for _ in 0..total / concurrency {
                    let t = Instant::now();
                    c.ask("echo", "x").await?;
                    record_us(&mut h, t.elapsed());
                }
                Ok::<_, ClientError>(h)
            })
        })
        .collect();
    let mut all = histogram();
    for a in askers {
        let h = a
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))??;
        let _ = all.add(&h);
    }
    Ok((all.len() as f64 / started.elapsed().as_secs_f64(), all))
}

/// Asks at `rate` per second for `secs` from `generators` tasks on the
/// runtime's own workers; latency from each ask's intended start. Returns
/// the latency, how late the generators started their asks, and the failures.
async fn open_loop(
    client: &Client,
    rate: f64,
    secs: f64,
    generators: usize,
    max_in_flight: usize,
) -> (Histogram<u64>, Histogram<u64>, u64) {
    let generators = generators.max(1);
    let each = rate / generators as f64;
    let begin = Instant::now();
    let tasks: Vec<_> = (0..generators)
        .map(|g| {
            let c = client.clone();
            // Offset the generators by a fraction of an interval so their
            // asks interleave instead of coming in pairs.
            let phase = g as f64 / generators as f64;
            tokio::spawn(async move { generate(&c, begin, each, phase, secs, max_in_flight).await })
        })
        .collect();
    let (mut all, mut lag, mut failed) = (histogram(), histogram(), 0);
    for t in tasks {
        if let Ok((h, l, f)) = t.await {
            let _ = all.add(&h);
            let _ = lag.add(&l);
            failed += f;
        }
    }
    (all, lag, failed)
}

/// One open-loop generator, wrk2-style: a task that starts every ask that is
/// due and keeps them in flight in one `FuturesUnordered` (no task and no
/// lock per ask). It runs again whenever one of its asks is answered, which
/// at these rates is every few microseconds; only with nothing in flight
/// does it yield to the other tasks on its worker until the next ask is due,
/// since Tokio's timer ticks in milliseconds. (Yielding all the time instead
/// costs a driver poll per yield: at 170 k asks/s it made p50 2-12x worse.)
async fn generate(
    client: &Client,
    begin: Instant,
    rate: f64,
    phase: f64,
    secs: f64,
    max_in_flight: usize,
) -> (Histogram<u64>, Histogram<u64>, u64) {
    let interval = Duration::from_secs_f64(1.0 / rate);
    let total = (rate * secs) as u64;
    let due = |i: u64| begin + interval.mul_f64(i as f64 + phase);
    let (mut latency, mut lag, mut failed) = (histogram(), histogram(), 0u64);
    let mut record = |(intended, reply): (Instant, Result<Message, ClientError>)| match reply {
        Ok(_) => {
            record_us(&mut latency, intended.elapsed());
        }
        Err(_) => failed += 1,
    };
    let mut in_flight = FuturesUnordered::new();
    let mut i = 0u64;
    loop {
        let now = Instant::now();
        while i < total && due(i) <= now && in_flight.len() < max_in_flight {
            let intended = due(i);
            record_us(&mut lag, now.duration_since(intended));
            in_flight.push(async move { (intended, client.ask("echo", "x").await) });
            i += 1;
        }
        while let Some(Some(done)) = in_flight.next().now_or_never() {
            record(done);
        }
        if i == total {
            while let Some(done) = in_flight.next().await {
                record(done);
            }
            break;
        }
        if in_flight.len() >= max_in_flight {
            // At the cap: the next start waits for an answer, and its
            // latency still counts from its intended start.
            if let Some(done) = in_flight.next().await {
                record(done);
            }
            continue;
        }
        let next = due(i);
        let soon = next.saturating_duration_since(Instant::now()) < Duration::from_millis(2);
        if soon && in_flight.is_empty() {
            tokio::task::yield_now().await;
        } else {
            tokio::select! {
                Some(done) = in_flight.next() => record(done),
                () = tokio::time::sleep_until(next.into()) => {}
            }
        }
    }
    (latency, lag, failed)
}
