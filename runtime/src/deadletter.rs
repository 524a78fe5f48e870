//! Dead letters: accepted messages that were not handled, and why.
//!
//! Ownership: the runtime owns one [`DeadLetters`] queue; agent tasks and senders
//! push into it. Backpressure: none towards the pusher. The queue keeps the most
//! recent `capacity` letters and evicts the oldest; every letter is counted by
//! reason in the agent's counters *before* it is queued, so eviction loses the
//! content, never the count. Readers take a snapshot or drain.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

use crate::address::AgentId;
use crate::envelope::Envelope;

/// Why an accepted message was not handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DeadLetterReason {
    /// Its deadline passed before the agent took it.
    Expired = 0,
    /// Shed from a full `drop_oldest` mailbox to make room.
    DroppedOldest = 1,
    /// The agent panicked while handling it.
    Panicked = 2,
    /// The agent's handler returned an error for it.
    Failed = 3,
    /// The agent stopped (failed without restart, or was removed) with it queued.
    AgentStopped = 4,
    /// The runtime's grace period ended with it still queued.
    Shutdown = 5,
}

impl DeadLetterReason {
    /// Number of reasons.
    pub const COUNT: usize = 6;
    /// Every reason, in index order.
    pub const ALL: [DeadLetterReason; Self::COUNT] = [
        DeadLetterReason::Expired,
        DeadLetterReason::DroppedOldest,
        DeadLetterReason::Panicked,
        DeadLetterReason::Failed,
        DeadLetterReason::AgentStopped,
        DeadLetterReason::Shutdown,
    ];

    /// A stable snake_case label, used in metrics and APIs.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Expired => "expired",
            DeadLetterReason::DroppedOldest => "dropped_oldest",
            DeadLetterReason::Panicked => "panicked",
            DeadLetterReason::Failed => "failed",
            DeadLetterReason::AgentStopped => "agent_stopped",
            DeadLetterReason::Shutdown => "shutdown",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One dead-lettered message with its reason.
#[derive(Debug)]
pub struct DeadLetter {
    /// The agent it was accepted for.
    pub agent: AgentId,
    /// The agent's name.
    pub agent_name: std::sync::Arc<str>,
    /// Why it was not handled.
    pub reason: DeadLetterReason,
    /// Detail (panic message, handler error), when there is one.
    pub detail: Option<String>,
    /// When it was dead-lettered.
    pub at: SystemTime,
    /// The message itself, without its reply slot.
    pub envelope: Envelope,
}

/// Bounded queue of the most recent dead letters.
#[derive(Debug)]
pub struct DeadLetters {
    capacity: usize,
    inner: Mutex<DeadLetterQueue>,
}

#[derive(Debug, Default)]
struct DeadLetterQueue {
    letters: VecDeque<DeadLetter>,
    evicted: u64,
}

impl DeadLetters {
    pub(crate) fn new(capacity: usize) -> DeadLetters {
        DeadLetters {
            capacity,
            inner: Mutex::new(DeadLetterQueue::default()),
        }
    }

    pub(crate) fn push(&self, letter: DeadLetter) {
        if self.capacity == 0 {
            return;
        }
        let mut q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if q.letters.len() == self.capacity {
            q.letters.pop_front();
            q.evicted += 1;
        }
        q.letters.push_back(letter);
    }

    /// Takes every queued letter out, oldest first.
    pub fn drain(&self) -> Vec<DeadLetter> {
        let mut q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        q.letters.drain(..).collect()
    }

    /// Summaries of the queued letters, oldest first, without removing them.
    pub fn peek(&self, limit: usize) -> Vec<DeadLetterSummary> {
        let q = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        q.letters
            .iter()
            .take(limit)
            .map(|l| DeadLetterSummary {
                agent: l.agent_name.to_string(),
                reason: l.reason,
                detail: l.detail.clone(),
                message_id: l.envelope.id().get(),
                payload_len: l.envelope.payload().len(),
                at: l.at,
            })
            .collect()
    }

    /// Number of letters currently queued.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .letters
            .len()
    }

    /// True when no letters are queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Letters evicted because the queue was full (their counts remain in accounting).
    pub fn evicted(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).evicted
    }
}

/// A dead letter without its payload, for listings.
#[derive(Clone, Debug)]
pub struct DeadLetterSummary {
    /// Agent name.
    pub agent: String,
    /// Why it was not handled.
    pub reason: DeadLetterReason,
    /// Detail, if any.
    pub detail: Option<String>,
    /// Message id.
    pub message_id: u64,
    /// Payload size in bytes.
    pub payload_len: usize,
    /// When it was dead-lettered.
    pub at: SystemTime,
}
