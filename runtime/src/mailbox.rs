//! Bounded mailboxes.
//!
//! ```text
//!  senders (any task)                               the agent's own task
//!  ──────────────────                               ────────────────────
//!  tell / tell_batch ──► permits (capacity, in messages)
//!                          │ taken before the push; refused, waited for or
//!                          │ made by shedding the oldest, per Overflow
//!                          ▼
//!                     flume channel of Items ──────► take_batch(buf, max_batch)
//!                     One(env) | Batch(Vec) | Wake        │ releases permits as
//!                                                         ▼ it takes messages
//!                                                   agent.handle_batch(&buf)
//! ```
//!
//! **Ownership.** An agent's [`Mailbox`] lives in its shared cell; senders reach it
//! through the registry, the agent task is its only regular consumer. The
//! runtime also drains it after a task is gone, so nothing queued is lost.
//!
//! **Backpressure.** Capacity counts messages, not items: a `tell_batch` of 64
//! takes 64 permits and travels as one item, so a batch costs one channel
//! operation. The flume channel itself is unbounded *because* every push is
//! preceded by taking permits for it; the permits are the bound. `Wake` items
//! take no permit; only control operations push them, at most one each.
//! When permits run out, [`Overflow`] decides: `Block` waits (bounded by the
//! message deadline), `Reject` hands the message back, `DropOldest` sheds the
//! oldest queued item to dead letters.
//!
//! **Ordering.** FIFO per sender. `DropOldest` removes from the front only.
//!
//! **Shutdown.** [`Mailbox::close`] closes the permits: every later push fails
//! with `Closed` and hands the message back, while queued items remain for the
//! agent to drain.

use std::fmt;
use std::str::FromStr;

use tokio::sync::{Semaphore, TryAcquireError};

use crate::envelope::Envelope;

/// Largest mailbox capacity accepted (the permit counter's limit).
pub const MAX_CAPACITY: usize = Semaphore::MAX_PERMITS;

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

/// One agent's bounded queue. See the module docs for the contract.
#[derive(Debug)]
pub(crate) struct Mailbox {
    tx: flume::Sender<Item>,
    rx: flume::Receiver<Item>,
    permits: Semaphore,
    capacity: usize,
    overflow: Overflow,
}

impl Mailbox {
    pub fn new(capacity: usize, overflow: Overflow) -> Mailbox {
        // The permits bound the channel; see the module docs.
        let (tx, rx) = flume::unbounded();
        Mailbox {
            tx,
            rx,
            permits: Semaphore::new(capacity),
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

    /// Messages queued (taken permits).
    pub fn depth(&self) -> usize {
        self.capacity
            .saturating_sub(self.permits.available_permits())
    }

    /// Stops admission; queued items stay.
    pub fn close(&self) {
        self.permits.close();
    }

    /// Takes `n` permits without waiting. For `DropOldest`, sheds queued items
    /// until they fit, handing each shed message to `on_shed` *before* its
    /// permit is returned (so a drain that waits for all permits also waits
    /// for the shed message to be accounted).
    pub fn try_reserve(&self, n: usize, mut on_shed: impl FnMut(Envelope)) -> Result<(), Refusal> {
        let Ok(n32) = u32::try_from(n) else {
            return Err(Refusal::Full);
        };
        loop {
            match self.permits.try_acquire_many(n32) {
                Ok(permit) => {
                    permit.forget();
                    return Ok(());
                }
                Err(TryAcquireError::Closed) => return Err(Refusal::Closed),
                Err(TryAcquireError::NoPermits) => {
                    if self.overflow != Overflow::DropOldest || n > self.capacity {
                        return Err(Refusal::Full);
                    }
                    match self.rx.try_recv() {
                        Ok(item) => {
                            let freed = item.len();
                            match item {
                                Item::One(env) => on_shed(env),
                                Item::Batch(batch) => batch.into_iter().for_each(&mut on_shed),
                                Item::Wake => {}
                            }
                            self.permits.add_permits(freed);
                        }
                        // The agent took the items but has not returned their
                        // permits yet; that is a few instructions away.
                        Err(_) => std::thread::yield_now(),
                    }
                }
            }
        }
    }

    /// Waits for `n` permits (the `Block` policy).
    ///
    /// # Cancel safety
    /// Cancel safe: a cancelled wait holds no permits.
    pub async fn reserve(&self, n: usize) -> Result<(), Refusal> {
        let n32 = u32::try_from(n).map_err(|_| Refusal::Full)?;
        if n > self.capacity {
            return Err(Refusal::Full);
        }
        match self.permits.acquire_many(n32).await {
            Ok(permit) => {
                permit.forget();
                Ok(())
            }
            Err(_) => Err(Refusal::Closed),
        }
    }

    /// Pushes an item whose permits were reserved.
    pub fn push_reserved(&self, item: Item) {
        // Both ends live in this struct, so the channel cannot be disconnected.
        let _ = self.tx.send(item);
    }

    /// Wakes an idle consumer without adding a message.
    pub fn wake(&self) {
        let _ = self.tx.send(Item::Wake);
    }

    /// Moves queued messages into `buf` until it holds at least `max` or the
    /// queue is empty; returns how many were moved. Never waits.
    pub fn take_batch(&self, buf: &mut Vec<Envelope>, max: usize) -> usize {
        let before = buf.len();
        while buf.len() < max {
            match self.rx.try_recv() {
                Ok(item) => push_messages(buf, item),
                Err(_) => break,
            }
        }
        let taken = buf.len() - before;
        if taken > 0 {
            self.permits.add_permits(taken);
        }
        taken
    }

    /// Waits until something (a message or a wake) arrives, then moves what is
    /// queued into `buf` as [`Mailbox::take_batch`] does.
    ///
    /// # Cancel safety
    /// Cancel safe: a message is only taken out of the channel inside a poll
    /// that also puts it into `buf`.
    pub async fn wait_batch(&self, buf: &mut Vec<Envelope>, max: usize) -> usize {
        let before = buf.len();
        if let Ok(item) = self.rx.recv_async().await {
            push_messages(buf, item);
        }
        let first = buf.len() - before;
        if first > 0 {
            self.permits.add_permits(first);
        }
        first + self.take_batch(buf, max)
    }
}

fn push_messages(buf: &mut Vec<Envelope>, item: Item) {
    match item {
        Item::One(env) => buf.push(env),
        Item::Batch(mut batch) => buf.append(&mut batch),
        Item::Wake => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn overflow_parses_and_names_the_choices() {
        assert_eq!("drop_oldest".parse::<Overflow>(), Ok(Overflow::DropOldest));
        let err = "fifo".parse::<Overflow>().unwrap_err();
        assert!(err.contains("block, reject, drop_oldest"), "{err}");
    }
}
