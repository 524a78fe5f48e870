//! One pooled connection: handshake, the batching writer, the reply reader,
//! reconnect with backoff. See [`crate::client`] for the data path.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::client::{ClientConfig, ClientError, ClientStats};
use crate::codec::FrameCodec;
use crate::wire::{
    ClientFrame, ErrorCode, Hello, Message, PROTOCOL_VERSION, Request, Response, ServerFrame,
};

type Codec = FrameCodec<ServerFrame, ClientFrame>;
type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Message, ClientError>>>>>;

/// After the client closes, how long the reader waits for the server to finish
/// answering before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Work queued for a connection.
#[derive(Debug)]
pub(crate) enum Op {
    Tell {
        agent: Box<str>,
        messages: Vec<Message>,
    },
    Ask {
        agent: Box<str>,
        timeout_ms: u32,
        message: Message,
        reply: oneshot::Sender<Result<Message, ClientError>>,
    },
}

/// A connection slot of the pool: the live session and what it needs to reconnect.
pub(crate) struct Slot {
    config: Arc<ClientConfig>,
    stats: Arc<ClientStats>,
    session: Option<Session>,
}

struct Session {
    reader: FramedRead<OwnedReadHalf, Codec>,
    writer: FramedWrite<OwnedWriteHalf, Codec>,
}

enum End {
    /// The client closed the op queue.
    Closed,
    /// The connection broke.
    Broken(ClientError),
}

impl Slot {
    pub(crate) async fn connect(
        config: Arc<ClientConfig>,
        stats: Arc<ClientStats>,
    ) -> Result<Slot, ClientError> {
        let session = Session::open(&config).await?;
        Ok(Slot {
            config,
            stats,
            session: Some(session),
        })
    }

    /// Runs until the op queue closes, reconnecting as needed.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Op>) {
        let mut backoff = self.config.backoff_initial;
        loop {
            let session = match self.session.take() {
                Some(s) => s,
                None => {
                    if rx.is_closed() && rx.is_empty() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.config.backoff_max);
                    match Session::open(&self.config).await {
                        Ok(s) => {
                            self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                            backoff = self.config.backoff_initial;
                            s
                        }
                        Err(e) => {
                            tracing::warn!(addr = %self.config.addr, error = %e, "reconnect failed; backing off");
                            continue;
                        }
                    }
                }
            };
            match session.run(&mut rx, &self.config, &self.stats).await {
                End::Closed => return,
                End::Broken(e) => {
                    tracing::warn!(addr = %self.config.addr, error = %e, "connection broke; reconnecting")
                }
            }
        }
    }
}

impl Session {
    async fn open(config: &ClientConfig) -> Result<Session, ClientError> {
        let addr = config.addr.clone();
        let open = async {
            let stream =
                TcpStream::connect(&addr)
                    .await
                    .map_err(|source| ClientError::Connect {
                        addr: addr.clone(),
                        source,
                    })?;
            stream
                .set_nodelay(true)
                .map_err(|source| ClientError::Connect {
                    addr: addr.clone(),
                    source,
                })?;
            let (r, w) = stream.into_split();
            let mut reader = FramedRead::new(r, Codec::new(config.max_frame));
            let mut writer = FramedWrite::new(w, Codec::new(config.max_frame));
            let hello = Hello {
                version: PROTOCOL_VERSION,
                token: config.token.clone(),
                client: "switchyard-client".into(),
            };
            writer.send(&ClientFrame::Hello(hello)).await?;
            match reader.next().await {
                Some(Ok(ServerFrame::Welcome { .. })) => Ok(Session { reader, writer }),
                Some(Ok(ServerFrame::Error { code, message })) => Err(ClientError::Refused {
                    addr: addr.clone(),
                    code,
                    message,
                }),
                Some(Ok(other)) => Err(ClientError::Protocol(format!(
                    "expected Welcome, got {other:?}"
                ))),
                Some(Err(e)) => Err(e.into()),
                None => Err(ClientError::Protocol(
                    "the server closed the connection during the handshake".into(),
                )),
            }
        };
        match tokio::time::timeout(config.connect_timeout, open).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Connect {
                addr: config.addr.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect + handshake timed out",
                ),
            }),
        }
    }

    async fn run(
        self,
        rx: &mut mpsc::Receiver<Op>,
        config: &ClientConfig,
        stats: &Arc<ClientStats>,
    ) -> End {
        let Session { reader, mut writer } = self;
        let pending: Pending = Arc::default();
        let mut read_task = tokio::spawn(read_loop(reader, pending.clone(), stats.clone()));
        let mut batch: Vec<Request> = Vec::with_capacity(64);
        let mut next_id: u64 = 1;
        let end = loop {
            let first = tokio::select! {
                biased;
                r = &mut read_task => break End::Broken(r.unwrap_or_else(|e| ClientError::Protocol(format!("reader task failed: {e}")))),
                op = rx.recv() => op,
            };
            let Some(first) = first else {
                // The client closed: say goodbye by half-closing, let the server answer what it has.
                let _ = writer.get_mut().shutdown().await;
                let _ = tokio::time::timeout(CLOSE_WAIT, &mut read_task).await;
                read_task.abort();
                break End::Closed;
            };
            let mut acc = Accumulator {
                batch: &mut batch,
                pending: &pending,
                next_id: &mut next_id,
                messages: 0,
                asks: 0,
            };
            acc.push(first);
            acc.drain(rx, config.max_batch);
            if acc.messages < config.max_batch {
                // Let the callers that are already runnable queue their ops too,
                // so concurrent asks share one write instead of one syscall each.
                // Costs one trip through the scheduler, no timer.
                tokio::task::yield_now().await;
                acc.drain(rx, config.max_batch);
            }
            if acc.asks == 0 && !config.linger.is_zero() && acc.messages < config.max_batch {
                let deadline = tokio::time::Instant::now() + config.linger;
                while acc.messages < config.max_batch {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(op)) => acc.push(op),
                        _ => break,
                    }
                }
            }
            let (messages, asks) = (acc.messages - acc.asks, acc.asks);
            let frame = ClientFrame::Requests(std::mem::take(&mut batch));
            if let Err(e) = writer.send(&frame).await {
                break End::Broken(e.into());
            }
            stats.frames_sent.fetch_add(1, Ordering::Relaxed);
            stats
                .tells_sent
                .fetch_add(messages as u64, Ordering::Relaxed);
            stats.asks_sent.fetch_add(asks as u64, Ordering::Relaxed);
            if let ClientFrame::Requests(mut v) = frame {
                v.clear();
                batch = v;
            }
        };
        read_task.abort();
        let waiting: Vec<_> = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
            .collect();
        for (_, tx) in waiting {
            let _ = tx.send(Err(ClientError::Disconnected));
        }
        end
    }
}

/// Builds one frame's requests, merging consecutive tells to the same agent.
struct Accumulator<'a> {
    batch: &'a mut Vec<Request>,
    pending: &'a Pending,
    next_id: &'a mut u64,
    messages: usize,
    asks: usize,
}

impl Accumulator<'_> {
    /// Takes what is queued now, up to `max` messages in the frame.
    fn drain(&mut self, rx: &mut mpsc::Receiver<Op>, max: usize) {
        while self.messages < max {
            match rx.try_recv() {
                Ok(op) => self.push(op),
                Err(_) => break,
            }
        }
    }

    fn push(&mut self, op: Op) {
        match op {
            Op::Tell { agent, messages } => {
                self.messages += messages.len();
                if let Some(Request::Tell {
                    agent: last,
                    messages: queued,
                }) = self.batch.last_mut()
                    && **last == *agent
                {
                    queued.extend(messages);
                    return;
                }
                self.batch.push(Request::Tell {
                    agent: agent.into(),
                    messages,
                });
            }
            Op::Ask {
                agent,
                timeout_ms,
                message,
                reply,
            } => {
                if reply.is_closed() {
                    return; // the caller gave up before the ask was written
                }
                let id = *self.next_id;
                *self.next_id += 1;
                self.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(id, reply);
                self.messages += 1;
                self.asks += 1;
                self.batch.push(Request::Ask {
                    id,
                    agent: agent.into(),
                    timeout_ms,
                    message,
                });
            }
        }
    }
}

async fn read_loop(
    mut reader: FramedRead<OwnedReadHalf, Codec>,
    pending: Pending,
    stats: Arc<ClientStats>,
) -> ClientError {
    loop {
        let frame = match reader.next().await {
            Some(Ok(f)) => f,
            Some(Err(e)) => return e.into(),
            None => return ClientError::Disconnected,
        };
        match frame {
            ServerFrame::Responses(responses) => {
                for r in responses {
                    let (id, result) = match r {
                        Response::Reply { id, message } => (id, Ok(message)),
                        Response::AskFailed { id, code, message } => (
                            id,
                            Err(ClientError::Failed {
                                agent: String::new(),
                                code,
                                message,
                            }),
                        ),
                        Response::TellFailed {
                            agent,
                            count,
                            code,
                            message,
                        } => {
                            stats
                                .tells_refused
                                .fetch_add(u64::from(count), Ordering::Relaxed);
                            tracing::debug!(%agent, count, %code, %message, "server refused tells");
                            continue;
                        }
                    };
                    let waiter = pending
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    if let Some(tx) = waiter {
                        let _ = tx.send(result);
                    }
                }
            }
            ServerFrame::Error { code, message } => {
                return if code == ErrorCode::ShuttingDown {
                    ClientError::Disconnected
                } else {
                    ClientError::Protocol(format!(
                        "server closed the connection ({code}): {message}"
                    ))
                };
            }
            ServerFrame::Pong { .. } => {}
            ServerFrame::Welcome { .. } => return ClientError::Protocol("a second Welcome".into()),
        }
    }
}
