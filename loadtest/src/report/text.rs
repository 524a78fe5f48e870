//! The text report: summary, accounting, verdict and the HdrHistogram
//! percentile spectrum (the runtime's `slo::spectrum`, as wrk2 prints it).

use std::fmt::Write as _;

use switchyard_runtime::slo::{fmt_us, spectrum};

use super::Report;

/// Renders `r` for a terminal or a log.
pub fn text(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "scenario {} → {} ({}, {}, {} B payload)",
        r.scenario, r.target, r.workload, r.agents, r.payload_bytes
    );
    let _ = writeln!(
        o,
        "ran {:.1}s: target {:.0} msg/s, sent {:.0} msg/s, ok {:.0} msg/s",
        r.duration_s, r.target_rate, r.achieved_rate, r.ok_rate
    );
    let _ = writeln!(
        o,
        "sent {} = ok {} + rejected {} + timed out {} + errors {} + lost {}",
        r.sent, r.ok, r.rejected, r.timed_out, r.errors, r.lost
    );
    if !r.dead_lettered.is_empty() {
        let parts: Vec<String> = r
            .dead_lettered
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(o, "dead-lettered: {}", parts.join(", "));
    }
    for e in &r.error_samples {
        let _ = writeln!(o, "error: {e}");
    }
    let g = &r.generator;
    let _ = writeln!(
        o,
        "generator ({} loop): scheduled {}, unsent {}, send lag p50 {} p99 {} max {}{}",
        g.mode,
        g.scheduled,
        g.unsent,
        fmt_us(g.lag_p50_us),
        fmt_us(g.lag_p99_us),
        fmt_us(g.max_lag_us),
        if g.kept_up { "" } else { "  ← FELL BEHIND" }
    );
    let l = &r.latency_us;
    let _ = writeln!(
        o,
        "latency ({}): p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  ({} samples)",
        r.latency_source,
        fmt_us(l.p50),
        fmt_us(l.p90),
        fmt_us(l.p99),
        fmt_us(l.p999),
        fmt_us(l.max),
        l.count
    );
    let res = &r.resources;
    let _ = writeln!(
        o,
        "process: RSS {} → {} KiB ({:+.1}%), peak {} KiB; CPU avg {:.0}%, peak {:.0}% of a core; \
         throughput drift {:+.1}%",
        res.rss_start_kib,
        res.rss_end_kib,
        res.rss_growth_pct,
        res.rss_peak_kib,
        res.cpu_avg_pct,
        res.cpu_peak_pct,
        -res.degradation_pct
    );
    if let Some(b) = &r.burst {
        let _ = writeln!(
            o,
            "burst {:.1}s..{:.1}s: peak depth {} (one mailbox {}), baseline depth {}, worst 1-s p99 {}, recovery {}",
            b.start_s,
            b.end_s,
            b.peak_depth,
            b.peak_agent_depth,
            b.baseline_depth,
            fmt_us(b.worst_p99_us),
            b.recovery_s
                .map_or("never".to_owned(), |s| format!("{s:.1}s"))
        );
    }
    if let Some(c) = &r.baseline {
        let _ = writeln!(o, "{c}");
    }
    if let Some(h) = &r.histogram {
        let _ = writeln!(o, "\n  Latency distribution (HdrHistogram, ms)");
        o.push_str(&spectrum(h, 5));
    }
    let s = &r.slo;
    let bound = |b: Option<u64>| b.map_or("-".to_owned(), fmt_us);
    let _ = writeln!(
        o,
        "\nSLO: p50 ≤ {}, p99 ≤ {}, success ≥ {:.2}% (measured {:.3}%): {}",
        bound(s.p50_us),
        bound(s.p99_us),
        s.min_success * 100.0,
        s.success * 100.0,
        if s.pass { "PASS" } else { "FAIL" }
    );
    for v in &s.violations {
        let _ = writeln!(o, "  - {v}");
    }
    o
}
