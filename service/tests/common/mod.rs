//! Test harness: a service on 127.0.0.1:0 with a shutdown trigger, and raw
//! protocol helpers for talking to it byte by byte.
#![allow(dead_code, reason = "each test file uses a different subset")]

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt as _, StreamExt as _};
use switchyard_client::codec::FrameCodec;
use switchyard_client::wire::{ClientFrame, Hello, PROTOCOL_VERSION, ServerFrame};
use switchyard_service::config::Config;
use switchyard_service::{Server, ServiceReport};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::Framed;

pub const TOKEN: &str = "test-token";

pub struct Running {
    pub tcp: SocketAddr,
    pub http: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<ServiceReport>,
}

impl Running {
    /// Stops the service and returns its report.
    pub async fn stop(mut self) -> ServiceReport {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(Duration::from_secs(20), &mut self.task)
            .await
            .expect("the service drains within 20s")
            .expect("the service task does not panic")
    }
}

/// The default agents plus `extra` TOML (limits etc.), listening on port 0 with TOKEN.
pub async fn start(extra: &str) -> Running {
    let text = format!(
        r#"
listen = {{ tcp = "127.0.0.1:0", http = "127.0.0.1:0" }}
auth = {{ token = "{TOKEN}" }}
shutdown = {{ grace_ms = 2000 }}
{extra}
[[agents]]
name = "echo"
kind = "native"
builtin = "echo"
pool_size = 2
[[agents]]
name = "counter"
kind = "native"
builtin = "counter"
"#
    );
    let config = Config::parse(&text, "test.toml")
        .unwrap()
        .validate()
        .unwrap();
    let server = Server::bind(config).await.unwrap();
    let (tcp, http) = (server.tcp_addr().unwrap(), server.http_addr().unwrap());
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    Running {
        tcp,
        http,
        stop: Some(tx),
        task,
    }
}

pub type Raw = Framed<TcpStream, FrameCodec<ServerFrame, ClientFrame>>;

/// A raw protocol connection.
pub async fn raw(addr: SocketAddr) -> Raw {
    let s = TcpStream::connect(addr).await.unwrap();
    Framed::new(s, FrameCodec::new(1 << 20))
}

/// A raw connection that has completed the handshake.
pub async fn raw_handshaken(addr: SocketAddr) -> Raw {
    let mut c = raw(addr).await;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        token: TOKEN.into(),
        client: "test".into(),
    };
    c.send(&ClientFrame::Hello(hello)).await.unwrap();
    match next(&mut c).await {
        Some(ServerFrame::Welcome { .. }) => c,
        other => panic!("expected Welcome, got {other:?}"),
    }
}

/// The next frame, or None at EOF or error; panics after 5s.
pub async fn next(c: &mut Raw) -> Option<ServerFrame> {
    match tokio::time::timeout(Duration::from_secs(5), c.next()).await {
        Ok(Some(Ok(f))) => Some(f),
        Ok(_) => None,
        Err(_) => panic!("no frame within 5s"),
    }
}

/// Writes raw bytes on a fresh connection and returns the first frame the server sends.
pub async fn send_bytes(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Option<ServerFrame> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    if half_close {
        s.shutdown().await.unwrap();
    }
    read_frame(&mut s).await
}

/// Reads one frame from a plain stream.
pub async fn read_frame(s: &mut TcpStream) -> Option<ServerFrame> {
    let mut buf = BytesMut::new();
    let mut codec: FrameCodec<ServerFrame, ClientFrame> = FrameCodec::new(1 << 20);
    loop {
        if let Some(f) = tokio_util::codec::Decoder::decode(&mut codec, &mut buf).unwrap() {
            return Some(f);
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_buf(&mut buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

/// True when the server closes the stream (EOF or reset) within 5s.
pub async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A minimal HTTP/1.1 request (Connection: close): returns status and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}
