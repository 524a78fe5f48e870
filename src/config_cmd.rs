//! `switchyard config check FILE`: validate a configuration without serving.

use std::path::Path;

use switchyard_service::config::{Config, ConfigError};

/// Loads and validates `file`; returns a one-paragraph summary.
pub fn check(file: &Path) -> Result<String, ConfigError> {
    let c = Config::load(file)?.validate()?;
    let addr = |a: Option<std::net::SocketAddr>| a.map_or("off".to_owned(), |a| a.to_string());
    let agents: Vec<String> = c
        .agents
        .iter()
        .map(|a| format!("{} (x{})", a.name, a.pool_size))
        .collect();
    Ok(format!(
        "{}: ok\n  tcp {}, http {}, auth {}, grace {:?}, workers {}\n  agents: {}",
        c.origin,
        addr(c.listeners.tcp),
        addr(c.listeners.http),
        if c.token.is_some() {
            "token"
        } else {
            "none (loopback only)"
        },
        c.grace,
        if c.workers == 0 {
            "one per CPU".to_owned()
        } else {
            c.workers.to_string()
        },
        if agents.is_empty() {
            "none".to_owned()
        } else {
            agents.join(", ")
        }
    ))
}
