//! # switchyard-runtime
//!
//! An async message-orchestration runtime for agents. Messages ([`Envelope`])
//! are routed *in the sender's task* through a sharded registry into bounded
//! per-agent mailboxes; each agent runs as one Tokio task that takes what is
//! queued in batches and hands it to its handler.
//!
//! ```text
//!   tell / ask / publish / tell_batch
//!        │   (caller's task: resolve name ─► pick pool member ─► take permits)
//!        ▼
//!   ┌─────────┐  ┌─────────┐        bounded mailboxes (capacity in messages,
//!   │ mailbox │  │ mailbox │  ...   overflow: block | reject | drop_oldest)
//!   └────┬────┘  └────┬────┘
//!        ▼            ▼
//!    agent task   agent task        batch of up to max_batch per wake-up;
//!    (supervised) (supervised)      panics and errors dead-letter one message
//! ```
//!
//! ## Contracts
//! - **Ownership**: the runtime owns agent cells (mailbox, counters, control
//!   lane); each agent task owns its instance and batch buffer. An agent's state
//!   is only touched by its own task: no locks.
//! - **Backpressure**: every mailbox is bounded; a full one blocks, rejects
//!   (handing the message back) or sheds its oldest message, per agent.
//! - **Ordering**: FIFO from one sender to one agent. No order across agents
//!   or pool members.
//! - **Shutdown**: [`Runtime::shutdown`] closes admission, drains within a
//!   grace period and reports; every accepted message ends handled or
//!   dead-lettered with a reason ([`Accounting::balanced`]).
//!
//! See `docs/architecture.md` for the full picture.

pub mod address;
mod agent;
mod budget;
mod cell;
mod config;
mod deadletter;
mod deadline;
mod envelope;
mod error;
mod mailbox;
pub mod park;
mod payload;
mod pool;
mod registry;
mod runtime;
mod shutdown;
pub mod slo;
mod stats;
mod supervisor;
pub mod telemetry;
#[cfg(feature = "wasm")]
pub mod wasm;

pub use address::AgentId;
pub use agent::{Agent, Context};
pub use budget::SENDS_PER_YIELD;
pub use config::{AgentConfig, DEFAULT_CAPACITY, DEFAULT_MAX_BATCH, RestartPolicy, Supervision};
pub use deadletter::{DeadLetter, DeadLetterReason, DeadLetterSummary, DeadLetters};
pub use envelope::{Envelope, Headers, Kind, MAX_HEADERS, MessageId, Performative, fnv1a};
pub use error::{AgentError, AskError, NameError, ReplyError, SendError, SpawnError};
pub use mailbox::{MAX_CAPACITY, Overflow};
pub use payload::{INLINE_CAPACITY, Payload};
pub use pool::{MAX_POOL_SIZE, Strategy, jump_hash};
pub use runtime::{
    Addr, AgentInfo, AgentLatencyInfo, DEFAULT_DEAD_LETTER_CAPACITY, PublishReport, Runtime,
    RuntimeBuilder,
};
pub use shutdown::{STOP_NOW_GRACE, ShutdownReport};
pub use stats::Accounting;
pub use telemetry::TelemetryConfig;

/// The README's example, compiled and run as a doc test so it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
