//! The runtime: registry, delivery, asks, topics, accounting.
//!
//! ```text
//!  caller task ── tell(name) ──► registry shard (read) ──► route.pick(key)
//!                                                           │ agent or pool member
//!                                                           ▼
//!                                                   mailbox permits + push
//!                                                           ▼
//!                                              agent task: batch ─► handle
//! ```
//!
//! Routing happens in the caller's task; there is no router task to hop
//! through. A [`Runtime`] is a cheap handle (`Clone`); every clone sees the same
//! agents. Create it inside a Tokio runtime: agents are Tokio tasks.

#![allow(
    clippy::result_large_err,
    reason = "send errors hand the message back by value (the style guide's contract); boxing would allocate on every refusal"
)]

use std::future::Future;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::address::{AgentId, validate_name};
use crate::agent::Agent;
use crate::budget;
use crate::cell::{AgentCell, Control};
use crate::config::AgentConfig;
use crate::deadletter::DeadLetters;
use crate::deadline::Deadlines;
use crate::envelope::{Envelope, Kind, ReplyTo, Tick};
use crate::error::{AskError, SendError, SpawnError};
use crate::mailbox::{Overflow, Refusal};
use crate::pool::{MAX_POOL_SIZE, Pool, Strategy};
use crate::registry::{NameKey, Registry, Route};
use crate::slo::{Percentiles, SloReport, SloTargets};
use crate::stats::Accounting;
use crate::supervisor;
use crate::telemetry::{self, GlobalWindows, TelemetryConfig};

/// Default number of dead letters kept for inspection (counts are never lost).
pub const DEFAULT_DEAD_LETTER_CAPACITY: usize = 10_000;

/// Outcome of a publish: how many subscribers took a copy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PublishReport {
    /// Copies accepted by subscriber mailboxes.
    pub delivered: usize,
    /// Copies refused (full, closed, timed out); counted as rejected at each subscriber.
    pub rejected: usize,
}

/// A snapshot of one agent, for listings and admin APIs.
#[derive(Clone, Debug)]
pub struct AgentInfo {
    /// Name (pool members: `pool#index`).
    pub name: String,
    /// Id.
    pub id: AgentId,
    /// The pool it belongs to, if any.
    pub pool: Option<String>,
    /// Messages queued now.
    pub depth: usize,
    /// Mailbox capacity.
    pub capacity: usize,
    /// Overflow policy.
    pub overflow: Overflow,
    /// Whether its task has started: false only for a `lazy_start` agent
    /// that has had no message yet.
    pub started: bool,
    /// Its counters.
    pub accounting: Accounting,
}

/// Cumulative latency percentiles of one agent or pool, in microseconds.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct AgentLatencyInfo {
    /// Enqueued to taken from the mailbox.
    pub queue_us: Percentiles,
    /// Handler time per message.
    pub service_us: Percentiles,
    /// Enqueued to handled.
    pub sojourn_us: Percentiles,
    /// Ask round trips, as seen by askers.
    pub ask_us: Percentiles,
}

/// Builds a [`Runtime`].
#[derive(Debug, Default)]
pub struct RuntimeBuilder {
    dead_letter_capacity: Option<usize>,
    handle: Option<tokio::runtime::Handle>,
    telemetry: TelemetryConfig,
}

impl RuntimeBuilder {
    /// How many dead letters to keep for inspection (oldest evicted first).
    #[must_use]
    pub fn dead_letter_capacity(mut self, n: usize) -> RuntimeBuilder {
        self.dead_letter_capacity = Some(n);
        self
    }

    /// The Tokio runtime agents run on (default: the current one).
    #[must_use]
    pub fn handle(mut self, handle: tokio::runtime::Handle) -> RuntimeBuilder {
        self.handle = Some(handle);
        self
    }

    /// Telemetry settings (latency histograms, SLO default, tick, trace sampling).
    #[must_use]
    pub fn telemetry(mut self, telemetry: TelemetryConfig) -> RuntimeBuilder {
        self.telemetry = telemetry;
        self
    }

    /// Turns latency histograms on or off (on by default).
    #[must_use]
    pub fn latency(mut self, on: bool) -> RuntimeBuilder {
        self.telemetry.latency = on;
        self
    }

    /// SLO targets for agents that have none of their own (default: [`SloTargets::seed`]).
    #[must_use]
    pub fn slo_default(mut self, slo: SloTargets) -> RuntimeBuilder {
        self.telemetry.slo = slo;
        self
    }

    /// Builds the runtime.
    ///
    /// # Panics
    /// When no handle was given and this is called outside a Tokio runtime.
    pub fn build(self) -> Runtime {
        let handle = self.handle.unwrap_or_else(tokio::runtime::Handle::current);
        if self.telemetry.latency {
            crate::envelope::Tick::init();
        }
        let rate = self.telemetry.trace_sample_rate;
        let trace_every = if rate > 0.0 {
            (1.0 / rate.min(1.0)).round() as u64
        } else {
            0
        };
        let (deadlines, reaper) = Deadlines::new();
        handle.spawn(reaper);
        let rt = Runtime {
            inner: Arc::new(Inner {
                registry: Registry::default(),
                dead: DeadLetters::new(
                    self.dead_letter_capacity
                        .unwrap_or(DEFAULT_DEAD_LETTER_CAPACITY),
                ),
                shutting_down: AtomicBool::new(false),
                retired: Mutex::new(Accounting::default()),
                rejected: AtomicU64::new(0),
                late_replies: AtomicU64::new(0),
                asks_timed_out: AtomicU64::new(0),
                handle,
                telemetry: self.telemetry,
                trace_every,
                started: std::time::Instant::now(),
                global: Mutex::new(GlobalWindows::default()),
                tick_lock: Mutex::new(()),
                ticks: AtomicU64::new(0),
                ticker: std::sync::OnceLock::new(),
                deadlines,
            }),
        };
        if let Some(ticker) =
            telemetry::spawn_ticker(Arc::downgrade(&rt.inner), self.telemetry.tick)
        {
            let _ = rt.inner.ticker.set(ticker);
        }
        rt.inner
            .handle
            .spawn(timer_anchor(Arc::downgrade(&rt.inner)));
        rt
    }
}

pub(crate) struct Inner {
    pub registry: Registry,
    pub dead: DeadLetters,
    /// Refuses new spawns once shutdown starts (mailboxes close themselves).
    pub shutting_down: AtomicBool,
    /// Counters of agents that have exited, folded in at exit.
    retired: Mutex<Accounting>,
    /// Every refused message, whichever agent (or no agent) refused it. Kept
    /// here rather than summed from cells because a sender can be refused by
    /// an agent that has already exited and been folded into `retired`.
    rejected: AtomicU64,
    late_replies: AtomicU64,
    asks_timed_out: AtomicU64,
    handle: tokio::runtime::Handle,
    pub telemetry: TelemetryConfig,
    /// Every this many messages gets a tracing span (0: none).
    pub trace_every: u64,
    pub started: std::time::Instant,
    pub global: Mutex<GlobalWindows>,
    /// Held for a whole tick: one tick at a time, so a tick asked for (a
    /// report that rolls windows first) sees what a tick in progress took
    /// from the agents.
    pub tick_lock: Mutex<()>,
    /// Telemetry ticks so far.
    pub ticks: AtomicU64,
    /// The telemetry thread, woken at drop so that it ends at once.
    ticker: std::sync::OnceLock<std::thread::Thread>,
    /// Timeouts of the asks waiting for replies (one reaper task, no timer per ask).
    deadlines: Arc<Deadlines>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(ticker) = self.ticker.get() {
            ticker.unpark();
        }
    }
}

impl Inner {
    /// Refusals not counted by any agent (unknown names): the runtime's
    /// refusals minus those its live agents counted.
    pub(crate) fn unowned_rejections(&self) -> u64 {
        let owned: u64 = self
            .registry
            .recording
            .iter()
            .map(|c| c.counters.snapshot().rejected)
            .sum();
        self.rejected.load(Ordering::Relaxed).saturating_sub(owned)
    }
}

/// Handle to a Switchyard runtime.
///
/// ```
/// use std::time::Duration;
/// use switchyard_runtime::{Agent, AgentConfig, AgentError, Context, Envelope, Runtime};
///
/// struct Echo;
/// impl Agent for Echo {
///     async fn handle(&mut self, ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
///         let _ = ctx.reply(msg, msg.payload().clone());
///         Ok(())
///     }
/// }
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let rt = Runtime::new();
/// rt.spawn("echo", AgentConfig::default(), || Echo).unwrap();
/// let reply = rt.ask("echo", Envelope::ask("hi"), Duration::from_secs(1)).await.unwrap();
/// assert_eq!(reply.payload().as_ref(), b"hi");
/// let report = rt.shutdown(Duration::from_secs(1)).await;
/// assert!(report.accounting.balanced());
/// # });
/// ```
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("agents", &self.inner.registry.ids.len())
            .finish()
    }
}

/// The result of the synchronous part of a send.
enum Fast<T> {
    Done(Result<(), SendError<T>>),
    /// Nothing was sent: the mailbox is full and its policy is `block`, or
    /// the thread's send budget ran out (then [`Runtime::finish`] yields first).
    Wait(Arc<AgentCell>, T),
}

impl Runtime {
    /// A runtime on the current Tokio runtime.
    ///
    /// # Panics
    /// Outside a Tokio runtime (use [`Runtime::builder`] with a handle there).
    pub fn new() -> Runtime {
        Runtime::builder().build()
    }

    /// A builder for non-default settings.
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub(crate) fn dead_letter_queue(&self) -> &DeadLetters {
        &self.inner.dead
    }

    pub(crate) fn spawn_task<F>(&self, fut: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.inner.handle.spawn(fut)
    }

    pub(crate) fn count_late_reply(&self) {
        self.inner.late_replies.fetch_add(1, Ordering::Relaxed);
    }

    fn register(&self, name: &str, config: &AgentConfig) -> Result<Arc<str>, SpawnError> {
        validate_name(name)?;
        config.validate(name)?;
        if self.inner.shutting_down.load(Ordering::Acquire) {
            return Err(SpawnError::ShuttingDown(name.to_owned()));
        }
        // A taken name is refused by `insert_name`; one lookup per spawn.
        Ok(Arc::from(name))
    }

    fn insert_name(&self, name: Arc<str>, route: Route) -> Result<(), SpawnError> {
        use dashmap::mapref::entry::Entry;
        match self.inner.registry.names.entry(NameKey::new(&name)) {
            Entry::Occupied(o) => Err(SpawnError::Duplicate(o.key().to_string())),
            Entry::Vacant(v) => {
                v.insert(route);
                Ok(())
            }
        }
    }

    /// Starts an agent under `name`. `factory` builds a fresh instance at start
    /// and after every restart.
    pub fn spawn<A, F>(
        &self,
        name: &str,
        config: AgentConfig,
        factory: F,
    ) -> Result<AgentId, SpawnError>
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let name = self.register(name, &config)?;
        let cell = Arc::new(AgentCell::new(
            name.clone(),
            &config,
            self.inner.telemetry.latency,
        ));
        self.insert_name(name, Route::Agent(cell.clone()))?;
        self.inner.registry.ids.insert(cell.id, cell.clone());
        supervisor::start(self, &cell, factory, config.supervision, config.lazy_start);
        Ok(cell.id)
    }

    /// Starts a pool of `size` instances under `name`; members are named `name#i`.
    pub fn spawn_pool<A, F>(
        &self,
        name: &str,
        size: usize,
        strategy: Strategy,
        config: AgentConfig,
        factory: F,
    ) -> Result<Vec<AgentId>, SpawnError>
    where
        A: Agent,
        F: Fn() -> A + Send + Sync + 'static,
    {
        let pool_name = self.register(name, &config)?;
        // Checked before building the members, which `insert_name` would
        // only refuse after the fact.
        if self.inner.registry.names.contains_key(name.as_bytes()) {
            return Err(SpawnError::Duplicate(name.to_owned()));
        }
        if size == 0 || size > MAX_POOL_SIZE {
            return Err(SpawnError::Invalid {
                agent: name.to_owned(),
                what: format!("pool size {size} is out of range; use 1..={MAX_POOL_SIZE}"),
            });
        }
        let members: Vec<_> = (0..size)
            .map(|i| {
                Arc::new(AgentCell::new(
                    format!("{name}#{i}").into(),
                    &config,
                    self.inner.telemetry.latency,
                ))
            })
            .collect();
        let pool = Arc::new(Pool::new(members.clone(), strategy));
        self.insert_name(pool_name, Route::Pool(pool))?;
        let factory = Arc::new(factory);
        let mut ids = Vec::with_capacity(size);
        for cell in members {
            self.inner.registry.ids.insert(cell.id, cell.clone());
            ids.push(cell.id);
            let f = factory.clone();
            supervisor::start(
                self,
                &cell,
                move || f(),
                config.supervision,
                config.lazy_start,
            );
        }
        Ok(ids)
    }

    /// Resolves a name once, for callers that send to it many times.
    pub fn resolve(&self, name: &str) -> Option<Addr> {
        self.inner.registry.route(name).map(|route| Addr {
            route,
            rt: self.clone(),
        })
    }

    /// The name of an agent id (pool members: `pool#index`).
    pub fn name_of(&self, id: AgentId) -> Option<Arc<str>> {
        self.inner.registry.ids.get(&id).map(|c| c.name.clone())
    }

    fn unknown<T>(&self, name: &str, message: T) -> SendError<T> {
        SendError::UnknownAgent {
            name: name.into(),
            message,
        }
    }

    /// Counts a refusal of `n` messages in the runtime's totals.
    fn counted<T>(&self, result: Result<(), SendError<T>>, n: usize) -> Result<(), SendError<T>> {
        if result.is_err() {
            self.count_refused(n);
        }
        result
    }

    /// Counts `n` refused messages in the runtime's totals.
    fn count_refused(&self, n: usize) {
        self.inner.rejected.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn offer(&self, cell: &Arc<AgentCell>, env: Envelope) -> Fast<Envelope> {
        self.offer_at(cell, env, || cell.record_latency.then(Tick::now))
    }

    /// [`Runtime::offer`] with the enqueue stamp from `now`.
    #[inline]
    fn offer_at(
        &self,
        cell: &Arc<AgentCell>,
        env: Envelope,
        now: impl FnOnce() -> Option<Tick>,
    ) -> Fast<Envelope> {
        match cell.offer_at(env, &self.inner.dead, now) {
            Ok(()) => Fast::Done(Ok(())),
            Err((Refusal::Full, env)) if cell.mailbox.overflow() == Overflow::Block => {
                Fast::Wait(cell.clone(), env)
            }
            Err((r, env)) => Fast::Done(Err(cell.refused(r, env, 1))),
        }
    }

    /// [`Runtime::offer`] within the thread's send budget: when it has run
    /// out, hands the message back to be delivered after a yield.
    #[inline]
    fn paced_offer(&self, cell: &Arc<AgentCell>, env: Envelope) -> Fast<Envelope> {
        if budget::take(1) {
            return Fast::Wait(cell.clone(), env);
        }
        self.offer(cell, env)
    }

    /// Routes `name` and offers; `paced`: within the send budget (async sends).
    fn tell_fast(&self, name: &str, env: Envelope, paced: bool) -> Fast<Envelope> {
        match self.inner.registry.names.get(name.as_bytes()) {
            Some(route) if paced => self.paced_offer(route.pick(env.key()), env),
            Some(route) => self.offer(route.pick(env.key()), env),
            None => Fast::Done(Err(self.unknown(name, env))),
        }
    }

    /// The rest of a tell whose fast path did not simply succeed. Callers
    /// match `Fast::Done(Ok(()))` themselves and return at once: moving the
    /// whole `Fast` (an envelope wide) into this future and its result out
    /// again cost three 150-byte copies per message (decision 0015).
    /// Returning `Result<(), Slow>` (or `Option<Slow>`) from the synchronous
    /// part instead, so that the type says it, made the compiler copy the
    /// envelope once more at every call site (callgrind: 91 → 120 `memcpy`
    /// instructions per message), so the shape stays.
    async fn finish(&self, fast: Fast<Envelope>) -> Result<(), SendError<Envelope>> {
        let result = match fast {
            Fast::Done(r) => r,
            Fast::Wait(cell, env) => {
                if budget::refill_if_spent() {
                    tokio::task::yield_now().await;
                }
                cell.deliver(env, &self.inner.dead).await
            }
        };
        self.counted(result, 1)
    }

    /// Sends a message to the agent or pool `name`. With the `block` policy a
    /// full mailbox makes this wait, at most until the message's deadline.
    ///
    /// # Cancel safety
    /// Cancel safe: if cancelled while waiting, the message was not accepted.
    pub async fn tell(&self, name: &str, env: Envelope) -> Result<(), SendError<Envelope>> {
        match self.tell_fast(name, env, true) {
            Fast::Done(Ok(())) => Ok(()),
            slow => self.finish(slow).await,
        }
    }

    /// Sends without ever waiting: a full `block` mailbox refuses with `Full`.
    pub fn try_tell(&self, name: &str, env: Envelope) -> Result<(), SendError<Envelope>> {
        let result = match self.tell_fast(name, env, false) {
            Fast::Done(r) => r,
            Fast::Wait(cell, env) => Err(cell.refused(Refusal::Full, env, 1)),
        };
        self.counted(result, 1)
    }

    /// Sends a message to an agent by id.
    ///
    /// # Cancel safety
    /// As [`Runtime::tell`].
    pub async fn tell_id(&self, id: AgentId, env: Envelope) -> Result<(), SendError<Envelope>> {
        let fast = match self.inner.registry.ids.get(&id) {
            Some(cell) => self.paced_offer(&cell, env),
            None => Fast::Done(Err(self.unknown(&id.to_string(), env))),
        };
        match fast {
            Fast::Done(Ok(())) => Ok(()),
            slow => self.finish(slow).await,
        }
    }

    /// Sends many messages to `name` in one mailbox operation per member.
    /// Pools send the whole batch to one member, except key-affinity pools,
    /// which route each message by its key.
    ///
    /// # Cancel safety
    /// Not cancel safe for key-affinity pools (part of the batch may have been
    /// accepted); cancel safe otherwise.
    pub async fn tell_batch(
        &self,
        name: &str,
        batch: Vec<Envelope>,
    ) -> Result<(), SendError<Vec<Envelope>>> {
        let n = batch.len();
        budget::spend(n).await;
        let result = self.tell_batch_inner(name, batch).await;
        self.counted(result, n)
    }

    async fn tell_batch_inner(
        &self,
        name: &str,
        batch: Vec<Envelope>,
    ) -> Result<(), SendError<Vec<Envelope>>> {
        let Some(route) = self.inner.registry.route(name) else {
            return Err(self.unknown(name, batch));
        };
        match &route {
            Route::Pool(pool) if pool.strategy == Strategy::KeyAffinity => {
                let mut groups: Vec<Vec<Envelope>> =
                    (0..pool.members.len()).map(|_| Vec::new()).collect();
                for env in batch {
                    let cell = pool.pick(env.key());
                    let i = pool
                        .members
                        .iter()
                        .position(|m| Arc::ptr_eq(m, cell))
                        .unwrap_or(0);
                    groups[i].push(env);
                }
                let mut failed: Vec<Envelope> = Vec::new();
                let mut first_err: Option<SendError<()>> = None;
                for (cell, group) in pool.members.iter().zip(groups) {
                    if let Err(e) = cell.deliver_batch(group, &self.inner.dead).await {
                        let e = e.map(|msgs| failed.extend(msgs));
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), |e| Err(e.map(|()| failed)))
            }
            _ => {
                route
                    .pick(None)
                    .deliver_batch(batch, &self.inner.dead)
                    .await
            }
        }
    }

    /// Sends `env` as an ask and waits for the reply, at most `timeout`.
    ///
    /// # Cancel safety
    /// Cancel safe; a reply that arrives after cancellation is counted as late.
    pub async fn ask(
        &self,
        name: &str,
        mut env: Envelope,
        timeout: Duration,
    ) -> Result<Envelope, AskError> {
        // Counted from the call: waiting for mailbox room is part of it.
        let deadline = self.inner.deadlines.after(timeout);
        let (tx, rx) = oneshot::channel();
        env.set_kind(Kind::Ask);
        env.reply = Some(ReplyTo(tx));
        // The cell is kept for recording the round trip: the agent it was
        // sent to is the one that replies (a reply slot never travels on).
        let found = (self.inner.registry.names.get(name.as_bytes()))
            .map(|route| route.pick(env.key()).clone());
        let Some(cell) = found else {
            self.count_refused(1);
            return Err(refused_ask(self.unknown(name, env)));
        };
        // One clock read for the message's enqueue stamp and the start of
        // the round trip.
        let asked = cell.record_latency.then(Tick::now);
        match self.offer_at(&cell, env, || asked) {
            Fast::Done(Ok(())) => {}
            slow => self.finish(slow).await.map_err(refused_ask)?,
        }
        match self.inner.deadlines.within(rx, deadline).await {
            Ok(Ok(reply)) => {
                if let Some(asked) = asked {
                    let took = Tick::now().nanos_since(asked);
                    telemetry::with_latency(self, &cell, |l| {
                        l.record_ask(Duration::from_nanos(took))
                    });
                }
                Ok(reply)
            }
            Ok(Err(_)) => Err(AskError::NoReply { agent: name.into() }),
            Err(_) => {
                self.inner.asks_timed_out.fetch_add(1, Ordering::Relaxed);
                Err(AskError::Timeout {
                    agent: name.into(),
                    timeout,
                })
            }
        }
    }

    /// Subscribes the agent or pool `name` to `topic`.
    pub fn subscribe(&self, topic: &str, name: &str) -> Result<(), SendError<()>> {
        validate_name(topic).map_err(|_| SendError::UnknownAgent {
            name: topic.into(),
            message: (),
        })?;
        let route = self
            .inner
            .registry
            .route(name)
            .ok_or_else(|| SendError::UnknownAgent {
                name: name.into(),
                message: (),
            })?;
        let mut entry = self
            .inner
            .registry
            .topics
            .entry(Arc::from(topic))
            .or_insert_with(|| Arc::from(vec![]));
        if !entry.iter().any(|r| r.same(&route)) {
            let mut subs = entry.to_vec();
            subs.push(route);
            *entry = subs.into();
        }
        Ok(())
    }

    /// Removes `name`'s subscription to `topic`; returns whether it was subscribed.
    pub fn unsubscribe(&self, topic: &str, name: &str) -> bool {
        let Some(route) = self.inner.registry.route(name) else {
            return false;
        };
        let mut removed = false;
        if let Some(mut entry) = self.inner.registry.topics.get_mut(topic) {
            let subs: Vec<Route> = entry.iter().filter(|r| !r.same(&route)).cloned().collect();
            removed = subs.len() != entry.len();
            *entry = subs.into();
        }
        removed
    }

    /// Delivers a copy of `env` to every subscriber of `topic` (pools: one member each).
    ///
    /// # Cancel safety
    /// Not cancel safe: a cancelled publish may have reached some subscribers.
    pub async fn publish(&self, topic: &str, mut env: Envelope) -> PublishReport {
        env.set_kind(Kind::Publish);
        env.reply = None;
        let subs = self.inner.registry.topics.get(topic).map(|s| s.clone());
        let mut report = PublishReport::default();
        let Some(subs) = subs else { return report };
        budget::spend(subs.len()).await;
        let last = subs.len().saturating_sub(1);
        let mut original = Some(env);
        for (i, route) in subs.iter().enumerate() {
            let copy = if i == last {
                original
                    .take()
                    .expect("the original is used once, for the last subscriber")
            } else {
                original
                    .as_ref()
                    .expect("taken only at the last subscriber")
                    .clone_data()
            };
            let cell = route.pick(copy.key());
            match self.counted(cell.deliver(copy, &self.inner.dead).await, 1) {
                Ok(()) => report.delivered += 1,
                Err(_) => report.rejected += 1,
            }
        }
        report
    }

    /// Asks the agent (or every member of the pool) `name` to restart; its
    /// mailbox is kept. Returns false when nothing has that name.
    pub fn restart(&self, name: &str) -> bool {
        let Some(route) = self.inner.registry.route(name) else {
            return false;
        };
        for cell in route.cells() {
            cell.request(Control::Restart);
        }
        true
    }

    /// Removes the agent or pool `name`: admits nothing new, lets it handle
    /// what is queued for up to `grace`, then dead-letters the rest. Returns its
    /// final counters, or `None` when nothing has that name.
    pub async fn remove(&self, name: &str, grace: Duration) -> Option<Accounting> {
        let (_, route) = self.inner.registry.names.remove(name.as_bytes())?;
        let cells = route.cells().to_vec();
        let mut total = Accounting::default();
        crate::shutdown::stop_cells(self, &cells, grace).await;
        for cell in &cells {
            total.add(&cell.counters.snapshot());
        }
        Some(total)
    }

    /// Totals over every agent, live and exited, plus refusals of unknown names.
    pub fn accounting(&self) -> Accounting {
        let retired = self.inner.retired.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = *retired;
        for cell in self.inner.registry.ids.iter() {
            total.add(&cell.counters.snapshot());
        }
        drop(retired);
        total.rejected = self.inner.rejected.load(Ordering::Relaxed);
        total
    }

    /// Counters of the live agent or pool `name` (pools: summed over members).
    pub fn agent_accounting(&self, name: &str) -> Option<Accounting> {
        let route = self.inner.registry.names.get(name.as_bytes())?;
        let mut total = Accounting::default();
        for cell in route.cells() {
            total.add(&cell.counters.snapshot());
        }
        Some(total)
    }

    /// SLO verdicts now: overall and per agent, over the last 10 s and 60 s.
    pub fn slo_report(&self) -> SloReport {
        telemetry::report(self)
    }

    /// Rolls latency windows now instead of waiting for the next tick
    /// (tests, and reports that must include the last moments).
    pub fn roll_windows(&self) {
        telemetry::tick(self, false);
    }

    /// Cumulative latency percentiles of the agent or pool `name`
    /// (pools: merged over members), or `None` if it has no samples.
    pub fn latency(&self, name: &str) -> Option<AgentLatencyInfo> {
        let route = self.inner.registry.names.get(name.as_bytes())?;
        let mut merged: Option<[crate::slo::LatencyHistogram; 4]> = None;
        for cell in route.cells() {
            // `history` first, as the ticker does: while it is held no tick
            // has samples taken out, so the two parts are all of them.
            let history = cell.lock_history();
            let Some(l) = history.as_ref() else { continue };
            let m = merged
                .get_or_insert_with(|| std::array::from_fn(|_| crate::slo::report_histogram()));
            l.merge_into(m);
            if let Some(live) = cell.lock_interval().as_ref() {
                live.merge_into(m);
            }
        }
        merged.map(|[q, s, j, a]| AgentLatencyInfo {
            queue_us: Percentiles::of(&q),
            service_us: Percentiles::of(&s),
            sojourn_us: Percentiles::of(&j),
            ask_us: Percentiles::of(&a),
        })
    }

    /// Every live agent (pool members individually), sorted by name.
    pub fn agents(&self) -> Vec<AgentInfo> {
        let mut out: Vec<AgentInfo> = self
            .inner
            .registry
            .ids
            .iter()
            .map(|c| AgentInfo {
                name: c.name.to_string(),
                id: c.id,
                pool: c.name.split_once('#').map(|(p, _)| p.to_owned()),
                depth: c.mailbox.depth(),
                capacity: c.mailbox.capacity(),
                overflow: c.mailbox.overflow(),
                started: c.started(),
                accounting: c.counters.snapshot(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Number of live agents (pool members count individually).
    pub fn agent_count(&self) -> usize {
        self.inner.registry.ids.len()
    }

    /// The dead-letter queue.
    pub fn dead_letters(&self) -> &DeadLetters {
        &self.inner.dead
    }

    /// Replies that arrived after their asker stopped waiting.
    pub fn late_replies(&self) -> u64 {
        self.inner.late_replies.load(Ordering::Relaxed)
    }

    /// Asks that timed out waiting for a reply.
    pub fn asks_timed_out(&self) -> u64 {
        self.inner.asks_timed_out.load(Ordering::Relaxed)
    }

    /// Drops `cell`'s name (if it still owns it) so new sends fail fast.
    pub(crate) fn unregister(&self, cell: &Arc<AgentCell>) {
        self.inner.registry.unregister_name(cell);
    }

    /// Folds an exited agent's counters into the totals and forgets it.
    pub(crate) fn retire(&self, cell: &Arc<AgentCell>) {
        self.inner.registry.recording.remove(&cell.id);
        let mut retired = self.inner.retired.lock().unwrap_or_else(|p| p.into_inner());
        if self.inner.registry.ids.remove(&cell.id).is_some() {
            retired.add(&cell.counters.snapshot());
        }
    }
}

/// The error of an ask whose request was refused, without its reply slot
/// (the caller gets the message back, not the channel).
fn refused_ask(refused: SendError<Envelope>) -> AskError {
    AskError::Send(refused.map(|mut m| {
        m.reply = None;
        m
    }))
}

/// How far ahead the timer anchor keeps a timer armed.
const TIMER_ANCHOR: Duration = Duration::from_millis(20);

/// Keeps a timer armed in the Tokio time driver at most [`TIMER_ANCHOR`]
/// ahead, for as long as the runtime lives.
///
/// Tokio's time driver wakes a parked worker whenever a new timer is due
/// *earlier* than the driver's next wake-up, and with no other timer that is
/// every timer: an `eventfd` write and a cross-core wake-up each. Asks no
/// longer arm a timer each (decision 0016), but message deadlines in a full
/// `block` mailbox and the service's timeouts do. With a timer always due
/// within 20 ms, arming a longer one wakes no one (decision 0012).
async fn timer_anchor(inner: std::sync::Weak<Inner>) {
    while inner.strong_count() > 0 {
        tokio::time::sleep(TIMER_ANCHOR).await;
    }
}

impl Default for Runtime {
    fn default() -> Runtime {
        Runtime::new()
    }
}

/// A resolved name: sends skip the registry lookup.
#[derive(Clone)]
pub struct Addr {
    route: Route,
    rt: Runtime,
}

impl Addr {
    /// As [`Runtime::tell`].
    ///
    /// # Cancel safety
    /// Cancel safe, as [`Runtime::tell`].
    pub async fn tell(&self, env: Envelope) -> Result<(), SendError<Envelope>> {
        match self.rt.paced_offer(self.route.pick(env.key()), env) {
            Fast::Done(Ok(())) => Ok(()),
            slow => self.rt.finish(slow).await,
        }
    }

    /// As [`Runtime::try_tell`].
    pub fn try_tell(&self, env: Envelope) -> Result<(), SendError<Envelope>> {
        let cell = self.route.pick(env.key());
        let result = cell
            .offer(env, &self.rt.inner.dead)
            .map_err(|(r, env)| cell.refused(r, env, 1));
        self.rt.counted(result, 1)
    }

    /// The ids behind this address (one, or every pool member).
    pub fn ids(&self) -> Vec<AgentId> {
        self.route.cells().iter().map(|c| c.id).collect()
    }
}
