//! `switchyard load` as a user runs it: exit codes 0 (pass), 1 (SLO failed)
//! and 2 (usage or setup error, with a clear message and no report).

use std::path::PathBuf;
use std::process::{Command, Output};

mod common;

fn load(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("load")
        .arg("--quiet")
        .args(args)
        .output()
        .expect("the switchyard binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-load-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A short, light embedded run (dev builds are slow; keep the rate low).
const SHORT: &[&str] = &[
    "--rate",
    "500",
    "--duration",
    "500ms",
    "--ramp-up",
    "0s",
    "--agents",
    "4",
];

#[test]
fn a_passing_run_exits_0_and_writes_its_reports() {
    let json = temp("pass.json");
    let html = temp("pass.html");
    let o = load(
        &[
            SHORT,
            &[
                "--slo-p99",
                "10s",
                "--json",
                json.to_str().unwrap(),
                "--html",
                html.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("SLO:") && stdout.contains("PASS"),
        "{stdout}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(
        n("sent"),
        n("ok") + n("rejected") + n("timed_out") + n("errors") + n("lost")
    );
    assert_eq!(report["slo"]["pass"], true);
    assert!(std::fs::read_to_string(&html).unwrap().contains("<svg"));
}

#[test]
fn a_failed_slo_exits_1() {
    let o = load(&[SHORT, &["--slo-p99", "1us"]].concat());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("FAIL"));
}

#[test]
fn an_unknown_scenario_key_exits_2_naming_file_key_and_valid_keys() {
    let file = temp("typo.toml");
    std::fs::write(
        &file,
        "name = \"t\"\nrate = 100\nduration = \"1s\"\nrat = 5\n",
    )
    .unwrap();
    let o = load(&["--scenario", file.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("typo.toml") && e.contains("rat") && e.contains("`rate`"),
        "{e}"
    );
    let o = load(&["--set", "burst.sizes=3"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("sizes"), "{}", stderr(&o));
}

#[test]
fn a_negative_rate_exits_2() {
    let json = temp("negative.json");
    let o = load(&["--rate", "-5", "--json", json.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("rate = -5"), "{}", stderr(&o));
    assert!(!json.exists(), "no report for a run that did not happen");
}

#[test]
fn an_unreachable_target_exits_2() {
    // Bound and never listening until the end: connections are refused, and
    // no other process can be given the port, as it could once a listener
    // was dropped.
    let closed = tokio::net::TcpSocket::new_v4().unwrap();
    closed.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = closed.local_addr().unwrap();
    let o = load(&["--target", &format!("http://{addr}"), "--agent", "echo"]);
    drop(closed);
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains(&addr.to_string()) && e.contains("connect"),
        "{e}"
    );
    assert!(!e.contains("panic"), "{e}");
}

#[test]
fn a_bad_flag_value_exits_2() {
    let o = load(&["--duration", "10"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("no unit"), "{}", stderr(&o));
    let o = load(&["--target", "udp://x:1"]);
    assert_eq!(code(&o), 2);
    let o = load(&[
        "--baseline",
        "does-not-exist",
        "--baseline-dir",
        temp("b").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--save-baseline"), "{}", stderr(&o));
}

#[test]
fn baselines_are_saved_and_compared() {
    let dir = temp("baselines");
    let dir = dir.to_str().unwrap();
    let o = load(
        &[
            SHORT,
            &[
                "--slo-p99",
                "10s",
                "--save-baseline",
                "b1",
                "--baseline-dir",
                dir,
            ],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = load(
        &[
            SHORT,
            &[
                "--slo-p99",
                "10s",
                "--baseline",
                "b1",
                "--baseline-dir",
                dir,
                // The comparison is what is tested, not this machine's
                // run-to-run noise: two sub-second runs beside the other
                // tests can differ more than tenfold in p50 or p99.
                "--threshold",
                "1000000",
            ],
        ]
        .concat(),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("baseline \"b1\""));
}

#[test]
fn client_workers_size_the_tools_runtime_for_a_remote_target() {
    let (reap, banner, _stderr) =
        common::serve(&["--workers", "1", "--tcp", "127.0.0.1:0", "--http", ""]);
    // The banner: "... tcp 127.0.0.1:PORT, http off, ..."
    let addr = banner
        .split("tcp ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .expect("the banner names the TCP address");
    let target = format!("tcp://{addr}");
    let remote = [
        "--target",
        target.as_str(),
        "--agent",
        "echo",
        "--workload",
        "ask",
        "--rate",
        "500",
        "--duration",
        "500ms",
        "--ramp-up",
        "0s",
        "--slo-p99",
        "10s",
    ];
    for (workers, says) in [
        ("1", "(client on 1 Tokio worker thread)"),
        ("2", "(client on 2 Tokio worker threads)"),
    ] {
        let o = load(&[&remote[..], &["--client-workers", workers]].concat());
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains(says), "{out}");
    }
    // The embedded target has no client: the flag is refused, naming the fix.
    let o = load(&[SHORT, &["--client-workers", "1"]].concat());
    assert_eq!(code(&o), 2);
    let e = stderr(&o);
    assert!(
        e.contains("client_workers = 1") && e.contains("workers"),
        "{e}"
    );
    drop(reap);
}
