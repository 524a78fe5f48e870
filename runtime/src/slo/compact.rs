//! Latency histograms that hold only the buckets they have seen.
//!
//! Both types below use the buckets of an HdrHistogram over 1 µs..60 s at 2
//! significant figures (256 unit-wide buckets below 256 µs, then 128 per
//! power of two), numbered by a [`Key`] that grows with the value. They differ
//! in how they store counts:
//! - [`CompactHistogram`], the hot-path recorder of one tick's interval:
//!   chunks of 32 counts (256 bytes and a mask) allocated on first use, so recording is a
//!   `leading_zeros`, an index, an add and a bit set in the chunk's mask of
//!   used counts; reads and resets visit only the masked counts. A chunk
//!   left unused for a whole interval is freed at the next reset, so a rare
//!   slow sample costs 256 bytes for about a second.
//! - [`SparseHistogram`], what agents keep (cumulative histograms, window
//!   slots): sorted `(key, count)` pairs, 16 bytes per distinct bucket,
//!   merged from an interval once per tick.
//!
//! A dense 2-figure HdrHistogram commits 20 KiB each, and an agent keeps 16
//! histograms; see docs/decisions/0008-compact-agent-histograms.md. Reads
//! compute percentiles in one pass with HdrHistogram's semantics, or convert
//! to an HdrHistogram ([`Buckets::merge_into`]) by recording each count at
//! its bucket's lowest value, which is what HdrHistogram's own `add` does
//! across precisions.

use super::histogram::{HIGHEST_US, LOWEST_US, LatencyHistogram, Percentiles, agent_histogram};

/// A bucket's number: `magnitude * SUBS + sub`, ascending with its values.
pub type Key = u32;

/// Buckets per magnitude (power of two) at 2 significant figures.
const SUBS: usize = 128;
/// Counts per chunk of a [`CompactHistogram`]: a quarter of a magnitude.
const CHUNK: usize = 32;
/// Magnitude of the highest trackable value (60 s = 2^25.8 µs).
const MAGNITUDES: usize = magnitude_of(HIGHEST_US) + 1;

/// Magnitude of `us` (already clamped): values under 128 are magnitude 0,
/// 128..256 magnitude 1, then one per power of two.
const fn magnitude_of(us: u64) -> usize {
    if us < SUBS as u64 {
        0
    } else {
        // msb >= 7, so the magnitude is >= 1.
        (63 - us.leading_zeros() as usize) - 6
    }
}

/// The bucket holding `us` microseconds (clamped to the trackable range).
#[inline]
fn key_of(us: u64) -> Key {
    let us = us.clamp(LOWEST_US, HIGHEST_US);
    let mag = magnitude_of(us);
    let sub = if mag == 0 {
        us as usize
    } else {
        ((us >> (mag - 1)) as usize) - SUBS
    };
    (mag * SUBS + sub) as Key
}

/// Lowest value of bucket `key`.
fn lowest(key: Key) -> u64 {
    let (mag, sub) = (key as usize / SUBS, key as usize % SUBS);
    if mag == 0 {
        sub as u64
    } else {
        ((SUBS + sub) as u64) << (mag - 1)
    }
}

/// Width of bucket `key`: 1 µs up to 256 µs, then doubling per magnitude.
fn width(key: Key) -> u64 {
    1 << (key as usize / SUBS).saturating_sub(1)
}

/// Quantiles read by [`Buckets::percentiles`], ascending.
const QUANTILES: [f64; 4] = [0.50, 0.90, 0.99, 0.999];

/// Read access shared by both histogram types.
pub trait Buckets {
    /// Samples recorded.
    fn len(&self) -> u64;

    /// Non-empty buckets as `(key, count)`, ascending.
    fn buckets(&self) -> impl Iterator<Item = (Key, u64)> + '_;

    /// Whether nothing is recorded.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Percentiles in one pass, with HdrHistogram's semantics: a quantile's
    /// bucket is the first whose running count reaches `ceil(q * len)`.
    /// Returns them twice: with each bucket's highest value (as
    /// [`Percentiles::of`]) and with its lowest (as [`Percentiles::floor_of`],
    /// what SLO checks compare). The mean uses bucket midpoints.
    fn percentiles(&self) -> (Percentiles, Percentiles) {
        let len = self.len();
        if len == 0 {
            return (Percentiles::default(), Percentiles::default());
        }
        let targets = QUANTILES.map(|q| ((q * len as f64).ceil() as u64).max(1));
        let mut found = [0; 4];
        let (mut next, mut seen, mut sum, mut last) = (0, 0u64, 0f64, 0);
        for (key, n) in self.buckets() {
            seen += n;
            sum += (lowest(key) + width(key) / 2) as f64 * n as f64;
            last = key;
            while next < targets.len() && seen >= targets[next] {
                found[next] = key;
                next += 1;
            }
        }
        let high = |k| lowest(k) + width(k) - 1;
        let read = |value: &dyn Fn(Key) -> u64| Percentiles {
            count: len,
            p50: value(found[0]),
            p90: value(found[1]),
            p99: value(found[2]),
            p999: value(found[3]),
            max: high(last),
            mean: sum / len as f64,
        };
        (read(&high), read(&lowest))
    }

    /// Adds every sample into `into`, an HdrHistogram of any precision.
    fn merge_into(&self, into: &mut LatencyHistogram) {
        for (key, n) in self.buckets() {
            // Cannot fail: every recorded bucket's lowest value is in range.
            let _ = into.record_n(lowest(key).max(LOWEST_US), n);
        }
    }

    /// The samples as a 2-significant-figure HdrHistogram.
    fn to_hdr(&self) -> LatencyHistogram {
        let mut h = agent_histogram();
        self.merge_into(&mut h);
        h
    }
}

/// The hot-path recorder: counts in chunks of 32 allocated on first use.
///
/// Each chunk has a 32-bit mask of its non-zero counts, so reading the
/// histogram (once per tick, several times over) and resetting it touch only
/// the buckets that were recorded, not every count of every chunk. At 10,000
/// busy agents that took the tick from 45 to 33 µs per agent (decision 0017).
#[derive(Clone, Debug, Default)]
pub struct CompactHistogram {
    /// Chunk `key / CHUNK`; grown only as far as the largest value seen.
    chunks: Vec<Option<Box<Chunk>>>,
    len: u64,
}

/// A quarter of a magnitude's counts, and which of them are non-zero.
///
/// `repr(C)` keeps the mask first, in the cache line of the first counts:
/// a reader (the ticker, on another core than the agent that wrote the
/// chunk) misses once for the mask and the low counts together, instead of
/// once more for a mask behind the last count.
#[derive(Clone, Debug)]
#[repr(C)]
struct Chunk {
    /// Bit `j`: `counts[j]` is non-zero.
    used: u32,
    counts: [u64; CHUNK],
}

const _: () = assert!(
    CHUNK == u32::BITS as usize,
    "one mask bit per count of a chunk"
);

impl Chunk {
    /// The recorded counts as `(index, count)`, ascending.
    fn used(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        bits(self.used).map(|j| (j, self.counts[j]))
    }
}

impl CompactHistogram {
    /// An empty histogram; allocates nothing.
    pub const fn new() -> CompactHistogram {
        CompactHistogram {
            chunks: Vec::new(),
            len: 0,
        }
    }

    /// Records `us` microseconds (clamped to the trackable range) `n` times.
    #[inline]
    pub fn record_n(&mut self, us: u64, n: u64) {
        self.add_key(key_of(us) as usize, n);
    }

    /// Small enough to be inlined into the recorder: allocating a chunk is
    /// out of line.
    #[inline]
    fn add_key(&mut self, key: usize, n: u64) {
        if n == 0 {
            return;
        }
        let (chunk, j) = (key / CHUNK, key % CHUNK);
        if !matches!(self.chunks.get(chunk), Some(Some(_))) {
            self.allocate(chunk);
        }
        if let Some(Some(c)) = self.chunks.get_mut(chunk) {
            c.counts[j] += n;
            c.used |= 1 << j;
            self.len += n;
        }
    }

    #[cold]
    #[inline(never)]
    fn allocate(&mut self, chunk: usize) {
        if self.chunks.len() <= chunk {
            self.chunks.resize_with(chunk + 1, || None);
        }
        self.chunks[chunk] = Some(Box::new(Chunk {
            used: 0,
            counts: [0; CHUNK],
        }));
    }

    /// Records `nanos` (converted to whole microseconds, clamped) `n` times.
    #[inline]
    pub fn record_nanos(&mut self, nanos: u64, n: u64) {
        self.record_n(nanos / 1_000, n);
    }

    /// Adds every sample of `other`, bucket by bucket.
    pub fn add(&mut self, other: &impl Buckets) {
        for (key, n) in other.buckets() {
            self.add_key(key as usize, n);
        }
    }

    /// Empties the histogram. Chunks that were used since the last reset are
    /// zeroed and kept (the next interval likely fills them again); the
    /// others are freed, so one slow sample does not pin a chunk forever.
    pub fn reset(&mut self) {
        for slot in &mut self.chunks {
            match slot {
                Some(c) if c.used == 0 => *slot = None,
                Some(c) => {
                    for j in bits(c.used) {
                        c.counts[j] = 0;
                    }
                    c.used = 0;
                }
                None => {}
            }
        }
        while self.chunks.last().is_some_and(Option::is_none) {
            self.chunks.pop();
        }
        self.len = 0;
    }

    /// Heap bytes held by the counts.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * size_of::<Option<Box<Chunk>>>()
            + self.chunks.iter().flatten().count() * size_of::<Chunk>()
    }
}

/// The positions of the set bits of `mask`, ascending.
fn bits(mut mask: u32) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let j = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            j
        })
    })
}

impl Buckets for CompactHistogram {
    fn len(&self) -> u64 {
        self.len
    }

    fn buckets(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        self.chunks
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .flat_map(|(i, c)| c.used().map(move |(j, n)| ((i * CHUNK + j) as Key, n)))
    }
}

/// What agents keep: sorted `(key, count)` pairs, one per non-empty bucket.
#[derive(Clone, Debug, Default)]
pub struct SparseHistogram {
    entries: Vec<(Key, u64)>,
    len: u64,
}

impl SparseHistogram {
    /// An empty histogram; allocates nothing.
    pub const fn new() -> SparseHistogram {
        SparseHistogram {
            entries: Vec::new(),
            len: 0,
        }
    }

    /// Records `nanos` (converted to whole microseconds, clamped) once.
    pub fn record_nanos(&mut self, nanos: u64) {
        let key = key_of(nanos / 1_000);
        match self.entries.binary_search_by_key(&key, |e| e.0) {
            Ok(i) => self.entries[i].1 += 1,
            Err(i) => self.entries.insert(i, (key, 1)),
        }
        self.len += 1;
    }

    /// Adds every sample of `other`. Counts of buckets it already has are
    /// added in one forward pass over both sorted sequences, galloping from
    /// one bucket to the next (an interval holds a few dozen of the hundreds
    /// of buckets a busy agent's history has); new buckets, rare in the
    /// steady state of a cumulative histogram, are merged in from the back,
    /// in the same buffer.
    pub fn add(&mut self, other: &impl Buckets) {
        if other.is_empty() {
            return;
        }
        self.len += other.len();
        if self.entries.is_empty() {
            // A fresh window slot: a copy, in the buffer the slot kept (sized
            // exactly the first time: most agents see few buckets).
            self.entries.reserve_exact(other.buckets().count());
            self.entries.extend(other.buckets());
            return;
        }
        let mut fresh = Vec::new();
        let mut i = 0;
        for (key, n) in other.buckets() {
            i = seek(&self.entries, i, key);
            match self.entries.get_mut(i) {
                Some(e) if e.0 == key => e.1 += n,
                _ => fresh.push((key, n)),
            }
        }
        if fresh.is_empty() {
            return;
        }
        // Both runs are sorted and share no key: fill from the end.
        let (mut old, mut new) = (self.entries.len(), fresh.len());
        // Exactly: a histogram gains buckets rarely, and doubling would let
        // a thousand agents' histograms grow the process for the whole run.
        self.entries.reserve_exact(new);
        self.entries.resize(old + new, (0, 0));
        let mut slot = old + new;
        while new > 0 {
            slot -= 1;
            self.entries[slot] = if old > 0 && self.entries[old - 1].0 > fresh[new - 1].0 {
                old -= 1;
                self.entries[old]
            } else {
                new -= 1;
                fresh[new]
            };
        }
    }

    /// Empties the histogram and keeps its capacity.
    pub fn reset(&mut self) {
        self.entries.clear();
        self.len = 0;
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.entries.capacity() * size_of::<(Key, u64)>()
    }
}

/// The first index at or after `from` whose key is not below `key`:
/// doubling steps from `from`, then a binary search of the last step, so a
/// near key costs a probe or two and a far one a logarithm.
fn seek(entries: &[(Key, u64)], from: usize, key: Key) -> usize {
    let rest = &entries[from..];
    let mut bound = 1;
    while bound < rest.len() && rest[bound].0 < key {
        bound *= 2;
    }
    from + rest[..(bound + 1).min(rest.len())].partition_point(|e| e.0 < key)
}

impl Buckets for SparseHistogram {
    fn len(&self) -> u64 {
        self.len
    }

    fn buckets(&self) -> impl Iterator<Item = (Key, u64)> + '_ {
        self.entries.iter().copied()
    }
}

const _: () = assert!(MAGNITUDES == 20, "60 s in µs spans 20 magnitudes");

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::super::histogram::{Percentiles, record};
    use super::*;

    #[test]
    fn buckets_tile_the_range_without_gaps() {
        let mut previous = key_of(1);
        assert_eq!(lowest(previous), 1);
        for us in 2..=1 << 20 {
            let key = key_of(us);
            assert!(lowest(key) <= us && us < lowest(key) + width(key), "{us}");
            if key != previous {
                // Keys are consecutive, and a bucket starts at its lowest value.
                assert_eq!((key, lowest(key)), (previous + 1, us), "{us}");
            }
            previous = key;
        }
        assert_eq!(key_of(u64::MAX), key_of(HIGHEST_US));
        assert_eq!(magnitude_of(HIGHEST_US), MAGNITUDES - 1);
    }

    #[test]
    fn only_seen_chunks_are_allocated_and_idle_ones_are_freed() {
        let mut h = CompactHistogram::new();
        assert_eq!(h.heap_bytes(), 0);
        // 32..63 µs is chunk 1, 256..319 µs chunk 8.
        h.record_n(50, 3);
        h.record_n(300, 1);
        assert_eq!(h.chunks.iter().flatten().count(), 2);
        assert_eq!(h.len(), 4);
        h.reset();
        assert!(h.is_empty());
        assert_eq!(h.chunks.iter().flatten().count(), 2);
        assert!(
            h.chunks.iter().flatten().all(|c| c.used == 0),
            "a reset clears the masks with the counts"
        );
        assert_eq!(h.buckets().count(), 0);
        // Only 50 µs again: the chunk of 300 µs was idle for an interval.
        h.record_n(50, 1);
        h.reset();
        h.reset();
        assert!(h.chunks.is_empty(), "{:?}", h.chunks);
    }

    #[test]
    fn seek_finds_the_first_key_not_below() {
        let entries: Vec<(Key, u64)> = [2, 3, 5, 8, 13, 21, 34, 55, 89].map(|k| (k, 1)).into();
        for from in 0..=entries.len() {
            for key in 0..100 {
                let want = from + entries[from..].partition_point(|e| e.0 < key);
                assert_eq!(seek(&entries, from, key), want, "from {from}, key {key}");
            }
        }
    }

    #[test]
    fn sparse_merges_keep_keys_sorted_and_counts_exact() {
        let mut interval = CompactHistogram::new();
        let mut sparse = SparseHistogram::new();
        for round in 0..3u64 {
            for us in [5, 700, 90, 5 + round * 1000] {
                interval.record_n(us, 2);
            }
            sparse.add(&interval);
            interval.reset();
        }
        sparse.record_nanos(42_000);
        let keys: Vec<Key> = sparse.buckets().map(|(k, _)| k).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        assert_eq!(sparse.len(), 25);
        assert_eq!(sparse.buckets().map(|(_, n)| n).sum::<u64>(), 25);
        let at = |us| sparse.buckets().find(|e| e.0 == key_of(us)).map(|e| e.1);
        assert_eq!(
            (at(5), at(700), at(42), at(2005)),
            (Some(8), Some(6), Some(1), Some(2))
        );
    }

    proptest! {
        /// Both types put every sample in the bucket a dense 2-figure
        /// HdrHistogram would, and read the same percentiles.
        #[test]
        fn read_the_same_percentiles_as_a_dense_histogram(
            samples in prop::collection::vec((0u64..120_000_000_000, 1u64..5), 1..200)
        ) {
            let mut compact = CompactHistogram::new();
            let mut sparse = SparseHistogram::new();
            let mut summed = CompactHistogram::new();
            let mut dense = agent_histogram();
            for (i, &(nanos, n)) in samples.iter().enumerate() {
                compact.record_nanos(nanos, n);
                record(&mut dense, Duration::from_nanos(nanos), n);
                if i % 7 == 0 {
                    sparse.add(&compact);
                    summed.add(&compact);
                    compact.reset();
                }
            }
            sparse.add(&compact);
            summed.add(&compact);
            prop_assert_eq!(summed.buckets().collect::<Vec<_>>(), sparse.buckets().collect::<Vec<_>>());
            let converted = sparse.to_hdr();
            prop_assert_eq!(converted.len(), dense.len());
            let (a, b) = (Percentiles::of(&converted), Percentiles::of(&dense));
            prop_assert_eq!((a.p50, a.p90, a.p99, a.p999), (b.p50, b.p90, b.p99, b.p999));
            prop_assert_eq!(dense.highest_equivalent(a.max), dense.highest_equivalent(b.max));
            // The one-pass reading agrees with HdrHistogram's on the dense one.
            let (high, floor) = sparse.percentiles();
            let dense_floor = Percentiles::floor_of(&dense);
            prop_assert_eq!((high.p50, high.p90, high.p99, high.p999), (b.p50, b.p90, b.p99, b.p999));
            prop_assert_eq!(
                (floor.p50, floor.p90, floor.p99, floor.p999),
                (dense_floor.p50, dense_floor.p90, dense_floor.p99, dense_floor.p999)
            );
            prop_assert_eq!(high.max, dense.highest_equivalent(b.max));
            prop_assert_eq!(high.count, b.count);
            prop_assert!((high.mean - b.mean).abs() <= b.mean * 1e-9 + 1e-9, "{} vs {}", high.mean, b.mean);
        }
    }
}
