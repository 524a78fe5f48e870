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

use crate::agents::{DeployError, Plans, ReloadSource};
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
                "started": a.started,
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

/// The WebAssembly magic number: a body starting with it is a component upload.
const WASM_MAGIC: &[u8] = b"\0asm";

/// Query parameters of a component upload (`POST /v1/agents?name=...` with
/// the component bytes as the body): the keys of an `[[agents]]` entry that
/// fit in a query. `env` is a comma-separated list of variable names.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct UploadParams {
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pool_size: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_batch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lazy_start: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_mib: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu_per_message_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    clock: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    env: Option<String>,
}

impl UploadParams {
    /// The `[[agents]]` entry the upload stands for.
    fn spec(self) -> Result<AgentSpec, ApiError> {
        let Some(name) = self.name.clone() else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_agent",
                "a component upload needs ?name=NAME (and optionally pool_size, capacity, max_batch, \
                 lazy_start, memory_mib, cpu_per_message_ms, config, clock, env)",
            ));
        };
        let mut v = json!({
            "name": name,
            "kind": "wasm",
            "path": crate::agents::upload_label(&name),
        });
        let obj = v.as_object_mut().expect("a JSON object literal");
        for (k, val) in [
            ("pool_size", self.pool_size.map(|x| json!(x))),
            ("capacity", self.capacity.map(|x| json!(x))),
            ("max_batch", self.max_batch.map(|x| json!(x))),
            ("lazy_start", self.lazy_start.map(|x| json!(x))),
            ("memory_mib", self.memory_mib.map(|x| json!(x))),
            (
                "cpu_per_message_ms",
                self.cpu_per_message_ms.map(|x| json!(x)),
            ),
            ("config", self.config.map(|x| json!(x))),
        ] {
            if let Some(val) = val {
                obj.insert(k.to_owned(), val);
            }
        }
        if self.clock.is_some() || self.env.is_some() {
            let env: Vec<&str> = self
                .env
                .as_deref()
                .map(|e| e.split(',').filter(|n| !n.is_empty()).collect())
                .unwrap_or_default();
            obj.insert(
                "capabilities".to_owned(),
                json!({ "clock": self.clock.unwrap_or(false), "env": env }),
            );
        }
        serde_json::from_value(v)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_agent", e.to_string()))
    }
}

fn deploy_error(e: DeployError) -> ApiError {
    match e {
        DeployError::Wasm(e) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_component", e.to_string())
        }
        DeployError::Invalid(what) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", what)
        }
    }
}

fn spawn_error(e: SpawnError) -> ApiError {
    let status = match e {
        SpawnError::Duplicate(_) => StatusCode::CONFLICT,
        SpawnError::ShuttingDown(_) => StatusCode::SERVICE_UNAVAILABLE,
        SpawnError::Name(_) | SpawnError::Invalid { .. } => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, "spawn_failed", e.to_string())
}

/// `POST /v1/agents`: the body is one `[[agents]]` entry as JSON (a built-in,
/// or `kind = "wasm"` with a `path` the service reads), or the bytes of a
/// WASM component with `?name=...`. Never native code: anything that is not
/// JSON or a component is refused. A WASM component is loaded, checked
/// against the world and its `init` probed before anything is spawned.
async fn start(
    State(s): St,
    q: Result<Query<UploadParams>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = q?;
    let body = body?;
    let upload = body.starts_with(WASM_MAGIC);
    let spec: AgentSpec = if upload {
        params.spec()?
    } else {
        if params.name.is_some() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "?name= is for component uploads, and the body is not a WebAssembly component (no \\0asm header)",
            ));
        }
        // Any content type: `curl -d` sends form encoding by default, the body is JSON regardless.
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!(
                    "{e}; send an [[agents]] entry as JSON, or the bytes of a WASM component with ?name=NAME"
                ),
            )
        })?
    };
    let plan =
        crate::config_resolve::resolve_agent(&spec, &s.config.defaults, "body", "POST /v1/agents")
            .map_err(|e: ConfigError| {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_agent", e.to_string())
            })?;
    let name = plan.name.clone();
    if !matches!(plan.source, crate::config::SourceKind::Wasm { .. }) {
        s.plans.start(&s.rt, plan).map_err(spawn_error)?;
        return Ok((StatusCode::CREATED, axum::Json(json!({ "started": name }))).into_response());
    }
    if s.rt.agent_accounting(&name).is_some() {
        return Err(spawn_error(SpawnError::Duplicate(name)));
    }
    // Compiling blocks for milliseconds to seconds: off the async workers.
    let (plan, kind) = tokio::task::spawn_blocking(move || {
        let bytes = upload.then_some(&body[..]);
        Plans::load_wasm(&plan, bytes).map(|k| (plan, k))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
    .map_err(deploy_error)?;
    let generation = kind.generation();
    s.plans.start_wasm(&s.rt, plan, kind).map_err(spawn_error)?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({ "started": name, "kind": "wasm", "generation": generation })),
    )
        .into_response())
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

/// Body of a WASM hot reload naming a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReloadSpec {
    path: std::path::PathBuf,
}

/// `POST /v1/agents/{name}/reload`. A WASM agent is hot-reloaded: with an
/// empty body from the file it was deployed from, with component bytes from
/// the body, with `{"path": "..."}` from that file; the new version is
/// validated first (on error nothing changes), then every instance switches
/// at its next batch, nothing queued lost. A native agent is restarted with
/// its mailbox kept.
async fn reload(
    State(s): St,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body?;
    if !s.plans.is_wasm(&name) {
        if !body.is_empty() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!("{name:?} is not a WASM agent: a reload restarts it and takes no body"),
            ));
        }
        return if s.rt.restart(&name) {
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
        };
    }
    let source = if body.is_empty() {
        ReloadSource::Same
    } else if body.starts_with(WASM_MAGIC) {
        ReloadSource::Bytes(body.to_vec())
    } else {
        let spec: ReloadSpec = serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_body",
                format!(
                    "{e}; send nothing (re-read the deployed file), the component bytes, or {{\"path\": \"...\"}}"
                ),
            )
        })?;
        ReloadSource::Path(spec.path)
    };
    let plans = s.plans.clone();
    let who = name.clone();
    let generation = tokio::task::spawn_blocking(move || plans.reload_wasm(&who, source))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
        .map_err(deploy_error)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_agent",
                format!("no agent or pool named {name:?}"),
            )
        })?;
    Ok(axum::Json(json!({ "reloaded": name, "generation": generation })).into_response())
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
