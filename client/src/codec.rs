//! Framing: a 4-byte big-endian length prefix (tokio-util's
//! [`LengthDelimitedCodec`] defaults) around a bincode-encoded frame.
//!
//! ```text
//!  ┌──────────────────┬───────────────────────────────────────┐
//!  │ len: u32 BE      │ body: bincode(frame), len bytes       │
//!  └──────────────────┴───────────────────────────────────────┘
//! ```
//!
//! [`FrameCodec<In, Out>`] decodes `In` and encodes `Out`, so one type serves
//! both ends: the server uses `FrameCodec<ClientFrame, ServerFrame>`, the
//! client the reverse. Encoding writes straight into the output buffer (no
//! intermediate `Vec`); decoding checks the announced length against the
//! limit *before* buffering the body, so an oversized frame costs nothing.
//! Every decoding failure is a [`CodecError`]: untrusted bytes never panic.

use std::io::Write as _;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::wire::{DEFAULT_MAX_FRAME, MAX_FRAME_LIMIT, bincode_config};

/// Bytes of the length prefix.
pub const LENGTH_PREFIX: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The socket failed.
    #[error("connection I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The length prefix announces more than the limit.
    #[error(
        "frame of {len} bytes exceeds the limit of {max} bytes; send smaller batches or raise limits.max_frame_bytes"
    )]
    TooLarge {
        /// Announced (or encoded) body length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The body is not a valid frame of this protocol version.
    #[error(
        "malformed frame ({len} bytes): {detail}; is the peer speaking switchyard protocol v{}?",
        crate::wire::PROTOCOL_VERSION
    )]
    Malformed {
        /// Body length.
        len: usize,
        /// The decoder's message.
        detail: String,
    },
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame ({have} of {want} bytes received)")]
    Truncated {
        /// Bytes received (prefix included).
        have: usize,
        /// Bytes the frame needed (prefix included), when the prefix was complete.
        want: usize,
    },
    /// A frame could not be encoded (a bug, or a value bincode cannot carry).
    #[error("could not encode a frame: {0}")]
    Encode(String),
}

/// Length-delimited bincode frames: decodes `In`, encodes `Out`.
///
/// ```
/// use bytes::BytesMut;
/// use switchyard_client::codec::FrameCodec;
/// use switchyard_client::wire::{ClientFrame, Hello};
/// use tokio_util::codec::{Decoder, Encoder};
///
/// let mut codec: FrameCodec<ClientFrame, ClientFrame> = FrameCodec::new(1 << 20);
/// let mut buf = BytesMut::new();
/// let hello = ClientFrame::Hello(Hello { version: 1, token: String::new(), client: "doc".into() });
/// codec.encode(&hello, &mut buf).unwrap();
/// assert_eq!(codec.decode(&mut buf).unwrap(), Some(hello));
/// ```
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    framing: LengthDelimitedCodec,
    max: usize,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec accepting frame bodies up to `max_frame` bytes (clamped to
    /// 1..=[`MAX_FRAME_LIMIT`]).
    pub fn new(max_frame: usize) -> FrameCodec<In, Out> {
        let max = max_frame.clamp(1, MAX_FRAME_LIMIT);
        let framing = LengthDelimitedCodec::builder()
            .length_field_length(LENGTH_PREFIX)
            .max_frame_length(max)
            .new_codec();
        FrameCodec {
            framing,
            max,
            _types: PhantomData,
        }
    }

    /// The frame body limit.
    pub fn max_frame(&self) -> usize {
        self.max
    }
}

impl<In, Out> Default for FrameCodec<In, Out> {
    fn default() -> FrameCodec<In, Out> {
        FrameCodec::new(DEFAULT_MAX_FRAME)
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        match self.decode_raw(src)? {
            Some(body) => decode_body(&body).map(Some),
            None => Ok(None),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<In>, CodecError> {
        match self.decode_raw_eof(src)? {
            Some(body) => decode_body(&body).map(Some),
            None => Ok(None),
        }
    }
}

impl<In, Out> FrameCodec<In, Out> {
    /// Takes one frame body off `src` without decoding it (the server reads
    /// the handshake this way to answer any protocol version).
    pub fn decode_raw(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        if src.len() < LENGTH_PREFIX {
            return Ok(None);
        }
        let len = u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize;
        if len > self.max {
            return Err(CodecError::TooLarge { len, max: self.max });
        }
        if src.len() < LENGTH_PREFIX + len {
            src.reserve(LENGTH_PREFIX + len - src.len());
            return Ok(None);
        }
        // The whole frame is buffered, so the inner codec goes from head to
        // body in this one call and never keeps a half-read header between
        // calls (which would hide the next length prefix from the check above).
        match self.framing.decode(src)? {
            Some(body) => Ok(Some(body)),
            None => Err(CodecError::Malformed {
                len,
                detail: "length-delimited framing lost sync".into(),
            }),
        }
    }

    /// As [`FrameCodec::decode_raw`] at the end of the stream: leftover bytes are [`CodecError::Truncated`].
    pub fn decode_raw_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        match self.decode_raw(src)? {
            Some(body) => Ok(Some(body)),
            None if src.is_empty() => Ok(None),
            None => {
                let want = if src.len() >= LENGTH_PREFIX {
                    LENGTH_PREFIX + u32::from_be_bytes([src[0], src[1], src[2], src[3]]) as usize
                } else {
                    0
                };
                let have = src.len();
                src.advance(have);
                Err(CodecError::Truncated { have, want })
            }
        }
    }
}

/// Decodes raw frame bodies ([`FrameCodec::decode_raw`]) for peers that look
/// at a frame before choosing how to decode it.
#[derive(Debug)]
pub struct RawCodec(pub FrameCodec<(), ()>);

impl Decoder for RawCodec {
    type Item = BytesMut;
    type Error = CodecError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        self.0.decode_raw(src)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, CodecError> {
        self.0.decode_raw_eof(src)
    }
}

/// Decodes one frame body; trailing bytes are an error (a frame is exactly one message).
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    let malformed = |detail: String| CodecError::Malformed {
        len: body.len(),
        detail,
    };
    let (value, used) = bincode::serde::decode_from_slice(body, bincode_config())
        .map_err(|e| malformed(e.to_string()))?;
    if used != body.len() {
        return Err(malformed(format!(
            "{} trailing bytes after the message",
            body.len() - used
        )));
    }
    Ok(value)
}

impl<In, Out: Serialize> Encoder<&Out> for FrameCodec<In, Out> {
    type Error = CodecError;

    fn encode(&mut self, frame: &Out, dst: &mut BytesMut) -> Result<(), CodecError> {
        let start = dst.len();
        dst.put_u32(0);
        let mut writer = dst.writer();
        bincode::serde::encode_into_std_write(frame, &mut writer, bincode_config())
            .map_err(|e| CodecError::Encode(e.to_string()))?;
        writer.flush()?;
        let dst = writer.into_inner();
        let len = dst.len() - start - LENGTH_PREFIX;
        if len > self.max {
            dst.truncate(start);
            return Err(CodecError::TooLarge { len, max: self.max });
        }
        let prefix = u32::try_from(len).map_err(|_| CodecError::TooLarge { len, max: self.max })?;
        dst[start..start + LENGTH_PREFIX].copy_from_slice(&prefix.to_be_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{ClientFrame, Message, Request};
    use proptest::prelude::*;

    type Codec = FrameCodec<ClientFrame, ClientFrame>;

    fn tell(n: usize) -> ClientFrame {
        ClientFrame::Requests(vec![Request::Tell {
            agent: "echo".into(),
            messages: (0..n).map(|i| Message::new(vec![i as u8; 8])).collect(),
        }])
    }

    #[test]
    fn frames_round_trip_one_byte_at_a_time() {
        let mut codec = Codec::new(1 << 16);
        let mut wire = BytesMut::new();
        codec.encode(&tell(3), &mut wire).unwrap();
        codec
            .encode(&ClientFrame::Ping { nonce: 9 }, &mut wire)
            .unwrap();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                out.push(f);
            }
        }
        assert_eq!(out, vec![tell(3), ClientFrame::Ping { nonce: 9 }]);
    }

    #[test]
    fn oversized_length_is_refused_before_buffering() {
        let mut codec = Codec::new(1024);
        let mut buf = BytesMut::from(&[0, 0, 4, 1][..]);
        let err = codec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                CodecError::TooLarge {
                    len: 1025,
                    max: 1024
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn encoding_past_the_limit_fails_and_leaves_the_buffer() {
        let mut codec = Codec::new(64);
        let mut buf = BytesMut::from(&b"xy"[..]);
        assert!(matches!(
            codec.encode(&tell(20), &mut buf),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(&buf[..], b"xy");
    }

    #[test]
    fn truncated_stream_is_reported_at_eof() {
        let mut codec = Codec::new(1024);
        let mut buf = BytesMut::from(&[0, 0, 0, 10, 1, 2][..]);
        let err = codec.decode_eof(&mut buf).unwrap_err();
        assert!(
            matches!(err, CodecError::Truncated { have: 6, want: 14 }),
            "{err}"
        );
    }

    #[test]
    fn trailing_bytes_are_malformed() {
        let mut body =
            bincode::serde::encode_to_vec(ClientFrame::Ping { nonce: 1 }, bincode_config())
                .unwrap();
        body.push(0);
        assert!(matches!(
            decode_body::<ClientFrame>(&body),
            Err(CodecError::Malformed { .. })
        ));
    }

    #[test]
    fn frames_split_at_every_point_decode() {
        let mut wire = BytesMut::new();
        let mut enc = Codec::new(1 << 16);
        for n in [1, 50, 3] {
            enc.encode(&tell(n), &mut wire).unwrap();
        }
        for cut in 0..wire.len() {
            let mut codec = Codec::new(1 << 16);
            let mut buf = BytesMut::from(&wire[..cut]);
            let mut got = Vec::new();
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            buf.extend_from_slice(&wire[cut..]);
            while let Some(f) = codec.decode(&mut buf).unwrap() {
                got.push(f);
            }
            assert_eq!(got, vec![tell(1), tell(50), tell(3)], "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let mut codec = Codec::new(1024);
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
            let _ = codec.decode_eof(&mut buf);
        }

        #[test]
        fn random_bodies_with_valid_prefix_never_panic(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut codec = Codec::new(1024);
            let mut buf = BytesMut::new();
            buf.put_u32(body.len() as u32);
            buf.put_slice(&body);
            let _ = codec.decode(&mut buf);
        }
    }
}
