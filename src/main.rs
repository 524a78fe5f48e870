//! The `switchyard` command: parses arguments and calls the libraries.

mod agent_cmd;
mod config_cmd;
mod load_cmd;
mod serve;

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use switchyard_runtime::park;

/// mimalloc instead of glibc's malloc: twice the tells to 10,000 agents and
/// a third off each spawn on the development machine (decision 0019).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Switchyard: an async message-orchestration runtime for native and WASM agents.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Log format on stderr; the filter comes from RUST_LOG (for example
    /// `RUST_LOG=switchyard_runtime=debug`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable, multi-line fields.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an embedded runtime with the example agents and a short workload.
    Demo {
        /// Fire-and-forget messages to the counter agent.
        #[arg(long, default_value_t = 1_000_000)]
        tells: u64,
        /// Sequential asks to the echo agent.
        #[arg(long, default_value_t = 100_000)]
        asks: u64,
    },
    /// Run Switchyard as a service (TCP protocol + HTTP API) until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Work with service configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Load, burst and soak tests with SLO verdicts (exit 0 pass, 1 fail, 2 error).
    Load(Box<load_cmd::LoadArgs>),
    /// Author WASM agents: scaffold, build, check.
    Agent {
        #[command(subcommand)]
        command: agent_cmd::AgentCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file: every key, value and agent, without serving.
    Check {
        /// The TOML file.
        file: std::path::PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_panics();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // A service logs its lifecycle; one-shot commands only warnings.
    let default_level = if matches!(cli.command, Command::Serve(_)) {
        "info"
    } else {
        "warn"
    };
    init_tracing(cli.log_format, default_level);
    match cli.command {
        Command::Agent { command } => agent_cmd::run(command),
        Command::Load(args) => {
            // The tool's own runtime runs the client of a remote target.
            let scenario = load_cmd::scenario(&args)?;
            tokio_runtime(scenario.client_workers, Duration::ZERO)?
                .block_on(async { tokio::spawn(load_cmd::run(*args, scenario)).await })
                .context("the load task panicked")?
        }
        Command::Serve(args) => {
            // The service sizes its runtime from its config, so it is read first.
            let config = serve::load(&args)?;
            tokio_runtime(config.workers, config.park_spin)?
                .block_on(async { tokio::spawn(serve::run(config)).await })
                .context("the service task panicked")?
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => {
            println!("{}", config_cmd::check(&file)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo { tells, asks } => {
            let opts = switchyard_examples::demo::DemoOptions {
                tells,
                asks,
                ..Default::default()
            };
            // The workload runs on a worker thread, like any task that sends to
            // agents; block_on would make every message cross threads.
            let report = tokio_runtime(0, Duration::ZERO)?
                .block_on(async { tokio::spawn(switchyard_examples::demo::run(opts)).await })
                .context("the demo task panicked")?
                .map_err(|e| anyhow::anyhow!(e))
                .context("while running the demo")?;
            println!("{report}");
            Ok(if report.shutdown.accounting.balanced() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}

/// A multi-thread Tokio runtime of `workers` threads (0: one per CPU) whose
/// idle workers spin `park_spin` before they park.
fn tokio_runtime(workers: usize, park_spin: Duration) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    park::spin_before_park(&mut builder, park_spin);
    if workers > 0 {
        builder.worker_threads(workers);
    }
    builder
        .enable_all()
        .build()
        .context("while starting the Tokio runtime")
}

/// Logs to stderr in `format`, filtered by `RUST_LOG` (default: `default_level`).
fn init_tracing(format: LogFormat, default_level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| default_level.into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Agent panics are caught, dead-lettered and logged by the runtime; print
/// them as one line instead of a backtrace per failure.
fn quiet_panics() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("unnamed");
        let payload = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("panic in thread '{name}'{location}: {payload}");
    }));
}
