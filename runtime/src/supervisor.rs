//! The agent task: batching loop, failure capture and restarts.
//!
//! ```text
//!             ┌──────────── restart (backoff, budget) ◄──────────┐
//!             ▼                                                   │
//!  factory() ─► on_start ─► loop { control? ─► take batch ─► drop expired
//!                                  ─► handle_batch ─► count } ─────┤ panic / Err
//!                                                                  ▼
//!                              stop: on_stop, drain or dead-letter the rest
//! ```
//!
//! **Ownership.** The task owns the agent instance and the batch buffer; the
//! mailbox lives in the shared cell and outlives every instance, so a restart
//! keeps what is queued.
//!
//! **Failure.** A panic or an `Err` from the handler dead-letters the one
//! message at the batch cursor (reason `panicked` / `failed`); messages before
//! it count as handled, messages after it go to the next instance. The restart
//! budget allows `max_restarts` per `window`, with exponential backoff.
//!
//! **Shutdown.** `Drain` handles what is queued, then stops; `StopNow`
//! dead-letters what is queued (reason `shutdown`). The task exits only once
//! every reserved permit has been pushed and taken, so a sender racing the
//! close cannot strand a message.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::agent::{Agent, Context};
use crate::cell::{AgentCell, Control, Start};
use crate::config::{RestartPolicy, Supervision};
use crate::deadletter::{DeadLetterReason, DeadLetters};
use crate::envelope::Envelope;
use crate::runtime::Runtime;
use crate::stats::bump_own;

/// How one instance's life ended.
enum Exit {
    /// Drained or stopped on request.
    Stopped,
    /// The agent asked to stop (`Context::stop`) and the policy is `always`.
    SelfStopped,
    /// A restart was requested on the control lane.
    RestartRequested,
    /// Panic or handler error.
    Failed {
        reason: DeadLetterReason,
        detail: String,
    },
}

/// Counts restarts in the current window and computes the backoff.
struct RestartBudget {
    sup: Supervision,
    window_start: Option<Instant>,
    in_window: u32,
}

impl RestartBudget {
    fn new(sup: Supervision) -> RestartBudget {
        RestartBudget {
            sup,
            window_start: None,
            in_window: 0,
        }
    }

    /// The backoff before the next restart, or `None` when the budget is spent.
    fn next(&mut self) -> Option<Duration> {
        let now = Instant::now();
        match self.window_start {
            Some(start) if now.duration_since(start) <= self.sup.window => {}
            _ => {
                self.window_start = Some(now);
                self.in_window = 0;
            }
        }
        if self.in_window >= self.sup.max_restarts {
            return None;
        }
        self.in_window += 1;
        let factor = 1u32.checked_shl(self.in_window - 1).unwrap_or(u32::MAX);
        Some(
            self.sup
                .backoff_initial
                .saturating_mul(factor)
                .min(self.sup.backoff_max),
        )
    }
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

/// Runs `fut`, turning a panic into an error message.
///
/// A plain function, not an `async fn`: an `async fn` would keep `fut` twice
/// in the agent's task (as its argument and inside `catch_unwind`), which
/// for the default `handle_batch` was 184 bytes of every agent's memory.
fn guarded<F: Future>(fut: F) -> impl Future<Output = Result<F::Output, String>> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .map(|r| r.map_err(|p| panic_message(&*p)))
}

/// Starts one agent: now, or (`lazy_start`) when its first message or
/// control request arrives.
pub(crate) fn start<A, F>(
    rt: &Runtime,
    cell: &Arc<AgentCell>,
    factory: F,
    sup: Supervision,
    lazy: bool,
) where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    if lazy {
        cell.set_lazy(Box::new(Starter { factory, sup }), rt);
    } else {
        cell.set_running(spawn_agent(rt, cell.clone(), factory, sup));
    }
}

/// Spawns the task of one agent.
fn spawn_agent<A, F>(
    rt: &Runtime,
    cell: Arc<AgentCell>,
    factory: F,
    sup: Supervision,
) -> JoinHandle<()>
where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    let span = tracing::info_span!("agent", agent = %cell.name, id = %cell.id);
    rt.spawn_task(run(rt.clone(), cell, factory, RestartBudget::new(sup)).instrument(span))
}

/// What a lazily started agent's cell keeps until its task starts.
struct Starter<F> {
    factory: F,
    sup: Supervision,
}

impl<A, F> Start for Starter<F>
where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    fn start(self: Box<Self>, rt: &Runtime, cell: Arc<AgentCell>) -> JoinHandle<()> {
        spawn_agent(rt, cell, self.factory, self.sup)
    }
}

/// Takes the budget, not the `Supervision` it holds: an argument stays in
/// the task for its whole life, so passing both would store it twice.
async fn run<A, F>(rt: Runtime, cell: Arc<AgentCell>, factory: F, mut budget: RestartBudget)
where
    A: Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    let dead = rt.dead_letter_queue();
    let mut ctx = Context::new(rt.clone(), cell.clone());
    let mut buf: Vec<Envelope> = Vec::new();
    let policy = budget.sup.policy;
    tracing::debug!("agent started");
    loop {
        let exit = match std::panic::catch_unwind(AssertUnwindSafe(&factory)) {
            Err(p) => Exit::Failed {
                reason: DeadLetterReason::Panicked,
                detail: panic_message(&*p),
            },
            Ok(mut agent) => match guarded(agent.on_start(&mut ctx)).await {
                Err(detail) => Exit::Failed {
                    reason: DeadLetterReason::Panicked,
                    detail,
                },
                Ok(Err(e)) => Exit::Failed {
                    reason: DeadLetterReason::Failed,
                    detail: e.0,
                },
                Ok(Ok(())) => {
                    let exit = serve(&mut agent, &mut ctx, &mut buf, dead, policy).await;
                    if !matches!(exit, Exit::Failed { .. }) {
                        // A panicking on_stop must not take the task down either.
                        if let Err(detail) = guarded(agent.on_stop(&mut ctx)).await {
                            tracing::warn!(%detail, "on_stop panicked");
                        }
                    }
                    exit
                }
            },
        };
        let restart = match &exit {
            Exit::Stopped => false,
            Exit::RestartRequested => true,
            Exit::SelfStopped => true,
            Exit::Failed { reason, detail } => {
                tracing::warn!(%reason, %detail, "agent failed");
                if let Some(env) = (!buf.is_empty()).then(|| buf.remove(0)) {
                    cell.dead_letter(dead, env, *reason, Some(detail.clone()));
                }
                policy != RestartPolicy::Never
            }
        };
        if !restart {
            break;
        }
        if matches!(exit, Exit::Failed { .. }) {
            match budget.next() {
                Some(backoff) => {
                    if !backoff.is_zero() && !sleep_unless_stopped(&cell, backoff).await {
                        break;
                    }
                }
                None => {
                    tracing::error!(
                        max_restarts = budget.sup.max_restarts,
                        "restart budget spent; agent stays stopped"
                    );
                    break;
                }
            }
        }
        cell.counters.agent.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::info!("agent restarting");
    }
    // Whatever is left can no longer be handled by this agent.
    rt.unregister(&cell);
    cell.mailbox.close();
    let reason = if cell.control() == Control::StopNow {
        DeadLetterReason::Shutdown
    } else {
        DeadLetterReason::AgentStopped
    };
    for env in buf.drain(..) {
        cell.dead_letter(dead, env, reason, None);
    }
    sweep(&cell, dead, reason).await;
    rt.retire(&cell);
    tracing::debug!("agent stopped");
}

/// Sleeps for the backoff, waking early when a stop is requested. Returns
/// false when the agent should stop instead of restarting.
async fn sleep_unless_stopped(cell: &AgentCell, backoff: Duration) -> bool {
    /// How often a sleeping agent looks at its control lane.
    const CONTROL_POLL: Duration = Duration::from_millis(10);
    let until = Instant::now() + backoff;
    loop {
        if cell.control() >= Control::Drain {
            return cell.control() == Control::Drain;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        tokio::time::sleep_until(until.min(now + CONTROL_POLL)).await;
    }
}

/// Dead-letters everything still in the mailbox, including messages whose
/// permits were reserved by a sender that has not pushed yet.
pub(crate) async fn sweep(cell: &AgentCell, dead: &DeadLetters, reason: DeadLetterReason) {
    let mut tmp = Vec::new();
    loop {
        cell.mailbox.take_batch(&mut tmp, usize::MAX);
        for env in tmp.drain(..) {
            cell.dead_letter(dead, env, reason, None);
        }
        if cell.mailbox.depth() == 0 {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// Serves one instance until it stops or fails.
async fn serve<A: Agent>(
    agent: &mut A,
    ctx: &mut Context,
    buf: &mut Vec<Envelope>,
    dead: &DeadLetters,
    policy: RestartPolicy,
) -> Exit {
    let cell = ctx.cell().clone();
    let max = cell.max_batch;
    loop {
        match cell.control() {
            Control::StopNow => return Exit::Stopped,
            Control::Restart => {
                cell.clear_restart();
                return Exit::RestartRequested;
            }
            Control::Drain => {
                if buf.is_empty() && cell.mailbox.take_batch(buf, max) == 0 {
                    if cell.mailbox.depth() == 0 {
                        return Exit::Stopped;
                    }
                    // A sender holds permits it has not pushed yet.
                    tokio::task::yield_now().await;
                    continue;
                }
            }
            Control::Run => {
                if buf.is_empty() {
                    // Takes what is queued, or parks until something comes
                    // (one lock either way). Back to the top even with
                    // messages: what came may be the wake of a control request.
                    cell.mailbox.wait_batch(buf, max).await;
                    continue;
                }
            }
        }
        if buf.iter().any(|e| e.deadline.is_some()) {
            let now = crate::envelope::Stamp::at(Instant::now().into_std());
            for env in buf.extract_if(.., |e| e.expired_at(now)) {
                cell.dead_letter(dead, env, DeadLetterReason::Expired, None);
            }
            if buf.is_empty() {
                continue;
            }
        }
        ctx.take_replies(buf);
        ctx.cursor = 0;
        let taken = cell.record_latency.then(crate::envelope::Tick::now);
        let span = tracing::debug_span!("batch", size = buf.len());
        let result = guarded(agent.handle_batch(ctx, buf).instrument(span)).await;
        let failure = match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some((DeadLetterReason::Failed, e.0)),
            Err(detail) => Some((DeadLetterReason::Panicked, detail)),
        };
        let counters = &cell.counters.agent;
        match failure {
            None => {
                ctx.clear_replies();
                if let Some(taken) = taken {
                    let done = crate::envelope::Tick::now();
                    crate::telemetry::with_latency(ctx.runtime(), &cell, |l| {
                        l.record_batch(buf, taken, done)
                    });
                }
                bump_own(&counters.handled, buf.len() as u64);
                buf.clear();
            }
            Some((reason, detail)) => {
                let done = ctx.cursor.min(buf.len());
                // Messages after the failed one keep their reply slots for the next instance.
                ctx.restore_replies(&mut buf[done..]);
                ctx.clear_replies();
                bump_own(&counters.handled, done as u64);
                buf.drain(..done);
                return Exit::Failed { reason, detail };
            }
        }
        if ctx.stop_requested {
            ctx.stop_requested = false;
            if policy == RestartPolicy::Always {
                return Exit::SelfStopped;
            }
            // Stop as on removal: admit nothing new, handle what is queued.
            ctx.runtime().unregister(&cell);
            cell.mailbox.close();
            cell.request(Control::Drain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AgentConfig;
    use crate::agent::Quiet;

    #[test]
    fn backoff_doubles_and_caps_and_budget_runs_out() {
        let sup = Supervision {
            policy: RestartPolicy::OnFailure,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_millis(35),
            max_restarts: 3,
            window: Duration::from_secs(3600),
        };
        let mut b = RestartBudget::new(sup);
        assert_eq!(b.next(), Some(Duration::from_millis(10)));
        assert_eq!(b.next(), Some(Duration::from_millis(20)));
        assert_eq!(b.next(), Some(Duration::from_millis(35)));
        assert_eq!(b.next(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn budget_refills_after_the_window() {
        let sup = Supervision {
            max_restarts: 1,
            window: Duration::from_secs(1),
            ..Supervision::immediate()
        };
        let mut b = RestartBudget::new(sup);
        assert!(b.next().is_some());
        assert!(b.next().is_none());
        tokio::time::advance(Duration::from_millis(1001)).await;
        assert!(b.next().is_some());
    }

    #[test]
    fn panic_messages_are_extracted() {
        let p = std::panic::catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*p), "boom 7");
    }

    /// Every agent's task holds this future for its whole life, so its size
    /// is part of the memory per agent (issue 2: at most 1 KiB per idle agent).
    #[tokio::test]
    async fn the_task_of_a_trivial_agent_stays_small() {
        let rt = Runtime::new();
        let cell = Arc::new(AgentCell::new("x".into(), &AgentConfig::default(), true));
        let mut ctx = Context::new(rt.clone(), cell.clone());
        let mut agent = Quiet;
        let inner = size_of_val(&agent.handle_batch(&mut ctx, &[]));
        let guarded = size_of_val(&guarded(agent.handle_batch(&mut ctx, &[])));
        assert!(
            guarded <= inner + 8,
            "guarding a future must not store it twice: {guarded} B around {inner} B"
        );
        let task = run(
            rt.clone(),
            cell,
            || Quiet,
            RestartBudget::new(Supervision::immediate()),
        );
        assert!(size_of_val(&task) <= 704, "{} B", size_of_val(&task));
    }
}
