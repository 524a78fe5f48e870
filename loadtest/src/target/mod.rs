//! Targets: where the messages go and how each one is confirmed.
//!
//! | target | tells confirmed by | tell latency from intended time to | asks |
//! |---|---|---|---|
//! | embedded | the load agent that handled it (per-run counter) | handled by the agent | reply |
//! | `tcp://` | the server's `handled` counter (`GET /v1/agents` on `admin`) | queued in the client | reply |
//! | `http://` | the server's `handled` counter (same address) | `202 Accepted` | reply |
//!
//! A message counts as `ok` only once the agent side confirms it; `lost` is
//! what remains of `sent` after `ok`, `rejected`, `timed_out` and `errors`.
//!
//! **Ownership.** A [`Target`] owns the runtime or the connections; its
//! [`Sender`] is a cheap clone used by every generator. **Shutdown.**
//! [`Target::finish`] waits for confirmations (at most the scenario's
//! `drain`), reads the final counters and closes what it opened.

mod admin;
mod embedded;
mod http;
mod tcp;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use admin::Admin;
pub use embedded::LoadAgent;

use crate::error::LoadError;
use crate::scenario::{Scenario, TargetSpec, Workload};
use crate::tally::Tally;

/// One message to send: its index, intended send time and kind.
#[derive(Clone, Copy, Debug)]
pub struct Outgoing {
    /// Position in the run (picks the agent for the embedded target).
    pub index: u64,
    /// When the schedule meant it to go out.
    pub intended: Instant,
    /// Ask instead of tell.
    pub ask: bool,
}

/// Mailbox depth of the target's agents at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Depth {
    /// Messages queued over all of them.
    pub total: u64,
    /// The deepest single mailbox.
    pub max: u64,
}

/// Counters only the target knows, read after the run.
#[derive(Clone, Debug, Default)]
pub struct Settled {
    /// Tells confirmed by the server's counters (remote targets).
    pub remote_ok: Option<u64>,
    /// Extra refusals the server reported after the fact (TCP).
    pub rejected: u64,
    /// Messages dead-lettered, by reason.
    pub dead_lettered: BTreeMap<String, u64>,
    /// Of those, counted as timed out (`expired`).
    pub dead_timed_out: u64,
    /// Of those, counted as errors (every other reason).
    pub dead_errors: u64,
    /// Where tell latency is measured to.
    pub latency_source: &'static str,
    /// Embedded: the agents' worker threads and cores.
    pub placement: Option<String>,
}

/// The sending half, cloned into every generator.
#[derive(Clone)]
pub enum Sender {
    /// In-process runtime.
    Embedded(Arc<embedded::EmbeddedSender>),
    /// Binary protocol.
    Tcp(Arc<tcp::TcpSender>),
    /// HTTP ingress.
    Http(Arc<http::HttpSender>),
}

impl Sender {
    /// Embedded: the cores a generator shares with the agents (see
    /// [`crate::cpus`]); `None` when nothing is pinned.
    pub fn load_cores(&self) -> Option<&[usize]> {
        match self {
            Sender::Embedded(s) => s.cores(),
            Sender::Tcp(_) | Sender::Http(_) => None,
        }
    }

    /// Sends a tick's worth of messages without waiting for asks.
    ///
    /// # Cancel safety
    /// Not cancel safe: part of the batch may have been sent.
    pub async fn send_many(&self, batch: &mut Vec<Outgoing>) {
        match self {
            Sender::Embedded(s) => {
                for m in batch.drain(..) {
                    s.send(m, false).await;
                }
            }
            Sender::Tcp(s) => s.send_many(batch).await,
            Sender::Http(s) => {
                for m in batch.drain(..) {
                    s.send(m, false).await;
                }
            }
        }
    }

    /// Sends one message and waits until it is accepted (tell) or answered (ask).
    ///
    /// # Cancel safety
    /// Not cancel safe: the message may have been sent.
    pub async fn send_wait(&self, m: Outgoing) {
        match self {
            Sender::Embedded(s) => s.send(m, true).await,
            Sender::Tcp(s) => s.send(m, true).await,
            Sender::Http(s) => s.send(m, true).await,
        }
    }
}

/// A connected target.
pub enum Target {
    /// In-process runtime with load agents.
    Embedded(embedded::Embedded),
    /// `switchyard serve` over TCP.
    Tcp(tcp::Tcp),
    /// `switchyard serve` over HTTP.
    Http(http::Http),
}

impl Target {
    /// Starts (embedded) or connects to (remote) the scenario's target, and
    /// checks that the agent exists.
    pub async fn connect(s: &Scenario, tally: Arc<Tally>) -> Result<Target, LoadError> {
        match &s.target {
            TargetSpec::Embedded => Ok(Target::Embedded(embedded::Embedded::start(s, tally)?)),
            TargetSpec::Tcp(addr) => Ok(Target::Tcp(tcp::Tcp::connect(s, addr, tally).await?)),
            TargetSpec::Http(addr) => Ok(Target::Http(http::Http::connect(s, addr, tally).await?)),
        }
    }

    /// The sending half.
    pub fn sender(&self) -> Sender {
        match self {
            Target::Embedded(t) => Sender::Embedded(t.sender.clone()),
            Target::Tcp(t) => Sender::Tcp(t.sender.clone()),
            Target::Http(t) => Sender::Http(t.sender.clone()),
        }
    }

    /// Mailbox depth of the target's agents now, if the target can tell.
    pub async fn depth(&self) -> Option<Depth> {
        match self {
            Target::Embedded(t) => Some(t.depth()),
            Target::Tcp(t) => t
                .admin
                .as_ref()?
                .agent(&t.agent)
                .await
                .ok()
                .map(|a| a.depth),
            Target::Http(t) => t.admin.agent(&t.agent).await.ok().map(|a| a.depth),
        }
    }

    /// Whether every sent message has an outcome yet (remote tells excepted:
    /// they settle in [`Target::finish`]).
    pub fn settled(&self, tally: &Tally) -> bool {
        let in_flight = Tally::get(&tally.in_flight);
        match self {
            Target::Embedded(t) => in_flight == 0 && t.settled(tally),
            Target::Tcp(_) | Target::Http(_) => in_flight == 0,
        }
    }

    /// Waits for the last confirmations (until `deadline`), reads the final
    /// counters and closes the target.
    pub async fn finish(self, tally: &Tally, deadline: Instant, workload: Workload) -> Settled {
        let mut settled = match self {
            Target::Embedded(t) => return t.finish(tally, deadline).await,
            Target::Tcp(t) => t.finish(tally, deadline, workload).await,
            Target::Http(t) => t.finish(tally, deadline, workload).await,
        };
        settled.placement = Some(client_placement());
        settled
    }
}

/// Where a remote target's client ran: the worker threads of the runtime
/// that drove it (the tool's own, sized by `client_workers`).
fn client_placement() -> String {
    let n = tokio::runtime::Handle::current().metrics().num_workers();
    format!(
        "(client on {n} Tokio worker thread{})",
        if n == 1 { "" } else { "s" }
    )
}

/// How long to wait between checks while draining.
pub(crate) const SETTLE_POLL: Duration = Duration::from_millis(20);

/// Time left until `intended + timeout`, at least 1 ms.
pub(crate) fn remaining(intended: Instant, timeout: Duration) -> Duration {
    (intended + timeout)
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}
