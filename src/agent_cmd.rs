//! `switchyard agent new|build|check`: authoring WASM agents. Thin: the work
//! is in `switchyard_runtime::wasm::authoring`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use switchyard_runtime::wasm::authoring;

/// Where the SDK is in this source tree (the scaffold depends on it by path).
const SDK_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/agents/sdk");

/// Authoring commands for WASM agents.
#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Scaffold a guest crate NAME (an echo agent to edit).
    New {
        /// Crate and agent name: lowercase letters, digits, - and _.
        name: String,
        /// Directory to create it in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The switchyard-sdk crate to depend on.
        #[arg(long, default_value = SDK_DIR)]
        sdk: PathBuf,
    },
    /// Build the guest crate at PATH to a component (wasm32-wasip2, release) and print its path.
    Build {
        /// The crate directory.
        #[arg(default_value = ".")]
        path: PathBuf,
    },
    /// Validate a component against the agent world and print its exports.
    Check {
        /// The component file.
        file: PathBuf,
        /// Config text passed to its init.
        #[arg(long, default_value = "")]
        config: String,
    },
}

/// Runs one authoring command.
pub fn run(cmd: AgentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AgentCommand::New { name, dir, sdk } => {
            let krate =
                authoring::new_agent(&dir, &name, &sdk).context("while scaffolding the agent")?;
            println!("created {}", krate.display());
            println!("next: switchyard agent build {}", krate.display());
        }
        AgentCommand::Build { path } => {
            let wasm = authoring::build(&path, None).context("while building the agent")?;
            authoring::check(&wasm, "").context("while checking the built component")?;
            println!("{}", wasm.display());
        }
        AgentCommand::Check { file, config } => {
            let report =
                authoring::check(&file, &config).context("while checking the component")?;
            print!("{}: {report}", file.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
