//! Hot reload: the component is replaced while messages keep arriving;
//! nothing queued is lost and the new version handles everything after the swap.

mod wasm_common;

use std::time::Duration;

use switchyard_runtime::wasm::{WasmAgentKind, WasmLimits};
use switchyard_runtime::{Envelope, Runtime};
use wasm_common::{ask, config, scripted, write_temp};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_while_messages_arrive_loses_nothing() {
    let rt = Runtime::new();
    let kind =
        WasmAgentKind::load(write_temp("v1.wasm", &scripted(1)), WasmLimits::default()).unwrap();
    rt.spawn("echo", config().capacity(100_000), kind.factory())
        .unwrap();
    rt.spawn("counter", config(), kind.factory()).unwrap();
    assert_eq!(ask(&rt, "echo", b"x").await, b"x");
    assert_eq!(ask(&rt, "counter", b"count").await, 1u64.to_le_bytes());

    // A steady stream of asks while the swap happens: at least 2,000, and
    // on until 100 after the first answer from v2 (the swap waits for a
    // compile, which may outlast 2,000 asks), at most 1,000,000.
    let sender = {
        let rt = rt.clone();
        tokio::spawn(async move {
            let mut replies = Vec::new();
            let mut first_v2 = None;
            for i in 0..1_000_000u32 {
                let r = rt
                    .ask(
                        "echo",
                        Envelope::ask(i.to_string().into_bytes()),
                        Duration::from_secs(10),
                    )
                    .await;
                let r = r.map(|e| e.payload().to_vec());
                if first_v2.is_none() && r.as_ref().is_ok_and(|p| p.starts_with(b"v2:")) {
                    first_v2 = Some(i);
                }
                replies.push((i, r));
                if i >= 2_000 && first_v2.is_some_and(|f| i >= f + 100) {
                    break;
                }
                if i % 100 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            replies
        })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    // A burst queued right before the swap: none of it may be lost.
    let burst: Vec<Envelope> = (0..500)
        .map(|_| Envelope::tell(b"count".as_slice()))
        .collect();
    rt.tell_batch("counter", burst).await.unwrap();
    let v2 = write_temp("v2.wasm", &scripted(2));
    assert_eq!(kind.reload(&v2).unwrap(), 2);
    let swapped_at = std::time::Instant::now();
    let replies = sender.await.unwrap();
    assert!(replies.len() >= 2_000);
    let mut seen_v2 = false;
    for (i, r) in &replies {
        let payload = r.as_ref().unwrap_or_else(|e| panic!("ask {i} lost: {e}"));
        let text = String::from_utf8_lossy(payload);
        if text.starts_with("v2:") {
            seen_v2 = true;
            assert_eq!(text, format!("v2:{i}"));
        } else {
            assert!(!seen_v2, "ask {i} answered by v1 after v2 had answered");
            assert_eq!(text, i.to_string());
        }
    }
    assert!(
        seen_v2,
        "the new version answered nothing ({:?} after the swap)",
        swapped_at.elapsed()
    );
    // Everything after the swap is handled by v2, and key-value state carried over.
    assert_eq!(ask(&rt, "echo", b"y").await, b"v2:y");
    assert_eq!(ask(&rt, "counter", b"count").await, 502u64.to_le_bytes());
    let report = rt.shutdown(Duration::from_secs(5)).await;
    assert!(report.accounting.balanced(), "{report:?}");
    assert_eq!(report.accounting.dead_lettered(), 0, "{report:?}");
}
