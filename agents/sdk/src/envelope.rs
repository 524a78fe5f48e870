//! The message a handler receives, and its payload: a view into the batch
//! the host copied into guest memory, so handing a message to the agent
//! allocates and copies nothing per message.

use std::rc::Rc;

use crate::Kind;
use crate::bindings::switchyard::agent::types::Envelope as WireEnvelope;

/// One message, owned by the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Unique per host process; [`crate::host::reply`] answers an ask by it.
    pub id: u64,
    pub kind: Kind,
    /// The sending agent's id, when the sender is an agent.
    pub from: Option<u64>,
    /// For replies: the id of the ask they answer.
    pub correlation: Option<u64>,
    /// Routing key hash (key-affinity pools), if set.
    pub key: Option<u64>,
    pub payload: Payload,
}

impl From<WireEnvelope> for Envelope {
    fn from(w: WireEnvelope) -> Envelope {
        Envelope {
            id: w.id,
            kind: w.kind,
            from: w.from,
            correlation: w.correlation,
            key: w.key,
            payload: Payload::from(w.payload),
        }
    }
}

/// A message's bytes. Dereferences to `[u8]` (`&msg.payload` is a
/// `&[u8]`, `msg.payload.len()`, `msg.payload == b"ping"`). Cloning is
/// cheap (a reference count); keeping one keeps the whole batch it came
/// in alive, so keep `to_vec()` of a payload stored for long.
#[derive(Clone)]
pub struct Payload {
    buf: Rc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Payload {
    /// The bytes `start..end` of a shared batch buffer.
    pub(crate) fn shared(buf: &Rc<Vec<u8>>, start: usize, end: usize) -> Payload {
        debug_assert!(start <= end && end <= buf.len());
        Payload {
            buf: Rc::clone(buf),
            start,
            end,
        }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl AsRef<[u8]> for Payload {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Payload {
        let end = v.len();
        Payload {
            buf: Rc::new(v),
            start: 0,
            end,
        }
    }
}

impl From<&[u8]> for Payload {
    fn from(v: &[u8]) -> Payload {
        Payload::from(v.to_vec())
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Payload) -> bool {
        **self == **other
    }
}

impl Eq for Payload {}

impl PartialEq<[u8]> for Payload {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<&[u8]> for Payload {
    fn eq(&self, other: &&[u8]) -> bool {
        **self == **other
    }
}

impl<const N: usize> PartialEq<[u8; N]> for Payload {
    fn eq(&self, other: &[u8; N]) -> bool {
        **self == other[..]
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for Payload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Vec<u8>> for Payload {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == other[..]
    }
}
