//! The `switchyard demo` workload: an embedded runtime, the example agents, and
//! a short visible workload through tell, tell_batch, ask, publish, a pool and
//! a supervised agent that panics on purpose.

use std::fmt;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use switchyard_runtime::slo::{SloReport, table_header, table_row};
use switchyard_runtime::{
    Accounting, Agent, AgentConfig, AgentError, AgentLatencyInfo, Context, Envelope, Runtime,
    ShutdownReport, Strategy, Supervision,
};

use crate::{Counter, Echo, FanOut};

/// How much work the demo does.
#[derive(Clone, Copy, Debug)]
pub struct DemoOptions {
    /// Fire-and-forget messages to the counter.
    pub tells: u64,
    /// Sequential asks to the echo agent.
    pub asks: u64,
    /// Events published to the topic.
    pub publishes: u64,
    /// Messages sent through the pool.
    pub pool_messages: u64,
}

impl Default for DemoOptions {
    fn default() -> DemoOptions {
        DemoOptions {
            tells: 1_000_000,
            asks: 100_000,
            publishes: 10_000,
            pool_messages: 200_000,
        }
    }
}

/// What the demo measured.
#[derive(Debug)]
pub struct DemoReport {
    /// Tells per second into one counter agent (unbatched).
    pub tell_rate: f64,
    /// Tells per second with `tell_batch` of 64.
    pub batch_rate: f64,
    /// Ask round trip, microseconds: p50, p99, max.
    pub ask_us: (f64, f64, f64),
    /// Total the counter reported at the end.
    pub counter_total: u64,
    /// Copies delivered by publishes.
    pub published: usize,
    /// Messages handled per pool member.
    pub pool_spread: Vec<(String, u64)>,
    /// Restarts of the flaky agent.
    pub restarts: u64,
    /// SLO verdicts at the end of the workload.
    pub slo: SloReport,
    /// Runtime-side latency of the echo agent (queue, service, sojourn, ask).
    pub echo_latency: Option<AgentLatencyInfo>,
    /// Shutdown summary.
    pub shutdown: ShutdownReport,
}

/// Panics on every message whose payload is `"boom"`, to show supervision.
struct Flaky;

impl Agent for Flaky {
    async fn handle(&mut self, _ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        if msg.payload().as_ref() == b"boom" {
            panic!("flaky agent was told to fail");
        }
        Ok(())
    }
}

/// Runs the demo on the current Tokio runtime.
pub async fn run(
    opts: DemoOptions,
) -> Result<DemoReport, Box<dyn std::error::Error + Send + Sync>> {
    let rt = Runtime::new();
    let cfg = AgentConfig::default().capacity(4096);
    rt.spawn("echo", cfg, || Echo)?;
    rt.spawn("counter", cfg, Counter::default)?;
    rt.spawn_pool("workers", 4, Strategy::RoundRobin, cfg, Counter::default)?;
    let fan = FanOut::new(["counter", "workers"]);
    rt.spawn("fanout", cfg, move || fan.clone())?;
    rt.spawn("flaky", cfg.supervision(Supervision::immediate()), || Flaky)?;
    rt.subscribe("events", "counter")?;
    rt.subscribe("events", "workers")?;

    // Tell: one producer, fire and forget, waiting for room when full.
    let counter = rt.resolve("counter").ok_or("counter vanished")?;
    let started = Instant::now();
    for _ in 0..opts.tells {
        counter.tell(Envelope::tell(Bytes::new())).await?;
    }
    let before_batch = rt.agent_accounting("counter").map_or(0, |a| a.handled);
    let _ = rt
        .ask(
            "counter",
            Envelope::ask(Bytes::new()),
            Duration::from_secs(30),
        )
        .await?;
    let tell_rate = opts.tells as f64 / started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut sent = 0;
    while sent < opts.tells {
        let batch: Vec<Envelope> = (0..64).map(|_| Envelope::tell(Bytes::new())).collect();
        sent += 64;
        rt.tell_batch("counter", batch)
            .await
            .map_err(|e| e.to_string())?;
    }
    let _ = rt
        .ask(
            "counter",
            Envelope::ask(Bytes::new()),
            Duration::from_secs(30),
        )
        .await?;
    let batch_rate = sent as f64 / started.elapsed().as_secs_f64();
    debug_assert!(before_batch <= opts.tells + 1);

    // Ask: sequential request/reply round trips.
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    let payload = Bytes::from_static(b"ping");
    for _ in 0..opts.asks {
        let t = Instant::now();
        rt.ask(
            "echo",
            Envelope::ask(payload.clone()),
            Duration::from_secs(5),
        )
        .await?;
        hist.record(t.elapsed().as_nanos() as u64)?;
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let ask_us = (us(0.5), us(0.99), hist.max() as f64 / 1000.0);

    // Publish: every event reaches the counter and one pool member.
    let mut published = 0;
    for i in 0..opts.publishes {
        published += rt
            .publish("events", Envelope::publish(i.to_le_bytes().to_vec()))
            .await
            .delivered;
    }

    // Pool: round-robin over four members, plus a fan-out.
    for _ in 0..opts.pool_messages {
        rt.tell("workers", Envelope::tell(Bytes::new())).await?;
    }
    rt.tell("fanout", Envelope::tell(Bytes::new())).await?;

    // Supervision: the flaky agent fails three times and keeps serving.
    for p in ["ok", "boom", "ok", "boom", "ok", "boom", "ok"] {
        rt.tell("flaky", Envelope::tell(p)).await?;
    }

    let total = rt
        .ask(
            "counter",
            Envelope::ask(Bytes::new()),
            Duration::from_secs(30),
        )
        .await?;
    let counter_total = Counter::decode(total.payload()).unwrap_or_default();
    // Let the pool and the flaky agent finish before reading their counters.
    for _ in 0..4 {
        let _ = rt
            .ask(
                "workers",
                Envelope::ask(Bytes::new()),
                Duration::from_secs(30),
            )
            .await;
    }
    let flaky_restarts = wait_for(&rt, "flaky", |a| a.handled + a.dead_lettered() >= 7)
        .await
        .restarts;
    let pool_spread = rt
        .agents()
        .into_iter()
        .filter(|a| a.pool.as_deref() == Some("workers"))
        .map(|a| (a.name, a.accounting.handled))
        .collect();
    rt.roll_windows();
    let slo = rt.slo_report();
    let echo_latency = rt.latency("echo");
    let shutdown = rt.shutdown(Duration::from_secs(5)).await;
    Ok(DemoReport {
        slo,
        echo_latency,
        tell_rate,
        batch_rate,
        ask_us,
        counter_total,
        published,
        pool_spread,
        restarts: flaky_restarts,
        shutdown,
    })
}

async fn wait_for(rt: &Runtime, name: &str, done: impl Fn(&Accounting) -> bool) -> Accounting {
    loop {
        let a = rt.agent_accounting(name).unwrap_or_default();
        if done(&a) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "tell        {:>12.0} msg/s  (one producer, one agent, unbatched)",
            self.tell_rate
        )?;
        writeln!(
            f,
            "tell_batch  {:>12.0} msg/s  (batches of 64)",
            self.batch_rate
        )?;
        writeln!(
            f,
            "ask         p50 {:.2} us   p99 {:.2} us   max {:.1} us",
            self.ask_us.0, self.ask_us.1, self.ask_us.2
        )?;
        writeln!(f, "counter     total {}", self.counter_total)?;
        writeln!(
            f,
            "publish     {} copies delivered to subscribers of \"events\"",
            self.published
        )?;
        let spread: Vec<String> = self
            .pool_spread
            .iter()
            .map(|(n, h)| format!("{n}: {h}"))
            .collect();
        writeln!(f, "pool        {}", spread.join("  "))?;
        writeln!(
            f,
            "supervision flaky agent restarted {} times, kept serving",
            self.restarts
        )?;
        if let Some(l) = &self.echo_latency {
            writeln!(f, "\nlatency of agent \"echo\" measured by the runtime:")?;
            writeln!(f, "{}", table_header())?;
            for (label, p) in [
                ("queue wait", &l.queue_us),
                ("service", &l.service_us),
                ("sojourn", &l.sojourn_us),
                ("ask round trip", &l.ask_us),
            ] {
                writeln!(f, "{}", table_row(label, p))?;
            }
        }
        writeln!(f, "\nSLO verdicts (sojourn time, last 10 s and 60 s):")?;
        writeln!(f, "{}", self.slo)?;
        write!(f, "{}", self.shutdown)
    }
}
