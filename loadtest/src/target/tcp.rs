//! The TCP target: the service's binary protocol through the pooled,
//! batching `switchyard-client`. An open-loop tick's tells travel as one
//! `tell_batch`. Its asks go to one driver task, which keeps every ask in
//! flight in one `FuturesUnordered`: no task and no cross-thread wake per
//! ask, at most one wake per tick. Tells are confirmed through the admin
//! API's `handled` counter (`admin = "http://HOST:PORT"`).
//!
//! ```text
//!  generator thread ──asks──► flume ──► driver task: FuturesUnordered ≤ MAX_ASKS_IN_FLIGHT
//!                   ──tells─► Client::tell_batch          │ Client::ask_timeout
//! ```
//!
//! **Backpressure.** The driver keeps at most [`MAX_ASKS_IN_FLIGHT`] asks
//! pending; the next ones wait in the channel (a few bytes each) and are
//! still timed from their intended start, as wrk2 times a request that waits
//! for a free connection. **Shutdown.** [`Tcp::finish`] closes the channel;
//! the driver ends once its asks have their outcomes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use switchyard_client::wire::{ErrorCode, Message};
use switchyard_client::{Client, ClientConfig, ClientError};
use tokio::task::JoinHandle;

use super::http::remote_ok;
use super::{Admin, Outgoing, SETTLE_POLL, Settled, remaining};
use crate::error::LoadError;
use crate::scenario::{Scenario, TargetSpec, Workload};
use crate::tally::{self, Tally};

/// Most open-loop asks the driver keeps pending at once. Past it, asks
/// wait in the driver's channel; a `FuturesUnordered` of hundreds of
/// thousands of futures waiting for room in the client's queues spends its
/// time polling them (futures-rs issue 2526).
pub const MAX_ASKS_IN_FLIGHT: usize = 4096;

/// Sends through the client.
pub struct TcpSender {
    asker: Arc<Asker>,
    /// Open-loop asks, to the driver.
    asks: flume::Sender<Outgoing>,
}

/// What an ask needs; shared by the generators and the driver.
struct Asker {
    client: Client,
    agent: String,
    tally: Arc<Tally>,
    payload: usize,
    timeout: Duration,
}

impl TcpSender {
    pub(super) async fn send_many(self: &Arc<Self>, batch: &mut Vec<Outgoing>) {
        let a = &self.asker;
        let mut tells = Vec::with_capacity(batch.len());
        let mut intended = Vec::with_capacity(batch.len());
        for m in batch.drain(..) {
            if m.ask {
                self.start_ask(m, false).await;
            } else {
                tells.push(a.message(&m));
                intended.push((m.index, m.intended));
            }
        }
        if tells.is_empty() {
            return;
        }
        let n = tells.len() as u64;
        a.tally.sent.fetch_add(n, Ordering::Relaxed);
        match a.client.tell_batch(&a.agent, tells).await {
            Ok(()) => {
                let now = Instant::now();
                for (i, at) in intended {
                    a.tally
                        .record(i as usize, now.saturating_duration_since(at));
                }
            }
            Err(e) => {
                for _ in 0..n {
                    a.tally.error(|| e.to_string());
                }
            }
        }
    }

    pub(super) async fn send(self: &Arc<Self>, m: Outgoing, wait: bool) {
        if m.ask {
            self.start_ask(m, wait).await;
        } else {
            self.send_many(&mut vec![m]).await;
        }
    }

    async fn start_ask(&self, m: Outgoing, wait: bool) {
        let t = &self.asker.tally;
        t.sent.fetch_add(1, Ordering::Relaxed);
        t.in_flight.fetch_add(1, Ordering::Relaxed);
        if wait {
            self.asker.ask(m).await;
        } else if let Err(flume::SendError(m)) = self.asks.send(m) {
            // The driver is gone only if its task panicked.
            t.in_flight.fetch_sub(1, Ordering::Relaxed);
            t.error(|| format!("the ask driver has stopped; ask {} was not sent", m.index));
        }
    }
}

/// Keeps the open-loop asks from `asks` in flight, at most `cap` at once,
/// until `asks` is closed and every started ask has ended.
async fn drive<F, Fut>(asks: flume::Receiver<Outgoing>, cap: usize, ask: F)
where
    F: Fn(Outgoing) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut pending = FuturesUnordered::new();
    let mut open = true;
    loop {
        while open && pending.len() < cap {
            match asks.try_recv() {
                Ok(m) => pending.push(ask(m)),
                Err(flume::TryRecvError::Empty) => break,
                Err(flume::TryRecvError::Disconnected) => open = false,
            }
        }
        if !open && pending.is_empty() {
            return;
        }
        let room = open && pending.len() < cap;
        tokio::select! {
            Some(()) = pending.next(), if !pending.is_empty() => {}
            m = asks.recv_async(), if room => match m {
                Ok(m) => pending.push(ask(m)),
                Err(_) => open = false,
            },
        }
    }
}

impl Asker {
    fn message(&self, m: &Outgoing) -> Message {
        Message::new(tally::payload(
            self.tally.offset_ns(m.intended),
            self.payload,
        ))
    }

    async fn ask(&self, m: Outgoing) {
        let t = &self.tally;
        let r = self
            .client
            .ask_timeout(
                &self.agent,
                self.message(&m),
                remaining(m.intended, self.timeout),
            )
            .await;
        match r {
            Ok(_) => {
                t.ok.fetch_add(1, Ordering::Relaxed);
                t.record(m.index as usize, m.intended.elapsed());
            }
            Err(ClientError::Timeout { .. })
            | Err(ClientError::Failed {
                code: ErrorCode::AskTimeout | ErrorCode::DeadlineExpired,
                ..
            }) => {
                t.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(ClientError::Failed {
                code: ErrorCode::MailboxFull,
                ..
            }) => {
                t.rejected.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => t.error(|| e.to_string()),
        }
        t.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The TCP target.
pub struct Tcp {
    pub(super) sender: Arc<TcpSender>,
    pub(super) admin: Option<Admin>,
    pub(super) agent: String,
    driver: JoinHandle<()>,
    handled_before: u64,
    dead_before: u64,
}

impl Tcp {
    /// Connects the client, checks that the agent exists (admin API, or an
    /// ask probe without one).
    pub async fn connect(s: &Scenario, addr: &str, tally: Arc<Tally>) -> Result<Tcp, LoadError> {
        let target = s.target.to_string();
        let fail = |message: String| LoadError::Target {
            target: target.clone(),
            message,
        };
        let admin = match TargetSpec::parse(&s.admin) {
            Ok(TargetSpec::Http(a)) => Some(Admin::new(&a, &s.token)),
            _ => None,
        };
        if admin.is_none() && s.workload != Workload::Ask {
            return Err(fail(
                "tells over TCP are confirmed through the server's counters: give --admin \
                 http://HOST:PORT (the service's HTTP address), or use --workload ask"
                    .into(),
            ));
        }
        let mut config = ClientConfig::new(addr)
            .token(s.token.clone())
            .connections(s.connections);
        config.connect_timeout = super::admin::CONNECT_TIMEOUT;
        let client = Client::connect(config)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let unknown = |hint: String| LoadError::UnknownAgent {
            target: target.clone(),
            agent: s.agent.clone(),
            hint,
        };
        let (handled_before, dead_before) = match &admin {
            Some(a) => {
                let stats = a.require(&target, &s.agent).await?;
                (stats.handled, stats.dead_lettered)
            }
            None => {
                let probe = client
                    .ask_timeout(&s.agent, Message::new(vec![0u8; 8]), Duration::from_secs(2))
                    .await;
                if let Err(ClientError::Failed {
                    code: ErrorCode::UnknownAgent,
                    ..
                }) = probe
                {
                    return Err(unknown("check the name in the service's config".into()));
                }
                (0, 0)
            }
        };
        let asker = Arc::new(Asker {
            client,
            agent: s.agent.clone(),
            tally,
            payload: s.payload,
            timeout: s.timeout.0,
        });
        let (asks, queued) = flume::unbounded();
        let driver = {
            let asker = asker.clone();
            tokio::spawn(async move {
                drive(queued, MAX_ASKS_IN_FLIGHT, |m| asker.ask(m)).await;
            })
        };
        Ok(Tcp {
            sender: Arc::new(TcpSender { asker, asks }),
            admin,
            agent: s.agent.clone(),
            driver,
            handled_before,
            dead_before,
        })
    }

    pub(super) async fn finish(
        self,
        tally: &Tally,
        deadline: Instant,
        workload: Workload,
    ) -> Settled {
        while Tally::get(&tally.in_flight) > 0 && Instant::now() < deadline {
            tokio::time::sleep(SETTLE_POLL).await;
        }
        let mut settled = Settled {
            latency_source: "queued in the client (tells), reply received (asks)",
            ..Settled::default()
        };
        if let (Workload::Tell, Some(admin)) = (workload, &self.admin) {
            // Refusals come back asynchronously; wait for the server to have
            // seen everything before reading them.
            let mut refused = self
                .sender
                .asker
                .client
                .stats()
                .tells_refused
                .load(Ordering::Relaxed);
            let (ok, dead) = loop {
                let (ok, dead) = remote_ok(
                    admin,
                    &self.agent,
                    self.handled_before,
                    self.dead_before,
                    tally,
                    refused,
                    Instant::now(),
                )
                .await;
                let now_refused = self
                    .sender
                    .asker
                    .client
                    .stats()
                    .tells_refused
                    .load(Ordering::Relaxed);
                let accepted = Tally::get(&tally.sent).saturating_sub(
                    Tally::get(&tally.rejected)
                        + Tally::get(&tally.timed_out)
                        + Tally::get(&tally.errors)
                        + now_refused,
                );
                if (ok + dead >= accepted && now_refused == refused) || Instant::now() >= deadline {
                    refused = now_refused;
                    break (ok, dead);
                }
                refused = now_refused;
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            settled.remote_ok = Some(ok);
            settled.rejected = refused;
            if dead > 0 {
                settled.dead_lettered.insert("remote".into(), dead);
                settled.dead_errors = dead;
            }
        }
        let Ok(TcpSender { asker, asks }) = Arc::try_unwrap(self.sender) else {
            // A generator still holds the sender: the connections close
            // when it is dropped.
            self.driver.abort();
            return settled;
        };
        drop(asks);
        // Past the deadline, asks still pending are abandoned (counted as
        // lost by the report).
        let mut driver = self.driver;
        if tokio::time::timeout_at(deadline.into(), &mut driver)
            .await
            .is_err()
        {
            tracing::warn!("asks were still pending at the drain deadline; they count as lost");
            driver.abort();
            let _ = driver.await;
        }
        if let Ok(asker) = Arc::try_unwrap(asker) {
            asker.client.close().await;
        }
        settled
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    fn outgoing(index: u64) -> Outgoing {
        Outgoing {
            index,
            intended: Instant::now(),
            ask: true,
        }
    }

    #[tokio::test]
    async fn the_driver_caps_pending_asks_and_ends_each_one() {
        let (tx, rx) = flume::unbounded();
        let (pending, most, ended) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let driver = tokio::spawn({
            let (pending, most, ended, release) = (
                pending.clone(),
                most.clone(),
                ended.clone(),
                release.clone(),
            );
            async move {
                drive(rx, 3, |_m| {
                    let (pending, most, ended, release) = (
                        pending.clone(),
                        most.clone(),
                        ended.clone(),
                        release.clone(),
                    );
                    async move {
                        let now = pending.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        release.acquire().await.unwrap().forget();
                        pending.fetch_sub(1, Ordering::SeqCst);
                        ended.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await;
            }
        });
        for i in 0..10 {
            tx.send(outgoing(i)).unwrap();
        }
        // Let the driver start what it may; the rest wait in the channel.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert_eq!(pending.load(Ordering::SeqCst), 3);
        assert_eq!(tx.len(), 7, "asks past the cap stay queued");
        drop(tx);
        release.add_permits(10);
        driver.await.unwrap();
        assert_eq!(ended.load(Ordering::SeqCst), 10, "every ask ended");
        assert_eq!(most.load(Ordering::SeqCst), 3, "never more than the cap");
    }
}
