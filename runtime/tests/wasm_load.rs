//! Bad input is refused at load with an error naming the file and what is
//! wrong; nothing already running is affected.

mod wasm_common;

use switchyard_runtime::Runtime;
use switchyard_runtime::wasm::{FailureKind, WasmAgentKind, WasmError, WasmLimits};
use wasm_common::{ask, componentize, config, scripted, write_temp};

fn load_err(name: &str, bytes: &[u8], limits: WasmLimits) -> (String, WasmError) {
    let path = write_temp(name, bytes);
    let err = WasmAgentKind::load(&path, limits).expect_err("bad input must be refused");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "error must name the file: {err}"
    );
    (path.display().to_string(), err)
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let (_, err) = load_err("notes.txt", b"hello, I am text", WasmLimits::default());
    assert!(matches!(err, WasmError::NotWasm { .. }), "{err}");
    let missing =
        WasmAgentKind::load("/nonexistent/agent.wasm", WasmLimits::default()).unwrap_err();
    assert!(
        matches!(missing, WasmError::Read { .. })
            && missing.to_string().contains("/nonexistent/agent.wasm")
    );
}

#[test]
fn a_core_module_is_refused_as_not_a_component() {
    let module = wat::parse_str("(module)").unwrap();
    let (_, err) = load_err("core.wasm", &module, WasmLimits::default());
    assert!(matches!(err, WasmError::NotComponent { .. }), "{err}");
}

#[test]
fn a_corrupt_component_is_refused_as_invalid() {
    let mut bytes = scripted(1);
    let n = bytes.len();
    bytes.truncate(n / 2);
    let (_, err) = load_err("truncated.wasm", &bytes, WasmLimits::default());
    assert!(matches!(err, WasmError::Invalid { .. }), "{err}");
}

#[test]
fn a_component_of_another_world_is_refused_naming_the_missing_export() {
    let wit = write_temp(
        "wrong.wit",
        b"package test:wrong@0.1.0;\nworld wrong { export init: func(config: string) -> result<_, string>; }\n",
    );
    let wat = r#"(module
        (memory (export "memory") 1)
        (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) (i32.const 1024))
        (func (export "init") (param i32 i32) (result i32) (i32.store8 (i32.const 0) (i32.const 0)) (i32.const 0)))"#;
    let component = componentize(wat, &wit, "wrong");
    let (_, err) = load_err("wrong-world.wasm", &component, WasmLimits::default());
    let text = err.to_string();
    assert!(matches!(err, WasmError::WrongWorld { .. }), "{text}");
    assert!(
        text.contains("handle"),
        "the error names what is missing: {text}"
    );
}

#[test]
fn init_that_traps_or_fails_is_refused_at_load() {
    let (_, err) = load_err(
        "init-trap.wasm",
        &scripted(1),
        WasmLimits::default().config("trap"),
    );
    assert!(
        matches!(
            err,
            WasmError::Init {
                kind: FailureKind::Unreachable,
                ..
            }
        ),
        "{err}"
    );
    let (_, err) = load_err(
        "init-fail.wasm",
        &scripted(1),
        WasmLimits::default().config("fail"),
    );
    assert!(
        matches!(
            err,
            WasmError::Init {
                kind: FailureKind::Error,
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string().contains("init fails as configured"),
        "{err}"
    );
}

#[test]
fn limits_out_of_range_are_refused() {
    let (_, err) = load_err(
        "limits.wasm",
        &scripted(1),
        WasmLimits::default().memory_bytes(1 << 40),
    );
    assert!(matches!(err, WasmError::Limits { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_load_leaves_running_agents_alone() {
    let rt = Runtime::new();
    let good =
        WasmAgentKind::load(write_temp("good.wasm", &scripted(1)), WasmLimits::default()).unwrap();
    rt.spawn("good", config(), good.factory()).unwrap();
    assert_eq!(ask(&rt, "good", b"a").await, b"a");
    assert!(WasmAgentKind::load(write_temp("bad.wasm", b"junk"), WasmLimits::default()).is_err());
    assert!(good.reload_bytes("bad reload", b"\0asm\x01\0\0\0").is_err());
    assert_eq!(good.generation(), 1);
    assert_eq!(ask(&rt, "good", b"b").await, b"b");
}
