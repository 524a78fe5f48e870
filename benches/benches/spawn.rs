//! # What does an agent cost to start and to keep idle?
//!
//! **Workload.** One producer task on a 2-worker Tokio runtime calls
//! `rt.spawn(name, config, || Echo)` 100,000 times in a row
//! (names built beforehand). Then 1,000,000 agents the same way, to check
//! that a million can be registered and what they cost. Both again with
//! `AgentConfig::default().lazy_start(true)`: the task
//! starts at the agent's first message, so spawning is a registration and an
//! idle agent holds no task (decision 0011). Each of the four runs is a
//! child process of its own (this binary, re-run with [`RUN_ENV`]), so every
//! run starts on fresh memory and its RSS is not lowered by memory an
//! earlier run freed and the allocator gives back later.
//!
//! **Timed section.** Each `rt.spawn` call on its own (HdrHistogram, ns) and
//! the whole loop. `spawn` registers the agent and starts its task (lazy:
//! only registers it); the
//! task's first poll (`on_start`, waiting on the mailbox) happens on the
//! workers meanwhile, so the loop time is the sender-side cost. Then, after
//! the memory is read, `rt.shutdown(grace)` of all those idle agents, timed.
//!
//! **Memory.** A counting global allocator ([`CountingAlloc`], wrapping
//! mimalloc, the `switchyard` binary's allocator) tracks live heap bytes. Live bytes and RSS (`/proc/self/statm`) are
//! read before the loop and after the agents have settled (every task has run
//! to its first wait: live bytes stop changing); the difference divided by the
//! number of agents is the idle cost per agent. Names count in it (they are
//! part of what the runtime keeps per agent); the bench's own name list does not.
//!
//! **Decision rule / targets** (issue 2): ≤ 1 µs per spawn, ≤ 1 KiB per idle
//! agent; 1,000,000 agents register.
//!
//! **Run.** `cargo bench -p switchyard-benches --bench spawn` (about 40 s,
//! about 2.5 GiB of memory at the peak).

use std::time::{Duration, Instant};

use switchyard_benches::{
    CountingAlloc, Percentiles, names, rss_bytes, run_in_task, settle, tokio_runtime,
};
use switchyard_examples::Echo;
use switchyard_runtime::{AgentConfig, Runtime};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Set in a child process: which run it does (`lazy_start` or `eager`,
/// then `:` and the number of agents).
const RUN_ENV: &str = "SWITCHYARD_SPAWN_RUN";

/// Agents in the timed run.
const SPAWNS: usize = 100_000;

/// Agents in the registration check.
const MILLION: usize = 1_000_000;

/// Grace for the timed shutdown: idle agents have nothing to drain, so a
/// shutdown that needs this long is a finding, not a slow machine.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(120);

/// What one run measured.
struct Measured {
    agents: usize,
    hist: Percentiles,
    total: Duration,
    heap_per_agent: f64,
    rss_per_agent: f64,
    heap_total: i64,
    rss_total: i64,
    shutdown: Duration,
}

fn run(agents: usize, time_each: bool, config: AgentConfig) -> Measured {
    let tokio = tokio_runtime();
    let names = names("idle", agents);
    let m = run_in_task(&tokio, async move {
        let rt = Runtime::new();
        settle().await;
        let (heap0, rss0) = (CountingAlloc::live_bytes(), rss_bytes());
        let mut hist = Percentiles::new();
        let started = Instant::now();
        for name in names.iter() {
            if time_each {
                let t = Instant::now();
                rt.spawn(name, config, || Echo)
                    .expect("valid, unique names");
                hist.record(t.elapsed());
            } else {
                rt.spawn(name, config, || Echo)
                    .expect("valid, unique names");
            }
        }
        let total = started.elapsed();
        settle().await;
        assert_eq!(rt.agent_count(), agents, "every agent is registered");
        let heap_total = CountingAlloc::live_bytes() - heap0;
        let rss_total = rss_bytes() as i64 - rss0 as i64;
        let t = Instant::now();
        let report = rt.shutdown(SHUTDOWN_GRACE).await;
        let shutdown = t.elapsed();
        assert!(report.accounting.balanced(), "{}", report.accounting);
        assert!(
            report.forced.is_empty(),
            "{} agents were not drained within the grace period",
            report.forced.len()
        );
        Measured {
            agents,
            hist,
            total,
            heap_per_agent: heap_total as f64 / agents as f64,
            rss_per_agent: rss_total as f64 / agents as f64,
            heap_total,
            rss_total,
            shutdown,
        }
    });
    tokio.shutdown_timeout(Duration::from_secs(5));
    m
}

/// Live heap bytes per bare Tokio task that waits forever: the floor under
/// any task-per-agent design, for comparison.
fn tokio_task_floor() -> f64 {
    let tokio = tokio_runtime();
    let per_task = run_in_task(&tokio, async {
        settle().await;
        let heap0 = CountingAlloc::live_bytes();
        let handles: Vec<_> = (0..SPAWNS)
            .map(|_| tokio::spawn(std::future::pending::<()>()))
            .collect();
        settle().await;
        let vec_bytes = (handles.capacity() * size_of::<tokio::task::JoinHandle<()>>()) as i64;
        (CountingAlloc::live_bytes() - heap0 - vec_bytes) as f64 / SPAWNS as f64
    });
    tokio.shutdown_timeout(Duration::from_secs(5));
    per_task
}

fn main() {
    let eager = AgentConfig::default();
    let lazy = eager.lazy_start(true);
    if let Ok(run_spec) = std::env::var(RUN_ENV) {
        let (label, agents) = run_spec
            .split_once(':')
            .and_then(|(l, n)| Some((l, n.parse::<usize>().ok()?)))
            .unwrap_or_else(|| panic!("{RUN_ENV}={run_spec:?}: expected LABEL:AGENTS"));
        let config = if label == "lazy_start" { lazy } else { eager };
        let m = run(agents, agents == SPAWNS, config);
        if agents == SPAWNS {
            println!(
                "\nspawn ({label}): {} native agents (Echo) spawned in a row from one task",
                m.agents
            );
            Percentiles::print_header();
            m.hist
                .print_row(&format!("rt.spawn(name, {label}, || Echo)"));
        } else {
            println!("\nregistration check ({label}): {} agents", m.agents);
        }
        report(&m);
        return;
    }
    let me = std::env::current_exe().expect("the bench knows its own path");
    for (label, agents) in [
        ("lazy_start", SPAWNS),
        ("eager", SPAWNS),
        ("eager", MILLION),
        ("lazy_start", MILLION),
    ] {
        let status = std::process::Command::new(&me)
            .env(RUN_ENV, format!("{label}:{agents}"))
            .status()
            .expect("the bench can run itself");
        assert!(
            status.success(),
            "the run {label}:{agents} failed: {status}"
        );
    }
    println!(
        "\nfloor: a bare tokio::spawn(pending()) task holds {:.0} B of heap",
        tokio_task_floor()
    );
    println!("targets: <= 1 µs per spawn, <= 1 KiB (1024 B) per idle agent");
}

fn report(m: &Measured) {
    let mib = |b: i64| b as f64 / (1024.0 * 1024.0);
    println!(
        "loop: {:.3} s = {:.3} µs per spawn; idle memory: heap {:.0} B/agent ({:.1} MiB), RSS {:.0} B/agent ({:.1} MiB); graceful shutdown {:.3} s",
        m.total.as_secs_f64(),
        m.total.as_secs_f64() * 1e6 / m.agents as f64,
        m.heap_per_agent,
        mib(m.heap_total),
        m.rss_per_agent,
        mib(m.rss_total),
        m.shutdown.as_secs_f64(),
    );
}
