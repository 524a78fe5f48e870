//! One agent's latency state: cumulative histograms, the interval being
//! filled, and the sliding windows the SLO evaluator reads.
//!
//! Ownership: the state sits behind the agent's own mutex, allocated at its
//! first sample. The agent task locks it once per batch to record; the ticker
//! locks it once per tick to roll windows. No lock is shared between agents.

use std::time::Duration;

#[cfg(test)]
use super::histogram::Percentiles;
use super::histogram::{LatencyHistogram, agent_histogram, record, record_nanos};
use super::window::Window;
use super::{SloStatus, WINDOWS};
use crate::envelope::Envelope;
use crate::envelope::Tick;

fn slot(h: &mut Option<LatencyHistogram>) -> &mut LatencyHistogram {
    h.get_or_insert_with(agent_histogram)
}

/// Latency state of one agent.
#[derive(Debug)]
pub(crate) struct AgentLatency {
    /// Enqueued to taken out of the mailbox.
    pub queue: Option<LatencyHistogram>,
    /// Handler time per message (batch time divided by batch size).
    pub service: Option<LatencyHistogram>,
    /// Enqueued to handled (queue wait + service): what SLOs are checked on.
    /// Holds the samples up to the last tick; add `interval` for the rest
    /// ([`AgentLatency::sojourn_now`]), so each sample is recorded once.
    pub sojourn: Option<LatencyHistogram>,
    /// Ask round trips as seen by askers.
    pub ask: Option<LatencyHistogram>,
    /// Sojourn samples since the last tick.
    interval: Option<LatencyHistogram>,
    pub windows: [Window; 2],
    last_handled: u64,
    last_failed: u64,
    pub last_status: [SloStatus; 2],
}

impl AgentLatency {
    pub fn new() -> AgentLatency {
        AgentLatency {
            queue: None,
            service: None,
            sojourn: None,
            ask: None,
            interval: None,
            windows: WINDOWS.map(|(secs, slots)| Window::new(secs, slots)),
            last_handled: 0,
            last_failed: 0,
            last_status: [SloStatus::NoData; 2],
        }
    }

    /// Records a batch taken at `taken` and finished at `done`.
    pub fn record_batch(&mut self, batch: &[Envelope], taken: Tick, done: Tick) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        record_nanos(slot(&mut self.service), done.nanos_since(taken) / n, n);
        let (queue, interval) = (slot(&mut self.queue), slot(&mut self.interval));
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
                record_nanos(queue, q * 1_000, count);
                record_nanos(interval, j * 1_000, count);
            }
            (run, count) = (Some(us), 1);
        }
        if let Some((q, j)) = run {
            record_nanos(queue, q * 1_000, count);
            record_nanos(interval, j * 1_000, count);
        }
    }

    /// The cumulative sojourn histogram including the samples since the last
    /// tick, or `None` without samples.
    pub fn sojourn_now(&self) -> Option<LatencyHistogram> {
        match (&self.sojourn, &self.interval) {
            (None, None) => None,
            (Some(h), None) | (None, Some(h)) => Some(h.clone()),
            (Some(s), Some(i)) => {
                let mut all = s.clone();
                super::histogram::merge(&mut all, i);
                Some(all)
            }
        }
    }

    /// Records one ask round trip.
    pub fn record_ask(&mut self, d: Duration) {
        record(slot(&mut self.ask), d, 1);
    }

    /// Moves the interval into the windows at time `now` (seconds), with the
    /// agent's running totals of handled and failed (dead-lettered or
    /// refused) messages. Returns the interval (for global windows) and the
    /// handled and failed deltas since the last tick.
    pub fn tick(
        &mut self,
        now: u64,
        handled: u64,
        failed: u64,
    ) -> (Option<&LatencyHistogram>, u64, u64) {
        let dh = handled.saturating_sub(self.last_handled);
        let df = failed.saturating_sub(self.last_failed);
        self.last_handled = handled;
        self.last_failed = failed;
        if let Some(interval) = &self.interval {
            super::histogram::merge(slot(&mut self.sojourn), interval);
        }
        for w in &mut self.windows {
            w.add(now, self.interval.as_ref(), dh, df);
        }
        (self.interval.as_ref(), dh, df)
    }

    /// Clears the interval after `tick`'s result has been used.
    pub fn reset_interval(&mut self) {
        if let Some(h) = &mut self.interval {
            h.reset();
        }
    }

    /// Percentiles of the cumulative histograms: queue, service, sojourn, ask.
    #[cfg(test)]
    pub fn percentiles(&self) -> [Percentiles; 4] {
        let sojourn = self.sojourn_now();
        [&self.queue, &self.service, &sojourn, &self.ask]
            .map(|h| h.as_ref().map(Percentiles::of).unwrap_or_default())
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
        l.record_batch(
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
    fn a_batch_records_every_message() {
        let mut l = AgentLatency::new();
        let mut batch: Vec<Envelope> = (0..10).map(|_| Envelope::tell("x")).collect();
        for e in &mut batch {
            e.enqueued_at = Some(Tick::from_nanos(1_000_000));
        }
        l.record_batch(
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
        let interval = l.tick(0, 10, 0).0.map(|h| h.len());
        assert_eq!(interval, Some(10));
        l.reset_interval();
        assert_eq!(l.windows[0].totals(0).handled, 10);
    }
}
