//! Latency histograms and live SLO verdicts.
//!
//! ```text
//!  agent task, per batch                     ticker task, every second
//!  ─────────────────────                     ─────────────────────────
//!  taken ─► handle_batch ─► done             for each agent with samples:
//!  lock own AgentLatency:                      lock its AgentLatency
//!    queue   = taken - enqueued (each msg)     interval ─► windows (10 s, 60 s)
//!    service = (done - taken) / n              interval ─► global windows
//!    sojourn = done - enqueued (each msg)      every EVAL_TICKS: verdicts,
//!                                              warn! on pass ─► fail transitions
//! ```
//!
//! **Ownership.** Each agent owns its latency state behind its own mutex, which
//! is allocated at the first sample. Recording locks it once per batch; the
//! ticker locks it once per tick. Nothing is shared between agents on the hot
//! path; global views are merged on demand or by the ticker.
//!
//! **What is checked.** SLOs apply to *sojourn time*, from enqueue to handled,
//! plus the error rate, which counts dead-lettered and refused messages against
//! everything offered. Verdicts are computed over the last 10 s and the last
//! 60 s, per agent and overall.

mod compact;
mod histogram;
mod recorder;
mod report;
mod window;

use std::fmt;
use std::time::Duration;

pub use compact::{Buckets, CompactHistogram, SparseHistogram};
pub use histogram::{
    AGENT_SIGFIGS, HIGHEST_US, LOWEST_US, LatencyHistogram, Percentiles, REPORT_SIGFIGS,
    agent_histogram, merge, record, report_histogram,
};
pub(crate) use recorder::{AgentLatency, Interval};
pub use report::{spectrum, table_header, table_row, to_json};
pub(crate) use window::Window;

/// The sliding windows: (length in seconds, slots).
pub const WINDOWS: [(u64, usize); 2] = [(10, 5), (60, 6)];

/// Latency and error-rate targets for an agent or the whole runtime.
///
/// ```
/// use std::time::Duration;
/// use switchyard_runtime::slo::SloTargets;
/// let seed = SloTargets::seed();
/// assert_eq!(seed.p50, Some(Duration::from_millis(1)));
/// assert_eq!(seed.p99, Some(Duration::from_millis(10)));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SloTargets {
    /// Median sojourn time must be at most this.
    #[serde(default, with = "opt_micros")]
    pub p50: Option<Duration>,
    /// 99th percentile sojourn time must be at most this.
    #[serde(default, with = "opt_micros")]
    pub p99: Option<Duration>,
    /// 99.9th percentile sojourn time must be at most this.
    #[serde(default, with = "opt_micros")]
    pub p999: Option<Duration>,
    /// (dead-lettered + refused) / offered must be at most this (0.01 = 1%).
    #[serde(default)]
    pub max_error_rate: Option<f64>,
    /// Throughput the deployment must sustain, in messages per second. The
    /// load tool checks it; live verdicts report it but do not fail on it,
    /// because a quiet service is not a slow one.
    #[serde(default)]
    pub min_throughput: Option<f64>,
}

impl SloTargets {
    /// The seed targets of this field: p50 < 1 ms, p99 < 10 ms, 100 k msg/s,
    /// and at most 1% of messages lost to errors.
    pub fn seed() -> SloTargets {
        SloTargets {
            p50: Some(Duration::from_millis(1)),
            p99: Some(Duration::from_millis(10)),
            p999: None,
            max_error_rate: Some(0.01),
            min_throughput: Some(100_000.0),
        }
    }

    /// True when a verdict can fail: some latency or error-rate bound is set
    /// (throughput alone never fails a live verdict).
    pub fn can_fail(&self) -> bool {
        self.p50.is_some()
            || self.p99.is_some()
            || self.p999.is_some()
            || self.max_error_rate.is_some()
    }

    /// Checks `measured` against the targets; returns the violations.
    pub fn violations(&self, measured: &Percentiles, error_rate: f64) -> Vec<String> {
        let mut out = Vec::new();
        for (name, target, value) in [
            ("p50", self.p50, measured.p50),
            ("p99", self.p99, measured.p99),
            ("p999", self.p999, measured.p999),
        ] {
            if let Some(t) = target
                && value as u128 > t.as_micros()
            {
                out.push(format!(
                    "{name} {} > target {}",
                    fmt_us(value),
                    fmt_us(t.as_micros() as u64)
                ));
            }
        }
        if let Some(max) = self.max_error_rate
            && error_rate > max
        {
            out.push(format!(
                "error rate {:.2}% > target {:.2}%",
                error_rate * 100.0,
                max * 100.0
            ));
        }
        out
    }
}

impl Default for SloTargets {
    fn default() -> SloTargets {
        SloTargets::seed()
    }
}

/// Formats microseconds with a unit that fits.
pub fn fmt_us(us: u64) -> String {
    if us >= 1_000_000 {
        format!("{:.2}s", us as f64 / 1e6)
    } else if us >= 1_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{us}us")
    }
}

mod opt_micros {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_micros() as u64)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_micros))
    }
}

/// Outcome of one SLO check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SloStatus {
    /// Every target met.
    Pass,
    /// At least one target missed.
    Fail,
    /// Nothing happened in the window.
    NoData,
}

impl fmt::Display for SloStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SloStatus::Pass => "pass",
            SloStatus::Fail => "FAIL",
            SloStatus::NoData => "no data",
        })
    }
}

/// The verdict for one subject (an agent or `overall`) over one window.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SloVerdict {
    /// Agent name, or `overall`.
    pub subject: String,
    /// Window length in seconds.
    pub window_s: u64,
    /// Pass, fail or no data.
    pub status: SloStatus,
    /// Sojourn-time percentiles in the window (microseconds).
    pub latency_us: Percentiles,
    /// (dead-lettered + refused) / offered in the window.
    pub error_rate: f64,
    /// Handled messages per second over the window.
    pub throughput: f64,
    /// The targets checked.
    pub targets: SloTargets,
    /// What missed its target.
    pub violations: Vec<String>,
}

impl SloVerdict {
    /// `covered_s` is how much of the window the runtime has existed for
    /// (throughput is per covered second).
    pub(crate) fn evaluate(
        subject: &str,
        window_s: u64,
        covered_s: u64,
        targets: SloTargets,
        hist: &SparseHistogram,
        handled: u64,
        failed: u64,
    ) -> SloVerdict {
        let (latency_us, floor) = hist.percentiles();
        let offered = handled + failed;
        let error_rate = if offered == 0 {
            0.0
        } else {
            failed as f64 / offered as f64
        };
        let violations = targets.violations(&floor, error_rate);
        let status = if offered == 0 && hist.is_empty() {
            SloStatus::NoData
        } else if violations.is_empty() {
            SloStatus::Pass
        } else {
            SloStatus::Fail
        };
        SloVerdict {
            subject: subject.to_owned(),
            window_s,
            status,
            latency_us,
            error_rate,
            throughput: handled as f64 / covered_s.clamp(1, window_s.max(1)) as f64,
            targets,
            violations,
        }
    }
}

/// Verdicts for every agent with data and overall.
#[derive(Clone, Debug, serde::Serialize)]
pub struct SloReport {
    /// Overall verdicts first (10 s, 60 s), then agents by name.
    pub verdicts: Vec<SloVerdict>,
}

impl SloReport {
    /// The worst status over the overall verdicts: fail beats pass beats no data.
    pub fn overall(&self) -> SloStatus {
        let overall = self.verdicts.iter().filter(|v| v.subject == "overall");
        if overall.clone().any(|v| v.status == SloStatus::Fail) {
            SloStatus::Fail
        } else if overall.clone().any(|v| v.status == SloStatus::Pass) {
            SloStatus::Pass
        } else {
            SloStatus::NoData
        }
    }
}

impl fmt::Display for SloReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<24} {:>6} {:>8} {:>10} {:>10} {:>10} {:>9} {:>11}  targets / violations",
            "subject", "window", "status", "p50", "p99", "p999", "errors", "msg/s"
        )?;
        for v in &self.verdicts {
            let t = &v.targets;
            let targets = format!(
                "p50<={} p99<={}",
                t.p50.map_or("-".into(), |d| fmt_us(d.as_micros() as u64)),
                t.p99.map_or("-".into(), |d| fmt_us(d.as_micros() as u64)),
            );
            let note = if v.violations.is_empty() {
                targets
            } else {
                v.violations.join("; ")
            };
            writeln!(
                f,
                "{:<24} {:>5}s {:>8} {:>10} {:>10} {:>10} {:>8.2}% {:>11.0}  {}",
                v.subject,
                v.window_s,
                v.status.to_string(),
                fmt_us(v.latency_us.p50),
                fmt_us(v.latency_us.p99),
                fmt_us(v.latency_us.p999),
                v.error_rate * 100.0,
                v.throughput,
                note
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist_of(us: &[u64]) -> SparseHistogram {
        let mut h = SparseHistogram::new();
        for v in us {
            h.record_nanos(*v * 1_000);
        }
        h
    }

    #[test]
    fn verdicts_at_the_boundaries() {
        let t = SloTargets {
            p50: Some(Duration::from_micros(1000)),
            p99: Some(Duration::from_micros(10_000)),
            ..SloTargets::seed()
        };
        // Exactly at the target passes; 2% above fails (1% resolution).
        let at = SloVerdict::evaluate("a", 10, 10, t, &hist_of(&[1000; 100]), 100, 0);
        assert_eq!(at.status, SloStatus::Pass, "{:?}", at.violations);
        let above = SloVerdict::evaluate("a", 10, 10, t, &hist_of(&[1020; 100]), 100, 0);
        assert_eq!(above.status, SloStatus::Fail);
        assert!(
            above.violations[0].starts_with("p50"),
            "{:?}",
            above.violations
        );
        // A slow tail fails p99 only.
        let mut v = vec![100; 98];
        v.extend([20_000, 20_000]);
        let tail = SloVerdict::evaluate("a", 10, 10, t, &hist_of(&v), 100, 0);
        assert_eq!(tail.violations.len(), 1);
        assert!(tail.violations[0].starts_with("p99"));
        // Errors: 1% passes at a 1% target, 2% fails.
        assert_eq!(
            SloVerdict::evaluate("a", 10, 10, t, &hist_of(&[10]), 99, 1).status,
            SloStatus::Pass
        );
        assert_eq!(
            SloVerdict::evaluate("a", 10, 10, t, &hist_of(&[10]), 98, 2).status,
            SloStatus::Fail
        );
        assert_eq!(
            SloVerdict::evaluate("a", 10, 10, t, &SparseHistogram::new(), 0, 0).status,
            SloStatus::NoData
        );
    }

    #[test]
    fn targets_round_trip_through_serde() {
        let json = serde_json::to_string(&SloTargets::seed()).unwrap();
        assert!(json.contains("\"p99\":10000"), "{json}");
        let back: SloTargets = serde_json::from_str(&json).unwrap();
        assert_eq!(back, SloTargets::seed());
    }

    #[test]
    fn per_agent_histograms_stay_small() {
        // The reason for AGENT_SIGFIGS = 2; see docs/decisions/0003.
        let agent = agent_histogram().distinct_values();
        let report = report_histogram().distinct_values();
        assert!(agent <= 3_000, "{agent}");
        assert!(report > 10_000, "{report}");
    }
}
