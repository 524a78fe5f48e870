//! `switchyard load`: parse flags into scenario overrides, run the load
//! library, write the reports, compare with a baseline, and turn the
//! verdict into the exit code (0 pass, 1 SLO failed or regression; usage and
//! setup errors are `Err`, which `main` turns into 2).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use switchyard_loadtest::progress::Display;
use switchyard_loadtest::scenario::{Overrides, Scenario};
use switchyard_loadtest::{LoadError, baseline, report};

/// Flags of `switchyard load`. Every scenario key has a flag; `--set KEY=VALUE`
/// reaches any key, nested ones too (`--set burst.rate=20000`).
#[derive(Debug, Clone, clap::Args)]
#[command(allow_negative_numbers = true)]
pub struct LoadArgs {
    /// Scenario file (default: the embedded quick scenario, a few seconds).
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// `embedded`, `tcp://HOST:PORT` or `http://HOST:PORT`.
    #[arg(long)]
    pub target: Option<String>,
    /// Messages per second (open loop; the base rate of a burst).
    #[arg(long)]
    pub rate: Option<String>,
    /// Length of the run, like 10s, 5m, 24h.
    #[arg(long)]
    pub duration: Option<String>,
    /// Linear ramp-up from 0, like 1s.
    #[arg(long)]
    pub ramp_up: Option<String>,
    /// `open` or `closed`.
    #[arg(long)]
    pub mode: Option<String>,
    /// `tell`, `ask` or `mix`.
    #[arg(long)]
    pub workload: Option<String>,
    /// Share of asks in a mix (0..1).
    #[arg(long)]
    pub ask_ratio: Option<String>,
    /// Embedded: number of load agents.
    #[arg(long)]
    pub agents: Option<String>,
    /// Remote: the agent or pool to send to. Embedded: name prefix.
    #[arg(long)]
    pub agent: Option<String>,
    /// Embedded: `native` or `wasm`.
    #[arg(long)]
    pub kind: Option<String>,
    /// Embedded, kind wasm: the component file.
    #[arg(long)]
    pub wasm: Option<String>,
    /// Payload bytes (at least 8).
    #[arg(long)]
    pub payload: Option<String>,
    /// Closed-loop requesters; HTTP connections.
    #[arg(long)]
    pub concurrency: Option<String>,
    /// TCP client connections.
    #[arg(long)]
    pub connections: Option<String>,
    /// Open-loop generator tasks.
    #[arg(long)]
    pub generators: Option<String>,
    /// Embedded: mailbox capacity.
    #[arg(long)]
    pub capacity: Option<String>,
    /// Embedded: `block` or `reject`.
    #[arg(long)]
    pub overflow: Option<String>,
    /// Embedded: most messages per agent wake-up.
    #[arg(long)]
    pub max_batch: Option<String>,
    /// Embedded: worker threads of the runtime under test (0: every core but
    /// one, which the load generator uses).
    #[arg(long)]
    pub workers: Option<String>,
    /// Remote: worker threads of the tool's own runtime, which runs the
    /// client (0: one per core; 1 leaves a core to a server on this machine).
    #[arg(long)]
    pub client_workers: Option<String>,
    /// Embedded: generators share the agents' cores, true or false.
    #[arg(long)]
    pub pin: Option<String>,
    /// Embedded: the runtime's own latency histograms, true or false.
    #[arg(long)]
    pub runtime_latency: Option<String>,
    /// Message deadline and ask timeout, like 5s.
    #[arg(long)]
    pub timeout: Option<String>,
    /// Wait for confirmations after the last send, like 5s.
    #[arg(long)]
    pub drain: Option<String>,
    /// Remote: the service token.
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Remote: the service's HTTP admin address (http://HOST:PORT).
    #[arg(long)]
    pub admin: Option<String>,
    /// Scenario name in reports and baselines.
    #[arg(long)]
    pub name: Option<String>,
    /// Burst rate, msg/s.
    #[arg(long)]
    pub burst_rate: Option<String>,
    /// Burst start, like 5s.
    #[arg(long)]
    pub burst_at: Option<String>,
    /// Burst length, like 10s.
    #[arg(long)]
    pub burst_length: Option<String>,
    /// SLO: p50 bound, like 1ms.
    #[arg(long)]
    pub slo_p50: Option<String>,
    /// SLO: p99 bound, like 1ms.
    #[arg(long)]
    pub slo_p99: Option<String>,
    /// SLO: smallest share of ok messages (0..1).
    #[arg(long)]
    pub slo_min_success: Option<String>,
    /// SLO: longest burst recovery, like 1s.
    #[arg(long)]
    pub slo_max_recovery: Option<String>,
    /// SLO: largest RSS growth, percent.
    #[arg(long)]
    pub slo_max_rss_growth_pct: Option<String>,
    /// SLO: largest throughput degradation, percent.
    #[arg(long)]
    pub slo_max_degradation_pct: Option<String>,
    /// Any scenario key: KEY=VALUE (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_set)]
    pub set: Vec<(String, String)>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the HTML report here.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// No progress line.
    #[arg(long, short)]
    pub quiet: bool,
    /// Save this run as baseline NAME.
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Compare with baseline NAME; a regression exits 1.
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Baseline directory (default $SWITCHYARD_BASELINE_DIR or target/switchyard-baselines).
    #[arg(long)]
    pub baseline_dir: Option<PathBuf>,
    /// Regression threshold, percent.
    #[arg(long, default_value_t = baseline::DEFAULT_THRESHOLD_PCT)]
    pub threshold: f64,
}

fn parse_set(s: &str) -> Result<(String, String), String> {
    Overrides::parse_pair(s)
}

impl LoadArgs {
    /// The overrides the flags stand for, in a fixed order (`--set` last).
    pub fn overrides(&self) -> Overrides {
        let mut o = Overrides::default();
        let flags: [(&str, &Option<String>); 36] = [
            ("target", &self.target),
            ("rate", &self.rate),
            ("duration", &self.duration),
            ("ramp_up", &self.ramp_up),
            ("mode", &self.mode),
            ("workload", &self.workload),
            ("ask_ratio", &self.ask_ratio),
            ("agents", &self.agents),
            ("agent", &self.agent),
            ("kind", &self.kind),
            ("wasm", &self.wasm),
            ("payload", &self.payload),
            ("concurrency", &self.concurrency),
            ("connections", &self.connections),
            ("generators", &self.generators),
            ("capacity", &self.capacity),
            ("overflow", &self.overflow),
            ("max_batch", &self.max_batch),
            ("workers", &self.workers),
            ("client_workers", &self.client_workers),
            ("pin", &self.pin),
            ("runtime_latency", &self.runtime_latency),
            ("timeout", &self.timeout),
            ("drain", &self.drain),
            ("token", &self.token),
            ("admin", &self.admin),
            ("name", &self.name),
            ("burst.rate", &self.burst_rate),
            ("burst.at", &self.burst_at),
            ("burst.length", &self.burst_length),
            ("slo.p50", &self.slo_p50),
            ("slo.p99", &self.slo_p99),
            ("slo.min_success", &self.slo_min_success),
            ("slo.max_recovery", &self.slo_max_recovery),
            ("slo.max_rss_growth_pct", &self.slo_max_rss_growth_pct),
            ("slo.max_degradation_pct", &self.slo_max_degradation_pct),
        ];
        for (key, value) in flags {
            if let Some(v) = value {
                o.set(key, v.clone());
            }
        }
        for (k, v) in &self.set {
            o.set(k, v.clone());
        }
        o
    }
}

/// The scenario `args` name, with their overrides applied and validated.
pub fn scenario(args: &LoadArgs) -> anyhow::Result<Scenario> {
    let overrides = args.overrides();
    Ok(match &args.scenario {
        Some(path) => Scenario::load(path, &overrides)?,
        None => Scenario::default_with(&overrides)?,
    })
}

/// Runs `switchyard load` with `scenario`, resolved by [`scenario`] (the
/// caller builds its Tokio runtime with the scenario's `client_workers`).
pub async fn run(args: LoadArgs, scenario: Scenario) -> anyhow::Result<ExitCode> {
    if !(args.threshold.is_finite() && args.threshold >= 0.0) {
        anyhow::bail!("--threshold {} is not a percentage >= 0", args.threshold);
    }
    let dir = baseline::dir(args.baseline_dir.as_deref());
    // Read the baseline first: a missing one is a usage error before a long run.
    let base = args
        .baseline
        .as_ref()
        .map(|name| baseline::load(&dir, name).map(|r| (name.clone(), r)))
        .transpose()?;
    let display = if args.quiet {
        Display::Quiet
    } else {
        Display::Auto
    };
    let mut report = switchyard_loadtest::run(&scenario, display).await?;
    if let Some((name, base)) = &base {
        report.baseline = Some(baseline::compare(name, base, &report, args.threshold));
    }
    println!("{}", report::text(&report));
    if let Some(path) = &args.json {
        write(path, &report.json())?;
    }
    if let Some(path) = &args.html {
        write(path, &report::html(&report))?;
    }
    if let Some(name) = &args.save_baseline {
        let path = baseline::save(&dir, name, &report)?;
        println!("saved baseline {name:?} to {}", path.display());
    }
    Ok(ExitCode::from(report.exit_code()))
}

fn write(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text)
        .map_err(|source| LoadError::Write {
            path: path.display().to_string(),
            source,
        })
        .with_context(|| "while writing the report")
}
