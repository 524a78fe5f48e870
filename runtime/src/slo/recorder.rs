//! One agent's latency state: cumulative histograms, the interval being
//! filled, and the sliding windows the SLO evaluator reads.
//!
//! Ownership: the state sits behind the agent's own mutex, allocated at its
//! first sample. The agent task locks it once per batch to record; the ticker
//! locks it once per tick to roll windows. No lock is shared between agents.

use std::time::{Duration, Instant};

#[cfg(test)]
use super::histogram::Percentiles;
use super::histogram::{LatencyHistogram, agent_histogram, record};
use super::window::Window;
use super::{SloStatus, WINDOWS};
use crate::envelope::Envelope;

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
    pub fn record_batch(&mut self, batch: &[Envelope], taken: Instant, done: Instant) {
        let n = batch.len() as u64;
        if n == 0 {
            return;
        }
        let service = done.saturating_duration_since(taken) / n as u32;
        record(slot(&mut self.service), service, n);
        for env in batch {
            if let Some(enqueued) = env.enqueued_at {
                record(
                    slot(&mut self.queue),
                    taken.saturating_duration_since(enqueued),
                    1,
                );
                let sojourn = done.saturating_duration_since(enqueued);
                record(slot(&mut self.sojourn), sojourn, 1);
                record(slot(&mut self.interval), sojourn, 1);
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
        [&self.queue, &self.service, &self.sojourn, &self.ask]
            .map(|h| h.as_ref().map(Percentiles::of).unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_records_every_message() {
        let mut l = AgentLatency::new();
        let t0 = Instant::now();
        let mut batch: Vec<Envelope> = (0..10).map(|_| Envelope::tell("x")).collect();
        for e in &mut batch {
            e.enqueued_at = Some(t0);
        }
        l.record_batch(
            &batch,
            t0 + Duration::from_micros(100),
            t0 + Duration::from_micros(1100),
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
