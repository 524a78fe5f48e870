//! The message that travels through Switchyard.
//!
//! An [`Envelope`] is plain data plus, for asks, a local reply slot. Everything a
//! transport needs to carry it to another process (ids, addresses, kind, deadline,
//! headers, payload) is in the serialisable part; the reply slot is the in-process
//! half of a request/reply pair and is replaced by a correlation id on the wire.
//!
//! Cost on the hot path: building an envelope allocates nothing besides what the
//! caller puts in the payload. Ids come from a per-thread block of a global counter,
//! addresses are `Copy` ids, headers are boxed only when present.

use std::cell::Cell;
use std::fmt;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::address::AgentId;
use crate::payload::Payload;

/// Unique (per process) id of one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(NonZeroU64);

impl MessageId {
    /// Ids are handed out to threads in blocks of this many, so the shared
    /// counter is touched once per block rather than once per message.
    const BLOCK: u64 = 4096;

    /// A fresh id, unique within this process.
    pub fn next() -> MessageId {
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        thread_local! {
            static RANGE: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
        }
        RANGE.with(|range| {
            let (mut next, mut end) = range.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(Self::BLOCK, Ordering::Relaxed);
                end = next + Self::BLOCK;
            }
            range.set((next + 1, end));
            MessageId(NonZeroU64::new(next).expect("the id counter starts at 1 and never wraps"))
        })
    }

    /// Rebuilds an id received from a peer (wire protocol, tests).
    pub fn from_raw(raw: u64) -> Option<MessageId> {
        NonZeroU64::new(raw).map(MessageId)
    }

    /// The numeric value, for logs and wire encodings.
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "m{}", self.0)
    }
}

/// What the sender expects to happen with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Fire and forget.
    Tell = 0,
    /// Request that expects exactly one reply.
    Ask = 1,
    /// The answer to an ask; `correlation` names the ask.
    Reply = 2,
    /// A copy of a message published to a topic.
    Publish = 3,
}

/// Communicative intent, after FIPA-ACL, for agents that want to match on it.
/// The runtime never interprets it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum Performative {
    /// No stated intent.
    #[default]
    None = 0,
    /// Asking the receiver to do something.
    Request = 1,
    /// Telling the receiver a fact.
    Inform = 2,
    /// Offering to do something.
    Propose = 3,
    /// Agreeing to a proposal or request.
    Accept = 4,
    /// Declining a proposal or request.
    Refuse = 5,
    /// Reporting that an action failed.
    Failure = 6,
    /// Asking for the value of something.
    Query = 7,
}

/// At most this many headers per envelope: headers are routing hints, not a
/// second payload.
pub const MAX_HEADERS: usize = 16;

/// Small string key/value pairs, boxed only when present.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers(Vec<(Box<str>, Box<str>)>);

impl Headers {
    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }

    /// All pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The in-process reply path of an ask.
///
/// Dropping it unanswered tells the asker that no reply will come.
#[derive(Debug)]
pub struct ReplyTo(pub(crate) oneshot::Sender<Envelope>);

/// One message.
///
/// ```
/// use switchyard_runtime::{Envelope, Kind};
/// let msg = Envelope::tell(b"hello".as_slice()).with_header("trace", "abc");
/// assert_eq!(msg.kind(), Kind::Tell);
/// assert_eq!(msg.payload().as_ref(), b"hello");
/// assert_eq!(msg.header("trace"), Some("abc"));
/// ```
#[derive(Debug)]
pub struct Envelope {
    id: MessageId,
    pub(crate) from: Option<AgentId>,
    pub(crate) to: Option<AgentId>,
    kind: Kind,
    performative: Performative,
    /// Whether `key` holds a routing key (kept beside the other small
    /// fields instead of in an `Option<u64>`, which would pad to 16 bytes).
    has_key: bool,
    pub(crate) correlation: Option<MessageId>,
    conversation: Option<NonZeroU64>,
    /// Stored as a stamp (8 bytes, not 16); Tokio's paused test clock is a
    /// std instant underneath, so this round-trips exactly.
    pub(crate) deadline: Option<Stamp>,
    key: u64,
    headers: Option<Box<Headers>>,
    payload: Payload,
    pub(crate) reply: Option<ReplyTo>,
    /// When the message entered its mailbox (set only while latency is recorded).
    pub(crate) enqueued_at: Option<Tick>,
}

/// A latency timestamp: nanoseconds on the TSC clock (`quanta`), about 10 ns
/// to read where `Instant::now()` takes 25-30 ns on the development machine;
/// latency recording reads it once per message and twice per batch. Only
/// differences between ticks mean anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Tick(NonZeroU64);

/// The runtime's own calibrated clock and the raw reading ticks count from.
/// Read through [`quanta::Clock::raw`]: `quanta::Instant::now` would also
/// look up a thread-local mock clock on every call.
fn tick_clock() -> &'static (quanta::Clock, u64) {
    static CLOCK: std::sync::OnceLock<(quanta::Clock, u64)> = std::sync::OnceLock::new();
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let origin = clock.raw();
        (clock, origin)
    })
}

impl Tick {
    /// Calibrates the clock now (up to 200 ms, once per process), so that
    /// no message pays for it.
    pub fn init() {
        tick_clock();
    }

    /// Now.
    #[inline]
    pub fn now() -> Tick {
        let (clock, origin) = tick_clock();
        Tick::from_nanos(clock.delta_as_nanos(*origin, clock.raw()))
    }

    /// A tick `nanos` after the origin (tests).
    pub fn from_nanos(nanos: u64) -> Tick {
        Tick(NonZeroU64::new(nanos.saturating_add(1)).expect("+1 keeps it non-zero"))
    }

    /// Nanoseconds from `earlier` to this tick, 0 if `earlier` is later.
    #[inline]
    pub fn nanos_since(self, earlier: Tick) -> u64 {
        self.0.get().saturating_sub(earlier.0.get())
    }
}

/// A point in time as nanoseconds since a process-wide origin: 8 bytes where
/// an `Option<Instant>` takes 16, which keeps [`Envelope`] within 128 bytes
/// (the size up to which moving it is a few vector stores, not a `memmove`
/// call; see `docs/decisions/0006-mailbox-and-envelope.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    fn origin() -> std::time::Instant {
        static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        *ORIGIN.get_or_init(std::time::Instant::now)
    }

    /// `at` (clamped to the origin, which is the first stamp ever taken).
    pub fn at(at: std::time::Instant) -> Stamp {
        let nanos = at.saturating_duration_since(Stamp::origin()).as_nanos();
        // 2^64 ns is 584 years of uptime; the +1 keeps the niche.
        Stamp(NonZeroU64::new(u64::try_from(nanos).unwrap_or(u64::MAX - 1) + 1).expect("+1"))
    }

    /// The instant this stamp stands for.
    pub fn instant(self) -> std::time::Instant {
        Stamp::origin() + std::time::Duration::from_nanos(self.0.get() - 1)
    }
}

impl Envelope {
    fn with_kind(kind: Kind, payload: Payload) -> Envelope {
        Envelope {
            id: MessageId::next(),
            from: None,
            to: None,
            kind,
            performative: Performative::None,
            has_key: false,
            correlation: None,
            conversation: None,
            deadline: None,
            key: 0,
            headers: None,
            payload,
            reply: None,
            enqueued_at: None,
        }
    }

    /// A fire-and-forget message.
    pub fn tell(payload: impl Into<Payload>) -> Envelope {
        Envelope::with_kind(Kind::Tell, payload.into())
    }

    /// A request; the runtime attaches the reply path when it is sent with `ask`.
    pub fn ask(payload: impl Into<Payload>) -> Envelope {
        Envelope::with_kind(Kind::Ask, payload.into())
    }

    /// A reply to `request`, carrying its id as correlation and its conversation.
    pub fn reply_to(request: &Envelope, payload: impl Into<Payload>) -> Envelope {
        let mut reply = Envelope::with_kind(Kind::Reply, payload.into());
        reply.correlation = Some(request.id);
        reply.conversation = request.conversation;
        reply.from = request.to;
        reply.to = request.from;
        reply
    }

    /// A message for every subscriber of a topic.
    pub fn publish(payload: impl Into<Payload>) -> Envelope {
        Envelope::with_kind(Kind::Publish, payload.into())
    }

    /// Sets the deadline after which the message is not handled but dead-lettered.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Envelope {
        self.deadline = Some(Stamp::at(deadline.into_std()));
        self
    }

    /// Sets the deadline to `ttl` from now.
    #[must_use]
    pub fn with_ttl(self, ttl: std::time::Duration) -> Envelope {
        self.with_deadline(Instant::now() + ttl)
    }

    /// Sets the communicative intent.
    #[must_use]
    pub fn with_performative(mut self, performative: Performative) -> Envelope {
        self.performative = performative;
        self
    }

    /// Sets the conversation id that groups related messages.
    #[must_use]
    pub fn with_conversation(mut self, conversation: u64) -> Envelope {
        self.conversation = NonZeroU64::new(conversation);
        self
    }

    /// Sets the routing key used by key-affinity pools: the same key always
    /// reaches the same pool member. The key is hashed with FNV-1a (stable
    /// across processes and versions).
    #[must_use]
    pub fn with_key(self, key: &[u8]) -> Envelope {
        self.with_key_hash(fnv1a(key))
    }

    /// Sets an already-hashed routing key (see [`Envelope::with_key`]).
    #[must_use]
    pub fn with_key_hash(mut self, hash: u64) -> Envelope {
        self.key = hash;
        self.has_key = true;
        self
    }

    /// Adds a header. Beyond [`MAX_HEADERS`] the oldest header is replaced.
    #[must_use]
    pub fn with_header(mut self, key: &str, value: &str) -> Envelope {
        let headers = self.headers.get_or_insert_with(Default::default);
        if headers.0.len() == MAX_HEADERS {
            headers.0.remove(0);
        }
        headers.0.push((key.into(), value.into()));
        self
    }

    /// Sets the sending agent (the runtime does this for messages sent through a context).
    #[must_use]
    pub fn with_from(mut self, from: AgentId) -> Envelope {
        self.from = Some(from);
        self
    }

    /// Replaces the id, for transports that carry ids across processes.
    #[must_use]
    pub fn with_id(mut self, id: MessageId) -> Envelope {
        self.id = id;
        self
    }

    /// Sets the correlation id (which request this message answers).
    #[must_use]
    pub fn with_correlation(mut self, correlation: MessageId) -> Envelope {
        self.correlation = Some(correlation);
        self
    }

    /// This message's id.
    pub fn id(&self) -> MessageId {
        self.id
    }

    /// The sending agent, if the message came from one.
    pub fn from(&self) -> Option<AgentId> {
        self.from
    }

    /// The agent the message was delivered to (set on delivery).
    pub fn to(&self) -> Option<AgentId> {
        self.to
    }

    /// Tell, ask, reply or publish.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The communicative intent.
    pub fn performative(&self) -> Performative {
        self.performative
    }

    /// For replies: the id of the ask this answers.
    pub fn correlation(&self) -> Option<MessageId> {
        self.correlation
    }

    /// The conversation id, if one was set.
    pub fn conversation(&self) -> Option<u64> {
        self.conversation.map(NonZeroU64::get)
    }

    /// The deadline, if one was set.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline.map(|d| Instant::from_std(d.instant()))
    }

    /// The hashed routing key, if one was set.
    pub fn key(&self) -> Option<u64> {
        self.has_key.then_some(self.key)
    }

    /// One header's value.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers.as_deref().and_then(|h| h.get(key))
    }

    /// All headers (empty when none were set).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.as_deref().into_iter().flat_map(Headers::iter)
    }

    /// The payload; cloning it copies an inline one and shares a buffer.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// Takes the payload out, leaving an empty one.
    pub fn take_payload(&mut self) -> Payload {
        std::mem::take(&mut self.payload)
    }

    /// True when the deadline has passed at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expired_at(Stamp::at(now.into_std()))
    }

    /// [`Envelope::is_expired`] with `now` already converted, for loops
    /// over a batch (one conversion per batch, not per message).
    pub(crate) fn expired_at(&self, now: Stamp) -> bool {
        self.deadline.is_some_and(|d| d <= now)
    }

    /// True when this ask still has someone waiting for its reply.
    pub fn expects_reply(&self) -> bool {
        self.reply.as_ref().is_some_and(|r| !r.0.is_closed())
    }

    /// A copy of the serialisable part (the reply slot stays behind).
    pub fn clone_data(&self) -> Envelope {
        Envelope {
            id: self.id,
            from: self.from,
            to: self.to,
            kind: self.kind,
            performative: self.performative,
            has_key: self.has_key,
            correlation: self.correlation,
            conversation: self.conversation,
            deadline: self.deadline,
            key: self.key,
            headers: self.headers.clone(),
            payload: self.payload.clone(),
            reply: None,
            enqueued_at: None,
        }
    }

    pub(crate) fn set_kind(&mut self, kind: Kind) {
        self.kind = kind;
    }
}

/// 64-bit FNV-1a: small, stable, and good enough to spread routing keys.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_fits_in_128_bytes() {
        // Above 128 bytes every move of an envelope becomes a memmove call.
        assert!(size_of::<Envelope>() <= 128, "{}", size_of::<Envelope>());
    }

    #[test]
    fn stamps_round_trip_to_the_nanosecond() {
        let first = Stamp::at(std::time::Instant::now());
        let later = std::time::Instant::now() + std::time::Duration::from_micros(1500);
        let s = Stamp::at(later);
        assert!(s > first);
        assert_eq!(s.instant(), later);
    }

    #[test]
    fn ids_are_unique_across_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| {
                    (0..10_000)
                        .map(|_| MessageId::next().get())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n);
    }

    #[test]
    fn reply_carries_correlation_and_conversation() {
        let req = Envelope::ask("q").with_conversation(7);
        let rep = Envelope::reply_to(&req, "a");
        assert_eq!(rep.kind(), Kind::Reply);
        assert_eq!(rep.correlation(), Some(req.id()));
        assert_eq!(rep.conversation(), Some(7));
    }

    #[test]
    fn headers_are_capped() {
        let mut e = Envelope::tell("");
        for i in 0..(MAX_HEADERS + 3) {
            e = e.with_header(&format!("k{i}"), "v");
        }
        assert_eq!(e.headers().count(), MAX_HEADERS);
        assert_eq!(e.header("k0"), None);
        assert_eq!(e.header(&format!("k{}", MAX_HEADERS + 2)), Some("v"));
    }

    #[test]
    fn routing_key_hash_is_stable() {
        // Published FNV-1a test vector: the hash of "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Envelope::tell("").with_key(b"a").key(), Some(fnv1a(b"a")));
    }

    #[test]
    fn expiry_is_inclusive() {
        let now = Instant::now();
        let e = Envelope::tell("").with_deadline(now);
        assert!(e.is_expired(now));
        assert!(!Envelope::tell("").is_expired(now));
    }
}
