//! # switchyard-sdk
//!
//! Write a Switchyard agent in Rust and run it as a sandboxed WASM component.
//! Implement [`Agent`], export it with [`export_agent!`], build for
//! `wasm32-wasip2` (`switchyard agent build PATH`):
//!
//! ```ignore
//! use switchyard_sdk::{Agent, Envelope, Error, host};
//!
//! struct Echo;
//!
//! impl Agent for Echo {
//!     fn init(_config: &str) -> Result<Self, Error> {
//!         Ok(Echo)
//!     }
//!     fn handle(&mut self, msg: &Envelope) -> Result<(), Error> {
//!         host::reply(msg, &msg.payload)?;
//!         Ok(())
//!     }
//! }
//!
//! switchyard_sdk::export_agent!(Echo);
//! ```
//!
//! ## Contract
//! The world is `switchyard:agent/agent@0.2.0` (`wit/agent.wit`, shipped with
//! this crate), plus the exported core global `switchyard-cursor` (the
//! address of the batch cursor the host reads after a trap). The host calls `init` once per instance, then hands over the
//! queued messages in batches. An `Err` from a handler dead-letters that one
//! message; a panic traps the instance (the message is logged first), which
//! dead-letters the message and restarts the instance with fresh state: keep
//! what must survive in the key-value store ([`host::kv_set`]).
//!
//! A message's [`Payload`] is a view into the batch the host copied in
//! (no allocation or copy per message); an agent that keeps a payload past
//! its handler keeps that batch alive, so it should keep
//! `msg.payload.to_vec()` instead.
//!
//! The agent can only do what `host` offers: no files, sockets, environment
//! or clock beyond what its configuration grants. Use [`host::log`] (or the
//! [`info!`]-style macros), not `println!`: standard output is not connected.

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "agent",
        pub_export_macro: true,
        export_macro_name: "__export_agent_world",
        default_bindings_module: "::switchyard_sdk::bindings",
    });
}

pub mod host;

pub use bindings::switchyard::agent::types::{Kind, KvError, Level, ReplyError, SendError};

mod envelope;

pub use envelope::{Envelope, Payload};

/// A handler failure: the message is dead-lettered with this text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    /// An error with this message.
    pub fn new(msg: impl Into<String>) -> Error {
        Error(msg.into())
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Error {
        Error(s.to_owned())
    }
}

impl From<String> for Error {
    fn from(s: String) -> Error {
        Error(s)
    }
}

impl From<SendError> for Error {
    fn from(e: SendError) -> Error {
        Error(format!("send refused: {e:?}"))
    }
}

impl From<ReplyError> for Error {
    fn from(e: ReplyError) -> Error {
        Error(format!("reply refused: {e:?}"))
    }
}

impl From<KvError> for Error {
    fn from(e: KvError) -> Error {
        Error(format!("key-value write refused: {e:?}"))
    }
}

/// A Switchyard agent. One value lives per instance; the host builds it with
/// [`Agent::init`] at start and after every restart or hot reload.
pub trait Agent: Sized + 'static {
    /// Builds the agent from the configuration text its operator gave it.
    fn init(config: &str) -> Result<Self, Error>;

    /// Handles one message. It is borrowed, as in the native `Agent`: a
    /// batch's messages stay where the SDK decoded them (moving an 80-byte
    /// value is a `memory.copy`, which wasmtime runs as a call into the host);
    /// clone it, or `msg.payload.to_vec()`, to keep something past the call.
    fn handle(&mut self, msg: &Envelope) -> Result<(), Error>;

    /// Handles a batch. The default calls [`Agent::handle`] for each message
    /// and marks its index with [`host::progress`] (a store into guest
    /// memory), so that a trap dead-letters only the message being handled.
    /// An override must call [`host::progress`] too.
    fn handle_batch(&mut self, batch: &[Envelope]) -> Result<(), (u32, Error)> {
        for (i, msg) in batch.iter().enumerate() {
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            host::progress(i);
            self.handle(msg).map_err(|e| (i, e))?;
        }
        Ok(())
    }
}

/// Exports an [`Agent`] implementation as the component's `agent` world.
/// Use it once per crate, at the top level.
#[macro_export]
macro_rules! export_agent {
    ($agent:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$agent>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct Export;
            impl $crate::bindings::Guest for Export {
                fn init(
                    config: ::std::string::String,
                ) -> ::std::result::Result<(), $crate::__private::AgentError> {
                    $crate::__private::install_panic_hook();
                    let agent = <$agent as $crate::Agent>::init(&config)
                        .map_err($crate::__private::wire_error)?;
                    STATE.with(|s| *s.borrow_mut() = ::std::option::Option::Some(agent));
                    ::std::result::Result::Ok(())
                }
                fn handle(
                    msg: $crate::__private::WireEnvelope,
                ) -> ::std::result::Result<(), $crate::__private::AgentError> {
                    let msg = $crate::Envelope::from(msg);
                    STATE.with(|s| match s.borrow_mut().as_mut() {
                        ::std::option::Option::Some(a) => <$agent as $crate::Agent>::handle(a, &msg)
                            .map_err($crate::__private::wire_error),
                        ::std::option::Option::None => {
                            ::std::result::Result::Err($crate::__private::not_initialised())
                        }
                    })
                }
                fn handle_batch(
                    batch: ::std::vec::Vec<$crate::__private::WireEnvelope>,
                ) -> ::std::result::Result<(), (u32, $crate::__private::AgentError)> {
                    $crate::__private::run_batch::<$agent>(
                        &STATE,
                        batch.into_iter().map($crate::Envelope::from).collect(),
                    )
                }
                fn handle_packed(
                    batch: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<(), (u32, $crate::__private::AgentError)> {
                    let batch = $crate::__private::unpack(batch)
                        .map_err(|e| (0, $crate::__private::wire_error(e)))?;
                    $crate::__private::run_batch::<$agent>(&STATE, batch)
                }
            }
    $crate::bindings::__export_agent_world!(Export with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::bindings::switchyard::agent::types::AgentError;
    /// The envelope as the typed exports (`handle`, `handle-batch`) receive it.
    pub use crate::bindings::switchyard::agent::types::Envelope as WireEnvelope;

    /// The batch cursor: the index of the message being handled. Its address
    /// is exported as the core global `switchyard-cursor`; the host reads it
    /// after a trap (`wit/agent.wit`, `handle-packed`).
    #[unsafe(export_name = "switchyard-cursor")]
    pub static CURSOR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    pub fn wire_error(e: crate::Error) -> AgentError {
        AgentError { message: e.0 }
    }

    pub fn not_initialised() -> AgentError {
        AgentError {
            message: "handle called before init".to_owned(),
        }
    }

    /// Hands `batch` to the agent in `state` (its `handle_batch`).
    pub fn run_batch<A: crate::Agent>(
        state: &'static std::thread::LocalKey<std::cell::RefCell<Option<A>>>,
        batch: Vec<crate::Envelope>,
    ) -> Result<(), (u32, AgentError)> {
        state.with(|s| match s.borrow_mut().as_mut() {
            Some(a) => a.handle_batch(&batch).map_err(|(i, e)| (i, wire_error(e))),
            None => Err((0, not_initialised())),
        })
    }

    /// Decodes a packed batch (layout in `wit/agent.wit`, `handle-packed`).
    /// The payloads stay where they are: each is a view into `buf`.
    pub fn unpack(buf: Vec<u8>) -> Result<Vec<crate::Envelope>, crate::Error> {
        use crate::Kind;
        const HEADER: usize = 40;
        let bad = || crate::Error::new("malformed packed batch from the host");
        // Field reads as array conversions (plain loads): a
        // `copy_from_slice` into a local array compiles to a `memory.copy`,
        // which wasmtime runs as a call into the host.
        let u64_at = |h: &[u8; HEADER], at: usize| -> u64 {
            let mut v = 0u64;
            for (i, b) in h[at..at + 8].iter().enumerate() {
                v |= u64::from(*b) << (8 * i);
            }
            v
        };
        fn header(buf: &[u8], off: usize) -> Option<&[u8; HEADER]> {
            buf.get(off..off.checked_add(HEADER)?)?.try_into().ok()
        }
        let len_at = |h: &[u8; HEADER]| -> usize {
            u32::from_le_bytes([h[32], h[33], h[34], h[35]]) as usize
        };
        // First pass: count the records, so the batch is one allocation.
        let mut count = 0usize;
        let mut off = 0usize;
        while off < buf.len() {
            let n = len_at(header(&buf, off).ok_or_else(bad)?);
            let record = HEADER
                .checked_add(n)
                .and_then(|r| r.checked_next_multiple_of(8))
                .ok_or_else(bad)?;
            off = off.checked_add(record).ok_or_else(bad)?;
            count += 1;
        }
        let shared = std::rc::Rc::new(buf);
        let buf = &shared[..];
        let mut out = Vec::with_capacity(count);
        let mut off = 0usize;
        while off < buf.len() {
            let h = header(buf, off).ok_or_else(bad)?;
            let n = len_at(h);
            let kind = match h[36] {
                0 => Kind::Tell,
                1 => Kind::Ask,
                2 => Kind::Reply,
                3 => Kind::Publish,
                _ => return Err(bad()),
            };
            let flags = h[37];
            let start = off + HEADER;
            if buf.len() < start + n {
                return Err(bad());
            }
            out.push(crate::Envelope {
                id: u64_at(h, 0),
                kind,
                from: (flags & 1 != 0).then(|| u64_at(h, 8)),
                correlation: (flags & 2 != 0).then(|| u64_at(h, 16)),
                key: (flags & 4 != 0).then(|| u64_at(h, 24)),
                payload: crate::Payload::shared(&shared, start, start + n),
            });
            off += (HEADER + n).next_multiple_of(8);
        }
        Ok(out)
    }

    /// Panics abort the instance (a trap); log the message first, through the
    /// host, since standard error is not connected.
    pub fn install_panic_hook() {
        std::panic::set_hook(Box::new(|info| {
            crate::host::log(crate::Level::Error, &format!("agent panicked: {info}"));
        }));
    }
}
