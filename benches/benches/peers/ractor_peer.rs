//! ractor 0.16's side: `cast` / `call!` on `ActorRef`s (ractor's mailboxes
//! are unbounded: no backpressure).

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use switchyard_benches::{
    CountingAlloc, Done, Percentiles, Tally, run_in_task, settle, tokio_runtime, tokio_runtime_with,
};

use crate::{ASK_WARM_UP, ASKS, MESSAGES, ROUNDS, SPAWNS, Spawned};

struct Sink;

impl Actor for Sink {
    type Msg = u64;
    type State = Tally;
    type Arguments = Tally;

    async fn pre_start(
        &self,
        _myself: ActorRef<u64>,
        tally: Tally,
    ) -> Result<Tally, ActorProcessingErr> {
        Ok(tally)
    }

    async fn handle(
        &self,
        _myself: ActorRef<u64>,
        _msg: u64,
        tally: &mut Tally,
    ) -> Result<(), ActorProcessingErr> {
        tally.one();
        Ok(())
    }
}

struct Echo;

enum EchoMsg {
    Ping(u64, RpcReplyPort<u64>),
}

impl Actor for Echo {
    type Msg = EchoMsg;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _myself: ActorRef<EchoMsg>, _: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<EchoMsg>,
        msg: EchoMsg,
        _: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let EchoMsg::Ping(x, reply) = msg;
        // The caller may have given up; nothing to do then.
        let _ = reply.send(x);
        Ok(())
    }
}

/// As the Switchyard side: warm-up round, then `ROUNDS` timed rounds, on
/// a Tokio runtime of `workers` workers.
pub fn throughput(n: usize, workers: usize) -> Vec<Duration> {
    let tokio = tokio_runtime_with(workers);
    let out = run_in_task(&tokio, async move {
        let done = Done::new();
        let share = MESSAGES / n as u64;
        let mut refs = Vec::with_capacity(n);
        for _ in 0..n {
            let (r, _) = Actor::spawn(None, Sink, Tally::new(done.clone(), share))
                .await
                .expect("ractor spawns");
            refs.push(r);
        }
        let mut times = Vec::with_capacity(ROUNDS);
        for round in 0..=ROUNDS {
            let target = done.expect(MESSAGES);
            let t = Instant::now();
            for i in 0..MESSAGES {
                refs[(i % n as u64) as usize]
                    .cast(i)
                    .expect("actors stay up");
            }
            done.wait(target).await;
            if round > 0 {
                times.push(t.elapsed());
            }
        }
        for r in &refs {
            r.stop(None);
        }
        times
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}

/// `ASKS` sequential calls to one echo actor, on a Tokio runtime of `workers` workers.
pub fn asks(workers: usize) -> Percentiles {
    let tokio = tokio_runtime_with(workers);
    let out = run_in_task(&tokio, async {
        let (echo, _) = Actor::spawn(None, Echo, ()).await.expect("ractor spawns");
        let mut hist = Percentiles::new();
        for i in 0..ASK_WARM_UP + ASKS {
            let t = Instant::now();
            let reply = ractor::call!(echo, EchoMsg::Ping, i as u64);
            if i >= ASK_WARM_UP {
                hist.record(t.elapsed());
            }
            assert_eq!(reply.expect("echo answers"), i as u64);
        }
        echo.stop(None);
        hist
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}

/// `SPAWNS` actors in a row (each `spawn` awaits `pre_start`); memory per idle actor.
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
            let (r, _) = Actor::spawn(None, Echo, ()).await.expect("ractor spawns");
            hist.record(t.elapsed());
            refs.push(r);
        }
        let total = started.elapsed();
        settle().await;
        let heap = CountingAlloc::live_bytes() - heap0;
        for r in &refs {
            r.stop(None);
        }
        Spawned {
            hist,
            total,
            heap_per_actor: heap as f64 / SPAWNS as f64,
        }
    });
    tokio.shutdown_timeout(Duration::from_secs(1));
    out
}
