//! The pooled, batching client.
//!
//! ```text
//!  tell / tell_batch / ask  (any task)
//!        │ slot = fnv(agent) % connections   (asks: round-robin)
//!        ▼
//!  bounded op queue per connection (queue_capacity ops; full: the caller waits)
//!        ▼
//!  connection task: take one op, drain what is queued (up to max_batch
//!  messages), linger for more if only tells and linger > 0, then ONE
//!  Requests frame = one write  ──────────────────────────────► server
//!  reader task: Responses ─► pending asks (id ─► oneshot)     ◄──────┘
//! ```
//!
//! **Ownership.** [`Client`] is a cheap handle (`Clone`); each connection
//! task owns its socket. Dropping the last handle (or [`Client::close`]) closes
//! the op queues, which is the signal for the tasks to flush and exit.
//!
//! **Backpressure.** Op queues are bounded; the server stops reading a
//! connection that has too many asks in flight, the socket fills, the task
//! stops writing and the queue fills: callers of `tell`/`ask` wait.
//!
//! **Ordering.** Tells to one agent from one client go through one connection
//! (chosen by the agent name), so they arrive in order. Asks are spread over
//! every connection.
//!
//! **Delivery.** Tells are at most once: `tell` returns when the message is
//! queued; refusals the server reports are counted in [`ClientStats`]; a tell
//! written to a connection that then breaks may be lost. A broken connection
//! fails its pending asks with [`ClientError::Disconnected`] and reconnects with
//! exponential backoff.
//!
//! **Why not deadpool.** Pool crates check a connection out to one user at a
//! time; here every connection is shared by all callers at once (multiplexed
//! by ask id), so a fixed array of connection tasks is the whole pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::codec::CodecError;
use crate::connection::{Op, Slot};
use crate::wire::{DEFAULT_MAX_FRAME, ErrorCode, Message};

/// Default op queue per connection: a few batches' worth, so the connection
/// task always has a full batch ready while the previous one is written.
pub const DEFAULT_QUEUE_CAPACITY: usize = 8192;

/// Default largest number of messages per frame: amortises the write and the
/// server's per-frame work, stays far below the default frame limit for small messages.
pub const DEFAULT_MAX_BATCH: usize = 1024;

/// Client settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` of the server's TCP listener.
    pub addr: String,
    /// The server's token (empty when it has none).
    pub token: String,
    /// Connections in the pool (at least 1).
    pub connections: usize,
    /// Most messages per frame.
    pub max_batch: usize,
    /// How long a batch of only tells may wait to fill up. Zero: send what is queued now.
    /// Batches that hold an ask never wait.
    pub linger: Duration,
    /// Op queue capacity per connection.
    pub queue_capacity: usize,
    /// Timeout for connect + handshake.
    pub connect_timeout: Duration,
    /// First reconnect delay; doubles per failed attempt.
    pub backoff_initial: Duration,
    /// Reconnect delay ceiling.
    pub backoff_max: Duration,
    /// Timeout used by [`Client::ask`].
    pub ask_timeout: Duration,
    /// Largest frame this client reads or writes.
    pub max_frame: usize,
}

impl ClientConfig {
    /// Defaults for a server at `addr`.
    pub fn new(addr: impl Into<String>) -> ClientConfig {
        ClientConfig {
            addr: addr.into(),
            token: String::new(),
            connections: 2,
            max_batch: DEFAULT_MAX_BATCH,
            linger: Duration::ZERO,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            ask_timeout: Duration::from_secs(5),
            max_frame: DEFAULT_MAX_FRAME,
        }
    }

    /// Sets the token.
    #[must_use]
    pub fn token(mut self, token: impl Into<String>) -> ClientConfig {
        self.token = token.into();
        self
    }

    /// Sets the number of connections.
    #[must_use]
    pub fn connections(mut self, n: usize) -> ClientConfig {
        self.connections = n;
        self
    }

    /// Sets the linger.
    #[must_use]
    pub fn linger(mut self, linger: Duration) -> ClientConfig {
        self.linger = linger;
        self
    }
}

/// Why a client call failed.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No TCP connection to the server.
    #[error(
        "could not connect to {addr}: {source}; is `switchyard serve` running and listening there?"
    )]
    Connect {
        /// The address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server refused the handshake.
    #[error("{addr} refused the handshake ({code}): {message}")]
    Refused {
        /// The address.
        addr: String,
        /// The server's code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// The peer sent something this protocol does not allow here.
    #[error("protocol error from the server: {0}")]
    Protocol(String),
    /// Reading or writing a frame failed.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The connection broke before the reply arrived; the request may or may not have run.
    #[error("the connection broke before the reply arrived")]
    Disconnected,
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// No reply within the ask timeout.
    #[error("no reply from {agent:?} within {timeout:?}")]
    Timeout {
        /// The agent.
        agent: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server answered the ask with an error.
    #[error("ask to {agent:?} failed ({code}): {message}")]
    Failed {
        /// The agent.
        agent: String,
        /// The server's code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// A setting is out of range.
    #[error("invalid client setting: {0}")]
    Config(String),
}

/// Counters of one client (all connections).
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Messages written in tells.
    pub tells_sent: AtomicU64,
    /// Tell messages the server reported as not accepted.
    pub tells_refused: AtomicU64,
    /// Asks written.
    pub asks_sent: AtomicU64,
    /// Frames written (one write each).
    pub frames_sent: AtomicU64,
    /// Reconnections after a broken connection.
    pub reconnects: AtomicU64,
}

struct Inner {
    slots: Vec<mpsc::Sender<Op>>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
    next: AtomicUsize,
    stats: Arc<ClientStats>,
    ask_timeout: Duration,
}

/// A pooled, batching, multiplexing client. See the module docs.
///
/// ```no_run
/// use switchyard_client::{Client, ClientConfig};
/// # async fn demo() -> Result<(), switchyard_client::ClientError> {
/// let client = Client::connect(ClientConfig::new("127.0.0.1:7700").token("secret")).await?;
/// client.tell("counter", "").await?;
/// let reply = client.ask("echo", "ping").await?;
/// assert_eq!(&reply.payload[..], b"ping");
/// client.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connections", &self.inner.slots.len())
            .finish()
    }
}

impl Client {
    /// Opens `config.connections` connections and handshakes on each; fails if any cannot.
    ///
    /// # Cancel safety
    /// Cancel safe: dropping the future closes what was opened.
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.connections == 0 || config.max_batch == 0 || config.queue_capacity == 0 {
            return Err(ClientError::Config(
                "connections, max_batch and queue_capacity must be at least 1".into(),
            ));
        }
        let stats = Arc::new(ClientStats::default());
        let config = Arc::new(config);
        let mut slots = Vec::with_capacity(config.connections);
        let mut tasks = Vec::with_capacity(config.connections);
        for _ in 0..config.connections {
            let (tx, rx) = mpsc::channel(config.queue_capacity);
            let slot = Slot::connect(config.clone(), stats.clone()).await?;
            tasks.push(tokio::spawn(slot.run(rx)));
            slots.push(tx);
        }
        let inner = Arc::new(Inner {
            slots,
            tasks: std::sync::Mutex::new(tasks),
            next: AtomicUsize::new(0),
            stats,
            ask_timeout: config.ask_timeout,
        });
        tokio::spawn(timer_anchor(Arc::downgrade(&inner)));
        Ok(Client { inner })
    }

    fn slot_for(&self, agent: &str) -> &mpsc::Sender<Op> {
        let n = self.inner.slots.len();
        let i = if n == 1 {
            0
        } else {
            (fnv(agent.as_bytes()) % n as u64) as usize
        };
        &self.inner.slots[i]
    }

    /// Queues one message for `agent`.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled while the queue is full, nothing was queued.
    pub async fn tell(&self, agent: &str, message: impl Into<Message>) -> Result<(), ClientError> {
        let op = Op::Tell {
            agent: agent.into(),
            messages: vec![message.into()],
        };
        self.slot_for(agent)
            .send(op)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Queues many messages for `agent`; they travel in one request.
    ///
    /// # Cancel safety
    /// As [`Client::tell`].
    pub async fn tell_batch(&self, agent: &str, messages: Vec<Message>) -> Result<(), ClientError> {
        if messages.is_empty() {
            return Ok(());
        }
        let op = Op::Tell {
            agent: agent.into(),
            messages,
        };
        self.slot_for(agent)
            .send(op)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Asks `agent` with the configured default timeout.
    ///
    /// # Cancel safety
    /// As [`Client::ask_timeout`].
    pub async fn ask(
        &self,
        agent: &str,
        message: impl Into<Message>,
    ) -> Result<Message, ClientError> {
        self.ask_timeout(agent, message, self.inner.ask_timeout)
            .await
    }

    /// Asks `agent` and waits at most `timeout` for the reply (the server gets
    /// the same timeout).
    ///
    /// Many asks from one task: bound how many are pending at once (for
    /// example `StreamExt::buffer_unordered(n)`, or a cap on a
    /// `FuturesUnordered`). Once the op queues are full, each pending ask waits
    /// for room, and a `FuturesUnordered` holding hundreds of thousands of
    /// such waiters spends its time polling them (futures-rs issue 2526):
    /// `service_load` without a cap took 20-120 s to drain one stall.
    ///
    /// # Cancel safety
    /// Cancel safe for the caller; an ask already written still runs on the
    /// server and its reply is dropped.
    pub async fn ask_timeout(
        &self,
        agent: &str,
        message: impl Into<Message>,
        timeout: Duration,
    ) -> Result<Message, ClientError> {
        let (tx, rx) = oneshot::channel();
        let timeout_ms = u32::try_from(timeout.as_millis())
            .unwrap_or(u32::MAX)
            .max(1);
        let op = Op::Ask {
            agent: agent.into(),
            timeout_ms,
            message: message.into(),
            reply: tx,
        };
        let n = self.inner.slots.len();
        let slot = &self.inner.slots[self.inner.next.fetch_add(1, Ordering::Relaxed) % n];
        let work = async {
            slot.send(op).await.map_err(|_| ClientError::Closed)?;
            rx.await.map_err(|_| ClientError::Disconnected)?
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(ClientError::Failed { code, message, .. })) => Err(ClientError::Failed {
                agent: agent.to_owned(),
                code,
                message,
            }),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(ClientError::Timeout {
                agent: agent.to_owned(),
                timeout,
            }),
        }
    }

    /// The client's counters.
    pub fn stats(&self) -> &ClientStats {
        &self.inner.stats
    }

    /// Flushes what is queued and closes every connection. Other clones of
    /// this client keep their connections until they are dropped too.
    ///
    /// # Cancel safety
    /// Cancel safe; the connection tasks finish on their own.
    pub async fn close(self) {
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        drop(inner.slots);
        let tasks = std::mem::take(&mut *inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Message {
        Message::new(s.as_bytes())
    }
}

impl From<Vec<u8>> for Message {
    fn from(v: Vec<u8>) -> Message {
        Message::new(v)
    }
}

impl From<bytes::Bytes> for Message {
    fn from(b: bytes::Bytes) -> Message {
        Message::new(b)
    }
}

/// FNV-1a, to map an agent name to a connection.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// How far ahead the timer anchor keeps a timer armed.
const TIMER_ANCHOR: Duration = Duration::from_millis(20);

/// Keeps a timer armed in the Tokio time driver at most [`TIMER_ANCHOR`]
/// ahead while the client lives, so that arming an ask's timeout (one per
/// ask) never has to wake a parked worker: Tokio's time driver does that
/// whenever a new timer is due before its next wake-up. The runtime does the
/// same for its asks; see `docs/decisions/0012-timer-anchor.md`.
async fn timer_anchor(inner: std::sync::Weak<Inner>) {
    while inner.strong_count() > 0 {
        tokio::time::sleep(TIMER_ANCHOR).await;
    }
}
