//! Switchyard's side of the peer comparison: agents by name, default config
//! (bounded mailbox of 1,024, overflow `Block`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_benches::{
    CountingAlloc, Done, Percentiles, Tally, names, run_in_task, settle, tokio_runtime,
    tokio_runtime_with,
};
use switchyard_examples::Echo;
use switchyard_runtime::{Agent, AgentConfig, AgentError, Context, Envelope, Payload, Runtime};

use crate::{ASK_WARM_UP, ASKS, MESSAGES, ROUNDS, SPAWNS, Spawned, ask_payload};

/// Counts each message into its [`Tally`].
struct Counted(Tally);

impl Agent for Counted {
    async fn handle(&mut self, _ctx: &mut Context, _msg: &Envelope) -> Result<(), AgentError> {
        self.0.one();
        Ok(())
    }
}

/// How the producer addresses agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Addressing {
    /// `rt.tell(name, ..)`: the routed path.
    ByName,
    /// `rt.resolve(name)` once, then `addr.tell(..)`.
    Resolved,
}

/// `ROUNDS` timed rounds of `MESSAGES` u64 tells round-robin over `n` agents,
/// after one warm-up round, on a Tokio runtime of `workers` workers.
pub fn throughput(n: usize, workers: usize, addressing: Addressing) -> Vec<Duration> {
    let tokio = tokio_runtime_with(workers);
    let names = names("peer", n);
    run_in_task(&tokio, async move {
        let rt = Runtime::new();
        let done = Done::new();
        let share = MESSAGES / n as u64;
        for name in names.iter() {
            let d = done.clone();
            rt.spawn(name, AgentConfig::default(), move || {
                Counted(Tally::new(d.clone(), share))
            })
            .expect("valid, unique names");
        }
        let addrs: Vec<_> = names
            .iter()
            .map(|n| rt.resolve(n).expect("just spawned"))
            .collect();
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..=ROUNDS {
            let target = done.expect(MESSAGES);
            let t = Instant::now();
            for i in 0..MESSAGES {
                let env = Envelope::tell(Payload::copy_from_slice(&i.to_le_bytes()));
                let k = (i % n as u64) as usize;
                let sent = match addressing {
                    Addressing::ByName => rt.tell(&names[k], env).await,
                    Addressing::Resolved => addrs[k].tell(env).await,
                };
                sent.expect("agents stay up");
            }
            done.wait(target).await;
            if round > 0 {
                times.push(t.elapsed());
            }
        }
        let _ = rt.shutdown(Duration::from_secs(5)).await;
        times
    })
}

/// `ASKS` sequential asks to one Echo agent, on a Tokio runtime of `workers` workers.
pub fn asks(workers: usize) -> Percentiles {
    let tokio = tokio_runtime_with(workers);
    run_in_task(&tokio, async {
        let rt = Runtime::new();
        rt.spawn("echo", AgentConfig::default(), || Echo)
            .expect("a valid, unique name");
        let mut hist = Percentiles::new();
        for i in 0..ASK_WARM_UP + ASKS {
            let t = Instant::now();
            let reply = rt
                .ask(
                    "echo",
                    Envelope::ask(ask_payload(i)),
                    Duration::from_secs(5),
                )
                .await;
            if i >= ASK_WARM_UP {
                hist.record(t.elapsed());
            }
            reply.expect("echo answers");
        }
        let _ = rt.shutdown(Duration::from_secs(5)).await;
        hist
    })
}

/// `SPAWNS` agents in a row; memory per idle agent.
/// `lazy`: `AgentConfig::lazy_start`, the task starts at the first message.
pub fn spawns(lazy: bool) -> Spawned {
    let tokio = tokio_runtime();
    let names: Arc<[String]> = names("idle", SPAWNS);
    let out = run_in_task(&tokio, async move {
        let rt = Runtime::new();
        settle().await;
        let heap0 = CountingAlloc::live_bytes();
        let mut hist = Percentiles::new();
        let started = Instant::now();
        for name in names.iter() {
            let t = Instant::now();
            rt.spawn(name, AgentConfig::default().lazy_start(lazy), || Echo)
                .expect("valid, unique names");
            hist.record(t.elapsed());
        }
        let total = started.elapsed();
        settle().await;
        let heap = CountingAlloc::live_bytes() - heap0;
        // Dropped with the Tokio runtime, like the peers' actors (a graceful
        // shutdown of 100,000 agents is timed in the spawn bench instead).
        drop(rt);
        Spawned {
            hist,
            total,
            heap_per_actor: heap as f64 / SPAWNS as f64,
        }
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}
