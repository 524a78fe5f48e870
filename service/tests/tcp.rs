//! The binary protocol end to end on 127.0.0.1:0: the Rust client, many asks
//! in flight, and every kind of bad input and misbehaving client.

mod common;

use std::time::Duration;

use common::{TOKEN, closed, next, raw, raw_handshaken, read_frame, send_bytes, start};
use futures_util::SinkExt as _;
use switchyard_client::wire::{
    ClientFrame, ErrorCode, Message, Request, Response, ServerFrame, bincode_config,
};
use switchyard_client::{Client, ClientConfig, ClientError};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;

fn client_config(addr: std::net::SocketAddr) -> ClientConfig {
    ClientConfig::new(addr.to_string()).token(TOKEN)
}

fn error_code(frame: Option<ServerFrame>) -> ErrorCode {
    match frame {
        Some(ServerFrame::Error { code, .. }) => code,
        other => panic!("expected an Error frame, got {other:?}"),
    }
}

async fn assert_still_serving(addr: std::net::SocketAddr) {
    let c = Client::connect(client_config(addr).connections(1))
        .await
        .unwrap();
    let reply = c.ask("echo", "still here").await.unwrap();
    assert_eq!(&reply.payload[..], b"still here");
    c.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_and_asks_through_the_client_are_all_accounted_for() {
    let svc = start("").await;
    let c = Client::connect(client_config(svc.tcp).connections(1))
        .await
        .unwrap();
    for _ in 0..1000 {
        c.tell("counter", "").await.unwrap();
    }
    c.tell_batch("counter", (0..500).map(|_| Message::new("")).collect())
        .await
        .unwrap();
    let total = c.ask("counter", "").await.unwrap();
    assert_eq!(
        u64::from_le_bytes(total.payload[..].try_into().unwrap()),
        1500
    );
    assert!(
        c.stats()
            .frames_sent
            .load(std::sync::atomic::Ordering::Relaxed)
            < 1500,
        "tells are batched"
    );
    c.close().await;
    let report = svc.stop().await;
    assert!(report.shutdown.accounting.balanced(), "{report}");
    assert_eq!(report.shutdown.accounting.handled, 1501);
    assert_eq!(report.tcp_tells, 1500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_asks_are_in_flight_on_one_connection() {
    let svc = start("").await;
    let c = Client::connect(client_config(svc.tcp).connections(1))
        .await
        .unwrap();
    let asks = (0..2000u32).map(|i| {
        let c = c.clone();
        async move { (i, c.ask("echo", i.to_le_bytes().to_vec()).await) }
    });
    for (i, r) in futures_util::future::join_all(asks).await {
        assert_eq!(&r.unwrap().payload[..], &i.to_le_bytes());
    }
    let err = c.ask("nobody", "x").await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Failed {
                code: ErrorCode::UnknownAgent,
                ..
            }
        ),
        "{err}"
    );
    c.close().await;
    assert!(svc.stop().await.shutdown.accounting.balanced());
}

/// One ask at a time, so each reply is the only wake its connection's
/// writer gets: a reply that came before the reader handed its ask over
/// (decision 0025) must still be written, or that ask times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_asks_each_get_their_reply() {
    let svc = start("").await;
    let c = Client::connect(client_config(svc.tcp).connections(1))
        .await
        .unwrap();
    for i in 0..5_000u32 {
        let reply = c
            .ask_timeout("echo", i.to_le_bytes().to_vec(), Duration::from_secs(2))
            .await
            .unwrap_or_else(|e| panic!("ask {i}: {e}"));
        assert_eq!(&reply.payload[..], &i.to_le_bytes());
    }
    c.close().await;
    let report = svc.stop().await;
    assert!(report.shutdown.accounting.balanced(), "{report}");
    assert_eq!(report.tcp_asks, 5_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_and_others_keep_working() {
    let svc = start("").await;
    let err = Client::connect(ClientConfig::new(svc.tcp.to_string()).token("wrong"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{err}"
    );
    assert_still_serving(svc.tcp).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_protocol_version_gets_unsupported_version() {
    let svc = start("").await;
    // A future client: Hello is variant 0 with the version first, then fields this server does not know.
    let body =
        bincode::serde::encode_to_vec((0u32, 99u16, TOKEN, "future", 7u64), bincode_config())
            .unwrap();
    let mut bytes = (body.len() as u32).to_be_bytes().to_vec();
    bytes.extend_from_slice(&body);
    assert_eq!(
        error_code(send_bytes(svc.tcp, &bytes, false).await),
        ErrorCode::UnsupportedVersion
    );
    assert_still_serving(svc.tcp).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_get_an_error_frame_and_a_close() {
    let svc = start("").await;
    // An HTTP request on the binary port: "GET " reads as a 1.2 GB length.
    let http = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(
        error_code(send_bytes(svc.tcp, http, false).await),
        ErrorCode::FrameTooLarge
    );
    // A small frame of noise instead of Hello.
    assert_eq!(
        error_code(send_bytes(svc.tcp, &[0, 0, 0, 3, 0xff, 0xfe, 0xfd], false).await),
        ErrorCode::HandshakeRequired
    );
    // Noise after a good handshake.
    let mut c = raw_handshaken(svc.tcp).await;
    c.get_mut()
        .write_all(&[0, 0, 0, 4, 9, 9, 9, 9])
        .await
        .unwrap();
    assert_eq!(error_code(next(&mut c).await), ErrorCode::BadFrame);
    assert!(
        next(&mut c).await.is_none(),
        "the connection is closed after the error"
    );
    assert_still_serving(svc.tcp).await;
    let report = svc.stop().await;
    assert!(report.closed_for_errors >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_refused_before_it_is_buffered() {
    let svc = start("limits = { max_frame_bytes = 4096 }").await;
    let mut c = raw_handshaken(svc.tcp).await;
    c.get_mut()
        .write_all(&(1u32 << 20).to_be_bytes())
        .await
        .unwrap();
    assert_eq!(error_code(next(&mut c).await), ErrorCode::FrameTooLarge);
    assert_still_serving(svc.tcp).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_frame_is_reported() {
    let svc = start("").await;
    let mut c = raw_handshaken(svc.tcp).await;
    c.get_mut()
        .write_all(&[0, 0, 0, 100, 1, 2, 3])
        .await
        .unwrap();
    c.get_mut().shutdown().await.unwrap();
    assert_eq!(error_code(next(&mut c).await), ErrorCode::Truncated);
    assert_still_serving(svc.tcp).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_and_idle_timeouts_close_silent_connections() {
    // Long enough for the second connection to finish its handshake on a
    // loaded machine (200 ms was not), short enough for `next`'s 5 s.
    let svc = start("limits = { handshake_timeout_ms = 2000, idle_timeout_ms = 1000 }").await;
    let mut silent = TcpStream::connect(svc.tcp).await.unwrap();
    assert_eq!(
        error_code(read_frame(&mut silent).await),
        ErrorCode::HandshakeRequired
    );
    let mut idle = raw_handshaken(svc.tcp).await;
    assert_eq!(error_code(next(&mut idle).await), ErrorCode::IdleTimeout);
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_disconnects_mid_request_loses_nothing_accepted() {
    let svc = start("").await;
    for _ in 0..5 {
        let mut c = raw_handshaken(svc.tcp).await;
        let reqs: Vec<Request> = (0..200u64)
            .map(|id| Request::Ask {
                id,
                agent: "echo".into(),
                timeout_ms: 1000,
                message: Message::new(vec![1; 64]),
            })
            .chain(std::iter::once(Request::Tell {
                agent: "counter".into(),
                messages: vec![Message::new(""); 100],
            }))
            .collect();
        c.send(&ClientFrame::Requests(reqs)).await.unwrap();
        drop(c);
    }
    assert_still_serving(svc.tcp).await;
    let report = svc.stop().await;
    assert!(report.shutdown.accounting.balanced(), "{report}");
    assert!(report.shutdown.accounting.accepted > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_closed_and_memory_stays_bounded() {
    let svc =
        start("limits = { write_timeout_ms = 300, max_in_flight = 64, outbound_queue = 16 }").await;
    let c = raw_handshaken(svc.tcp).await;
    let mut s: TcpStream = c.into_inner();
    // Keep asking for 64 KiB echoes and never read: the server's writes stall.
    let mut codec: switchyard_client::codec::FrameCodec<ServerFrame, ClientFrame> =
        Default::default();
    let flood = async {
        for round in 0u64.. {
            let reqs = (0..16)
                .map(|i| Request::Ask {
                    id: round * 16 + i,
                    agent: "echo".into(),
                    timeout_ms: 1000,
                    message: Message::new(vec![7; 64 << 10]),
                })
                .collect();
            let mut buf = bytes::BytesMut::new();
            tokio_util::codec::Encoder::encode(&mut codec, &ClientFrame::Requests(reqs), &mut buf)
                .unwrap();
            if s.write_all(&buf).await.is_err() {
                return round;
            }
        }
        unreachable!()
    };
    let rounds = tokio::time::timeout(Duration::from_secs(15), flood)
        .await
        .expect("the server closes a client that never reads");
    assert!(rounds > 0);
    assert_still_serving(svc.tcp).await;
    let report = svc.stop().await;
    assert!(report.closed_for_errors >= 1, "{report}");
    assert!(report.shutdown.accounting.balanced(), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_wait_until_one_closes() {
    let svc = start("limits = { max_connections = 1 }").await;
    let first = Client::connect(client_config(svc.tcp).connections(1))
        .await
        .unwrap();
    let cfg = ClientConfig {
        connect_timeout: Duration::from_millis(300),
        ..client_config(svc.tcp).connections(1)
    };
    assert!(
        matches!(Client::connect(cfg).await, Err(ClientError::Connect { .. })),
        "second connection is not served"
    );
    first.close().await;
    assert_still_serving(svc.tcp).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_connected_clients_and_closes() {
    let svc = start("").await;
    let mut c = raw_handshaken(svc.tcp).await;
    let report = svc.stop().await;
    assert_eq!(error_code(next(&mut c).await), ErrorCode::ShuttingDown);
    let mut s = c.into_inner();
    assert!(closed(&mut s).await);
    assert!(report.shutdown.accounting.balanced());
    let _ = raw;
}

/// One frame of `n` asks to the echo pool, each carrying its id as payload.
fn echo_asks(n: u64) -> ClientFrame {
    let reqs = (0..n)
        .map(|id| Request::Ask {
            id,
            agent: "echo".into(),
            timeout_ms: 5000,
            message: Message::new(id.to_le_bytes().to_vec()),
        })
        .collect();
    ClientFrame::Requests(reqs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_read_before_a_stop_are_all_answered_before_shutting_down() {
    const ASKS: u64 = 3000;
    let mut svc = Some(start("limits = { max_in_flight = 64 }").await);
    let mut c = raw_handshaken(svc.as_ref().unwrap().tcp).await;
    c.send(&echo_asks(ASKS)).await.unwrap();
    let mut answered = std::collections::HashSet::new();
    let mut stopping = None;
    let last = loop {
        match next(&mut c).await {
            Some(ServerFrame::Responses(rs)) => {
                for r in rs {
                    let Response::Reply { id, message } = r else {
                        panic!("every ask gets its reply, got {r:?}");
                    };
                    assert_eq!(&message.payload[..], &id.to_le_bytes());
                    assert!(answered.insert(id), "ask {id} answered twice");
                }
                // Stop at the first replies, while most asks wait for an
                // in-flight permit: the frame was read, so all are answered.
                if let Some(svc) = svc.take() {
                    stopping = Some(tokio::spawn(svc.stop()));
                }
            }
            other => break other,
        }
    };
    assert_eq!(error_code(last), ErrorCode::ShuttingDown);
    assert_eq!(answered.len() as u64, ASKS);
    let report = stopping.expect("replies came").await.unwrap();
    assert!(report.shutdown.accounting.balanced(), "{report}");
    assert_eq!(report.shutdown.accounting.handled, ASKS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asks_sent_before_the_client_half_closes_are_all_answered() {
    const ASKS: u64 = 3000;
    let svc = start("limits = { max_in_flight = 4096 }").await;
    let mut c = raw_handshaken(svc.tcp).await;
    c.send(&echo_asks(ASKS)).await.unwrap();
    // The reader sees end of input while asks are still in flight; their
    // replies are still written before the server closes its half.
    c.get_mut().shutdown().await.unwrap();
    let mut answered = 0;
    while let Some(frame) = next(&mut c).await {
        let ServerFrame::Responses(rs) = frame else {
            panic!("only replies are expected, got {frame:?}");
        };
        for r in rs {
            assert!(
                matches!(r, Response::Reply { id, .. } if id < ASKS),
                "{r:?}"
            );
            answered += 1;
        }
    }
    assert_eq!(answered, ASKS);
    let report = svc.stop().await;
    assert!(report.shutdown.accounting.balanced(), "{report}");
}
