//! `switchyard serve` as an operator runs it: flags size the runtime, the
//! banner says what started, SIGTERM drains and exits 0, and a bad flag
//! value exits 2 naming the key and the fix.

use std::process::Command;

mod common;

#[test]
fn serve_starts_the_workers_asked_for_and_drains_on_sigterm() {
    let (mut reap, banner, _stderr) =
        common::serve(&["--workers", "1", "--tcp", "127.0.0.1:0", "--http", ""]);
    let child = reap.0.as_mut().unwrap();
    assert!(banner.contains("1 worker thread;"), "{banner}");
    assert!(banner.contains("http off"), "{banner}");
    // The shell's own `kill`: no package beyond `sh` needed.
    let status = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status()
        .expect("sh runs");
    assert!(status.success());
    let out = reap.0.take().unwrap().wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "drained and balanced");
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("balanced"), "{summary}");
}

#[test]
fn too_many_workers_exit_2_naming_the_key_and_the_range() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["serve", "--tcp", "127.0.0.1:0", "--http", ""])
        .env("SWITCHYARD_WORKERS", "5000")
        .env_remove("SWITCHYARD_CONFIG")
        .output()
        .expect("the switchyard binary runs");
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("runtime.workers") && e.contains("5000") && e.contains("0..=1024"),
        "{e}"
    );
}
