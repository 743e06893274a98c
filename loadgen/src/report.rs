//! What a run records and what it writes: per-scenario counters and HdrHistograms, one
//! HdrHistogram interval log (`.hlog`) per scenario, `summary.json`, a percentile plot (`.svg`)
//! and the summary table.
//!
//! Latencies are recorded in microseconds with 3 significant figures, from the request's
//! *intended* start in open-loop runs (so that a stalled daemon cannot hide its stall).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The version of what a run writes (`summary.json` and its `.hlog` files), as `format` in
/// `summary.json`: `merge` and `compare` read only what they know. Raise it when a field
/// changes meaning.
pub const FORMAT: u32 = 1;

/// Highest latency recorded, in µs (a minute); above it values are clamped.
const MAX_US: u64 = 60_000_000;

fn new_histogram() -> Histogram<u64> {
    // 3 significant figures over 1 µs..60 s: bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// The outcome of one scenario step as the scenario judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// What the scenario expected (an accepted login, a lock at the 10th failure, ...).
    Ok,
    /// An error the scenario can meet in a healthy run (rate limited, expired...), by kind.
    Expected(&'static str),
    /// Something that should not happen: a failed check, a transport error, a wrong verdict.
    Unexpected(&'static str),
}

#[derive(Debug)]
struct ScenarioState {
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
    unexpected: BTreeMap<&'static str, u64>,
    total: Histogram<u64>,
    interval: Histogram<u64>,
    intervals: Vec<(Duration, Duration, Histogram<u64>)>,
}

/// Watches each step a scenario records, as it is recorded: the live metrics of
/// `run --metrics` (`crate::live`). Called on the step's task, outside the stats' lock: it
/// should be cheap (atomics), as it is on the hot path.
pub trait StepObserver: Send + Sync + std::fmt::Debug {
    /// One recorded step.
    fn observe(&self, outcome: Outcome, latency: Duration);
}

/// Counters and histograms of one scenario, shared by the tasks that run it.
#[derive(Debug)]
pub struct ScenarioStats {
    name: &'static str,
    state: Mutex<ScenarioState>,
    observer: Option<Box<dyn StepObserver>>,
}

impl ScenarioStats {
    /// Empty stats for a scenario.
    pub fn new(name: &'static str) -> ScenarioStats {
        ScenarioStats {
            name,
            state: Mutex::new(ScenarioState {
                ok: 0,
                errors: BTreeMap::new(),
                unexpected: BTreeMap::new(),
                total: new_histogram(),
                interval: new_histogram(),
                intervals: Vec::new(),
            }),
            observer: None,
        }
    }

    /// Empty stats for a scenario whose every recorded step `observer` also sees.
    pub fn observed(name: &'static str, observer: Box<dyn StepObserver>) -> ScenarioStats {
        ScenarioStats {
            observer: Some(observer),
            ..ScenarioStats::new(name)
        }
    }

    /// Stats that hold only latency, from interval histograms (`start`, `length`, histogram)
    /// read back from `.hlog` files: what `merge` writes out again with [`write_all`]. Their
    /// counts of outcomes are zero; the merged summary holds those.
    pub fn from_intervals(
        name: &'static str,
        intervals: Vec<(Duration, Duration, Histogram<u64>)>,
    ) -> Result<ScenarioStats, hdrhistogram::AdditionError> {
        let stats = ScenarioStats::new(name);
        if let Ok(mut s) = stats.state.lock() {
            for (_, _, h) in &intervals {
                s.total.add(h)?;
            }
            s.intervals = intervals;
        }
        Ok(stats)
    }

    /// The scenario's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records one step: its outcome and its latency (`None` during warm-up: counted nowhere).
    pub fn record(&self, outcome: Outcome, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_US);
        let Ok(mut s) = self.state.lock() else { return };
        match outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Expected(kind) => *s.errors.entry(kind).or_default() += 1,
            Outcome::Unexpected(kind) => *s.unexpected.entry(kind).or_default() += 1,
        }
        // Values are clamped into the histogram's bounds, so recording cannot fail.
        let _ = s.total.record(us);
        let _ = s.interval.record(us);
        drop(s);
        if let Some(o) = &self.observer {
            o.observe(outcome, latency);
        }
    }

    /// Closes the last interval, from `start` to `end` of the run's base time, if a step was
    /// recorded since the last [`ScenarioStats::rotate`] (steps that end after the last
    /// progress tick): so that the `.hlog` holds every step the summary counts.
    pub fn flush(&self, start: Duration, end: Duration) {
        let Ok(mut s) = self.state.lock() else { return };
        if s.interval.is_empty() {
            return;
        }
        let h = std::mem::replace(&mut s.interval, new_histogram());
        s.intervals.push((start, end.saturating_sub(start), h));
    }

    /// Closes the current interval (`start` from the run's base time, `length` long) and adds
    /// it to `merged` (the progress line's histogram of all scenarios).
    pub fn rotate(&self, start: Duration, length: Duration, merged: &mut Histogram<u64>) {
        let Ok(mut s) = self.state.lock() else { return };
        let h = std::mem::replace(&mut s.interval, new_histogram());
        // Same bounds on both sides: adding cannot fail.
        let _ = merged.add(&h);
        s.intervals.push((start, length, h));
    }

    /// An empty histogram with the bounds every scenario uses.
    pub fn empty_histogram() -> Histogram<u64> {
        new_histogram()
    }

    /// Forgets everything recorded so far (the end of a warm-up).
    pub fn reset(&self) {
        if let Ok(mut s) = self.state.lock() {
            s.ok = 0;
            s.errors.clear();
            s.unexpected.clear();
            s.total.reset();
            s.interval.reset();
            s.intervals.clear();
        }
    }

    /// A summary of everything recorded.
    pub fn summary(&self, elapsed: Duration) -> ScenarioSummary {
        let Ok(s) = self.state.lock() else {
            return ScenarioSummary::empty(self.name);
        };
        let count = s.ok + s.errors.values().sum::<u64>() + s.unexpected.values().sum::<u64>();
        ScenarioSummary {
            name: self.name.to_owned(),
            count,
            ok: s.ok,
            rate_per_s: count as f64 / elapsed.as_secs_f64().max(1e-9),
            unexpected_errors: s.unexpected.values().sum(),
            unexpected: s
                .unexpected
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            errors: s
                .errors
                .iter()
                .map(|(k, v)| ((*k).to_owned(), *v))
                .collect(),
            latency_us: Latency::of(&s.total),
        }
    }

    /// Writes the scenario's interval log in the HdrHistogram log format (v1.3, compressed V2
    /// histograms, tagged with the scenario's name), as HdrHistogram's own tools read it.
    pub fn write_hlog(&self, path: &Path, base: SystemTime) -> std::io::Result<()> {
        let Ok(s) = self.state.lock() else {
            return Err(std::io::Error::other("stats lock poisoned"));
        };
        let mut out = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with sls-loadgen {}]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(&format!("[Scenario {}; values in microseconds]", self.name))
            .with_start_time(base)
            .with_base_time(base)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)?;
        let tag = Tag::new(self.name);
        for (start, length, h) in &s.intervals {
            writer
                .write_histogram(h, *start, *length, tag)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        drop(writer);
        std::fs::write(path, out)
    }

    /// The whole-run histogram (a copy).
    pub fn histogram(&self) -> Histogram<u64> {
        self.state
            .lock()
            .map(|s| s.total.clone())
            .unwrap_or_else(|_| new_histogram())
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Maximum.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Latency {
    /// The percentiles of `h`.
    pub fn of(h: &Histogram<u64>) -> Latency {
        Latency {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// One scenario's line of `summary.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioSummary {
    /// The scenario's name (`dsc_plus`, `ib_key_push`, ...).
    pub name: String,
    /// Steps recorded.
    pub count: u64,
    /// Steps that went as the scenario expected.
    pub ok: u64,
    /// Steps per second over the measured window.
    pub rate_per_s: f64,
    /// Steps that should not have happened.
    pub unexpected_errors: u64,
    /// Those, by kind.
    pub unexpected: BTreeMap<String, u64>,
    /// Errors a healthy run can meet, by kind.
    pub errors: BTreeMap<String, u64>,
    /// Latency percentiles, µs.
    pub latency_us: Latency,
}

impl ScenarioSummary {
    /// No steps at all.
    pub fn empty(name: &str) -> ScenarioSummary {
        ScenarioSummary {
            name: name.to_owned(),
            count: 0,
            ok: 0,
            rate_per_s: 0.0,
            unexpected_errors: 0,
            unexpected: BTreeMap::new(),
            errors: BTreeMap::new(),
            latency_us: Latency {
                p50: 0,
                p90: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            },
        }
    }
}

/// Every scenario together, named `overall`: counts and error kinds added, the rate over the
/// same window, and latency from the scenarios' histograms added into one (`merged`), so its
/// percentiles are exact.
pub fn overall(
    scenarios: &[ScenarioSummary],
    merged: &Histogram<u64>,
    elapsed: Duration,
) -> ScenarioSummary {
    let mut all = ScenarioSummary::empty("overall");
    for s in scenarios {
        all.count += s.count;
        all.ok += s.ok;
        all.unexpected_errors += s.unexpected_errors;
        for (k, v) in &s.unexpected {
            *all.unexpected.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &s.errors {
            *all.errors.entry(k.clone()).or_default() += v;
        }
    }
    all.rate_per_s = all.count as f64 / elapsed.as_secs_f64().max(1e-9);
    all.latency_us = Latency::of(merged);
    all
}

/// The scenarios' whole-run histograms added into one.
pub fn merged_histogram<'a>(stats: impl IntoIterator<Item = &'a ScenarioStats>) -> Histogram<u64> {
    let mut merged = new_histogram();
    for s in stats {
        // Same bounds on both sides: adding cannot fail.
        let _ = merged.add(s.histogram());
    }
    merged
}

/// One `--threshold`'s verdict, as `summary.json` holds it (judged by `crate::threshold`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// The threshold as written.
    pub threshold: String,
    /// What the run measured, in `unit`; `null` when there was nothing to measure (the
    /// scenario did not run, or no steps: the threshold fails).
    pub observed: Option<f64>,
    /// `us`, `steps/s`, `fraction` or `count`.
    pub unit: &'static str,
    /// Whether it held.
    pub pass: bool,
}

/// `summary.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// [`FORMAT`]: what `merge` and `compare` check before they read the rest.
    pub format: u32,
    /// How the run was driven.
    pub run: serde_json::Value,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioSummary>,
    /// Every scenario together (see [`overall`]).
    pub overall: ScenarioSummary,
    /// The `--threshold`s' verdicts, in the order given (absent when there were none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<Verdict>,
}

/// The summary table, as printed at the end of a run.
pub fn table(scenarios: &[ScenarioSummary]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:<18} {:>10} {:>10} {:>9} {:>6}  {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n",
        "scenario",
        "rate/s",
        "ok",
        "errors",
        "unexp",
        "p50 µs",
        "p90",
        "p99",
        "p99.9",
        "max",
        "error kinds"
    ));
    for s in scenarios {
        let errors: u64 = s.errors.values().sum();
        let kinds: Vec<String> = s
            .errors
            .iter()
            .chain(s.unexpected.iter())
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        out.push_str(&format!(
            "{:<18} {:>10.0} {:>10} {:>9} {:>6}  {:>8} {:>8} {:>8} {:>8} {:>8}  {}\n",
            s.name,
            s.rate_per_s,
            s.ok,
            errors,
            s.unexpected_errors,
            s.latency_us.p50,
            s.latency_us.p90,
            s.latency_us.p99,
            s.latency_us.p999,
            s.latency_us.max,
            kinds.join(" ")
        ));
    }
    out
}

/// Writes (or rewrites) `dir/summary.json`; returns its path.
pub fn write_summary(dir: &Path, summary: &Summary) -> std::io::Result<PathBuf> {
    let json = dir.join("summary.json");
    let mut f = std::fs::File::create(&json)?;
    serde_json::to_writer_pretty(&mut f, summary).map_err(std::io::Error::other)?;
    f.write_all(b"\n")?;
    Ok(json)
}

/// Writes `summary.json`, one `.hlog` per scenario and `latency.svg` into `dir`; returns the
/// paths written.
pub fn write_all(
    dir: &Path,
    summary: &Summary,
    stats: &[&ScenarioStats],
    base: SystemTime,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = vec![write_summary(dir, summary)?];
    for s in stats {
        let path = dir.join(format!("{}.hlog", s.name()));
        s.write_hlog(&path, base)?;
        written.push(path);
    }
    let svg = dir.join("latency.svg");
    let series: Vec<(&str, Histogram<u64>)> = stats
        .iter()
        .map(|s| (s.name(), s.histogram()))
        .filter(|(_, h)| !h.is_empty())
        .collect();
    crate::plot::percentiles(&svg, &series).map_err(std::io::Error::other)?;
    written.push(svg);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;

    #[test]
    fn hlog_reads_back_with_the_same_counts() {
        let stats = ScenarioStats::new("dsc_plus");
        for i in 1..=1000u64 {
            stats.record(Outcome::Ok, Duration::from_micros(i));
        }
        let mut merged = ScenarioStats::empty_histogram();
        stats.rotate(Duration::ZERO, Duration::from_secs(1), &mut merged);
        assert_eq!(merged.len(), 1000);
        stats.record(
            Outcome::Expected("rate_limited"),
            Duration::from_millis(250),
        );
        stats.rotate(Duration::from_secs(1), Duration::from_secs(1), &mut merged);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dsc_plus.hlog");
        stats.write_hlog(&path, SystemTime::now()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("#[Histogram log format version 1.3]"));
        let mut counts = Vec::new();
        for entry in IntervalLogIterator::new(&bytes) {
            if let LogEntry::Interval(h) = entry.unwrap() {
                assert_eq!(h.tag().unwrap().as_str(), "dsc_plus");
                let decoded = base64_decode(h.encoded_histogram());
                let hist: Histogram<u64> =
                    Deserializer::new().deserialize(&mut &decoded[..]).unwrap();
                counts.push((hist.len(), hist.max()));
            }
        }
        assert_eq!(counts.len(), 2);
        assert_eq!(counts[0].0, 1000);
        assert_eq!(counts[1].0, 1);
        assert!(
            counts[1].1 >= 249_000,
            "the 250 ms stall is in the second interval"
        );
        let summary = stats.summary(Duration::from_secs(2));
        assert_eq!(summary.ok, 1000);
        assert_eq!(summary.errors["rate_limited"], 1);
        assert_eq!(summary.unexpected_errors, 0);
    }

    fn base64_decode(s: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(s).unwrap()
    }

    #[test]
    fn overall_adds_counts_and_takes_exact_percentiles_of_the_merged_histogram() {
        // Two scenarios whose p99s are both low, but whose merged p50 is neither's.
        let fast = ScenarioStats::new("dsc_plus");
        let slow = ScenarioStats::new("ib_key_push");
        for _ in 0..900 {
            fast.record(Outcome::Ok, Duration::from_micros(100));
        }
        for _ in 0..1100 {
            slow.record(Outcome::Ok, Duration::from_micros(10_000));
        }
        fast.record(
            Outcome::Expected("rate_limited"),
            Duration::from_micros(100),
        );
        slow.record(
            Outcome::Unexpected("wrong_verdict"),
            Duration::from_micros(10_000),
        );
        let elapsed = Duration::from_secs(2);
        let scenarios = [fast.summary(elapsed), slow.summary(elapsed)];
        let merged = merged_histogram([&fast, &slow]);
        let all = overall(&scenarios, &merged, elapsed);
        assert_eq!(all.name, "overall");
        assert_eq!((all.count, all.ok, all.unexpected_errors), (2002, 2000, 1));
        assert_eq!(all.errors.get("rate_limited"), Some(&1));
        assert_eq!(all.unexpected.get("wrong_verdict"), Some(&1));
        assert_eq!(all.rate_per_s, 1001.0);
        // 901 of 2002 values are 100 µs: the median is a slow one; the 40th percentile fast.
        assert_eq!(
            merged.highest_equivalent(all.latency_us.p50),
            merged.highest_equivalent(10_000)
        );
        assert_eq!(
            merged.value_at_quantile(0.4),
            merged.highest_equivalent(100)
        );
        assert_eq!(all.latency_us.max, scenarios[1].latency_us.max);
    }
}
