//! # switchyard-loadtest
//!
//! Switchyard's own load, burst and soak tool (`switchyard load`): it tells
//! whether a deployment meets its SLOs before production, and catches
//! regressions against a saved baseline.
//!
//! ```text
//!  scenario (TOML + flag overrides) ─► session::run
//!     target: embedded runtime | tcp:// (pooled client) | http:// (ingress)
//!     generator: open loop at intended times (CO-corrected) | closed loop
//!     sampler: 1-second p50/p99, depth, RSS, CPU, burst recovery
//!  ─► Report (sent = ok + rejected + timed_out + errors + lost) + SLO verdict
//!  ─► text | JSON | HTML, baseline comparison, exit code 0 / 1 / 2
//! ```
//!
//! - [`scenario`]: the scenario file, its keys and overrides.
//! - [`generator`]: the open-loop schedule and the closed-loop requesters.
//! - [`target`]: where messages go and how each is confirmed.
//! - [`tally`]: shared counters and latency histograms.
//! - [`sampler`]: per-second timeline, resources, burst recovery.
//! - [`report`]: the report, its verdict and renderings.
//! - [`baseline`]: saved reports and regression checks.
//! - [`progress`]: the live terminal line.
//! - [`cpus`]: which cores the embedded target's threads run on.
//!
//! ```no_run
//! # async fn demo() -> Result<(), switchyard_loadtest::LoadError> {
//! use switchyard_loadtest::{progress::Display, scenario::{Overrides, Scenario}};
//! let scenario = Scenario::default_with(&Overrides::default())?;
//! let report = switchyard_loadtest::run(&scenario, Display::Quiet).await?;
//! println!("{}", switchyard_loadtest::report::text(&report));
//! std::process::exit(report.exit_code().into());
//! # }
//! ```

pub mod baseline;
pub mod cpus;
mod error;
pub mod generator;
pub mod progress;
pub mod report;
pub mod sampler;
pub mod scenario;
mod session;
pub mod tally;
pub mod target;

pub use error::LoadError;
pub use report::Report;
pub use session::run;
