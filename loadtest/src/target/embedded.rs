//! The embedded target: an in-process runtime with `agents` load agents.
//!
//! Each load agent wraps a real agent (the native echo, or a WASM component)
//! and confirms every tell it handled: it counts it in the run's tally and
//! records its latency from the intended send time carried in the payload.
//! Asks are confirmed by their reply on the caller's side instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use switchyard_runtime::{
    Addr, Agent, AgentConfig, AgentError, Context, DeadLetterReason, Envelope, Kind, Overflow,
    Runtime, SendError,
};

use switchyard_examples::Echo;
use switchyard_runtime::slo::SloTargets;

use super::{Depth, Outgoing, SETTLE_POLL, Settled, remaining};
use crate::error::LoadError;
use crate::scenario::{AgentKind, OverflowSpec, Scenario};
use crate::tally::{self, Tally};

/// Wraps an agent and confirms each tell it handled, with its latency from
/// the intended send time.
///
/// Messages are handed to the inner agent one at a time (with the batch
/// cursor set), so a failure confirms exactly the messages before it.
pub struct LoadAgent<A> {
    inner: A,
    tally: Arc<Tally>,
    shard: usize,
    latencies: Vec<Duration>,
}

impl<A: Agent> LoadAgent<A> {
    /// Wraps `inner`; samples go to histogram shard `shard`.
    pub fn new(inner: A, tally: Arc<Tally>, shard: usize) -> LoadAgent<A> {
        LoadAgent {
            inner,
            tally,
            shard,
            latencies: Vec::new(),
        }
    }

    fn flush(&mut self) {
        if self.latencies.is_empty() {
            return;
        }
        self.tally
            .ok
            .fetch_add(self.latencies.len() as u64, Ordering::Relaxed);
        self.tally.record_all(self.shard, &self.latencies);
        self.latencies.clear();
    }

    fn confirm(&mut self, msg: &Envelope, now: Instant) {
        if msg.kind() == Kind::Tell
            && let Some(ns) = tally::intended_ns(msg.payload())
        {
            let intended = self.tally.instant(ns);
            self.latencies.push(now.saturating_duration_since(intended));
        }
    }
}

impl<A: Agent> Agent for LoadAgent<A> {
    async fn on_start(&mut self, ctx: &mut Context) -> Result<(), AgentError> {
        self.inner.on_start(ctx).await
    }

    async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        self.inner.handle(ctx, msg).await?;
        self.confirm(msg, Instant::now());
        self.flush();
        Ok(())
    }

    async fn handle_batch(
        &mut self,
        ctx: &mut Context,
        batch: &[Envelope],
    ) -> Result<(), AgentError> {
        for (i, msg) in batch.iter().enumerate() {
            ctx.set_batch_cursor(i);
            if let Err(e) = self.inner.handle(ctx, msg).await {
                self.flush();
                return Err(e);
            }
            self.confirm(msg, Instant::now());
        }
        self.flush();
        Ok(())
    }

    async fn on_stop(&mut self, ctx: &mut Context) {
        self.inner.on_stop(ctx).await;
    }
}

/// Sends to the embedded load agents.
pub struct EmbeddedSender {
    rt: Runtime,
    addrs: Vec<Addr>,
    names: Vec<String>,
    tally: Arc<Tally>,
    payload: usize,
    timeout: Duration,
    /// The cores the agents' workers run on, which the generators share.
    cores: Option<Vec<usize>>,
}

impl EmbeddedSender {
    /// The cores the generators should share with the agents, if pinned.
    pub(super) fn cores(&self) -> Option<&[usize]> {
        self.cores.as_deref()
    }

    pub(super) async fn send(self: &Arc<Self>, m: Outgoing, wait: bool) {
        let agent = (m.index % self.addrs.len() as u64) as usize;
        let payload = tally::payload(self.tally.offset_ns(m.intended), self.payload);
        self.tally.sent.fetch_add(1, Ordering::Relaxed);
        if m.ask {
            self.tally.in_flight.fetch_add(1, Ordering::Relaxed);
            if wait {
                self.ask(agent, m, payload).await;
            } else {
                let me = self.clone();
                tokio::spawn(async move { me.ask(agent, m, payload).await });
            }
            return;
        }
        let deadline = tokio::time::Instant::from_std(m.intended + self.timeout);
        let env = Envelope::tell(payload).with_deadline(deadline);
        if let Err(e) = self.addrs[agent].tell(env).await {
            self.count_refusal(&e);
        }
    }

    fn count_refusal<T>(&self, e: &SendError<T>) {
        match e {
            SendError::Full { .. } => {
                self.tally.rejected.fetch_add(1, Ordering::Relaxed);
            }
            SendError::Timeout { .. } => {
                self.tally.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            other => self.tally.error(|| other.to_string()),
        }
    }

    async fn ask(&self, agent: usize, m: Outgoing, payload: bytes::Bytes) {
        let timeout = remaining(m.intended, self.timeout);
        let result = self
            .rt
            .ask(&self.names[agent], Envelope::ask(payload), timeout)
            .await;
        match result {
            Ok(_) => {
                self.tally.ok.fetch_add(1, Ordering::Relaxed);
                self.tally.record(m.index as usize, m.intended.elapsed());
            }
            Err(switchyard_runtime::AskError::Timeout { .. }) => {
                self.tally.timed_out.fetch_add(1, Ordering::Relaxed);
            }
            Err(switchyard_runtime::AskError::Send(e)) => self.count_refusal(&e),
            Err(e) => self.tally.error(|| e.to_string()),
        }
        self.tally.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Dead letters kept for inspection: counts are what the report uses, so a
/// few suffice and a burst of expired 1 KiB messages stays cheap.
pub const DEAD_LETTERS_KEPT: usize = 1024;

/// The embedded target.
pub struct Embedded {
    pub(super) sender: Arc<EmbeddedSender>,
    rt: Runtime,
    _threads: AgentThreads,
    /// Where the agents ran, for the report.
    placement: String,
}

/// The Tokio runtime the agents run on, apart from the tool's own tasks (as
/// a deployed runtime is apart from its clients). Dropping it does not wait
/// for its threads, so it may be dropped inside the tool's runtime.
struct AgentThreads(Option<tokio::runtime::Runtime>);

impl AgentThreads {
    fn start(workers: usize, cores: Option<Vec<usize>>) -> Result<AgentThreads, LoadError> {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        if let Some(cores) = cores {
            builder.on_thread_start(move || {
                crate::cpus::set_current(&cores);
            });
        }
        builder
            .worker_threads(workers)
            .thread_name("switchyard-agents")
            .enable_all()
            .build()
            .map(|rt| AgentThreads(Some(rt)))
            .map_err(|e| LoadError::Setup(format!("cannot start {workers} worker threads: {e}")))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("present until drop")
            .handle()
            .clone()
    }
}

impl Drop for AgentThreads {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

impl Embedded {
    /// Builds a runtime on [`Scenario::agent_workers`] threads of its own
    /// (on [`Scenario::load_cores`]) and spawns the load agents
    /// `{agent}-0 .. {agent}-{agents-1}`.
    pub fn start(s: &Scenario, tally: Arc<Tally>) -> Result<Embedded, LoadError> {
        // The tool judges the SLO itself: the runtime's own verdicts (and
        // their warnings, one per agent) would only repeat it.
        let no_slo = SloTargets {
            p50: None,
            p99: None,
            p999: None,
            max_error_rate: None,
            min_throughput: None,
        };
        let (workers, cores) = (s.agent_workers(), s.load_cores());
        let placement = format!(
            "on {workers} worker thread{}, {}",
            if workers == 1 { "" } else { "s" },
            match &cores {
                Some(cores) => format!("sharing cores {cores:?} with the generator"),
                None => "not pinned".to_owned(),
            }
        );
        let threads = AgentThreads::start(workers, cores.clone())?;
        let rt = Runtime::builder()
            .handle(threads.handle())
            .dead_letter_capacity(DEAD_LETTERS_KEPT)
            .latency(s.runtime_latency)
            .slo_default(no_slo)
            .build();
        let config = AgentConfig::default()
            .capacity(s.capacity)
            .max_batch(s.max_batch)
            .overflow(match s.overflow {
                OverflowSpec::Block => Overflow::Block,
                OverflowSpec::Reject => Overflow::Reject,
            });
        let mut addrs = Vec::with_capacity(s.agents);
        let mut names = Vec::with_capacity(s.agents);
        match s.kind {
            AgentKind::Native => {
                for i in 0..s.agents {
                    let name = format!("{}-{i}", s.agent);
                    let t = tally.clone();
                    rt.spawn(&name, config, move || LoadAgent::new(Echo, t.clone(), i))
                        .map_err(|e| LoadError::Setup(e.to_string()))?;
                    names.push(name);
                }
            }
            AgentKind::Wasm => spawn_wasm(s, &rt, &config, &tally, &mut names)?,
        }
        for name in &names {
            addrs.push(
                rt.resolve(name)
                    .ok_or_else(|| LoadError::Setup(format!("agent {name} vanished at start")))?,
            );
        }
        Ok(Embedded {
            sender: Arc::new(EmbeddedSender {
                rt: rt.clone(),
                addrs,
                names,
                tally,
                payload: s.payload,
                timeout: s.timeout.0,
                cores,
            }),
            rt,
            _threads: threads,
            placement,
        })
    }

    pub(super) fn depth(&self) -> Depth {
        let mut d = Depth::default();
        for a in self.rt.agents() {
            d.total += a.depth as u64;
            d.max = d.max.max(a.depth as u64);
        }
        d
    }

    /// True when every accepted tell is handled or dead-lettered.
    pub(super) fn settled(&self, _tally: &Tally) -> bool {
        self.rt.accounting().in_flight() == 0
    }

    pub(super) async fn finish(self, tally: &Tally, deadline: Instant) -> Settled {
        while Instant::now() < deadline
            && !(Tally::get(&tally.in_flight) == 0 && self.rt.accounting().in_flight() == 0)
        {
            tokio::time::sleep(SETTLE_POLL).await;
        }
        let acc = self.rt.accounting();
        let mut settled = Settled {
            latency_source: "handled by the agent (tells), reply received (asks)",
            placement: Some(self.placement.clone()),
            ..Settled::default()
        };
        for r in DeadLetterReason::ALL {
            let n = acc.dead(r);
            if n == 0 {
                continue;
            }
            settled.dead_lettered.insert(r.as_str().to_owned(), n);
            if r == DeadLetterReason::Expired {
                settled.dead_timed_out += n;
            } else {
                settled.dead_errors += n;
            }
        }
        drop(self.sender);
        let _ = self.rt.shutdown(Duration::from_secs(2)).await;
        settled
    }
}

#[cfg(feature = "wasm")]
fn spawn_wasm(
    s: &Scenario,
    rt: &Runtime,
    config: &AgentConfig,
    tally: &Arc<Tally>,
    names: &mut Vec<String>,
) -> Result<(), LoadError> {
    use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits};
    let path = s
        .wasm
        .as_ref()
        .ok_or_else(|| LoadError::Setup("kind = \"wasm\" needs wasm = PATH".into()))?;
    let kind = WasmAgentKind::load(path, WasmLimits::default())
        .map_err(|e| LoadError::Setup(format!("cannot load {}: {e}", path.display())))?;
    for i in 0..s.agents {
        let name = format!("{}-{i}", s.agent);
        let (t, k) = (tally.clone(), kind.clone());
        rt.spawn(&name, *config, move || {
            LoadAgent::new(k.instantiate(), t.clone(), i)
        })
        .map_err(|e| LoadError::Setup(e.to_string()))?;
        names.push(name);
    }
    Ok(())
}

#[cfg(not(feature = "wasm"))]
fn spawn_wasm(
    _: &Scenario,
    _: &Runtime,
    _: &AgentConfig,
    _: &Arc<Tally>,
    _: &mut Vec<String>,
) -> Result<(), LoadError> {
    Err(LoadError::Setup(
        "this build has no WASM support (feature `wasm` of switchyard-loadtest)".into(),
    ))
}
