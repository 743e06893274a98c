//! `sls-loadgen merge DIR… --out DIR`: several runs made at the same time (several load
//! machines against one daemon or cluster) into one report, written as a run writes its own
//! (`summary.json`, one `.hlog` per scenario, `latency.svg`; the table printed).
//!
//! Counts add; rates add (the runs ran side by side); latency percentiles come from the runs'
//! interval histograms added together, so they are exact, not averages of percentiles. The
//! intervals are aligned on wall-clock time: the merged log's base time is the earliest run's,
//! and each interval goes into the second it began in, counted from there.
//!
//! Refused, naming the file: a directory with no `summary.json`, another format version, a
//! scenario whose `.hlog` is missing or whose `.hlog` does not hold the steps the summary counts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;

use crate::report::{self, Latency, ScenarioStats, ScenarioSummary, Summary};
use crate::rundir::{self, Hlog};
use crate::scenario::Scenario;

/// A merged report.
pub struct Merged {
    /// The merged summary, as written to `summary.json`.
    pub summary: Summary,
    /// Files written.
    pub files: Vec<PathBuf>,
}

/// One scenario of one input run.
struct Part {
    summary: ScenarioSummary,
    hlog: Hlog,
}

fn add(a: u64, b: u64, what: &str, dir: &Path) -> anyhow::Result<u64> {
    a.checked_add(b)
        .with_context(|| format!("{}: {what} overflows when added", dir.display()))
}

fn add_kinds(
    into: &mut BTreeMap<String, u64>,
    from: &BTreeMap<String, u64>,
    dir: &Path,
) -> anyhow::Result<()> {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_default();
        *e = add(*e, *v, k, dir)?;
    }
    Ok(())
}

/// Reads each run directory in `inputs`, merges them, and writes the merged report to `out`.
pub fn merge(inputs: &[PathBuf], out: &Path) -> anyhow::Result<Merged> {
    if inputs.is_empty() {
        bail!("nothing to merge: give the runs' directories");
    }
    let mut runs = Vec::new();
    // Scenario name -> its parts, in the order scenarios first appear.
    let mut order: Vec<Scenario> = Vec::new();
    let mut parts: BTreeMap<&'static str, Vec<(PathBuf, Part)>> = BTreeMap::new();
    for dir in inputs {
        if !dir.is_dir() {
            bail!("{}: not a run's directory", dir.display());
        }
        if out.exists() && same_dir(dir, out) {
            bail!("{}: --out is one of the inputs", out.display());
        }
        let summary = rundir::read_summary(dir)?;
        for s in &summary.scenarios {
            let scenario: Scenario = s.name.parse().map_err(|e: String| {
                anyhow::anyhow!("{}: {e}", dir.join("summary.json").display())
            })?;
            let path = dir.join(format!("{}.hlog", s.name));
            let hlog = rundir::read_hlog(&path, scenario.name())?;
            let steps = hlog.total()?.len();
            if steps != s.count {
                bail!(
                    "{}: holds {steps} steps, summary.json counts {} (not from the same run?)",
                    path.display(),
                    s.count
                );
            }
            if !order.contains(&scenario) {
                order.push(scenario);
            }
            parts.entry(scenario.name()).or_default().push((
                dir.clone(),
                Part {
                    summary: s.clone(),
                    hlog,
                },
            ));
        }
        runs.push(serde_json::json!({ "dir": dir, "run": summary.run }));
    }
    let base = parts
        .values()
        .flatten()
        .map(|(_, p)| p.hlog.base)
        .min()
        .unwrap_or_else(SystemTime::now);
    let mut scenarios = Vec::new();
    let mut stats = Vec::new();
    let mut all = ScenarioStats::empty_histogram();
    for scenario in order {
        let name = scenario.name();
        let mut merged = ScenarioSummary::empty(name);
        let mut seconds: BTreeMap<u64, (Duration, Histogram<u64>)> = BTreeMap::new();
        for (dir, part) in parts.get(name).into_iter().flatten() {
            let s = &part.summary;
            merged.count = add(merged.count, s.count, "count", dir)?;
            merged.ok = add(merged.ok, s.ok, "ok", dir)?;
            merged.unexpected_errors = add(
                merged.unexpected_errors,
                s.unexpected_errors,
                "unexpected",
                dir,
            )?;
            add_kinds(&mut merged.errors, &s.errors, dir)?;
            add_kinds(&mut merged.unexpected, &s.unexpected, dir)?;
            merged.rate_per_s += s.rate_per_s;
            let offset = part.hlog.base.duration_since(base).unwrap_or_default();
            for (start, length, h) in &part.hlog.intervals {
                let second = (offset + *start).as_secs_f64().round() as u64;
                let slot = seconds
                    .entry(second)
                    .or_insert_with(|| (*length, ScenarioStats::empty_histogram()));
                slot.0 = slot.0.max(*length);
                slot.1
                    .add(h)
                    .map_err(|e| anyhow::anyhow!("{}: {name}.hlog: {e:?}", dir.display()))?;
            }
        }
        let intervals: Vec<_> = seconds
            .into_iter()
            .map(|(s, (length, h))| (Duration::from_secs(s), length, h))
            .collect();
        let st = ScenarioStats::from_intervals(name, intervals)
            .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let total = st.histogram();
        merged.latency_us = Latency::of(&total);
        all.add(&total)
            .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        scenarios.push(merged);
        stats.push(st);
    }
    let mut overall = report::overall(&scenarios, &all, Duration::from_secs(1));
    // The runs ran side by side: their rates add.
    overall.rate_per_s = scenarios.iter().map(|s| s.rate_per_s).sum();
    let summary = Summary {
        format: report::FORMAT,
        run: serde_json::json!({ "merged": runs }),
        scenarios,
        overall,
        thresholds: Vec::new(),
    };
    let refs: Vec<&ScenarioStats> = stats.iter().collect();
    let files = report::write_all(out, &summary, &refs, base)
        .with_context(|| format!("writing the merged report into {}", out.display()))?;
    Ok(Merged { summary, files })
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
