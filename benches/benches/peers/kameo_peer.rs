//! kameo 0.22's side: `tell(..).await` / `ask(..).await` on `ActorRef`s,
//! bounded mailboxes of 1,024 (kameo's default is 64; 1,024 matches Switchyard).

use std::time::{Duration, Instant};

use kameo::Actor;
use kameo::actor::Spawn;
use kameo::mailbox;
use kameo::message::{Context, Message};
use switchyard_benches::{
    CountingAlloc, Done, Percentiles, Tally, run_in_task, settle, tokio_runtime, tokio_runtime_with,
};

use crate::{ASK_WARM_UP, ASKS, MAILBOX, MESSAGES, ROUNDS, SPAWNS, Spawned};

#[derive(Actor)]
struct Sink {
    tally: Tally,
}

struct Hit(#[allow(dead_code, reason = "carried like a real payload, never read")] u64);

impl Message<Hit> for Sink {
    type Reply = ();
    async fn handle(&mut self, _msg: Hit, _ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        self.tally.one();
    }
}

#[derive(Actor)]
struct Echo;

struct Ping(u64);

impl Message<Ping> for Echo {
    type Reply = u64;
    async fn handle(&mut self, msg: Ping, _ctx: &mut Context<Self, Self::Reply>) -> Self::Reply {
        msg.0
    }
}

/// As the Switchyard side: warm-up round, then `ROUNDS` timed rounds, on
/// a Tokio runtime of `workers` workers.
pub fn throughput(n: usize, workers: usize) -> Vec<Duration> {
    let tokio = tokio_runtime_with(workers);
    let out = run_in_task(&tokio, async move {
        let done = Done::new();
        let share = MESSAGES / n as u64;
        let refs: Vec<_> = (0..n)
            .map(|_| {
                Sink::spawn_with_mailbox(
                    Sink {
                        tally: Tally::new(done.clone(), share),
                    },
                    mailbox::bounded(MAILBOX),
                )
            })
            .collect();
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..=ROUNDS {
            let target = done.expect(MESSAGES);
            let t = Instant::now();
            for i in 0..MESSAGES {
                refs[(i % n as u64) as usize]
                    .tell(Hit(i))
                    .await
                    .expect("actors stay up");
            }
            done.wait(target).await;
            if round > 0 {
                times.push(t.elapsed());
            }
        }
        times
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}

/// `ASKS` sequential asks to one echo actor, on a Tokio runtime of `workers` workers.
pub fn asks(workers: usize) -> Percentiles {
    let tokio = tokio_runtime_with(workers);
    let out = run_in_task(&tokio, async {
        let echo = Echo::spawn_with_mailbox(Echo, mailbox::bounded(MAILBOX));
        let mut hist = Percentiles::new();
        for i in 0..ASK_WARM_UP + ASKS {
            let t = Instant::now();
            let reply = echo.ask(Ping(i as u64)).await;
            if i >= ASK_WARM_UP {
                hist.record(t.elapsed());
            }
            assert_eq!(reply.expect("echo answers"), i as u64);
        }
        hist
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}

/// `SPAWNS` actors in a row; memory per idle actor (the Vec of refs is reserved before the baseline).
pub fn spawns() -> Spawned {
    let tokio = tokio_runtime();
    let out = run_in_task(&tokio, async {
        let mut refs = Vec::with_capacity(SPAWNS);
        settle().await;
        let heap0 = CountingAlloc::live_bytes();
        let mut hist = Percentiles::new();
        let started = Instant::now();
        for _ in 0..SPAWNS {
            let t = Instant::now();
            refs.push(Echo::spawn_with_mailbox(Echo, mailbox::bounded(MAILBOX)));
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
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}
