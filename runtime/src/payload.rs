//! A message's bytes: small ones inline, larger ones shared.
//!
//! Most agent messages are small: a counter's increment, a key, an id. A
//! [`bytes::Bytes`] for each of them is a heap allocation on the sender's
//! core that the agent frees on another core, which costs more than the rest
//! of a tell (decision 0023). A [`Payload`] of at most [`INLINE_CAPACITY`]
//! bytes lives inside the envelope instead; a larger one is a `Bytes`,
//! shared and never copied when forwarded.
//!
//! ```
//! use bytes::Bytes;
//! use switchyard_runtime::{INLINE_CAPACITY, Payload};
//!
//! let small = Payload::copy_from_slice(&7u64.to_le_bytes());
//! assert!(small.is_inline());
//! assert_eq!(&small[..], &7u64.to_le_bytes());
//!
//! // A `Bytes` the caller already holds is kept as it is: no copy.
//! let big = Bytes::from(vec![0u8; INLINE_CAPACITY + 1]);
//! let shared = Payload::from(big.clone());
//! assert!(!shared.is_inline());
//! assert_eq!(shared.into_bytes().as_ptr(), big.as_ptr());
//! ```

use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::{Bytes, BytesMut};

/// The largest payload kept inside the envelope, in bytes. With it a
/// [`Payload`] is no larger than a `Bytes` (32 bytes on 64-bit targets).
pub const INLINE_CAPACITY: usize = 23;

/// The bytes of a message (see the [module docs](self)).
///
/// Dereferences to `[u8]`. [`Payload::into_bytes`] and [`Payload::to_bytes`]
/// give a `Bytes` where one is needed (they allocate only for an inline one).
#[derive(Clone)]
pub struct Payload(Repr);

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        data: [u8; INLINE_CAPACITY],
    },
    Shared(Bytes),
}

impl Payload {
    /// An empty payload.
    pub const fn new() -> Payload {
        Payload(Repr::Inline {
            len: 0,
            data: [0; INLINE_CAPACITY],
        })
    }

    /// A copy of `bytes`: inline when it fits, else one allocation.
    pub fn copy_from_slice(bytes: &[u8]) -> Payload {
        Payload::inline(bytes)
            .unwrap_or_else(|| Payload(Repr::Shared(Bytes::copy_from_slice(bytes))))
    }

    fn inline(bytes: &[u8]) -> Option<Payload> {
        (bytes.len() <= INLINE_CAPACITY).then(|| {
            let mut data = [0; INLINE_CAPACITY];
            data[..bytes.len()].copy_from_slice(bytes);
            Payload(Repr::Inline {
                len: bytes.len() as u8,
                data,
            })
        })
    }

    /// `bytes` inline when it fits, releasing its buffer here; else `bytes`
    /// itself. For payloads cut from a larger buffer (a decoded frame), so
    /// that the agent's core neither frees nor shares the buffer.
    pub fn compact(bytes: Bytes) -> Payload {
        Payload::inline(&bytes).unwrap_or(Payload(Repr::Shared(bytes)))
    }

    /// True when the bytes live inside the payload (no heap buffer).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }

    /// The bytes as a `Bytes`: the shared buffer itself, or a copy of
    /// an inline payload.
    pub fn into_bytes(self) -> Bytes {
        match self.0 {
            Repr::Inline { len, data } => Bytes::copy_from_slice(&data[..usize::from(len)]),
            Repr::Shared(b) => b,
        }
    }

    /// [`Payload::into_bytes`] of a clone.
    pub fn to_bytes(&self) -> Bytes {
        self.clone().into_bytes()
    }
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::new()
    }
}

impl Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, data } => &data[..usize::from(*len)],
            Repr::Shared(b) => b,
        }
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

/// Kept as it is, never copied: the caller chose a shared buffer.
impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Payload {
        Payload(Repr::Shared(b))
    }
}

/// Inline when it fits (the vector is freed here, on the sender's core).
impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        Payload::inline(&v).unwrap_or_else(|| Payload(Repr::Shared(Bytes::from(v))))
    }
}

impl From<Box<[u8]>> for Payload {
    fn from(b: Box<[u8]>) -> Payload {
        Payload::from(b.into_vec())
    }
}

/// Frozen and kept as it is, like a `Bytes`.
impl From<BytesMut> for Payload {
    fn from(b: BytesMut) -> Payload {
        Payload::from(b.freeze())
    }
}

impl From<String> for Payload {
    fn from(s: String) -> Payload {
        Payload::from(s.into_bytes())
    }
}

/// Static bytes are referenced, not copied.
impl From<&'static [u8]> for Payload {
    fn from(s: &'static [u8]) -> Payload {
        Payload(Repr::Shared(Bytes::from_static(s)))
    }
}

impl<const N: usize> From<&'static [u8; N]> for Payload {
    fn from(s: &'static [u8; N]) -> Payload {
        Payload::from(s.as_slice())
    }
}

impl From<&'static str> for Payload {
    fn from(s: &'static str) -> Payload {
        Payload::from(s.as_bytes())
    }
}

impl From<Payload> for Bytes {
    fn from(p: Payload) -> Bytes {
        p.into_bytes()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl Eq for Payload {}

/// Comparisons with what a `Bytes` compares with, by content.
macro_rules! eq_by_content {
    ($($t:ty),*) => {$(
        impl PartialEq<$t> for Payload {
            fn eq(&self, other: &$t) -> bool {
                **self == *AsRef::<[u8]>::as_ref(other)
            }
        }
    )*};
}

eq_by_content!([u8], &[u8], str, &str, Vec<u8>, Bytes);

impl Hash for Payload {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

impl fmt::Debug for Payload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The escaped form `Bytes` prints.
        write!(f, "b\"")?;
        for &b in self.iter() {
            match b {
                b'\n' => write!(f, "\\n")?,
                b'\r' => write!(f, "\\r")?,
                b'\t' => write!(f, "\\t")?,
                b'\0' => write!(f, "\\0")?,
                b'\\' | b'"' => write!(f, "\\{}", b as char)?,
                0x20..0x7f => write!(f, "{}", b as char)?,
                _ => write!(f, "\\x{b:02x}")?,
            }
        }
        write!(f, "\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_is_no_larger_than_bytes() {
        assert_eq!(size_of::<Payload>(), size_of::<Bytes>());
    }

    #[test]
    fn small_copies_are_inline_and_large_ones_shared() {
        for len in [0, 1, 8, INLINE_CAPACITY, INLINE_CAPACITY + 1, 4096] {
            let bytes: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let p = Payload::copy_from_slice(&bytes);
            assert_eq!(p.is_inline(), len <= INLINE_CAPACITY, "len {len}");
            assert_eq!(&p[..], &bytes[..]);
            assert_eq!(p.to_bytes(), Bytes::from(bytes.clone()));
            let from_vec = Payload::from(bytes.clone());
            assert_eq!(from_vec.is_inline(), len <= INLINE_CAPACITY);
            assert_eq!(from_vec, p);
        }
    }

    #[test]
    fn a_shared_buffer_is_never_copied() {
        let b = Bytes::from(vec![7u8; 3]);
        let p = Payload::from(b.clone());
        assert!(!p.is_inline(), "a Bytes stays a Bytes, even a small one");
        assert_eq!(p.clone().into_bytes().as_ptr(), b.as_ptr());
        assert!(Payload::compact(b.clone()).is_inline());
        let big = Bytes::from(vec![7u8; INLINE_CAPACITY + 1]);
        assert_eq!(
            Payload::compact(big.clone()).into_bytes().as_ptr(),
            big.as_ptr()
        );
        let s = Payload::from(b"static".as_slice());
        assert!(!s.is_inline());
        assert_eq!(s.into_bytes().as_ptr(), b"static".as_ptr());
    }

    #[test]
    fn debug_and_equality_follow_the_bytes() {
        let p = Payload::copy_from_slice(b"a\n\x01\0'\"\\\xff");
        assert_eq!(
            format!("{p:?}"),
            format!("{:?}", Bytes::from_static(b"a\n\x01\0'\"\\\xff"))
        );
        assert_eq!(p, Payload::from(Bytes::from_static(b"a\n\x01\0'\"\\\xff")));
        assert_eq!(p, b"a\n\x01\0'\"\\\xff".as_slice());
        assert_eq!(Payload::default(), Payload::copy_from_slice(b""));
    }
}
