//! Renderings of a latency histogram: the HdrHistogram percentile spectrum
//! (the layout wrk2 prints), a compact table row, and JSON. The load tool
//! reuses these.

use std::fmt::Write as _;

use super::histogram::{LatencyHistogram, Percentiles};

/// The percentile spectrum in HdrHistogram's text layout, values in
/// milliseconds (as wrk2 prints them), `ticks_per_half` steps per halving
/// of the distance to 100%.
///
/// ```
/// use std::time::Duration;
/// use switchyard_runtime::slo::{record, report_histogram, spectrum};
/// let mut h = report_histogram();
/// for us in 1..=1000 { record(&mut h, Duration::from_micros(us), 1); }
/// let text = spectrum(&h, 5);
/// assert!(text.contains("Value   Percentile   TotalCount 1/(1-Percentile)"));
/// assert!(text.contains("#[Max     ="));
/// ```
pub fn spectrum(h: &LatencyHistogram, ticks_per_half: u32) -> String {
    let mut out = String::new();
    // The header and column widths of HdrHistogram's (and wrk2's) output.
    out.push_str("       Value   Percentile   TotalCount 1/(1-Percentile)\n\n");
    if !h.is_empty() {
        for v in h.iter_quantiles(ticks_per_half) {
            let q = v.quantile_iterated_to();
            let value_ms = v.value_iterated_to() as f64 / 1000.0;
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{:>12.3} {:>12.6} {:>12} {:>14.2}",
                    value_ms,
                    q,
                    v.count_since_last_iteration(),
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(
                    out,
                    "{:>12.3} {:>12.6} {:>12} {:>14}",
                    value_ms,
                    q,
                    v.count_since_last_iteration(),
                    "inf"
                );
            }
        }
    }
    let p = Percentiles::of(h);
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        p.mean / 1000.0,
        if h.is_empty() {
            0.0
        } else {
            h.stdev() / 1000.0
        }
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        p.max as f64 / 1000.0,
        p.count
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// Header of [`table_row`].
pub fn table_header() -> String {
    format!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        " ", "count", "p50", "p90", "p99", "p99.9", "max"
    )
}

/// One compact row: count, p50, p90, p99, p99.9, max (with units).
pub fn table_row(label: &str, p: &Percentiles) -> String {
    use super::fmt_us;
    format!(
        "{:<20} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        label,
        p.count,
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.max)
    )
}

/// JSON of the percentiles (microseconds): `{"count":..,"p50":..,...}`.
pub fn to_json(p: &Percentiles) -> String {
    serde_json::to_string(p).expect("percentiles are plain numbers")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::histogram::{record, report_histogram};
    use super::*;

    #[test]
    fn spectrum_ends_at_the_maximum() {
        let mut h = report_histogram();
        for us in [100, 200, 300, 400, 5000] {
            record(&mut h, Duration::from_micros(us), 1);
        }
        let text = spectrum(&h, 1);
        let last_value_line = text.lines().rfind(|l| l.contains("inf")).unwrap();
        assert!(last_value_line.trim_start().starts_with("5.0"), "{text}");
        assert!(text.contains("Total count    =            5"), "{text}");
    }

    #[test]
    fn table_and_json_carry_the_numbers() {
        let mut h = report_histogram();
        record(&mut h, Duration::from_micros(1500), 10);
        let p = Percentiles::of(&h);
        assert!(table_row("ask", &p).contains("1.50ms"));
        let json: serde_json::Value = serde_json::from_str(&to_json(&p)).unwrap();
        assert_eq!(json["count"], 10);
        assert_eq!(json["p99"], 1500);
    }
}
