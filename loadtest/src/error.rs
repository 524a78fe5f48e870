//! Why a load run could not start or finish. Every variant is a usage or
//! setup error (exit code 2); an SLO failure is not an error but a verdict
//! in the [`Report`](crate::report::Report).

use thiserror::Error;

/// A load run that could not be set up or completed; no report is written.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The scenario file or an override is invalid.
    #[error("scenario {origin}: {message}")]
    Scenario {
        /// The file (or "the default scenario").
        origin: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The target cannot be reached or refused the tool.
    #[error("target {target}: {message}")]
    Target {
        /// The target as written.
        target: String,
        /// What happened and what to check.
        message: String,
    },
    /// The target has no agent or pool of that name.
    #[error("target {target} has no agent or pool named {agent:?}; {hint}")]
    UnknownAgent {
        /// The target as written.
        target: String,
        /// The name.
        agent: String,
        /// Where to look.
        hint: String,
    },
    /// The embedded runtime could not start the load agents.
    #[error("embedded target: {0}")]
    Setup(String),
    /// A baseline could not be read or written.
    #[error("baseline {name:?} ({path}): {message}")]
    Baseline {
        /// The baseline's name.
        name: String,
        /// Its file.
        path: String,
        /// What happened.
        message: String,
    },
    /// A report file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
}
