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

/// Runs the service; exit code 0 when every accepted message was accounted for.
pub async fn run(config: ResolvedConfig) -> anyhow::Result<ExitCode> {
    let origin = config.origin.clone();
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let server = switchyard_service::Server::bind(config)
        .await
        .context("while starting the service")?;
    let stop = shutdown_signal();
    eprintln!(
        "switchyard serving ({origin}): tcp {}, http {}, {workers} worker thread{}; Ctrl-C or SIGTERM drains and stops",
        server.tcp_addr().map_or("off".into(), |a| a.to_string()),
        server.http_addr().map_or("off".into(), |a| a.to_string()),
        if workers == 1 { "" } else { "s" },
    );
    let report = server.run(stop).await;
    println!("{report}");
    Ok(if report.shutdown.accounting.balanced() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Watches SIGINT and SIGTERM from the moment it is called, so a signal sent
/// right after the banner drains the service instead of killing it; the
/// future resolves on the first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let watched = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match watched {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM/SIGINT; falling back to Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("switchyard: signal received, draining");
    }
}
