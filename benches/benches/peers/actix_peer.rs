//! actix 0.13's side: `do_send` / `send(..).await` on `Addr`s. actix runs
//! actors on single-threaded arbiters, not on a multi-thread Tokio runtime:
//! the producer runs on the `System` arbiter; for throughput the actors run on
//! a second `Arbiter` (so producer and actors use both cores, as on the 2-worker
//! runtimes of the others); asks and spawns stay on the `System` arbiter, next
//! to the producer (actix's usual set-up). `do_send` ignores the mailbox
//! capacity (no backpressure).

use std::time::{Duration, Instant};

use actix::{Actor, Arbiter, Context, Handler, Message, System};
use switchyard_benches::{CountingAlloc, Done, Percentiles, Tally, settle};

use crate::{ASK_WARM_UP, ASKS, MESSAGES, ROUNDS, SPAWNS, Spawned};

struct Sink {
    tally: Tally,
}

impl Actor for Sink {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "()")]
struct Hit(#[allow(dead_code, reason = "carried like a real payload, never read")] u64);

impl Handler<Hit> for Sink {
    type Result = ();
    fn handle(&mut self, _msg: Hit, _ctx: &mut Context<Self>) {
        self.tally.one();
    }
}

struct Echo;

impl Actor for Echo {
    type Context = Context<Self>;
}

#[derive(Message)]
#[rtype(result = "u64")]
struct Ping(u64);

impl Handler<Ping> for Echo {
    type Result = u64;
    fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self>) -> u64 {
        msg.0
    }
}

/// Runs `f` on a fresh actix `System` and stops it afterwards.
fn in_system<F, Fut, T>(f: F) -> T
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let system = System::new();
    let out = system.block_on(f());
    System::current().stop();
    out
}

/// As the Switchyard side: warm-up round, then `ROUNDS` timed rounds.
pub fn throughput(n: usize) -> Vec<Duration> {
    in_system(|| async move {
        let arbiter = Arbiter::new();
        let done = Done::new();
        let share = MESSAGES / n as u64;
        let addrs: Vec<_> = (0..n)
            .map(|_| {
                let tally = Tally::new(done.clone(), share);
                Sink::start_in_arbiter(&arbiter.handle(), move |_| Sink { tally })
            })
            .collect();
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..=ROUNDS {
            let target = done.expect(MESSAGES);
            let t = Instant::now();
            for i in 0..MESSAGES {
                addrs[(i % n as u64) as usize].do_send(Hit(i));
            }
            done.wait(target).await;
            if round > 0 {
                times.push(t.elapsed());
            }
        }
        drop(addrs);
        arbiter.stop();
        let _ = arbiter.join();
        times
    })
}

/// `ASKS` sequential `send(..).await` to one echo actor.
pub fn asks() -> Percentiles {
    in_system(|| async {
        let echo = Echo.start();
        let mut hist = Percentiles::new();
        for i in 0..ASK_WARM_UP + ASKS {
            let t = Instant::now();
            let reply = echo.send(Ping(i as u64)).await;
            if i >= ASK_WARM_UP {
                hist.record(t.elapsed());
            }
            assert_eq!(reply.expect("echo answers"), i as u64);
        }
        hist
    })
}

/// `SPAWNS` actors in a row on the `System` arbiter; memory per idle actor.
pub fn spawns() -> Spawned {
    in_system(|| async {
        let mut addrs = Vec::with_capacity(SPAWNS);
        settle().await;
        let heap0 = CountingAlloc::live_bytes();
        let mut hist = Percentiles::new();
        let started = Instant::now();
        for _ in 0..SPAWNS {
            let t = Instant::now();
            addrs.push(Echo.start());
            hist.record(t.elapsed());
        }
        let total = started.elapsed();
        settle().await;
        let heap = CountingAlloc::live_bytes() - heap0;
        Spawned {
            hist,
            total,
            heap_per_actor: heap as f64 / SPAWNS as f64,
        }
    })
}
