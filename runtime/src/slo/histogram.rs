//! Histogram shape and percentile snapshots.

use std::time::Duration;

use hdrhistogram::Histogram;

/// Lowest trackable latency: 1 microsecond (values are recorded in microseconds).
pub const LOWEST_US: u64 = 1;
/// Highest trackable latency: 60 seconds; longer values are clamped to it.
pub const HIGHEST_US: u64 = 60_000_000;
/// Significant figures of per-agent histograms: 2 (1% resolution). At 3
/// figures one histogram over 1 us..60 s takes ~139 KB, which a million agents
/// cannot afford; see docs/decisions/0003-histogram-precision.md.
pub const AGENT_SIGFIGS: u8 = 2;
/// Significant figures of merged reports (overall, load tests).
pub const REPORT_SIGFIGS: u8 = 3;

/// Latency histogram in microseconds.
pub type LatencyHistogram = Histogram<u64>;

/// A new per-agent histogram.
pub fn agent_histogram() -> LatencyHistogram {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, AGENT_SIGFIGS)
        .expect("constant bounds are valid")
}

/// A new report histogram (3 significant figures).
pub fn report_histogram() -> LatencyHistogram {
    Histogram::new_with_bounds(LOWEST_US, HIGHEST_US, REPORT_SIGFIGS)
        .expect("constant bounds are valid")
}

/// Records `d` (clamped to the trackable range) `n` times.
pub fn record(h: &mut LatencyHistogram, d: Duration, n: u64) {
    let us = (d.as_micros() as u64).clamp(LOWEST_US, HIGHEST_US);
    // Cannot fail: the value is clamped into the histogram's range.
    let _ = h.record_n(us, n);
}

/// Adds `from` into `into` (different precisions are fine).
pub fn merge(into: &mut LatencyHistogram, from: &LatencyHistogram) {
    // Cannot fail: both histograms share the same value range.
    let _ = into.add(from);
}

/// Percentiles of a histogram, in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Percentiles {
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
    /// Largest sample.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    /// Like [`Percentiles::of`], but each value is the *lowest* value of its
    /// bucket: what SLO checks compare, so a latency equal to the target
    /// passes despite the histogram's 1% resolution.
    pub fn floor_of(h: &LatencyHistogram) -> Percentiles {
        let p = Percentiles::of(h);
        Percentiles {
            p50: h.lowest_equivalent(p.p50),
            p90: h.lowest_equivalent(p.p90),
            p99: h.lowest_equivalent(p.p99),
            p999: h.lowest_equivalent(p.p999),
            ..p
        }
    }

    /// Reads the percentiles of `h` (all zero when empty).
    pub fn of(h: &LatencyHistogram) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}
