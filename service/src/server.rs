//! The service: a runtime with the configured agents behind a TCP listener and
//! an HTTP listener, stopped by a future (mini-redis `server::run` style).
//!
//! ```text
//!  Server::bind(config) ─► runtime + agents + listeners bound (ports known)
//!  Server::run(shutdown):
//!     serve TCP + HTTP ─── shutdown resolves ───► drain:
//!       1. stop token: accept loops end, readers stop, /readyz turns 503
//!       2. in-flight TCP asks and HTTP requests finish (until the grace deadline)
//!       3. Runtime::shutdown(rest of grace): mailboxes drain, leftovers dead-lettered
//!       4. ServiceReport: accepted = handled + dead-lettered by reason
//! ```
//!
//! **Shutdown.** Everything the service spawns is tracked; nothing outlives
//! `run`. A request still blocked at the grace deadline is cancelled (sends
//! are cancel safe: its message was not accepted), so accounting balances.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use switchyard_runtime::{DeadLetterReason, Runtime, ShutdownReport, SpawnError};
use thiserror::Error;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agents::Plans;
use crate::config::ResolvedConfig;

/// Why the service could not start.
#[derive(Debug, Error)]
pub enum ServiceError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr} ({which}): {source}; is another process using the port?")]
    Bind {
        /// `listen.tcp` or `listen.http`.
        which: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// A configured agent could not be started.
    #[error("cannot start agent {name:?} from {origin}: {source}")]
    Agent {
        /// The agent.
        name: String,
        /// The config's origin.
        origin: String,
        /// The cause.
        source: SpawnError,
    },
}

/// Service counters (beyond the runtime's accounting).
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Tell messages received over TCP.
    pub tcp_tells: AtomicU64,
    /// Asks received over TCP.
    pub tcp_asks: AtomicU64,
    /// HTTP requests served.
    pub http_requests: AtomicU64,
    /// Handshakes or requests refused for a bad token.
    pub auth_failures: AtomicU64,
    /// Connections closed for a protocol error.
    pub protocol_errors: AtomicU64,
    /// Connections closed because the client did not read its replies.
    pub slow_consumers: AtomicU64,
    /// Tell messages received but never offered to the runtime because the
    /// service began to drain while they waited for mailbox room (TCP
    /// `TellFailed{ShuttingDown}`). The runtime's refusals are in its own accounting.
    pub refused_shutting_down: AtomicU64,
    /// HTTP tells that waited `limits.ask_timeout_ms` for room in a full
    /// `block` mailbox and were answered 503 `mailbox_full`.
    pub refused_wait_timeout: AtomicU64,
}

/// State shared by listeners, connections and handlers.
pub(crate) struct Shared {
    pub rt: Runtime,
    pub config: ResolvedConfig,
    pub plans: Plans,
    pub stats: ServiceStats,
    /// Cancelled when the drain starts.
    pub stop: CancellationToken,
    /// Connection, ask and HTTP tasks.
    pub tracker: TaskTracker,
}

/// What a run did, printed by `switchyard serve` on exit.
#[derive(Debug)]
pub struct ServiceReport {
    /// The runtime's shutdown report; `shutdown.accounting.balanced()` holds.
    pub shutdown: ShutdownReport,
    /// TCP connections accepted.
    pub connections: u64,
    /// Tell messages received over TCP.
    pub tcp_tells: u64,
    /// Asks received over TCP.
    pub tcp_asks: u64,
    /// HTTP requests.
    pub http_requests: u64,
    /// Connections closed for protocol errors, bad tokens and slow reading.
    pub closed_for_errors: u64,
    /// Messages received but not offered to the runtime, by reason: the
    /// service was draining (TCP tells waiting for room).
    pub refused_shutting_down: u64,
    /// ... a full `block` mailbox stayed full for the HTTP wait limit.
    pub refused_wait_timeout: u64,
    /// Tasks still running at the grace deadline (cancelled).
    pub cancelled_tasks: usize,
}

impl std::fmt::Display for ServiceReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.shutdown.accounting;
        writeln!(f, "switchyard stopped in {:.1?}", self.shutdown.elapsed)?;
        writeln!(f, "  accepted       {}", a.accepted)?;
        writeln!(f, "  handled        {}", a.handled)?;
        writeln!(f, "  dead-lettered  {}", a.dead_lettered())?;
        for r in DeadLetterReason::ALL {
            if a.dead(r) > 0 {
                writeln!(f, "    {:<14} {}", r.as_str(), a.dead(r))?;
            }
        }
        writeln!(
            f,
            "  rejected       {} (refused at the door, handed back to senders)",
            a.rejected
        )?;
        writeln!(f, "  balanced       {}", a.balanced())?;
        writeln!(
            f,
            "  not accepted by the service (sender told): {} shutting_down, {} mailbox_full_timeout",
            self.refused_shutting_down, self.refused_wait_timeout
        )?;
        write!(
            f,
            "  tcp: {} connections, {} tells, {} asks, {} closed for errors; http: {} requests",
            self.connections,
            self.tcp_tells,
            self.tcp_asks,
            self.closed_for_errors,
            self.http_requests
        )?;
        if !self.shutdown.forced.is_empty() {
            write!(
                f,
                "\n  not drained within the grace period: {}",
                self.shutdown.forced.join(", ")
            )?;
        }
        Ok(())
    }
}

/// A bound service, ready to [`Server::run`].
pub struct Server {
    shared: Arc<Shared>,
    tcp: Option<TcpListener>,
    http: Option<TcpListener>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("tcp", &self.tcp_addr())
            .field("http", &self.http_addr())
            .finish()
    }
}

impl Server {
    /// Starts the runtime and the configured agents and binds the listeners.
    /// Must be called inside a Tokio runtime.
    ///
    /// # Cancel safety
    /// Cancel safe; a dropped `Server` drops its agents with the runtime handle.
    pub async fn bind(config: ResolvedConfig) -> Result<Server, ServiceError> {
        let bind = |which: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServiceError::Bind {
                    which,
                    addr,
                    source,
                })
        };
        let tcp = match config.listeners.tcp {
            Some(a) => Some(bind("listen.tcp", a).await?),
            None => None,
        };
        let http = match config.listeners.http {
            Some(a) => Some(bind("listen.http", a).await?),
            None => None,
        };
        // Install the Prometheus recorder before agents publish anything.
        if switchyard_runtime::telemetry::prometheus().is_none() {
            tracing::warn!("GET /metrics is off: another metrics recorder is installed");
        }
        // `[defaults].slo` is also the runtime's overall target; agents
        // without their own use it too (the seed targets when it is absent).
        let mut builder = Runtime::builder();
        if let Some(slo) = &config.defaults.slo {
            builder = builder.slo_default(slo.targets());
        }
        let rt = builder.build();
        crate::agents::configure_wasm(&config);
        let plans = Plans::default();
        for plan in &config.agents {
            plans
                .start(&rt, plan.clone())
                .map_err(|source| ServiceError::Agent {
                    name: plan.name.clone(),
                    origin: config.origin.clone(),
                    source,
                })?;
        }
        let shared = Arc::new(Shared {
            rt,
            config,
            plans,
            stats: ServiceStats::default(),
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        Ok(Server { shared, tcp, http })
    }

    /// The bound TCP address (useful with port 0).
    pub fn tcp_addr(&self) -> Option<SocketAddr> {
        self.tcp.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The runtime the service drives.
    pub fn runtime(&self) -> &Runtime {
        &self.shared.rt
    }

    /// The service counters.
    pub fn stats(&self) -> &ServiceStats {
        &self.shared.stats
    }

    /// Serves until `shutdown` resolves, then drains and reports.
    ///
    /// # Cancel safety
    /// Not cancel safe: dropping this future abandons the drain (agents stop
    /// when the runtime handle is dropped, without a report). Resolve
    /// `shutdown` instead.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> ServiceReport {
        let Server { shared, tcp, http } = self;
        if let Some(l) = tcp {
            tracing::info!(addr = ?l.local_addr().ok(), "tcp listening");
            shared
                .tracker
                .spawn(crate::tcp::accept_loop(l, shared.clone()));
        }
        let http_task = http.map(|l| {
            tracing::info!(addr = ?l.local_addr().ok(), "http listening");
            let app = crate::http::router(shared.clone());
            let stop = shared.stop.clone();
            let l = crate::http::HttpListener::new(l, shared.config.limits.max_connections);
            tokio::spawn(async move {
                if let Err(e) = axum::serve(l, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "http server failed");
                }
            })
        });
        shutdown.await;
        let grace = shared.config.grace;
        tracing::info!(?grace, "draining");
        let deadline = Instant::now() + grace;
        shared.stop.cancel();
        shared.tracker.close();
        let mut cancelled_tasks = 0;
        if tokio::time::timeout_at(deadline, shared.tracker.wait())
            .await
            .is_err()
        {
            cancelled_tasks = shared.tracker.len();
            tracing::warn!(
                tasks = cancelled_tasks,
                "requests still running at the grace deadline"
            );
        }
        if let Some(mut h) = http_task
            && tokio::time::timeout_at(deadline, &mut h).await.is_err()
        {
            h.abort();
        }
        let rest = deadline
            .saturating_duration_since(Instant::now())
            .max(MIN_DRAIN);
        let report = shared.rt.shutdown(rest).await;
        let s = &shared.stats;
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServiceReport {
            shutdown: report,
            connections: load(&s.connections),
            tcp_tells: load(&s.tcp_tells),
            tcp_asks: load(&s.tcp_asks),
            http_requests: load(&s.http_requests),
            closed_for_errors: load(&s.protocol_errors)
                + load(&s.auth_failures)
                + load(&s.slow_consumers),
            refused_shutting_down: load(&s.refused_shutting_down),
            refused_wait_timeout: load(&s.refused_wait_timeout),
            cancelled_tasks,
        }
    }
}

/// Mailboxes always get at least this long to drain, even when requests used
/// the whole grace period: a batch boundary is microseconds away.
const MIN_DRAIN: Duration = Duration::from_millis(100);

/// Binds and serves `config` until `shutdown` resolves.
///
/// # Cancel safety
/// As [`Server::run`].
pub async fn run(
    config: ResolvedConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<ServiceReport, ServiceError> {
    Ok(Server::bind(config).await?.run(shutdown).await)
}
