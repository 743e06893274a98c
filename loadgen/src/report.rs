//! What a run records and what it writes: per-scenario counters and HdrHistograms, two
//! HdrHistogram interval logs per scenario (`<scenario>.hlog`, response time;
//! `<scenario>.service.hlog`, service time), `summary.json` ([`crate::summary`]), a percentile
//! plot (`latency.svg`) and the HTML report (`report.html`, [`crate::html`]).
//!
//! Latencies are recorded in microseconds with 3 significant figures. Response time runs from
//! the step's *intended* start in open-loop runs (so that a stalled daemon cannot hide its
//! stall behind a late schedule); service time from its actual start (uncorrected, as wrk2's
//! `-U`): the two apart tell a slow daemon from a late client.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;

pub use crate::summary::{
    hlog_name, overall, service_hlog_name, service_tag, table, write_summary, Latency,
    ScenarioSummary, Summary, Tick, Verdict, FORMAT,
};

use crate::summary::{empty_histogram as new_histogram, MAX_US};

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

/// One closed interval of a scenario (a second, as the progress line ticks).
#[derive(Debug, Clone)]
pub struct Interval {
    /// Its start, from the run's base time (the start of measuring).
    pub start: Duration,
    /// Its length.
    pub length: Duration,
    /// Response times recorded in it, µs.
    pub response: Histogram<u64>,
    /// Service times recorded in it, µs.
    pub service: Histogram<u64>,
    /// Steps in it that were errors a healthy run can meet.
    pub errors: u64,
    /// Steps in it that should not have happened.
    pub unexpected: u64,
}

impl Interval {
    /// An empty interval.
    fn open() -> Interval {
        Interval {
            start: Duration::ZERO,
            length: Duration::ZERO,
            response: new_histogram(),
            service: new_histogram(),
            errors: 0,
            unexpected: 0,
        }
    }
}

#[derive(Debug)]
struct ScenarioState {
    ok: u64,
    errors: BTreeMap<&'static str, u64>,
    unexpected: BTreeMap<&'static str, u64>,
    total: Histogram<u64>,
    service: Histogram<u64>,
    current: Interval,
    intervals: Vec<Interval>,
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
                service: new_histogram(),
                current: Interval::open(),
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

    /// Stats that hold only latency, from intervals read back from `.hlog` files: what
    /// `merge` writes out again with [`write_all`]. Their counts of outcomes are zero; the
    /// merged summary holds those.
    pub fn from_intervals(
        name: &'static str,
        intervals: Vec<Interval>,
    ) -> Result<ScenarioStats, hdrhistogram::AdditionError> {
        let stats = ScenarioStats::new(name);
        if let Ok(mut s) = stats.state.lock() {
            for i in &intervals {
                s.total.add(&i.response)?;
                s.service.add(&i.service)?;
            }
            s.intervals = intervals;
        }
        Ok(stats)
    }

    /// The scenario's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Records one step: its outcome, its response time (`latency`, from its intended start)
    /// and its service time (`service`, from its actual start; the same in a closed loop).
    pub fn record(&self, outcome: Outcome, latency: Duration, service: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_US);
        let service_us = (service.as_micros() as u64).clamp(1, MAX_US);
        let Ok(mut s) = self.state.lock() else { return };
        match outcome {
            Outcome::Ok => s.ok += 1,
            Outcome::Expected(kind) => {
                *s.errors.entry(kind).or_default() += 1;
                s.current.errors += 1;
            }
            Outcome::Unexpected(kind) => {
                *s.unexpected.entry(kind).or_default() += 1;
                s.current.unexpected += 1;
            }
        }
        // Values are clamped into the histogram's bounds, so recording cannot fail.
        let _ = s.total.record(us);
        let _ = s.current.response.record(us);
        let _ = s.service.record(service_us);
        let _ = s.current.service.record(service_us);
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
        if s.current.response.is_empty() {
            return;
        }
        let mut i = std::mem::replace(&mut s.current, Interval::open());
        (i.start, i.length) = (start, end.saturating_sub(start));
        s.intervals.push(i);
    }

    /// Closes the current interval (`start` from the run's base time, `length` long) and adds
    /// it to `merged` (the progress line's histogram of all scenarios).
    pub fn rotate(&self, start: Duration, length: Duration, merged: &mut Histogram<u64>) {
        let Ok(mut s) = self.state.lock() else { return };
        let mut i = std::mem::replace(&mut s.current, Interval::open());
        (i.start, i.length) = (start, length);
        // Same bounds on both sides: adding cannot fail.
        let _ = merged.add(&i.response);
        s.intervals.push(i);
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
            s.service.reset();
            s.current = Interval::open();
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
            service_us: Some(Latency::of(&s.service)),
            timeline: s
                .intervals
                .iter()
                .map(|i| Tick {
                    start_s: i.start.as_secs_f64(),
                    length_s: i.length.as_secs_f64(),
                    steps: i.response.len(),
                    errors: i.errors,
                    unexpected: i.unexpected,
                })
                .collect(),
        }
    }

    /// Writes the scenario's interval log of response times in the HdrHistogram log format
    /// (v1.3, compressed V2 histograms, tagged with the scenario's name), as HdrHistogram's own
    /// tools read it.
    pub fn write_hlog(&self, path: &Path, base: SystemTime) -> std::io::Result<()> {
        self.write_log(path, base, false)
    }

    /// Writes the scenario's interval log of service times, as [`ScenarioStats::write_hlog`],
    /// tagged `<scenario>.service` ([`service_tag`]).
    pub fn write_service_hlog(&self, path: &Path, base: SystemTime) -> std::io::Result<()> {
        self.write_log(path, base, true)
    }

    fn write_log(&self, path: &Path, base: SystemTime, service: bool) -> std::io::Result<()> {
        let Ok(s) = self.state.lock() else {
            return Err(std::io::Error::other("stats lock poisoned"));
        };
        let (what, tag) = if service {
            (
                "service time, from the actual start",
                service_tag(self.name),
            )
        } else {
            (
                "response time, from the intended start",
                self.name.to_owned(),
            )
        };
        let mut out = Vec::new();
        let mut serializer = V2DeflateSerializer::new();
        let mut writer = IntervalLogWriterBuilder::new()
            .add_comment(&format!(
                "[Logged with sls-loadgen {}]",
                env!("CARGO_PKG_VERSION")
            ))
            .add_comment("[Histogram log format version 1.3]")
            .add_comment(&format!(
                "[Scenario {}, {what}; values in microseconds]",
                self.name
            ))
            .with_start_time(base)
            .with_base_time(base)
            .with_max_value_divisor(1000.0)
            .begin_log_with(&mut out, &mut serializer)?;
        let tag = Tag::new(&tag);
        for i in &s.intervals {
            let h = if service { &i.service } else { &i.response };
            writer
                .write_histogram(h, i.start, i.length, tag)
                .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        }
        drop(writer);
        std::fs::write(path, out)
    }

    /// The whole-run histogram of response times (a copy).
    pub fn histogram(&self) -> Histogram<u64> {
        self.state
            .lock()
            .map(|s| s.total.clone())
            .unwrap_or_else(|_| new_histogram())
    }

    /// The whole-run histogram of service times (a copy).
    pub fn service_histogram(&self) -> Histogram<u64> {
        self.state
            .lock()
            .map(|s| s.service.clone())
            .unwrap_or_else(|_| new_histogram())
    }
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

/// The scenarios' whole-run histograms of service times added into one.
pub fn merged_service_histogram<'a>(
    stats: impl IntoIterator<Item = &'a ScenarioStats>,
) -> Histogram<u64> {
    let mut merged = new_histogram();
    for s in stats {
        // Same bounds on both sides: adding cannot fail.
        let _ = merged.add(s.service_histogram());
    }
    merged
}

/// Writes `summary.json`, two `.hlog` files per scenario (response and service time),
/// `latency.svg` and `report.html` into `dir`; returns the paths written.
pub fn write_all(
    dir: &Path,
    summary: &Summary,
    stats: &[&ScenarioStats],
    base: SystemTime,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = vec![write_summary(dir, summary)?];
    for s in stats {
        let path = dir.join(hlog_name(s.name()));
        s.write_hlog(&path, base)?;
        written.push(path);
        let path = dir.join(service_hlog_name(s.name()));
        s.write_service_hlog(&path, base)?;
        written.push(path);
    }
    written.push(write_svg(dir, summary, stats)?);
    written.push(write_html(dir)?);
    Ok(written)
}

/// Writes `dir/latency.svg`: the scenarios' response-time percentiles, titled with what ran.
pub fn write_svg(
    dir: &Path,
    summary: &Summary,
    stats: &[&ScenarioStats],
) -> std::io::Result<PathBuf> {
    let svg = dir.join("latency.svg");
    let series: Vec<(&str, Histogram<u64>)> = stats
        .iter()
        .map(|s| (s.name(), s.histogram()))
        .filter(|(_, h)| !h.is_empty())
        .collect();
    let title = crate::html::title_of(&summary.meta, &summary.run);
    crate::plot::percentiles(&svg, &title, &series).map_err(std::io::Error::other)?;
    Ok(svg)
}

/// Writes (or rewrites) `dir/report.html` from what `dir` holds (its `summary.json` and
/// `.hlog` files); returns its path.
pub fn write_html(dir: &Path) -> std::io::Result<PathBuf> {
    crate::html::write_run_report(dir).map_err(|e| std::io::Error::other(format!("{e:#}")))
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
            stats.record(
                Outcome::Ok,
                Duration::from_micros(i),
                Duration::from_micros(i),
            );
        }
        let mut merged = ScenarioStats::empty_histogram();
        stats.rotate(Duration::ZERO, Duration::from_secs(1), &mut merged);
        assert_eq!(merged.len(), 1000);
        stats.record(
            Outcome::Expected("rate_limited"),
            Duration::from_millis(250),
            Duration::from_millis(1),
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
        // The stall was the schedule's, not the daemon's: 250 ms of response time, 1 ms of
        // service time, each in its own log, and the error in its second of the timeline.
        assert_eq!(summary.latency_us.max, stats.histogram().max());
        assert!(summary.service_us.as_ref().unwrap().max < 2_000);
        let service = dir.path().join(service_hlog_name("dsc_plus"));
        stats
            .write_service_hlog(&service, SystemTime::now())
            .unwrap();
        let log = crate::rundir::read_hlog(&service, &service_tag("dsc_plus")).unwrap();
        assert_eq!(log.intervals.len(), 2);
        assert!(log.total().unwrap().max() < 2_000);
        let ticks: Vec<(u64, u64)> = summary
            .timeline
            .iter()
            .map(|t| (t.steps, t.errors))
            .collect();
        assert_eq!(ticks, [(1000, 0), (1, 1)]);
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
            fast.record(
                Outcome::Ok,
                Duration::from_micros(100),
                Duration::from_micros(100),
            );
        }
        for _ in 0..1100 {
            slow.record(
                Outcome::Ok,
                Duration::from_micros(10_000),
                Duration::from_micros(10),
            );
        }
        fast.record(
            Outcome::Expected("rate_limited"),
            Duration::from_micros(100),
            Duration::from_micros(100),
        );
        slow.record(
            Outcome::Unexpected("wrong_verdict"),
            Duration::from_micros(10_000),
            Duration::from_micros(10),
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
