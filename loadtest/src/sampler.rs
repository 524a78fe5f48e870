//! What happens during a run, tick by tick: latency of the last second,
//! throughput, mailbox depth, memory and CPU, and the burst's recovery.
//!
//! ```text
//!  every TICK (100 ms):  tally.take_interval() ─► ring of the last 10 ticks
//!                        ─► trailing 1-second p50/p99, throughput
//!                        target.depth(), /proc/self/{status,stat}
//!                        burst: baseline depth, peak depth, recovery check
//!  every 10th tick:      one timeline point (the report's charts)
//! ```
//!
//! Memory and CPU are those of this process: for the embedded target that
//! includes the runtime under test; for remote targets, only the load tool.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use switchyard_runtime::slo::{LatencyHistogram, Percentiles, merge, report_histogram};

use crate::scenario::Scenario;
use crate::target::Depth;

/// Sampling period; recovery is resolved to this.
pub const TICK: Duration = Duration::from_millis(100);
/// Ticks in the trailing window (1 second).
pub const WINDOW_TICKS: usize = 10;
/// Clock ticks per second of `/proc/self/stat` (USER_HZ, 100 on Linux).
pub const USER_HZ: f64 = 100.0;

/// One second of the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Seconds since the start, at the end of this second.
    pub t_s: f64,
    /// Messages confirmed (or, for remote tells, accepted) in this second.
    pub throughput: f64,
    /// Median latency of this second, us.
    pub p50_us: u64,
    /// 99th percentile latency of this second, us.
    pub p99_us: u64,
    /// Messages queued in the target's mailboxes at the end of the second.
    pub depth: u64,
    /// Resident memory of this process, KiB.
    pub rss_kib: u64,
    /// CPU of this process over the second, percent of one core.
    pub cpu_pct: f64,
}

/// Burst outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BurstOutcome {
    /// Burst start, seconds from the run's start.
    pub start_s: f64,
    /// Burst end.
    pub end_s: f64,
    /// From the end of the burst until the trailing 1-second p99 is within
    /// the SLO and queues are back to the baseline depth; `None`: never.
    pub recovery_s: Option<f64>,
    /// Largest total mailbox depth seen.
    pub peak_depth: u64,
    /// Largest single mailbox depth seen.
    pub peak_agent_depth: u64,
    /// Largest total depth before the burst (the level queues must return to).
    pub baseline_depth: u64,
    /// Largest trailing 1-second p99 during or after the burst, us.
    pub worst_p99_us: u64,
}

/// Reads this process's resident set size in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Reads this process's user + system CPU time in clock ticks.
pub fn cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The sampler's state; fed one tick at a time.
pub struct Sampler {
    ring: VecDeque<LatencyHistogram>,
    /// The sum of `ring`, kept up to date by adding each new interval and
    /// subtracting the one that leaves, so a tick merges two histograms, not ten.
    window: LatencyHistogram,
    /// Everything recorded in the run.
    pub total: LatencyHistogram,
    /// One point per second.
    pub timeline: Vec<Point>,
    ticks: u64,
    burst: Option<(f64, f64)>,
    recovery_p99_us: Option<u64>,
    warmup_s: f64,
    /// Burst outcome so far.
    pub outcome: BurstOutcome,
    cpu_last: Option<u64>,
    second_count: u64,
    /// Peak RSS seen, KiB.
    pub rss_peak_kib: u64,
    /// The trailing 1-second percentiles at the last tick.
    pub last: Percentiles,
}

impl Sampler {
    /// A sampler for `s`.
    pub fn new(s: &Scenario) -> Sampler {
        let burst = s
            .burst
            .map(|b| (b.at.0.as_secs_f64(), (b.at.0 + b.length.0).as_secs_f64()));
        Sampler {
            ring: VecDeque::with_capacity(WINDOW_TICKS),
            window: report_histogram(),
            total: report_histogram(),
            timeline: Vec::new(),
            ticks: 0,
            burst,
            recovery_p99_us: s.slo.p99.map(|d| d.0.as_micros() as u64),
            warmup_s: s.ramp_up.0.as_secs_f64().max(0.5),
            outcome: BurstOutcome {
                start_s: burst.map_or(0.0, |b| b.0),
                end_s: burst.map_or(0.0, |b| b.1),
                ..BurstOutcome::default()
            },
            cpu_last: cpu_ticks(),
            second_count: 0,
            rss_peak_kib: 0,
            last: Percentiles::default(),
        }
    }

    /// Feeds one tick: what was recorded during it and the depth at its end.
    pub fn tick(&mut self, interval: LatencyHistogram, depth: Option<Depth>) {
        self.ticks += 1;
        // Rounded to the tick so comparisons with the burst's edges are exact.
        let t = (self.ticks as f64 * TICK.as_secs_f64() * 1e3).round() / 1e3;
        merge(&mut self.total, &interval);
        self.second_count += interval.len();
        if self.ring.len() == WINDOW_TICKS
            && let Some(old) = self.ring.pop_front()
        {
            // Cannot fail: `old` was added to the window and shares its range.
            let _ = self.window.subtract(&old);
        }
        merge(&mut self.window, &interval);
        self.ring.push_back(interval);
        let p = Percentiles::of(&self.window);
        self.last = p;
        let depth = depth.unwrap_or_default();
        let rss = rss_kib().unwrap_or(0);
        self.rss_peak_kib = self.rss_peak_kib.max(rss);
        if let Some((start, end)) = self.burst {
            let o = &mut self.outcome;
            o.peak_depth = o.peak_depth.max(depth.total);
            o.peak_agent_depth = o.peak_agent_depth.max(depth.max);
            if t >= self.warmup_s && t < start {
                o.baseline_depth = o.baseline_depth.max(depth.total);
            }
            if t >= start {
                o.worst_p99_us = o.worst_p99_us.max(p.p99);
            }
            if t >= end && o.recovery_s.is_none() {
                let latency_ok = self.recovery_p99_us.is_none_or(|b| p.p99 <= b);
                if latency_ok && depth.total <= o.baseline_depth {
                    o.recovery_s = Some(((t - end) * 1e3).round() / 1e3);
                }
            }
        }
        if self.ticks.is_multiple_of(WINDOW_TICKS as u64) {
            let cpu = cpu_ticks();
            let cpu_pct = match (cpu, self.cpu_last) {
                (Some(now), Some(then)) => (now.saturating_sub(then)) as f64 / USER_HZ * 100.0,
                _ => 0.0,
            };
            self.cpu_last = cpu;
            self.timeline.push(Point {
                t_s: t,
                throughput: self.second_count as f64,
                p50_us: p.p50,
                p99_us: p.p99,
                depth: depth.total,
                rss_kib: rss,
                cpu_pct,
            });
            self.second_count = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Overrides;
    use switchyard_runtime::slo::record;

    fn hist(us: u64, n: u64) -> LatencyHistogram {
        let mut h = report_histogram();
        record(&mut h, Duration::from_micros(us), n);
        h
    }

    #[test]
    fn proc_readings_work_on_linux() {
        assert!(rss_kib().unwrap() > 0);
        assert!(cpu_ticks().is_some());
    }

    #[test]
    fn recovery_waits_for_latency_and_depth() {
        let mut o = Overrides::default();
        for (k, v) in [
            ("duration", "4s"),
            ("ramp_up", "0s"),
            ("burst.rate", "1000"),
            ("burst.at", "1s"),
            ("burst.length", "1s"),
            ("slo.p99", "1ms"),
        ] {
            o.set(k, v);
        }
        let s = Scenario::default_with(&o).unwrap();
        let mut sm = Sampler::new(&s);
        let d = |total| Some(Depth { total, max: total });
        // 1 s of base load at depth 2, 1 s of burst with slow messages.
        for _ in 0..10 {
            sm.tick(hist(100, 10), d(2));
        }
        for _ in 0..10 {
            sm.tick(hist(50_000, 10), d(500));
        }
        // After the burst: queues drain at 0.3 s, but the slow samples stay
        // in the trailing second until 1.0 s after the burst.
        for i in 0..15 {
            sm.tick(hist(100, 10), d(if i < 3 { 100 } else { 1 }));
        }
        let out = sm.outcome;
        assert_eq!(out.baseline_depth, 2);
        assert_eq!(out.peak_depth, 500);
        assert_eq!(out.recovery_s, Some(1.0));
        assert_eq!(sm.timeline.len(), 3);
        assert_eq!(sm.total.len(), 350);
    }
}
