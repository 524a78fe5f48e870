//! What an agent can ask of its host: messaging, logging, time, key-value state.
//!
//! Every function is a synchronous host call. `send` is delivered at once
//! (never waiting for room); `publish`, `ask` and `reply` are carried out when
//! the current `handle`/`handle_batch` call returns.

use crate::bindings::switchyard::agent::host as raw;
use crate::{Envelope, KvError, Level, ReplyError, SendError};

/// Sends a fire-and-forget message to the agent or pool `to`.
pub fn send(to: &str, payload: &[u8]) -> Result<(), SendError> {
    raw::send(to, payload)
}

/// Publishes to every subscriber of `topic` once the current call returns.
pub fn publish(topic: &str, payload: &[u8]) -> Result<(), SendError> {
    raw::publish(topic, payload)
}

/// Asks `to`; the answer arrives later as an envelope of kind
/// [`crate::Kind::Reply`] whose `correlation` is the returned id.
pub fn ask(to: &str, payload: &[u8], timeout_ms: u32) -> Result<u64, SendError> {
    raw::ask(to, payload, timeout_ms)
}

/// Answers `request` (an ask being handled).
pub fn reply(request: &Envelope, payload: &[u8]) -> Result<(), ReplyError> {
    raw::reply(request.id, payload)
}

/// Writes to the host's log, tagged with this agent's name.
pub fn log(level: Level, message: &str) {
    raw::log(level, message)
}

/// Milliseconds since the Unix epoch, when the agent's config grants the clock.
pub fn now_ms() -> Option<u64> {
    raw::now()
}

/// The value of the environment variable `name`, when the agent's config
/// grants it (read by the host at deploy); none otherwise.
pub fn env(name: &str) -> Option<String> {
    raw::env(name)
}

/// Reads `key` from this agent's key-value store.
pub fn kv_get(key: &str) -> Option<Vec<u8>> {
    raw::kv_get(key)
}

/// Writes `key`; the value survives restarts and hot reloads of the agent.
pub fn kv_set(key: &str, value: &[u8]) -> Result<(), KvError> {
    raw::kv_set(key, value)
}

/// Deletes `key`; returns whether it existed.
pub fn kv_delete(key: &str) -> bool {
    raw::kv_delete(key)
}

/// Marks which message of a batch is being handled (see
/// [`crate::Agent::handle_batch`]), so that a trap dead-letters that one.
/// A plain store into the cursor the host reads after a trap (no host call);
/// the `host.progress` import stays in the world for older guests.
#[inline]
pub fn progress(index: u32) {
    crate::__private::CURSOR.store(index, std::sync::atomic::Ordering::Relaxed);
}

/// Logs at info level with `format!` arguments.
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::host::log($crate::Level::Info, &::std::format!($($arg)*)) };
}

/// Logs at warn level with `format!` arguments.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::host::log($crate::Level::Warn, &::std::format!($($arg)*)) };
}
