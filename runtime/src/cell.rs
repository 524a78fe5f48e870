//! The shared half of an agent: identity, mailbox, counters, control lane.
//!
//! The registry, pools, topics and contexts hold `Arc<AgentCell>`; the agent's
//! task holds one too and is the only consumer of the mailbox. Delivery happens
//! in the *sender's* task: there is no router task on the hot path.
//!
//! The control lane is an atomic word beside the mailbox, read by the agent at
//! every batch boundary before it takes more messages, so a stop or restart is
//! never queued behind user messages; an idle agent is woken with a `Wake` item.

#![allow(
    clippy::result_large_err,
    reason = "send errors hand the message back by value (the style guide's contract); boxing would allocate on every refusal"
)]

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Wake, Waker};
use std::time::SystemTime;

use tokio::task::JoinHandle;

use crate::address::AgentId;
use crate::deadletter::{DeadLetter, DeadLetterReason, DeadLetters};
use crate::envelope::{Envelope, Tick};
use crate::error::SendError;
use crate::mailbox::{Item, Mailbox, Overflow, Refusal};
use crate::runtime::{Inner, Runtime};
use crate::slo::{AgentLatency, Interval, SloTargets};
use crate::stats::Counters;

/// A request on the control lane. Higher values win over lower ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Control {
    /// Keep going.
    Run = 0,
    /// Replace the instance; the mailbox stays.
    Restart = 1,
    /// Handle what is queued, then stop.
    Drain = 2,
    /// Stop at the next batch boundary; dead-letter what is queued.
    StopNow = 3,
}

/// Starts an agent's task (kept in the cell of a lazily started agent).
pub(crate) trait Start: Send {
    fn start(self: Box<Self>, rt: &Runtime, cell: Arc<AgentCell>) -> JoinHandle<()>;
}

/// An agent's task, or what will start it.
enum Task {
    /// `lazy_start`, not started yet: the first push into the mailbox starts it.
    Lazy(Box<dyn Start>),
    Running(JoinHandle<()>),
    /// Taken by a stop, or retired without ever starting.
    Ended,
}

/// The waker a lazily started agent's mailbox holds until the task exists:
/// the first push wakes it, as it would wake a parked agent, and it starts
/// the task. Weak, so an agent that never starts keeps nothing alive.
struct Activation {
    rt: Weak<Inner>,
    cell: Weak<AgentCell>,
}

impl Wake for Activation {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let (Some(inner), Some(cell)) = (self.rt.upgrade(), self.cell.upgrade()) {
            cell.activate(&Runtime { inner });
        }
    }
}

pub(crate) struct AgentCell {
    pub id: AgentId,
    pub name: Arc<str>,
    pub mailbox: Mailbox,
    pub counters: Counters,
    pub max_batch: usize,
    control: AtomicU8,
    task: Mutex<Task>,
    /// Stamp enqueue times and record latency histograms.
    pub record_latency: bool,
    /// Samples since the last tick, allocated at the first one; the agent
    /// and its askers record here (see `slo::recorder`).
    pub interval: Mutex<Option<Box<Interval>>>,
    /// Cumulative latency and SLO windows, allocated with `interval`; taken
    /// by the ticker and by readers, never by the agent.
    pub history: Mutex<Option<Box<AgentLatency>>>,
    /// This agent's own SLO targets, if it has any.
    pub slo: Option<Box<SloTargets>>,
}

impl std::fmt::Debug for AgentCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentCell")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AgentCell {
    pub fn new(
        name: Arc<str>,
        config: &crate::config::AgentConfig,
        record_latency: bool,
    ) -> AgentCell {
        let (capacity, overflow, max_batch) = (config.capacity, config.overflow, config.max_batch);
        AgentCell {
            id: AgentId::next(),
            name,
            mailbox: Mailbox::new(capacity, overflow),
            counters: Counters::default(),
            max_batch,
            control: AtomicU8::new(Control::Run as u8),
            task: Mutex::new(Task::Ended),
            record_latency,
            interval: Mutex::new(None),
            history: Mutex::new(None),
            slo: config.slo.map(Box::new),
        }
    }

    pub(crate) fn set_running(&self, handle: JoinHandle<()>) {
        *self.task_slot() = Task::Running(handle);
    }

    /// Defers the task until the first push (see [`Activation`]).
    pub(crate) fn set_lazy(self: &Arc<Self>, start: Box<dyn Start>, rt: &Runtime) {
        *self.task_slot() = Task::Lazy(start);
        let activation = Arc::new(Activation {
            rt: Arc::downgrade(&rt.inner),
            cell: Arc::downgrade(self),
        });
        // A sender that found the name before the waker was in place pushed
        // without waking anyone: start now for what it left.
        if !self.mailbox.park(Waker::from(activation)) {
            self.activate(rt);
        }
    }

    /// Starts a lazy agent's task; does nothing once it started or ended.
    pub(crate) fn activate(self: &Arc<Self>, rt: &Runtime) {
        let mut slot = self.task_slot();
        *slot = match std::mem::replace(&mut *slot, Task::Ended) {
            Task::Lazy(start) => Task::Running(self.start_lazy(start, rt)),
            other => other,
        };
    }

    fn start_lazy(self: &Arc<Self>, start: Box<dyn Start>, rt: &Runtime) -> JoinHandle<()> {
        // A restart request that started it has no instance to replace.
        self.clear_restart();
        start.start(rt, self.clone())
    }

    /// For a stop (the mailbox is closed): the task to join, started now if
    /// messages were accepted before it started. `None` when there is none;
    /// a lazy agent that never had a message is retired here, without
    /// running `on_start` or `on_stop`.
    pub(crate) fn take_task(self: &Arc<Self>, rt: &Runtime) -> Option<JoinHandle<()>> {
        let mut slot = self.task_slot();
        match std::mem::replace(&mut *slot, Task::Ended) {
            Task::Running(handle) => Some(handle),
            Task::Ended => None,
            // Closed with nothing reserved: no message can arrive any more.
            Task::Lazy(_) if self.mailbox.depth() == 0 => {
                drop(slot);
                rt.unregister(self);
                rt.retire(self);
                None
            }
            Task::Lazy(start) => Some(self.start_lazy(start, rt)),
        }
    }

    /// False only for a lazy agent whose task has not started.
    pub(crate) fn started(&self) -> bool {
        !matches!(*self.task_slot(), Task::Lazy(_))
    }

    /// The live latency interval (see [`AgentCell::interval`]). Nothing
    /// under these two locks panics half-way; a poisoned one is consistent.
    pub(crate) fn lock_interval(&self) -> std::sync::MutexGuard<'_, Option<Box<Interval>>> {
        self.interval.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cumulative latency state; take it before [`AgentCell::lock_interval`]
    /// when both are needed, as the ticker does.
    pub(crate) fn lock_history(&self) -> std::sync::MutexGuard<'_, Option<Box<AgentLatency>>> {
        self.history.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn task_slot(&self) -> std::sync::MutexGuard<'_, Task> {
        self.task.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn control(&self) -> Control {
        match self.control.load(Ordering::Acquire) {
            0 => Control::Run,
            1 => Control::Restart,
            2 => Control::Drain,
            _ => Control::StopNow,
        }
    }

    /// Raises the control request to at least `c` and wakes the agent.
    pub fn request(&self, c: Control) {
        self.control.fetch_max(c as u8, Ordering::AcqRel);
        self.mailbox.wake();
    }

    /// Clears a handled restart request (leaves stop requests in place).
    pub fn clear_restart(&self) {
        let _ = self.control.compare_exchange(
            Control::Restart as u8,
            Control::Run as u8,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }

    pub(crate) fn refused<T>(&self, refusal: Refusal, message: T, n: usize) -> SendError<T> {
        self.counters
            .sender
            .rejected
            .fetch_add(n as u64, Ordering::Relaxed);
        let agent = self.name.clone();
        match refusal {
            Refusal::Full => SendError::Full { agent, message },
            Refusal::Closed => SendError::Closed { agent, message },
        }
    }

    fn accept(&self, n: usize) {
        self.counters
            .sender
            .accepted
            .fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Marks a message as delivered here, at `now` when latency is recorded.
    fn stamp(&self, env: &mut Envelope, now: Option<Tick>) {
        env.to = Some(self.id);
        env.enqueued_at = now;
    }

    pub fn dead_letter(
        &self,
        dead: &DeadLetters,
        mut envelope: Envelope,
        reason: DeadLetterReason,
        detail: Option<String>,
    ) {
        self.counters.dead(reason, 1);
        let reply = envelope.reply.take();
        dead.push(DeadLetter {
            agent: self.id,
            agent_name: self.name.clone(),
            reason,
            detail,
            at: SystemTime::now(),
            envelope,
        });
        // Dropping the reply slot tells a waiting asker there will be no
        // answer; only now, so that the asker finds the letter queued.
        drop(reply);
    }

    /// Takes the message if there is room now (shedding for `drop_oldest`);
    /// otherwise hands it back with the refusal, counting nothing.
    pub(crate) fn offer(
        &self,
        env: Envelope,
        dead: &DeadLetters,
    ) -> Result<(), (Refusal, Envelope)> {
        self.offer_at(env, dead, || self.record_latency.then(Tick::now))
    }

    /// [`AgentCell::offer`], with the enqueue stamp from `now` (read only
    /// when the message is accepted): an ask shares one clock read between
    /// the stamp and the start of its round trip.
    #[inline]
    pub(crate) fn offer_at(
        &self,
        mut env: Envelope,
        dead: &DeadLetters,
        now: impl FnOnce() -> Option<Tick>,
    ) -> Result<(), (Refusal, Envelope)> {
        match self.mailbox.try_reserve(1, |old| {
            self.dead_letter(dead, old, DeadLetterReason::DroppedOldest, None)
        }) {
            Ok(()) => {
                self.stamp(&mut env, now());
                self.accept(1);
                self.mailbox.push_reserved(Item::One(env));
                Ok(())
            }
            Err(r) => Err((r, env)),
        }
    }

    /// Delivers, waiting for room when the policy is `Block` (until the
    /// message's deadline, if it has one).
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled wait holds no permits and the message was not accepted.
    pub async fn deliver(
        &self,
        env: Envelope,
        dead: &DeadLetters,
    ) -> Result<(), SendError<Envelope>> {
        match self.offer(env, dead) {
            Ok(()) => Ok(()),
            Err((Refusal::Full, message)) if self.mailbox.overflow() == Overflow::Block => {
                let deadline = message.deadline();
                let agent = self.name.clone();
                self.wait_and_push(Item::One(message), 1, deadline, agent)
                    .await
                    .map_err(|e| {
                        e.map(|item| match item {
                            Item::One(env) => env,
                            _ => unreachable!("wait_and_push returns the item it was given"),
                        })
                    })
            }
            Err((r, message)) => Err(self.refused(r, message, 1)),
        }
    }

    /// Delivers a batch as one item (one channel operation, `n` permits).
    ///
    /// # Cancel safety
    /// Cancel safe, as [`AgentCell::deliver`].
    pub async fn deliver_batch(
        &self,
        mut batch: Vec<Envelope>,
        dead: &DeadLetters,
    ) -> Result<(), SendError<Vec<Envelope>>> {
        let n = batch.len();
        if n == 0 {
            return Ok(());
        }
        match self.mailbox.try_reserve(n, |old| {
            self.dead_letter(dead, old, DeadLetterReason::DroppedOldest, None)
        }) {
            Ok(()) => {
                let now = self.record_latency.then(Tick::now);
                batch.iter_mut().for_each(|env| self.stamp(env, now));
                self.accept(n);
                self.mailbox.push_reserved(Item::Batch(batch));
                Ok(())
            }
            Err(Refusal::Full)
                if self.mailbox.overflow() == Overflow::Block && n <= self.mailbox.capacity() =>
            {
                let deadline = batch.iter().filter_map(Envelope::deadline).min();
                let agent = self.name.clone();
                self.wait_and_push(Item::Batch(batch), n, deadline, agent)
                    .await
                    .map_err(|e| {
                        e.map(|item| match item {
                            Item::Batch(v) => v,
                            _ => unreachable!("wait_and_push returns the item it was given"),
                        })
                    })
            }
            Err(r) => Err(self.refused(r, batch, n)),
        }
    }

    async fn wait_and_push(
        &self,
        item: Item,
        n: usize,
        deadline: Option<tokio::time::Instant>,
        agent: Arc<str>,
    ) -> Result<(), SendError<Item>> {
        let reserved = match deadline {
            Some(d) => match tokio::time::timeout_at(d, self.mailbox.reserve(n)).await {
                Ok(r) => r,
                Err(_) => {
                    self.counters
                        .sender
                        .rejected
                        .fetch_add(n as u64, Ordering::Relaxed);
                    return Err(SendError::Timeout {
                        agent,
                        message: item,
                    });
                }
            },
            None => self.mailbox.reserve(n).await,
        };
        match reserved {
            Ok(()) => {
                let mut item = item;
                let now = self.record_latency.then(Tick::now);
                match &mut item {
                    Item::One(env) => self.stamp(env, now),
                    Item::Batch(batch) => batch.iter_mut().for_each(|env| self.stamp(env, now)),
                    Item::Wake => {}
                }
                self.accept(n);
                self.mailbox.push_reserved(item);
                Ok(())
            }
            Err(r) => Err(self.refused(r, item, n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::Quiet;
    use crate::config::{AgentConfig, Supervision};

    /// A sender can find a lazy agent's name before its activation waker is
    /// in place; its message must still start the agent.
    #[tokio::test]
    async fn a_message_queued_before_the_activation_waker_starts_a_lazy_agent() {
        let rt = Runtime::new();
        let config = AgentConfig::default().lazy_start(true);
        let cell = Arc::new(AgentCell::new("early".into(), &config, false));
        cell.offer(Envelope::tell("x"), rt.dead_letter_queue())
            .unwrap();
        crate::supervisor::start(&rt, &cell, || Quiet, Supervision::default(), true);
        for _ in 0..10_000 {
            if cell.counters.snapshot().handled == 1 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        panic!("the queued message was never handled");
    }
}
