//! The process-wide engine, its epoch ticker and the compiled-component cache.
//!
//! **Ownership.** One [`wasmtime::Engine`] per process, created on first use
//! and never dropped; a detached ticker thread advances its epoch every
//! [`EPOCH_TICK`] (CPU deadlines are counted in ticks). Compiled components
//! are cached by content (FNV-1a of the bytes, confirmed by comparing the
//! bytes), so loading the same file twice compiles it once; with
//! [`crate::wasm::set_disk_cache`] compilations also survive restarts
//! (see `cache.rs`).
//!
//! **Profiling.** With `SWITCHYARD_WASM_PERFMAP=1` in the environment the
//! engine writes `/tmp/perf-<pid>.map`, so `perf report` names the guests'
//! JIT-compiled functions instead of showing `[JIT] tid` addresses.
//!
//! **Backpressure.** The cache holds at most [`MAX_CACHED_COMPONENTS`]; past
//! that the oldest entry is dropped (kinds keep their own handle to what they
//! use). The pooling allocator is sized for [`MAX_INSTANCES`] live instances;
//! an instantiation beyond that fails, and the agent fails with it.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, ProfilingStrategy,
};

use crate::envelope::fnv1a;
use crate::wasm::cache;
use crate::wasm::error::WasmError;
use crate::wasm::limits::MAX_MEMORY_BYTES;

/// Set to `1` to write a perf map of JIT-compiled guest code (see the module docs).
pub const PERFMAP_ENV: &str = "SWITCHYARD_WASM_PERFMAP";
/// Epoch granularity: the unit of the CPU deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Live component instances the pooling allocator has slots for (the
/// issue's target is 10,000 live agents, plus room for hot-reload overlap).
pub const MAX_INSTANCES: u32 = 12_000;
/// Compiled components kept in memory.
pub const MAX_CACHED_COMPONENTS: usize = 64;
/// Core instances per component: a Rust guest has its module plus the
/// adapter and shim modules that wit-component adds.
const CORE_INSTANCES_PER_COMPONENT: u32 = 8;
/// Memories and tables per component (module plus adapter).
const MEMORIES_PER_COMPONENT: u32 = 2;
const TABLES_PER_COMPONENT: u32 = 4;
/// Bytes of a linear memory reset in place (memset) when its slot is freed:
/// a small guest's whole working set (the scripted echo touches one page).
const KEEP_RESIDENT_MEMORY: usize = 64 << 10;
/// Bytes of a table reset in place when its slot is freed.
const KEEP_RESIDENT_TABLE: usize = 16 << 10;
/// Slots whose remaining pages are decommitted with one batch of madvise
/// calls, amortising the TLB shootdown.
const DECOMMIT_BATCH: usize = 16;
/// Guard region after each linear memory: small, since memories are capped
/// well below 4 GiB and bounds are checked explicitly.
const MEMORY_GUARD: u64 = 2 << 20;

/// One compiled component, keyed by its bytes.
struct CacheEntry {
    hash: u64,
    bytes: Arc<[u8]>,
    component: Component,
}

/// The engine and the cache, shared by every kind in the process.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    cache: Mutex<VecDeque<CacheEntry>>,
    /// Whether the pooling allocator is in use (false: it could not reserve
    /// its address space and the engine fell back to on-demand allocation).
    pub(crate) pooling: bool,
}

fn config(pooling: bool) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true);
    cfg.epoch_interruption(true);
    // On a trap, keep handles to the store's memories and instances (no
    // copy) so the host can read the guest's batch cursor
    // (docs/decisions/0007-wasm-cursor-in-guest-memory.md). Costs nothing
    // until a trap.
    cfg.coredump_on_trap(true);
    if std::env::var_os(PERFMAP_ENV).is_some_and(|v| v == "1") {
        cfg.profiler(ProfilingStrategy::PerfMap);
    }
    cfg.memory_reservation(MAX_MEMORY_BYTES as u64);
    cfg.memory_guard_size(MEMORY_GUARD);
    cfg.memory_reservation_for_growth(0);
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_component_instances(MAX_INSTANCES);
        pool.total_core_instances(MAX_INSTANCES * CORE_INSTANCES_PER_COMPONENT);
        pool.total_memories(MAX_INSTANCES * MEMORIES_PER_COMPONENT);
        pool.total_tables(MAX_INSTANCES * TABLES_PER_COMPONENT);
        pool.max_core_instances_per_component(CORE_INSTANCES_PER_COMPONENT);
        pool.max_memories_per_component(MEMORIES_PER_COMPONENT);
        pool.max_tables_per_component(TABLES_PER_COMPONENT);
        pool.max_memory_size(MAX_MEMORY_BYTES);
        // Reset the first pages of a freed slot with memset instead of
        // madvise: no unmap, TLB shootdown and page faults on reuse
        // (docs/decisions/0004-wasm-instance-reuse.md).
        pool.linear_memory_keep_resident(KEEP_RESIDENT_MEMORY);
        pool.table_keep_resident(KEEP_RESIDENT_TABLE);
        pool.decommit_batch_size(DECOMMIT_BATCH);
        cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    cfg
}

/// The shared engine, created (with its ticker) on first use.
pub(crate) fn shared() -> Result<&'static Shared, WasmError> {
    static SHARED: OnceLock<Result<Shared, String>> = OnceLock::new();
    let shared = SHARED.get_or_init(|| {
        let (engine, pooling) = match Engine::new(&config(true)) {
            Ok(e) => (e, true),
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable; WASM instances use on-demand allocation");
                (Engine::new(&config(false)).map_err(|e| format!("{e:#}"))?, false)
            }
        };
        let ticker = engine.weak();
        std::thread::Builder::new()
            .name("switchyard-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker thread: {e}"))?;
        Ok(Shared { engine, cache: Mutex::new(VecDeque::new()), pooling })
    });
    shared.as_ref().map_err(|e| WasmError::Engine(e.clone()))
}

impl Shared {
    /// Compiles `bytes` (a component) or returns the cached compilation.
    pub(crate) fn compile(&self, path: &str, bytes: &[u8]) -> Result<Component, WasmError> {
        let hash = fnv1a(bytes);
        let hit = |c: &VecDeque<CacheEntry>| {
            c.iter()
                .find(|e| e.hash == hash && *e.bytes == *bytes)
                .map(|e| e.component.clone())
        };
        if let Some(c) = hit(&self.cache.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(c);
        }
        // Compile (or read the disk cache) outside the lock: it takes
        // milliseconds to seconds.
        let entry = cache::entry(&self.engine, bytes);
        let component = match entry.as_ref().and_then(|e| cache::load(&self.engine, e)) {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, bytes).map_err(|e| WasmError::Invalid {
                    path: path.to_owned(),
                    detail: format!("{e:#}"),
                })?;
                if let Some(entry) = &entry {
                    cache::store(entry, &c);
                }
                c
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if hit(&cache).is_none() {
            if cache.len() == MAX_CACHED_COMPONENTS {
                cache.pop_front();
            }
            cache.push_back(CacheEntry {
                hash,
                bytes: Arc::from(bytes),
                component: component.clone(),
            });
        }
        Ok(component)
    }
}

/// Empties the in-memory compile cache (kinds keep the components they use).
/// Releases memory after many reloads; the next load of a component reads
/// the disk cache, if on, or compiles.
pub fn forget_compiled() {
    if let Ok(shared) = shared() {
        shared
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

/// Whether instances come from the pooling allocator (false when it could
/// not reserve its address space and the engine fell back to on-demand).
pub fn pooling_enabled() -> bool {
    shared().is_ok_and(|s| s.pooling)
}

/// Ticks in `cpu` (rounded up), plus one for the tick already under way.
pub(crate) fn deadline_ticks(cpu: Duration, messages: usize) -> u64 {
    let per = cpu.as_nanos().div_ceil(EPOCH_TICK.as_nanos()).max(1);
    u64::try_from(per.saturating_mul(messages.max(1) as u128))
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_scale_with_the_batch() {
        assert_eq!(deadline_ticks(Duration::from_millis(10), 1), 11);
        assert_eq!(deadline_ticks(Duration::from_millis(10), 4), 41);
        assert_eq!(deadline_ticks(Duration::from_micros(10), 1), 2);
    }

    #[test]
    fn the_engine_starts_and_caches_by_content() {
        let shared = shared().expect("engine");
        let empty_component = b"\0asm\x0d\0\x01\0";
        let a = shared.compile("a", empty_component).expect("compiles");
        let b = shared.compile("b", empty_component).expect("compiles");
        // Same compilation: same component type identity.
        assert_eq!(
            a.component_type().exports(&shared.engine).count(),
            b.component_type().exports(&shared.engine).count()
        );
        let cache = shared.cache.lock().unwrap();
        assert_eq!(
            cache
                .iter()
                .filter(|e| *e.bytes == empty_component[..])
                .count(),
            1
        );
    }
}
