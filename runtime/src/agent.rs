//! Native agents: the [`Agent`] trait and the [`Context`] it acts through.
//!
//! An agent owns its state; the runtime calls it from one task at a time, so it
//! needs no locks. It receives messages by reference: the runtime keeps each
//! message until its handler returns, so a message in flight when the agent
//! fails can be dead-lettered with the reason instead of vanishing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::address::AgentId;
use crate::cell::AgentCell;
use crate::envelope::{Envelope, MessageId, ReplyTo};
use crate::error::{AgentError, AskError, ReplyError, SendError};
use crate::payload::Payload;
use crate::runtime::{PublishReport, Runtime};

/// A native agent.
///
/// Implement [`Agent::handle`]; override [`Agent::handle_batch`] when a whole
/// batch can be handled faster than one message at a time.
///
/// ```
/// use switchyard_runtime::{Agent, AgentError, Context, Envelope};
///
/// struct Echo;
///
/// impl Agent for Echo {
///     async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
///         // Answers asks; tells have no one waiting, so the reply is refused.
///         let _ = ctx.reply(msg, msg.payload().clone());
///         Ok(())
///     }
/// }
/// ```
pub trait Agent: Send + 'static {
    /// Called once per instance before its first message (again after each restart).
    /// An error counts as a failure of the instance. With
    /// [`AgentConfig::lazy_start`](crate::AgentConfig::lazy_start) it runs when
    /// the first message arrives, not at spawn.
    fn on_start(
        &mut self,
        ctx: &mut Context,
    ) -> impl Future<Output = Result<(), AgentError>> + Send {
        let _ = ctx;
        async { Ok(()) }
    }

    /// Handles one message. An `Err` dead-letters the message with reason
    /// `failed`; a panic dead-letters it with reason `panicked`. Either way the
    /// supervisor decides whether to restart the instance.
    fn handle(
        &mut self,
        ctx: &mut Context,
        msg: &Envelope,
    ) -> impl Future<Output = Result<(), AgentError>> + Send;

    /// Handles a batch of messages taken in one wake-up.
    ///
    /// The default calls [`Agent::handle`] for each message. An override must
    /// call [`Context::set_batch_cursor`] with the index of the message it is
    /// working on, so that on a failure the runtime knows which messages were
    /// handled (those before the cursor), which one failed (at the cursor) and
    /// which are still to do (after it; they go to the next instance).
    fn handle_batch(
        &mut self,
        ctx: &mut Context,
        batch: &[Envelope],
    ) -> impl Future<Output = Result<(), AgentError>> + Send {
        async move {
            for (i, msg) in batch.iter().enumerate() {
                ctx.cursor = i;
                match ctx.sampled_span(msg) {
                    Some(span) => self.handle(ctx, msg).instrument(span).await?,
                    None => self.handle(ctx, msg).await?,
                }
            }
            Ok(())
        }
    }

    /// Called when the instance stops: on drain, removal or shutdown (not after a panic).
    fn on_stop(&mut self, ctx: &mut Context) -> impl Future<Output = ()> + Send {
        let _ = ctx;
        async {}
    }
}

/// What an agent can do besides handling: send, ask, publish, reply, stop.
pub struct Context {
    rt: Runtime,
    cell: Arc<AgentCell>,
    /// Reply slots of the asks in the current batch, taken out of the envelopes.
    replies: Vec<(MessageId, ReplyTo)>,
    pub(crate) cursor: usize,
    pub(crate) stop_requested: bool,
    /// Messages seen, for trace sampling.
    traced: u64,
}

impl Context {
    pub(crate) fn new(rt: Runtime, cell: Arc<AgentCell>) -> Context {
        Context {
            rt,
            cell,
            replies: Vec::new(),
            cursor: 0,
            stop_requested: false,
            traced: 0,
        }
    }

    pub(crate) fn cell(&self) -> &Arc<AgentCell> {
        &self.cell
    }

    /// Moves the reply slots of the batch's asks into this context.
    pub(crate) fn take_replies(&mut self, batch: &mut [Envelope]) {
        for msg in batch {
            if let Some(reply) = msg.reply.take() {
                self.replies.push((msg.id(), reply));
            }
        }
    }

    /// Puts reply slots back into messages that will be handled by a later instance.
    pub(crate) fn restore_replies(&mut self, rest: &mut [Envelope]) {
        for msg in rest {
            if let Some(pos) = self.replies.iter().position(|(id, _)| *id == msg.id()) {
                msg.reply = Some(self.replies.swap_remove(pos).1);
            }
        }
    }

    /// Drops unanswered reply slots: their askers get `NoReply`.
    pub(crate) fn clear_replies(&mut self) {
        self.replies.clear();
    }

    /// A span for `msg` if it is sampled for tracing (see
    /// `TelemetryConfig::trace_sample_rate`); `None` costs one branch.
    pub fn sampled_span(&mut self, msg: &Envelope) -> Option<tracing::Span> {
        let every = self.rt.inner.trace_every;
        if every == 0 {
            return None;
        }
        self.traced += 1;
        self.traced.is_multiple_of(every)
            .then(|| tracing::debug_span!("message", id = %msg.id(), kind = ?msg.kind(), agent = %self.cell.name))
    }

    /// This agent's id.
    pub fn id(&self) -> AgentId {
        self.cell.id
    }

    /// This agent's name (pool members: `pool#index`).
    pub fn name(&self) -> &str {
        &self.cell.name
    }

    /// The runtime this agent runs in.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Sends `msg` to the agent or pool `to`, as this agent.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled while waiting for room, the message is dropped
    /// and was never accepted.
    pub async fn tell(&self, to: &str, msg: Envelope) -> Result<(), SendError<Envelope>> {
        self.rt.tell(to, msg.with_from(self.cell.id)).await
    }

    /// Sends `msg` to an agent by id (for example a tell's sender), as this agent.
    ///
    /// # Cancel safety
    /// As [`Context::tell`].
    pub async fn tell_id(&self, to: AgentId, msg: Envelope) -> Result<(), SendError<Envelope>> {
        self.rt.tell_id(to, msg.with_from(self.cell.id)).await
    }

    /// Asks `to` and waits for the reply, at most `timeout`.
    ///
    /// # Cancel safety
    /// Cancel safe; a reply arriving after cancellation is counted as late.
    pub async fn ask(
        &self,
        to: &str,
        msg: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, AskError> {
        self.rt.ask(to, msg.with_from(self.cell.id), timeout).await
    }

    /// Publishes `msg` to every subscriber of `topic`, as this agent.
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled publish may have reached some subscribers.
    pub async fn publish(&self, topic: &str, msg: Envelope) -> PublishReport {
        self.rt.publish(topic, msg.with_from(self.cell.id)).await
    }

    /// Answers `request`, an ask in the batch being handled.
    pub fn reply(
        &mut self,
        request: &Envelope,
        payload: impl Into<Payload>,
    ) -> Result<(), ReplyError> {
        let id = request.id();
        let pos = self
            .replies
            .iter()
            .position(|(m, _)| *m == id)
            .ok_or(ReplyError::NotExpected)?;
        let (_, slot) = self.replies.swap_remove(pos);
        let reply = Envelope::reply_to(request, payload);
        if slot.0.send(reply).is_err() {
            self.rt.count_late_reply();
            return Err(ReplyError::Late);
        }
        Ok(())
    }

    /// Records which message of a custom [`Agent::handle_batch`] is being handled.
    pub fn set_batch_cursor(&mut self, index: usize) {
        self.cursor = index;
    }

    /// Asks the runtime to stop this agent after the current batch (its queued
    /// messages are drained first, as on removal).
    pub fn stop(&mut self) {
        self.stop_requested = true;
    }
}

/// An agent that handles every message by doing nothing, for the crate's
/// unit tests.
#[cfg(test)]
pub(crate) struct Quiet;

#[cfg(test)]
impl Agent for Quiet {
    async fn handle(&mut self, _ctx: &mut Context, _msg: &Envelope) -> Result<(), AgentError> {
        Ok(())
    }
}
