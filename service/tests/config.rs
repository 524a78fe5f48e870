//! Configuration errors name the file, the key, the value and what is expected.

use switchyard_service::config::{Config, ConfigError, Overrides};

fn err(text: &str) -> String {
    match Config::parse(text, "my.toml").and_then(|c| c.validate()) {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn the_embedded_default_is_valid_and_loopback_only() {
    let c = Config::embedded().unwrap().validate().unwrap();
    assert!(c.listeners.tcp.unwrap().ip().is_loopback());
    assert!(c.listeners.http.unwrap().ip().is_loopback());
    assert!(c.token.is_none());
    assert_eq!(
        c.agents.iter().map(|a| a.name.as_str()).collect::<Vec<_>>(),
        ["echo", "counter", "fanout"]
    );
    // The file on disk is the embedded one.
    let disk = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/switchyard.toml"
    ))
    .unwrap();
    assert_eq!(disk, switchyard_service::config::DEFAULT_CONFIG);
}

#[test]
fn a_typo_names_the_file_line_and_key() {
    let e = err("[defaults]\ncapcity = 5\n");
    assert!(
        e.contains("my.toml") && e.contains("line 2") && e.contains("capcity"),
        "{e}"
    );
}

#[test]
fn a_wrong_type_names_the_value_and_expectation() {
    let e = err("[defaults]\noverflow = \"bounce\"\n");
    assert!(e.contains("bounce") && e.contains("drop_oldest"), "{e}");
}

#[test]
fn out_of_range_values_name_key_value_and_range() {
    let e = err("[[agents]]\nname = \"a\"\nkind = \"native\"\nbuiltin = \"echo\"\npool_size = 0\n");
    assert!(
        e.contains("my.toml")
            && e.contains("agents[0].pool_size")
            && e.contains("= 0")
            && e.contains("1..="),
        "{e}"
    );
    let e = err("[limits]\nmax_frame_bytes = 1\n");
    assert!(e.contains("limits.max_frame_bytes"), "{e}");
}

#[test]
fn agent_entries_are_checked() {
    let e = err("[[agents]]\nname = \"a\"\nkind = \"python\"\n");
    assert!(e.contains("agents[0].kind") && e.contains("python"), "{e}");
    let e = err("[[agents]]\nname = \"f\"\nkind = \"native\"\nbuiltin = \"fanout\"\n");
    assert!(e.contains("agents[0].targets"), "{e}");
    let e = err("[[agents]]\nname = \"w\"\nkind = \"wasm\"\n");
    assert!(e.contains("agents[0].path"), "{e}");
    let e =
        err("[[agents]]\nname = \"w\"\nkind = \"native\"\nbuiltin = \"echo\"\nmemory_mib = 4\n");
    assert!(e.contains("agents[0].memory_mib"), "{e}");
    let e = err("[[agents]]\nname = \"w\"\nkind = \"wasm\"\npath = \"a.wasm\"\nmemory_mib = 65\n");
    assert!(e.contains("agents[0].memory_mib"), "{e}");
    let e = err(
        "[[agents]]\nname = \"w\"\nkind = \"wasm\"\npath = \"a.wasm\"\ncapabilities = { network = true }\n",
    );
    assert!(
        e.contains("agents[0].capabilities.network") && e.contains("no network"),
        "{e}"
    );
    let e = err("[wasm]\ncache_dir = \"\"\n");
    assert!(e.contains("wasm.cache_dir"), "{e}");
    let two = "[[agents]]\nname = \"a\"\nkind = \"native\"\nbuiltin = \"echo\"\n";
    let e = err(&format!("{two}{two}"));
    assert!(e.contains("agents[1].name"), "{e}");
}

#[test]
fn a_public_listener_needs_a_token() {
    let e = err("[listen]\nhttp = \"0.0.0.0:8080\"\n");
    assert!(
        e.contains("auth.token") && e.contains("0.0.0.0:8080") && e.contains("loopback"),
        "{e}"
    );
    let ok = Config::parse(
        "[listen]\nhttp = \"0.0.0.0:8080\"\n[auth]\ntoken = \"s\"\n",
        "x",
    )
    .unwrap()
    .validate();
    assert!(ok.is_ok());
}

#[test]
fn overrides_win_and_are_named_in_errors() {
    let c = Config::embedded().unwrap();
    assert_eq!(c.clone().validate().unwrap().workers, 0, "one per CPU");
    let o = Overrides {
        tcp: Some("127.0.0.1:9999".into()),
        grace_ms: Some(5),
        workers: Some(1),
        ..Overrides::default()
    };
    let r = c.clone().with_overrides(&o).validate().unwrap();
    assert_eq!(r.listeners.tcp.unwrap().port(), 9999);
    assert_eq!(r.grace, std::time::Duration::from_millis(5));
    assert_eq!(r.workers, 1);
    let too_many = Overrides {
        workers: Some(5000),
        ..Overrides::default()
    };
    let e = c
        .clone()
        .with_overrides(&too_many)
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SWITCHYARD_WORKERS") && e.contains("runtime.workers") && e.contains("5000"),
        "{e}"
    );
    let bad = Overrides {
        tcp: Some("nonsense".into()),
        ..Overrides::default()
    };
    let e = c.with_overrides(&bad).validate().unwrap_err().to_string();
    assert!(
        e.contains("SWITCHYARD_TCP") && e.contains("listen.tcp") && e.contains("nonsense"),
        "{e}"
    );
}

#[test]
fn a_missing_file_says_which() {
    let e = Config::load(std::path::Path::new("/no/such/switchyard.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(e.to_string().contains("/no/such/switchyard.toml"));
}

#[test]
fn lazy_start_comes_from_the_defaults_and_an_agent_overrides_it() {
    let text = r#"
[defaults]
lazy_start = true

[[agents]]
name = "users"
kind = "native"
builtin = "echo"
pool_size = 16

[[agents]]
name = "ticker"
kind = "native"
builtin = "counter"
lazy_start = false
"#;
    let c = Config::parse(text, "my.toml").unwrap().validate().unwrap();
    let lazy: Vec<_> = c
        .agents
        .iter()
        .map(|a| (a.name.as_str(), a.config.lazy_start))
        .collect();
    assert_eq!(lazy, [("users", true), ("ticker", false)]);
    let embedded = Config::embedded().unwrap().validate().unwrap();
    assert!(embedded.agents.iter().all(|a| !a.config.lazy_start));
    let e = err("[defaults]\nlazy_start = \"yes\"\n");
    assert!(e.contains("my.toml") && e.contains("lazy_start"), "{e}");
}

#[test]
fn runtime_workers_parse_and_bad_keys_are_named() {
    let r = Config::parse("[runtime]\nworkers = 2\n", "x")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(r.workers, 2);
    let e = Config::parse("[runtime]\nthreads = 2\n", "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("threads") && e.contains("workers"), "{e}");
    let e = Config::parse("[runtime]\nworkers = -1\n", "x")
        .unwrap_err()
        .to_string();
    assert!(e.contains("workers"), "{e}");
}

#[test]
fn park_spin_is_off_by_default_and_bounded() {
    let embedded = Config::embedded().unwrap().validate().unwrap();
    assert_eq!(embedded.park_spin, std::time::Duration::ZERO);
    let r = Config::parse("[runtime]\npark_spin_us = 50\n", "x")
        .unwrap()
        .validate()
        .unwrap();
    assert_eq!(r.park_spin, std::time::Duration::from_micros(50));
    let e = Config::parse("[runtime]\npark_spin_us = 20000\n", "my.toml")
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("my.toml") && e.contains("runtime.park_spin_us") && e.contains("0..=10000"),
        "{e}"
    );
}
