//! Reading a run's report back: its `summary.json` and its `.hlog` files, as `merge`,
//! `compare` and `report` need them. Refuses, naming the file, what this version cannot read:
//! no `format`, a format other than [`FORMAT`] or [`OLDEST_READ`], a scenario it does not
//! know, an interval log that does not decode.
//!
//! Format 1 (before `meta`, service time and timelines) is still read: those fields are then
//! absent (`None`, empty). `merge` refuses it (it needs each run's window, see
//! `crate::merge`).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::Deserialize;

use crate::meta::Meta;
use crate::summary::{empty_histogram, ScenarioSummary, FORMAT};

/// The oldest format this version reads.
pub const OLDEST_READ: u32 = 1;

/// `summary.json` as read back.
#[derive(Debug, Clone, Deserialize)]
pub struct SummaryFile {
    /// The format's version; `None` in files written before it was recorded.
    pub format: Option<u32>,
    /// What ran; `None` in format 1.
    #[serde(default)]
    pub meta: Option<Meta>,
    /// How the run was driven.
    pub run: serde_json::Value,
    /// The thresholds' verdicts as written (`threshold`, `observed`, `unit`, `pass`).
    #[serde(default)]
    pub thresholds: Vec<serde_json::Value>,
    /// One entry per scenario.
    pub scenarios: Vec<ScenarioSummary>,
    /// Every scenario together.
    pub overall: ScenarioSummary,
}

/// `arg` if it names a file, else `arg/summary.json`.
pub fn summary_path(arg: &Path) -> PathBuf {
    if arg.is_dir() {
        arg.join("summary.json")
    } else {
        arg.to_path_buf()
    }
}

/// Reads a run's `summary.json` (`path` is the file or the run's directory) and checks its
/// format.
pub fn read_summary(path: &Path) -> anyhow::Result<SummaryFile> {
    let path = summary_path(path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{}: no summary of a run here", path.display()))?;
    let summary: SummaryFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a summary.json of sls-loadgen", path.display()))?;
    match summary.format {
        Some(f) if (OLDEST_READ..=FORMAT).contains(&f) => Ok(summary),
        Some(other) => bail!(
            "{}: format {other}, this sls-loadgen reads formats {OLDEST_READ} to {FORMAT}",
            path.display()
        ),
        None => bail!(
            "{}: no format version (written by an older sls-loadgen); this one reads formats \
             {OLDEST_READ} to {FORMAT}",
            path.display()
        ),
    }
}

/// One `.hlog` read back: its base time and its intervals (start from the base time, length,
/// histogram of µs).
pub struct Hlog {
    /// The log's `BaseTime` (the run's start of measuring).
    pub base: SystemTime,
    /// The intervals, in the log's order.
    pub intervals: Vec<(Duration, Duration, Histogram<u64>)>,
}

impl Hlog {
    /// Every interval added into one histogram.
    pub fn total(&self) -> anyhow::Result<Histogram<u64>> {
        let mut total = empty_histogram();
        for (_, _, h) in &self.intervals {
            total
                .add(h)
                .map_err(|e| anyhow::anyhow!("adding intervals: {e:?}"))?;
        }
        Ok(total)
    }
}

/// Reads the interval log at `path`, whose intervals must all be tagged `tag` (a scenario).
pub fn read_hlog(path: &Path, tag: &str) -> anyhow::Result<Hlog> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: missing", path.display()))?;
    let name = path.display();
    let mut base = None;
    let mut intervals = Vec::new();
    let mut deserializer = Deserializer::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| anyhow::anyhow!("{name}: not an interval log ({e:?})"))?;
        match entry {
            LogEntry::BaseTime(t) => base = Some(SystemTime::UNIX_EPOCH + t),
            LogEntry::StartTime(_) => {}
            LogEntry::Interval(h) => {
                let got = h.tag().map(|t| t.as_str());
                if got != Some(tag) {
                    bail!("{name}: an interval tagged {got:?}, not {tag:?}");
                }
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(h.encoded_histogram())
                    .with_context(|| format!("{name}: an interval's histogram is not base64"))?;
                let hist: Histogram<u64> = deserializer
                    .deserialize(&mut &raw[..])
                    .map_err(|e| anyhow::anyhow!("{name}: an interval does not decode ({e:?})"))?;
                intervals.push((h.start_timestamp(), h.duration(), hist));
            }
        }
    }
    let base = base.with_context(|| format!("{name}: no BaseTime (not written by sls-loadgen)"))?;
    Ok(Hlog { base, intervals })
}
