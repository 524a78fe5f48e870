//! An embedded run on WASM load agents: a real component (the runtime's
//! scripted WAT fixture, which echoes asks) wrapped from source with the
//! agent WIT, confirmed per message like the native agents.

use std::path::Path;

use switchyard_loadtest::progress::Display;
use switchyard_loadtest::scenario::{Overrides, Scenario};
use switchyard_loadtest::{report, run};

fn scripted_component() -> Vec<u8> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let src = std::fs::read_to_string(root.join("runtime/tests/fixtures/scripted.wat")).unwrap();
    let mut module = wat::parse_str(&src).unwrap();
    let mut resolve = wit_parser::Resolve::default();
    let (pkg, _) = resolve.push_path(root.join("agents/sdk/wit")).unwrap();
    let world = resolve.select_world(&[pkg], Some("agent")).unwrap();
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        wit_component::StringEncoding::UTF8,
    )
    .unwrap();
    wit_component::ComponentEncoder::default()
        .module(&module)
        .unwrap()
        .validate(true)
        .encode()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_agents_confirm_tells_and_answer_asks() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("load-wasm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("scripted.wasm");
    std::fs::write(&path, scripted_component()).unwrap();
    let mut o = Overrides::default();
    for (k, v) in [
        ("kind", "wasm"),
        ("wasm", path.to_str().unwrap()),
        ("agents", "4"),
        ("rate", "1000"),
        ("duration", "1s"),
        ("ramp_up", "0s"),
        ("workload", "mix"),
        ("ask_ratio", "0.25"),
        ("payload", "128"),
        ("slo.p99", "10s"),
    ] {
        o.set(k, v);
    }
    let s = Scenario::default_with(&o).unwrap();
    let r = run(&s, Display::Quiet).await.unwrap();
    assert_eq!(r.ok, r.sent, "{}", report::text(&r));
    assert_eq!(r.lost, 0);
    assert!(r.agents.contains("WASM"));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_that_is_not_one_is_a_setup_error() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("load-wasm-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("junk.wasm");
    std::fs::write(&path, b"not wasm").unwrap();
    let mut o = Overrides::default();
    o.set("kind", "wasm");
    o.set("wasm", path.to_str().unwrap());
    let s = Scenario::default_with(&o).unwrap();
    let e = run(&s, Display::Quiet).await.unwrap_err();
    assert!(e.to_string().contains("junk.wasm"), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}
