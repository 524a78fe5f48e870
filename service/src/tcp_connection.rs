//! One binary-protocol connection: handshake, reader, writer (which also
//! drives the connection's asks).
//! The contract (ownership, bounds, shutdown) is in [`crate::tcp`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use switchyard_client::codec::{CodecError, FrameCodec, RawCodec};
use switchyard_client::wire::{
    ClientFrame, ErrorCode, HelloError, PROTOCOL_VERSION, Request, Response, ServerFrame,
    decode_hello,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

use crate::convert::{ask_code, from_envelope, send_code, to_envelope};
use crate::server::Shared;

type Codec = FrameCodec<ClientFrame, ServerFrame>;

/// Most responses packed into one frame: large enough to amortise the write,
/// small enough that a frame stays far below any sane frame limit.
const MAX_RESPONSES_PER_FRAME: usize = 1024;

/// Tell messages handed to the runtime per mailbox operation: below the
/// default mailbox capacity, so a big tell request never exceeds a mailbox.
const TELL_CHUNK: usize = 256;

/// After a fatal error, how long input is discarded while the client reads the error.
const LINGER_AFTER_ERROR: Duration = Duration::from_millis(500);

type Ask = BoxFuture<'static, Response>;

/// What the writer sends.
enum Out {
    Response(Response),
    Frame(ServerFrame),
    /// Written, then the connection closes.
    Fatal(ServerFrame),
}

/// Asks the reader started, on their way to the writer, which drives them
/// to their replies (decision 0025).
///
/// Handing an ask over does not wake the writer: the reader polls each ask
/// once with this hand-off as its waker, so the agent's reply is what wakes
/// the writer, which then takes the asks. A wake through the queue instead
/// ran the writer once per frame for nothing, and pushed the woken agent out
/// of its worker's next-task slot, which woke the other worker to steal it.
struct Handoff {
    asks: Mutex<Vec<Ask>>,
    writer: AtomicWaker,
    /// Wakes so far, so the reader can tell a reply that came before its
    /// ask was in `asks` (that wake found nothing to take).
    wakes: AtomicU64,
}

impl Handoff {
    fn new() -> Arc<Handoff> {
        Arc::new(Handoff {
            asks: Mutex::new(Vec::new()),
            writer: AtomicWaker::new(),
            wakes: AtomicU64::new(0),
        })
    }

    /// Starts `ask` and hands it to the writer, or returns its response if
    /// it finished at once.
    fn start(self: &Arc<Self>, mut ask: Ask) -> Option<Response> {
        let before = self.wakes.load(Ordering::SeqCst);
        let waker = Waker::from(self.clone());
        if let Poll::Ready(response) = ask.as_mut().poll(&mut Context::from_waker(&waker)) {
            return Some(response);
        }
        self.lock().push(ask);
        if self.wakes.load(Ordering::SeqCst) != before {
            // The reply came before the ask was in the list: wake again.
            self.wake_by_ref();
        }
        None
    }

    /// Moves the handed-over asks into `asks`.
    fn take_into(&self, asks: &mut FuturesUnordered<Ask>) {
        let mut list = self.lock();
        if !list.is_empty() {
            asks.extend(list.drain(..));
        }
    }

    /// Ready when asks wait to be taken; registers the writer's waker first.
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.writer.register(cx.waker());
        if self.lock().is_empty() {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Ask>> {
        self.asks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wake for Handoff {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        self.writer.wake();
    }
}

struct Conn {
    shared: Arc<Shared>,
    peer: SocketAddr,
    tx: mpsc::Sender<Out>,
    handoff: Arc<Handoff>,
    /// Cancelled by the writer when the connection is dead (write stalled or failed).
    dead: CancellationToken,
    in_flight: Arc<Semaphore>,
}

/// Serves one connection to the end.
pub(crate) async fn serve(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let limits = &shared.config.limits;
    let (r, w) = stream.into_split();
    let (tx, rx) = mpsc::channel(limits.outbound_queue);
    let dead = CancellationToken::new();
    let handoff = Handoff::new();
    let writer = FramedWrite::new(w, Codec::new(limits.max_frame_bytes));
    let write_timeout = Duration::from_millis(limits.write_timeout_ms);
    let writer = tokio::spawn(write_loop(
        writer,
        rx,
        handoff.clone(),
        write_timeout,
        dead.clone(),
        shared.clone(),
    ));
    let mut reader = FramedRead::new(r, RawCodec(FrameCodec::new(limits.max_frame_bytes)));
    let conn = Conn {
        in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
        shared,
        peer,
        tx,
        handoff: handoff.clone(),
        dead,
    };
    let fatal = conn.run(&mut reader).await;
    drop(conn);
    let _ = writer.await;
    // Asks handed over after the writer stopped: the reply slot of each holds
    // the hand-off as its waker, so they must be dropped here, not leak.
    handoff.lock().clear();
    if fatal {
        // Let the client read the error frame: a close with unread input would send a reset.
        let mut rest = reader.into_inner();
        let mut sink = [0u8; 4096];
        let deadline = Instant::now() + LINGER_AFTER_ERROR;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, rest.read(&mut sink)).await {
            if n == 0 {
                break;
            }
        }
    }
}

fn codec_code(e: &CodecError) -> ErrorCode {
    match e {
        CodecError::TooLarge { .. } => ErrorCode::FrameTooLarge,
        CodecError::Truncated { .. } => ErrorCode::Truncated,
        _ => ErrorCode::BadFrame,
    }
}

impl Conn {
    /// Reads until the client leaves or an error; true when a fatal error was sent.
    async fn run(&self, reader: &mut FramedRead<OwnedReadHalf, RawCodec>) -> bool {
        let limits = &self.shared.config.limits;
        let handshake = Duration::from_millis(limits.handshake_timeout_ms);
        let first = tokio::select! {
            _ = self.shared.stop.cancelled() => return self.fatal(ErrorCode::ShuttingDown, "the server is shutting down").await,
            r = tokio::time::timeout(handshake, reader.next()) => r,
        };
        let body = match first {
            Err(_) => {
                let msg = format!(
                    "no Hello frame within limits.handshake_timeout_ms = {}",
                    limits.handshake_timeout_ms
                );
                return self.fatal(ErrorCode::HandshakeRequired, &msg).await;
            }
            Ok(None) => return false,
            Ok(Some(Err(e))) => return self.fatal(codec_code(&e), &e.to_string()).await,
            Ok(Some(Ok(body))) => body,
        };
        match decode_hello(&body) {
            Ok(h) if !crate::auth::token_ok(self.shared.config.token.as_deref(), &h.token) => {
                self.shared
                    .stats
                    .auth_failures
                    .fetch_add(1, Ordering::Relaxed);
                let msg = "wrong or missing token; send the server's auth.token in Hello";
                return self.fatal(ErrorCode::Unauthorized, msg).await;
            }
            Ok(h) => tracing::debug!(peer = %self.peer, client = %h.client, "handshake ok"),
            Err(HelloError::Version(v)) => {
                let msg = format!(
                    "this server speaks protocol version {PROTOCOL_VERSION}, the client sent {v}"
                );
                return self.fatal(ErrorCode::UnsupportedVersion, &msg).await;
            }
            Err(HelloError::NotHello) => {
                let msg = "the first frame must be Hello{version, token, client}";
                return self.fatal(ErrorCode::HandshakeRequired, msg).await;
            }
            Err(HelloError::Malformed(m)) => return self.fatal(ErrorCode::BadFrame, &m).await,
        }
        let welcome = ServerFrame::Welcome {
            version: PROTOCOL_VERSION,
            max_frame_bytes: u32::try_from(limits.max_frame_bytes).unwrap_or(u32::MAX),
            max_in_flight: u32::try_from(limits.max_in_flight).unwrap_or(u32::MAX),
            max_ask_timeout_ms: u32::try_from(limits.max_ask_timeout_ms).unwrap_or(u32::MAX),
        };
        if !self.send(Out::Frame(welcome)).await {
            return false;
        }
        let idle = Duration::from_millis(limits.idle_timeout_ms);
        // Made once and polled by reference: a frame costs no timer-wheel or
        // waiter-list registration. The idle timer is only moved when it fires.
        let dead = self.dead.cancelled();
        let stop = self.shared.stop.cancelled();
        let idle_timer = tokio::time::sleep(idle);
        tokio::pin!(dead, stop, idle_timer);
        let mut last_frame = Instant::now();
        loop {
            let next = tokio::select! {
                biased;
                _ = &mut dead => return false,
                _ = &mut stop => {
                    self.finish_in_flight().await;
                    return self.fatal(ErrorCode::ShuttingDown, "the server is shutting down; reconnect later").await;
                }
                n = reader.next() => n,
                _ = &mut idle_timer => {
                    let now = Instant::now();
                    if last_frame + idle > now {
                        idle_timer.as_mut().reset(last_frame + idle);
                        continue;
                    }
                    if self.in_flight.available_permits() < limits.max_in_flight {
                        idle_timer.as_mut().reset(now + idle);
                        continue;
                    }
                    let msg = format!("nothing received for limits.idle_timeout_ms = {}", limits.idle_timeout_ms);
                    return self.fatal(ErrorCode::IdleTimeout, &msg).await;
                }
            };
            last_frame = Instant::now();
            let frame = match next {
                None => return false,
                Some(Err(e)) => {
                    self.shared
                        .stats
                        .protocol_errors
                        .fetch_add(1, Ordering::Relaxed);
                    return self.fatal(codec_code(&e), &e.to_string()).await;
                }
                Some(Ok(body)) => match switchyard_client::codec::decode_body::<ClientFrame>(&body)
                {
                    Ok(f) => f,
                    Err(e) => {
                        self.shared
                            .stats
                            .protocol_errors
                            .fetch_add(1, Ordering::Relaxed);
                        return self.fatal(codec_code(&e), &e.to_string()).await;
                    }
                },
            };
            let ok = match frame {
                ClientFrame::Requests(reqs) => self.requests(reqs).await,
                ClientFrame::Ping { nonce } => {
                    self.send(Out::Frame(ServerFrame::Pong { nonce })).await
                }
                ClientFrame::Hello(_) => {
                    return self
                        .fatal(ErrorCode::HandshakeRequired, "Hello sent twice")
                        .await;
                }
            };
            if !ok {
                return false;
            }
        }
    }

    /// Handles one frame's requests; false when the connection is done.
    async fn requests(&self, reqs: Vec<Request>) -> bool {
        for req in reqs {
            let ok = match req {
                Request::Tell { agent, messages } => self.tell(agent, messages).await,
                Request::Ask {
                    id,
                    agent,
                    timeout_ms,
                    message,
                } => self.ask(id, agent, timeout_ms, message).await,
            };
            if !ok {
                return false;
            }
        }
        true
    }

    async fn tell(&self, agent: String, messages: Vec<switchyard_client::Message>) -> bool {
        let stats = &self.shared.stats;
        stats
            .tcp_tells
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        let mut iter = messages.into_iter().peekable();
        while iter.peek().is_some() {
            let chunk: Vec<_> = iter
                .by_ref()
                .take(TELL_CHUNK)
                .map(|m| to_envelope(m, false))
                .collect();
            let n = chunk.len();
            let result = tokio::select! {
                _ = self.dead.cancelled() => return false,
                _ = self.shared.stop.cancelled() => {
                    // Waiting for mailbox room ends with the service; the chunk was not accepted.
                    stats.refused_shutting_down.fetch_add((n + iter.len()) as u64, Ordering::Relaxed);
                    let count = u32::try_from(n + iter.len()).unwrap_or(u32::MAX);
                    let message = "the server is shutting down; these messages were not accepted".to_owned();
                    let failed = Response::TellFailed { agent, count, code: ErrorCode::ShuttingDown, message };
                    return self.send(Out::Response(failed)).await;
                }
                r = self.shared.rt.tell_batch(&agent, chunk) => r,
            };
            if let Err(e) = result {
                let code = send_code(&e);
                let message = e.to_string();
                let count = u32::try_from(e.into_message().len() + iter.len()).unwrap_or(u32::MAX);
                let failed = Response::TellFailed {
                    agent,
                    count,
                    code,
                    message,
                };
                return self.send(Out::Response(failed)).await;
            }
        }
        true
    }

    async fn ask(
        &self,
        id: u64,
        agent: String,
        timeout_ms: u32,
        message: switchyard_client::Message,
    ) -> bool {
        let shared = &self.shared;
        shared.stats.tcp_asks.fetch_add(1, Ordering::Relaxed);
        if timeout_ms == 0 {
            let failed = Response::AskFailed {
                id,
                code: ErrorCode::InvalidRequest,
                message: "timeout_ms is 0; use at least 1".into(),
            };
            return self.send(Out::Response(failed)).await;
        }
        let permit = tokio::select! {
            _ = self.dead.cancelled() => return false,
            p = self.in_flight.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return false,
            },
        };
        let timeout = Duration::from_millis(
            u64::from(timeout_ms).min(shared.config.limits.max_ask_timeout_ms),
        );
        let rt = shared.rt.clone();
        // Driven by the writer, not a task of its own: the reply wakes the
        // writer directly, one task and one hop fewer per ask (decision 0014).
        let ask = async move {
            let response = match rt.ask(&agent, to_envelope(message, true), timeout).await {
                Ok(reply) => Response::Reply {
                    id,
                    message: from_envelope(&reply),
                },
                Err(e) => Response::AskFailed {
                    id,
                    code: ask_code(&e),
                    message: e.to_string(),
                },
            };
            drop(permit);
            response
        };
        match self.handoff.start(ask.boxed()) {
            Some(response) => self.send(Out::Response(response)).await,
            None => true,
        }
    }

    /// Waits until every ask of this connection has queued its response.
    async fn finish_in_flight(&self) {
        let all = u32::try_from(self.shared.config.limits.max_in_flight).unwrap_or(u32::MAX);
        tokio::select! {
            _ = self.dead.cancelled() => {}
            _ = self.in_flight.acquire_many(all) => {}
        }
    }

    /// Queues for the writer; false when the connection is dead.
    async fn send(&self, out: Out) -> bool {
        tokio::select! {
            _ = self.dead.cancelled() => false,
            r = self.tx.send(out) => r.is_ok(),
        }
    }

    async fn fatal(&self, code: ErrorCode, message: &str) -> bool {
        tracing::info!(peer = %self.peer, %code, message, "closing connection");
        self.send(Out::Fatal(ServerFrame::Error {
            code,
            message: message.to_owned(),
        }))
        .await;
        true
    }
}

/// A finished ask or a queued item, whichever is ready now; never waits.
fn ready(
    rx: &mut mpsc::Receiver<Out>,
    handoff: &Handoff,
    asks: &mut FuturesUnordered<Ask>,
) -> Option<Out> {
    handoff.take_into(asks);
    // Polling with a no-op waker is fine here: the writer's next wait polls
    // `asks` again with its own waker before it sleeps.
    if let Some(Some(r)) = asks.next().now_or_never() {
        return Some(Out::Response(r));
    }
    rx.try_recv().ok()
}

async fn write_loop(
    mut w: FramedWrite<OwnedWriteHalf, Codec>,
    mut rx: mpsc::Receiver<Out>,
    handoff: Arc<Handoff>,
    write_timeout: Duration,
    dead: CancellationToken,
    shared: Arc<Shared>,
) {
    let mut responses: Vec<Response> = Vec::with_capacity(64);
    let mut frames: Vec<ServerFrame> = Vec::with_capacity(4);
    // The connection's asks in progress (at most `max_in_flight`: each holds a permit).
    let mut asks: FuturesUnordered<Ask> = FuturesUnordered::new();
    let mut open = true;
    'outer: loop {
        handoff.take_into(&mut asks);
        let first = tokio::select! {
            Some(r) = asks.next(), if !asks.is_empty() => Out::Response(r),
            out = rx.recv(), if open => match out {
                Some(out) => out,
                None => {
                    // The reader is done; finish the asks it started (all
                    // handed over before it dropped its sender).
                    open = false;
                    continue;
                }
            },
            () = std::future::poll_fn(|cx| handoff.poll_ready(cx)), if open => continue,
            else => break,
        };
        let mut fatal = false;
        let mut next = Some(first);
        while let Some(out) = next.take() {
            match out {
                Out::Response(r) => responses.push(r),
                Out::Frame(f) | Out::Fatal(f) if responses.is_empty() => {
                    fatal = matches!(f, ServerFrame::Error { .. });
                    frames.push(f);
                }
                Out::Frame(f) | Out::Fatal(f) => {
                    fatal = matches!(f, ServerFrame::Error { .. });
                    frames.push(ServerFrame::Responses(std::mem::take(&mut responses)));
                    frames.push(f);
                }
            }
            if fatal || responses.len() >= MAX_RESPONSES_PER_FRAME {
                break;
            }
            // No yield for more before the write: an agent answers its
            // whole batch in one poll, and a round's wait cost every ask
            // 30 µs at the median (decision 0026).
            next = ready(&mut rx, &handoff, &mut asks);
        }
        if !responses.is_empty() {
            frames.push(ServerFrame::Responses(std::mem::take(&mut responses)));
        }
        let write = async {
            for f in frames.drain(..) {
                w.feed(&f).await?;
            }
            w.flush().await
        };
        match tokio::time::timeout(write_timeout, write).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "write failed; closing connection");
                break 'outer;
            }
            Err(_) => {
                shared.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(timeout = ?write_timeout, "client is not reading its replies; closing connection");
                break 'outer;
            }
        }
        frames.clear();
        if fatal {
            break;
        }
    }
    dead.cancel();
    drop(rx);
    let _ = tokio::time::timeout(write_timeout, w.get_mut().shutdown()).await;
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Counts its wakes; stands for the writer task.
    #[derive(Default)]
    struct Writer(AtomicUsize);

    impl Wake for Writer {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }

        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn reply() -> Response {
        Response::AskFailed {
            id: 1,
            code: ErrorCode::NoReply,
            message: String::new(),
        }
    }

    /// The interleaving the wake counter exists for: the reply comes while
    /// the reader is still polling, the writer runs at once and finds no ask,
    /// and only then is the ask handed over. The writer must be woken again.
    #[test]
    fn a_reply_before_the_hand_off_wakes_the_writer_again() {
        let handoff = Handoff::new();
        let writer = Arc::new(Writer::default());
        let writer_waker = Waker::from(writer.clone());
        let mut writer_cx = Context::from_waker(&writer_waker);
        assert!(handoff.poll_ready(&mut writer_cx).is_pending());

        let (h, w) = (handoff.clone(), writer_waker.clone());
        let mut polled = false;
        let ask = std::future::poll_fn(move |cx| {
            if polled {
                return Poll::Ready(reply());
            }
            polled = true;
            cx.waker().wake_by_ref(); // the agent replies at once
            // The woken writer runs before the hand-off and finds nothing.
            assert!(h.poll_ready(&mut Context::from_waker(&w)).is_pending());
            Poll::Pending
        });
        assert!(handoff.start(ask.boxed()).is_none());
        assert_eq!(
            writer.0.load(Ordering::SeqCst),
            2,
            "woken by the reply, then again"
        );
        assert!(handoff.poll_ready(&mut writer_cx).is_ready());
        let mut asks = FuturesUnordered::new();
        handoff.take_into(&mut asks);
        assert!(matches!(
            asks.next().now_or_never(),
            Some(Some(Response::AskFailed { .. }))
        ));
    }

    /// A reply after the hand-off needs no second wake.
    #[test]
    fn a_reply_after_the_hand_off_wakes_the_writer_once() {
        let handoff = Handoff::new();
        let writer = Arc::new(Writer::default());
        let writer_waker = Waker::from(writer.clone());
        assert!(
            handoff
                .poll_ready(&mut Context::from_waker(&writer_waker))
                .is_pending()
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let ask = async move {
            let _ = rx.await;
            reply()
        };
        assert!(handoff.start(ask.boxed()).is_none());
        assert_eq!(
            writer.0.load(Ordering::SeqCst),
            0,
            "handing over wakes no one"
        );
        tx.send(()).unwrap();
        assert_eq!(writer.0.load(Ordering::SeqCst), 1);
    }
}
