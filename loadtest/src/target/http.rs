//! The HTTP target: `POST /v1/agents/{agent}/messages` (tell) and
//! `/ask` over a fixed pool of `concurrency` keep-alive HTTP/1.1 connections
//! (hyper). A request takes an idle connection from the pool and puts it
//! back; with every connection busy the generator waits (and is late, which
//! the report shows). A broken connection is replaced on its next use.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, StatusCode};

use super::admin::{self, Admin, connect, exchange, request};
use super::{Outgoing, SETTLE_POLL, Settled, remaining};
use crate::error::LoadError;
use crate::scenario::{Scenario, Workload};
use crate::tally::{self, Tally};

type Conn = Option<SendRequest<Full<Bytes>>>;

/// Sends over the HTTP ingress.
pub struct HttpSender {
    addr: String,
    token: String,
    tell_path: String,
    ask_path: String,
    idle_tx: flume::Sender<Conn>,
    idle_rx: flume::Receiver<Conn>,
    tally: Arc<Tally>,
    payload: usize,
    timeout: Duration,
}

impl HttpSender {
    pub(super) async fn send(self: &Arc<Self>, m: Outgoing, wait: bool) {
        self.tally.sent.fetch_add(1, Ordering::Relaxed);
        self.tally.in_flight.fetch_add(1, Ordering::Relaxed);
        // Take a connection here, so a generator with none free waits.
        let conn = match tokio::time::timeout(
            remaining(m.intended, self.timeout),
            self.idle_rx.recv_async(),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(_)) | Err(_) => {
                self.tally.timed_out.fetch_add(1, Ordering::Relaxed);
                self.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        };
        if wait {
            self.exchange(conn, m).await;
        } else {
            let me = self.clone();
            tokio::spawn(async move { me.exchange(conn, m).await });
        }
    }

    async fn exchange(&self, conn: Conn, m: Outgoing) {
        let mut conn = match conn {
            Some(c) if !c.is_closed() => Some(c),
            _ => connect(&self.addr).await.ok(),
        };
        let outcome = match conn.as_mut() {
            None => Err(format!("cannot connect to http://{}", self.addr)),
            Some(c) => {
                let body = tally::payload(self.tally.offset_ns(m.intended), self.payload);
                let path = if m.ask {
                    format!(
                        "{}?timeout_ms={}",
                        self.ask_path,
                        remaining(m.intended, self.timeout).as_millis()
                    )
                } else {
                    self.tell_path.clone()
                };
                match request(Method::POST, &self.addr, &path, &self.token, body) {
                    Ok(req) => {
                        tokio::time::timeout(remaining(m.intended, self.timeout), exchange(c, req))
                            .await
                            .unwrap_or_else(|_| Ok((StatusCode::GATEWAY_TIMEOUT, Bytes::new())))
                    }
                    Err(e) => Err(e),
                }
            }
        };
        match outcome {
            Ok((status, body)) => self.classify(status, &body, m),
            Err(e) => {
                conn = None;
                self.tally.error(|| format!("HTTP request failed: {e}"));
            }
        }
        // Cannot fail: the pool's receiver lives as long as this sender.
        let _ = self.idle_tx.send(conn);
        self.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn classify(&self, status: StatusCode, body: &[u8], m: Outgoing) {
        let t = &self.tally;
        match status {
            StatusCode::OK if m.ask => {
                t.ok.fetch_add(1, Ordering::Relaxed);
                t.record(m.index as usize, m.intended.elapsed());
            }
            // A tell is `ok` only once the server's counters confirm it; here
            // its acceptance latency is recorded.
            StatusCode::ACCEPTED if !m.ask => t.record(m.index as usize, m.intended.elapsed()),
            StatusCode::TOO_MANY_REQUESTS => {
                t.rejected.fetch_add(1, Ordering::Relaxed);
            }
            StatusCode::GATEWAY_TIMEOUT | StatusCode::SERVICE_UNAVAILABLE => {
                t.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            other => t.error(|| format!("HTTP {other}: {}", String::from_utf8_lossy(body))),
        }
    }
}

/// The HTTP target.
pub struct Http {
    pub(super) sender: Arc<HttpSender>,
    pub(super) admin: Admin,
    pub(super) agent: String,
    handled_before: u64,
    dead_before: u64,
}

impl Http {
    /// Opens the connection pool, checks the token and that the agent exists.
    pub async fn connect(s: &Scenario, addr: &str, tally: Arc<Tally>) -> Result<Http, LoadError> {
        let target = s.target.to_string();
        let fail = |message: String| LoadError::Target {
            target: target.clone(),
            message,
        };
        let (idle_tx, idle_rx) = flume::bounded(s.concurrency);
        for _ in 0..s.concurrency {
            let c = admin::connect(addr).await.map_err(|e| {
                fail(format!(
                    "cannot connect: {e}; is `switchyard serve` listening there?"
                ))
            })?;
            // Cannot fail: the channel holds exactly `concurrency` connections.
            let _ = idle_tx.send(Some(c));
        }
        let admin_addr = match crate::scenario::TargetSpec::parse(&s.admin) {
            Ok(crate::scenario::TargetSpec::Http(a)) => a,
            _ => addr.to_owned(),
        };
        let admin = Admin::new(&admin_addr, &s.token);
        let before = admin.require(&target, &s.agent).await?;
        Ok(Http {
            sender: Arc::new(HttpSender {
                addr: addr.to_owned(),
                token: s.token.clone(),
                tell_path: format!("/v1/agents/{}/messages", s.agent),
                ask_path: format!("/v1/agents/{}/ask", s.agent),
                idle_tx,
                idle_rx,
                tally,
                payload: s.payload,
                timeout: s.timeout.0,
            }),
            admin,
            agent: s.agent.clone(),
            handled_before: before.handled,
            dead_before: before.dead_lettered,
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
            latency_source: "202 Accepted (tells), reply received (asks)",
            ..Settled::default()
        };
        if workload == Workload::Tell {
            let (ok, dead) = remote_ok(
                &self.admin,
                &self.agent,
                self.handled_before,
                self.dead_before,
                tally,
                0,
                deadline,
            )
            .await;
            settled.remote_ok = Some(ok);
            if dead > 0 {
                settled.dead_lettered.insert("remote".into(), dead);
                settled.dead_errors = dead;
            }
        }
        settled
    }
}

/// Polls the server's counters until every accepted tell is handled or
/// dead-lettered, or `deadline`; returns (handled, dead-lettered) since the
/// start, capped at what was accepted.
pub(super) async fn remote_ok(
    admin: &Admin,
    agent: &str,
    handled_before: u64,
    dead_before: u64,
    tally: &Tally,
    extra_rejected: u64,
    deadline: Instant,
) -> (u64, u64) {
    let accepted = Tally::get(&tally.sent).saturating_sub(
        Tally::get(&tally.rejected)
            + Tally::get(&tally.timed_out)
            + Tally::get(&tally.errors)
            + extra_rejected,
    );
    let mut last = (0, 0);
    loop {
        if let Ok(now) = admin.agent(agent).await {
            let handled = now.handled.saturating_sub(handled_before).min(accepted);
            let dead = now
                .dead_lettered
                .saturating_sub(dead_before)
                .min(accepted - handled);
            last = (handled, dead);
            if handled + dead >= accepted {
                return last;
            }
        }
        if Instant::now() >= deadline {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
