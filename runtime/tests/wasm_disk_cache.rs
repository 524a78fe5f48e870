//! The on-disk compiled-component cache: once the in-memory cache has
//! forgotten a component, loading it again is a disk hit; a damaged entry is
//! rejected, removed and the component recompiled, never loaded and never a
//! crash.
//!
//! One test function: the cache directory and its counters are process-wide.

mod wasm_common;

use std::path::{Path, PathBuf};

use switchyard_runtime::Runtime;
use switchyard_runtime::wasm::engine::forget_compiled;
use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits, disk_cache_stats, set_disk_cache};
use wasm_common::{ask, config, scripted};

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .expect("cache dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn load(bytes: &[u8]) -> std::sync::Arc<WasmAgentKind> {
    WasmAgentKind::from_bytes("cached.wasm", bytes, WasmLimits::default()).expect("loads")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_components_are_cached_on_disk() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("wasm-disk-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    set_disk_cache(Some(dir.clone())).expect("cache dir");
    let bytes = scripted(2);

    // First load: a miss, compiled and written.
    let s0 = disk_cache_stats();
    load(&bytes);
    let s1 = disk_cache_stats();
    assert_eq!(
        (s1.misses, s1.writes, s1.hits),
        (s0.misses + 1, s0.writes + 1, s0.hits)
    );
    let files = entries(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        files[0].extension().is_some_and(|e| e == "cwasm"),
        "{files:?}"
    );

    // In memory: no disk access at all.
    load(&bytes);
    assert_eq!(disk_cache_stats(), s1);

    // Forgotten in memory (as after a restart): a disk hit, nothing written,
    // and the compilation read back runs.
    forget_compiled();
    let kind = load(&bytes);
    let s2 = disk_cache_stats();
    assert_eq!(
        (s2.hits, s2.writes, s2.misses),
        (s1.hits + 1, s1.writes, s1.misses)
    );
    let rt = Runtime::new();
    rt.spawn("from-disk", config(), kind.factory())
        .expect("spawn");
    assert_eq!(ask(&rt, "from-disk", b"hi").await, b"v2:hi");

    // Damage the entry: rejected, removed, recompiled and written again.
    let mut data = std::fs::read(&files[0]).expect("entry");
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&files[0], &data).expect("damage the entry");
    forget_compiled();
    let kind = load(&bytes);
    let s3 = disk_cache_stats();
    assert_eq!(s3.rejected, s2.rejected + 1, "{s3:?}");
    assert_eq!(s3.writes, s2.writes + 1, "{s3:?}");
    assert_eq!(s3.hits, s2.hits, "{s3:?}");
    rt.spawn("recompiled", config(), kind.factory())
        .expect("spawn");
    assert_eq!(ask(&rt, "recompiled", b"ok").await, b"v2:ok");

    // A truncated entry (as after a crash mid-write without the rename) is
    // rejected the same way.
    std::fs::write(&files[0], b"SYCWASM1").expect("truncate the entry");
    forget_compiled();
    load(&bytes);
    let s4 = disk_cache_stats();
    assert_eq!((s4.rejected, s4.writes), (s3.rejected + 1, s3.writes + 1));

    // Off: nothing read or written.
    set_disk_cache(None).expect("off");
    forget_compiled();
    load(&bytes);
    assert_eq!(disk_cache_stats(), s4);
    rt.shutdown(std::time::Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&dir);
}
