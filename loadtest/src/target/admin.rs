//! The service's admin API (`GET /v1/agents`), read for the `handled`
//! counters that confirm remote tells and for mailbox depths; plus the small
//! HTTP/1.1 connection helper the HTTP target shares.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Depth;
use crate::error::LoadError;

/// How long connecting to a remote address may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Opens one HTTP/1.1 keep-alive connection to `addr`; the connection task
/// runs until the returned sender is dropped or the peer closes.
pub(crate) async fn connect(addr: &str) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Builds a request with the host and token headers.
pub(crate) fn request(
    method: Method,
    addr: &str,
    path: &str,
    token: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, String> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header(HOST, addr)
        .header(CONTENT_TYPE, "application/octet-stream");
    if !token.is_empty() {
        b = b.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(Full::new(body)).map_err(|e| e.to_string())
}

/// Sends `req` on `conn` and reads the whole response.
pub(crate) async fn exchange(
    conn: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> Result<(StatusCode, Bytes), String> {
    conn.ready().await.map_err(|e| e.to_string())?;
    let resp = conn.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// One agent (or pool, summed over its members) as the admin API lists it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentStats {
    /// Messages its handlers completed.
    pub handled: u64,
    /// Messages it dead-lettered.
    pub dead_lettered: u64,
    /// Mailbox depth now.
    pub depth: Depth,
}

/// A client of the service's admin API.
#[derive(Clone, Debug)]
pub struct Admin {
    addr: String,
    token: String,
}

impl Admin {
    /// The admin API at `addr` (`HOST:PORT`).
    pub fn new(addr: &str, token: &str) -> Admin {
        Admin {
            addr: addr.to_owned(),
            token: token.to_owned(),
        }
    }

    /// `GET /v1/agents`, parsed.
    pub async fn list(&self) -> Result<serde_json::Value, String> {
        let mut conn = connect(&self.addr).await?;
        let req = request(
            Method::GET,
            &self.addr,
            "/v1/agents",
            &self.token,
            Bytes::new(),
        )?;
        let (status, body) = exchange(&mut conn, req).await?;
        if status == StatusCode::UNAUTHORIZED {
            return Err("the admin API refused the token (401); pass --token".into());
        }
        if !status.is_success() {
            return Err(format!(
                "GET /v1/agents answered {status}: {}",
                String::from_utf8_lossy(&body)
            ));
        }
        serde_json::from_slice(&body).map_err(|e| format!("GET /v1/agents is not JSON: {e}"))
    }

    /// Counters of the agent or pool `name`; `Err` names what went wrong,
    /// `Ok(None)` means there is no such agent.
    pub async fn find(&self, name: &str) -> Result<Option<AgentStats>, String> {
        let list = self.list().await?;
        let agents = list["agents"]
            .as_array()
            .ok_or("GET /v1/agents has no \"agents\" array")?;
        let mut found = false;
        let mut stats = AgentStats::default();
        for a in agents {
            if a["name"].as_str() == Some(name) || a["pool"].as_str() == Some(name) {
                found = true;
                stats.handled += a["stats"]["handled"].as_u64().unwrap_or(0);
                stats.dead_lettered += a["stats"]["dead_lettered"].as_u64().unwrap_or(0);
                let depth = a["depth"].as_u64().unwrap_or(0);
                stats.depth.total += depth;
                stats.depth.max = stats.depth.max.max(depth);
            }
        }
        Ok(found.then_some(stats))
    }

    /// Counters of `agent` at the start of a run against `target`: an
    /// unreachable admin API or an unknown agent is the setup error that
    /// names them (with the agents the server does have).
    pub async fn require(&self, target: &str, agent: &str) -> Result<AgentStats, LoadError> {
        match self.find(agent).await {
            Ok(Some(stats)) => Ok(stats),
            Ok(None) => Err(LoadError::UnknownAgent {
                target: target.to_owned(),
                agent: agent.to_owned(),
                hint: format!("it has: {}", self.names().await.join(", ")),
            }),
            Err(message) => Err(LoadError::Target {
                target: target.to_owned(),
                message,
            }),
        }
    }

    /// Counters of `name`, which must exist.
    pub async fn agent(&self, name: &str) -> Result<AgentStats, String> {
        self.find(name)
            .await?
            .ok_or_else(|| format!("no agent {name:?}"))
    }

    /// The names of every agent and pool, for error messages.
    pub async fn names(&self) -> Vec<String> {
        let Ok(list) = self.list().await else {
            return Vec::new();
        };
        let mut names: Vec<String> = list["agents"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| {
                a["pool"]
                    .as_str()
                    .or_else(|| a["name"].as_str())
                    .map(str::to_owned)
            })
            .collect();
        names.sort();
        names.dedup();
        names
    }
}
