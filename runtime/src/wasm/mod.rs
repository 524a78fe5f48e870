//! WASM agents: components implementing the `switchyard:agent/agent@0.2.0`
//! world (`agents/sdk/wit/agent.wit`), run by wasmtime next to native agents.
//!
//! ```text
//!  WasmAgentKind::load(path, limits)          one per component version
//!    read ─► refuse non-WASM / core modules ─► compile once (cache by content)
//!    ─► link `host` + trap stubs ─► InstancePre ─► probe init ─► Arc<Kind>
//!  rt.spawn(name, cfg, kind.factory())        any number of agents / pools
//!    WasmAgent: Store per instance (memory cap, epoch CPU deadline)
//!    handle_batch ─► guest handle-batch ─► replies / publishes / asks
//! ```
//!
//! ## Contracts
//! - **Ownership**: one `Engine` per process ([`engine`]), one `InstancePre`
//!   per kind version, one `Store` per agent instance (owned by its task).
//!   Key-value state belongs to the kind, per agent name.
//! - **Backpressure**: `send` never waits (`try_tell`: a full mailbox is the
//!   guest's `full` error); publishes and asks queue per call up to
//!   `max_outbox` and are carried out after the call, waiting like any sender.
//! - **Ordering**: as for native agents. A guest's publishes and asks leave
//!   after the call, so after its sends of the same call.
//! - **Failure**: a trap, a blown memory cap or CPU deadline fails the
//!   instance: the message is dead-lettered (`failed`, detail starting with
//!   the [`FailureKind`] label), the supervisor restarts the instance, other
//!   agents are untouched.
//! - **Hot reload**: [`WasmAgentKind::reload`] validates the new component,
//!   then swaps it; each instance re-instantiates at its next batch boundary.
//!   Nothing queued is lost.
//! - **Capabilities**: only the `host` interface; the wall clock if granted.
//!
//! See `docs/wasm-agents.md`.

mod agent;
pub mod authoring;
mod bindings;
mod cache;
pub mod engine;
mod error;
mod host;
mod kind;
mod kv;
mod limits;

pub use agent::WasmAgent;
pub use cache::{DiskCacheStats, disk_cache, disk_cache_stats, set_disk_cache};
pub use error::{FailureKind, WasmError};
pub use kind::{WORLD, WasmAgentKind};
pub use kv::KvStore;
pub use limits::{
    Capabilities, DEFAULT_CPU_PER_MESSAGE, DEFAULT_MAX_OUTBOX, DEFAULT_MEMORY_BYTES, KvLimits,
    MAX_KV_KEY, MAX_MEMORY_BYTES, WasmLimits,
};
