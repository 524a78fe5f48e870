//! Message accounting.
//!
//! Every message the runtime accepts ends in exactly one of two buckets:
//! **handled** (an agent's handler returned for it) or **dead-lettered** (with a
//! [`DeadLetterReason`]). Messages refused at the door (full mailbox with
//! `reject`, unknown name, shutting down) were never accepted; they are handed
//! back to the caller and counted as **rejected**.
//!
//! ```text
//! accepted == handled + dead_lettered + in_flight      (always)
//! accepted == handled + dead_lettered                  (once quiescent)
//! ```
//!
//! Counters are per agent and split by writer: senders bump
//! `accepted`/`rejected`, the agent task bumps `handled`/`dead`. Totals are
//! sums taken on demand. The halves are not padded to separate cache lines:
//! both sides already write the mailbox's reservation counter in the same
//! cell, and padding cost 208 bytes per agent with no throughput difference
//! in A/B runs of the tell bench (decision 0011).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::deadletter::DeadLetterReason;

/// Counters written by senders.
#[derive(Debug, Default)]
pub(crate) struct SenderCounters {
    pub accepted: AtomicU64,
    pub rejected: AtomicU64,
}

/// Counters written by the agent's own task (and, for `dead`, by senders
/// for drop-oldest and by a shutdown that gives up on a task): `handled`
/// has that one writer and is bumped with [`bump_own`].
#[derive(Debug, Default)]
pub(crate) struct AgentCounters {
    pub handled: AtomicU64,
    pub dead: [AtomicU64; DeadLetterReason::COUNT],
    pub restarts: AtomicU64,
}

/// All counters of one agent.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub sender: SenderCounters,
    pub agent: AgentCounters,
}

/// Adds `n` to a counter that only the agent's own task writes: a load and
/// a store, where `fetch_add` would be a locked instruction on every batch.
pub(crate) fn bump_own(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

impl Counters {
    pub fn dead(&self, reason: DeadLetterReason, n: u64) {
        self.agent.dead[reason as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Accounting {
        let mut a = Accounting {
            accepted: self.sender.accepted.load(Ordering::Relaxed),
            rejected: self.sender.rejected.load(Ordering::Relaxed),
            handled: self.agent.handled.load(Ordering::Relaxed),
            restarts: self.agent.restarts.load(Ordering::Relaxed),
            ..Accounting::default()
        };
        for (slot, counter) in a.dead_by_reason.iter_mut().zip(&self.agent.dead) {
            *slot = counter.load(Ordering::Relaxed);
        }
        a
    }
}

/// A snapshot of message accounting, for one agent or summed over many.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Accounting {
    /// Messages taken into a mailbox.
    pub accepted: u64,
    /// Messages an agent's handler completed.
    pub handled: u64,
    /// Messages refused at the door and handed back to the sender.
    pub rejected: u64,
    /// Agent restarts by the supervisor.
    pub restarts: u64,
    /// Dead-lettered messages, indexed by [`DeadLetterReason`] as `usize`.
    pub dead_by_reason: [u64; DeadLetterReason::COUNT],
}

impl Accounting {
    /// All dead-lettered messages.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_by_reason.iter().sum()
    }

    /// Dead-lettered messages for one reason.
    pub fn dead(&self, reason: DeadLetterReason) -> u64 {
        self.dead_by_reason[reason as usize]
    }

    /// Accepted messages not yet handled or dead-lettered.
    pub fn in_flight(&self) -> u64 {
        self.accepted
            .saturating_sub(self.handled + self.dead_lettered())
    }

    /// True when every accepted message is handled or dead-lettered.
    pub fn balanced(&self) -> bool {
        self.accepted == self.handled + self.dead_lettered()
    }

    pub(crate) fn add(&mut self, other: &Accounting) {
        self.accepted += other.accepted;
        self.handled += other.handled;
        self.rejected += other.rejected;
        self.restarts += other.restarts;
        for (a, b) in self.dead_by_reason.iter_mut().zip(other.dead_by_reason) {
            *a += b;
        }
    }
}

impl std::fmt::Display for Accounting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "accepted {} = handled {} + dead-lettered {}",
            self.accepted,
            self.handled,
            self.dead_lettered()
        )?;
        let reasons: Vec<String> = DeadLetterReason::ALL
            .iter()
            .filter(|r| self.dead(**r) > 0)
            .map(|r| format!("{r}: {}", self.dead(*r)))
            .collect();
        if !reasons.is_empty() {
            write!(f, " ({})", reasons.join(", "))?;
        }
        if self.in_flight() > 0 {
            write!(f, " + in flight {}", self.in_flight())?;
        }
        write!(f, "; rejected {}", self.rejected)
    }
}
