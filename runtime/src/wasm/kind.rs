//! A WASM agent kind: one validated component, its `InstancePre`, its limits
//! and its agents' key-value state. Instances are made from it by
//! [`WasmAgentKind::instantiate`]; [`WasmAgentKind::reload`] swaps the
//! component for a new version while agents keep running.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use wasmtime::Store;
use wasmtime::component::{Component, Linker};

use crate::wasm::agent::WasmAgent;
use crate::wasm::bindings::{Agent as AgentWorld, AgentPre};
use crate::wasm::engine::{self, deadline_ticks};
use crate::wasm::error::{FailureKind, WasmError, classify};
use crate::wasm::host::{CallState, HostState, Limiter};
use crate::wasm::kv::KvStore;
use crate::wasm::limits::WasmLimits;

/// The world every agent component must implement.
pub const WORLD: &str = "switchyard:agent/agent@0.2.0";

/// Name of the throwaway agent a component is probed as at load.
const PROBE_AGENT: &str = "(load probe)";

/// One loaded version of the component.
pub(crate) struct Version {
    pub(crate) pre: AgentPre<HostState>,
    pub(crate) generation: u64,
    pub(crate) source: Arc<str>,
}

/// A loaded, validated WASM agent component and the limits of its instances.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use switchyard_runtime::{AgentConfig, Runtime};
/// use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits};
///
/// let rt = Runtime::new();
/// let kind = WasmAgentKind::load("echo.wasm", WasmLimits::default())?;
/// rt.spawn("echo", AgentConfig::default(), kind.factory())?;
/// # Ok(()) }
/// ```
pub struct WasmAgentKind {
    current: RwLock<Arc<Version>>,
    generation: AtomicU64,
    reload: Mutex<()>,
    pub(crate) limits: WasmLimits,
    kv: KvStore,
}

impl std::fmt::Debug for WasmAgentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmAgentKind")
            .field("source", &self.current().source)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

/// Reads a file, refusing what cannot be a component before compiling it.
fn read(path: &Path) -> Result<(String, Vec<u8>), WasmError> {
    let label = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| WasmError::Read {
        path: label.clone(),
        detail: e.to_string(),
    })?;
    Ok((label, bytes))
}

/// Compiles and validates `bytes` against the world, then probes `init`.
fn prepare(
    label: &str,
    bytes: &[u8],
    limits: &WasmLimits,
    generation: u64,
) -> Result<Version, WasmError> {
    limits.validate(label)?;
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(WasmError::NotWasm {
            path: label.to_owned(),
        });
    }
    // Core modules have version 1 at bytes 4..8; components have layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(WasmError::NotComponent {
            path: label.to_owned(),
        });
    }
    let shared = engine::shared()?;
    let component = shared.compile(label, bytes)?;
    let wrong = |detail: String| WasmError::WrongWorld {
        path: label.to_owned(),
        world: WORLD,
        detail,
    };
    let mut linker: Linker<HostState> = Linker::new(&shared.engine);
    AgentWorld::add_to_linker::<_, wasmtime::component::HasSelf<_>>(&mut linker, |s| s)
        .map_err(|e| WasmError::Engine(format!("{e:#}")))?;
    // WASI (or other) imports a toolchain adds are linked to stubs that trap
    // if called: the agent gets no capability it was not granted.
    linker
        .define_unknown_imports_as_traps(&component)
        .map_err(|e| wrong(format!("{e:#}")))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| wrong(format!("{e:#}")))?;
    let pre = AgentPre::new(pre).map_err(|e| wrong(format!("{e:#}")))?;
    let version = Version {
        pre,
        generation,
        source: Arc::from(label),
    };
    probe(&version, limits)?;
    Ok(version)
}

/// Instantiates a throwaway instance and runs `init`, so that a component
/// that cannot start is refused at deploy time, not on its first message.
fn probe(version: &Version, limits: &WasmLimits) -> Result<(), WasmError> {
    let scratch = KvStore::default();
    let mut store = new_store(
        version,
        limits,
        HostState {
            agent: Arc::from(PROBE_AGENT),
            id: None,
            rt: None,
            limiter: Limiter {
                memory_bytes: limits.memory_bytes,
                memory_denied: false,
            },
            kv: scratch.agent(PROBE_AGENT, limits.kv),
            caps: limits.capabilities.clone(),
            max_outbox: limits.max_outbox,
            call: CallState::default(),
        },
    )?;
    let init = |kind, detail| WasmError::Init {
        path: version.source.to_string(),
        kind,
        detail,
    };
    let agent = version.pre.instantiate(&mut store).map_err(|e| {
        let (kind, detail) = classify(&e, store.data().limiter.memory_denied);
        init(kind, detail)
    })?;
    match agent.call_init(&mut store, &limits.config) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(init(FailureKind::Error, e.message)),
        Err(e) => {
            let (kind, detail) = classify(&e, store.data().limiter.memory_denied);
            Err(init(kind, detail))
        }
    }
}

/// A store with the kind's limits.
pub(crate) fn new_store(
    _version: &Version,
    limits: &WasmLimits,
    state: HostState,
) -> Result<Store<HostState>, WasmError> {
    let shared = engine::shared()?;
    let mut store = Store::new(&shared.engine, state);
    store.limiter(|s| &mut s.limiter);
    store.set_epoch_deadline(deadline_ticks(limits.cpu_per_message, 1));
    Ok(store)
}

impl WasmAgentKind {
    /// Loads the component at `path`: reads, compiles (once per content),
    /// checks it implements [`WORLD`] and runs its `init` with
    /// `limits.config` in a throwaway instance. Every refusal names the file.
    pub fn load(
        path: impl AsRef<Path>,
        limits: WasmLimits,
    ) -> Result<Arc<WasmAgentKind>, WasmError> {
        let (label, bytes) = read(path.as_ref())?;
        WasmAgentKind::from_bytes(&label, &bytes, limits)
    }

    /// As [`WasmAgentKind::load`], from bytes; `label` names them in errors.
    pub fn from_bytes(
        label: &str,
        bytes: &[u8],
        limits: WasmLimits,
    ) -> Result<Arc<WasmAgentKind>, WasmError> {
        let version = prepare(label, bytes, &limits, 1)?;
        Ok(Arc::new(WasmAgentKind {
            current: RwLock::new(Arc::new(version)),
            generation: AtomicU64::new(1),
            reload: Mutex::new(()),
            limits,
            kv: KvStore::default(),
        }))
    }

    /// Replaces the component with the one at `path` (hot reload). The new
    /// version is validated and probed first; on error nothing changes.
    /// Running instances switch at their next batch (re-running `init`);
    /// queued messages stay queued and are handled by the new version.
    /// Returns the new generation.
    pub fn reload(&self, path: impl AsRef<Path>) -> Result<u64, WasmError> {
        let (label, bytes) = read(path.as_ref())?;
        self.reload_bytes(&label, &bytes)
    }

    /// As [`WasmAgentKind::reload`], from bytes.
    pub fn reload_bytes(&self, label: &str, bytes: &[u8]) -> Result<u64, WasmError> {
        // One reload at a time; compile and probe without blocking readers.
        let _serial = self.reload.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.generation() + 1;
        let version = prepare(label, bytes, &self.limits, generation)?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(version);
        self.generation.store(generation, Ordering::Release);
        tracing::info!(source = label, generation, "WASM agent kind reloaded");
        Ok(generation)
    }

    /// Instantiates a throwaway instance of the current version and runs its
    /// `init`, as load does: a health check, and the instantiation cost.
    pub fn probe(&self) -> Result<(), WasmError> {
        probe(&self.current(), &self.limits)
    }

    /// The current generation (1 at load, +1 per reload).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn current(&self) -> Arc<Version> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The limits every instance runs with.
    pub fn limits(&self) -> &WasmLimits {
        &self.limits
    }

    /// The key-value state of this kind's agents.
    pub fn kv(&self) -> &KvStore {
        &self.kv
    }

    /// A new, not yet instantiated agent; it instantiates in `on_start`.
    pub fn instantiate(self: &Arc<Self>) -> WasmAgent {
        WasmAgent::new(self.clone())
    }

    /// A factory for [`crate::Runtime::spawn`] and [`crate::Runtime::spawn_pool`].
    pub fn factory(self: &Arc<Self>) -> impl Fn() -> WasmAgent + Send + Sync + 'static {
        let kind = self.clone();
        move || kind.instantiate()
    }

    /// The names of the component's exports, for `switchyard agent check`.
    pub fn exports(&self) -> Vec<String> {
        let Ok(shared) = engine::shared() else {
            return Vec::new();
        };
        let v = self.current();
        let component: &Component = v.pre.instance_pre().component();
        component
            .component_type()
            .exports(&shared.engine)
            .map(|(n, _)| n.to_owned())
            .collect()
    }

    /// The names of the component's imports (those outside the `host`
    /// interface are linked to trapping stubs).
    pub fn imports(&self) -> Vec<String> {
        let Ok(shared) = engine::shared() else {
            return Vec::new();
        };
        let v = self.current();
        let component: &Component = v.pre.instance_pre().component();
        component
            .component_type()
            .imports(&shared.engine)
            .map(|(n, _)| n.to_owned())
            .collect()
    }
}
