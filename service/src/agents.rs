//! Starting configured agents on a runtime, and the table of their plans that
//! the admin API lists (kind, pool, SLO targets).
//!
//! Only built-in native kinds and WASM components can be started: the service
//! never loads native code from a path or a request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use switchyard_examples::{Counter, Echo, FanOut};
use switchyard_runtime::{Runtime, SpawnError};

use crate::config::{AgentPlan, Builtin, SourceKind};

/// Whether this build can start `kind = "wasm"` agents. The runtime's WASM
/// host is not available to the service yet, so WASM entries are refused at
/// config validation with a message that says so.
pub const WASM_SUPPORTED: bool = false;

/// Starts `plan` on `rt` (a pool when `pool_size > 1`).
pub fn start(rt: &Runtime, plan: &AgentPlan) -> Result<(), SpawnError> {
    match &plan.source {
        SourceKind::Native {
            builtin: Builtin::Echo,
            ..
        } => spawn(rt, plan, || Echo),
        SourceKind::Native {
            builtin: Builtin::Counter,
            ..
        } => spawn(rt, plan, Counter::default),
        SourceKind::Native {
            builtin: Builtin::FanOut,
            targets,
        } => {
            let fan = FanOut::new(targets);
            spawn(rt, plan, move || fan.clone())
        }
        SourceKind::Wasm { path } => Err(SpawnError::Invalid {
            agent: plan.name.clone(),
            what: format!(
                "{} is a WASM component, and WASM support is not built into this switchyard yet",
                path.display()
            ),
        }),
    }
}

fn spawn<A, F>(rt: &Runtime, plan: &AgentPlan, factory: F) -> Result<(), SpawnError>
where
    A: switchyard_runtime::Agent,
    F: Fn() -> A + Send + Sync + 'static,
{
    if plan.pool_size > 1 {
        rt.spawn_pool(
            &plan.name,
            plan.pool_size,
            plan.strategy,
            plan.config,
            factory,
        )
        .map(|_| ())
    } else {
        rt.spawn(&plan.name, plan.config, factory).map(|_| ())
    }
}

/// The plans of the agents this service started, by name, for the admin API.
#[derive(Clone, Debug, Default)]
pub struct Plans {
    inner: Arc<Mutex<BTreeMap<String, AgentPlan>>>,
}

impl Plans {
    /// Starts `plan` and records it.
    pub fn start(&self, rt: &Runtime, plan: AgentPlan) -> Result<(), SpawnError> {
        start(rt, &plan)?;
        self.lock().insert(plan.name.clone(), plan);
        Ok(())
    }

    /// Forgets a removed agent.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    /// The plan of `name`, if this service started it.
    pub fn get(&self, name: &str) -> Option<AgentPlan> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AgentPlan>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
