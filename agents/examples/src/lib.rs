//! Example native agents for Switchyard.
//!
//! - [`Echo`]: replies to asks with the request's payload.
//! - [`Counter`]: keeps a running total; answers asks with it.
//! - [`FanOut`]: forwards every message to a fixed list of agents.
//!
//! They are small on purpose: each shows one part of the [`Agent`] API, and
//! the demo, tests and benches use them as workloads.
//!
//! [`Agent`]: switchyard_runtime::Agent

mod counter;
pub mod demo;
mod echo;
mod fanout;

pub use counter::Counter;
pub use echo::Echo;
pub use fanout::FanOut;
