//! Ask deadlines: one reaper for every waiting ask, instead of a Tokio timer
//! per ask.
//!
//! Arming a Tokio timer for each ask's timeout took the time wheel's lock
//! twice per ask (arming, and removing it when the reply came first), about
//! 100 ns of a 0.55 µs round trip (decision 0016). Almost every ask is
//! answered long before its timeout, so that work is nearly always thrown
//! away. Here a waiting ask parks its deadline and waker in a slab shard
//! picked by thread (a lock no other thread normally takes), and removes the
//! entry itself when the reply arrives. One reaper task per runtime sleeps
//! until the earliest deadline it knows of, marks the expired entries and
//! wakes their asks.
//!
//! The reaper's schedule (`next`): a new ask wakes the reaper only when its
//! deadline is earlier than the time the reaper already means to look. The
//! reaper looks no later than `now + the shortest timeout armed since its
//! last look`, so asks with the usual timeout never wake it; it sleeps
//! without a timer once it has seen no asks for one whole period.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crossbeam_utils::CachePadded;
use slab::Slab;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Shards of waiting asks; threads beyond this share them.
const SHARDS: usize = 16;

/// `next` when the reaper sleeps until notified.
const NEVER: u64 = u64::MAX;

/// The deadlines of every waiting ask of one runtime.
pub(crate) struct Deadlines {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    /// When the reaper will look next ([`NEVER`]: only when notified). Read
    /// by every ask that starts waiting, written by the reaper once per look.
    next: CachePadded<AtomicU64>,
    /// The origin of every time here: deadlines are nanoseconds since `base`
    /// (one clock read and no `Instant` arithmetic per ask).
    base: Instant,
    wake: Arc<Notify>,
}

struct Shard {
    waiting: Slab<Entry>,
    /// The shortest timeout (ns) armed in this shard since the reaper's last
    /// look ([`NEVER`]: none).
    shortest: u64,
}

impl Default for Shard {
    fn default() -> Shard {
        Shard {
            waiting: Slab::new(),
            shortest: NEVER,
        }
    }
}

struct Entry {
    deadline: u64,
    waker: Waker,
    expired: bool,
}

/// When a wait started now with a given timeout must end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    /// Nanoseconds since the deadlines' base.
    at: u64,
    /// The timeout it was made from, in nanoseconds (the reaper plans its
    /// looks by the shortest recent one).
    timeout: u64,
}

/// A future whose deadline passed before it finished.
#[derive(Debug)]
pub(crate) struct Expired;

impl Deadlines {
    /// The deadlines of a new runtime, and the reaper future to spawn for them
    /// (it ends once `Deadlines` is dropped).
    pub(crate) fn new() -> (Arc<Deadlines>, impl Future<Output = ()> + Send + 'static) {
        let deadlines = Arc::new(Deadlines {
            shards: (0..SHARDS).map(|_| CachePadded::default()).collect(),
            next: CachePadded::new(AtomicU64::new(NEVER)),
            base: Instant::now(),
            wake: Arc::new(Notify::new()),
        });
        let reaper = reap(Arc::downgrade(&deadlines), deadlines.wake.clone());
        (deadlines, reaper)
    }

    /// The deadline `timeout` from now.
    pub(crate) fn after(&self, timeout: Duration) -> Deadline {
        let timeout = nanos(timeout);
        Deadline {
            at: self.since_base(Instant::now()).saturating_add(timeout),
            timeout,
        }
    }

    /// Runs `fut` until it finishes or `deadline` has passed.
    pub(crate) fn within<F: Future + Unpin>(&self, fut: F, deadline: Deadline) -> Expiring<'_, F> {
        Expiring {
            fut,
            deadlines: self,
            deadline,
            slot: None,
        }
    }

    fn shard(&self, index: usize) -> MutexGuard<'_, Shard> {
        // Nothing under these locks can panic half-way; a poisoned shard is
        // still consistent.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// `at` in nanoseconds since `base`.
    fn since_base(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.base))
    }

    /// Parks a waiting ask; returns its slot.
    fn park(&self, deadline: Deadline, waker: &Waker) -> (usize, usize) {
        let index = shard_index();
        let key = {
            let mut shard = self.shard(index);
            shard.shortest = shard.shortest.min(deadline.timeout);
            shard.waiting.insert(Entry {
                deadline: deadline.at,
                waker: waker.clone(),
                expired: false,
            })
        };
        // After the insert: a reaper that stored a later `next` before this
        // load either saw the entry in its sweep or will see it at `next`.
        if deadline.at < self.next.load(Ordering::SeqCst) {
            self.wake.notify_one();
        }
        (index, key)
    }

    /// One look: marks and wakes every expired ask; returns when to look
    /// again (`None`: when notified).
    fn sweep(&self, now: Instant) -> Option<Instant> {
        // Before the sweep: an ask parked from here on sees `NEVER` (and
        // notifies) unless the sweep has already stored a later look.
        self.next.store(NEVER, Ordering::SeqCst);
        let now_ns = self.since_base(now);
        let mut earliest = NEVER;
        let mut shortest = NEVER;
        for index in 0..self.shards.len() {
            let mut shard = self.shard(index);
            shortest = shortest.min(std::mem::replace(&mut shard.shortest, NEVER));
            for (_, entry) in shard.waiting.iter_mut() {
                if entry.expired {
                    continue;
                }
                if entry.deadline <= now_ns {
                    entry.expired = true;
                    entry.waker.wake_by_ref();
                } else {
                    earliest = earliest.min(entry.deadline);
                }
            }
        }
        // Asks keep coming with about this timeout: looking by then means
        // they never need to notify.
        let next = earliest.min(now_ns.saturating_add(shortest));
        self.next.store(next, Ordering::SeqCst);
        (next != NEVER).then(|| self.base + Duration::from_nanos(next))
    }
}

/// `d` in nanoseconds, at most `NEVER / 2` (so a deadline never overflows).
/// u64 arithmetic: `Duration::as_nanos` works in u128.
fn nanos(d: Duration) -> u64 {
    d.as_secs()
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::from(d.subsec_nanos()))
        .min(NEVER / 2)
}

/// The reaper task: looks, sleeps until the next look (or a notification),
/// and ends when the runtime's deadlines are gone.
async fn reap(deadlines: Weak<Deadlines>, wake: Arc<Notify>) {
    loop {
        let next = match deadlines.upgrade() {
            Some(d) => d.sweep(Instant::now()),
            None => return,
        };
        match next {
            Some(at) => {
                tokio::select! {
                    () = tokio::time::sleep_until(at) => {}
                    () = wake.notified() => {}
                }
            }
            None => wake.notified().await,
        }
    }
}

impl Drop for Deadlines {
    fn drop(&mut self) {
        // Lets the reaper find the runtime gone and end.
        self.wake.notify_one();
    }
}

/// The shard of the calling thread.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|i| {
        if i.get() == usize::MAX {
            i.set(NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS);
        }
        i.get()
    })
}

/// `fut`, given up on once its deadline passes; see [`Deadlines::within`].
pub(crate) struct Expiring<'a, F> {
    fut: F,
    deadlines: &'a Deadlines,
    deadline: Deadline,
    /// Shard and key of the parked entry, while parked.
    slot: Option<(usize, usize)>,
}

impl<F: Future + Unpin> Future for Expiring<'_, F> {
    type Output = Result<F::Output, Expired>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The result wins over an expiry that raced it.
        if let Poll::Ready(out) = Pin::new(&mut this.fut).poll(cx) {
            return Poll::Ready(Ok(out));
        }
        match this.slot {
            None => {
                this.slot = Some(this.deadlines.park(this.deadline, cx.waker()));
            }
            Some((index, key)) => {
                let mut shard = this.deadlines.shard(index);
                let entry = &mut shard.waiting[key];
                if entry.expired {
                    shard.waiting.remove(key);
                    this.slot = None;
                    return Poll::Ready(Err(Expired));
                }
                if !entry.waker.will_wake(cx.waker()) {
                    entry.waker = cx.waker().clone();
                }
            }
        }
        Poll::Pending
    }
}

impl<F> Drop for Expiring<'_, F> {
    fn drop(&mut self) {
        if let Some((index, key)) = self.slot.take() {
            self.deadlines.shard(index).waiting.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::pending;

    use super::*;

    impl Deadlines {
        /// `fut` given up on `timeout` from now.
        fn within_for<F: Future + Unpin>(&self, fut: F, timeout: Duration) -> Expiring<'_, F> {
            self.within(fut, self.after(timeout))
        }

        /// Asks parked right now, expired or not.
        fn parked(&self) -> usize {
            (0..self.shards.len())
                .map(|i| self.shard(i).waiting.len())
                .sum()
        }
    }

    fn started() -> Arc<Deadlines> {
        let (deadlines, reaper) = Deadlines::new();
        tokio::spawn(reaper);
        deadlines
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_past_its_timeout_expires_at_the_deadline() {
        let deadlines = started();
        let start = Instant::now();
        let out = deadlines
            .within_for(pending::<()>(), Duration::from_millis(250))
            .await;
        assert!(out.is_err(), "a future that never finishes must expire");
        assert_eq!(start.elapsed(), Duration::from_millis(250));
        assert_eq!(deadlines.parked(), 0, "an expired wait leaves no entry");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_timeout_parked_later_still_expires_on_time() {
        let deadlines = started();
        let start = Instant::now();
        let mut long = deadlines.within_for(pending::<()>(), Duration::from_secs(60));
        // Parks the long wait first: the reaper plans to look in 60 s.
        assert!(futures_util::poll!(&mut long).is_pending());
        tokio::task::yield_now().await;
        let short = deadlines
            .within_for(pending::<()>(), Duration::from_millis(10))
            .await;
        assert!(short.is_err());
        assert_eq!(start.elapsed(), Duration::from_millis(10));
        assert_eq!(deadlines.parked(), 1, "the long wait is still parked");
        drop(long);
        assert_eq!(deadlines.parked(), 0, "dropping a wait removes its entry");
    }

    #[tokio::test(start_paused = true)]
    async fn a_result_before_the_deadline_wins_and_unparks() {
        let deadlines = started();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut wait = deadlines.within_for(rx, Duration::from_secs(1));
        assert!(futures_util::poll!(&mut wait).is_pending());
        assert_eq!(deadlines.parked(), 1);
        tx.send(7).expect("the receiver is alive");
        let out = wait.await.expect("answered before the deadline");
        assert_eq!(out.expect("sent"), 7);
        assert_eq!(deadlines.parked(), 0, "an answered wait removes its entry");
    }

    #[tokio::test(start_paused = true)]
    async fn many_waits_expire_each_at_its_own_deadline() {
        let deadlines = started();
        let start = Instant::now();
        let waits = (1..=20u64).rev().map(|ms| {
            let deadlines = &deadlines;
            async move {
                let out = deadlines
                    .within_for(pending::<()>(), Duration::from_millis(ms * 5))
                    .await;
                (ms * 5, out.is_err(), start.elapsed())
            }
        });
        for (ms, expired, took) in futures_util::future::join_all(waits).await {
            assert!(expired);
            assert_eq!(took, Duration::from_millis(ms), "timeout {ms} ms");
        }
        assert_eq!(deadlines.parked(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_timeout_expires_at_once() {
        let deadlines = started();
        let start = Instant::now();
        let out = deadlines.within_for(pending::<()>(), Duration::ZERO).await;
        assert!(out.is_err());
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waits_from_many_threads_each_end_once() {
        let deadlines = started();
        let tasks = (0..8u64).map(|t| {
            let deadlines = deadlines.clone();
            tokio::spawn(async move {
                let (mut answered, mut expired) = (0, 0);
                // Senders of the waits left unanswered, kept open until the end.
                let mut unanswered = Vec::new();
                for i in 0..200u64 {
                    let (tx, rx) = tokio::sync::oneshot::channel::<u64>();
                    // Every other wait gets its answer from another task.
                    if i % 2 == 0 {
                        tokio::spawn(async move {
                            tokio::task::yield_now().await;
                            let _ = tx.send(i);
                        });
                    } else {
                        unanswered.push(tx);
                    }
                    // Answered waits get a timeout no scheduling delay can
                    // reach, so the outcome never depends on the machine's
                    // speed; the others expire within a few milliseconds.
                    let timeout = if i % 2 == 0 {
                        Duration::from_secs(60)
                    } else {
                        Duration::from_micros(500 + 100 * ((t + i) % 5))
                    };
                    match deadlines.within_for(rx, timeout).await {
                        Ok(Ok(v)) => {
                            assert_eq!(v, i);
                            answered += 1;
                        }
                        Ok(Err(_)) => panic!("no sender is dropped unanswered"),
                        Err(Expired) => expired += 1,
                    }
                }
                (answered, expired)
            })
        });
        // Fails instead of hanging if an expiry is ever lost.
        let all = tokio::time::timeout(
            Duration::from_secs(30),
            futures_util::future::join_all(tasks),
        )
        .await
        .expect("every wait ends: answered or expired");
        for done in all {
            let (answered, expired) = done.expect("no task panics");
            assert_eq!(answered, 100, "every answered wait sees its answer");
            assert_eq!(expired, 100, "every unanswered wait expires");
        }
        assert_eq!(deadlines.parked(), 0);
    }

    #[tokio::test]
    async fn the_reaper_ends_with_its_deadlines() {
        let (deadlines, reaper) = Deadlines::new();
        let reaper = tokio::spawn(reaper);
        let _ = deadlines
            .within_for(pending::<()>(), Duration::from_millis(1))
            .await;
        drop(deadlines);
        tokio::time::timeout(Duration::from_secs(5), reaper)
            .await
            .expect("the reaper ends once its deadlines are dropped")
            .expect("the reaper does not panic");
    }
}
