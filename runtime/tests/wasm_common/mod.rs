//! Shared helpers of the WASM integration tests: real components built from
//! the WAT fixtures in `tests/fixtures` and the agent WIT in `agents/sdk/wit`.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard_runtime::{AgentConfig, Envelope, Runtime, Supervision};

/// The scripted agent's WAT source (version 1).
pub const SCRIPTED: &str = include_str!("../fixtures/scripted.wat");

/// Wraps a core module (WAT) into a component of `world` of the WIT at `wit`.
pub fn componentize(wat_src: &str, wit: &Path, world: &str) -> Vec<u8> {
    let mut module = wat::parse_str(wat_src).expect("fixture WAT parses");
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_path(wit).expect("WIT parses");
    let world = resolve
        .select_world(&[pkg], Some(world))
        .expect("world exists");
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .expect("metadata embeds");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .expect("module accepted")
        .validate(true)
        .encode()
        .expect("component encodes")
}

/// The agent WIT directory.
pub fn agent_wit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../agents/sdk/wit")
}

/// The scripted agent as a component; `version` 2 prefixes echoes with "v2:".
pub fn scripted(version: u32) -> Vec<u8> {
    let src = SCRIPTED.replace(
        "(i32.const 1)) ;; VERSION",
        &format!("(i32.const {version})) ;; VERSION"),
    );
    componentize(&src, &agent_wit(), "agent")
}

/// The echo fixture (`fixtures/echo.wat`: does what the native echo does,
/// replies to asks and nothing else) as a component; the WASM bench uses it too.
pub fn echo() -> Vec<u8> {
    componentize(include_str!("../fixtures/echo.wat"), &agent_wit(), "agent")
}

/// Writes `bytes` to a fresh file under the test temp dir and returns its path.
///
/// Every call gets its own file, written under a temporary name and renamed
/// into place: tests in one binary run in parallel and must never read a file
/// another test is still writing.
pub fn write_temp(name: &str, bytes: &[u8]) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-tests");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{}-{n}-{name}", std::process::id()));
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).expect("temp file");
    std::fs::rename(&partial, &path).expect("rename temp file");
    path
}

/// Restarts at once, many times: tests provoke failures on purpose.
pub fn config() -> AgentConfig {
    AgentConfig::default().supervision(Supervision {
        max_restarts: 100,
        ..Supervision::immediate()
    })
}

/// Asks `name` with `payload` and returns the reply payload.
pub async fn ask(rt: &Runtime, name: &str, payload: &[u8]) -> Vec<u8> {
    let reply = rt
        .ask(
            name,
            Envelope::ask(payload.to_vec()),
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("ask {name} {:?}: {e}", String::from_utf8_lossy(payload)));
    reply.payload().to_vec()
}

/// Waits (at most 10 s) until `cond` holds.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(
            std::time::Instant::now() < until,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
