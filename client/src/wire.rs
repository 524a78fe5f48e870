//! The messages of Switchyard's binary wire protocol, version [`PROTOCOL_VERSION`].
//!
//! Every frame on a connection is one of these enums, encoded with bincode 2
//! ([`bincode_config`]) and carried in a 4-byte big-endian length prefix (see
//! [`crate::codec`] and `docs/protocol.md`, which gives the byte layout).
//!
//! ```text
//!  client                                     server
//!    │── ClientFrame::Hello{version,token} ──►│  first frame, within the handshake timeout
//!    │◄─ ServerFrame::Welcome{limits} ────────│  (or Error{code} and close)
//!    │── Requests[Tell{agent,[msg..]},        │
//!    │            Ask{id,agent,timeout,msg}] ►│  many per frame
//!    │◄─ Responses[Reply{id,msg},             │
//!    │             AskFailed{id,code},        │
//!    │             TellFailed{agent,count}] ──│  many per frame, any order
//!    │◄─ Error{code,message} ─────────────────│  fatal: the server closes after it
//! ```
//!
//! **Compatibility.** Variant order and field order are the encoding: they never
//! change within a protocol version. `Hello` stays variant 0 with `version`
//! as its first field in every version, so a server can always read the
//! version a client speaks and answer [`ErrorCode::UnsupportedVersion`].

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks. Bumped on any change to the enums
/// below; a server refuses other versions with [`ErrorCode::UnsupportedVersion`].
pub const PROTOCOL_VERSION: u16 = 1;

/// Largest frame body any peer may be configured to accept (64 MiB): also the
/// bincode decode limit, so a crafted length can never make the decoder
/// allocate more than this.
pub const MAX_FRAME_LIMIT: usize = 64 << 20;

/// Default largest frame body (8 MiB): thousands of small envelopes per frame,
/// while one frame cannot pin much memory per connection.
pub const DEFAULT_MAX_FRAME: usize = 8 << 20;

/// The bincode configuration of the protocol: little-endian, variable-length
/// integers (bincode's `standard()`), with a decode limit of [`MAX_FRAME_LIMIT`].
pub fn bincode_config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_FRAME_LIMIT>()
}

/// A frame sent by a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ClientFrame {
    /// Must be the first frame of a connection.
    Hello(Hello),
    /// Work: tells and asks, handled in order of arrival (asks complete in any order).
    Requests(Vec<Request>),
    /// Keep-alive; answered with [`ServerFrame::Pong`].
    Ping {
        /// Echoed back.
        nonce: u64,
    },
}

/// The handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the client speaks ([`PROTOCOL_VERSION`]).
    pub version: u16,
    /// The shared token; empty when the server runs without one.
    pub token: String,
    /// Free-form client name for the server's logs.
    pub client: String,
}

/// One unit of work in a [`ClientFrame::Requests`] frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Request {
    /// Fire and forget: deliver these messages to `agent` (one mailbox operation).
    Tell {
        /// Agent or pool name.
        agent: String,
        /// The messages, in order.
        messages: Vec<Message>,
    },
    /// Request/reply: answered by a `Reply` or `AskFailed` carrying `id`.
    Ask {
        /// Chosen by the client, unique among its in-flight asks on this connection.
        id: u64,
        /// Agent or pool name.
        agent: String,
        /// How long the server waits for the agent's reply (capped by the server).
        timeout_ms: u32,
        /// The request.
        message: Message,
    },
}

/// A message as it travels on the wire: the serialisable part of an envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Opaque payload (bincode: varint length, then the bytes).
    #[serde(with = "payload_bytes")]
    pub payload: Bytes,
    /// Hashed routing key for key-affinity pools (FNV-1a of the key bytes).
    pub key: Option<u64>,
    /// Conversation id grouping related messages.
    pub conversation: Option<u64>,
    /// Time to live from arrival at the server, in milliseconds.
    pub ttl_ms: Option<u32>,
    /// FIPA-style intent, 0..=7 (0: none); unknown values are read as none.
    pub performative: u8,
    /// Small key/value headers (the server keeps at most 16).
    pub headers: Vec<(String, String)>,
}

impl Message {
    /// A message with this payload and nothing else.
    pub fn new(payload: impl Into<Bytes>) -> Message {
        Message {
            payload: payload.into(),
            ..Message::default()
        }
    }
}

/// A frame sent by the server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ServerFrame {
    /// The handshake succeeded; the server's limits for this connection.
    Welcome {
        /// The version the server speaks.
        version: u16,
        /// Largest frame body the server accepts.
        max_frame_bytes: u32,
        /// Asks the server works on at once for this connection; more wait unread.
        max_in_flight: u32,
        /// Upper bound the server applies to ask timeouts.
        max_ask_timeout_ms: u32,
    },
    /// Answers, in completion order.
    Responses(Vec<Response>),
    /// A connection-level error. The server closes the connection after it.
    Error {
        /// Machine-readable code.
        code: ErrorCode,
        /// What happened and what to do.
        message: String,
    },
    /// Answer to [`ClientFrame::Ping`].
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
}

/// The outcome of one request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Response {
    /// The agent's reply to ask `id`.
    Reply {
        /// The ask's id.
        id: u64,
        /// The reply.
        message: Message,
    },
    /// Ask `id` got no reply.
    AskFailed {
        /// The ask's id.
        id: u64,
        /// Why.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
    /// `count` messages of a tell to `agent` were not accepted (tells that
    /// succeed are not acknowledged).
    TellFailed {
        /// The agent named in the tell.
        agent: String,
        /// How many messages were refused.
        count: u32,
        /// Why.
        code: ErrorCode,
        /// Detail.
        message: String,
    },
}

/// Error codes. Codes below 100 in `docs/protocol.md` close the connection
/// (sent in [`ServerFrame::Error`]); the others answer one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The frame is not a valid message of this protocol version.
    BadFrame,
    /// The client speaks another protocol version.
    UnsupportedVersion,
    /// Missing or wrong token.
    Unauthorized,
    /// The frame is larger than the server's limit.
    FrameTooLarge,
    /// The first frame was not `Hello`, or `Hello` came twice.
    HandshakeRequired,
    /// Nothing arrived within the idle timeout.
    IdleTimeout,
    /// The connection ended in the middle of a frame.
    Truncated,
    /// The server is draining; reconnect elsewhere or later.
    ShuttingDown,
    /// No agent or pool has this name.
    UnknownAgent,
    /// The agent's mailbox is full (policy reject).
    MailboxFull,
    /// The message's deadline passed while waiting for mailbox room.
    DeadlineExpired,
    /// The agent stopped or is shutting down.
    AgentClosed,
    /// The agent did not reply in time.
    AskTimeout,
    /// The agent finished the request without replying.
    NoReply,
    /// A request field is invalid (for example a zero timeout).
    InvalidRequest,
}

impl ErrorCode {
    /// A stable snake_case label (logs, metrics, HTTP error bodies).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad_frame",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::FrameTooLarge => "frame_too_large",
            ErrorCode::HandshakeRequired => "handshake_required",
            ErrorCode::IdleTimeout => "idle_timeout",
            ErrorCode::Truncated => "truncated",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::UnknownAgent => "unknown_agent",
            ErrorCode::MailboxFull => "mailbox_full",
            ErrorCode::DeadlineExpired => "deadline_expired",
            ErrorCode::AgentClosed => "agent_closed",
            ErrorCode::AskTimeout => "ask_timeout",
            ErrorCode::NoReply => "no_reply",
            ErrorCode::InvalidRequest => "invalid_request",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a first frame is not an acceptable handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HelloError {
    /// Not a `Hello` (or not decodable at all).
    NotHello,
    /// A `Hello` of another protocol version.
    Version(u16),
    /// A `Hello` of this version that does not decode.
    Malformed(String),
}

/// Reads a handshake frame body of any protocol version: the variant index
/// and version come first in every version, so a mismatch is reported as
/// [`HelloError::Version`] even when the rest would not decode.
pub fn decode_hello(body: &[u8]) -> Result<Hello, HelloError> {
    let prefix: Result<((u32, u16), usize), _> =
        bincode::serde::decode_from_slice(body, bincode_config());
    match prefix {
        Ok(((0, v), _)) if v != PROTOCOL_VERSION => return Err(HelloError::Version(v)),
        Ok(((0, _), _)) => {}
        _ => return Err(HelloError::NotHello),
    }
    match crate::codec::decode_body::<ClientFrame>(body) {
        Ok(ClientFrame::Hello(h)) => Ok(h),
        Ok(_) => Err(HelloError::NotHello),
        Err(e) => Err(HelloError::Malformed(e.to_string())),
    }
}

/// Serde for a [`Bytes`] payload as a byte string (what `serde_bytes` does for
/// `Vec<u8>`): one length and a memcpy instead of a sequence of u8s.
mod payload_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Bytes::from(b.into_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_layout_is_variant_zero_then_version() {
        let hello = ClientFrame::Hello(Hello {
            version: 7,
            token: "t".into(),
            client: String::new(),
        });
        let bytes = bincode::serde::encode_to_vec(&hello, bincode_config()).unwrap();
        // variant 0 (varint), version 7 (varint), token len 1, 't', client len 0
        assert_eq!(bytes, vec![0, 7, 1, b't', 0]);
    }

    #[test]
    fn hello_of_another_version_is_recognised() {
        let v9 =
            bincode::serde::encode_to_vec((0u32, 9u16, "tok", 42u64), bincode_config()).unwrap();
        assert_eq!(decode_hello(&v9), Err(HelloError::Version(9)));
        let ping = bincode::serde::encode_to_vec(ClientFrame::Ping { nonce: 1 }, bincode_config())
            .unwrap();
        assert_eq!(decode_hello(&ping), Err(HelloError::NotHello));
        let hello = Hello {
            version: PROTOCOL_VERSION,
            token: "t".into(),
            client: "c".into(),
        };
        let ok = bincode::serde::encode_to_vec(ClientFrame::Hello(hello.clone()), bincode_config())
            .unwrap();
        assert_eq!(decode_hello(&ok), Ok(hello));
    }

    #[test]
    fn payload_is_a_byte_string() {
        let m = Message::new(&b"abc"[..]);
        let bytes = bincode::serde::encode_to_vec(&m, bincode_config()).unwrap();
        // len 3, 'a' 'b' 'c', key None, conversation None, ttl None, performative 0, headers len 0
        assert_eq!(bytes, vec![3, b'a', b'b', b'c', 0, 0, 0, 0, 0]);
        let (back, _): (Message, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode_config()).unwrap();
        assert_eq!(back, m);
    }
}
