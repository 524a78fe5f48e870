//! The run's report: one serialisable struct ([`Report`], the stable JSON
//! schema of `docs/loadtest.md`), its SLO verdict, and renderings as text
//! (summary + HdrHistogram spectrum), JSON and a self-contained HTML page.

mod html;
mod text;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use switchyard_runtime::slo::{LatencyHistogram, Percentiles};

pub use html::html;
pub use text::text;

use crate::sampler::{BurstOutcome, Point};

/// Version of the JSON schema; bumped only on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// Latency percentiles in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyUs {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl From<Percentiles> for LatencyUs {
    fn from(p: Percentiles) -> LatencyUs {
        LatencyUs {
            count: p.count,
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            p999: p.p999,
            max: p.max,
            mean: (p.mean * 10.0).round() / 10.0,
        }
    }
}

/// The SLO and its verdict.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SloVerdict {
    /// Median bound, us (`null`: none).
    pub p50_us: Option<u64>,
    /// 99th percentile bound, us.
    pub p99_us: Option<u64>,
    /// Smallest share of `ok` in `sent`.
    pub min_success: f64,
    /// Measured share of `ok` in `sent`.
    pub success: f64,
    /// Every bound held.
    pub pass: bool,
    /// What did not hold, one sentence each.
    pub violations: Vec<String>,
}

/// Did the generator keep up with the schedule?
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GeneratorStats {
    /// `open` or `closed`.
    pub mode: String,
    /// Messages the schedule held for the run.
    pub scheduled: u64,
    /// Scheduled but never sent before the end.
    pub unsent: u64,
    /// Largest delay between a message's intended and actual send time, us.
    pub max_lag_us: u64,
    /// Median of that delay, us (open loop).
    pub lag_p50_us: u64,
    /// 99th percentile of that delay, us (open loop): the generator's share
    /// of the latency percentiles.
    pub lag_p99_us: u64,
    /// `unsent` is at most 1% of `scheduled`.
    pub kept_up: bool,
}

/// Memory and CPU of this process during the run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Resources {
    /// RSS after the warm-up (half the run, at most 60 s in), KiB.
    pub rss_start_kib: u64,
    /// RSS at the last second, KiB.
    pub rss_end_kib: u64,
    /// Largest RSS seen, KiB.
    pub rss_peak_kib: u64,
    /// (end - start) / start, percent.
    pub rss_growth_pct: f64,
    /// Mean CPU, percent of one core.
    pub cpu_avg_pct: f64,
    /// Largest one-second CPU, percent of one core.
    pub cpu_peak_pct: f64,
    /// Throughput of the last tenth of the run against the first tenth
    /// after the ramp-up, percent drop (negative: it rose).
    pub degradation_pct: f64,
}

/// The burst section of the report.
pub type BurstReport = BurstOutcome;

/// A completed run. Field by field in `docs/loadtest.md`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// Scenario name.
    pub scenario: String,
    /// `embedded`, `tcp://HOST:PORT` or `http://HOST:PORT`.
    pub target: String,
    /// `tell`, `ask` or `mix`.
    pub workload: String,
    /// Agent kind (embedded) or agent name (remote).
    pub agents: String,
    /// Payload bytes.
    pub payload_bytes: usize,
    /// Start time, seconds since the Unix epoch.
    pub started_unix_s: u64,
    /// Length of the sending phase, seconds (drain not included).
    pub duration_s: f64,
    /// Base rate asked for, msg/s (closed loop: 0).
    pub target_rate: f64,
    /// `sent / duration_s`.
    pub achieved_rate: f64,
    /// `ok / duration_s`.
    pub ok_rate: f64,
    /// Messages handed to the target.
    pub sent: u64,
    /// Confirmed by the agent side (handled tells, replied asks).
    pub ok: u64,
    /// Refused by a full mailbox or the server.
    pub rejected: u64,
    /// Deadline passed (before acceptance or in the mailbox), ask timeouts.
    pub timed_out: u64,
    /// Every other failure.
    pub errors: u64,
    /// `sent - ok - rejected - timed_out - errors`: never confirmed.
    pub lost: u64,
    /// Dead-lettered messages by reason (part of `timed_out` and `errors`).
    pub dead_lettered: BTreeMap<String, u64>,
    /// Up to 8 distinct error messages.
    pub error_samples: Vec<String>,
    /// Where latency is measured to (always from the intended send time).
    pub latency_source: String,
    /// Latency over the run, us.
    pub latency_us: LatencyUs,
    /// The SLO and verdict.
    pub slo: SloVerdict,
    /// Generator health.
    pub generator: GeneratorStats,
    /// Memory and CPU.
    pub resources: Resources,
    /// Burst outcome (burst scenarios only).
    pub burst: Option<BurstReport>,
    /// One point per second.
    pub timeline: Vec<Point>,
    /// The latency percentile curve: (percentile 0..100, us).
    pub percentile_curve: Vec<(f64, u64)>,
    /// Comparison with a baseline, when one was given.
    pub baseline: Option<crate::baseline::Comparison>,
    /// The whole latency histogram, for the text spectrum (not serialised).
    #[serde(skip)]
    pub histogram: Option<LatencyHistogram>,
}

impl Report {
    /// The exit code CI gates on: 0 pass, 1 SLO failed or regression.
    pub fn exit_code(&self) -> u8 {
        let regressed = self.baseline.as_ref().is_some_and(|b| b.regressed);
        if self.slo.pass && !regressed { 0 } else { 1 }
    }

    /// JSON, pretty-printed.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report is plain data")
    }
}

/// The percentile curve of `h` (percentile in 0..100, value in us).
pub fn curve(h: &LatencyHistogram) -> Vec<(f64, u64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(4)
        .map(|v| {
            (
                (v.quantile_iterated_to() * 1e6).round() / 1e4,
                v.value_iterated_to(),
            )
        })
        .collect()
}
