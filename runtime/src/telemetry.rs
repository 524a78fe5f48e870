//! The telemetry ticker: rolls latency windows, evaluates SLOs, publishes
//! metrics. Nothing here runs per message.
//!
//! ```text
//!  every `tick` (1 s):  agents' intervals ─► windows ─► global windows
//!                       counters ─► `metrics` facade (absolute values)
//!  every EVAL_TICKS:    verdicts; warn! once per pass ─► fail transition
//! ```
//!
//! Metrics go through the `metrics` facade, so any recorder works.
//! [`prometheus`] installs the Prometheus one and hands back its renderer.
//! With no recorder installed, publishing costs next to nothing.
//!
//! **Where it runs.** On a thread of its own (`switchyard-telemetry`), never
//! on a Tokio worker: a tick walks every agent that recorded latency and,
//! up to [`MAX_LABELED_AGENTS`], publishes labeled metrics for each, which
//! takes milliseconds at a thousand agents. On a worker that stalled the agent
//! tasks queued behind it once a second, the largest share of the `peak`
//! load scenario's p99; on its own thread it uses whatever core is idle.
//!
//! Shutdown: the ticker holds only a weak reference to the runtime; the
//! runtime's drop wakes it, and it ends.

use std::sync::{Arc, OnceLock, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::cell::AgentCell;
use crate::deadletter::DeadLetterReason;
use crate::runtime::{Inner, Runtime};
use crate::slo::{CompactHistogram, SloReport, SloStatus, SloTargets, SloVerdict, WINDOWS, Window};

/// Verdicts (and violation warnings) are computed every this many ticks:
/// merging window slots for every agent each second would cost more than it
/// tells.
pub const EVAL_TICKS: u64 = 5;

/// At most this many agents get their own metric labels; beyond it only
/// totals are published (one label per agent of a million would swamp any
/// metrics backend). Pool members are published under the pool's name.
pub const MAX_LABELED_AGENTS: usize = 1_000;

/// Telemetry settings of a runtime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// Record latency histograms (one clock read per message on send, two per batch).
    pub latency: bool,
    /// Targets for agents without their own.
    pub slo: SloTargets,
    /// How often windows roll and metrics are published.
    pub tick: Duration,
    /// Fraction of messages that get their own tracing span (0 = none).
    pub trace_sample_rate: f64,
}

impl Default for TelemetryConfig {
    fn default() -> TelemetryConfig {
        TelemetryConfig {
            latency: true,
            slo: SloTargets::seed(),
            tick: Duration::from_secs(1),
            trace_sample_rate: 0.0,
        }
    }
}

/// Runtime-wide windows, fed by the ticker.
#[derive(Debug)]
pub(crate) struct GlobalWindows {
    windows: [Window; 2],
    /// Refusals that belong to no agent, as of the last tick.
    last_failed: u64,
    last_status: [SloStatus; 2],
}

impl Default for GlobalWindows {
    fn default() -> GlobalWindows {
        GlobalWindows {
            windows: WINDOWS.map(|(s, n)| Window::new(s, n)),
            last_failed: 0,
            last_status: [SloStatus::NoData; 2],
        }
    }
}

/// Installs the Prometheus recorder as the process's `metrics` recorder
/// (once) and returns its handle; `None` if another recorder was installed first.
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; Prometheus rendering is off");
                None
            }
        })
        .as_ref()
}

/// Starts the ticker thread for the runtime behind `weak`; `None` (with a
/// warning) if the OS refuses a thread, in which case nothing is rolled.
pub(crate) fn spawn_ticker(weak: Weak<Inner>, period: Duration) -> Option<Thread> {
    let spawned = std::thread::Builder::new()
        .name("switchyard-telemetry".into())
        .spawn(move || run(&weak, period));
    match spawned {
        Ok(handle) => Some(handle.thread().clone()),
        Err(e) => {
            tracing::warn!(error = %e, "could not start the telemetry thread; SLO windows and metrics will not update");
            None
        }
    }
}

fn run(weak: &Weak<Inner>, period: Duration) {
    lower_priority();
    let mut ticks = 0u64;
    let mut next = Instant::now() + period;
    loop {
        // Sleep until the tick; the runtime's drop unparks this thread early.
        loop {
            if weak.strong_count() == 0 {
                return;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            std::thread::park_timeout(next - now);
        }
        // Missed ticks are skipped, not caught up.
        next = (next + period).max(Instant::now());
        let Some(inner) = weak.upgrade() else { return };
        tick(&Runtime { inner }, ticks % EVAL_TICKS == EVAL_TICKS - 1);
        ticks += 1;
    }
}

/// The ticker's nice value: the lowest priority of the normal classes.
#[cfg(target_os = "linux")]
const TICKER_NICE: libc::c_int = 19;

/// Runs the calling thread (the ticker) at the lowest normal priority, so
/// that it gets the CPU the workers leave instead of preempting one of them.
/// At 10,000 busy agents a tick takes 100-200 ms; at the default priority
/// the scheduler took that time from the workers in slices of milliseconds,
/// and the 10,000-agent tell read 4.9-7.3 M msg/s; at nice 19, 8.5-9.1
/// (decision 0021). Ticks that fall behind are skipped, as always.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: `setpriority` takes no pointers. On Linux, `PRIO_PROCESS` with
    // `who` 0 sets the nice value of the calling thread only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, TICKER_NICE) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            "the telemetry thread keeps the default priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn status_change(subject: &str, last: &mut SloStatus, v: &SloVerdict) {
    if v.status == SloStatus::Fail && *last != SloStatus::Fail {
        for violation in &v.violations {
            tracing::warn!(agent = %subject, window_s = v.window_s, %violation, "SLO violated");
        }
    } else if v.status == SloStatus::Pass && *last == SloStatus::Fail {
        tracing::info!(agent = %subject, window_s = v.window_s, "SLO met again");
    }
    *last = v.status;
}

/// One tick: roll windows for every agent with samples, then the global ones.
pub(crate) fn tick(rt: &Runtime, evaluate: bool) {
    let _one_at_a_time = rt.inner.tick_lock.lock().unwrap_or_else(|p| p.into_inner());
    let mut tick = Tick::new(rt, evaluate);
    for cell in tick.cells() {
        tick.agent(&cell);
    }
    tick.finish();
}

/// A tick in progress: what the agents rolled so far add to the global windows.
struct Tick<'a> {
    rt: &'a Runtime,
    evaluate: bool,
    now: u64,
    /// Every agent's interval, summed: a chunked histogram, so each agent's
    /// add costs its own buckets, not a walk of the sum.
    global: CompactHistogram,
    dh: u64,
    df: u64,
}

impl<'a> Tick<'a> {
    fn new(rt: &'a Runtime, evaluate: bool) -> Tick<'a> {
        Tick {
            rt,
            evaluate,
            now: rt.inner.started.elapsed().as_secs(),
            global: CompactHistogram::new(),
            dh: 0,
            df: 0,
        }
    }

    /// Only agents that have recorded latency: idle ones have nothing to
    /// roll, and a million of them must not cost a walk per second.
    fn cells(&self) -> Vec<Arc<AgentCell>> {
        self.rt
            .inner
            .registry
            .recording
            .iter()
            .map(|c| c.value().clone())
            .collect()
    }

    fn agent(&mut self, cell: &AgentCell) {
        let now = self.now;
        let mut guard = cell.lock_history();
        let Some(l) = guard.as_mut() else { return };
        // The agent's lock only for the swap: the merge below runs on the
        // samples taken out, while the agent records into the spare.
        if let Some(live) = cell.lock_interval().as_mut() {
            l.take_interval(live);
        }
        let a = cell.counters.snapshot();
        let (interval, h, f) = l.tick(now, a.handled, a.dead_lettered() + a.rejected);
        self.global.add(interval);
        self.dh += h;
        self.df += f;
        l.reset_interval();
        self.verdicts(cell, l);
        drop(guard);
        // An agent that handled nothing for a whole tick and has nothing
        // queued gives back what a burst grew its mailbox to. A busy agent
        // keeps its buffer: freeing it at every tick made 10,000 busy agents
        // regrow theirs each second, with fresh pages (decision 0018).
        if h == 0 && cell.mailbox.depth() == 0 {
            cell.mailbox.trim();
        }
    }

    /// Logs `cell`'s SLO transitions, on evaluating ticks.
    fn verdicts(&self, cell: &AgentCell, l: &mut crate::slo::AgentLatency) {
        let (inner, now) = (&self.rt.inner, self.now);
        let targets = cell.slo.as_deref().copied().unwrap_or(inner.telemetry.slo);
        // Without a bound there is no transition to warn about.
        if self.evaluate && targets.can_fail() {
            for (i, w) in l.windows.iter().enumerate() {
                let v = w.verdict(&cell.name, now, targets);
                status_change(&cell.name, &mut l.last_status[i], &v);
            }
        }
    }

    /// Rolls the global windows and publishes metrics.
    fn finish(self) {
        let Tick {
            rt,
            evaluate,
            now,
            global,
            dh,
            mut df,
        } = self;
        let inner = &rt.inner;
        let mut g = inner.global.lock().unwrap_or_else(|p| p.into_inner());
        // Refusals of unknown names belong to no agent; add their delta here.
        let unowned = inner.unowned_rejections();
        df += unowned.saturating_sub(g.last_failed);
        g.last_failed = unowned;
        for w in &mut g.windows {
            w.add(now, &global, dh, df);
        }
        if evaluate {
            let GlobalWindows {
                windows,
                last_status,
                ..
            } = &mut *g;
            for (i, w) in windows.iter().enumerate() {
                let v = w.verdict("overall", now, inner.telemetry.slo);
                status_change("overall", &mut last_status[i], &v);
            }
        }
        drop(g);
        let ticks = inner
            .ticks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Totals walk every agent: every tick while that is cheap, else every 30.
        if rt.agent_count() <= FULL_METRICS_AGENTS || ticks.is_multiple_of(30) {
            publish_metrics(rt);
        }
    }
}

/// Up to this many live agents, metric totals are published every tick;
/// beyond it every 30 ticks, because they are summed over every agent.
pub const FULL_METRICS_AGENTS: usize = 10_000;

/// Verdicts now, for every agent with latency samples and overall.
pub(crate) fn report(rt: &Runtime) -> SloReport {
    let inner = &rt.inner;
    let now = inner.started.elapsed().as_secs();
    let mut verdicts = Vec::new();
    {
        let g = inner.global.lock().unwrap_or_else(|p| p.into_inner());
        verdicts.extend(
            g.windows
                .iter()
                .map(|w| w.verdict("overall", now, inner.telemetry.slo)),
        );
    }
    let mut agents = Vec::new();
    for cell in inner.registry.ids.iter() {
        let guard = cell.lock_history();
        let Some(l) = guard.as_ref() else { continue };
        let targets = cell.slo.as_deref().copied().unwrap_or(inner.telemetry.slo);
        agents.extend(
            l.windows
                .iter()
                .map(|w| w.verdict(&cell.name, now, targets)),
        );
    }
    agents.sort_by(|a, b| a.subject.cmp(&b.subject).then(a.window_s.cmp(&b.window_s)));
    verdicts.extend(agents);
    SloReport { verdicts }
}

fn publish_metrics(rt: &Runtime) {
    let total = rt.accounting();
    metrics::counter!("switchyard_messages_accepted_total").absolute(total.accepted);
    metrics::counter!("switchyard_messages_handled_total").absolute(total.handled);
    metrics::counter!("switchyard_messages_rejected_total").absolute(total.rejected);
    metrics::counter!("switchyard_agent_restarts_total").absolute(total.restarts);
    for reason in DeadLetterReason::ALL {
        metrics::counter!("switchyard_messages_dead_lettered_total", "reason" => reason.as_str())
            .absolute(total.dead(reason));
    }
    metrics::gauge!("switchyard_agents_live").set(rt.agent_count() as f64);
    metrics::counter!("switchyard_asks_timed_out_total").absolute(rt.asks_timed_out());
    metrics::counter!("switchyard_late_replies_total").absolute(rt.late_replies());
    if rt.agent_count() > MAX_LABELED_AGENTS {
        return;
    }
    // Group pool members under the pool's name.
    let mut groups: std::collections::BTreeMap<String, (crate::stats::Accounting, usize)> =
        Default::default();
    for info in rt.agents() {
        let key = info.pool.clone().unwrap_or(info.name);
        let entry = groups.entry(key).or_default();
        entry.0.add(&info.accounting);
        entry.1 += info.depth;
    }
    for (agent, (a, depth)) in groups {
        let label = Arc::<str>::from(agent);
        metrics::gauge!("switchyard_mailbox_depth", "agent" => label.to_string()).set(depth as f64);
        metrics::counter!("switchyard_agent_messages_accepted_total", "agent" => label.to_string())
            .absolute(a.accepted);
        metrics::counter!("switchyard_agent_messages_handled_total", "agent" => label.to_string())
            .absolute(a.handled);
        metrics::counter!("switchyard_agent_messages_dead_lettered_total", "agent" => label.to_string())
            .absolute(a.dead_lettered());
        metrics::counter!("switchyard_agent_restarts_total", "agent" => label.to_string())
            .absolute(a.restarts);
    }
}

/// Locks `cell`'s latency state, allocating it (and listing the cell for
/// the ticker) at first use.
pub(crate) fn with_latency<R>(
    rt: &Runtime,
    cell: &Arc<crate::cell::AgentCell>,
    f: impl FnOnce(&mut crate::slo::Interval) -> R,
) -> R {
    let mut guard = cell.lock_interval();
    let fresh = guard.is_none();
    let result = f(guard.get_or_insert_with(Box::default));
    drop(guard);
    if !fresh {
        return result;
    }
    // The rest only once per agent, after the lock is released: the ticker
    // takes `history` before `latency`.
    let mut history = cell.lock_history();
    history.get_or_insert_with(|| Box::new(crate::slo::AgentLatency::new()));
    drop(history);
    // Listed once its state exists (the ticker skips a cell without it),
    // and only while the agent is registered: an asker that holds the cell
    // can record after the agent was retired, and a retired cell listed here
    // would be visited by the ticker for good.
    if rt.inner.registry.ids.contains_key(&cell.id) {
        rt.inner.registry.recording.insert(cell.id, cell.clone());
    }
    result
}

#[cfg(test)]
mod tests {
    use crate::{AgentConfig, Envelope, Runtime, TelemetryConfig};

    /// A runtime whose only ticks are the test's own `roll_windows`, with one
    /// agent, "sink", that handles every message by doing nothing.
    fn untimed_sink() -> Runtime {
        let telemetry = TelemetryConfig {
            tick: std::time::Duration::from_secs(3600),
            ..TelemetryConfig::default()
        };
        let rt = Runtime::builder().telemetry(telemetry).build();
        rt.spawn("sink", AgentConfig::default(), || crate::agent::Quiet)
            .unwrap();
        rt
    }

    /// Ticks that swap an agent's samples out while it records lose none:
    /// every handled message is in its histograms once, whatever the ticks
    /// rolled and what they left in the live interval.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ticks_during_recording_keep_every_sample() {
        const N: u64 = 20_000;
        let rt = untimed_sink();
        let ticking = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let ticker = {
            let (rt, ticking) = (rt.clone(), ticking.clone());
            std::thread::spawn(move || {
                let mut ticks = 0;
                while ticking.load(std::sync::atomic::Ordering::Relaxed) {
                    rt.roll_windows();
                    ticks += 1;
                }
                ticks
            })
        };
        for i in 0..N {
            rt.tell("sink", Envelope::tell("x")).await.unwrap();
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
        while rt.accounting().in_flight() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        ticking.store(false, std::sync::atomic::Ordering::Relaxed);
        assert!(ticker.join().unwrap() > 1, "the ticks ran during the run");
        let latency = rt.latency("sink").expect("samples");
        assert_eq!(latency.sojourn_us.count, N);
        assert_eq!(latency.queue_us.count, N);
        rt.roll_windows();
        assert_eq!(
            rt.latency("sink").unwrap().sojourn_us.count,
            N,
            "after a last tick"
        );
    }

    /// The ticker runs at the lowest normal priority, so it does not take
    /// the workers' CPU (Linux: its nice value, read from `/proc`).
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_ticker_runs_at_the_lowest_priority() {
        let _rt = Runtime::new();
        for _ in 0..1_000 {
            for task in std::fs::read_dir("/proc/self/task").unwrap() {
                let dir = task.unwrap().path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                if comm.trim_end() != "switchyard-tele" {
                    continue;
                }
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
                // Fields after the parenthesised name; nice is field 19.
                let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split(' ').collect();
                let nice: i32 = fields[17].parse().unwrap();
                if nice == super::TICKER_NICE {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        panic!("no telemetry thread at nice {} found", super::TICKER_NICE);
    }

    /// A burst grows the mailbox's queue; once drained, the first tick with
    /// nothing handled gives the memory back, so an idle agent's footprint
    /// follows its current depth.
    #[tokio::test]
    async fn a_tick_gives_back_a_drained_burst() {
        let rt = untimed_sink();
        // On this single-threaded test runtime the agent cannot run until
        // the sender yields, so the whole burst queues up.
        for _ in 0..1_000 {
            rt.tell("sink", Envelope::tell("x")).await.unwrap();
        }
        let cell = rt.inner.registry.route("sink").unwrap().cells()[0].clone();
        assert!(cell.mailbox.slots() >= 1_000, "{}", cell.mailbox.slots());
        while rt.accounting().in_flight() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert!(cell.mailbox.slots() >= 1_000, "draining alone keeps it");
        rt.roll_windows();
        assert!(
            cell.mailbox.slots() >= 1_000,
            "an agent busy since the last tick keeps its buffer"
        );
        rt.roll_windows();
        assert!(
            cell.mailbox.slots() <= crate::mailbox::KEEP_SLOTS,
            "{} slots kept after a tick with nothing handled",
            cell.mailbox.slots()
        );
        // The mailbox still works after giving its buffer back.
        rt.tell("sink", Envelope::tell("y")).await.unwrap();
        while rt.accounting().in_flight() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(rt.accounting().handled, 1_001);
    }
}
