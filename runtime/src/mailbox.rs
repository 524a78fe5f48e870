//! Bounded mailboxes.
//!
//! ```text
//!  senders (any task)                               the agent's own task
//!  ──────────────────                               ────────────────────
//!  tell / tell_batch ──► reserve n in `used` (atomic; capacity in messages)
//!                          │ refused, waited for (Notify `room`) or made by
//!                          │ shedding the oldest, per Overflow
//!                          ▼
//!                     Mutex<VecDeque<Item>> ───────► take_batch(buf, max_batch)
//!                     One(env) | Batch(Vec) | Wake       │ one lock per batch;
//!                     + the parked agent's waker         ▼ releases `used`
//!                                                   agent.handle_batch(&buf)
//! ```
//!
//! **Ownership.** An agent's [`Mailbox`] lives in its shared cell; senders reach it
//! through the registry, the agent task is its only regular consumer. The
//! runtime also drains it after a task is gone, so nothing queued is lost.
//!
//! **Backpressure.** Capacity counts messages, not items: a `tell_batch` of 64
//! reserves 64 and travels as one item, so a batch costs one lock. The queue
//! itself has no bound *because* every push is preceded by a reservation in
//! `used`; that counter is the bound. `Wake` items reserve nothing; only
//! control operations push them, at most one each. When the mailbox is full,
//! [`Overflow`] decides: `Block` waits (bounded by the message deadline),
//! `Reject` hands the message back, `DropOldest` sheds the oldest queued item
//! to dead letters.
//!
//! **Wake-ups.** A sender wakes the agent only when the agent parked on an
//! empty queue (its waker is stored under the same lock as the queue), so a
//! busy agent costs its senders no wake-up at all. The agent takes everything
//! queued, up to `max_batch`, under one lock.
//!
//! **Memory.** The queue grows with its depth and keeps its buffer while it
//! is in use. For agents that record latency (the default), the telemetry
//! tick calls [`Mailbox::trim`] for an agent that handled nothing since the
//! last tick, which gives back the buffer of an empty mailbox larger than
//! [`KEEP_SLOTS`], so a burst's memory does not stay with the agent for
//! good; every agent frees a batch buffer larger than that when it parks
//! (decision 0018).
//!
//! **Ordering.** FIFO per sender. `DropOldest` removes from the front only.
//!
//! **Shutdown.** [`Mailbox::close`] sets the closed bit in `used`: every later
//! reservation fails with `Closed` and hands the message back, blocked senders
//! are woken to see it, and queued items remain for the agent to drain.
//!
//! Why not flume plus a Tokio semaphore (the first design): the semaphore
//! takes its waiter mutex on every release, flume locks once per received
//! item and allocates a hook each time the agent parks. See
//! `docs/decisions/0006-mailbox-and-envelope.md`.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Poll, Waker};

use tokio::sync::Notify;

use crate::envelope::Envelope;

/// The closed flag, kept in the top bit of the reservation counter so that
/// reserving and seeing a close are one atomic step.
const CLOSED: usize = 1 << (usize::BITS - 1);

/// Largest mailbox capacity accepted: room for the closed bit and for a
/// batch reservation on top of a full mailbox without overflow.
pub const MAX_CAPACITY: usize = 1 << 40;

/// What a full mailbox does with one more message.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Overflow {
    /// The sender waits for room, at most until the message's deadline.
    #[default]
    Block,
    /// The sender gets an error that hands the message back.
    Reject,
    /// The oldest queued message is dead-lettered to make room.
    DropOldest,
}

impl fmt::Display for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overflow::Block => "block",
            Overflow::Reject => "reject",
            Overflow::DropOldest => "drop_oldest",
        })
    }
}

impl FromStr for Overflow {
    type Err = String;
    fn from_str(s: &str) -> Result<Overflow, String> {
        match s {
            "block" => Ok(Overflow::Block),
            "reject" => Ok(Overflow::Reject),
            "drop_oldest" => Ok(Overflow::DropOldest),
            other => Err(format!(
                "unknown overflow policy {other:?}; expected one of block, reject, drop_oldest"
            )),
        }
    }
}

/// What travels through the channel.
#[derive(Debug)]
pub(crate) enum Item {
    One(Envelope),
    Batch(Vec<Envelope>),
    /// Wakes an idle agent so it sees a control request; carries no message.
    Wake,
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::One(_) => 1,
            Item::Batch(v) => v.len(),
            Item::Wake => 0,
        }
    }
}

/// Why a push did not happen right away.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No room and the policy does not wait or shed.
    Full,
    /// The mailbox no longer admits messages.
    Closed,
}

/// The queue and the parked consumer's waker, under one lock.
#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<Item>,
    /// Set by the agent when it parks on an empty queue; taken by the next push.
    parked: Option<Waker>,
}

/// Queue slots (1 KiB of envelopes) that an empty mailbox keeps through
/// [`Mailbox::trim`], and batch slots an idle agent keeps; larger buffers
/// are left by bursts and given back.
pub(crate) const KEEP_SLOTS: usize = 8;

/// One agent's bounded queue. See the module docs for the contract.
#[derive(Debug)]
pub(crate) struct Mailbox {
    /// Reserved messages (pushed or about to be), plus the [`CLOSED`] bit.
    used: AtomicUsize,
    queue: Mutex<Queue>,
    /// Senders waiting for room (`Block`), and how many there are, so that a
    /// release with nobody waiting touches no waiter list.
    room: Notify,
    waiting: AtomicUsize,
    capacity: usize,
    overflow: Overflow,
}

/// Counts a blocked sender for as long as it waits, even if its wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Mailbox {
    pub fn new(capacity: usize, overflow: Overflow) -> Mailbox {
        Mailbox {
            used: AtomicUsize::new(0),
            queue: Mutex::new(Queue::default()),
            room: Notify::new(),
            waiting: AtomicUsize::new(0),
            capacity,
            overflow,
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn overflow(&self) -> Overflow {
        self.overflow
    }

    /// Messages queued (reserved, including those a sender is about to push).
    pub fn depth(&self) -> usize {
        self.used.load(Ordering::Acquire) & !CLOSED
    }

    /// Stops admission; queued items stay.
    pub fn close(&self) {
        self.used.fetch_or(CLOSED, Ordering::SeqCst);
        self.room.notify_waiters();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // Nothing panics while holding the lock; recover the data regardless.
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `n` if there is room and the mailbox is open.
    fn reserve_now(&self, n: usize) -> Result<(), Refusal> {
        let mut cur = self.used.load(Ordering::Relaxed);
        loop {
            if cur & CLOSED != 0 {
                return Err(Refusal::Closed);
            }
            if cur + n > self.capacity {
                return Err(Refusal::Full);
            }
            match self
                .used
                .compare_exchange_weak(cur, cur + n, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Returns `n` reservations and wakes blocked senders, if any.
    fn release(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }

    /// Takes `n` reservations without waiting. For `DropOldest`, sheds queued
    /// items until they fit, handing each shed message to `on_shed` *before*
    /// its reservation is returned (so a drain that waits for an empty
    /// mailbox also waits for the shed message to be accounted).
    pub fn try_reserve(&self, n: usize, mut on_shed: impl FnMut(Envelope)) -> Result<(), Refusal> {
        if n > self.capacity {
            return match self.reserve_now(0) {
                Err(Refusal::Closed) => Err(Refusal::Closed),
                _ => Err(Refusal::Full),
            };
        }
        loop {
            match self.reserve_now(n) {
                Err(Refusal::Full) if self.overflow == Overflow::DropOldest => {
                    let oldest = self.lock().items.pop_front();
                    match oldest {
                        Some(item) => {
                            let freed = item.len();
                            match item {
                                Item::One(env) => on_shed(env),
                                Item::Batch(batch) => batch.into_iter().for_each(&mut on_shed),
                                Item::Wake => {}
                            }
                            self.release(freed);
                        }
                        // The agent took the items but has not released them
                        // yet, or a sender has reserved and not pushed; both
                        // are a few instructions away.
                        None => std::thread::yield_now(),
                    }
                }
                other => return other,
            }
        }
    }

    /// Waits for room for `n` (the `Block` policy).
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled wait holds no reservation.
    pub async fn reserve(&self, n: usize) -> Result<(), Refusal> {
        if n > self.capacity {
            return Err(Refusal::Full);
        }
        loop {
            match self.reserve_now(n) {
                Err(Refusal::Full) => {}
                other => return other,
            }
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let _waiting = Waiting(&self.waiting);
            // Re-check after announcing ourselves: a release that ran before
            // the announcement did not notify, but left room we can see now.
            match self.reserve_now(n) {
                Err(Refusal::Full) => {}
                other => return other,
            }
            notified.await;
        }
    }

    /// Pushes an item whose room was reserved, waking the agent if it is parked.
    pub fn push_reserved(&self, item: Item) {
        let parked = {
            let mut q = self.lock();
            q.items.push_back(item);
            q.parked.take()
        };
        if let Some(waker) = parked {
            waker.wake();
        }
    }

    /// Stores `waker` as if the consumer had parked on an empty queue, so the
    /// next push takes and wakes it. Returns false (storing nothing) when
    /// the queue is not empty: no push is coming to wake it for those items.
    pub fn park(&self, waker: Waker) -> bool {
        let mut q = self.lock();
        if !q.items.is_empty() {
            return false;
        }
        q.parked = Some(waker);
        true
    }

    /// Gives back the queue's buffer if the mailbox is empty and the buffer
    /// is larger than [`KEEP_SLOTS`]: a burst's memory is returned once the
    /// burst has drained, instead of staying with the agent for good.
    pub fn trim(&self) {
        let spare = {
            let mut q = self.lock();
            if q.items.is_empty() && q.items.capacity() > KEEP_SLOTS {
                std::mem::take(&mut q.items)
            } else {
                VecDeque::new()
            }
        };
        drop(spare);
    }

    /// Queue slots allocated (tests of the memory a mailbox keeps).
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.lock().items.capacity()
    }

    /// Wakes an idle consumer without adding a message.
    pub fn wake(&self) {
        self.push_reserved(Item::Wake);
    }

    /// Moves queued messages into `buf` until it holds at least `max` or the
    /// queue is empty; returns how many were moved. Never waits.
    pub fn take_batch(&self, buf: &mut Vec<Envelope>, max: usize) -> usize {
        let before = buf.len();
        {
            let mut q = self.lock();
            reserve_for(buf, &q.items, max);
            while buf.len() < max {
                match q.items.pop_front() {
                    Some(item) => push_messages(buf, item),
                    None => break,
                }
            }
        }
        let taken = buf.len() - before;
        if taken > 0 {
            self.release(taken);
        }
        taken
    }

    /// Waits until something (a message or a wake) arrives, then moves what is
    /// queued into `buf` as [`Mailbox::take_batch`] does. Returns at once
    /// when something is queued; a wake alone returns 0. A consumer that
    /// parks here with an empty `buf` larger than [`KEEP_SLOTS`] gives that
    /// memory back.
    ///
    /// # Cancel safety
    /// Cancel safe: items are only taken out of the queue inside a poll that
    /// also puts them into `buf`.
    pub async fn wait_batch(&self, buf: &mut Vec<Envelope>, max: usize) -> usize {
        let before = buf.len();
        std::future::poll_fn(|cx| {
            let mut q = self.lock();
            if q.items.is_empty() {
                match &mut q.parked {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    slot => *slot = Some(cx.waker().clone()),
                }
                drop(q);
                // An idle agent keeps no more than a small batch buffer.
                if buf.is_empty() && buf.capacity() > KEEP_SLOTS {
                    *buf = Vec::new();
                }
                return Poll::Pending;
            }
            q.parked = None;
            reserve_for(buf, &q.items, max);
            // At least one item, even past `max`: a wake must be consumed.
            loop {
                match q.items.pop_front() {
                    Some(item) => push_messages(buf, item),
                    None => break,
                }
                if buf.len() >= max {
                    break;
                }
            }
            Poll::Ready(())
        })
        .await;
        let taken = buf.len() - before;
        if taken > 0 {
            self.release(taken);
        }
        taken
    }
}

/// Grows `buf` once, to hold up to one message per queued item (at most
/// `max` in all), instead of doubling through a drained agent's small buffer
/// one push at a time. Only when a single message is at the front: a batch
/// there is moved in by [`push_messages`] and needs no room, and a batch
/// further back may still grow the buffer once more.
fn reserve_for(buf: &mut Vec<Envelope>, items: &VecDeque<Item>, max: usize) {
    if let Some(Item::One(_)) = items.front() {
        buf.reserve_exact(items.len().min(max.saturating_sub(buf.len())));
    }
}

fn push_messages(buf: &mut Vec<Envelope>, item: Item) {
    match item {
        Item::One(env) => buf.push(env),
        // A sender's batch into an empty buffer becomes the buffer: no copy
        // of its envelopes, and the old buffer's allocation is freed in place
        // of the batch's (decision 0013).
        Item::Batch(batch) if buf.is_empty() && batch.capacity() >= buf.capacity() => {
            *buf = batch;
        }
        Item::Batch(mut batch) => buf.append(&mut batch),
        Item::Wake => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_taken_into_an_empty_buffer_is_moved_not_copied() {
        let mb = Mailbox::new(8, Overflow::Reject);
        let mut batch = Vec::with_capacity(8);
        batch.extend((0..4).map(|_| Envelope::tell("x")));
        let ptr = batch.as_ptr();
        mb.try_reserve(4, |_| {}).unwrap();
        mb.push_reserved(Item::Batch(batch));
        mb.try_reserve(1, |_| {}).unwrap();
        mb.push_reserved(Item::One(Envelope::tell("y")));
        let mut buf = Vec::new();
        assert_eq!(mb.take_batch(&mut buf, 64), 5);
        assert_eq!(
            buf.as_ptr(),
            ptr,
            "the sender's allocation became the buffer"
        );
        assert_eq!(buf[4].payload().as_ref(), b"y");
        assert_eq!(mb.depth(), 0);
        // A buffer that already holds messages takes a batch by copying.
        mb.try_reserve(2, |_| {}).unwrap();
        mb.push_reserved(Item::One(Envelope::tell("z")));
        mb.push_reserved(Item::Batch(vec![Envelope::tell("w")]));
        let mut buf = Vec::with_capacity(4);
        assert_eq!(mb.take_batch(&mut buf, 64), 2);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn a_take_grows_an_empty_buffer_once_to_what_is_queued() {
        let mb = Mailbox::new(16, Overflow::Reject);
        for p in ["1", "2", "3", "4", "5", "6", "7"] {
            mb.try_reserve(1, drop).unwrap();
            mb.push_reserved(Item::One(Envelope::tell(p)));
        }
        let mut buf = Vec::new();
        assert_eq!(mb.take_batch(&mut buf, 5), 5);
        assert_eq!(buf.capacity(), 5, "at most `max`, in one allocation");
        buf.clear();
        assert_eq!(mb.take_batch(&mut buf, 64), 2);
        assert_eq!(buf.capacity(), 5, "room enough: no growth");
    }

    #[test]
    fn trim_gives_back_only_an_empty_queue_s_large_buffer() {
        let mb = Mailbox::new(64, Overflow::Reject);
        for _ in 0..40 {
            mb.try_reserve(1, drop).unwrap();
            mb.push_reserved(Item::One(Envelope::tell("x")));
        }
        mb.trim();
        assert!(mb.slots() >= 40, "a queue that holds messages keeps them");
        let mut buf = Vec::new();
        mb.take_batch(&mut buf, 64);
        mb.trim();
        assert!(mb.slots() <= KEEP_SLOTS, "{}", mb.slots());
    }

    #[test]
    fn reject_refuses_when_full_and_counts_messages_not_items() {
        let mb = Mailbox::new(3, Overflow::Reject);
        let mut shed = Vec::new();
        mb.try_reserve(2, |e| shed.push(e)).unwrap();
        mb.push_reserved(Item::Batch(vec![Envelope::tell("a"), Envelope::tell("b")]));
        assert_eq!(mb.depth(), 2);
        assert_eq!(mb.try_reserve(2, |e| shed.push(e)), Err(Refusal::Full));
        mb.try_reserve(1, |e| shed.push(e)).unwrap();
        mb.push_reserved(Item::One(Envelope::tell("c")));
        assert_eq!(mb.depth(), 3);
        let mut buf = Vec::new();
        assert_eq!(mb.take_batch(&mut buf, 64), 3);
        assert_eq!(mb.depth(), 0);
        assert!(shed.is_empty());
    }

    #[test]
    fn drop_oldest_sheds_from_the_front() {
        let mb = Mailbox::new(2, Overflow::DropOldest);
        let mut shed = Vec::new();
        for p in ["1", "2", "3"] {
            mb.try_reserve(1, |e| shed.push(e)).unwrap();
            mb.push_reserved(Item::One(Envelope::tell(p)));
        }
        assert_eq!(shed.len(), 1);
        assert_eq!(shed[0].payload().as_ref(), b"1");
        let mut buf = Vec::new();
        mb.take_batch(&mut buf, 8);
        let got: Vec<_> = buf.iter().map(|e| e.payload().clone()).collect();
        assert_eq!(got, vec!["2", "3"]);
    }

    #[test]
    fn closed_mailbox_refuses_but_keeps_queue() {
        let mb = Mailbox::new(4, Overflow::Block);
        mb.try_reserve(1, drop).unwrap();
        mb.push_reserved(Item::One(Envelope::tell("kept")));
        mb.close();
        assert_eq!(mb.try_reserve(1, drop), Err(Refusal::Closed));
        let mut buf = Vec::new();
        assert_eq!(mb.take_batch(&mut buf, 8), 1);
    }

    #[test]
    fn batch_larger_than_capacity_is_refused() {
        let mb = Mailbox::new(2, Overflow::DropOldest);
        assert_eq!(mb.try_reserve(3, drop), Err(Refusal::Full));
    }

    #[tokio::test]
    async fn block_waits_for_room() {
        let mb = std::sync::Arc::new(Mailbox::new(1, Overflow::Block));
        mb.try_reserve(1, drop).unwrap();
        mb.push_reserved(Item::One(Envelope::tell("first")));
        let waiter = {
            let mb = mb.clone();
            tokio::spawn(async move { mb.reserve(1).await })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut buf = Vec::new();
        mb.take_batch(&mut buf, 8);
        assert_eq!(waiter.await.unwrap(), Ok(()));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn blocked_senders_and_a_parking_consumer_lose_nothing() {
        // A tiny capacity keeps senders blocking and the agent parking, so
        // every wake-up path (room for senders, a push to a parked agent) runs.
        const SENDERS: usize = 4;
        const EACH: usize = 5_000;
        let mb = std::sync::Arc::new(Mailbox::new(3, Overflow::Block));
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let mb = mb.clone();
                tokio::spawn(async move {
                    for i in 0..EACH {
                        mb.reserve(1).await.unwrap();
                        mb.push_reserved(Item::One(Envelope::tell(i.to_string())));
                    }
                })
            })
            .collect();
        let consumer = {
            let mb = mb.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut got = 0;
                while got < SENDERS * EACH {
                    got += mb.wait_batch(&mut buf, 2).await;
                    buf.clear();
                }
                got
            })
        };
        for s in senders {
            s.await.unwrap();
        }
        assert_eq!(consumer.await.unwrap(), SENDERS * EACH);
        assert_eq!(mb.depth(), 0);
    }

    #[tokio::test]
    async fn close_wakes_blocked_senders_with_closed() {
        let mb = std::sync::Arc::new(Mailbox::new(1, Overflow::Block));
        mb.try_reserve(1, drop).unwrap();
        let waiter = {
            let mb = mb.clone();
            tokio::spawn(async move { mb.reserve(1).await })
        };
        tokio::task::yield_now().await;
        mb.close();
        assert_eq!(waiter.await.unwrap(), Err(Refusal::Closed));
    }

    /// The agent loop checks its control lane, then waits here; a control
    /// request between the two leaves only a wake in the queue, which must
    /// end the wait so the loop sees the request.
    #[test]
    fn a_wake_alone_ends_a_wait_with_no_messages() {
        use futures_util::FutureExt;
        let mb = Mailbox::new(4, Overflow::Block);
        mb.wake();
        let mut buf = Vec::new();
        assert_eq!(mb.wait_batch(&mut buf, 8).now_or_never(), Some(0));
        assert_eq!(
            mb.wait_batch(&mut buf, 8).now_or_never(),
            None,
            "the wake was consumed; an empty queue parks"
        );
    }

    #[test]
    fn parking_gives_back_a_large_empty_batch_buffer() {
        use futures_util::FutureExt;
        let mb = Mailbox::new(4, Overflow::Block);
        let mut buf: Vec<Envelope> = Vec::with_capacity(64);
        assert_eq!(mb.wait_batch(&mut buf, 8).now_or_never(), None);
        assert!(buf.capacity() <= KEEP_SLOTS, "{}", buf.capacity());
        let mut small: Vec<Envelope> = Vec::with_capacity(KEEP_SLOTS);
        assert_eq!(mb.wait_batch(&mut small, 8).now_or_never(), None);
        assert_eq!(small.capacity(), KEEP_SLOTS, "a small buffer is kept");
        let mut holding: Vec<Envelope> = Vec::with_capacity(64);
        holding.push(Envelope::tell("kept"));
        assert_eq!(mb.wait_batch(&mut holding, 8).now_or_never(), None);
        assert_eq!(
            holding.len(),
            1,
            "a buffer that holds messages is not freed"
        );
        assert_eq!(holding[0].payload().as_ref(), b"kept");
    }

    #[test]
    fn overflow_parses_and_names_the_choices() {
        assert_eq!("drop_oldest".parse::<Overflow>(), Ok(Overflow::DropOldest));
        let err = "fifo".parse::<Overflow>().unwrap_err();
        assert!(err.contains("block, reject, drop_oldest"), "{err}");
    }
}
