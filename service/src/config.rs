//! The service configuration: a TOML file (`config/switchyard.toml` is the
//! documented default, embedded in the binary as [`DEFAULT_CONFIG`]), then
//! command-line / `SWITCHYARD_*` overrides ([`Overrides`]), then validation
//! ([`Config::validate`]) that resolves every agent to runtime settings.
//!
//! Every table denies unknown keys, so a typo fails instead of being ignored.
//! Every error names the file, the key, the value and what is expected
//! ([`ConfigError`]); nothing here panics on user input. Every key is
//! documented in `docs/configuration.md`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use switchyard_runtime::{Overflow, RestartPolicy, Strategy};
use thiserror::Error;

pub use crate::config_resolve::{AgentPlan, Builtin, Listeners, ResolvedConfig, Slo, SourceKind};

/// The documented default configuration, embedded so that `switchyard serve`
/// runs on a fresh machine with no file.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/switchyard.toml");

/// Where the embedded default claims to come from, in error messages.
pub const DEFAULT_ORIGIN: &str = "<embedded config/switchyard.toml>";

/// Why a configuration was refused.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error(
        "cannot read config file {file}: {source}; check the path (or omit --config to use the embedded default)"
    )]
    Read {
        /// The path.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML, has an unknown key or a value of the wrong type.
    #[error("{file}: {message}")]
    Parse {
        /// The path.
        file: String,
        /// toml's message: line, column, the offending line and what was expected.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{file}: `{key}` = {value}: expected {expected}")]
    Invalid {
        /// The path (or the override's flag and environment variable).
        file: String,
        /// The dotted key, `agents[2].capacity` for array entries.
        key: String,
        /// The offending value as written.
        value: String,
        /// What would be accepted, and how to fix it.
        expected: String,
    },
}

/// The whole file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listener addresses.
    #[serde(default)]
    pub listen: Listen,
    /// Authentication.
    #[serde(default)]
    pub auth: Auth,
    /// Connection and request limits.
    #[serde(default)]
    pub limits: Limits,
    /// Shutdown behaviour.
    #[serde(default)]
    pub shutdown: Shutdown,
    /// The service process's own threads.
    #[serde(default)]
    pub runtime: RuntimeSection,
    /// Settings every agent inherits unless it overrides them.
    #[serde(default)]
    pub defaults: AgentDefaults,
    /// WASM host settings.
    #[serde(default)]
    pub wasm: WasmSection,
    /// Agents started at boot.
    #[serde(default)]
    pub agents: Vec<AgentSpec>,
    /// Where this configuration came from (set by the loader, not a key).
    #[serde(skip)]
    pub origin: String,
}

/// `[wasm]`: settings of the WASM host shared by every WASM agent.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WasmSection {
    /// Directory of the on-disk compiled-component cache; `"none"` turns it
    /// off; absent: `$XDG_CACHE_HOME/switchyard/wasm` or
    /// `$HOME/.cache/switchyard/wasm` (off when neither is set). The
    /// directory must be the service's own: compiled code is loaded from it.
    pub cache_dir: Option<String>,
}

/// `capabilities` of a WASM agent: what it may touch beyond its own memory
/// and the host interface. Everything is denied unless granted here.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapabilitiesSpec {
    /// Grants the wall clock (`host.now`).
    pub clock: bool,
    /// Environment variables the agent may read (`host.env`), by name; the
    /// values are read from the service's environment when the agent is deployed.
    pub env: Vec<String>,
    /// Refused at validation: the agent world has no filesystem access.
    pub filesystem: Option<serde::de::IgnoredAny>,
    /// Refused at validation: the agent world has no network access.
    pub network: Option<serde::de::IgnoredAny>,
}

/// `[listen]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listen {
    /// Binary protocol listener, `ip:port`; empty disables it.
    #[serde(default = "default_tcp")]
    pub tcp: String,
    /// HTTP listener, `ip:port`; empty disables it.
    #[serde(default = "default_http")]
    pub http: String,
}

fn default_tcp() -> String {
    "127.0.0.1:7700".into()
}
fn default_http() -> String {
    "127.0.0.1:7701".into()
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            tcp: default_tcp(),
            http: default_http(),
        }
    }
}

/// `[auth]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// Shared secret for the TCP handshake and `Authorization: Bearer`; empty: none
    /// (then only loopback listeners are allowed).
    #[serde(default)]
    pub token: String,
}

/// `[limits]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// TCP connections served at once; more wait in the accept backlog.
    pub max_connections: usize,
    /// Largest frame body accepted on TCP.
    pub max_frame_bytes: usize,
    /// Asks in progress per TCP connection; at the limit the server stops reading it.
    pub max_in_flight: usize,
    /// Frames queued for writing per TCP connection.
    pub outbound_queue: usize,
    /// Time allowed for the first frame (the handshake).
    pub handshake_timeout_ms: u64,
    /// A connection with nothing received and no ask in progress for this long is closed.
    pub idle_timeout_ms: u64,
    /// A connection whose writes make no progress for this long (a client that
    /// does not read its replies) is closed.
    pub write_timeout_ms: u64,
    /// Default ask timeout (HTTP asks without `timeout_ms`).
    pub ask_timeout_ms: u64,
    /// Upper bound on any ask timeout a client asks for.
    pub max_ask_timeout_ms: u64,
    /// Largest HTTP request body.
    pub max_http_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 1024,
            max_frame_bytes: switchyard_client::wire::DEFAULT_MAX_FRAME,
            max_in_flight: 1024,
            outbound_queue: 1024,
            handshake_timeout_ms: 5_000,
            idle_timeout_ms: 300_000,
            write_timeout_ms: 10_000,
            ask_timeout_ms: 5_000,
            max_ask_timeout_ms: 60_000,
            max_http_body_bytes: 1 << 20,
        }
    }
}

/// `[shutdown]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// Time to finish in-flight requests and drain mailboxes before what is left is dead-lettered.
    pub grace_ms: u64,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown { grace_ms: 10_000 }
    }
}

/// `[runtime]`: the threads the service runs on.
///
/// Read by the `switchyard serve` binary, which builds its Tokio runtime
/// from it. A program that embeds [`crate::Server`] runs it on the caller's
/// own runtime, and sizes that runtime itself.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeSection {
    /// Tokio worker threads for connections and agents; 0 means one per CPU.
    pub workers: usize,
    /// Microseconds an idle worker spins before it parks; 0: park at once.
    pub park_spin_us: u64,
}

/// `[defaults]`: what every agent inherits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentDefaults {
    /// Mailbox capacity in messages.
    pub capacity: usize,
    /// `block`, `reject` or `drop_oldest`.
    pub overflow: Overflow,
    /// Most messages per handler wake-up.
    pub max_batch: usize,
    /// Instances behind the name (1: a single agent).
    pub pool_size: usize,
    /// `round_robin`, `least_loaded` or `key_affinity`.
    pub strategy: Strategy,
    /// Restart policy.
    pub supervision: SupervisionSpec,
    /// Latency objectives.
    pub slo: Option<SloSpec>,
    /// Start each agent's task at its first message instead of at boot.
    pub lazy_start: bool,
}

impl Default for AgentDefaults {
    fn default() -> AgentDefaults {
        AgentDefaults {
            capacity: switchyard_runtime::DEFAULT_CAPACITY,
            overflow: Overflow::Block,
            max_batch: switchyard_runtime::DEFAULT_MAX_BATCH,
            pool_size: 1,
            strategy: Strategy::RoundRobin,
            supervision: SupervisionSpec::default(),
            slo: None,
            lazy_start: false,
        }
    }
}

/// Supervision keys; in `[[agents]]` each one is optional and falls back to `[defaults.supervision]`.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionSpec {
    /// `never`, `on_failure` or `always`.
    pub policy: Option<RestartPolicy>,
    /// First restart delay.
    pub backoff_initial_ms: Option<u64>,
    /// Restart delay ceiling.
    pub backoff_max_ms: Option<u64>,
    /// Restarts allowed per window.
    pub max_restarts: Option<u32>,
    /// The restart-budget window.
    pub window_ms: Option<u64>,
}

/// Service-level objectives, evaluated by the runtime over 10 s and 60 s windows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Target median sojourn latency (queued + handled), microseconds.
    pub p50_us: Option<u64>,
    /// Target 99th percentile sojourn latency, microseconds.
    pub p99_us: Option<u64>,
    /// Target 99.9th percentile sojourn latency, microseconds.
    pub p999_us: Option<u64>,
    /// Largest (dead-lettered + refused) / offered fraction, 0.01 = 1%.
    pub max_error_rate: Option<f64>,
}

impl SloSpec {
    /// The runtime's form.
    pub fn targets(&self) -> switchyard_runtime::slo::SloTargets {
        let us = |v: Option<u64>| v.map(std::time::Duration::from_micros);
        switchyard_runtime::slo::SloTargets {
            p50: us(self.p50_us),
            p99: us(self.p99_us),
            p999: us(self.p999_us),
            max_error_rate: self.max_error_rate,
            min_throughput: None,
        }
    }
}

/// One `[[agents]]` entry (also the body of `POST /v1/agents`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSpec {
    /// Registered name (pools: members are `name#i`).
    pub name: String,
    /// `native` (a built-in) or `wasm` (a component file).
    pub kind: String,
    /// For `native`: `echo`, `counter` or `fanout`.
    pub builtin: Option<String>,
    /// For `wasm`: path of the component.
    pub path: Option<PathBuf>,
    /// For `fanout`: agents to forward to.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Overrides `defaults.capacity`.
    pub capacity: Option<usize>,
    /// Overrides `defaults.overflow`.
    pub overflow: Option<Overflow>,
    /// Overrides `defaults.max_batch`.
    pub max_batch: Option<usize>,
    /// Overrides `defaults.pool_size`.
    pub pool_size: Option<usize>,
    /// Overrides `defaults.strategy`.
    pub strategy: Option<Strategy>,
    /// Overrides keys of `defaults.supervision`.
    #[serde(default)]
    pub supervision: SupervisionSpec,
    /// Overrides `defaults.slo`.
    pub slo: Option<SloSpec>,
    /// Overrides `defaults.lazy_start`.
    pub lazy_start: Option<bool>,
    /// For `wasm`: cap on the guest's linear memory, MiB (default 16, at most 64).
    pub memory_mib: Option<usize>,
    /// For `wasm`: CPU time one message may take, ms (default 100).
    pub cpu_per_message_ms: Option<u64>,
    /// For `wasm`: text passed to the agent's `init`.
    pub config: Option<String>,
    /// For `wasm`: granted capabilities (default: none).
    pub capabilities: Option<CapabilitiesSpec>,
}

/// Values from the command line or `SWITCHYARD_*` variables; they win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--tcp` / `SWITCHYARD_TCP`.
    pub tcp: Option<String>,
    /// `--http` / `SWITCHYARD_HTTP`.
    pub http: Option<String>,
    /// `--token` / `SWITCHYARD_TOKEN`.
    pub token: Option<String>,
    /// `--grace-ms` / `SWITCHYARD_GRACE_MS`.
    pub grace_ms: Option<u64>,
    /// `--workers` / `SWITCHYARD_WORKERS`.
    pub workers: Option<usize>,
}

impl Config {
    /// Parses TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: origin.to_owned(),
            message: e.to_string(),
        })?;
        config.origin = origin.to_owned();
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        Config::parse(&text, &file)
    }

    /// The embedded default.
    pub fn embedded() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, DEFAULT_ORIGIN)
    }

    /// Applies overrides, recording where each value came from for errors.
    #[must_use]
    pub fn with_overrides(mut self, o: &Overrides) -> Config {
        let mut from = Vec::new();
        if let Some(v) = &o.tcp {
            self.listen.tcp.clone_from(v);
            from.push("--tcp/SWITCHYARD_TCP");
        }
        if let Some(v) = &o.http {
            self.listen.http.clone_from(v);
            from.push("--http/SWITCHYARD_HTTP");
        }
        if let Some(v) = &o.token {
            self.auth.token.clone_from(v);
            from.push("--token/SWITCHYARD_TOKEN");
        }
        if let Some(v) = o.grace_ms {
            self.shutdown.grace_ms = v;
            from.push("--grace-ms/SWITCHYARD_GRACE_MS");
        }
        if let Some(v) = o.workers {
            self.runtime.workers = v;
            from.push("--workers/SWITCHYARD_WORKERS");
        }
        if !from.is_empty() {
            self.origin = format!("{} (with overrides {})", self.origin, from.join(", "));
        }
        self
    }
}
