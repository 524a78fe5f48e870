//! One load run from start to report.
//!
//! ```text
//!  Target::connect ─► start ─┬─ generators (open or closed loop) ── until duration
//!                            ├─ sampler task, every 100 ms ── until drained
//!                            │
//!  duration over ─► drain: wait until every sent message has an outcome (≤ drain)
//!               ─► stop sampler ─► Target::finish (final counters) ─► Report + verdict
//! ```
//!
//! **Shutdown.** Generators end at the run's duration; the sampler is told
//! to stop through a watch channel after the drain; the target is closed by
//! `finish`. Nothing outlives [`run`].

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use switchyard_runtime::slo::Percentiles;

use crate::error::LoadError;
use crate::generator::{self, Generated};
use crate::progress::{Display, Progress};
use crate::report::{self, GeneratorStats, LatencyUs, Report, Resources, SloVerdict};
use crate::sampler::{Sampler, TICK};
use crate::scenario::{AgentKind, Mode, Scenario, TargetSpec, Workload};
use crate::tally::Tally;
use crate::target::Target;

/// Latest point of a run from which RSS growth is measured, seconds.
pub const RSS_WARMUP_MAX_S: f64 = 60.0;

/// Largest share of the schedule left unsent for the generator to count as keeping up.
pub const MAX_UNSENT_SHARE: f64 = 0.01;

/// Runs `s` and returns its report (with the SLO verdict). `Err` only for
/// usage and setup errors: then there is no report.
pub async fn run(s: &Scenario, display: Display) -> Result<Report, LoadError> {
    let tally = Arc::new(Tally::new());
    let target = Arc::new(Target::connect(s, tally.clone()).await?);
    let started_unix_s = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Start a little after the epoch so the first intended time is never in
    // the past of the epoch, whatever the setup cost.
    let start = Instant::now() + Duration::from_millis(5);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The sampler merges and scans histograms every tick: on a thread of its
    // own, not on one of the Tokio workers the agents under test run on,
    // where it held the tasks queued behind it for hundreds of microseconds.
    let handle = tokio::runtime::Handle::current();
    let sampler = tokio::task::spawn_blocking({
        let (s, target, tally) = (s.clone(), target.clone(), tally.clone());
        let progress = Progress::new(display, s.duration.0);
        move || handle.block_on(sample(s, target, tally, start, stop_rx, progress))
    });
    tokio::time::sleep_until(start.into()).await;
    let sender = target.sender();
    let generated = match s.mode {
        Mode::Open => generator::open_loop(s, sender, tally.clone(), start).await,
        Mode::Closed => generator::closed_loop(s, sender, start).await,
    };
    let sending_s = start
        .elapsed()
        .as_secs_f64()
        .max(s.duration.0.as_secs_f64());
    let drain_deadline = Instant::now() + s.drain.0;
    while Instant::now() < drain_deadline && !target.settled(&tally) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = stop_tx.send(true);
    let mut sampler = sampler
        .await
        .map_err(|e| LoadError::Setup(format!("the sampler task failed: {e}")))?;
    let target = Arc::try_unwrap(target).map_err(|_| {
        LoadError::Setup("the target is still in use after the run (a task leaked)".into())
    })?;
    let settled = target.finish(&tally, drain_deadline, s.workload).await;
    let last = tally.take_interval();
    switchyard_runtime::slo::merge(&mut sampler.total, &last);
    Ok(build(
        s,
        &tally,
        sampler,
        settled,
        generated,
        sending_s,
        started_unix_s,
    ))
}

async fn sample(
    s: Scenario,
    target: Arc<Target>,
    tally: Arc<Tally>,
    start: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
    progress: Progress,
) -> Sampler {
    let mut sampler = Sampler::new(&s);
    let mut ticker = tokio::time::interval_at((start + TICK).into(), TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut last_sent = 0;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.changed() => break,
        }
        let interval = tally.take_interval();
        let depth = target.depth().await;
        sampler.tick(interval, depth);
        let sent = Tally::get(&tally.sent);
        progress.update(
            start.elapsed(),
            (sent - last_sent) as f64 / TICK.as_secs_f64(),
            Tally::get(&tally.ok),
            Tally::get(&tally.errors),
            sampler.last.p99,
        );
        last_sent = sent;
    }
    progress.finish();
    sampler
}

fn build(
    s: &Scenario,
    tally: &Tally,
    sampler: Sampler,
    settled: crate::target::Settled,
    generated: Generated,
    duration_s: f64,
    started_unix_s: u64,
) -> Report {
    let sent = Tally::get(&tally.sent);
    let ok = settled.remote_ok.unwrap_or_else(|| Tally::get(&tally.ok));
    let rejected = Tally::get(&tally.rejected) + settled.rejected;
    let timed_out = Tally::get(&tally.timed_out) + settled.dead_timed_out;
    let errors = Tally::get(&tally.errors) + settled.dead_errors;
    let outcomes = ok + rejected + timed_out + errors;
    let lost = sent.saturating_sub(outcomes);
    let p = Percentiles::of(&sampler.total);
    let unsent = generated.scheduled.saturating_sub(generated.sent);
    let generator = GeneratorStats {
        mode: match s.mode {
            Mode::Open => "open".into(),
            Mode::Closed => "closed".into(),
        },
        scheduled: generated.scheduled,
        unsent,
        max_lag_us: Tally::get(&tally.max_lag_ns) / 1000,
        lag_p50_us: generated.lag.p50,
        lag_p99_us: generated.lag.p99,
        kept_up: (unsent as f64) <= generated.scheduled as f64 * MAX_UNSENT_SHARE,
    };
    let resources = resources(s, &sampler);
    let burst = s.burst.map(|_| sampler.outcome);
    let success = if sent > 0 {
        ok as f64 / sent as f64
    } else {
        0.0
    };

    let mut violations = Vec::new();
    let us = |sp: Option<crate::scenario::Span>| sp.map(|d| d.0.as_micros() as u64);
    let (p50_bound, p99_bound) = (us(s.slo.p50), us(s.slo.p99));
    if sent == 0 {
        violations.push("nothing was sent".to_owned());
    }
    if outcomes > sent {
        violations.push(format!(
            "accounting does not balance: {outcomes} outcomes for {sent} sent (a tool defect)"
        ));
    }
    if lost > 0 {
        violations.push(format!(
            "{lost} messages lost: sent but never confirmed, refused, timed out or failed"
        ));
    }
    if success < s.slo.min_success {
        violations.push(format!(
            "success {:.3}% < {:.3}%",
            success * 100.0,
            s.slo.min_success * 100.0
        ));
    }
    for (name, bound, value) in [("p50", p50_bound, p.p50), ("p99", p99_bound, p.p99)] {
        if let Some(b) = bound
            && value > b
        {
            violations.push(format!(
                "{name} {} > {}",
                switchyard_runtime::slo::fmt_us(value),
                switchyard_runtime::slo::fmt_us(b)
            ));
        }
    }
    if s.mode == Mode::Open && !generator.kept_up {
        violations.push(format!(
            "the generator fell behind: {unsent} of {} scheduled messages were never sent \
             (max lag {}); the run did not test the rate it claims",
            generated.scheduled,
            switchyard_runtime::slo::fmt_us(generator.max_lag_us)
        ));
    }
    if let Some(b) = &burst {
        match (b.recovery_s, s.slo.max_recovery) {
            (None, _) => violations.push(
                "no recovery after the burst: the 1-second p99 or the queue depth never came \
                 back within bounds before the run ended"
                    .into(),
            ),
            (Some(r), Some(max)) if r > max.0.as_secs_f64() => {
                violations.push(format!("recovery {r:.1}s > {}", max))
            }
            _ => {}
        }
    }
    if let Some(max) = s.slo.max_rss_growth_pct
        && resources.rss_growth_pct > max
    {
        violations.push(format!(
            "RSS grew {:.1}% > {max:.1}%",
            resources.rss_growth_pct
        ));
    }
    if let Some(max) = s.slo.max_degradation_pct
        && resources.degradation_pct > max
    {
        violations.push(format!(
            "throughput degraded {:.1}% > {max:.1}%",
            resources.degradation_pct
        ));
    }

    Report {
        schema: report::SCHEMA_VERSION,
        scenario: s.name.clone(),
        target: s.target.to_string(),
        workload: match s.workload {
            Workload::Tell => "tell".into(),
            Workload::Ask => "ask".into(),
            Workload::Mix => format!("mix ({:.0}% asks)", s.ask_ratio * 100.0),
        },
        agents: match (&s.target, s.kind) {
            (TargetSpec::Embedded, kind) => format!(
                "{} {} agents {}",
                s.agents,
                if kind == AgentKind::Native {
                    "native"
                } else {
                    "WASM"
                },
                settled.placement.as_deref().unwrap_or_default()
            ),
            _ => format!(
                "agent {} {}",
                s.agent,
                settled.placement.as_deref().unwrap_or_default()
            ),
        },
        payload_bytes: s.payload,
        started_unix_s,
        duration_s: round3(duration_s),
        target_rate: if s.mode == Mode::Open { s.rate } else { 0.0 },
        achieved_rate: round1(sent as f64 / duration_s),
        ok_rate: round1(ok as f64 / duration_s),
        sent,
        ok,
        rejected,
        timed_out,
        errors,
        lost,
        dead_lettered: settled.dead_lettered,
        error_samples: tally.error_samples(),
        latency_source: settled.latency_source.to_owned(),
        latency_us: LatencyUs::from(p),
        slo: SloVerdict {
            p50_us: p50_bound,
            p99_us: p99_bound,
            min_success: s.slo.min_success,
            success: (success * 1e6).round() / 1e6,
            pass: violations.is_empty(),
            violations,
        },
        generator,
        resources,
        burst,
        percentile_curve: report::curve(&sampler.total),
        timeline: sampler.timeline,
        baseline: None,
        histogram: Some(sampler.total),
    }
}

fn resources(s: &Scenario, sampler: &Sampler) -> Resources {
    let tl = &sampler.timeline;
    let warm = s.ramp_up.0.as_secs_f64();
    let steady: Vec<_> = tl.iter().filter(|p| p.t_s > warm + 0.5).collect();
    let steady = if steady.is_empty() {
        tl.iter().collect()
    } else {
        steady
    };
    // RSS growth is measured after the warm-up: allocators, mailboxes and
    // the runtime's SLO windows (the longest fills in 60 s) grow at first
    // without leaking. From half the run, at most 60 s in, to the end.
    let warm_rss = (s.duration.0.as_secs_f64() / 2.0)
        .min(RSS_WARMUP_MAX_S)
        .max(warm + 0.5);
    let rss_start = tl
        .iter()
        .find(|p| p.t_s >= warm_rss)
        .or(steady.first().copied())
        .map_or(0, |p| p.rss_kib);
    let rss_end = tl.last().map_or(0, |p| p.rss_kib);
    let cpu: Vec<f64> = tl.iter().map(|p| p.cpu_pct).collect();
    // Compare the first and last tenth of the steady part (at least one second each),
    // only over seconds inside the sending phase.
    let sending: Vec<_> = steady
        .iter()
        .filter(|p| p.t_s <= s.duration.0.as_secs_f64() + 1e-9)
        .filter(|p| {
            s.burst.is_none_or(|b| {
                let (a, e) = (b.at.0.as_secs_f64(), (b.at.0 + b.length.0).as_secs_f64());
                p.t_s <= a || p.t_s > e + 2.0
            })
        })
        .collect();
    let tenth = (sending.len() / 10).max(1);
    let mean = |ps: &[&&crate::sampler::Point]| {
        if ps.is_empty() {
            0.0
        } else {
            ps.iter().map(|p| p.throughput).sum::<f64>() / ps.len() as f64
        }
    };
    let (first, last) = if sending.len() >= 2 {
        (
            mean(&sending[..tenth]),
            mean(&sending[sending.len() - tenth..]),
        )
    } else {
        (0.0, 0.0)
    };
    Resources {
        rss_start_kib: rss_start,
        rss_end_kib: rss_end,
        rss_peak_kib: sampler.rss_peak_kib,
        rss_growth_pct: if rss_start > 0 {
            round1((rss_end as f64 - rss_start as f64) / rss_start as f64 * 100.0)
        } else {
            0.0
        },
        cpu_avg_pct: round1(if cpu.is_empty() {
            0.0
        } else {
            cpu.iter().sum::<f64>() / cpu.len() as f64
        }),
        cpu_peak_pct: round1(cpu.iter().copied().fold(0.0, f64::max)),
        degradation_pct: if first > 0.0 {
            round1((first - last) / first * 100.0)
        } else {
            0.0
        },
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn round3(x: f64) -> f64 {
    (x * 1e3).round() / 1e3
}
