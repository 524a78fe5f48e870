//! # How does Switchyard compare with actix, ractor and kameo on the same work?
//!
//! **Workloads** (one run, same machine, same process, one after another):
//! 1. *Tell throughput*: one producer sends 2,000,000 fire-and-forget `u64`
//!    messages round-robin over N actors (N = 1, 100, 10,000), timed until
//!    every actor has handled its share. Each actor counts locally and adds its
//!    share to a shared counter once per round (the same [`Tally`] everywhere).
//!    One warm-up round, then 3 timed rounds; the median is reported.
//!    Twice for the Tokio-based three, on the 2-worker runtime and on a
//!    1-worker one, as for asks below (actix runs on one thread in both).
//! 2. *Ask latency*: 200,000 sequential asks to one echo actor (after 10,000
//!    unrecorded), each timed on its own into an HdrHistogram: p50 and p99.
//!    Twice for the Tokio-based three: on the 2-worker runtime and on a
//!    1-worker one (the set-up actix always runs in), since on two workers
//!    Tokio's scheduler, not the framework, sets the p99.
//! 3. *Spawn*: 100,000 actors in a row, each spawn timed (mean); idle memory
//!    per actor from a counting global allocator (live heap delta after the
//!    actors settle, divided by 100,000; handle `Vec`s are reserved beforehand).
//!    Switchyard twice: default (the task starts at spawn) and `sy (lazy)`,
//!    with `AgentConfig::lazy_start` (the task starts at the first message).
//!
//! **APIs**, each framework's idiomatic one: Switchyard `rt.tell(name, ..)`
//! (also `Addr::tell` after `resolve`) and `rt.ask`; actix `do_send` / `send`;
//! ractor `cast` / `call!`; kameo `tell(..).await` / `ask(..).await`.
//! Switchyard payloads are the `u64`'s bytes copied into a [`Payload`], which
//! keeps up to 23 bytes inline, so no message allocates (before session 14
//! they were a `Bytes`, one allocation per message that the agent's core
//! freed); the others move a `u64`.
//!
//! **Mailboxes.** Switchyard and kameo: bounded, 1,024, the sender waits when
//! full. ractor: unbounded. actix: `do_send` ignores the bound. So ractor and
//! actix never make the producer wait, and may queue all 2 M messages.
//!
//! **Runtimes.** Switchyard, ractor and kameo: a 2-worker Tokio runtime with
//! the producer in a spawned task. actix: its own single-threaded arbiters
//! (see `peers/actix_peer.rs`). The counting allocator is installed for all
//! (a few relaxed, per-thread-sharded atomic adds per allocation).
//!
//! **Timed section.** Throughput: first send to last share reported. Asks: each
//! round trip. Spawn: each spawn call (ractor's awaits `pre_start`).
//!
//! **Decision rule.** Informational: the `sy/peer` columns show where
//! Switchyard leads (> 1 for msg/s, < 1 for times and bytes) and where it lags.
//!
//! **Run.** `cargo bench -p switchyard-benches --bench peers` (about 2 minutes).
//! `PEERS=switchyard,kameo` limits the frameworks (names: switchyard, actix,
//! ractor, kameo).

#[path = "peers/actix_peer.rs"]
mod actix_peer;
#[path = "peers/kameo_peer.rs"]
mod kameo_peer;
#[path = "peers/ractor_peer.rs"]
mod ractor_peer;
#[path = "peers/switchyard_peer.rs"]
mod switchyard_peer;

use std::time::Duration;

use switchyard_benches::{CountingAlloc, Percentiles, WORKERS};
use switchyard_runtime::Payload;

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

/// Messages per throughput round.
pub const MESSAGES: u64 = 2_000_000;
/// Timed throughput rounds (after one warm-up round); the median is reported.
pub const ROUNDS: usize = 3;
/// Recorded asks.
pub const ASKS: usize = 200_000;
/// Unrecorded asks before them.
pub const ASK_WARM_UP: usize = 10_000;
/// Actors spawned in the spawn workload.
pub const SPAWNS: usize = 100_000;
/// Bounded mailbox capacity where the framework has one to set (Switchyard's default).
pub const MAILBOX: usize = switchyard_runtime::DEFAULT_CAPACITY;

/// Actor counts for the throughput workload.
const NS: [usize; 3] = [1, 100, 10_000];

/// What the spawn workload measured.
pub struct Spawned {
    pub hist: Percentiles,
    pub total: Duration,
    pub heap_per_actor: f64,
}

/// The payload of Switchyard's `i`-th ask: the `u64` as bytes, like the others' `u64`.
pub fn ask_payload(i: usize) -> Payload {
    Payload::copy_from_slice(&(i as u64).to_le_bytes())
}

/// One framework's column.
#[derive(Default)]
struct Column {
    name: &'static str,
    /// msg/s per N.
    rates: Vec<f64>,
    /// msg/s per N on a 1-worker Tokio runtime.
    rates_1w: Vec<f64>,
    p50_us: f64,
    p99_us: f64,
    /// The same asks on a 1-worker Tokio runtime.
    p50_1w_us: f64,
    p99_1w_us: f64,
    spawn_us: f64,
    bytes_per_actor: f64,
}

fn median_rate(mut times: Vec<Duration>) -> f64 {
    times.sort();
    MESSAGES as f64 / times[times.len() / 2].as_secs_f64()
}

/// `throughput(n, workers)` and `asks(workers)` run on `WORKERS` and on 1
/// worker, unless `one_thread` (actix): then one run serves both rows.
fn column(
    name: &'static str,
    one_thread: bool,
    throughput: impl Fn(usize, usize) -> Vec<Duration>,
    asks: impl Fn(usize) -> Percentiles,
    spawns: impl Fn() -> Spawned,
) -> Column {
    eprintln!("peers: {name} ...");
    let rates_on = |workers: usize| -> Vec<f64> {
        NS.iter()
            .map(|&n| median_rate(throughput(n, workers)))
            .collect()
    };
    let rates = rates_on(WORKERS);
    let rates_1w = if one_thread {
        rates.clone()
    } else {
        rates_on(1)
    };
    let us = |a: &Percentiles, q: f64| a.at(q).as_secs_f64() * 1e6;
    let a = asks(WORKERS);
    let one = if one_thread { a.clone() } else { asks(1) };
    let s = spawns();
    Column {
        name,
        rates,
        rates_1w,
        p50_us: us(&a, 0.5),
        p99_us: us(&a, 0.99),
        p50_1w_us: us(&one, 0.5),
        p99_1w_us: us(&one, 0.99),
        spawn_us: s.total.as_secs_f64() * 1e6 / SPAWNS as f64,
        bytes_per_actor: s.heap_per_actor,
    }
}

fn main() {
    use switchyard_peer::Addressing;
    let wanted = std::env::var("PEERS").unwrap_or_else(|_| "switchyard,actix,ractor,kameo".into());
    let on = |n: &str| wanted.split(',').any(|w| w.trim() == n);
    let mut cols = Vec::new();
    if on("switchyard") {
        cols.push(column(
            "switchyard",
            false,
            |n, w| switchyard_peer::throughput(n, w, Addressing::ByName),
            switchyard_peer::asks,
            || switchyard_peer::spawns(false),
        ));
        let rates = NS
            .iter()
            .map(|&n| {
                median_rate(switchyard_peer::throughput(
                    n,
                    WORKERS,
                    Addressing::Resolved,
                ))
            })
            .collect();
        cols.push(Column {
            name: "sy (Addr)",
            rates,
            rates_1w: vec![f64::NAN; NS.len()],
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            p50_1w_us: f64::NAN,
            p99_1w_us: f64::NAN,
            spawn_us: f64::NAN,
            bytes_per_actor: f64::NAN,
        });
        let lazy = switchyard_peer::spawns(true);
        cols.push(Column {
            name: "sy (lazy)",
            rates: vec![f64::NAN; NS.len()],
            rates_1w: vec![f64::NAN; NS.len()],
            p50_us: f64::NAN,
            p99_us: f64::NAN,
            p50_1w_us: f64::NAN,
            p99_1w_us: f64::NAN,
            spawn_us: lazy.total.as_secs_f64() * 1e6 / SPAWNS as f64,
            bytes_per_actor: lazy.heap_per_actor,
        });
    }
    if on("actix") {
        cols.push(column(
            "actix 0.13",
            // Always one thread: the same runs serve both rows of each.
            true,
            |n, _| actix_peer::throughput(n),
            |_| actix_peer::asks(),
            actix_peer::spawns,
        ));
    }
    if on("ractor") {
        cols.push(column(
            "ractor 0.16",
            false,
            ractor_peer::throughput,
            ractor_peer::asks,
            ractor_peer::spawns,
        ));
    }
    if on("kameo") {
        cols.push(column(
            "kameo 0.22",
            false,
            kameo_peer::throughput,
            kameo_peer::asks,
            kameo_peer::spawns,
        ));
    }
    print_table(&cols);
}

fn print_table(cols: &[Column]) {
    let sy = cols.iter().find(|c| c.name == "switchyard");
    let peers: Vec<&Column> = cols.iter().filter(|c| !c.name.starts_with("s")).collect();
    let mut header = format!("| {:<36} |", "workload");
    for c in cols {
        header += &format!(" {:>12} |", c.name);
    }
    for p in &peers {
        header += &format!(
            " {:>12} |",
            format!("sy/{}", p.name.split(' ').next().unwrap_or(p.name))
        );
    }
    println!(
        "\npeers: 2 Tokio workers unless a row says 1 (actix: own single-threaded arbiters), one producer\n{header}"
    );
    println!("|{}", "---|".repeat(1 + cols.len() + peers.len()));
    let row = |label: String, get: &dyn Fn(&Column) -> f64, scale: f64, unit_digits: usize| {
        let mut line = format!("| {label:<36} |");
        for c in cols {
            line += &format!(" {:>12.*} |", unit_digits, get(c) / scale);
        }
        for p in &peers {
            let r = sy.map_or(f64::NAN, |s| get(s) / get(p));
            line += &format!(" {r:>12.2} |");
        }
        println!("{line}");
    };
    for (i, n) in NS.iter().enumerate() {
        row(
            format!("tell, N={n}: M msg/s (↑)"),
            &|c: &Column| c.rates.get(i).copied().unwrap_or(f64::NAN),
            1e6,
            2,
        );
    }
    for (i, n) in NS.iter().enumerate() {
        row(
            format!("tell, N={n}, 1 worker: M msg/s (↑)"),
            &|c: &Column| c.rates_1w.get(i).copied().unwrap_or(f64::NAN),
            1e6,
            2,
        );
    }
    row("ask p50 µs (↓)".into(), &|c: &Column| c.p50_us, 1.0, 2);
    row("ask p99 µs (↓)".into(), &|c: &Column| c.p99_us, 1.0, 2);
    row(
        "ask p50 µs, 1 worker (↓)".into(),
        &|c: &Column| c.p50_1w_us,
        1.0,
        2,
    );
    row(
        "ask p99 µs, 1 worker (↓)".into(),
        &|c: &Column| c.p99_1w_us,
        1.0,
        2,
    );
    row("spawn µs each (↓)".into(), &|c: &Column| c.spawn_us, 1.0, 3);
    row(
        "idle B/actor (↓)".into(),
        &|c: &Column| c.bytes_per_actor,
        1.0,
        0,
    );
}
