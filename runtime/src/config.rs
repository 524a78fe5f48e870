//! Per-agent settings: mailbox, batching and supervision.

use std::time::Duration;

use crate::error::SpawnError;
use crate::mailbox::{MAX_CAPACITY, Overflow};
use crate::slo::SloTargets;

/// Default mailbox capacity: deep enough to absorb a burst of a few
/// milliseconds at full rate, small enough that 1,000,000 idle agents cost nothing
/// (capacity is a bound, not an allocation).
pub const DEFAULT_CAPACITY: usize = 1024;

/// Default largest batch per wake-up: big enough to amortise the wake-up,
/// small enough that one batch does not hold a core for long.
pub const DEFAULT_MAX_BATCH: usize = 64;

/// When the supervisor restarts an agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RestartPolicy {
    /// Never: a failed agent stays stopped.
    Never,
    /// After a panic or a handler error.
    #[default]
    OnFailure,
    /// After a failure and after the agent stops itself.
    Always,
}

/// Restart policy with exponential backoff and a restart budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Supervision {
    /// When to restart.
    pub policy: RestartPolicy,
    /// Backoff before the first restart in a window; doubles per restart. Zero restarts at once.
    pub backoff_initial: Duration,
    /// Backoff ceiling.
    pub backoff_max: Duration,
    /// At most this many restarts per `window`; one more and the agent stays stopped.
    pub max_restarts: u32,
    /// The window for `max_restarts`.
    pub window: Duration,
}

impl Default for Supervision {
    fn default() -> Supervision {
        Supervision {
            policy: RestartPolicy::OnFailure,
            backoff_initial: Duration::from_millis(10),
            backoff_max: Duration::from_secs(5),
            max_restarts: 10,
            window: Duration::from_secs(60),
        }
    }
}

impl Supervision {
    /// Restart on failure with no backoff and a large budget.
    pub fn immediate() -> Supervision {
        Supervision {
            backoff_initial: Duration::ZERO,
            backoff_max: Duration::ZERO,
            max_restarts: u32::MAX,
            ..Supervision::default()
        }
    }

    /// Never restart.
    pub fn never() -> Supervision {
        Supervision {
            policy: RestartPolicy::Never,
            ..Supervision::default()
        }
    }
}

/// Settings for one agent (or each member of a pool).
///
/// ```
/// use switchyard_runtime::{AgentConfig, Overflow};
/// let cfg = AgentConfig::default().capacity(256).overflow(Overflow::Reject).max_batch(32);
/// assert_eq!(cfg.capacity, 256);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AgentConfig {
    /// Mailbox capacity in messages.
    pub capacity: usize,
    /// What a full mailbox does.
    pub overflow: Overflow,
    /// Most messages handed to the agent per wake-up.
    pub max_batch: usize,
    /// Restart policy.
    pub supervision: Supervision,
    /// SLO targets for this agent; `None` uses the runtime's default.
    pub slo: Option<SloTargets>,
    /// Start the agent's task at its first message (or control request)
    /// instead of at spawn. Until then the agent costs no task: spawning is
    /// a registration, and an idle agent holds only its cell. `on_start` runs
    /// at that first message; an agent that never got one is retired at
    /// stop without running `on_start` or `on_stop`. See
    /// `docs/decisions/0011-lazy-start.md`.
    pub lazy_start: bool,
}

impl Default for AgentConfig {
    fn default() -> AgentConfig {
        AgentConfig {
            capacity: DEFAULT_CAPACITY,
            overflow: Overflow::Block,
            max_batch: DEFAULT_MAX_BATCH,
            supervision: Supervision::default(),
            slo: None,
            lazy_start: false,
        }
    }
}

impl AgentConfig {
    /// Sets the mailbox capacity.
    #[must_use]
    pub fn capacity(mut self, capacity: usize) -> AgentConfig {
        self.capacity = capacity;
        self
    }

    /// Sets the overflow policy.
    #[must_use]
    pub fn overflow(mut self, overflow: Overflow) -> AgentConfig {
        self.overflow = overflow;
        self
    }

    /// Sets the largest batch per wake-up.
    #[must_use]
    pub fn max_batch(mut self, max_batch: usize) -> AgentConfig {
        self.max_batch = max_batch;
        self
    }

    /// Sets the supervision.
    #[must_use]
    pub fn supervision(mut self, supervision: Supervision) -> AgentConfig {
        self.supervision = supervision;
        self
    }

    /// Starts the agent's task at its first message instead of at spawn
    /// (see [`AgentConfig::lazy_start`]).
    #[must_use]
    pub fn lazy_start(mut self, lazy: bool) -> AgentConfig {
        self.lazy_start = lazy;
        self
    }

    /// Sets this agent's own SLO targets.
    #[must_use]
    pub fn slo(mut self, slo: SloTargets) -> AgentConfig {
        self.slo = Some(slo);
        self
    }

    /// Checks every value, naming the agent and the fix.
    pub fn validate(&self, agent: &str) -> Result<(), SpawnError> {
        let invalid = |what: String| {
            Err(SpawnError::Invalid {
                agent: agent.to_owned(),
                what,
            })
        };
        if self.capacity == 0 || self.capacity > MAX_CAPACITY {
            return invalid(format!(
                "mailbox capacity {} is out of range; use 1..={MAX_CAPACITY}",
                self.capacity
            ));
        }
        if self.max_batch == 0 {
            return invalid("max_batch is 0; use at least 1 (64 is a good default)".into());
        }
        let s = &self.supervision;
        if s.backoff_max < s.backoff_initial {
            return invalid(format!(
                "backoff_max {:?} is below backoff_initial {:?}; raise backoff_max",
                s.backoff_max, s.backoff_initial
            ));
        }
        if s.policy != RestartPolicy::Never && s.window.is_zero() {
            return invalid("restart window is 0; use a positive window such as 60s".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_capacity_is_refused_with_a_fix() {
        let err = AgentConfig::default()
            .capacity(0)
            .validate("orders")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("orders") && text.contains("capacity 0") && text.contains("1..="),
            "{text}"
        );
    }

    #[test]
    fn zero_batch_is_refused() {
        let err = AgentConfig::default()
            .max_batch(0)
            .validate("a")
            .unwrap_err();
        assert!(err.to_string().contains("max_batch"));
    }

    #[test]
    fn inverted_backoff_is_refused() {
        let s = Supervision {
            backoff_max: Duration::from_millis(1),
            ..Supervision::default()
        };
        assert!(AgentConfig::default().supervision(s).validate("a").is_err());
        assert!(AgentConfig::default().validate("a").is_ok());
    }
}
