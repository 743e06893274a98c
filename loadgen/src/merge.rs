//! `sls-loadgen merge DIR… --out DIR`: several runs made at the same time (several load
//! machines against one daemon or cluster) into one report, written as a run writes its own
//! (`summary.json`, one `.hlog` per scenario, `latency.svg`; the table printed).
//!
//! Counts add; rates add (the runs ran side by side); latency percentiles come from the runs'
//! interval histograms added together, so they are exact, not averages of percentiles. The
//! intervals are aligned on wall-clock time: the merged log's base time is the earliest run's,
//! and each interval goes into the second it began in, counted from there.
//!
//! Refused, naming the file: a directory with no `summary.json`, another format version (a
//! format 1 run has no window to check), a scenario whose `.hlog` is missing or whose `.hlog`
//! does not hold the steps the summary counts; and runs whose measured windows do not all
//! overlap (made one after another: their rates do not add), unless told `sequential`, when
//! the runs are taken as one after another: counts add, the rate is the steps over the sum of
//! the windows, and the intervals are laid end to end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context};

use crate::meta::Meta;
use crate::report::{self, Interval, Latency, ScenarioStats, ScenarioSummary, Summary};
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
    /// Its service times, when the run recorded them.
    service: Option<Hlog>,
    /// Where its intervals go, from the merged base time.
    offset: Duration,
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

/// Whether every pair of windows `(start, end)` overlaps: the latest start is before the
/// earliest end.
pub fn windows_overlap(windows: &[(u64, u64)]) -> bool {
    let latest_start = windows.iter().map(|w| w.0).max();
    let earliest_end = windows.iter().map(|w| w.1).min();
    match (latest_start, earliest_end) {
        (Some(s), Some(e)) => s < e,
        _ => true,
    }
}

/// Reads each run directory in `inputs`, merges them, and writes the merged report to `out`.
/// The runs must have run at the same time (their windows overlap) unless `sequential`.
pub fn merge(inputs: &[PathBuf], out: &Path, sequential: bool) -> anyhow::Result<Merged> {
    if inputs.is_empty() {
        bail!("nothing to merge: give the runs' directories");
    }
    let mut metas: Vec<(PathBuf, Meta)> = Vec::new();
    for dir in inputs {
        if !dir.is_dir() {
            bail!("{}: not a run's directory", dir.display());
        }
        let summary = rundir::read_summary(dir)?;
        let Some(meta) = summary.meta else {
            bail!(
                "{}: format {} has no measured window to merge by; merge reads format {}                  (run again with this sls-loadgen)",
                rundir::summary_path(dir).display(),
                summary.format.unwrap_or(0),
                report::FORMAT
            );
        };
        metas.push((dir.clone(), meta));
    }
    let windows: Vec<(u64, u64)> = metas.iter().map(|(_, m)| m.window()).collect();
    if !sequential && !windows_overlap(&windows) {
        let list: Vec<String> = metas
            .iter()
            .map(|(d, m)| format!("{} {} to {}", d.display(), m.started, m.ended))
            .collect();
        bail!(
            "the runs did not run at the same time, so their rates do not add: {}; give              --sequential to merge runs made one after another",
            list.join(", ")
        );
    }
    // Sequential runs are laid end to end, in the order of their start.
    let mut offsets: BTreeMap<PathBuf, Duration> = BTreeMap::new();
    if sequential {
        let mut order: Vec<&(PathBuf, Meta)> = metas.iter().collect();
        order.sort_by_key(|(_, m)| m.started_unix_ms);
        let mut at = Duration::ZERO;
        for (d, m) in order {
            offsets.insert(d.clone(), at);
            let (s, e) = m.window();
            at += Duration::from_millis(e.saturating_sub(s)).max(Duration::from_secs(1));
            // Whole seconds, so each run's intervals keep their own seconds.
            at = Duration::from_secs(at.as_secs_f64().ceil() as u64);
        }
    }
    let mut runs = Vec::new();
    // Scenario name -> its parts, in the order scenarios first appear.
    let mut order: Vec<Scenario> = Vec::new();
    let mut parts: BTreeMap<&'static str, Vec<(PathBuf, Part)>> = BTreeMap::new();
    for dir in inputs {
        if out.exists() && same_dir(dir, out) {
            bail!("{}: --out is one of the inputs", out.display());
        }
        let summary = rundir::read_summary(dir)?;
        let offset = offsets.get(dir).copied();
        for s in &summary.scenarios {
            let scenario: Scenario = s.name.parse().map_err(|e: String| {
                anyhow::anyhow!("{}: {e}", dir.join("summary.json").display())
            })?;
            let path = dir.join(report::hlog_name(&s.name));
            let hlog = rundir::read_hlog(&path, scenario.name())?;
            let service_path = dir.join(report::service_hlog_name(&s.name));
            let service = if service_path.exists() {
                Some(rundir::read_hlog(
                    &service_path,
                    &report::service_tag(scenario.name()),
                )?)
            } else {
                None
            };
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
                    service,
                    offset: offset.unwrap_or_default(),
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
    if !sequential {
        for p in parts.values_mut().flatten() {
            p.1.offset = p.1.hlog.base.duration_since(base).unwrap_or_default();
        }
    }
    let mut scenarios = Vec::new();
    let mut stats = Vec::new();
    let mut all = ScenarioStats::empty_histogram();
    let mut all_service = ScenarioStats::empty_histogram();
    for scenario in order {
        let name = scenario.name();
        let mut merged = ScenarioSummary::empty(name);
        let mut seconds: BTreeMap<u64, Interval> = BTreeMap::new();
        let mut has_service = true;
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
            let second_of = |start: Duration| (part.offset + start).as_secs_f64().round() as u64;
            let err = |e| anyhow::anyhow!("{}: {name}.hlog: {e:?}", dir.display());
            for (start, length, h) in &part.hlog.intervals {
                let slot = seconds
                    .entry(second_of(*start))
                    .or_insert_with(|| Interval {
                        start: Duration::from_secs(second_of(*start)),
                        ..empty_interval()
                    });
                slot.length = slot.length.max(*length);
                slot.response.add(h).map_err(err)?;
            }
            match &part.service {
                Some(service) => {
                    for (start, _, h) in &service.intervals {
                        if let Some(slot) = seconds.get_mut(&second_of(*start)) {
                            slot.service.add(h).map_err(err)?;
                        }
                    }
                }
                None => has_service = false,
            }
            for t in &s.timeline {
                let start = Duration::from_secs_f64(t.start_s.max(0.0));
                if let Some(slot) = seconds.get_mut(&second_of(start)) {
                    slot.errors = add(slot.errors, t.errors, "errors", dir)?;
                    slot.unexpected = add(slot.unexpected, t.unexpected, "unexpected", dir)?;
                }
            }
        }
        let intervals: Vec<Interval> = seconds.into_values().collect();
        let st = ScenarioStats::from_intervals(name, intervals)
            .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let total = st.histogram();
        merged.latency_us = Latency::of(&total);
        let with_ticks = st.summary(Duration::from_secs(1));
        merged.timeline = with_ticks.timeline;
        if has_service {
            merged.service_us = with_ticks.service_us;
            all_service
                .add(st.service_histogram())
                .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        }
        all.add(&total)
            .map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        scenarios.push(merged);
        stats.push(st);
    }
    if sequential {
        // One after another: the steps over the windows laid end to end.
        let secs: f64 = windows
            .iter()
            .map(|(s, e)| e.saturating_sub(*s) as f64 / 1000.0)
            .sum::<f64>()
            .max(1e-9);
        for s in &mut scenarios {
            s.rate_per_s = s.count as f64 / secs;
        }
    }
    let mut overall = report::overall(&scenarios, &all, Duration::from_secs(1));
    // Side by side their rates add; one after another each is already over the whole time.
    overall.rate_per_s = scenarios.iter().map(|s| s.rate_per_s).sum();
    if !all_service.is_empty() {
        overall.service_us = Some(Latency::of(&all_service));
    }
    let started = windows.iter().map(|w| w.0).min().unwrap_or(0);
    let ended = windows.iter().map(|w| w.1).max().unwrap_or(0);
    let mut meta = Meta::of_run(
        SystemTime::UNIX_EPOCH + Duration::from_millis(started),
        Duration::from_millis(ended.saturating_sub(started)),
        serde_json::json!({
            "merged": metas.iter().map(|(_, m)| m.daemon.clone()).collect::<Vec<_>>()
        }),
    );
    meta.host = metas
        .first()
        .map(|(_, m)| m.host.clone())
        .unwrap_or_default();
    let summary = Summary {
        format: report::FORMAT,
        meta,
        run: serde_json::json!({ "merged": runs, "sequential": sequential }),
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

fn empty_interval() -> Interval {
    Interval {
        start: Duration::ZERO,
        length: Duration::ZERO,
        response: ScenarioStats::empty_histogram(),
        service: ScenarioStats::empty_histogram(),
        errors: 0,
        unexpected: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_format_1_run_is_refused_by_name_and_read_by_compare() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("old");
        std::fs::create_dir(&run).unwrap();
        let old = ScenarioSummary::empty("dsc_plus");
        let json = serde_json::json!({
            "format": 1,
            "run": {"model": "Closed { workers: 4 }"},
            "scenarios": [old],
            "overall": ScenarioSummary::empty("overall"),
        });
        std::fs::write(run.join("summary.json"), json.to_string()).unwrap();
        let e = merge(std::slice::from_ref(&run), &dir.path().join("m"), false)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("format 1 has no measured window"), "{e}");
        assert!(e.contains("summary.json"), "{e}");
        // compare and report read it: no meta, no service time.
        let read = rundir::read_summary(&run).unwrap();
        assert_eq!(read.meta, None);
        assert_eq!(read.scenarios[0].service_us, None);
    }

    #[test]
    fn windows_overlap_only_when_all_share_a_moment() {
        assert!(windows_overlap(&[(0, 10), (5, 15)]));
        assert!(windows_overlap(&[(0, 10), (2, 3), (1, 9)]));
        assert!(
            !windows_overlap(&[(0, 10), (10, 20)]),
            "touching is not overlapping"
        );
        assert!(!windows_overlap(&[(0, 10), (5, 15), (11, 12)]));
    }
}
