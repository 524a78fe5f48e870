//! A latency histogram that allocates only the magnitudes it has seen.
//!
//! Same buckets as an HdrHistogram over 1 µs..60 s at 2 significant figures
//! (256 unit-wide buckets below 256 µs, then 128 sub-buckets per power of
//! two), but counts live in chunks of 128 that are allocated on first use.
//! An agent whose latencies stay under 1 ms touches 2-4 chunks (1 KiB each)
//! instead of the 20 KiB a dense histogram commits up front, and it keeps
//! about a dozen of them (cumulative, interval, window slots); see
//! docs/decisions/0008-compact-agent-histograms.md.
//!
//! Reads convert to an HdrHistogram ([`CompactHistogram::merge_into`]): each
//! count is recorded at its bucket's lowest value, which lands in the same
//! bucket at 2 figures and is what HdrHistogram's own `add` does across
//! precisions. Percentile arithmetic is never re-implemented here.

use super::histogram::{HIGHEST_US, LOWEST_US, LatencyHistogram, Percentiles, agent_histogram};

/// Entries per chunk: one power of two at 2 significant figures.
const CHUNK: usize = 128;
/// Chunk of the highest trackable value (60 s = 2^25.8 µs).
const CHUNKS: usize = chunk_of(HIGHEST_US) + 1;

/// Chunk index of `us` (already clamped): values under 128 are chunk 0,
/// 128..256 chunk 1, then one chunk per power of two.
const fn chunk_of(us: u64) -> usize {
    if us < CHUNK as u64 {
        0
    } else {
        // msb >= 7, so the chunk is >= 1.
        (63 - us.leading_zeros() as usize) - 6
    }
}

/// Chunk index and offset within it of `us`.
#[inline]
fn locate(us: u64) -> (usize, usize) {
    let chunk = chunk_of(us);
    if chunk == 0 {
        (0, us as usize)
    } else {
        (chunk, ((us >> (chunk - 1)) as usize) - CHUNK)
    }
}

/// Lowest value of the bucket at (`chunk`, `offset`).
fn lowest(chunk: usize, offset: usize) -> u64 {
    if chunk == 0 {
        offset as u64
    } else {
        ((CHUNK + offset) as u64) << (chunk - 1)
    }
}

/// Width of the buckets of `chunk`: 1 µs up to 256 µs, then doubling.
fn width(chunk: usize) -> u64 {
    1 << chunk.saturating_sub(1)
}

/// Quantiles read by [`CompactHistogram::percentiles`], ascending.
const QUANTILES: [f64; 4] = [0.50, 0.90, 0.99, 0.999];

/// Latency histogram in microseconds whose counts are allocated per
/// magnitude on first use.
#[derive(Clone, Debug, Default)]
pub struct CompactHistogram {
    /// Indexed by [`chunk_of`]; grown only as far as the largest value seen.
    chunks: Vec<Option<Box<[u64; CHUNK]>>>,
    len: u64,
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
        let (chunk, offset) = locate(us.clamp(LOWEST_US, HIGHEST_US));
        self.counts_mut(chunk)[offset] += n;
        self.len += n;
    }

    /// Records `nanos` (converted to whole microseconds, clamped) `n` times.
    #[inline]
    pub fn record_nanos(&mut self, nanos: u64, n: u64) {
        self.record_n(nanos / 1_000, n);
    }

    fn counts_mut(&mut self, chunk: usize) -> &mut [u64; CHUNK] {
        if self.chunks.len() <= chunk {
            self.chunks.resize_with(chunk + 1, || None);
        }
        self.chunks[chunk].get_or_insert_with(|| Box::new([0; CHUNK]))
    }

    /// Samples recorded.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds every sample of `other`.
    pub fn add(&mut self, other: &CompactHistogram) {
        for (chunk, counts) in other.chunks.iter().enumerate() {
            let Some(counts) = counts else { continue };
            if counts.iter().all(|&c| c == 0) {
                continue;
            }
            let into = self.counts_mut(chunk);
            for (a, b) in into.iter_mut().zip(counts.iter()) {
                *a += b;
            }
        }
        self.len += other.len;
    }

    /// Zeroes every count and keeps the chunks, so a histogram refilled at
    /// the same magnitudes (an interval, once per tick) does not reallocate.
    pub fn reset(&mut self) {
        for counts in self.chunks.iter_mut().flatten() {
            counts.fill(0);
        }
        self.len = 0;
    }

    /// Adds every sample into `into`, an HdrHistogram of any precision.
    pub fn merge_into(&self, into: &mut LatencyHistogram) {
        for (chunk, counts) in self.chunks.iter().enumerate() {
            let Some(counts) = counts else { continue };
            for (offset, &n) in counts.iter().enumerate() {
                if n > 0 {
                    // Cannot fail: every bucket's lowest value is in range
                    // (chunk 0, offset 0 is never recorded: values are >= 1).
                    let _ = into.record_n(lowest(chunk, offset).max(LOWEST_US), n);
                }
            }
        }
    }

    /// Percentiles in one pass over the allocated chunks, with HdrHistogram's
    /// semantics: the quantile's bucket is the first whose running count
    /// reaches `ceil(q * len)`; `high` reports its highest value (as
    /// [`Percentiles::of`] does), `floor` its lowest (as
    /// [`Percentiles::floor_of`], what SLO checks compare). The mean uses
    /// bucket midpoints. Cheap enough to run for every agent every few
    /// seconds, unlike converting to a dense histogram first.
    pub fn percentiles(&self) -> (Percentiles, Percentiles) {
        if self.is_empty() {
            return (Percentiles::default(), Percentiles::default());
        }
        let targets = QUANTILES.map(|q| ((q * self.len as f64).ceil() as u64).max(1));
        let mut found = [(0, 0); 4];
        let (mut next, mut seen, mut sum, mut last) = (0, 0u64, 0f64, (0, 0));
        for (chunk, counts) in self.chunks.iter().enumerate() {
            let Some(counts) = counts else { continue };
            for (offset, &n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                seen += n;
                let low = lowest(chunk, offset);
                sum += (low + width(chunk) / 2) as f64 * n as f64;
                last = (chunk, offset);
                while next < targets.len() && seen >= targets[next] {
                    found[next] = (chunk, offset);
                    next += 1;
                }
            }
        }
        let high = |(c, o): (usize, usize)| lowest(c, o) + width(c) - 1;
        let floor = |(c, o): (usize, usize)| lowest(c, o);
        let read = |value: &dyn Fn((usize, usize)) -> u64| Percentiles {
            count: self.len,
            p50: value(found[0]),
            p90: value(found[1]),
            p99: value(found[2]),
            p999: value(found[3]),
            max: high(last),
            mean: sum / self.len as f64,
        };
        (read(&high), read(&floor))
    }

    /// The samples as a 2-significant-figure HdrHistogram.
    pub fn to_hdr(&self) -> LatencyHistogram {
        let mut h = agent_histogram();
        self.merge_into(&mut h);
        h
    }

    /// Heap bytes held by the counts.
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * size_of::<Option<Box<[u64; CHUNK]>>>()
            + self.chunks.iter().flatten().count() * size_of::<[u64; CHUNK]>()
    }
}

const _: () = assert!(CHUNKS == 20, "60 s in µs spans 20 chunks");

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::time::Duration;

    use super::super::histogram::{Percentiles, record};
    use super::*;

    #[test]
    fn chunks_tile_the_range_without_gaps() {
        let mut expected = (0, 0);
        for us in 1..=1 << 20 {
            let (chunk, offset) = locate(us);
            assert!(offset < CHUNK, "{us}: offset {offset}");
            assert!(lowest(chunk, offset) <= us, "{us}");
            if (chunk, offset) != expected {
                // A new bucket starts exactly at its lowest value.
                assert_eq!(lowest(chunk, offset), us, "{us}");
            }
            expected = (chunk, offset);
        }
        assert_eq!(chunk_of(HIGHEST_US), CHUNKS - 1);
    }

    #[test]
    fn only_seen_magnitudes_are_allocated() {
        let mut h = CompactHistogram::new();
        assert_eq!(h.heap_bytes(), 0);
        h.record_n(50, 3);
        h.record_n(300, 1);
        // Chunk 0 (under 128 µs) and chunk 2 (256..512 µs).
        assert_eq!(h.chunks.iter().flatten().count(), 2);
        assert_eq!(h.len(), 4);
        h.reset();
        assert!(h.is_empty());
        assert_eq!(h.chunks.iter().flatten().count(), 2);
    }

    proptest! {
        /// Every sample lands in the bucket a dense 2-figure HdrHistogram
        /// would put it in, so percentiles read after conversion are the same.
        #[test]
        fn converts_to_the_same_percentiles_as_a_dense_histogram(
            samples in prop::collection::vec((0u64..120_000_000_000, 1u64..5), 1..200)
        ) {
            let mut compact = CompactHistogram::new();
            let mut dense = agent_histogram();
            for &(nanos, n) in &samples {
                compact.record_nanos(nanos, n);
                record(&mut dense, Duration::from_nanos(nanos), n);
            }
            let mut halves = CompactHistogram::new();
            halves.add(&compact);
            let converted = halves.to_hdr();
            prop_assert_eq!(converted.len(), dense.len());
            let (a, b) = (Percentiles::of(&converted), Percentiles::of(&dense));
            prop_assert_eq!((a.p50, a.p90, a.p99, a.p999), (b.p50, b.p90, b.p99, b.p999));
            prop_assert_eq!(dense.highest_equivalent(a.max), dense.highest_equivalent(b.max));
            // The one-pass reading agrees with HdrHistogram's on the dense one.
            let (high, floor) = compact.percentiles();
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
