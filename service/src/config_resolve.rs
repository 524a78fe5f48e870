//! Validation: turns a parsed [`Config`] into a [`ResolvedConfig`] of runtime
//! types, or a [`ConfigError::Invalid`] naming file, key, value and expectation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use switchyard_runtime::wasm::{Capabilities, MAX_MEMORY_BYTES, WasmLimits};
use switchyard_runtime::{
    AgentConfig, MAX_POOL_SIZE, Strategy, Supervision, address::validate_name,
};

use crate::config::{
    AgentDefaults, AgentSpec, Config, ConfigError, Limits, SloSpec, SupervisionSpec,
};
use switchyard_client::wire::MAX_FRAME_LIMIT;

/// Latency objectives of one agent.
pub type Slo = SloSpec;

/// Most Tokio worker threads `runtime.workers` accepts.
pub const MAX_WORKERS: usize = 1024;

/// The listeners to open.
#[derive(Clone, Copy, Debug)]
pub struct Listeners {
    /// Binary protocol.
    pub tcp: Option<SocketAddr>,
    /// HTTP.
    pub http: Option<SocketAddr>,
}

/// A built-in native agent kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    /// `switchyard_examples::Echo`.
    Echo,
    /// `switchyard_examples::Counter`.
    Counter,
    /// `switchyard_examples::FanOut` (needs `targets`).
    FanOut,
}

impl Builtin {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Builtin::Echo => "echo",
            Builtin::Counter => "counter",
            Builtin::FanOut => "fanout",
        }
    }
}

/// Where an agent's code comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceKind {
    /// A built-in.
    Native {
        /// Which.
        builtin: Builtin,
        /// Fan-out targets.
        targets: Vec<String>,
    },
    /// A WASM component.
    Wasm {
        /// Its path.
        path: PathBuf,
    },
}

/// One agent, ready to start.
#[derive(Clone, Debug)]
pub struct AgentPlan {
    /// Name.
    pub name: String,
    /// Code.
    pub source: SourceKind,
    /// Mailbox, batching and supervision.
    pub config: AgentConfig,
    /// Instances (1: a single agent, more: a pool).
    pub pool_size: usize,
    /// Pool strategy.
    pub strategy: Strategy,
    /// Latency objectives.
    pub slo: Option<Slo>,
    /// For WASM agents: memory, CPU and capability limits and the `init` text.
    pub wasm: Option<WasmLimits>,
}

/// A validated configuration.
#[derive(Clone, Debug)]
pub struct ResolvedConfig {
    /// Where it came from.
    pub origin: String,
    /// Listeners.
    pub listeners: Listeners,
    /// The token; `None` when auth is off.
    pub token: Option<String>,
    /// Limits.
    pub limits: Limits,
    /// Drain grace period.
    pub grace: Duration,
    /// Tokio worker threads for `switchyard serve`'s runtime; 0: one per
    /// CPU. [`crate::Server`] itself runs on whatever runtime calls it.
    pub workers: usize,
    /// How long an idle worker of that runtime spins before it parks
    /// ([`switchyard_runtime::park`]).
    pub park_spin: Duration,
    /// Defaults, for agents started later through the API.
    pub defaults: AgentDefaults,
    /// Agents to start at boot.
    pub agents: Vec<AgentPlan>,
    /// The on-disk compiled-component cache directory (`None`: off).
    pub wasm_cache_dir: Option<PathBuf>,
}

struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn invalid(
        &self,
        key: impl Into<String>,
        value: impl std::fmt::Debug,
        expected: impl Into<String>,
    ) -> ConfigError {
        ConfigError::Invalid {
            file: self.file.to_owned(),
            key: key.into(),
            value: format!("{value:?}"),
            expected: expected.into(),
        }
    }

    fn range<T: PartialOrd + std::fmt::Debug + Copy>(
        &self,
        key: &str,
        v: T,
        lo: T,
        hi: T,
    ) -> Result<T, ConfigError> {
        if v < lo || v > hi {
            return Err(self.invalid(key, v, format!("a value in {lo:?}..={hi:?}")));
        }
        Ok(v)
    }

    fn addr(&self, key: &str, v: &str) -> Result<Option<SocketAddr>, ConfigError> {
        if v.is_empty() {
            return Ok(None);
        }
        v.parse::<SocketAddr>().map(Some).map_err(|_| {
            self.invalid(
                key,
                v,
                "an ip:port such as \"127.0.0.1:7700\" (or \"\" to disable this listener)",
            )
        })
    }
}

impl Config {
    /// Checks every value and resolves agents against the defaults.
    pub fn validate(&self) -> Result<ResolvedConfig, ConfigError> {
        let c = Checker { file: &self.origin };
        let tcp = c.addr("listen.tcp", &self.listen.tcp)?;
        let http = c.addr("listen.http", &self.listen.http)?;
        if tcp.is_none() && http.is_none() {
            return Err(c.invalid("listen", "", "at least one of listen.tcp and listen.http"));
        }
        let token = (!self.auth.token.is_empty()).then(|| self.auth.token.clone());
        if token.is_none() {
            for (key, addr) in [("listen.tcp", tcp), ("listen.http", http)] {
                if let Some(a) = addr.filter(|a| !a.ip().is_loopback()) {
                    return Err(c.invalid(
                        "auth.token",
                        "",
                        format!(
                            "a token, because {key} = {a} is not a loopback address and anyone who can reach it could \
                             send messages and manage agents; set auth.token (or SWITCHYARD_TOKEN), or listen on 127.0.0.1"
                        ),
                    ));
                }
            }
        }
        let l = &self.limits;
        c.range("limits.max_connections", l.max_connections, 1, 1 << 20)?;
        c.range(
            "limits.max_frame_bytes",
            l.max_frame_bytes,
            64,
            MAX_FRAME_LIMIT,
        )?;
        c.range("limits.max_in_flight", l.max_in_flight, 1, 1 << 20)?;
        c.range("limits.outbound_queue", l.outbound_queue, 1, 1 << 20)?;
        c.range(
            "limits.handshake_timeout_ms",
            l.handshake_timeout_ms,
            1,
            3_600_000,
        )?;
        c.range("limits.idle_timeout_ms", l.idle_timeout_ms, 1, 86_400_000)?;
        c.range("limits.write_timeout_ms", l.write_timeout_ms, 1, 3_600_000)?;
        c.range(
            "limits.max_ask_timeout_ms",
            l.max_ask_timeout_ms,
            1,
            u64::from(u32::MAX),
        )?;
        c.range(
            "limits.ask_timeout_ms",
            l.ask_timeout_ms,
            1,
            l.max_ask_timeout_ms,
        )?;
        c.range(
            "limits.max_http_body_bytes",
            l.max_http_body_bytes,
            1,
            MAX_FRAME_LIMIT,
        )?;
        c.range("shutdown.grace_ms", self.shutdown.grace_ms, 0, 3_600_000)?;
        c.range("runtime.workers", self.runtime.workers, 0, MAX_WORKERS)?;
        let max_spin = switchyard_runtime::park::MAX_PARK_SPIN.as_micros() as u64;
        c.range(
            "runtime.park_spin_us",
            self.runtime.park_spin_us,
            0,
            max_spin,
        )?;
        self.defaults_check(&c)?;
        let mut agents: Vec<AgentPlan> = Vec::with_capacity(self.agents.len());
        for (i, spec) in self.agents.iter().enumerate() {
            let plan = resolve_agent(spec, &self.defaults, &format!("agents[{i}]"), &self.origin)?;
            if agents.iter().any(|a| a.name == plan.name) {
                return Err(c.invalid(
                    format!("agents[{i}].name"),
                    &plan.name,
                    "a name not used by another agent",
                ));
            }
            agents.push(plan);
        }
        Ok(ResolvedConfig {
            origin: self.origin.clone(),
            listeners: Listeners { tcp, http },
            token,
            limits: self.limits.clone(),
            grace: Duration::from_millis(self.shutdown.grace_ms),
            workers: self.runtime.workers,
            park_spin: Duration::from_micros(self.runtime.park_spin_us),
            defaults: self.defaults.clone(),
            agents,
            wasm_cache_dir: wasm_cache_dir(&c, self.wasm.cache_dir.as_deref())?,
        })
    }

    fn defaults_check(&self, c: &Checker<'_>) -> Result<(), ConfigError> {
        let d = &self.defaults;
        c.range("defaults.pool_size", d.pool_size, 1, MAX_POOL_SIZE)?;
        let cfg = agent_config(c, "defaults", d, &SupervisionSpec::default(), None, None)?;
        cfg.validate("defaults")
            .map_err(|e| c.invalid("defaults", "", e.to_string()))?;
        Ok(())
    }
}

/// Resolves one agent entry; `key` is its position (`agents[3]`) and `file`
/// its origin, both for errors. Also used for `POST /v1/agents` bodies.
pub fn resolve_agent(
    spec: &AgentSpec,
    d: &AgentDefaults,
    key: &str,
    file: &str,
) -> Result<AgentPlan, ConfigError> {
    let c = Checker { file };
    validate_name(&spec.name)
        .map_err(|e| c.invalid(format!("{key}.name"), &spec.name, e.to_string()))?;
    if spec.name.contains('#') {
        return Err(c.invalid(
            format!("{key}.name"),
            &spec.name,
            "a name without '#' (reserved for pool members)",
        ));
    }
    let wasm_only = [
        ("memory_mib", spec.memory_mib.is_some()),
        ("cpu_per_message_ms", spec.cpu_per_message_ms.is_some()),
        ("config", spec.config.is_some()),
        ("capabilities", spec.capabilities.is_some()),
    ];
    let mut wasm = None;
    let source = match spec.kind.as_str() {
        "native" => {
            if let Some((k, _)) = wasm_only.iter().find(|(_, set)| *set) {
                return Err(c.invalid(
                    format!("{key}.{k}"),
                    "",
                    format!("no {k} for kind = \"native\" ({k} is for kind = \"wasm\")"),
                ));
            }
            if let Some(p) = &spec.path {
                return Err(c.invalid(
                    format!("{key}.path"),
                    p,
                    "no path for kind = \"native\" (path is for kind = \"wasm\")",
                ));
            }
            let builtin = match spec.builtin.as_deref() {
                Some("echo") => Builtin::Echo,
                Some("counter") => Builtin::Counter,
                Some("fanout") => Builtin::FanOut,
                other => {
                    return Err(c.invalid(
                        format!("{key}.builtin"),
                        other.unwrap_or(""),
                        "one of \"echo\", \"counter\", \"fanout\"",
                    ));
                }
            };
            if builtin == Builtin::FanOut && spec.targets.is_empty() {
                return Err(c.invalid(
                    format!("{key}.targets"),
                    &spec.targets,
                    "at least one target agent for builtin = \"fanout\"",
                ));
            }
            SourceKind::Native {
                builtin,
                targets: spec.targets.clone(),
            }
        }
        "wasm" => {
            let Some(path) = spec.path.clone() else {
                return Err(c.invalid(
                    format!("{key}.path"),
                    "",
                    "the path of a WASM component for kind = \"wasm\"",
                ));
            };
            if !crate::agents::WASM_SUPPORTED {
                return Err(c.invalid(
                    format!("{key}.kind"),
                    "wasm",
                    "\"native\": WASM support is not built into this switchyard yet",
                ));
            }
            if spec.builtin.is_some() {
                return Err(c.invalid(
                    format!("{key}.builtin"),
                    &spec.builtin,
                    "no builtin for kind = \"wasm\" (builtin is for kind = \"native\")",
                ));
            }
            wasm = Some(wasm_limits(&c, key, spec)?);
            SourceKind::Wasm { path }
        }
        other => return Err(c.invalid(format!("{key}.kind"), other, "\"native\" or \"wasm\"")),
    };
    let pool_size = c.range(
        &format!("{key}.pool_size"),
        spec.pool_size.unwrap_or(d.pool_size),
        1,
        MAX_POOL_SIZE,
    )?;
    let mut eff = d.clone();
    if let Some(v) = spec.capacity {
        eff.capacity = v;
    }
    if let Some(v) = spec.overflow {
        eff.overflow = v;
    }
    if let Some(v) = spec.max_batch {
        eff.max_batch = v;
    }
    if let Some(v) = spec.lazy_start {
        eff.lazy_start = v;
    }
    let mut config = agent_config(
        &c,
        key,
        &eff,
        &spec.supervision,
        spec.capacity,
        spec.max_batch,
    )?;
    let slo = spec.slo.or(d.slo);
    if let Some(s) = &slo {
        if s.max_error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
            let k = format!("{key}.slo.max_error_rate");
            return Err(c.invalid(k, s.max_error_rate, "a fraction in 0.0..=1.0"));
        }
        config.slo = Some(s.targets());
    }
    Ok(AgentPlan {
        name: spec.name.clone(),
        source,
        config,
        pool_size,
        strategy: spec.strategy.unwrap_or(d.strategy),
        slo,
        wasm,
    })
}

/// The limits of a WASM agent from its entry. Capabilities are denied unless
/// granted; filesystem and network cannot be granted at all.
fn wasm_limits(c: &Checker<'_>, key: &str, spec: &AgentSpec) -> Result<WasmLimits, ConfigError> {
    let mut limits = WasmLimits::default();
    if let Some(mib) = spec.memory_mib {
        let max = MAX_MEMORY_BYTES >> 20;
        c.range(&format!("{key}.memory_mib"), mib, 1, max)?;
        limits.memory_bytes = mib << 20;
    }
    if let Some(ms) = spec.cpu_per_message_ms {
        c.range(&format!("{key}.cpu_per_message_ms"), ms, 1, 60_000)?;
        limits.cpu_per_message = Duration::from_millis(ms);
    }
    if let Some(text) = &spec.config {
        limits.config = text.clone();
    }
    if let Some(caps) = &spec.capabilities {
        for (k, set) in [
            ("filesystem", caps.filesystem.is_some()),
            ("network", caps.network.is_some()),
        ] {
            if set {
                return Err(c.invalid(
                    format!("{key}.capabilities.{k}"),
                    "",
                    format!(
                        "no {k} grant: WASM agents have no {k} access (the agent world offers none and \
                         WASI imports are linked to trapping stubs); remove the key and pass data through \
                         messages, the key-value store or capabilities.env"
                    ),
                ));
            }
        }
        for (i, name) in caps.env.iter().enumerate() {
            if name.is_empty() || name.contains(['=', '\0']) {
                return Err(c.invalid(
                    format!("{key}.capabilities.env[{i}]"),
                    name,
                    "an environment variable name (not empty, no '=' or NUL)",
                ));
            }
        }
        limits.capabilities = Capabilities::default()
            .clock(caps.clock)
            .env_from_host(&caps.env);
    }
    Ok(limits)
}

/// `[wasm] cache_dir`: `"none"` is off, absent is the user's cache directory.
fn wasm_cache_dir(c: &Checker<'_>, v: Option<&str>) -> Result<Option<PathBuf>, ConfigError> {
    match v {
        Some("none") => Ok(None),
        Some("") => Err(c.invalid(
            "wasm.cache_dir",
            "",
            "a directory, or \"none\" to turn the compile cache off",
        )),
        Some(dir) => Ok(Some(PathBuf::from(dir))),
        None => Ok(default_wasm_cache_dir()),
    }
}

/// `$XDG_CACHE_HOME/switchyard/wasm`, else `$HOME/.cache/switchyard/wasm`.
pub fn default_wasm_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("switchyard").join("wasm"))
}

fn agent_config(
    c: &Checker<'_>,
    key: &str,
    d: &AgentDefaults,
    over: &SupervisionSpec,
    capacity: Option<usize>,
    max_batch: Option<usize>,
) -> Result<AgentConfig, ConfigError> {
    let base = Supervision::default();
    let ds = &d.supervision;
    let ms =
        |o: Option<u64>, dv: Option<u64>, b: Duration| o.or(dv).map_or(b, Duration::from_millis);
    let supervision = Supervision {
        policy: over.policy.or(ds.policy).unwrap_or(base.policy),
        backoff_initial: ms(
            over.backoff_initial_ms,
            ds.backoff_initial_ms,
            base.backoff_initial,
        ),
        backoff_max: ms(over.backoff_max_ms, ds.backoff_max_ms, base.backoff_max),
        max_restarts: over
            .max_restarts
            .or(ds.max_restarts)
            .unwrap_or(base.max_restarts),
        window: ms(over.window_ms, ds.window_ms, base.window),
    };
    let cap_key = if capacity.is_some() {
        format!("{key}.capacity")
    } else {
        "defaults.capacity".into()
    };
    c.range(&cap_key, d.capacity, 1, switchyard_runtime::MAX_CAPACITY)?;
    let batch_key = if max_batch.is_some() {
        format!("{key}.max_batch")
    } else {
        "defaults.max_batch".into()
    };
    c.range(&batch_key, d.max_batch, 1, 1 << 16)?;
    let config = AgentConfig {
        capacity: d.capacity,
        overflow: d.overflow,
        max_batch: d.max_batch,
        supervision,
        lazy_start: d.lazy_start,
        ..AgentConfig::default()
    };
    config
        .validate(key)
        .map_err(|e| c.invalid(format!("{key}.supervision"), "", e.to_string()))?;
    Ok(config)
}
