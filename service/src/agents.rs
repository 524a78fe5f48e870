//! Starting configured agents on a runtime, the table of their plans that
//! the admin API lists (kind, pool, SLO targets), and the loaded WASM kinds
//! that deploys and hot reloads work on.
//!
//! Only built-in native kinds and WASM components can be started: the service
//! never loads native code from a path or a request. A WASM component is
//! validated (world, exports, a probe of `init`) before anything is spawned,
//! so a bad component changes nothing that is running.
//!
//! **Blocking.** Loading and reloading compile the component (milliseconds
//! to seconds, or a read of the disk cache): call [`Plans::load_wasm`] and
//! [`Plans::reload_wasm`] from `spawn_blocking`, not from an async handler.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use switchyard_examples::{Counter, Echo, FanOut};
use switchyard_runtime::wasm::{WasmAgentKind, WasmError};
use switchyard_runtime::{Runtime, SpawnError};

use crate::config::{AgentPlan, Builtin, ResolvedConfig, SourceKind};

/// Whether this build can start `kind = "wasm"` agents.
pub const WASM_SUPPORTED: bool = true;

/// Applies the service-wide WASM settings (`[wasm] cache_dir`). A cache
/// directory that cannot be created turns the cache off with a warning: it
/// is an optimisation, not a reason to refuse to start.
pub fn configure_wasm(config: &ResolvedConfig) {
    if let Err(e) = switchyard_runtime::wasm::set_disk_cache(config.wasm_cache_dir.clone()) {
        tracing::warn!(error = %e, "WASM compile cache off");
        let _ = switchyard_runtime::wasm::set_disk_cache(None);
    }
}

/// Starts a native `plan` on `rt` (a pool when `pool_size > 1`). WASM plans
/// go through [`Plans::start`], which loads the component first.
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
                "{} is a WASM component: load it with Plans::load_wasm first",
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

/// A deployed WASM kind.
struct Deployed {
    kind: Arc<WasmAgentKind>,
    /// The file it was loaded from; `None` when uploaded as bytes.
    path: Option<PathBuf>,
}

/// Where a hot reload takes the new version from.
#[derive(Debug)]
pub enum ReloadSource {
    /// The file the agent was deployed from, read again.
    Same,
    /// Another file.
    Path(PathBuf),
    /// Uploaded component bytes.
    Bytes(Vec<u8>),
}

/// Why a WASM deploy or reload was refused.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The component was refused (names the file and what is wrong).
    #[error(transparent)]
    Wasm(#[from] WasmError),
    /// The plan is not a WASM plan, or a reload has nothing to read.
    #[error("{0}")]
    Invalid(String),
}

/// The plans of the agents this service started, by name, for the admin API,
/// and the WASM kinds behind the WASM ones.
#[derive(Clone, Default)]
pub struct Plans {
    inner: Arc<Mutex<BTreeMap<String, AgentPlan>>>,
    wasm: Arc<Mutex<BTreeMap<String, Deployed>>>,
}

impl std::fmt::Debug for Plans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plans")
            .field("agents", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl Plans {
    /// Starts `plan` and records it; a WASM plan's component is loaded (and
    /// compiled: blocking) first.
    pub fn start(&self, rt: &Runtime, plan: AgentPlan) -> Result<(), SpawnError> {
        if matches!(plan.source, SourceKind::Wasm { .. }) {
            let kind = Plans::load_wasm(&plan, None).map_err(|e| SpawnError::Invalid {
                agent: plan.name.clone(),
                what: e.to_string(),
            })?;
            return self.start_wasm(rt, plan, kind);
        }
        start(rt, &plan)?;
        self.lock().insert(plan.name.clone(), plan);
        Ok(())
    }

    /// Loads the component of a WASM `plan` from `bytes` (an upload) or its
    /// path, validating it against the agent world and probing `init` with
    /// the plan's limits. Blocking; nothing is spawned.
    pub fn load_wasm(
        plan: &AgentPlan,
        bytes: Option<&[u8]>,
    ) -> Result<Arc<WasmAgentKind>, DeployError> {
        let SourceKind::Wasm { path } = &plan.source else {
            return Err(DeployError::Invalid(format!(
                "{} is not a WASM agent",
                plan.name
            )));
        };
        let limits = plan.wasm.clone().unwrap_or_default();
        Ok(match bytes {
            Some(b) => WasmAgentKind::from_bytes(&path.display().to_string(), b, limits)?,
            None => WasmAgentKind::load(path, limits)?,
        })
    }

    /// Spawns a WASM plan whose component [`Plans::load_wasm`] loaded.
    /// `plan.source`'s path is remembered for reloads unless it was an
    /// upload (see [`upload_label`]).
    pub fn start_wasm(
        &self,
        rt: &Runtime,
        plan: AgentPlan,
        kind: Arc<WasmAgentKind>,
    ) -> Result<(), SpawnError> {
        let path = match &plan.source {
            SourceKind::Wasm { path } if !is_upload(path) => Some(path.clone()),
            _ => None,
        };
        spawn(rt, &plan, kind.factory())?;
        self.wasm_lock()
            .insert(plan.name.clone(), Deployed { kind, path });
        self.lock().insert(plan.name.clone(), plan);
        Ok(())
    }

    /// Hot-reloads the WASM agent `name` (blocking: compiles). `Ok(None)`:
    /// no WASM agent has that name. `Ok(Some(generation))`: every instance
    /// switches at its next batch; nothing queued is lost. On error nothing
    /// changes.
    pub fn reload_wasm(
        &self,
        name: &str,
        source: ReloadSource,
    ) -> Result<Option<u64>, DeployError> {
        let Some((kind, path)) = self
            .wasm_lock()
            .get(name)
            .map(|d| (d.kind.clone(), d.path.clone()))
        else {
            return Ok(None);
        };
        let generation = match source {
            ReloadSource::Bytes(b) => {
                kind.reload_bytes(&upload_label(name).display().to_string(), &b)?
            }
            ReloadSource::Path(p) => {
                let g = kind.reload(&p)?;
                if let Some(d) = self.wasm_lock().get_mut(name) {
                    d.path = Some(p);
                }
                g
            }
            ReloadSource::Same => match path {
                Some(p) => kind.reload(&p)?,
                None => {
                    return Err(DeployError::Invalid(format!(
                        "{name} was uploaded, so there is no file to read again; send the new component \
                         as the body or {{\"path\": \"...\"}}"
                    )));
                }
            },
        };
        Ok(Some(generation))
    }

    /// Whether `name` is a WASM agent this service deployed.
    pub fn is_wasm(&self, name: &str) -> bool {
        self.wasm_lock().contains_key(name)
    }

    /// Forgets a removed agent.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
        self.wasm_lock().remove(name);
    }

    /// The plan of `name`, if this service started it.
    pub fn get(&self, name: &str) -> Option<AgentPlan> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, AgentPlan>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wasm_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Deployed>> {
        self.wasm.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The pseudo-path an uploaded component of agent `name` is known by (in
/// errors and `GET /v1/agents`): `upload:NAME.wasm`.
pub fn upload_label(name: &str) -> PathBuf {
    PathBuf::from(format!("upload:{name}.wasm"))
}

fn is_upload(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("upload:"))
}
