//! Load models: when steps start, and from when their latency counts.
//!
//! - **Open loop** (`--rate`, optionally `--ramp`): steps are due at fixed times computed in
//!   advance; each step's latency is measured from the time it was *due*, not from when it
//!   happened to start, so that a stalled daemon cannot hide its stall behind a stalled client
//!   (the coordinated-omission correction of wrk2). Steps past the in-flight cap are counted as
//!   `dropped`, never silently skipped.
//! - **Closed loop** (`--connections` x `--in-flight`): each worker starts its next step as soon as
//!   the last one ends: the most the daemon can take.
//!
//! Every run is bounded by its duration and stops by itself.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::distributions::{Distribution, WeightedIndex};
use tokio::time::sleep_until;

use crate::abort::{self, Abort, Stopped, Watch};
use crate::live::LiveMetrics;
use crate::report::{self, ScenarioStats};
use crate::scenario::{Scenario, World};

/// How steps are started.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadModel {
    /// Steps due at `rate` per second (ramping linearly from `from_rate` over `ramp`).
    Open {
        /// Target steps per second.
        rate: f64,
        /// Starting rate of a linear ramp, and its length.
        ramp: Option<(f64, Duration)>,
        /// Most steps in flight; steps due beyond it are dropped and counted.
        max_in_flight: usize,
    },
    /// `workers` steps in flight at all times.
    Closed {
        /// Concurrent workers.
        workers: usize,
    },
}

impl LoadModel {
    /// The model as `summary.json`'s `run.model` holds it: `{"kind": "open", "rate_per_s",
    /// "ramp", "max_in_flight"}` or `{"kind": "closed", "workers"}`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            LoadModel::Open {
                rate,
                ramp,
                max_in_flight,
            } => serde_json::json!({
                "kind": "open",
                "rate_per_s": rate,
                "ramp": ramp.map(|(from, over)| serde_json::json!({
                    "from_per_s": from,
                    "over_s": over.as_secs_f64(),
                })),
                "max_in_flight": max_in_flight,
            }),
            LoadModel::Closed { workers } => serde_json::json!({
                "kind": "closed",
                "workers": workers,
            }),
        }
    }
}

/// A run's plan.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The load model.
    pub model: LoadModel,
    /// Scenarios and their weights.
    pub mix: Vec<(Scenario, u32)>,
    /// Measured time.
    pub duration: Duration,
    /// Time before measuring starts (recorded, then discarded).
    pub warmup: Duration,
    /// Print a progress line each second.
    pub progress: bool,
}

impl Plan {
    /// Whether a scenario of the plan needs the IB Key apps connected (the push logins).
    pub fn uses_apps(&self) -> bool {
        self.mix.iter().any(|(s, w)| *w > 0 && s.uses_apps())
    }
}

/// The stats of a run: one per scenario, in the plan's order.
pub struct RunStats {
    /// Per scenario.
    pub scenarios: Vec<(Scenario, Arc<ScenarioStats>)>,
    /// Steps due but not started because the in-flight cap was reached (open loop).
    pub dropped: u64,
    /// When measuring started (the interval logs' base time).
    pub started: SystemTime,
    /// How long measuring lasted.
    pub elapsed: Duration,
    /// The load generator's own CPU time (user + system, every thread) over the measured
    /// window.
    pub cpu: Duration,
    /// Replies its pipelines received over the measured window.
    pub requests: u64,
    /// Why the run stopped before its end, if it did (`elapsed` is then the time measured
    /// until it stopped).
    pub stopped: Option<Stopped>,
}

/// The due time of step `k` under a linear ramp from `r0` to `r1` over `ramp`, then `r1`.
/// Solving `r0 t + (r1 - r0) t^2 / 2T = k` for t during the ramp.
pub fn due_offset(k: u64, rate: f64, ramp: Option<(f64, Duration)>) -> Duration {
    let k = k as f64;
    match ramp {
        Some((r0, t)) if t > Duration::ZERO => {
            let tr = t.as_secs_f64();
            let ramp_steps = (r0 + rate) / 2.0 * tr;
            if k <= ramp_steps {
                let a = (rate - r0) / (2.0 * tr);
                let secs = if a.abs() < 1e-12 {
                    k / r0.max(1e-9)
                } else {
                    (-r0 + (r0 * r0 + 4.0 * a * k).sqrt()) / (2.0 * a)
                };
                Duration::from_secs_f64(secs.max(0.0))
            } else {
                Duration::from_secs_f64(tr + (k - ramp_steps) / rate.max(1e-9))
            }
        }
        _ => Duration::from_secs_f64(k / rate.max(1e-9)),
    }
}

/// The rate an open loop aims at `t` after its start: the ramp's, then `rate`.
pub fn target_rate(t: Duration, rate: f64, ramp: Option<(f64, Duration)>) -> f64 {
    match ramp {
        Some((r0, over)) if t < over => {
            r0 + (rate - r0) * (t.as_secs_f64() / over.as_secs_f64().max(1e-9))
        }
        _ => rate,
    }
}

/// Runs the plan against `world`.
pub async fn run(world: Arc<World>, plan: &Plan) -> RunStats {
    run_live(world, plan, None).await
}

/// Runs the plan against `world`, its steps also counted in `live` (`run --metrics`).
pub async fn run_live(world: Arc<World>, plan: &Plan, live: Option<&LiveMetrics>) -> RunStats {
    run_watched(world, plan, live, &Watch::default()).await
}

/// As [`run_live`], stopping early when `watch.abort` is stopped (a lost connection), or when
/// one of `watch.abort_on` is already lost (checked at each progress tick, see
/// [`crate::abort`]).
pub async fn run_watched(
    world: Arc<World>,
    plan: &Plan,
    live: Option<&LiveMetrics>,
    watch: &Watch,
) -> RunStats {
    let abort = watch.abort.clone();
    let mix: Vec<(Scenario, u32)> = plan
        .mix
        .iter()
        .copied()
        .filter(|(s, w)| *w > 0 && world.can_run(*s))
        .collect();
    let stats: Vec<(Scenario, Arc<ScenarioStats>)> = mix
        .iter()
        .map(|(s, _)| {
            let stats = match live {
                Some(l) => ScenarioStats::observed(s.name(), Box::new(l.scenario(s.name()))),
                None => ScenarioStats::new(s.name()),
            };
            (*s, Arc::new(stats))
        })
        .collect();
    let in_flight_gauge = live.map(LiveMetrics::in_flight);
    let weights = WeightedIndex::new(mix.iter().map(|(_, w)| *w)).ok();
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + plan.warmup;
    let end = measure_from + plan.duration;
    let progress = tokio::spawn(progress_loop(
        stats.iter().map(|(_, s)| s.clone()).collect(),
        Progress {
            start,
            warmup: plan.warmup,
            duration: plan.duration,
            print: plan.progress,
            abort: abort.clone(),
            abort_on: watch.abort_on.clone(),
        },
    ));
    let Some(weights) = weights else {
        progress.abort();
        return RunStats {
            scenarios: stats,
            dropped: 0,
            started: SystemTime::now(),
            elapsed: Duration::ZERO,
            cpu: Duration::ZERO,
            requests: 0,
            stopped: None,
        };
    };
    // The closed loop of request/reply chains runs batched when it can (see `crate::batched`).
    let batch = match plan.model {
        LoadModel::Closed { .. } => crate::batched::batch(&world, &mix),
        LoadModel::Open { .. } => None,
    };
    // Replies of the batched path (the pipelines count theirs).
    let batched_replies = Arc::new(AtomicU64::new(0));
    let replies = {
        let batched = batched_replies.clone();
        move || sls_client::pipeline::replies() + batched.load(Ordering::Relaxed)
    };
    // The process's CPU time and the replies received, from the window's start to its end.
    let metered = abort.clone();
    let meter = tokio::spawn(async move {
        tokio::select! {
            _ = sleep_until(measure_from.into()) => {}
            _ = metered.stopped() => {}
        }
        let (cpu0, replies0) = (crate::raw::process_cpu(), replies());
        tokio::select! {
            _ = sleep_until(end.into()) => {}
            _ = metered.stopped() => {}
        }
        (
            crate::raw::process_cpu().saturating_sub(cpu0),
            replies() - replies0,
        )
    });
    // The index (into `mix` and `stats`, in the same order) of the next step's scenario; no
    // draw when there is one scenario.
    let pick = {
        let one = mix.len() == 1;
        move || {
            if one {
                0
            } else {
                weights.sample(&mut rand::thread_rng())
            }
        }
    };
    let mut dropped = 0u64;
    match plan.model {
        LoadModel::Open {
            rate,
            ramp,
            max_in_flight,
        } => {
            let in_flight = Arc::new(AtomicUsize::new(0));
            let mut tasks = tokio::task::JoinSet::new();
            let mut k: u64 = 0;
            loop {
                let offset = due_offset(k, rate, ramp);
                let due = start + offset;
                if due >= end {
                    break;
                }
                k += 1;
                if let Some(l) = live {
                    l.set_target_rate(target_rate(offset, rate, ramp));
                }
                tokio::select! {
                    _ = sleep_until(due.into()) => {}
                    _ = abort.stopped() => break,
                }
                // Reap finished tasks so the set stays small.
                while tasks.try_join_next().is_some() {}
                if in_flight.load(Ordering::Relaxed) >= max_in_flight {
                    if due >= measure_from {
                        dropped += 1;
                    }
                    continue;
                }
                let (scenario, st) = stats[pick()].clone();
                let world = world.clone();
                let in_flight = in_flight.clone();
                in_flight.fetch_add(1, Ordering::Relaxed);
                let gauge = in_flight_gauge.clone();
                tasks.spawn(async move {
                    let _counted = gauge.as_ref().map(InFlight::new);
                    let sent = Instant::now();
                    let outcome = world.step(scenario).await;
                    // From the due time: a late start is the daemon's (or the client's) delay too.
                    // The service time runs from the actual start (uncorrected).
                    let latency = due.elapsed();
                    if due >= measure_from {
                        st.record(outcome, latency, sent.elapsed());
                    }
                    in_flight.fetch_sub(1, Ordering::Relaxed);
                });
            }
            // Let the last steps finish, bounded (less when the run was stopped).
            let _ = tokio::time::timeout(drain_for(&abort, Duration::from_secs(15)), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        }
        LoadModel::Closed { workers } if batch.is_some() => {
            let window = crate::batched::Window {
                start,
                measure_from,
                end,
            };
            let shared = crate::batched::Shared {
                abort: abort.clone(),
                replies: batched_replies,
                gauge: in_flight_gauge.clone(),
            };
            let stats = stats.iter().map(|(_, s)| s.clone()).collect();
            if let Some(batch) = batch {
                crate::batched::closed(batch, &world, &mix, stats, workers, window, shared).await;
            }
        }
        LoadModel::Closed { workers } => {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..workers.max(1) {
                let world = world.clone();
                let stats: Vec<_> = stats.iter().map(|(s, st)| (*s, st.clone())).collect();
                let pick = pick.clone();
                let gauge = in_flight_gauge.clone();
                let abort = abort.clone();
                tasks.spawn(async move {
                    sleep_until(start.into()).await;
                    while Instant::now() < end && !abort.is_stopped() {
                        let (scenario, st) = &stats[pick()];
                        let t0 = Instant::now();
                        let _counted = gauge.as_ref().map(InFlight::new);
                        let outcome = world.step(*scenario).await;
                        if t0 >= measure_from {
                            // No schedule to be late on: response and service time agree.
                            let took = t0.elapsed();
                            st.record(outcome, took, took);
                        }
                    }
                });
            }
            let bound = plan.warmup + plan.duration + Duration::from_secs(15);
            let _ = tokio::time::timeout(bound, async {
                tokio::select! {
                    _ = async { while tasks.join_next().await.is_some() {} } => {}
                    _ = abort.stopped() => {}
                }
            })
            .await;
            let _ = tokio::time::timeout(drain_for(&abort, bound), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
        }
    }
    // The progress loop ends with the window, or as soon as the run is stopped.
    let ticks = progress.await.unwrap_or(0);
    let (cpu, requests) = meter.await.unwrap_or_default();
    if let Some(l) = live {
        l.set_target_rate(0.0);
    }
    // Steps that ended after the last progress tick: into one last interval, so that the
    // interval logs hold every step the summary counts.
    let since = Duration::from_secs(ticks);
    let until = measure_from.elapsed().max(since);
    for (_, s) in &stats {
        s.flush(since, until);
    }
    let stopped = abort.reason();
    let elapsed = match stopped {
        // The window as far as it went (at least a millisecond: rates divide by it).
        Some(_) => measure_from
            .elapsed()
            .clamp(Duration::from_millis(1), plan.duration),
        None => plan.duration,
    };
    RunStats {
        scenarios: stats,
        dropped,
        started: SystemTime::now() - measure_from.elapsed(),
        elapsed,
        cpu,
        requests,
        stopped,
    }
}

/// How long to wait for the steps in flight: `normal`, or a few seconds once the run was
/// stopped (the steps on a lost connection fail as it closes; the others are dropped).
fn drain_for(abort: &Abort, normal: Duration) -> Duration {
    if abort.is_stopped() {
        normal.min(Duration::from_secs(3))
    } else {
        normal
    }
}

/// Counts a step in flight on the live gauge while it lives.
struct InFlight(prometheus_client::metrics::gauge::Gauge);

impl InFlight {
    fn new(g: &prometheus_client::metrics::gauge::Gauge) -> InFlight {
        g.inc();
        InFlight(g.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// What the progress loop needs besides the stats.
struct Progress {
    start: Instant,
    warmup: Duration,
    duration: Duration,
    print: bool,
    abort: Abort,
    abort_on: Vec<crate::threshold::Threshold>,
}

/// Prints one line a second (rate, p50/p99, errors) and closes each scenario's interval; once
/// the run is stopped, a line saying why instead, and it returns. With `abort_on`, judges those
/// thresholds on the steps so far at each tick and stops the run when one is already lost.
/// Returns the ticks done (the intervals closed).
async fn progress_loop(stats: Vec<Arc<ScenarioStats>>, p: Progress) -> u64 {
    let Progress {
        start,
        warmup,
        duration,
        print,
        abort,
        abort_on,
    } = p;
    // No reset at the end of the warm-up: steps are recorded only from `measure_from` on (both
    // loops check), and a reset here could wipe the first measured steps if this task ran late.
    let measure_from = start + warmup;
    let mut tick = 0u64;
    let stopped = |tick: u64| {
        if print {
            if let Some(why) = abort.reason() {
                eprintln!(
                    "[{:>4.1}s] {why}; the run stops",
                    measure_from.elapsed().as_secs_f64()
                );
            }
        }
        tick
    };
    tokio::select! {
        _ = sleep_until(measure_from.into()) => {}
        _ = abort.stopped() => return stopped(tick),
    }
    loop {
        tick += 1;
        let at = measure_from + Duration::from_secs(tick);
        let last = at > measure_from + duration;
        let at = at.min(measure_from + duration + Duration::from_millis(500));
        tokio::select! {
            _ = sleep_until(at.into()) => {}
            _ = abort.stopped() => return stopped(tick - 1),
        }
        let mut merged = ScenarioStats::empty_histogram();
        let mut errors = 0u64;
        for s in &stats {
            s.rotate(
                Duration::from_secs(tick - 1),
                Duration::from_secs(1),
                &mut merged,
            );
            let sum = s.summary(Duration::from_secs(1));
            errors += sum.errors.values().sum::<u64>() + sum.unexpected_errors;
        }
        if print {
            eprintln!(
                "[{tick:>4}s] {:>8} steps/s  p50 {:>6} µs  p99 {:>7} µs  errors so far {errors}",
                merged.len(),
                merged.value_at_quantile(0.5),
                merged.value_at_quantile(0.99)
            );
        }
        if !abort_on.is_empty() {
            let so_far = summary_so_far(&stats, measure_from.elapsed());
            if let Some(why) = abort::first_lost(&abort_on, &so_far) {
                abort.stop(why);
            }
        }
        if abort.is_stopped() {
            return stopped(tick);
        }
        if last {
            return tick;
        }
    }
}

/// The summary of the steps measured so far (what `--abort-on-fail` judges).
fn summary_so_far(stats: &[Arc<ScenarioStats>], elapsed: Duration) -> report::Summary {
    let scenarios: Vec<_> = stats.iter().map(|s| s.summary(elapsed)).collect();
    let merged = report::merged_histogram(stats.iter().map(|s| s.as_ref()));
    let overall = report::overall(&scenarios, &merged, elapsed);
    report::Summary {
        format: report::FORMAT,
        // Only the thresholds read it: what ran is written with the final summary.
        meta: Default::default(),
        run: serde_json::Value::Null,
        scenarios,
        overall,
        thresholds: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_rate_is_evenly_spaced() {
        assert_eq!(due_offset(0, 100.0, None), Duration::ZERO);
        assert_eq!(due_offset(100, 100.0, None), Duration::from_secs(1));
        assert_eq!(due_offset(250, 1000.0, None), Duration::from_millis(250));
    }

    #[test]
    fn ramp_reaches_its_rate_and_then_holds_it() {
        // From 0 to 1000/s over 10 s: 5000 steps in the ramp, then 1000/s.
        let ramp = Some((0.0, Duration::from_secs(10)));
        let at_end = due_offset(5000, 1000.0, ramp).as_secs_f64();
        assert!((at_end - 10.0).abs() < 1e-6, "{at_end}");
        let after = due_offset(6000, 1000.0, ramp).as_secs_f64();
        assert!((after - 11.0).abs() < 1e-6, "{after}");
        // Halfway through the ramp in time, a quarter of its steps are due.
        let quarter = due_offset(1250, 1000.0, ramp).as_secs_f64();
        assert!((quarter - 5.0).abs() < 1e-6, "{quarter}");
        // Monotonic.
        let mut last = Duration::ZERO;
        for k in 0..8000 {
            let d = due_offset(k, 1000.0, ramp);
            assert!(d >= last);
            last = d;
        }
    }

    #[test]
    fn a_model_is_structured_json() {
        let open = LoadModel::Open {
            rate: 2000.0,
            ramp: Some((100.0, Duration::from_secs(10))),
            max_in_flight: 50,
        }
        .to_json();
        assert_eq!(open["kind"], "open");
        assert_eq!(open["rate_per_s"], 2000.0);
        assert_eq!(open["ramp"]["over_s"], 10.0);
        let closed = LoadModel::Closed { workers: 8 }.to_json();
        assert_eq!(closed, serde_json::json!({"kind": "closed", "workers": 8}));
    }
}
