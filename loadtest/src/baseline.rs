//! Baselines: a saved report to compare later runs against.
//!
//! `--save-baseline NAME` writes the run's JSON report to
//! `DIR/NAME.json`; `--baseline NAME` reads it back and compares throughput
//! (`ok_rate`) and p50/p99 latency. A change for the worse by more than the
//! threshold (default 10%) is a regression, and the run exits 1.
//! `DIR` is `--baseline-dir`, else `$SWITCHYARD_BASELINE_DIR`, else
//! `target/switchyard-baselines`.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::LoadError;
use crate::report::Report;

/// Where baselines live when nothing else is said.
pub const DEFAULT_DIR: &str = "target/switchyard-baselines";
/// Default regression threshold, percent.
pub const DEFAULT_THRESHOLD_PCT: f64 = 10.0;

/// The baseline directory: `explicit`, else `$SWITCHYARD_BASELINE_DIR`, else [`DEFAULT_DIR`].
pub fn dir(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("SWITCHYARD_BASELINE_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DIR))
}

fn path_of(dir: &Path, name: &str) -> Result<PathBuf, LoadError> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if !ok {
        return Err(LoadError::Baseline {
            name: name.to_owned(),
            path: dir.display().to_string(),
            message: "use letters, digits, '-', '_' and '.' only".into(),
        });
    }
    Ok(dir.join(format!("{name}.json")))
}

/// Saves `report` as baseline `name` under `dir`.
pub fn save(dir: &Path, name: &str, report: &Report) -> Result<PathBuf, LoadError> {
    let path = path_of(dir, name)?;
    let err = |message: String| LoadError::Baseline {
        name: name.to_owned(),
        path: path.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(format!("cannot create the directory: {e}")))?;
    let mut saved = report.clone();
    saved.baseline = None;
    std::fs::write(&path, saved.json()).map_err(|e| err(e.to_string()))?;
    Ok(path)
}

/// Loads baseline `name` from `dir`.
pub fn load(dir: &Path, name: &str) -> Result<Report, LoadError> {
    let path = path_of(dir, name)?;
    let err = |message: String| LoadError::Baseline {
        name: name.to_owned(),
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        err(format!(
            "cannot read it: {e}; save one with --save-baseline {name}"
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| err(format!("not a load report: {e}")))
}

/// One compared figure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// `ok_rate`, `p50_us` or `p99_us`.
    pub metric: String,
    /// The baseline's value.
    pub baseline: f64,
    /// This run's value.
    pub current: f64,
    /// Change for the worse, percent (negative: better).
    pub worse_pct: f64,
    /// Worse by more than the threshold.
    pub regressed: bool,
}

/// A run compared with a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The baseline's name.
    pub name: String,
    /// Threshold, percent.
    pub threshold_pct: f64,
    /// Each figure.
    pub deltas: Vec<Delta>,
    /// Any figure regressed.
    pub regressed: bool,
}

/// Latencies below this many microseconds are compared as this value, so
/// that 3 us → 4 us is not a "33% regression".
pub const LATENCY_FLOOR_US: f64 = 50.0;

/// Compares `current` with `baseline` (named `name`).
pub fn compare(name: &str, baseline: &Report, current: &Report, threshold_pct: f64) -> Comparison {
    let mut deltas = Vec::new();
    let mut push = |metric: &str, base: f64, cur: f64, higher_is_better: bool| {
        let worse_pct = if higher_is_better {
            if base > 0.0 {
                (base - cur) / base * 100.0
            } else {
                0.0
            }
        } else {
            let (b, c) = (base.max(LATENCY_FLOOR_US), cur.max(LATENCY_FLOOR_US));
            (c - b) / b * 100.0
        };
        deltas.push(Delta {
            metric: metric.to_owned(),
            baseline: base,
            current: cur,
            worse_pct: (worse_pct * 10.0).round() / 10.0,
            regressed: worse_pct > threshold_pct,
        });
    };
    push("ok_rate", baseline.ok_rate, current.ok_rate, true);
    push(
        "p50_us",
        baseline.latency_us.p50 as f64,
        current.latency_us.p50 as f64,
        false,
    );
    push(
        "p99_us",
        baseline.latency_us.p99 as f64,
        current.latency_us.p99 as f64,
        false,
    );
    let regressed = deltas.iter().any(|d| d.regressed);
    Comparison {
        name: name.to_owned(),
        threshold_pct,
        deltas,
        regressed,
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "baseline {:?} (threshold {}%):",
            self.name, self.threshold_pct
        )?;
        for d in &self.deltas {
            write!(
                f,
                " {} {:.0} → {:.0} ({:+.1}% worse){};",
                d.metric,
                d.baseline,
                d.current,
                d.worse_pct,
                if d.regressed { " REGRESSION" } else { "" }
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(ok_rate: f64, p50: u64, p99: u64) -> Report {
        let mut r = Report {
            ok_rate,
            ..Report::default()
        };
        r.latency_us.p50 = p50;
        r.latency_us.p99 = p99;
        r
    }

    #[test]
    fn a_slower_run_past_the_threshold_is_a_regression() {
        let base = report(100_000.0, 200, 900);
        let c = compare("b", &base, &report(95_000.0, 210, 950), 10.0);
        assert!(!c.regressed, "{c}");
        let c = compare("b", &base, &report(85_000.0, 210, 950), 10.0);
        assert!(c.regressed && c.deltas[0].regressed, "{c}");
        let c = compare("b", &base, &report(100_000.0, 200, 1200), 10.0);
        assert!(c.regressed && c.deltas[2].regressed, "{c}");
        let c = compare("b", &base, &report(100_000.0, 200, 1200), 50.0);
        assert!(!c.regressed, "{c}");
    }

    #[test]
    fn tiny_latencies_do_not_flap() {
        let c = compare("b", &report(1.0, 3, 4), &report(1.0, 5, 8), 10.0);
        assert!(!c.regressed, "{c}");
    }

    #[test]
    fn baselines_round_trip_and_names_are_checked() {
        let dir = std::env::temp_dir().join(format!("sy-baseline-{}", std::process::id()));
        let r = report(1234.0, 10, 20);
        let path = save(&dir, "main", &r).unwrap();
        assert!(path.ends_with("main.json"));
        assert_eq!(load(&dir, "main").unwrap().ok_rate, 1234.0);
        assert!(
            load(&dir, "nope")
                .unwrap_err()
                .to_string()
                .contains("--save-baseline nope")
        );
        assert!(save(&dir, "../x", &r).is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
