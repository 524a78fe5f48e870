//! Admin routes: agents, dead letters, SLO and metrics. Mounted behind the
//! token check by [`crate::http`].

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use switchyard_runtime::{Accounting, DeadLetterReason, SpawnError};

use crate::config::{AgentSpec, ConfigError};
use crate::http::ApiError;
use crate::server::Shared;

type St = State<Arc<Shared>>;

/// Most dead letters one listing returns.
const MAX_DEAD_LETTER_LISTING: usize = 10_000;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/agents", get(list).post(start))
        .route("/v1/agents/{name}", axum::routing::delete(remove))
        .route("/v1/agents/{name}/reload", post(reload))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/slo", get(slo))
        .route("/metrics", get(metrics))
}

fn accounting_json(a: &Accounting) -> Value {
    let dead: serde_json::Map<String, Value> = DeadLetterReason::ALL
        .iter()
        .map(|r| (r.as_str().to_owned(), json!(a.dead(*r))))
        .collect();
    json!({
        "accepted": a.accepted,
        "handled": a.handled,
        "rejected": a.rejected,
        "restarts": a.restarts,
        "in_flight": a.in_flight(),
        "dead_lettered": a.dead_lettered(),
        "dead_letters_by_reason": dead,
    })
}

/// `GET /v1/agents`: every live agent (pool members individually) with its
/// depth, counters and latency percentiles, every pool with its members'
/// sums and merged percentiles, and the runtime totals.
///
/// Latency (`queue_us`, `service_us`, `sojourn_us`, `ask_us`: count, p50,
/// p90, p99, p999, max, mean) is cumulative since the agent started and
/// `null` before its first message. The runtime keeps pool members'
/// histograms under the pool's name, so member entries carry `null` and the
/// pool entry carries the merged figures.
async fn list(State(s): St) -> Response {
    let infos = s.rt.agents();
    let mut pools: Vec<(&str, Vec<&switchyard_runtime::AgentInfo>)> = Vec::new();
    let agents: Vec<Value> = infos
        .iter()
        .map(|a| {
            if let Some(pool) = a.pool.as_deref() {
                match pools.last_mut() {
                    Some((name, members)) if *name == pool => members.push(a),
                    _ => pools.push((pool, vec![a])),
                }
            }
            let plan = s.plans.get(a.pool.as_deref().unwrap_or(&a.name));
            let latency = match a.pool {
                Some(_) => None,
                None => s.rt.latency(&a.name),
            };
            json!({
                "name": a.name,
                "id": a.id.to_string(),
                "pool": a.pool,
                "depth": a.depth,
                "capacity": a.capacity,
                "overflow": a.overflow.to_string(),
                "kind": plan.as_ref().map(|p| match &p.source {
                    crate::config::SourceKind::Native { builtin, .. } => format!("native:{}", builtin.as_str()),
                    crate::config::SourceKind::Wasm { path } => format!("wasm:{}", path.display()),
                }),
                "slo": plan.and_then(|p| p.slo),
                "stats": accounting_json(&a.accounting),
                "latency": latency,
            })
        })
        .collect();
    let pools: Vec<Value> = pools
        .into_iter()
        .map(|(name, members)| {
            json!({
                "name": name,
                "members": members.len(),
                "depth": members.iter().map(|m| m.depth).sum::<usize>(),
                "stats": s.rt.agent_accounting(name).as_ref().map(accounting_json),
                "latency": s.rt.latency(name),
            })
        })
        .collect();
    axum::Json(json!({
        "agents": agents,
        "pools": pools,
        "totals": accounting_json(&s.rt.accounting()),
    }))
    .into_response()
}

async fn start(State(s): St, body: Result<Bytes, BytesRejection>) -> Result<Response, ApiError> {
    // Any content type: `curl -d` sends form encoding by default, the body is JSON regardless.
    let spec: AgentSpec = serde_json::from_slice(&body?).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            format!("{e}; send an [[agents]] entry as JSON"),
        )
    })?;
    if spec.kind == "wasm" && !crate::agents::WASM_SUPPORTED {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "wasm_unsupported",
            "WASM support is not built into this switchyard yet; only built-in native kinds can be started",
        ));
    }
    let plan =
        crate::config_resolve::resolve_agent(&spec, &s.config.defaults, "body", "POST /v1/agents")
            .map_err(|e: ConfigError| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_agent", e.to_string())
            })?;
    let name = plan.name.clone();
    s.plans.start(&s.rt, plan).map_err(|e| {
        let status = match e {
            SpawnError::Duplicate(_) => StatusCode::CONFLICT,
            SpawnError::ShuttingDown(_) => StatusCode::SERVICE_UNAVAILABLE,
            SpawnError::Name(_) | SpawnError::Invalid { .. } => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, "spawn_failed", e.to_string())
    })?;
    Ok((StatusCode::CREATED, axum::Json(json!({ "started": name }))).into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveParams {
    /// How long the agent may drain (default `shutdown.grace_ms`).
    grace_ms: Option<u64>,
}

async fn remove(
    State(s): St,
    Path(name): Path<String>,
    q: Result<Query<RemoveParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = q?;
    let grace = p.grace_ms.map_or(s.config.grace, Duration::from_millis);
    match s.rt.remove(&name, grace).await {
        Some(acc) => {
            s.plans.forget(&name);
            Ok(
                axum::Json(json!({ "removed": name, "stats": accounting_json(&acc) }))
                    .into_response(),
            )
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_agent",
            format!("no agent or pool named {name:?}"),
        )),
    }
}

async fn reload(State(s): St, Path(name): Path<String>) -> Result<Response, ApiError> {
    if s.rt.restart(&name) {
        Ok((
            StatusCode::ACCEPTED,
            axum::Json(json!({ "restarting": name })),
        )
            .into_response())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_agent",
            format!("no agent or pool named {name:?}"),
        ))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLetterParams {
    /// Most letters to return (default 100).
    limit: Option<usize>,
}

async fn dead_letters(
    State(s): St,
    q: Result<Query<DeadLetterParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = q?;
    let limit = p.limit.unwrap_or(100).min(MAX_DEAD_LETTER_LISTING);
    let dl = s.rt.dead_letters();
    let letters: Vec<Value> = dl
        .peek(limit)
        .into_iter()
        .map(|l| {
            json!({
                "agent": l.agent,
                "reason": l.reason.as_str(),
                "detail": l.detail,
                "message_id": l.message_id,
                "payload_len": l.payload_len,
                "at_unix_ms": l.at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0),
            })
        })
        .collect();
    Ok(
        axum::Json(json!({ "queued": dl.len(), "evicted": dl.evicted(), "letters": letters }))
            .into_response(),
    )
}

async fn slo(State(s): St) -> Response {
    let report = s.rt.slo_report();
    let overall = report.overall();
    axum::Json(json!({ "overall": overall, "verdicts": report.verdicts })).into_response()
}

async fn metrics() -> Result<Response, ApiError> {
    match switchyard_runtime::telemetry::prometheus() {
        Some(handle) => Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            handle.render(),
        )
            .into_response()),
        None => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_available",
            "another metrics recorder is installed in this process; Prometheus rendering is off",
        )),
    }
}
