//! What `summary.json` holds: per scenario its counts, errors by kind, latency percentiles
//! (response time, from each step's intended start, and service time, from its actual send),
//! its steps and errors per interval; every scenario together; the thresholds' verdicts; and
//! what ran ([`Meta`]). Also the summary table printed at the end of a run.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::meta::Meta;

/// Highest latency recorded, in µs (a minute); above it values are clamped.
pub const MAX_US: u64 = 60_000_000;

/// An empty histogram with the bounds every scenario uses: 1 µs to a minute, 3 significant
/// figures.
pub fn empty_histogram() -> Histogram<u64> {
    // The bounds are constants, so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 3).unwrap_or_else(|_| unreachable!())
}

/// The file of a scenario's response times in a run's directory: `<scenario>.hlog`.
pub fn hlog_name(scenario: &str) -> String {
    format!("{scenario}.hlog")
}

/// The file of a scenario's service times in a run's directory: `<scenario>.service.hlog`.
pub fn service_hlog_name(scenario: &str) -> String {
    format!("{scenario}.service.hlog")
}

/// The `.hlog` tag of a scenario's service times: `<scenario>.service`.
pub fn service_tag(scenario: &str) -> String {
    format!("{scenario}.service")
}

/// The version of what a run writes (`summary.json` and its `.hlog` files), as `format` in
/// `summary.json`: `merge` and `compare` read only what they know. Raise it when a field
/// changes meaning. Format 2 added `meta`, the service time (`service_us`, the
/// `<scenario>.service.hlog` files), each scenario's `timeline` and a structured `run.model`.
pub const FORMAT: u32 = 2;

/// Steps and errors of one interval of a scenario (one a second, as its `.hlog`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tick {
    /// The interval's start, seconds from the start of measuring.
    pub start_s: f64,
    /// Its length, seconds.
    pub length_s: f64,
    /// Steps recorded in it.
    pub steps: u64,
    /// Of those, errors a healthy run can meet.
    pub errors: u64,
    /// Of those, steps that should not have happened.
    pub unexpected: u64,
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
    /// Response time percentiles, µs: from each step's intended start (its due time in an open
    /// loop), so a late schedule counts.
    pub latency_us: Latency,
    /// Service time percentiles, µs: from the step's actual start to its end (uncorrected, as
    /// wrk2's `-U`); absent where not recorded (`--raw`, format 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_us: Option<Latency>,
    /// Steps and errors per interval; empty where not recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Tick>,
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
            service_us: None,
            timeline: Vec::new(),
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
    /// What ran, when, where, with which versions, against which daemon settings.
    pub meta: Meta,
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
