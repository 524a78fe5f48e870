//! Spawns `N` idle echo agents from one task and shuts them down: a fixed
//! workload for instruction counting (`valgrind --tool=callgrind`), which is
//! repeatable on a busy machine where the wall-clock spawn bench is not.
//!
//! ```sh
//! cargo build --release -p switchyard-benches --example spawn_count
//! valgrind --tool=callgrind target/release/examples/spawn_count 20000
//! ```
//! Run it with `0` agents too and subtract, to get instructions per spawn.
//! A second argument `lazy` spawns with `AgentConfig::lazy_start`.

use switchyard_benches::{names, run_in_task, tokio_runtime};
use switchyard_examples::Echo;
use switchyard_runtime::{AgentConfig, Runtime};

/// The allocator the `switchyard` binary ships with (decision 0019).
#[global_allocator]
static ALLOC: switchyard_benches::MiMalloc = switchyard_benches::MiMalloc;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let lazy = std::env::args().nth(2).is_some_and(|a| a == "lazy");
    let config = AgentConfig::default().lazy_start(lazy);
    let tokio = tokio_runtime();
    let names = names("idle", n);
    let spawned = run_in_task(&tokio, async move {
        let rt = Runtime::new();
        let t = std::time::Instant::now();
        for name in names.iter() {
            rt.spawn(name, config, || Echo)
                .expect("valid, unique names");
        }
        let took = t.elapsed();
        let count = rt.agent_count();
        rt.shutdown(std::time::Duration::from_secs(30)).await;
        (count, took)
    });
    println!("spawned {} in {:?}", spawned.0, spawned.1);
}
