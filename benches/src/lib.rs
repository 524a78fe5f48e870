//! Shared helpers for Switchyard's benches.
//!
//! Every bench answers one question (see the `//!` of each file under
//! `benches/benches/`). The helpers here keep the set-up identical across them:
//!
//! - [`tokio_runtime`]: the runtime every bench uses, a Tokio multi-thread
//!   runtime with [`WORKERS`] workers. Producers run *inside* a task spawned on
//!   it (as real senders do), never in `block_on` on the main thread.
//! - [`Sink`] and [`Done`]: an agent that counts what it handled into a shared
//!   counter, and the completion signal a producer awaits, so a timed section
//!   ends when every message has been *handled*, not merely queued.
//! - [`CountingAlloc`]: a global allocator wrapper that tracks live heap bytes,
//!   for per-agent memory figures (declare it with `#[global_allocator]` in the
//!   bench binary that needs it). It forwards to [`MiMalloc`], which every
//!   other bench and example declares as its global allocator too: the
//!   benches measure the allocator the `switchyard` binary ships with.
//! - [`Percentiles`]: per-operation latency from an HdrHistogram, printed as a
//!   small table (criterion gives means, not per-operation percentiles).

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
pub use mimalloc::MiMalloc;
use switchyard_runtime::{Agent, AgentError, Context, Envelope, park};
use tokio::sync::Notify;

/// Tokio worker threads for every bench: the bench machine has 2 cores.
pub const WORKERS: usize = 2;

/// The Tokio runtime every bench runs on.
///
/// # Panics
/// When the OS refuses to start threads (a bench cannot run without them).
pub fn tokio_runtime() -> tokio::runtime::Runtime {
    tokio_runtime_with(WORKERS)
}

/// A Tokio multi-thread runtime with `workers` workers, for the rows that
/// compare worker counts (one worker: the set-up actix always runs in).
///
/// # Panics
/// As [`tokio_runtime`].
pub fn tokio_runtime_with(workers: usize) -> tokio::runtime::Runtime {
    tokio_runtime_spinning(workers, Duration::ZERO)
}

/// As [`tokio_runtime_with`], with idle workers that spin `spin` before they
/// park ([`park::spin_before_park`]; decision 0022).
///
/// # Panics
/// As [`tokio_runtime`].
pub fn tokio_runtime_spinning(workers: usize, spin: Duration) -> tokio::runtime::Runtime {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    park::spin_before_park(&mut builder, spin)
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("a bench needs its Tokio runtime; the OS refused to start worker threads")
}

/// Runs `fut` as a task on `rt` (so the producer is a real Tokio task, like
/// any sender) and waits for its result on the calling thread.
///
/// # Panics
/// When the task panics: a bench whose producer failed has no figure to report.
pub fn run_in_task<F>(rt: &tokio::runtime::Runtime, fut: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    rt.block_on(async move {
        tokio::spawn(fut)
            .await
            .expect("the bench's producer task panicked")
    })
}

/// Completion signal shared by a producer and the agents it feeds.
///
/// The producer raises `target` by the number of messages it is about to send,
/// sends them, then awaits [`Done::wait`]; agents add what they handled with
/// [`Done::add`]. The counter is cumulative, so it is never reset between
/// timed rounds.
#[derive(Debug, Default)]
pub struct Done {
    handled: CachePadded<AtomicU64>,
    target: CachePadded<AtomicU64>,
    notify: Notify,
}

impl Done {
    /// A fresh signal behind an `Arc`.
    pub fn new() -> Arc<Done> {
        Arc::new(Done::default())
    }

    /// Announces `n` more messages; returns the count to wait for.
    pub fn expect(&self, n: u64) -> u64 {
        self.target.fetch_add(n, Ordering::AcqRel) + n
    }

    /// Records `n` handled messages, waking the producer when the target is reached.
    pub fn add(&self, n: u64) {
        let before = self.handled.fetch_add(n, Ordering::AcqRel);
        let target = self.target.load(Ordering::Acquire);
        if before < target && before + n >= target {
            self.notify.notify_one();
        }
    }

    /// Messages handled so far.
    pub fn handled(&self) -> u64 {
        self.handled.load(Ordering::Acquire)
    }

    /// Waits until at least `target` messages were handled.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is consumed but a wake-up, and the count is re-read.
    pub async fn wait(&self, target: u64) {
        while self.handled() < target {
            // A bounded wait guards against a wake-up that raced the check.
            let _ = tokio::time::timeout(Duration::from_millis(5), self.notify.notified()).await;
        }
    }
}

/// An agent that handles each message by counting it, then reports each batch
/// to a shared [`Done`] with one atomic add (so the signal does not become the
/// bottleneck it is meant to observe).
#[derive(Debug)]
pub struct Sink {
    done: Arc<Done>,
    seen: u64,
}

impl Sink {
    /// A sink reporting into `done`.
    pub fn new(done: Arc<Done>) -> Sink {
        Sink { done, seen: 0 }
    }
}

impl Agent for Sink {
    async fn handle(&mut self, _ctx: &mut Context, msg: &Envelope) -> Result<(), AgentError> {
        self.seen = self.seen.wrapping_add(msg.payload().len() as u64);
        Ok(())
    }

    async fn handle_batch(
        &mut self,
        ctx: &mut Context,
        batch: &[Envelope],
    ) -> Result<(), AgentError> {
        for (i, msg) in batch.iter().enumerate() {
            ctx.set_batch_cursor(i);
            self.handle(ctx, msg).await?;
        }
        self.done.add(batch.len() as u64);
        Ok(())
    }
}

/// Counts one actor's messages and reports them to a [`Done`] once per
/// `share` (the messages each actor gets per round), so completion costs one
/// shared atomic add per actor per round in every framework alike.
#[derive(Debug)]
pub struct Tally {
    done: Arc<Done>,
    share: u64,
    seen: u64,
}

impl Tally {
    /// A tally reporting every `share` messages (at least 1) into `done`.
    pub fn new(done: Arc<Done>, share: u64) -> Tally {
        Tally {
            done,
            share: share.max(1),
            seen: 0,
        }
    }

    /// Counts one handled message.
    pub fn one(&mut self) {
        self.seen += 1;
        if self.seen == self.share {
            self.done.add(self.share);
            self.seen = 0;
        }
    }
}

/// Longest wait for spawned actors to settle before memory is read.
pub const SETTLE_MAX: Duration = Duration::from_secs(10);

/// Waits until live heap bytes stop changing (every new task has run to its
/// first wait), at most [`SETTLE_MAX`]. Returns at once without a
/// [`CountingAlloc`] installed (live bytes then stay 0).
///
/// # Cancel safety
/// Cancel safe: it only reads counters.
pub async fn settle() {
    let started = std::time::Instant::now();
    let mut last = CountingAlloc::live_bytes();
    while started.elapsed() < SETTLE_MAX {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = CountingAlloc::live_bytes();
        if (now - last).abs() < 4096 {
            return;
        }
        last = now;
    }
}

/// Counter slots; each thread adds to its own so counting does not contend.
const ALLOC_SLOTS: usize = 16;

static ALLOCATED: [CachePadded<AtomicU64>; ALLOC_SLOTS] =
    [const { CachePadded::new(AtomicU64::new(0)) }; ALLOC_SLOTS];
static FREED: [CachePadded<AtomicU64>; ALLOC_SLOTS] =
    [const { CachePadded::new(AtomicU64::new(0)) }; ALLOC_SLOTS];
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

fn slot() -> usize {
    SLOT.try_with(|s| {
        let mut v = s.get();
        if v == usize::MAX {
            v = NEXT_SLOT.fetch_add(1, Ordering::Relaxed) % ALLOC_SLOTS;
            s.set(v);
        }
        v
    })
    .unwrap_or(0)
}

/// A global allocator that forwards to [`MiMalloc`], the allocator of the
/// `switchyard` binary and of every bench (decision 0019), and counts live
/// heap bytes.
///
/// ```ignore
/// #[global_allocator]
/// static ALLOC: switchyard_benches::CountingAlloc = switchyard_benches::CountingAlloc;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    /// Live heap bytes (allocated minus freed) over the whole process.
    pub fn live_bytes() -> i64 {
        let a: u64 = ALLOCATED.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let f: u64 = FREED.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        a as i64 - f as i64
    }
}

// SAFETY: every call is forwarded unchanged to `MiMalloc`; the wrapper only adds
// relaxed counter updates, which neither allocate nor unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's layout, as the trait requires.
        let p = unsafe { MiMalloc.alloc(layout) };
        if !p.is_null() {
            ALLOCATED[slot()].fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        let p = unsafe { MiMalloc.alloc_zeroed(layout) };
        if !p.is_null() {
            ALLOCATED[slot()].fetch_add(layout.size() as u64, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator (that is, from `MiMalloc`) with `layout`.
        unsafe { MiMalloc.dealloc(ptr, layout) };
        FREED[slot()].fetch_add(layout.size() as u64, Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr`/`layout` came from this allocator; forwarded unchanged.
        let p = unsafe { MiMalloc.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            let s = slot();
            FREED[s].fetch_add(layout.size() as u64, Ordering::Relaxed);
            ALLOCATED[s].fetch_add(new_size as u64, Ordering::Relaxed);
        }
        p
    }
}

/// Resident set size of this process in bytes, from `/proc/self/statm`
/// (0 where that file does not exist).
pub fn rss_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * page_size()
}

fn page_size() -> u64 {
    // Every Linux target this project runs on uses 4 KiB base pages.
    4096
}

/// Per-operation latencies in nanoseconds.
#[derive(Debug, Clone)]
pub struct Percentiles {
    hist: Histogram<u64>,
}

impl Default for Percentiles {
    fn default() -> Percentiles {
        Percentiles::new()
    }
}

impl Percentiles {
    /// An empty histogram covering 1 ns to 60 s at 3 significant digits.
    ///
    /// # Panics
    /// Never for these constant bounds.
    pub fn new() -> Percentiles {
        let hist = Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .expect("constant, valid histogram bounds");
        Percentiles { hist }
    }

    /// Records one operation.
    pub fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX).max(1);
        self.hist.saturating_record(ns);
    }

    /// Number of operations recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// The latency at quantile `q` (0.0 ..= 1.0).
    pub fn at(&self, q: f64) -> Duration {
        Duration::from_nanos(self.hist.value_at_quantile(q))
    }

    /// Mean latency.
    pub fn mean(&self) -> Duration {
        Duration::from_nanos(self.hist.mean() as u64)
    }

    /// Prints one table row: label, count, mean, p50, p90, p99, p99.9, max (in µs).
    pub fn print_row(&self, label: &str) {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        println!(
            "{label:<44} {:>9} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10.3}",
            self.len(),
            us(self.mean()),
            us(self.at(0.50)),
            us(self.at(0.90)),
            us(self.at(0.99)),
            us(self.at(0.999)),
            us(Duration::from_nanos(self.hist.max())),
        );
    }

    /// Prints the header matching [`Percentiles::print_row`].
    pub fn print_header() {
        println!(
            "{:<44} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "operation", "count", "mean µs", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
        );
    }
}

/// Names `prefix-0 .. prefix-(n-1)`, built once outside any timed section.
pub fn names(prefix: &str, n: usize) -> Arc<[String]> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}
