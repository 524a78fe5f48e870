//! What the CLI tests share: a `switchyard serve` child that is killed if a
//! test fails before it stopped it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStderr, Command, Stdio};

/// Kills the service if the test fails before it stopped it.
pub struct Reap(pub Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `switchyard serve ARGS` on the embedded config and waits for its
/// banner line ("switchyard serving ..."), which it returns with the child's
/// remaining stderr.
pub fn serve(args: &[&str]) -> (Reap, String, BufReader<ChildStderr>) {
    let mut reap = Reap(Some(
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("serve")
            .args(args)
            .env_remove("SWITCHYARD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the switchyard binary runs"),
    ));
    let child = reap.0.as_mut().expect("just spawned");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut banner = String::new();
    loop {
        banner.clear();
        let n = stderr.read_line(&mut banner).expect("stderr reads");
        assert!(n > 0, "serve exited before it said it was serving");
        if banner.contains("switchyard serving") {
            return (reap, banner, stderr);
        }
    }
}
