//! The store data of one WASM instance and the `host` functions it imports.
//!
//! `send` goes straight to [`Runtime::try_tell`] (never waits: the guest is
//! running on the agent's task). `publish`, `ask` and `reply` are queued in
//! the [`CallState`] and carried out by the agent after the guest call
//! returns, so they can wait for room without blocking inside WASM. The queue
//! is bounded by `max_outbox`; past it the guest gets `outbox-full`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::address::AgentId;
use crate::envelope::Envelope;
use crate::error::SendError as RtSendError;
use crate::payload::Payload;
use crate::runtime::Runtime;
use crate::wasm::bindings::switchyard::agent::{host, types};
use crate::wasm::kv::AgentKv;
use crate::wasm::limits::Capabilities;

use types::{KvError, Level, ReplyError, SendError};

/// Denies memory growth past the cap and remembers that it did, so the
/// trap that usually follows is classified as a memory failure.
pub(crate) struct Limiter {
    pub(crate) memory_bytes: usize,
    pub(crate) memory_denied: bool,
}

/// Table elements an instance may grow to (function tables of Rust guests
/// are small and fixed).
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

/// What one guest call asked for that the agent carries out after it returns.
#[derive(Default)]
pub(crate) struct CallState {
    /// Ids of the asks in the call, with their index in the batch.
    pub(crate) asks: Vec<(u64, u32)>,
    /// Replies: batch index and payload.
    pub(crate) replies: Vec<(u32, Payload)>,
    pub(crate) publishes: Vec<(String, Envelope)>,
    pub(crate) out_asks: Vec<(String, Envelope, Duration)>,
    /// Batch index the guest reported last (`host.progress`).
    pub(crate) progress: u32,
}

impl CallState {
    fn queued(&self) -> usize {
        self.publishes.len() + self.out_asks.len()
    }

    /// Whether the call left nothing for the agent to carry out.
    pub(crate) fn is_empty(&self) -> bool {
        self.replies.is_empty() && self.publishes.is_empty() && self.out_asks.is_empty()
    }
}

/// The data of one store: who the instance is and what it may do.
pub(crate) struct HostState {
    pub(crate) agent: Arc<str>,
    pub(crate) id: Option<AgentId>,
    /// `None` while a component is probed at load: messaging is refused.
    pub(crate) rt: Option<Runtime>,
    pub(crate) limiter: Limiter,
    pub(crate) kv: Arc<Mutex<AgentKv>>,
    pub(crate) caps: Capabilities,
    pub(crate) max_outbox: usize,
    pub(crate) call: CallState,
}

impl HostState {
    fn message(&self, env: Envelope) -> Envelope {
        match self.id {
            Some(id) => env.with_from(id),
            None => env,
        }
    }

    fn kv(&self) -> std::sync::MutexGuard<'_, AgentKv> {
        self.kv.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn wire_send_error(e: &RtSendError<Envelope>) -> SendError {
    match e {
        RtSendError::UnknownAgent { .. } => SendError::UnknownAgent,
        RtSendError::Full { .. } | RtSendError::Timeout { .. } => SendError::Full,
        RtSendError::Closed { .. } => SendError::Closed,
    }
}

impl types::Host for HostState {}

impl host::Host for HostState {
    fn send(&mut self, to: String, payload: Vec<u8>) -> Result<(), SendError> {
        let Some(rt) = &self.rt else {
            return Err(SendError::Closed);
        };
        let env = self.message(Envelope::tell(payload));
        rt.try_tell(&to, env).map_err(|e| wire_send_error(&e))
    }

    fn publish(&mut self, topic: String, payload: Vec<u8>) -> Result<(), SendError> {
        if self.rt.is_none() {
            return Err(SendError::Closed);
        }
        if self.call.queued() >= self.max_outbox {
            return Err(SendError::OutboxFull);
        }
        let env = self.message(Envelope::publish(payload));
        self.call.publishes.push((topic, env));
        Ok(())
    }

    fn ask(&mut self, to: String, payload: Vec<u8>, timeout_ms: u32) -> Result<u64, SendError> {
        if self.rt.is_none() {
            return Err(SendError::Closed);
        }
        if self.call.queued() >= self.max_outbox {
            return Err(SendError::OutboxFull);
        }
        let env = self.message(Envelope::ask(payload));
        let id = env.id().get();
        self.call
            .out_asks
            .push((to, env, Duration::from_millis(u64::from(timeout_ms))));
        Ok(id)
    }

    fn reply(&mut self, request: u64, payload: Vec<u8>) -> Result<(), ReplyError> {
        let Some(&(_, index)) = self.call.asks.iter().find(|(id, _)| *id == request) else {
            return Err(ReplyError::NotExpected);
        };
        if self.call.replies.iter().any(|(i, _)| *i == index) {
            return Err(ReplyError::Duplicate);
        }
        self.call.replies.push((index, Payload::from(payload)));
        Ok(())
    }

    fn log(&mut self, level: Level, message: String) {
        let agent = &*self.agent;
        match level {
            Level::Trace => tracing::trace!(agent, wasm = true, "{message}"),
            Level::Debug => tracing::debug!(agent, wasm = true, "{message}"),
            Level::Info => tracing::info!(agent, wasm = true, "{message}"),
            Level::Warn => tracing::warn!(agent, wasm = true, "{message}"),
            Level::Error => tracing::error!(agent, wasm = true, "{message}"),
        }
    }

    fn now(&mut self) -> Option<u64> {
        if !self.caps.clock {
            return None;
        }
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()?
            .as_millis();
        u64::try_from(ms).ok()
    }

    fn env(&mut self, name: String) -> Option<String> {
        self.caps.env_var(&name).map(str::to_owned)
    }

    fn kv_get(&mut self, key: String) -> Option<Vec<u8>> {
        self.kv().get(&key)
    }

    fn kv_set(&mut self, key: String, value: Vec<u8>) -> Result<(), KvError> {
        self.kv().set(&key, &value)
    }

    fn kv_delete(&mut self, key: String) -> bool {
        self.kv().delete(&key)
    }

    fn progress(&mut self, index: u32) {
        self.call.progress = index;
    }
}
