//! Graceful shutdown: stop admission, drain within a grace period, report.
//!
//! ```text
//!  shutdown(grace)
//!   1. refuse new spawns; close every mailbox (senders get Closed + their message)
//!   2. Drain: each agent handles what is queued, runs on_stop, exits
//!   3. at the grace deadline: StopNow: agents dead-letter what is left (shutdown)
//!   4. STOP_NOW_GRACE later: abort tasks stuck in a handler; sweep their
//!      mailboxes; count their in-flight batch as dead-lettered (shutdown)
//!   5. report: accounting (balanced), drain time, agents that were forced
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::time::Instant;

use crate::cell::{AgentCell, Control};
use crate::deadletter::DeadLetterReason;
use crate::runtime::Runtime;
use crate::stats::Accounting;
use crate::supervisor::sweep;

/// After the grace period, how long agents get to notice `StopNow` before
/// their tasks are aborted: one batch boundary is microseconds away unless a
/// handler is stuck.
pub const STOP_NOW_GRACE: Duration = Duration::from_millis(200);

/// What a shutdown did.
#[derive(Clone, Debug)]
pub struct ShutdownReport {
    /// Final totals; `accounting.balanced()` holds.
    pub accounting: Accounting,
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// Agents that did not finish draining within the grace period.
    pub forced: Vec<String>,
    /// Agents whose task had to be aborted (stuck in a handler).
    pub aborted: Vec<String>,
}

impl std::fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "shutdown in {:.1?}: {}", self.elapsed, self.accounting)?;
        if !self.forced.is_empty() {
            write!(f, "; not drained in time: {}", self.forced.join(", "))?;
        }
        if !self.aborted.is_empty() {
            write!(f, "; aborted: {}", self.aborted.join(", "))?;
        }
        Ok(())
    }
}

/// Stops `cells`: close, drain for up to `grace`, then stop now, then abort.
/// Returns the names of cells that were forced and those that were aborted.
pub(crate) async fn stop_cells(
    rt: &Runtime,
    cells: &[Arc<AgentCell>],
    grace: Duration,
) -> (Vec<String>, Vec<String>) {
    let mut handles = Vec::with_capacity(cells.len());
    for cell in cells {
        cell.mailbox.close();
        if let Some(h) = cell.take_task(rt) {
            cell.request(Control::Drain);
            handles.push((cell.clone(), h));
        }
    }
    let deadline = Instant::now() + grace;
    let aborts: Vec<_> = handles
        .iter()
        .map(|(c, h)| (c.clone(), h.abort_handle()))
        .collect();
    // Await the handles one after another: join_all over many JoinHandles
    // re-polls all of them each time Tokio's co-operative budget runs out,
    // which is quadratic in the number of agents. `unconstrained` because the
    // budget only slows a join down, and this loop yields whenever a handle is
    // pending anyway.
    let mut joined = Box::pin(tokio::task::unconstrained(async move {
        for (_, h) in handles {
            let _ = h.await;
        }
    }));
    let mut forced = Vec::new();
    let mut aborted = Vec::new();
    if tokio::time::timeout_at(deadline, &mut joined)
        .await
        .is_err()
    {
        for (cell, abort) in &aborts {
            if !abort.is_finished() {
                forced.push(cell.name.to_string());
                cell.request(Control::StopNow);
            }
        }
        if tokio::time::timeout(STOP_NOW_GRACE, &mut joined)
            .await
            .is_err()
        {
            for (cell, abort) in &aborts {
                if !abort.is_finished() {
                    abort.abort();
                    aborted.push(cell.name.to_string());
                }
            }
            let _ = joined.await;
            for (cell, _) in aborts
                .iter()
                .filter(|(c, _)| aborted.iter().any(|n| **n == *c.name))
            {
                account_aborted(rt, cell).await;
            }
        }
    }
    (forced, aborted)
}

/// The task of `cell` was aborted: sweep its mailbox and count the batch it
/// held (lost with the task) as dead-lettered, so accounting still balances.
async fn account_aborted(rt: &Runtime, cell: &Arc<AgentCell>) {
    rt.unregister(cell);
    sweep(cell, rt.dead_letter_queue(), DeadLetterReason::Shutdown).await;
    let lost = cell.counters.snapshot().in_flight();
    if lost > 0 {
        tracing::error!(agent = %cell.name, lost, "agent aborted with messages in hand; counted as dead-lettered (shutdown)");
        cell.counters.dead(DeadLetterReason::Shutdown, lost);
    }
    rt.retire(cell);
}

impl Runtime {
    /// Stops the runtime: refuses new work, drains every mailbox for up to
    /// `grace`, runs `on_stop`, and reports the final accounting.
    pub async fn shutdown(&self, grace: Duration) -> ShutdownReport {
        let started = Instant::now();
        self.inner.shutting_down.store(true, Ordering::Release);
        let cells: Vec<Arc<AgentCell>> =
            self.inner.registry.ids.iter().map(|c| c.clone()).collect();
        let (forced, aborted) = stop_cells(self, &cells, grace).await;
        self.inner.registry.names.clear();
        self.inner.registry.topics.clear();
        let report = ShutdownReport {
            accounting: self.accounting(),
            elapsed: started.elapsed(),
            forced,
            aborted,
        };
        tracing::info!(%report, "runtime stopped");
        report
    }

    /// True once [`Runtime::shutdown`] has started.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.shutting_down.load(Ordering::Acquire)
    }
}
