//! `switchyard serve`: build the configuration (file or embedded default, then
//! flags and `SWITCHYARD_*` variables), run the service until SIGINT/SIGTERM,
//! print the drain summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use switchyard_service::config::{Config, ConfigError, Overrides, ResolvedConfig};

/// Flags of `switchyard serve`; each also reads a `SWITCHYARD_*` variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Config file (default: the embedded config/switchyard.toml).
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Overrides listen.tcp ("" disables the listener).
    #[arg(long, env = "SWITCHYARD_TCP")]
    pub tcp: Option<String>,
    /// Overrides listen.http ("" disables the listener).
    #[arg(long, env = "SWITCHYARD_HTTP")]
    pub http: Option<String>,
    /// Overrides auth.token.
    #[arg(long, env = "SWITCHYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Overrides shutdown.grace_ms.
    #[arg(long, env = "SWITCHYARD_GRACE_MS")]
    pub grace_ms: Option<u64>,
    /// Overrides runtime.workers (Tokio worker threads; 0: one per CPU).
    #[arg(long, env = "SWITCHYARD_WORKERS")]
    pub workers: Option<usize>,
}

/// Loads, overrides and validates.
pub fn load(args: &ServeArgs) -> Result<ResolvedConfig, ConfigError> {
    let base = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    let overrides = Overrides {
        tcp: args.tcp.clone(),
        http: args.http.clone(),
        token: args.token.clone(),
        grace_ms: args.grace_ms,
        workers: args.workers,
    };
    base.with_overrides(&overrides).validate()
}

/// The Tokio runtime the service runs on: `workers` threads (0: one per CPU).
pub fn tokio_runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder.enable_all().build()
}

/// Runs the service; exit code 0 when every accepted message was accounted for.
pub async fn run(config: ResolvedConfig) -> anyhow::Result<ExitCode> {
    let origin = config.origin.clone();
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let server = switchyard_service::Server::bind(config)
        .await
        .context("while starting the service")?;
    eprintln!(
        "switchyard serving ({origin}): tcp {}, http {}, {workers} worker thread{}; Ctrl-C or SIGTERM drains and stops",
        server.tcp_addr().map_or("off".into(), |a| a.to_string()),
        server.http_addr().map_or("off".into(), |a| a.to_string()),
        if workers == 1 { "" } else { "s" },
    );
    let report = server.run(shutdown_signal()).await;
    println!("{report}");
    Ok(if report.shutdown.accounting.balanced() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the service");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    eprintln!("switchyard: signal received, draining");
}
