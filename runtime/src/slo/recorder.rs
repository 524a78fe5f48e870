//! One agent's latency state: cumulative histograms, the interval being
//! filled, and the sliding windows the SLO evaluator reads.
//!
//! Ownership: two locks per agent, both allocated at its first sample. The
//! agent task (once per batch) and its askers record into the [`Interval`]
//! behind the hot one. The ticker takes the other, which guards the
//! [`AgentLatency`] (cumulative [`SparseHistogram`]s and windows), swaps the
//! interval out under the hot lock in a few instructions, and merges it
//! with only its own lock held. So the ticker, which runs at the lowest
//! priority, never keeps an agent waiting for the whole merge. No lock is
//! shared between agents. Every sample is recorded once, on the hot path,
//! and merged once per tick.

use std::time::Duration;

use super::compact::{Buckets, CompactHistogram, SparseHistogram};
use super::histogram::LatencyHistogram;
#[cfg(test)]
use super::histogram::Percentiles;
use super::window::Window;
use super::{SloStatus, WINDOWS};
use crate::envelope::Envelope;
use crate::envelope::Tick;

/// Samples since the last tick: what an agent and its askers record into,
/// behind the agent's hot lock (`AgentCell::interval`). The tick swaps it
/// for the empty one its [`AgentLatency`] keeps, so it rolls the samples
/// without holding the lock the agent records under.
#[derive(Debug, Default)]
pub(crate) struct Interval {
    queue: CompactHistogram,
    service: CompactHistogram,
    sojourn: CompactHistogram,
    ask: CompactHistogram,
}

impl Interval {
    /// Records a batch taken at `taken` and finished at `done`.
    pub fn record_batch(&mut self, batch: &[Envelope], taken: Tick, done: Tick) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        let Interval {
            queue,
            service,
            sojourn: interval,
            ..
        } = self;
        service.record_nanos(done.nanos_since(taken) / n, n);
        // Runs of messages with the same enqueue stamp (a `tell_batch`) or the
        // same microsecond values are recorded with one `record_n` each.
        let mut run: Option<(u64, u64)> = None;
        let mut count = 0;
        for env in batch {
            let Some(enqueued) = env.enqueued_at else {
                continue;
            };
            let us = (
                taken.nanos_since(enqueued) / 1_000,
                done.nanos_since(enqueued) / 1_000,
            );
            if run == Some(us) {
                count += 1;
                continue;
            }
            if let Some((q, j)) = run {
                queue.record_n(q, count);
                interval.record_n(j, count);
            }
            (run, count) = (Some(us), 1);
        }
        if let Some((q, j)) = run {
            queue.record_n(q, count);
            interval.record_n(j, count);
        }
    }

    /// Records one ask round trip.
    pub fn record_ask(&mut self, d: Duration) {
        self.ask.record_nanos(d.as_nanos() as u64, 1);
    }

    /// Adds these samples into `into` (queue, service, sojourn, ask).
    pub fn merge_into(&self, into: &mut [LatencyHistogram; 4]) {
        merge_each([&self.queue, &self.service, &self.sojourn, &self.ask], into);
    }
}

/// Adds queue, service, sojourn and ask histograms into `into`, in order.
fn merge_each(from: [&impl Buckets; 4], into: &mut [LatencyHistogram; 4]) {
    for (h, into) in from.into_iter().zip(into) {
        h.merge_into(into);
    }
}

/// Latency state of one agent, behind its own lock (`AgentCell::history`),
/// which the tick and readers take; the agent itself never does.
#[derive(Debug)]
pub(crate) struct AgentLatency {
    /// Enqueued to taken out of the mailbox, up to the last tick.
    queue: SparseHistogram,
    /// Handler time per message (batch time divided by batch size).
    service: SparseHistogram,
    /// Enqueued to handled (queue wait + service): what SLOs are checked on.
    sojourn: SparseHistogram,
    /// Ask round trips as seen by askers, up to the last tick.
    ask: SparseHistogram,
    interval: Interval,
    pub windows: [Window; 2],
    last_handled: u64,
    last_failed: u64,
    pub last_status: [SloStatus; 2],
}

impl AgentLatency {
    pub fn new() -> AgentLatency {
        AgentLatency {
            queue: SparseHistogram::new(),
            service: SparseHistogram::new(),
            sojourn: SparseHistogram::new(),
            ask: SparseHistogram::new(),
            interval: Interval::default(),
            windows: WINDOWS.map(|(secs, slots)| Window::new(secs, slots)),
            last_handled: 0,
            last_failed: 0,
            last_status: [SloStatus::NoData; 2],
        }
    }

    /// Adds the cumulative queue, service, sojourn and ask histograms into
    /// `into`. The samples since the last tick are in the agent's live
    /// [`Interval`]; the one kept here is empty except during a tick.
    pub fn merge_into(&self, into: &mut [LatencyHistogram; 4]) {
        merge_each([&self.queue, &self.service, &self.sojourn, &self.ask], into);
    }

    /// Moves the interval into the windows at time `now` (seconds), with the
    /// agent's running totals of handled and failed (dead-lettered or
    /// refused) messages. Returns the interval (for global windows) and the
    /// handled and failed deltas since the last tick.
    pub fn tick(&mut self, now: u64, handled: u64, failed: u64) -> (&CompactHistogram, u64, u64) {
        let dh = handled.saturating_sub(self.last_handled);
        let df = failed.saturating_sub(self.last_failed);
        self.last_handled = handled;
        self.last_failed = failed;
        let i = &self.interval;
        self.queue.add(&i.queue);
        self.service.add(&i.service);
        self.sojourn.add(&i.sojourn);
        self.ask.add(&i.ask);
        for w in &mut self.windows {
            w.add(now, &i.sojourn, dh, df);
        }
        (&i.sojourn, dh, df)
    }

    /// Takes the agent's live samples to roll (`tick`), leaving it this
    /// state's empty interval to record into, with the chunks it kept.
    pub fn take_interval(&mut self, live: &mut Interval) {
        std::mem::swap(&mut self.interval, live);
    }

    /// Clears the interval after `tick`'s result has been used.
    pub fn reset_interval(&mut self) {
        let i = &mut self.interval;
        for h in [&mut i.queue, &mut i.service, &mut i.sojourn, &mut i.ask] {
            h.reset();
        }
    }

    /// Heap bytes held by every histogram of this agent.
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        let i = &self.interval;
        [&self.queue, &self.service, &self.sojourn, &self.ask]
            .iter()
            .map(|h| h.heap_bytes())
            .chain(
                [&i.queue, &i.service, &i.sojourn, &i.ask]
                    .iter()
                    .map(|h| h.heap_bytes()),
            )
            .chain(self.windows.iter().map(Window::heap_bytes))
            .sum()
    }

    /// Percentiles of the cumulative histograms and the interval kept here
    /// (the tests record into it directly): queue, service, sojourn, ask.
    #[cfg(test)]
    pub fn percentiles(&self) -> [Percentiles; 4] {
        let mut all = std::array::from_fn(|_| super::histogram::agent_histogram());
        self.merge_into(&mut all);
        self.interval.merge_into(&mut all);
        all.map(|h| Percentiles::of(&h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_equal_latencies_keep_every_sample() {
        // Enqueued at 0, 0, 0, 500 µs, 500 µs, and one without a stamp.
        let mut l = AgentLatency::new();
        let mut batch: Vec<Envelope> = (0..6).map(|_| Envelope::tell("x")).collect();
        for (e, at) in batch.iter_mut().zip([0, 0, 0, 500_000, 500_000]) {
            e.enqueued_at = Some(Tick::from_nanos(at));
        }
        l.interval.record_batch(
            &batch,
            Tick::from_nanos(1_000_000),
            Tick::from_nanos(2_000_000),
        );
        let [queue, _, sojourn, _] = l.percentiles();
        assert_eq!((queue.count, sojourn.count), (5, 5));
        // 3 of 5 waited 1,000 µs in the queue, 2 of 5 waited 500 µs.
        assert!((790.0..=810.0).contains(&queue.mean), "{queue:?}");
        assert!((990..=1010).contains(&queue.p50), "{queue:?}");
        assert!((1980..=2020).contains(&sojourn.max), "{sojourn:?}");
    }

    #[test]
    fn asks_count_before_and_after_the_tick_that_moves_them() {
        let mut l = AgentLatency::new();
        l.interval.record_ask(Duration::from_micros(40));
        assert_eq!(l.percentiles()[3].count, 1, "the interval is read too");
        l.tick(0, 0, 0);
        l.reset_interval();
        l.interval.record_ask(Duration::from_micros(900));
        let ask = &l.percentiles()[3];
        assert_eq!(ask.count, 2, "the tick kept the first ask");
        assert!((890..=910).contains(&ask.max), "{ask:?}");
    }

    #[test]
    fn latency_state_grows_with_the_magnitudes_seen_not_the_range() {
        // One message, then a tick: the three interval recorders keep one
        // 256-byte chunk each, the cumulative histograms and the two window
        // slots one entry each. Dense 2-figure histograms: ~20 KiB apiece.
        let mut l = AgentLatency::new();
        let mut one = [Envelope::tell("x")];
        one[0].enqueued_at = Some(Tick::from_nanos(0));
        l.interval
            .record_batch(&one, Tick::from_nanos(20_000), Tick::from_nanos(30_000));
        l.tick(0, 1, 0);
        l.reset_interval();
        let bytes = l.heap_bytes();
        assert!(bytes <= 1024, "{bytes} bytes after one message");

        // Sojourn times spread from 5 µs to 900 µs (four magnitudes), every
        // second for 70 s: both windows full, 16 histograms. Dense: 320 KiB.
        let mut batch: Vec<Envelope> = (0..64).map(|_| Envelope::tell("x")).collect();
        for now in 1..70u64 {
            let base = now * 1_000_000_000;
            for (i, e) in batch.iter_mut().enumerate() {
                e.enqueued_at = Some(Tick::from_nanos(base + i as u64 * 14_000));
            }
            let taken = Tick::from_nanos(base + 900_000);
            l.interval
                .record_batch(&batch, taken, Tick::from_nanos(base + 905_000));
            l.tick(now, (now + 1) * 64, 0);
            l.reset_interval();
        }
        assert_eq!(l.windows[1].totals(69).handled, 60 * 64);
        let bytes = l.heap_bytes();
        assert!(bytes <= 24 * 1024, "{bytes} bytes of a busy agent");
    }

    #[test]
    fn a_batch_records_every_message() {
        let mut l = AgentLatency::new();
        let mut batch: Vec<Envelope> = (0..10).map(|_| Envelope::tell("x")).collect();
        for e in &mut batch {
            e.enqueued_at = Some(Tick::from_nanos(1_000_000));
        }
        l.interval.record_batch(
            &batch,
            Tick::from_nanos(1_100_000),
            Tick::from_nanos(2_100_000),
        );
        let [queue, service, sojourn, ask] = l.percentiles();
        assert_eq!(
            (queue.count, service.count, sojourn.count, ask.count),
            (10, 10, 10, 0)
        );
        assert!((99..=101).contains(&queue.p50), "{queue:?}");
        assert!((99..=101).contains(&service.p50), "{service:?}");
        assert!((1089..=1111).contains(&sojourn.p99), "{sojourn:?}");
        assert_eq!(l.tick(0, 10, 0).0.len(), 10);
        l.reset_interval();
        assert_eq!(l.windows[0].totals(0).handled, 10);
    }
}
