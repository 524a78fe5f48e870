//! # switchyard-service
//!
//! Switchyard as a network service: what `switchyard serve` runs.
//!
//! ```text
//!  config/switchyard.toml ─► Config ─(overrides)─► ResolvedConfig ─► Server::bind
//!                                                                     │
//!   TCP clients ── binary protocol (switchyard-client) ──► tcp ──┐    │
//!   curl / wrk ─── HTTP JSON ingress + admin API ─────────► http ┼──► Runtime + agents
//!                                                                │
//!   shutdown future ─► drain: stop accepting, finish requests, Runtime::shutdown(grace), report
//! ```
//!
//! - [`config`]: the TOML file, overrides and validation.
//! - [`Server`] / [`run`]: listeners, drain and the [`ServiceReport`].
//! - The wire protocol and the Rust client live in `switchyard-client`, so
//!   senders do not compile the server; see `docs/protocol.md`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use switchyard_service::{Server, config::Config};
//! let config = Config::embedded()?.validate()?;
//! let server = Server::bind(config).await?;
//! let report = server.run(async { let _ = tokio::signal::ctrl_c().await; }).await;
//! println!("{report}");
//! # Ok(()) }
//! ```

pub mod agents;
mod auth;
pub mod config;
mod config_resolve;
mod convert;
mod http;
mod http_admin;
mod server;
mod tcp;
mod tcp_connection;

pub use server::{Server, ServiceError, ServiceReport, ServiceStats, run};
