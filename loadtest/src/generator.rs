//! Load generation: the open-loop schedule (constant rate, ramp-up, burst)
//! and the closed-loop requesters.
//!
//! ```text
//!  Schedule: rate(t), piecewise linear ─► N(t) = messages due by t
//!                                         t_i  = intended time of message i = N⁻¹(i)
//!  open loop, generator g of G (a pacing thread):
//!    loop { due = N(now); send own i (i % G == g) with t_i ≤ now; sleep until t_next }
//!  closed loop, requester w of C:
//!    loop { send now; wait until accepted (tell) or replied (ask) }
//! ```
//!
//! **Coordinated omission.** Each open-loop message carries its intended
//! time `t_i`, and latency is measured from it, not from when the generator
//! got round to sending. A generator that falls behind (a blocked mailbox, a
//! busy core) sends late messages in a catch-up burst, and their latency
//! includes the delay. The lag itself is tracked ([`Tally::max_lag_ns`]) and
//! messages the generator never sent before the end are reported as
//! `unsent` (the run then fails: it did not test the rate it claims).
//!
//! **Ownership.** Each generator owns its index sequence; they share only the
//! tally's atomics. **Backpressure.** A send that waits (a full `block`
//! mailbox, a full client queue, no free HTTP connection) holds its
//! generator, which is then late, which the report shows. **Shutdown.**
//! Generators stop at the end of the schedule or at the stop time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchyard_runtime::slo::{Percentiles, merge, record, report_histogram};

use crate::scenario::{Scenario, Workload};
use crate::tally::Tally;
use crate::target::{Outgoing, Sender};

/// One piece of the rate curve: from `start` to `end` seconds the rate goes
/// linearly from `r0` to `r1` msg/s; `before` messages were due at `start`.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Segment {
    start: f64,
    end: f64,
    r0: f64,
    r1: f64,
    before: f64,
}

impl Segment {
    fn count_at(&self, t: f64) -> f64 {
        let tau = (t - self.start).clamp(0.0, self.end - self.start);
        let k = self.slope();
        self.before + self.r0 * tau + k * tau * tau / 2.0
    }

    fn slope(&self) -> f64 {
        if self.end > self.start {
            (self.r1 - self.r0) / (self.end - self.start)
        } else {
            0.0
        }
    }

    /// The time at which `n` (≥ `before`) messages are due.
    fn time_of(&self, n: f64) -> f64 {
        let m = n - self.before;
        let k = self.slope();
        let tau = if k.abs() < 1e-12 {
            if self.r0 > 0.0 { m / self.r0 } else { 0.0 }
        } else {
            let disc = (self.r0 * self.r0 + 2.0 * k * m).max(0.0);
            (-self.r0 + disc.sqrt()) / k
        };
        self.start + tau.clamp(0.0, self.end - self.start)
    }
}

/// The open-loop rate curve of a scenario: ramp-up, base rate, burst.
#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    segments: Vec<Segment>,
    total: u64,
}

impl Schedule {
    /// The schedule of `s`.
    ///
    /// ```
    /// use switchyard_loadtest::generator::Schedule;
    /// use switchyard_loadtest::scenario::{Overrides, Scenario};
    /// let mut o = Overrides::default();
    /// o.set("rate", "1000");
    /// o.set("duration", "2s");
    /// o.set("ramp_up", "0s");
    /// let s = Scenario::default_with(&o).unwrap();
    /// assert_eq!(Schedule::of(&s).total(), 2000);
    /// ```
    pub fn of(s: &Scenario) -> Schedule {
        let d = s.duration.0.as_secs_f64();
        let ramp = s.ramp_up.0.as_secs_f64();
        let burst = s.burst.map(|b| {
            (
                b.at.0.as_secs_f64(),
                (b.at.0 + b.length.0).as_secs_f64(),
                b.rate,
            )
        });
        let rate_at = |t: f64| -> f64 {
            if let Some((a, e, r)) = burst
                && t >= a
                && t < e
            {
                return r;
            }
            if ramp > 0.0 && t < ramp {
                s.rate * t / ramp
            } else {
                s.rate
            }
        };
        let mut points = vec![0.0, d];
        if ramp > 0.0 && ramp < d {
            points.push(ramp);
        }
        if let Some((a, e, _)) = burst {
            points.extend([a, e].into_iter().filter(|p| *p > 0.0 && *p < d));
        }
        points.sort_by(f64::total_cmp);
        points.dedup();
        let mut segments = Vec::new();
        let mut before = 0.0;
        for w in points.windows(2) {
            let (start, end) = (w[0], w[1]);
            let eps = (end - start) * 1e-9;
            // Ramp pieces are linear; evaluate just inside the ends so a
            // burst boundary does not leak into the neighbouring piece.
            let seg = Segment {
                start,
                end,
                r0: rate_at(start + eps),
                r1: rate_at(end - eps),
                before,
            };
            before = seg.count_at(end);
            segments.push(seg);
        }
        Schedule {
            segments,
            total: before.floor() as u64,
        }
    }

    /// Messages in the whole schedule.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Messages due by `t` seconds into the run (at most [`Schedule::total`]).
    pub fn due_by(&self, t: f64) -> u64 {
        let Some(seg) = self.segments.iter().find(|s| t < s.end) else {
            return self.total;
        };
        // Message i is due once N(t) >= i, so indices 0..=floor(N) are due.
        ((seg.count_at(t).floor() as u64) + 1).min(self.total)
    }

    /// Intended time of message `i`, in seconds from the start.
    pub fn time_of(&self, i: u64) -> f64 {
        let n = i as f64;
        let seg = self
            .segments
            .iter()
            .find(|s| s.count_at(s.end) > n)
            .or(self.segments.last());
        seg.map_or(0.0, |s| s.time_of(n))
    }
}

/// Whether message `i` of `s` is an ask.
pub fn is_ask(s: &Scenario, i: u64) -> bool {
    match s.workload {
        Workload::Tell => false,
        Workload::Ask => true,
        Workload::Mix => ((i % 1000) as f64) < s.ask_ratio * 1000.0,
    }
}

/// What the generators did.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Generated {
    /// Messages the schedule held (closed loop: those sent).
    pub scheduled: u64,
    /// Messages sent.
    pub sent: u64,
    /// Open loop: how late each message went out (actual - intended send
    /// time), us. Separates the generator's share of latency from the target's.
    pub lag: Percentiles,
}

/// Runs the open-loop schedule on `s.generators` pacing threads until it
/// ends or the run's duration is over.
///
/// Each generator is a blocking-pool thread that sleeps with the OS timer
/// (tens of microseconds of slack) rather than Tokio's millisecond timer
/// wheel, and drives each tick's sends with `Handle::block_on`: a message is
/// sent within microseconds of its intended time while the generator keeps
/// up, so the tool adds little latency of its own.
pub async fn open_loop(
    s: &Scenario,
    sender: Sender,
    tally: Arc<Tally>,
    start: Instant,
) -> Generated {
    let schedule = Arc::new(Schedule::of(s));
    let g = s.generators as u64;
    let stop = start + s.duration.0;
    let sent = Arc::new(AtomicU64::new(0));
    let handle = tokio::runtime::Handle::current();
    let mut tasks = Vec::new();
    for k in 0..g {
        let (schedule, sender, tally, sent) = (
            schedule.clone(),
            sender.clone(),
            tally.clone(),
            sent.clone(),
        );
        let (s, handle) = (s.clone(), handle.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let _pin = sender.load_cores().map(crate::cpus::Pinned::to);
            let mut i = k;
            let mut batch: Vec<Outgoing> = Vec::with_capacity(256);
            let mut lag = report_histogram();
            let total = schedule.total();
            while i < total {
                let now = Instant::now();
                // Past the end, send what was due by the end, then stop.
                let due = schedule.due_by(now.min(stop).duration_since(start).as_secs_f64());
                while i < due && batch.len() < MAX_TICK_BATCH {
                    let intended = start + Duration::from_secs_f64(schedule.time_of(i));
                    batch.push(Outgoing {
                        index: i,
                        intended,
                        ask: is_ask(&s, i),
                    });
                    i += g;
                }
                if let Some(first) = batch.first() {
                    tally.note_lag(first.intended, now);
                    for m in &batch {
                        record(&mut lag, now.saturating_duration_since(m.intended), 1);
                    }
                    let n = batch.len() as u64;
                    handle.block_on(sender.send_many(&mut batch));
                    sent.fetch_add(n, Ordering::Relaxed);
                    batch.clear();
                }
                if i >= total || (now >= stop && i >= due) {
                    break;
                }
                let next = start + Duration::from_secs_f64(schedule.time_of(i));
                let now = Instant::now();
                if next > now {
                    std::thread::sleep((next - now).min(stop.saturating_duration_since(now)));
                }
            }
            lag
        }));
    }
    let mut lag = report_histogram();
    for t in tasks {
        if let Ok(h) = t.await {
            merge(&mut lag, &h);
        }
    }
    Generated {
        scheduled: schedule.total(),
        sent: sent.load(Ordering::Relaxed),
        lag: Percentiles::of(&lag),
    }
}

/// Most messages one generator sends before it looks at the clock again.
pub const MAX_TICK_BATCH: usize = 4096;

/// Runs `s.concurrency` closed-loop requesters for `s.duration`.
pub async fn closed_loop(s: &Scenario, sender: Sender, start: Instant) -> Generated {
    let stop = start + s.duration.0;
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..s.concurrency {
        let (sender, next, s) = (sender.clone(), next.clone(), s.clone());
        tasks.spawn(async move {
            while Instant::now() < stop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let msg = Outgoing {
                    index: i,
                    intended: Instant::now(),
                    ask: is_ask(&s, i),
                };
                sender.send_wait(msg).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let n = next.load(Ordering::Relaxed);
    Generated {
        scheduled: n,
        sent: n,
        lag: Percentiles::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Overrides;

    fn scenario(pairs: &[(&str, &str)]) -> Scenario {
        let mut o = Overrides::default();
        for (k, v) in pairs {
            o.set(k, *v);
        }
        Scenario::default_with(&o).unwrap()
    }

    #[test]
    fn a_constant_rate_spaces_messages_evenly() {
        let s = scenario(&[("rate", "1000"), ("duration", "2s"), ("ramp_up", "0s")]);
        let sch = Schedule::of(&s);
        assert_eq!(sch.total(), 2000);
        assert!((sch.time_of(500) - 0.5).abs() < 1e-9);
        assert_eq!(sch.due_by(0.0), 1);
        assert_eq!(sch.due_by(0.5), 501);
        assert_eq!(sch.due_by(5.0), 2000);
    }

    #[test]
    fn a_ramp_sends_half_its_rate_on_average() {
        let s = scenario(&[("rate", "1000"), ("duration", "2s"), ("ramp_up", "1s")]);
        let sch = Schedule::of(&s);
        // 500 during the ramp, 1000 after it.
        assert_eq!(sch.total(), 1500);
        assert!((sch.time_of(500) - 1.0).abs() < 1e-6);
        // Inverse of N(t) = 500 t^2 during the ramp.
        assert!((sch.time_of(125) - 0.5).abs() < 1e-6);
        assert!(sch.time_of(1) < sch.time_of(2));
    }

    #[test]
    fn a_burst_raises_the_rate_for_its_length() {
        let s = scenario(&[
            ("rate", "100"),
            ("duration", "4s"),
            ("ramp_up", "0s"),
            ("burst.rate", "1000"),
            ("burst.at", "1s"),
            ("burst.length", "2s"),
        ]);
        let sch = Schedule::of(&s);
        assert_eq!(sch.total(), 100 + 2000 + 100);
        assert!((sch.time_of(100) - 1.0).abs() < 1e-9);
        assert!((sch.time_of(1100) - 2.0).abs() < 1e-9);
        assert!((sch.time_of(2100) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_mix_sends_the_asked_share_of_asks() {
        let s = scenario(&[("workload", "mix"), ("ask_ratio", "0.25")]);
        let asks = (0..10_000).filter(|i| is_ask(&s, *i)).count();
        assert_eq!(asks, 2500);
    }
}
