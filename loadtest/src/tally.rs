//! The run's counters and latency histograms, shared by generators, targets,
//! load agents and the sampler.
//!
//! ```text
//!  generators ── sent, lag ─────────────┐
//!  load agents (embedded tells) ─┐      │
//!  ask tasks (replies) ──────────┼─► shard[i % SHARDS] (mutex, interval histogram)
//!  remote tell tasks ────────────┘      │
//!                                       ▼
//!  sampler, every tick: take_interval() swaps each shard's histogram out
//! ```
//!
//! **Ownership.** The tally is shared (`Arc`); each histogram shard is behind
//! its own mutex, locked once per agent batch or per reply, so the 2-core hot
//! path rarely contends. Only the sampler merges shards.
//!
//! **Latency** is recorded in microseconds from the message's *intended* send
//! time (open loop), which the payload carries as nanoseconds since
//! [`Tally::epoch`] in its first 8 bytes: a generator that falls behind makes
//! latency worse, never invisible (no coordinated omission).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use switchyard_runtime::slo::{LatencyHistogram, merge, record, report_histogram};

/// Histogram shards: enough that 2 cores' agents and ask tasks rarely wait
/// for one, and few enough that the sampler's per-tick reset of every shard
/// (each a 3-figure histogram of ~139 KB) stays short: at 64 shards the reset
/// took about a millisecond of a worker every 100 ms and showed up in p99.
pub const SHARDS: usize = 8;
/// Distinct error messages kept for the report (counts are never capped).
pub const MAX_ERROR_SAMPLES: usize = 8;

/// Counters and histograms of one run. See the module docs.
#[derive(Debug)]
pub struct Tally {
    /// Time zero of the run; intended times are offsets from it.
    pub epoch: Instant,
    shards: Box<[Mutex<LatencyHistogram>]>,
    /// An empty histogram to swap in for a shard; only the sampler uses it.
    spare: Mutex<Option<LatencyHistogram>>,
    /// Messages handed to the target (accepted or refused). Written by the
    /// generators, on its own cache line.
    pub sent: CachePadded<AtomicU64>,
    /// Messages confirmed: tells handled by a load agent, asks replied.
    /// Written by the agents, on its own cache line.
    pub ok: CachePadded<AtomicU64>,
    /// Refused by a full mailbox (policy reject) or the server.
    pub rejected: AtomicU64,
    /// Deadline passed before the message was accepted, or ask timeout.
    pub timed_out: AtomicU64,
    /// Any other failure (closed agent, broken connection, bad status).
    pub errors: AtomicU64,
    /// Asks and remote requests still in flight.
    pub in_flight: AtomicU64,
    /// Largest delay between a message's intended and actual send time, ns.
    pub max_lag_ns: AtomicU64,
    error_samples: Mutex<Vec<String>>,
}

impl Tally {
    /// A fresh tally whose epoch is now.
    pub fn new() -> Tally {
        Tally {
            epoch: Instant::now(),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(report_histogram()))
                .collect(),
            spare: Mutex::new(None),
            sent: CachePadded::new(AtomicU64::new(0)),
            ok: CachePadded::new(AtomicU64::new(0)),
            rejected: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            max_lag_ns: AtomicU64::new(0),
            error_samples: Mutex::new(Vec::new()),
        }
    }

    /// `at` as nanoseconds since the epoch (0 before it).
    pub fn offset_ns(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// The instant `ns` nanoseconds after the epoch.
    pub fn instant(&self, ns: u64) -> Instant {
        self.epoch + Duration::from_nanos(ns)
    }

    /// Records one latency sample in shard `shard % SHARDS`.
    pub fn record(&self, shard: usize, latency: Duration) {
        let mut h = self.shards[shard % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        record(&mut h, latency, 1);
    }

    /// Records many samples under one lock.
    pub fn record_all(&self, shard: usize, latencies: &[Duration]) {
        if latencies.is_empty() {
            return;
        }
        let mut h = self.shards[shard % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for d in latencies {
            record(&mut h, *d, 1);
        }
    }

    /// Takes what was recorded since the last call, merged over shards.
    ///
    /// Each shard is swapped for an empty histogram under its lock and merged
    /// after the lock is released, so an agent recording into it waits for
    /// a swap, never for a merge.
    pub fn take_interval(&self) -> LatencyHistogram {
        let mut out = report_histogram();
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        for shard in self.shards.iter() {
            let mut taken = {
                let mut h = shard.lock().unwrap_or_else(|p| p.into_inner());
                if h.is_empty() {
                    continue;
                }
                std::mem::replace(&mut *h, spare.take().unwrap_or_else(report_histogram))
            };
            merge(&mut out, &taken);
            taken.reset();
            *spare = Some(taken);
        }
        out
    }

    /// Notes that a message meant for `intended` went out at `now`.
    pub fn note_lag(&self, intended: Instant, now: Instant) {
        let lag = now.saturating_duration_since(intended).as_nanos() as u64;
        self.max_lag_ns.fetch_max(lag, Ordering::Relaxed);
    }

    /// Counts one error and keeps its message if it is new (up to a few).
    pub fn error(&self, message: impl FnOnce() -> String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut samples = self.error_samples.lock().unwrap_or_else(|p| p.into_inner());
        if samples.len() < MAX_ERROR_SAMPLES {
            let m = message();
            if !samples.contains(&m) {
                samples.push(m);
            }
        }
    }

    /// The distinct error messages kept.
    pub fn error_samples(&self) -> Vec<String> {
        self.error_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

impl Default for Tally {
    fn default() -> Tally {
        Tally::new()
    }
}

/// Writes the intended time (ns since the epoch) into the first 8 bytes of a
/// payload of `size` bytes (the rest is filler).
pub fn payload(intended_ns: u64, size: usize) -> bytes::Bytes {
    let mut b = bytes::BytesMut::zeroed(size.max(8));
    b[..8].copy_from_slice(&intended_ns.to_le_bytes());
    b.freeze()
}

/// Reads the intended time back from a payload written by [`payload`].
pub fn intended_ns(payload: &[u8]) -> Option<u64> {
    let head: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_le_bytes(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_carries_the_intended_time() {
        let p = payload(123_456_789, 1024);
        assert_eq!(p.len(), 1024);
        assert_eq!(intended_ns(&p), Some(123_456_789));
        assert_eq!(intended_ns(b"short"), None);
    }

    #[test]
    fn intervals_are_taken_once() {
        let t = Tally::new();
        t.record(1, Duration::from_micros(100));
        t.record_all(
            70,
            &[Duration::from_micros(200), Duration::from_micros(300)],
        );
        assert_eq!(t.take_interval().len(), 3);
        assert_eq!(t.take_interval().len(), 0);
    }

    #[test]
    fn errors_keep_a_few_distinct_messages() {
        let t = Tally::new();
        for i in 0..20 {
            t.error(|| format!("e{}", i % 10));
        }
        assert_eq!(Tally::get(&t.errors), 20);
        assert_eq!(t.error_samples().len(), MAX_ERROR_SAMPLES);
    }
}
