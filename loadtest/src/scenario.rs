//! Scenarios: what to send, where, how fast and for how long, and the SLO
//! the run is judged against.
//!
//! A scenario is a TOML file (`config/scenarios/*.toml`) or the embedded
//! [`DEFAULT_SCENARIO`]. Every key can be overridden from the command line
//! (`--rate 5000`, `--set burst.rate=20000`): overrides are applied to the
//! parsed TOML table *before* it is checked, so a file and a flag go through
//! the same validation. Unknown keys are errors that name the file, the key
//! and the valid keys (`serde(deny_unknown_fields)`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::LoadError;

/// The scenario used when no `--scenario` is given: a few seconds of tells
/// to 100 embedded agents (`config/scenarios/quick.toml` holds the same).
pub const DEFAULT_SCENARIO: &str = include_str!("../../config/scenarios/quick.toml");

/// Where the messages go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum TargetSpec {
    /// An in-process runtime with load agents spawned by the tool.
    Embedded,
    /// `switchyard serve`'s binary protocol through the pooled client.
    Tcp(String),
    /// `switchyard serve`'s HTTP ingress.
    Http(String),
}

impl TargetSpec {
    /// Parses `embedded`, `tcp://HOST:PORT` or `http://HOST:PORT`.
    pub fn parse(s: &str) -> Result<TargetSpec, String> {
        if s == "embedded" {
            return Ok(TargetSpec::Embedded);
        }
        let (scheme, rest) = s.split_once("://").ok_or_else(|| {
            format!("target {s:?} is not embedded, tcp://HOST:PORT or http://HOST:PORT")
        })?;
        let rest = rest.trim_end_matches('/');
        if rest.is_empty() || !rest.contains(':') || rest.contains('/') {
            return Err(format!(
                "target {s:?} needs HOST:PORT after {scheme}:// (for example {scheme}://127.0.0.1:7700)"
            ));
        }
        match scheme {
            "tcp" => Ok(TargetSpec::Tcp(rest.to_owned())),
            "http" => Ok(TargetSpec::Http(rest.to_owned())),
            _ => Err(format!(
                "target scheme {scheme:?} is not supported; use tcp:// or http://"
            )),
        }
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Embedded => f.write_str("embedded"),
            TargetSpec::Tcp(a) => write!(f, "tcp://{a}"),
            TargetSpec::Http(a) => write!(f, "http://{a}"),
        }
    }
}

impl<'de> Deserialize<'de> for TargetSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TargetSpec, D::Error> {
        let s = String::deserialize(d)?;
        TargetSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How sends are paced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Constant rate at intended times, latency from the intended time.
    Open,
    /// `concurrency` requesters, each sending when its previous send is done.
    Closed,
}

/// What is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// Fire-and-forget; confirmed by the agent side.
    Tell,
    /// Request/reply; confirmed by the reply.
    Ask,
    /// Tells with a share of asks (`ask_ratio`).
    Mix,
}

/// Which agents the embedded target runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentKind {
    /// The native echo agent.
    Native,
    /// A WASM component (`wasm = PATH`), for example the echo guest.
    Wasm,
}

/// Mailbox overflow policy of the embedded load agents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverflowSpec {
    /// The sender waits (at most until the message's deadline).
    Block,
    /// The message is refused and counted as rejected.
    Reject,
}

/// A duration written as `250ms`, `10s`, `5m` or `24h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Span(pub Duration);

impl Span {
    /// Parses `250ms`, `10s`, `1.5s`, `5m`, `24h` or `100us`.
    pub fn parse(s: &str) -> Result<Span, String> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| {
                format!("duration {s:?} has no unit; write it like 500ms, 10s, 5m or 24h")
            })?;
        let (num, unit) = t.split_at(split);
        let n: f64 = num.parse().map_err(|_| {
            format!("duration {s:?} does not start with a number; write it like 10s")
        })?;
        let secs = match unit {
            "us" => n / 1e6,
            "ms" => n / 1e3,
            "s" => n,
            "m" => n * 60.0,
            "h" => n * 3600.0,
            _ => {
                return Err(format!(
                    "duration {s:?} has unknown unit {unit:?}; use us, ms, s, m or h"
                ));
            }
        };
        if !secs.is_finite() || secs > 1e9 {
            return Err(format!("duration {s:?} is out of range"));
        }
        Ok(Span(Duration::from_secs_f64(secs)))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else {
            write!(f, "{}ms", d.as_secs_f64() * 1e3)
        }
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Span, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Span;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration like \"500ms\", \"10s\", \"5m\" or \"24h\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Span, E> {
                Span::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Span, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it like \"{v}s\" or \"{v}ms\""
                )))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Span, E> {
                self.visit_i64(v as i64)
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Span, E> {
                Err(E::custom(format!(
                    "duration {v} has no unit; write it like \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A burst: `rate` msg/s from `at` for `length`, the base rate before and after.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstSpec {
    /// Rate during the burst, msg/s.
    pub rate: f64,
    /// Start of the burst, from the start of the run.
    pub at: Span,
    /// Length of the burst.
    pub length: Span,
}

/// What a run must achieve to pass.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SloSpec {
    /// Median latency bound.
    #[serde(default)]
    pub p50: Option<Span>,
    /// 99th percentile latency bound (also the recovery bound of bursts).
    #[serde(default)]
    pub p99: Option<Span>,
    /// Smallest share of sent messages that must end `ok` (0.99 = 99%).
    #[serde(default = "default_min_success")]
    pub min_success: f64,
    /// Longest recovery after a burst.
    #[serde(default)]
    pub max_recovery: Option<Span>,
    /// Largest RSS growth from the first to the last second, percent.
    #[serde(default)]
    pub max_rss_growth_pct: Option<f64>,
    /// Largest drop of throughput from the first to the last tenth of the run, percent.
    #[serde(default)]
    pub max_degradation_pct: Option<f64>,
}

fn default_min_success() -> f64 {
    0.99
}

impl Default for SloSpec {
    fn default() -> SloSpec {
        SloSpec {
            p50: None,
            p99: Some(Span(Duration::from_millis(100))),
            min_success: default_min_success(),
            max_recovery: None,
            max_rss_growth_pct: None,
            max_degradation_pct: None,
        }
    }
}

/// A load scenario. See `docs/loadtest.md` for every key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Name shown in reports and used for baselines.
    pub name: String,
    /// One line saying what the scenario checks.
    #[serde(default)]
    pub description: String,
    /// `embedded`, `tcp://HOST:PORT` or `http://HOST:PORT`.
    #[serde(default = "default_target")]
    pub target: TargetSpec,
    /// `open` (constant rate) or `closed` (`concurrency` requesters).
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// `tell`, `ask` or `mix`.
    #[serde(default = "default_workload")]
    pub workload: Workload,
    /// Share of asks in a `mix` (0..=1).
    #[serde(default = "default_ask_ratio")]
    pub ask_ratio: f64,
    /// Messages per second (open loop; the base rate of a burst).
    pub rate: f64,
    /// Length of the run.
    pub duration: Span,
    /// The rate rises linearly from 0 over this long.
    #[serde(default)]
    pub ramp_up: Span,
    /// Embedded: how many load agents to spawn.
    #[serde(default = "default_agents")]
    pub agents: usize,
    /// Embedded: prefix of the load agents' names. Remote: the agent or pool to send to.
    #[serde(default = "default_agent")]
    pub agent: String,
    /// Embedded: `native` or `wasm`.
    #[serde(default = "default_kind")]
    pub kind: AgentKind,
    /// Embedded, `kind = "wasm"`: the component file.
    #[serde(default)]
    pub wasm: Option<PathBuf>,
    /// Payload size in bytes (at least 8: the intended send time travels in it).
    #[serde(default = "default_payload")]
    pub payload: usize,
    /// Closed loop: requesters. HTTP: connections.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// TCP: client connections.
    #[serde(default = "default_connections")]
    pub connections: usize,
    /// Open loop: generator tasks sharing the rate.
    #[serde(default = "default_generators")]
    pub generators: usize,
    /// Embedded: mailbox capacity of each load agent.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Embedded: `block` or `reject`.
    #[serde(default = "default_overflow")]
    pub overflow: OverflowSpec,
    /// Embedded: most messages an agent takes per wake-up.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Embedded: Tokio worker threads of the runtime under test, which runs
    /// on threads of its own. 0 (the default) leaves one core to the load
    /// generator: the available cores minus one, at least one.
    #[serde(default)]
    pub workers: usize,
    /// Remote: Tokio worker threads of the tool's own runtime, which runs the
    /// client (connections, ask driver, HTTP requests). 0 (the default): one
    /// per core. Beside a server on the same small machine, 1 leaves it a
    /// core (see `docs/loadtest.md`). `switchyard load` builds its runtime
    /// with it; a program calling [`crate::run`] brings its own runtime.
    #[serde(default)]
    pub client_workers: usize,
    /// Embedded: run the generators on the agents' cores (the last
    /// `workers` allowed ones) and leave the rest to the tool's own threads,
    /// so handing a message to an agent stays on one core. Needs a core to
    /// spare; false lets the OS place every thread.
    #[serde(default = "default_pin")]
    pub pin: bool,
    /// Embedded: keep the runtime's own latency histograms on (as a deployed
    /// runtime has them) or turn them off to measure the bare data path.
    #[serde(default = "default_runtime_latency")]
    pub runtime_latency: bool,
    /// Message deadline (tells) and ask timeout, from the intended send time.
    #[serde(default = "default_timeout")]
    pub timeout: Span,
    /// After the last send, how long to wait for confirmations.
    #[serde(default = "default_drain")]
    pub drain: Span,
    /// Remote: the service token.
    #[serde(default)]
    pub token: String,
    /// Remote: the HTTP admin address (`http://HOST:PORT`) whose counters
    /// confirm tells; `--target http://` uses its own address when empty.
    #[serde(default)]
    pub admin: String,
    /// A burst on top of the base rate.
    #[serde(default)]
    pub burst: Option<BurstSpec>,
    /// Pass/fail bounds.
    #[serde(default)]
    pub slo: SloSpec,
}

fn default_target() -> TargetSpec {
    TargetSpec::Embedded
}
fn default_mode() -> Mode {
    Mode::Open
}
fn default_workload() -> Workload {
    Workload::Tell
}
fn default_ask_ratio() -> f64 {
    0.1
}
fn default_agents() -> usize {
    100
}
fn default_agent() -> String {
    "load".into()
}
fn default_kind() -> AgentKind {
    AgentKind::Native
}
fn default_payload() -> usize {
    64
}
fn default_concurrency() -> usize {
    32
}
fn default_connections() -> usize {
    2
}
fn default_generators() -> usize {
    1
}
fn default_capacity() -> usize {
    1024
}
fn default_overflow() -> OverflowSpec {
    OverflowSpec::Block
}
fn default_pin() -> bool {
    true
}
fn default_max_batch() -> usize {
    64
}
fn default_runtime_latency() -> bool {
    true
}
fn default_timeout() -> Span {
    Span(Duration::from_secs(5))
}
fn default_drain() -> Span {
    Span(Duration::from_secs(5))
}

/// Smallest payload: the intended send time (8 bytes) travels in it.
pub const MIN_PAYLOAD: usize = 8;
/// Largest payload the tool sends (the service's default HTTP body limit).
pub const MAX_PAYLOAD: usize = 1 << 20;
/// Most embedded load agents.
pub const MAX_AGENTS: usize = 1_000_000;
/// Most worker threads an embedded runtime may ask for.
pub const MAX_WORKERS: usize = 1024;

/// Key overrides from the command line, applied in order: `("rate", "5000")`,
/// `("burst.rate", "20000")`, `("slo.p99", "1ms")`.
#[derive(Clone, Debug, Default)]
pub struct Overrides(pub Vec<(String, String)>);

impl Overrides {
    /// Adds `key = value`.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.0.push((key.to_owned(), value.into()));
    }

    /// Parses `KEY=VALUE` (from `--set`).
    pub fn parse_pair(pair: &str) -> Result<(String, String), String> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--set {pair:?} is not KEY=VALUE (for example rate=5000)"))?;
        Ok((k.trim().to_owned(), v.trim().to_owned()))
    }
}

/// A TOML value from a command-line string: integer, float, bool, else string.
fn value_of(s: &str) -> toml::Value {
    if let Ok(i) = s.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(f) = s.parse::<f64>() {
        toml::Value::Float(f)
    } else if let Ok(b) = s.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(s.to_owned())
    }
}

impl Scenario {
    /// Reads `path`, applies `overrides` and validates.
    pub fn load(path: &Path, overrides: &Overrides) -> Result<Scenario, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|e| LoadError::Scenario {
            origin: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        Scenario::parse(&text, &path.display().to_string(), overrides)
    }

    /// The embedded default scenario with `overrides`.
    pub fn default_with(overrides: &Overrides) -> Result<Scenario, LoadError> {
        Scenario::parse(DEFAULT_SCENARIO, "the default scenario", overrides)
    }

    /// Embedded: the worker threads the runtime under test gets (`workers`,
    /// or with 0 every available core but one, which the generator uses).
    pub fn agent_workers(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        cores.saturating_sub(1).max(1)
    }

    /// Embedded with `pin`: the cores the agents' workers and the generators
    /// share; `None` when nothing is pinned (see [`crate::cpus`]). Resolved
    /// once, when the embedded target starts.
    pub fn load_cores(&self) -> Option<Vec<usize>> {
        if self.target != TargetSpec::Embedded || !self.pin {
            return None;
        }
        crate::cpus::load_cores(self.agent_workers())
    }

    /// Parses `text` (named `origin` in errors), applies `overrides`, validates.
    pub fn parse(text: &str, origin: &str, overrides: &Overrides) -> Result<Scenario, LoadError> {
        let err = |message: String| LoadError::Scenario {
            origin: origin.to_owned(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        for (key, value) in &overrides.0 {
            set_key(&mut table, key, value_of(value)).map_err(&err)?;
        }
        let scenario: Scenario = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| err(e.to_string().trim_end().to_owned()))?;
        scenario.validate().map_err(err)?;
        Ok(scenario)
    }

    /// Checks ranges and combinations; the message names the key and the fix.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(format!(
                "rate = {} is not a positive number of messages per second",
                self.rate
            ));
        }
        if self.rate > 10_000_000.0 {
            return Err(format!("rate = {} is above 10,000,000 msg/s", self.rate));
        }
        if self.duration.0.is_zero() {
            return Err("duration is 0; give it like 10s".into());
        }
        if self.ramp_up > self.duration {
            return Err(format!(
                "ramp_up {} is longer than duration {}",
                self.ramp_up, self.duration
            ));
        }
        if !(0.0..=1.0).contains(&self.ask_ratio) {
            return Err(format!("ask_ratio = {} is outside 0..=1", self.ask_ratio));
        }
        if self.agents == 0 || self.agents > MAX_AGENTS {
            return Err(format!(
                "agents = {} is out of range; use 1..={MAX_AGENTS}",
                self.agents
            ));
        }
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&self.payload) {
            return Err(format!(
                "payload = {} is out of range; use {MIN_PAYLOAD}..={MAX_PAYLOAD} bytes \
                 (the intended send time travels in the first 8)",
                self.payload
            ));
        }
        for (key, v) in [
            ("concurrency", self.concurrency),
            ("connections", self.connections),
            ("generators", self.generators),
            ("capacity", self.capacity),
            ("max_batch", self.max_batch),
        ] {
            if v == 0 {
                return Err(format!("{key} = 0; use at least 1"));
            }
        }
        if self.workers > MAX_WORKERS {
            return Err(format!(
                "workers = {} is above {MAX_WORKERS}; use 0 (one per core but one) or a thread count",
                self.workers
            ));
        }
        if self.client_workers > MAX_WORKERS {
            return Err(format!(
                "client_workers = {} is above {MAX_WORKERS}; use 0 (one per core) or a thread count",
                self.client_workers
            ));
        }
        if self.client_workers > 0 && self.target == TargetSpec::Embedded {
            return Err(format!(
                "client_workers = {} applies to tcp:// and http:// targets; for the embedded \
                 target set workers (the runtime under test) instead",
                self.client_workers
            ));
        }
        if self.generators > 64 {
            return Err(format!("generators = {} is above 64", self.generators));
        }
        if self.timeout.0.is_zero() {
            return Err("timeout is 0; give it like 5s".into());
        }
        if self.agent.is_empty() {
            return Err("agent is empty; name the agent to send to".into());
        }
        if self.kind == AgentKind::Wasm && self.wasm.is_none() {
            return Err("kind = \"wasm\" needs wasm = PATH to a component".into());
        }
        if let Some(b) = &self.burst {
            if !(b.rate.is_finite() && b.rate > 0.0) {
                return Err(format!("burst.rate = {} is not a positive rate", b.rate));
            }
            if b.at.0 + b.length.0 > self.duration.0 {
                return Err(format!(
                    "the burst ends at {:.1}s, after the run's duration {}; lengthen duration",
                    (b.at.0 + b.length.0).as_secs_f64(),
                    self.duration
                ));
            }
            if b.length.0.is_zero() {
                return Err("burst.length is 0".into());
            }
        }
        if !(0.0..=1.0).contains(&self.slo.min_success) {
            return Err(format!(
                "slo.min_success = {} is outside 0..=1",
                self.slo.min_success
            ));
        }
        if self.target != TargetSpec::Embedded && self.workload == Workload::Mix {
            return Err(
                "workload = \"mix\" needs the embedded target: a remote server's handled \
                 counter cannot tell tells from asks; run tell and ask separately"
                    .into(),
            );
        }
        if !self.admin.is_empty() {
            match TargetSpec::parse(&self.admin) {
                Ok(TargetSpec::Http(_)) => {}
                _ => return Err(format!("admin = {:?} is not http://HOST:PORT", self.admin)),
            }
        }
        Ok(())
    }

    /// Messages the open-loop schedule holds over the whole run.
    pub fn scheduled(&self) -> u64 {
        crate::generator::Schedule::of(self).total()
    }
}

/// Sets `key` (dotted: `burst.rate`) in `table`; the key's validity is
/// checked when the table is read as a [`Scenario`].
fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| format!("override key {key:?} is empty"))?;
    let mut t = table;
    for p in parts {
        let entry = t
            .entry(p.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("override key {key:?}: {p:?} is not a table"))?;
    }
    t.insert(last.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Scenario, LoadError> {
        Scenario::parse(text, "t.toml", &Overrides::default())
    }

    #[test]
    fn spans_parse_every_unit() {
        assert_eq!(Span::parse("10s").unwrap().0, Duration::from_secs(10));
        assert_eq!(Span::parse("5m").unwrap().0, Duration::from_secs(300));
        assert_eq!(Span::parse("24h").unwrap().0, Duration::from_secs(86_400));
        assert_eq!(Span::parse("250ms").unwrap().0, Duration::from_millis(250));
        assert_eq!(Span::parse("1.5s").unwrap().0, Duration::from_millis(1500));
        assert!(Span::parse("10").unwrap_err().contains("no unit"));
        assert!(Span::parse("10d").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn the_default_scenario_is_valid_and_short() {
        let s = Scenario::default_with(&Overrides::default()).unwrap();
        assert_eq!(s.target, TargetSpec::Embedded);
        assert!(s.duration.0 <= Duration::from_secs(5));
    }

    #[test]
    fn an_unknown_key_names_the_file_the_key_and_the_valid_keys() {
        let e = parse("name = \"x\"\nrate = 10\nduration = \"1s\"\nrat = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml"), "{e}");
        assert!(e.contains("rat"), "{e}");
        assert!(e.contains("`rate`"), "{e}");
    }

    #[test]
    fn overrides_replace_keys_and_are_validated() {
        let mut o = Overrides::default();
        o.set("rate", "2500");
        o.set("slo.p99", "2ms");
        let s = Scenario::default_with(&o).unwrap();
        assert_eq!(s.rate, 2500.0);
        assert_eq!(s.slo.p99, Some(Span(Duration::from_millis(2))));

        let mut o = Overrides::default();
        o.set("rate", "-5");
        let e = Scenario::default_with(&o).unwrap_err().to_string();
        assert!(e.contains("rate = -5"), "{e}");

        let mut o = Overrides::default();
        o.set("burst.sizes", "3");
        let e = Scenario::default_with(&o).unwrap_err().to_string();
        assert!(e.contains("sizes"), "{e}");
    }

    #[test]
    fn client_workers_apply_to_remote_targets_only() {
        let mut o = Overrides::default();
        assert_eq!(Scenario::default_with(&o).unwrap().client_workers, 0);
        o.set("client_workers", "1");
        let e = Scenario::default_with(&o).unwrap_err().to_string();
        assert!(
            e.contains("client_workers = 1") && e.contains("set workers"),
            "{e}"
        );
        o.set("target", "tcp://127.0.0.1:7700");
        assert_eq!(Scenario::default_with(&o).unwrap().client_workers, 1);
        o.set("client_workers", "5000");
        let e = Scenario::default_with(&o).unwrap_err().to_string();
        assert!(e.contains("client_workers = 5000"), "{e}");
    }

    #[test]
    fn agent_workers_leave_a_core_to_the_generator_unless_set() {
        let s = Scenario::default_with(&Overrides::default()).unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(s.workers, 0);
        assert_eq!(s.agent_workers(), cores.saturating_sub(1).max(1));
        let mut o = Overrides::default();
        o.set("workers", "3");
        assert_eq!(Scenario::default_with(&o).unwrap().agent_workers(), 3);
        o.set("workers", "5000");
        let e = Scenario::default_with(&o).unwrap_err().to_string();
        assert!(e.contains("workers = 5000"), "{e}");
    }

    #[test]
    fn bad_targets_and_combinations_are_refused() {
        assert!(TargetSpec::parse("udp://x:1").is_err());
        assert!(TargetSpec::parse("tcp://nohost").is_err());
        assert_eq!(
            TargetSpec::parse("http://127.0.0.1:80").unwrap(),
            TargetSpec::Http("127.0.0.1:80".into())
        );
        let mut o = Overrides::default();
        o.set("target", "tcp://127.0.0.1:1");
        o.set("workload", "mix");
        assert!(Scenario::default_with(&o).is_err());
        let mut o = Overrides::default();
        o.set("burst.rate", "100");
        o.set("burst.at", "1s");
        o.set("burst.length", "100s");
        let e = Scenario::default_with(&o).unwrap_err().to_string();
        assert!(e.contains("lengthen duration"), "{e}");
    }
}
