//! The TCP target: the service's binary protocol through the pooled,
//! batching `switchyard-client`. An open-loop tick's tells travel as one
//! `tell_batch`; asks are one task each. Tells are confirmed through the
//! admin API's `handled` counter (`admin = "http://HOST:PORT"`).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchyard_client::wire::{ErrorCode, Message};
use switchyard_client::{Client, ClientConfig, ClientError};
use tokio::sync::Semaphore;

use super::http::remote_ok;
use super::{Admin, Outgoing, SETTLE_POLL, Settled, remaining};
use crate::error::LoadError;
use crate::scenario::{Scenario, TargetSpec, Workload};
use crate::tally::{self, Tally};

/// Sends through the client.
pub struct TcpSender {
    client: Client,
    agent: String,
    tally: Arc<Tally>,
    payload: usize,
    timeout: Duration,
    /// One permit per open-loop ask in flight, [`MAX_ASKS_IN_FLIGHT`] in all.
    permits: Arc<Semaphore>,
}

/// Most open-loop asks in flight at once. At the cap the generator waits
/// for a reply before it starts the next ask, which is still timed from
/// its intended start (as wrk2 times a request waiting for a connection),
/// and the report shows the generator's lag. Without it, a stalled server
/// grew the tool by a task per ask: 474 MB in 3 s at 100 k asks/s.
pub const MAX_ASKS_IN_FLIGHT: usize = 4096;

impl TcpSender {
    fn message(&self, m: &Outgoing) -> Message {
        Message::new(tally::payload(
            self.tally.offset_ns(m.intended),
            self.payload,
        ))
    }

    pub(super) async fn send_many(self: &Arc<Self>, batch: &mut Vec<Outgoing>) {
        let mut tells = Vec::with_capacity(batch.len());
        let mut intended = Vec::with_capacity(batch.len());
        for m in batch.drain(..) {
            if m.ask {
                self.start_ask(m, false).await;
            } else {
                tells.push(self.message(&m));
                intended.push((m.index, m.intended));
            }
        }
        if tells.is_empty() {
            return;
        }
        let n = tells.len() as u64;
        self.tally.sent.fetch_add(n, Ordering::Relaxed);
        match self.client.tell_batch(&self.agent, tells).await {
            Ok(()) => {
                let now = Instant::now();
                for (i, at) in intended {
                    self.tally
                        .record(i as usize, now.saturating_duration_since(at));
                }
            }
            Err(e) => {
                for _ in 0..n {
                    self.tally.error(|| e.to_string());
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

    async fn start_ask(self: &Arc<Self>, m: Outgoing, wait: bool) {
        self.tally.sent.fetch_add(1, Ordering::Relaxed);
        self.tally.in_flight.fetch_add(1, Ordering::Relaxed);
        if wait {
            self.ask(m).await;
        } else {
            let Ok(permit) = self.permits.clone().acquire_owned().await else {
                unreachable!("the semaphore is never closed");
            };
            let me = self.clone();
            tokio::spawn(async move {
                me.ask(m).await;
                drop(permit);
            });
        }
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
        Ok(Tcp {
            sender: Arc::new(TcpSender {
                client,
                agent: s.agent.clone(),
                tally,
                payload: s.payload,
                timeout: s.timeout.0,
                permits: Arc::new(Semaphore::new(MAX_ASKS_IN_FLIGHT)),
            }),
            admin,
            agent: s.agent.clone(),
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
        if let Ok(sender) = Arc::try_unwrap(self.sender) {
            sender.client.close().await;
        }
        settled
    }
}
