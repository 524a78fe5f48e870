//! # switchyard-client
//!
//! Switchyard's binary wire protocol and a Rust client for it.
//!
//! - [`wire`]: the frames (`ClientFrame`, `ServerFrame`) and their fields.
//! - [`codec`]: length-delimited bincode framing, shared by client and server.
//! - [`Client`]: a pool of multiplexed connections with size-or-linger
//!   batching, reconnect with backoff, `tell`, `tell_batch` and `ask`.
//!
//! The protocol lives here rather than in the service crate so that programs
//! that only send messages (the load tool, users' services) do not compile the
//! server, HTTP stack and runtime. The byte-level specification, for clients in
//! other languages, is `docs/protocol.md`.

pub mod client;
pub mod codec;
mod connection;
pub mod wire;

pub use client::{Client, ClientConfig, ClientError, ClientStats};
pub use wire::{ErrorCode, Message, PROTOCOL_VERSION};
