//! `report.html`: one self-contained page a person opens to read a run (or a comparison of
//! runs). Inline SVG charts ([`chart`]) and inline CSS; no script, no font, no image fetched:
//! it makes no network request, opens offline, reads on a phone and prints.
//!
//! ```text
//!  run dir: summary.json + <scenario>.hlog + <scenario>.service.hlog ─▶ RunData ─▶ page
//!  what ran (command, versions, host, window, model, daemon settings, thresholds)
//!  the scenarios' table · steps/s and errors over time · p50/p90/p99/max over time per
//!  scenario (and service time) · the percentile distribution (log scales) · errors by kind
//! ```
//!
//! Written by `run`, `quickstart` and `merge` into the run's directory, by `compare --out`
//! ([`compare`]) and by `sls-loadgen report DIR` from a run's directory as it is.

pub mod chart;
pub mod compare;
mod page;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;

use crate::meta::Meta;
use crate::rundir::{self, Hlog, SummaryFile};
use crate::summary::{self as report, ScenarioSummary};
use chart::{Axis, Chart, Series, PALETTE};

/// One run as the report reads it: its summary and each scenario's interval logs.
pub struct RunData {
    /// The run's directory.
    pub dir: PathBuf,
    /// Its `summary.json`.
    pub summary: SummaryFile,
    /// Per scenario, in the summary's order: its response-time log and its service-time log
    /// (`None` when the run has none: a `--raw` run, an older format).
    pub logs: Vec<(String, Option<Hlog>, Option<Hlog>)>,
}

impl RunData {
    /// Reads the run in `dir` (or whose `summary.json` `dir` names).
    pub fn load(dir: &Path) -> anyhow::Result<RunData> {
        let summary = rundir::read_summary(dir)?;
        let dir = rundir::summary_path(dir)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut logs = Vec::new();
        for s in &summary.scenarios {
            let read = |file: String, tag: String| -> anyhow::Result<Option<Hlog>> {
                let path = dir.join(file);
                if path.exists() {
                    rundir::read_hlog(&path, &tag).map(Some)
                } else {
                    Ok(None)
                }
            };
            logs.push((
                s.name.clone(),
                read(report::hlog_name(&s.name), s.name.clone())?,
                read(
                    report::service_hlog_name(&s.name),
                    report::service_tag(&s.name),
                )?,
            ));
        }
        Ok(RunData { dir, summary, logs })
    }

    /// A scenario's whole-run histograms (response, service), from its logs.
    pub fn histograms(&self, scenario: &str) -> (Option<Histogram<u64>>, Option<Histogram<u64>>) {
        let Some((_, r, s)) = self.logs.iter().find(|(n, _, _)| n == scenario) else {
            return (None, None);
        };
        let total = |h: &Option<Hlog>| h.as_ref().and_then(|h| h.total().ok());
        (total(r), total(s))
    }
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A one-line title saying what ran: the model, its length, the fleet, the target, the start.
pub fn title_of(meta: &Meta, run: &serde_json::Value) -> String {
    let model = &run["model"];
    let what = match model["kind"].as_str() {
        Some("open") => format!(
            "open loop at {}/s",
            chart::short(model["rate_per_s"].as_f64().unwrap_or(0.0))
        ),
        Some("closed") => format!(
            "closed loop of {} workers",
            model["workers"].as_u64().unwrap_or(0)
        ),
        _ => match (model.as_str(), run.get("merged")) {
            (Some(m), _) => m.to_owned(),
            (None, Some(runs)) => format!(
                "{} runs merged",
                runs.as_array().map_or(0, std::vec::Vec::len)
            ),
            _ => "a run".to_owned(),
        },
    };
    let mut t = format!("sls-loadgen: {what}");
    if let Some(d) = run["duration_s"].as_f64() {
        let _ = write!(t, ", {} s", chart::short(d));
    }
    if let Some(u) = run["users"].as_u64() {
        let _ = write!(t, ", {u} users");
    }
    if let Some(target) = run["target"].as_str() {
        let _ = write!(t, " against {target}");
    }
    if !meta.started.is_empty() {
        let _ = write!(t, ", {}", meta.started.get(..16).unwrap_or(&meta.started));
    }
    t
}

/// Writes `dir/report.html` for the run in `dir`.
pub fn write_run_report(dir: &Path) -> anyhow::Result<PathBuf> {
    let run = RunData::load(dir)?;
    let path = run.dir.join("report.html");
    std::fs::write(&path, render_run(&run))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The midpoint of each interval (seconds from the start of measuring) with `f` of it.
fn over_time(log: &Hlog, f: impl Fn(&Histogram<u64>, f64) -> Option<f64>) -> Vec<(f64, f64)> {
    log.intervals
        .iter()
        .filter_map(|(start, length, h)| {
            let secs = length.as_secs_f64();
            let y = f(h, secs)?;
            Some((start.as_secs_f64() + secs / 2.0, y))
        })
        .collect()
}

/// Percentile points of `h` for the distribution chart: (log10(1/(1−q)), µs).
pub fn distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut pts: Vec<(f64, f64)> = h
        .iter_quantiles(5)
        .filter(|v| v.quantile_iterated_to() < 1.0)
        .map(|v| {
            let q = v.quantile_iterated_to();
            (
                (1.0 / (1.0 - q)).log10(),
                h.highest_equivalent(v.value_iterated_to()) as f64,
            )
        })
        .collect();
    // The maximum, at the last percentile reached, so the line ends at it.
    if let Some(&(x, _)) = pts.last() {
        pts.push((x, h.max() as f64));
    }
    pts
}

/// The run's page.
pub fn render_run(run: &RunData) -> String {
    let s = &run.summary;
    let meta = s.meta.clone().unwrap_or_default();
    let title = title_of(&meta, &s.run);
    let mut body = String::new();
    page::what_ran(&mut body, &meta, &s.run, s.format);
    page::thresholds(&mut body, &s.thresholds);
    page::scenario_table(&mut body, &s.scenarios, &s.overall);

    // Steps/s and errors over time: one line per scenario, errors of all of them dashed. The
    // intervals after the measured time (the last steps' drain, a fraction of a second in an
    // interval of one) would read as a fall of the rate: left out here, kept in the latency.
    let until = s.run["duration_s"].as_f64().unwrap_or(f64::INFINITY);
    let measured = |pts: Vec<(f64, f64)>| -> Vec<(f64, f64)> {
        pts.into_iter().filter(|(x, _)| *x < until).collect()
    };
    let mut series = Vec::new();
    let mut errors: std::collections::BTreeMap<u64, (f64, f64)> = Default::default();
    for (i, (name, log, _)) in run.logs.iter().enumerate() {
        if let Some(log) = log {
            series.push(Series {
                name: format!("{name} steps/s"),
                points: measured(over_time(log, |h, secs| {
                    (secs > 0.0).then(|| h.len() as f64 / secs)
                })),
                colour: PALETTE[i % PALETTE.len()],
                dashed: false,
            });
        }
        if let Some(sc) = s.scenarios.iter().find(|x| &x.name == name) {
            for t in &sc.timeline {
                let key = (t.start_s * 1000.0).round() as u64;
                let e = errors
                    .entry(key)
                    .or_insert((t.start_s + t.length_s / 2.0, 0.0));
                if t.length_s > 0.0 {
                    e.1 += (t.errors + t.unexpected) as f64 / t.length_s;
                }
            }
        }
    }
    if !errors.is_empty() {
        series.push(Series {
            name: "errors/s (all scenarios)".into(),
            points: measured(errors.into_values().collect()),
            colour: "#d62728",
            dashed: true,
        });
    }
    body.push_str("<section><h2>Over time</h2>");
    body.push_str(
        &Chart {
            kind: "throughput",
            scenario: None,
            title: "Steps per second and errors per second, each second".into(),
            x_label: "seconds from the start of measuring",
            y_label: "per second",
            x: Axis::Linear,
            y: Axis::Linear,
            y_micros: false,
            series,
        }
        .render(),
    );
    body.push_str("<div class=\"grid2\">");
    for (name, log, service) in &run.logs {
        let Some(log) = log else { continue };
        let q = |q: f64| {
            move |h: &Histogram<u64>, _| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64)
        };
        let mut series = vec![
            line("p50", over_time(log, q(0.5)), 0, false),
            line("p90", over_time(log, q(0.9)), 1, false),
            line("p99", over_time(log, q(0.99)), 2, false),
            line(
                "max",
                over_time(log, |h, _| (!h.is_empty()).then(|| h.max() as f64)),
                3,
                false,
            ),
        ];
        if let Some(sv) = service {
            series.push(line("service p50", over_time(sv, q(0.5)), 0, true));
            series.push(line("service p99", over_time(sv, q(0.99)), 2, true));
        }
        body.push_str(
            &Chart {
                kind: "latency-over-time",
                scenario: Some(name.clone()),
                title: format!("{name}: latency each second (response; service dashed)"),
                x_label: "seconds from the start of measuring",
                y_label: "latency (log)",
                x: Axis::Linear,
                y: Axis::Log,
                y_micros: true,
                series,
            }
            .render(),
        );
    }
    body.push_str("</div></section>");

    // The distribution.
    let mut series = Vec::new();
    for (i, (name, _, _)) in run.logs.iter().enumerate() {
        let (r, sv) = run.histograms(name);
        let colour = PALETTE[i % PALETTE.len()];
        if let Some(r) = r {
            series.push(Series {
                name: name.clone(),
                points: distribution(&r),
                colour,
                dashed: false,
            });
        }
        if let Some(sv) = sv {
            series.push(Series {
                name: format!("{name} (service)"),
                points: distribution(&sv),
                colour,
                dashed: true,
            });
        }
    }
    body.push_str("<section><h2>Latency by percentile</h2>");
    body.push_str(
        &Chart {
            kind: "distribution",
            scenario: None,
            title: "Latency by percentile, whole run (response solid, service dashed)".into(),
            x_label: "percentile",
            y_label: "latency (log)",
            x: Axis::Percentile,
            y: Axis::Log,
            y_micros: true,
            series,
        }
        .render(),
    );
    body.push_str("</section>");
    page::errors_by_kind(&mut body, &s.scenarios);
    page::document(&title, &body)
}

fn line(name: &str, points: Vec<(f64, f64)>, colour: usize, dashed: bool) -> Series {
    Series {
        name: name.into(),
        points,
        colour: PALETTE[colour % PALETTE.len()],
        dashed,
    }
}

/// The scenarios' rows for a table: the scenarios, then `overall` when there are several.
pub fn rows<'a>(
    scenarios: &'a [ScenarioSummary],
    overall: &'a ScenarioSummary,
) -> Vec<&'a ScenarioSummary> {
    let mut rows: Vec<&ScenarioSummary> = scenarios.iter().collect();
    if scenarios.len() > 1 {
        rows.push(overall);
    }
    rows
}
