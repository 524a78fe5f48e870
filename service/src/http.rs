//! HTTP: JSON ingress and the admin API (axum).
//!
//! | method and path                    | does                                        |
//! |------------------------------------|---------------------------------------------|
//! | `POST /v1/agents/{name}/messages`  | tell; the body is the payload               |
//! | `POST /v1/agents/{name}/ask`       | ask; the reply payload is the response body |
//! | `GET /healthz`, `GET /readyz`      | liveness; readiness (503 while draining)    |
//! | `GET /v1/agents`                   | agents with counters and SLO targets        |
//! | `POST /v1/agents`                  | start an agent (body: an `[[agents]]` entry as JSON) |
//! | `DELETE /v1/agents/{name}`         | remove an agent (drains it)                 |
//! | `POST /v1/agents/{name}/reload`    | restart an agent, keeping its mailbox       |
//! | `GET /v1/dead-letters`             | recent dead letters                         |
//! | `GET /v1/slo`, `GET /metrics`      | 503 until the runtime has SLO/metrics       |
//!
//! Every route but `/healthz` and `/readyz` requires `Authorization: Bearer
//! <token>` when a token is configured (probes reveal nothing and must work
//! for orchestrators without secrets). Every error is JSON:
//! `{"error":{"code":"...","message":"..."}}` with a fitting status.
//!
//! **Backpressure.** A tell to a full `block` mailbox waits at most
//! `limits.ask_timeout_ms`, then answers 503; `reject` mailboxes answer 429.
//! Bodies are capped at `limits.max_http_body_bytes` (413).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;
use switchyard_runtime::{AskError, Envelope, Payload, SendError};

use crate::server::Shared;

type St = State<Arc<Shared>>;

/// The body of a successful tell.
const ACCEPTED_ONE: &str = r#"{"accepted":1}"#;

/// A JSON error response.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = axum::Json(json!({ "error": { "code": self.code, "message": self.message } }));
        let mut resp = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

impl<T> From<SendError<T>> for ApiError {
    fn from(e: SendError<T>) -> ApiError {
        let status = match &e {
            SendError::UnknownAgent { .. } => StatusCode::NOT_FOUND,
            SendError::Full { .. } => StatusCode::TOO_MANY_REQUESTS,
            SendError::Timeout { .. } | SendError::Closed { .. } => StatusCode::SERVICE_UNAVAILABLE,
        };
        ApiError::new(
            status,
            crate::convert::send_code(&e).as_str(),
            e.to_string(),
        )
    }
}

impl From<AskError> for ApiError {
    fn from(e: AskError) -> ApiError {
        match e {
            AskError::Send(s) => s.into(),
            AskError::Timeout { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "ask_timeout", e.to_string())
            }
            AskError::NoReply { .. } => {
                ApiError::new(StatusCode::BAD_GATEWAY, "no_reply", e.to_string())
            }
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", e.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(e: BytesRejection) -> ApiError {
        ApiError::new(
            e.status(),
            "bad_body",
            format!("{}; the limit is limits.max_http_body_bytes", e.body_text()),
        )
    }
}

/// The whole HTTP API.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let body_limit = shared.config.limits.max_http_body_bytes;
    let protected = Router::new()
        .route("/v1/agents/{name}/messages", post(tell))
        .route("/v1/agents/{name}/ask", post(ask))
        .merge(crate::http_admin::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readyz))
        .merge(protected)
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see docs/protocol.md#http",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(shared)
}

async fn require_token(State(s): St, req: Request, next: Next) -> Result<Response, ApiError> {
    s.stats.http_requests.fetch_add(1, Ordering::Relaxed);
    if let Some(token) = s.config.token.as_deref() {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !crate::auth::token_ok(Some(token), given) {
            s.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong token; send `Authorization: Bearer <auth.token>`",
            ));
        }
    }
    Ok(next.run(req).await)
}

async fn readyz(State(s): St) -> Response {
    if s.stop.is_cancelled() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "draining" })),
        )
            .into_response()
    } else {
        axum::Json(json!({ "status": "ready", "agents": s.rt.agent_count() })).into_response()
    }
}

/// Query parameters of the ingress routes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendParams {
    /// Routing key for key-affinity pools.
    key: Option<String>,
    /// Time to live.
    ttl_ms: Option<u64>,
    /// Ask timeout (default `limits.ask_timeout_ms`, capped at `limits.max_ask_timeout_ms`).
    timeout_ms: Option<u64>,
}

fn envelope(payload: Bytes, p: &SendParams, ask: bool) -> Envelope {
    // A small body travels inline, not as a view of the connection's buffer.
    let payload = Payload::compact(payload);
    let mut env = if ask {
        Envelope::ask(payload)
    } else {
        Envelope::tell(payload)
    };
    if let Some(k) = &p.key {
        env = env.with_key(k.as_bytes());
    }
    if let Some(ttl) = p.ttl_ms {
        env = env.with_ttl(Duration::from_millis(ttl));
    }
    env
}

async fn tell(
    State(s): St,
    Path(name): Path<String>,
    q: Result<Query<SendParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (Query(p), body) = (q?, body?);
    let wait = Duration::from_millis(s.config.limits.ask_timeout_ms);
    match tokio::time::timeout(wait, s.rt.tell(&name, envelope(body, &p, false))).await {
        Ok(r) => r?,
        Err(_) => {
            s.stats.refused_wait_timeout.fetch_add(1, Ordering::Relaxed);
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "mailbox_full",
                format!("mailbox of {name:?} stayed full for {wait:?} (policy block); retry later"),
            ));
        }
    }
    // A constant body: no JSON value built and serialised per request.
    Ok((
        StatusCode::ACCEPTED,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        ACCEPTED_ONE,
    )
        .into_response())
}

async fn ask(
    State(s): St,
    Path(name): Path<String>,
    headers: HeaderMap,
    q: Result<Query<SendParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (Query(p), body) = (q?, body?);
    let limits = &s.config.limits;
    let timeout_ms = p.timeout_ms.unwrap_or(limits.ask_timeout_ms);
    if timeout_ms == 0 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "timeout_ms is 0; use at least 1",
        ));
    }
    let timeout = Duration::from_millis(timeout_ms.min(limits.max_ask_timeout_ms));
    let reply = s.rt.ask(&name, envelope(body, &p, true), timeout).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .filter(|v| v.as_bytes().starts_with(b"application/json"))
        .cloned()
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    Ok((
        [(header::CONTENT_TYPE, content_type)],
        reply.payload().to_bytes(),
    )
        .into_response())
}

/// The HTTP listener: at most `limits.max_connections` connections at once
/// (a budget of its own, apart from the TCP protocol's). The permit is taken
/// before `accept`, so further clients wait in the kernel's backlog instead
/// of costing the server memory; it is returned when the connection closes.
/// Accepted sockets get `TCP_NODELAY`: with Nagle, a keep-alive client's next
/// request could wait for a delayed ACK (tens of ms).
pub(crate) struct HttpListener {
    inner: tokio::net::TcpListener,
    permits: Arc<tokio::sync::Semaphore>,
}

impl HttpListener {
    pub(crate) fn new(inner: tokio::net::TcpListener, max_connections: usize) -> HttpListener {
        HttpListener {
            inner,
            permits: Arc::new(tokio::sync::Semaphore::new(max_connections)),
        }
    }
}

/// Pause after a failed `accept` (out of file descriptors and the like).
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

impl axum::serve::Listener for HttpListener {
    type Io = Permitted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Permitted, std::net::SocketAddr) {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .expect("the HTTP connection semaphore is never closed");
        loop {
            match self.inner.accept().await {
                Ok((io, addr)) => {
                    if let Err(e) = io.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY on an http connection");
                    }
                    return (
                        Permitted {
                            io,
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed; pausing");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.inner.local_addr()
    }
}

/// An accepted HTTP connection holding its connection permit.
pub(crate) struct Permitted {
    io: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl tokio::io::AsyncRead for Permitted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Permitted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
