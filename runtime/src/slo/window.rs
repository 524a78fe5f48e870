//! Sliding windows of latency and outcome counts.
//!
//! A window of `W` seconds is a ring of `SLOTS` slots of `W / SLOTS` seconds
//! each; a read merges the slots that overlap the last `W` seconds (the
//! current, partial slot included), so "the last 10 s" is exact to one slot.
//! Slots are allocated only when something is recorded in them.

use std::collections::VecDeque;

use super::compact::{Buckets, SparseHistogram};
use super::{SloTargets, SloVerdict};

/// One slot's data.
#[derive(Clone, Debug)]
pub(crate) struct Slot {
    index: u64,
    pub hist: SparseHistogram,
    pub handled: u64,
    pub failed: u64,
}

/// A sliding window; time is whole seconds since the runtime started.
#[derive(Clone, Debug)]
pub(crate) struct Window {
    slot_secs: u64,
    slots: usize,
    ring: VecDeque<Slot>,
}

/// Merged contents of a window.
#[derive(Debug)]
pub(crate) struct WindowTotals {
    pub hist: SparseHistogram,
    pub handled: u64,
    pub failed: u64,
}

impl Window {
    /// A window of `secs` seconds in `slots` slots (`secs` is rounded up to a multiple).
    pub fn new(secs: u64, slots: usize) -> Window {
        let slots = slots.max(1);
        Window {
            slot_secs: secs.div_ceil(slots as u64).max(1),
            slots,
            ring: VecDeque::with_capacity(slots),
        }
    }

    /// Length in seconds.
    pub fn secs(&self) -> u64 {
        self.slot_secs * self.slots as u64
    }

    /// Drops the slots that left the window by `index`; returns the last one
    /// dropped, so its histogram's chunks can be reused by the next slot.
    fn expire(&mut self, index: u64) -> Option<Slot> {
        let mut spare = None;
        while self
            .ring
            .front()
            .is_some_and(|s| s.index + self.slots as u64 <= index)
        {
            spare = self.ring.pop_front();
        }
        spare
    }

    /// Adds an interval's data at time `now`.
    pub fn add(&mut self, now: u64, hist: &impl Buckets, handled: u64, failed: u64) {
        if hist.is_empty() && handled == 0 && failed == 0 {
            return;
        }
        let index = now / self.slot_secs;
        let spare = self.expire(index);
        if self.ring.back().is_none_or(|s| s.index != index) {
            // A steady agent reuses the expired slot's buffer instead of
            // freeing and allocating one every slot.
            let mut hist = spare.map(|s| s.hist).unwrap_or_default();
            hist.reset();
            self.ring.push_back(Slot {
                index,
                hist,
                handled: 0,
                failed: 0,
            });
        }
        let slot = self.ring.back_mut().expect("a slot was just ensured");
        slot.hist.add(hist);
        slot.handled += handled;
        slot.failed += failed;
    }

    /// Heap bytes held by the slots' histograms.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.ring.iter().map(|s| s.hist.heap_bytes()).sum()
    }

    /// The verdict of `subject` against `targets` over this window as of
    /// `now` (seconds since the runtime started).
    pub fn verdict(&self, subject: &str, now: u64, targets: SloTargets) -> SloVerdict {
        let t = self.totals(now);
        SloVerdict::evaluate(
            subject,
            self.secs(),
            now + 1,
            targets,
            &t.hist,
            t.handled,
            t.failed,
        )
    }

    /// The merged window as of `now`.
    pub fn totals(&self, now: u64) -> WindowTotals {
        let index = now / self.slot_secs;
        let mut out = WindowTotals {
            hist: SparseHistogram::new(),
            handled: 0,
            failed: 0,
        };
        for slot in self
            .ring
            .iter()
            .filter(|s| s.index + (self.slots as u64) > index)
        {
            out.hist.add(&slot.hist);
            out.handled += slot.handled;
            out.failed += slot.failed;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::compact::CompactHistogram;

    fn hist(us: u64, n: u64) -> CompactHistogram {
        let mut h = CompactHistogram::new();
        h.record_n(us, n);
        h
    }

    #[test]
    fn windows_roll_old_slots_out() {
        let mut w = Window::new(10, 5);
        w.add(0, &hist(100, 10), 10, 0);
        w.add(3, &hist(200, 10), 10, 1);
        assert_eq!(w.totals(3).hist.len(), 20);
        assert_eq!(w.totals(3).failed, 1);
        // At t=10 the slot holding t=0..2 has left the window, t=2..4 remains.
        let t = w.totals(10);
        assert_eq!(t.hist.len(), 10);
        assert_eq!(t.handled, 10);
        // At t=14 everything has rolled out.
        assert_eq!(w.totals(14).hist.len(), 0);
        w.add(20, &CompactHistogram::new(), 0, 0);
        assert!(w.ring.len() <= 5);
    }

    #[test]
    fn a_steady_window_reuses_its_slots() {
        let mut w = Window::new(10, 5);
        for now in 0..10 {
            w.add(now, &hist(100, 1), 1, 0);
        }
        let bytes = w.heap_bytes();
        for now in 10..100 {
            w.add(now, &hist(100, 1), 1, 0);
            assert_eq!(w.heap_bytes(), bytes, "at {now}");
        }
        assert_eq!(w.totals(99).hist.len(), 10);
    }

    #[test]
    fn empty_intervals_allocate_nothing() {
        let mut w = Window::new(60, 6);
        w.add(1, &CompactHistogram::new(), 0, 0);
        assert!(w.ring.is_empty());
        assert_eq!(w.secs(), 60);
    }
}
