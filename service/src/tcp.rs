//! The binary protocol listener: accept loop and one task pair per connection.
//!
//! ```text
//!  accept loop: take a connection permit (max_connections) ─► accept ─► spawn
//!
//!  per connection:
//!   socket ─► reader task ── tells: rt.tell_batch (waits on full `block` mailboxes)
//!                │         ── asks: take an in-flight permit (max_in_flight),
//!                │                   start rt.ask (polled once: the message is
//!                │                   sent), put the pending ask on the hand-off
//!                │                   list, waking no one ─────────────────────┐
//!                └── errors, pongs, TellFailed ─► outbound queue              │
//!                                                 (outbound_queue entries)    │
//!                                                                ▼            ▼
//!                     writer task: woken by a queued item or by an agent's
//!                     reply (decision 0025), takes the handed-over asks and
//!                     drives them, drains finished asks and queued responses
//!                     into one frame, writes, each write bounded by
//!                     write_timeout ─► socket
//! ```
//!
//! - **Ownership.** The reader owns the read half and the protocol state; the
//!   writer owns the write half and the pending asks, each of which owns its
//!   permit.
//! - **Backpressure.** Connections beyond `max_connections` wait in the
//!   kernel backlog (the permit is taken before `accept`). A connection with
//!   `max_in_flight` asks in progress is not read until one completes. The
//!   outbound queue is bounded: when it is full, the reader waits, which
//!   stops reading. A client that stops reading its replies stalls
//!   the writer; after `write_timeout` the connection is closed, so its memory
//!   is bounded by the queue, the in-flight asks and the socket buffers.
//! - **Ordering.** Requests are taken in order; tells to one agent from one
//!   connection are accepted in order. Responses go out in completion order.
//! - **Shutdown.** On the service's stop token the accept loop ends and every
//!   reader waits for its in-flight asks, then sends `Error{ShuttingDown}`
//!   and stops reading; the writer flushes their replies first. When the
//!   client closes its half, the writer still finishes and writes the asks
//!   already read. A fatal protocol error is written, then the server
//!   half-closes and discards input briefly, so the client reads the error
//!   instead of a reset.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::server::Shared;

/// Pause after a failed `accept` (out of file descriptors and the like), so
/// the loop does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Accepts connections until the service stops.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let limit = Arc::new(Semaphore::new(shared.config.limits.max_connections));
    loop {
        let permit = tokio::select! {
            _ = shared.stop.cancelled() => return,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (stream, peer): (tokio::net::TcpStream, SocketAddr) = tokio::select! {
            _ = shared.stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        shared.stats.connections.fetch_add(1, Ordering::Relaxed);
        let s = shared.clone();
        shared.tracker.spawn(async move {
            crate::tcp_connection::serve(stream, peer, s).await;
            drop(permit);
        });
    }
}
