//! The send budget: a task that sends without ever waiting still yields.
//!
//! A send into a mailbox with room completes without awaiting anything, so
//! a producer in a loop of `rt.tell(..).await` would keep its worker until
//! some mailbox filled: with 10,000 agents of 1,024 slots, that is ten
//! million messages before a timer, a socket or an agent on the same worker
//! runs again. Each worker thread therefore has a budget of
//! [`SENDS_PER_YIELD`] sends; the send that finds it spent yields first
//! (before sending, so a send cancelled in its yield sent nothing), and the
//! budget refills. Tokio's own channels do the same through its cooperative
//! budget, whose 128 units per poll are too few here: the agents fed by a
//! one-worker producer then run with one or two messages each (decision 0028).

use std::cell::Cell;

/// Sends a thread makes between two yields. Small enough that what a
/// producer queued since its last yield still sits in the core's cache when
/// the agents on its worker take it (16,384 envelopes are about 2 MiB),
/// large enough that a yield costs nothing per message (decision 0028).
pub const SENDS_PER_YIELD: u32 = 16_384;

thread_local! {
    /// Sends left before this thread's current task yields.
    static LEFT: Cell<u32> = const { Cell::new(SENDS_PER_YIELD) };
}

/// Takes `n` sends from this thread's budget; true when it ran out. The
/// budget then stays empty until [`refill_if_spent`], which the caller
/// reaches in the same poll, on its way to yielding.
#[inline]
pub(crate) fn take(n: usize) -> bool {
    LEFT.with(|left| {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        match left.get().checked_sub(n) {
            Some(rest) if rest > 0 => {
                left.set(rest);
                false
            }
            _ => {
                left.set(0);
                true
            }
        }
    })
}

/// Refills the budget if [`take`] emptied it; true if so (the caller yields).
pub(crate) fn refill_if_spent() -> bool {
    LEFT.with(|left| {
        let spent = left.get() == 0;
        if spent {
            left.set(SENDS_PER_YIELD);
        }
        spent
    })
}

/// Takes `n` sends from the budget, yielding to the scheduler first when it
/// ran out.
pub(crate) async fn spend(n: usize) {
    if take(n) && refill_if_spent() {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_out_once_per_budget_and_refills() {
        // A fresh thread: the test harness's thread may have sent before.
        std::thread::spawn(|| {
            let out = || take(1) && refill_if_spent();
            let outs = (0..3 * SENDS_PER_YIELD).filter(|_| out()).count();
            assert_eq!(outs, 3);
            assert!(!refill_if_spent(), "only an emptied budget refills");
            assert!(
                take(SENDS_PER_YIELD as usize),
                "a batch as large as the budget"
            );
            assert!(take(1), "stays empty until refilled");
            assert!(refill_if_spent());
            assert!(take(usize::MAX), "a batch larger than any budget");
            assert!(refill_if_spent());
            assert!(!take(1), "refilled");
        })
        .join()
        .unwrap();
    }
}
