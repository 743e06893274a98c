//! The page of `compare --out DIR`: both sides' runs (what each was), the verdict of each row
//! with each side's median and range, steps per second over time of every run, and each
//! scenario's percentile distribution, BASE's runs added against NEW's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hdrhistogram::Histogram;

use super::chart::{micros, short, Axis, Chart, Series, PALETTE};
use super::{distribution, esc, page, title_of, RunData};
use crate::compare::{Comparison, Spread};

/// Writes `out/report.html` for `base` against `new`.
pub fn write(
    out: &Path,
    base: &[RunData],
    new: &[RunData],
    c: &Comparison,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let path = out.join("report.html");
    std::fs::write(&path, render(base, new, c))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn spread(metric: &str, s: &Spread) -> String {
    let v = |x: f64| {
        if metric.ends_with("/s") {
            short(x)
        } else {
            micros(x)
        }
    };
    if s.n > 1 {
        format!(
            "{} <span class=\"note\">({}–{})</span>",
            v(s.median),
            v(s.min),
            v(s.max)
        )
    } else {
        v(s.median)
    }
}

fn runs_table(out: &mut String, side: &str, runs: &[RunData]) {
    for r in runs {
        let meta = r.summary.meta.clone().unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{side}</td><td class=\"l\"><code>{}</code></td><td class=\"l\">{}</td>\
             <td>{}</td><td>{} ({})</td></tr>",
            esc(&r.dir.display().to_string()),
            esc(&title_of(&meta, &r.summary.run)),
            esc(if meta.started.is_empty() {
                "not recorded"
            } else {
                &meta.started
            }),
            esc(if meta.version.is_empty() {
                "unknown"
            } else {
                &meta.version
            }),
            esc(if meta.revision.is_empty() {
                "unknown"
            } else {
                &meta.revision
            }),
        );
    }
}

/// Every scenario's response-time histograms of a side's runs, added.
fn added(runs: &[RunData], scenario: &str) -> Option<Histogram<u64>> {
    let mut total = crate::summary::empty_histogram();
    for r in runs {
        if let (Some(h), _) = r.histograms(scenario) {
            total.add(h).ok()?;
        }
    }
    (!total.is_empty()).then_some(total)
}

/// A run's steps per second over time, all its scenarios together.
fn steps_over_time(run: &RunData) -> Vec<(f64, f64)> {
    let mut by_start: std::collections::BTreeMap<u64, (f64, f64, f64)> = Default::default();
    for (_, log, _) in &run.logs {
        for (start, length, h) in log.iter().flat_map(|l| l.intervals.iter()) {
            let e = by_start.entry(start.as_millis() as u64).or_insert((
                start.as_secs_f64(),
                length.as_secs_f64(),
                0.0,
            ));
            e.1 = e.1.max(length.as_secs_f64());
            e.2 += h.len() as f64;
        }
    }
    by_start
        .into_values()
        .filter(|(_, len, _)| *len > 0.0)
        .map(|(start, len, n)| (start + len / 2.0, n / len))
        .collect()
}

/// The comparison's page.
pub fn render(base: &[RunData], new: &[RunData], c: &Comparison) -> String {
    let title = format!(
        "sls-loadgen compare: {} BASE run{} against {} NEW run{}",
        base.len(),
        if base.len() == 1 { "" } else { "s" },
        new.len(),
        if new.len() == 1 { "" } else { "s" }
    );
    let mut body = String::new();
    body.push_str(
        "<section id=\"runs\"><h2>The runs</h2><div class=\"scroll\"><table><thead><tr>\
         <th>side</th><th class=\"l\">directory</th><th class=\"l\">what ran</th>\
         <th>measured from</th><th>sls-loadgen</th></tr></thead><tbody>",
    );
    runs_table(&mut body, "BASE", base);
    runs_table(&mut body, "NEW", new);
    body.push_str("</tbody></table></div></section>\n");

    let _ = write!(
        body,
        "<section id=\"verdicts\"><h2>Verdicts</h2><p class=\"note\">{}</p>\
         <div class=\"scroll\"><table><thead><tr><th>scenario</th><th class=\"l\">metric</th>\
         <th>BASE</th><th>NEW</th><th>change</th><th>verdict</th></tr></thead><tbody>",
        if c.indicative() {
            format!(
                "Indicative: one run a side cannot tell a change from noise. A change beyond \
                 {}% is judged as it is; give several runs a side to judge it against their \
                 spread.",
                c.tolerance
            )
        } else {
            format!(
                "Each side: the median of its runs, and their range. A regression: every NEW \
                 run worse than every BASE run, by more than {}% of BASE's median and more \
                 than the runs' own spread; noise: the medians moved that much, but the runs \
                 do not tell.",
                c.tolerance
            )
        }
    );
    for r in &c.rows {
        let _ = write!(
            body,
            "<tr data-verdict=\"{v}\"><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td class=\"{v}\">{v}</td></tr>",
            esc(&r.scenario),
            esc(r.metric),
            spread(r.metric, &r.base),
            spread(r.metric, &r.new),
            r.percent.map_or("n/a".into(), |p| format!("{p:+.1}%")),
            v = r.verdict.name()
        );
    }
    body.push_str("</tbody></table></div>");
    for s in &c.only_base {
        let _ = write!(
            body,
            "<p class=\"note\">{} only in BASE: not compared</p>",
            esc(s)
        );
    }
    for s in &c.only_new {
        let _ = write!(
            body,
            "<p class=\"note\">{} only in NEW: not compared</p>",
            esc(s)
        );
    }
    let _ = writeln!(
        body,
        "<p><strong>{} regressions</strong></p></section>",
        c.regressions()
    );

    // Every run's steps per second over time: BASE solid, NEW dashed.
    let mut series = Vec::new();
    for (side, runs, colour, dashed) in [("BASE", base, 0, false), ("NEW", new, 1, true)] {
        for (i, r) in runs.iter().enumerate() {
            series.push(Series {
                name: format!("{side} {}", i + 1),
                points: steps_over_time(r),
                colour: PALETTE[(colour + 2 * i) % PALETTE.len()],
                dashed,
            });
        }
    }
    body.push_str("<section><h2>Steps per second over time</h2>");
    body.push_str(
        &Chart {
            kind: "throughput",
            scenario: None,
            title: "Every run's steps per second, each second (BASE solid, NEW dashed)".into(),
            x_label: "seconds from the start of measuring",
            y_label: "steps per second",
            x: Axis::Linear,
            y: Axis::Linear,
            y_micros: false,
            series,
        }
        .render(),
    );
    body.push_str("</section><section><h2>Latency by percentile</h2><div class=\"grid2\">");
    let mut scenarios: Vec<&str> = c.rows.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.dedup();
    for name in scenarios.into_iter().filter(|n| *n != "overall") {
        let mut series = Vec::new();
        for (side, runs, colour, dashed) in [("BASE", base, 0, false), ("NEW", new, 1, true)] {
            if let Some(h) = added(runs, name) {
                series.push(Series {
                    name: format!("{side} ({} runs added)", runs.len()),
                    points: distribution(&h),
                    colour: PALETTE[colour],
                    dashed,
                });
            }
        }
        body.push_str(
            &Chart {
                kind: "distribution",
                scenario: Some(name.to_owned()),
                title: format!("{name}: response time by percentile"),
                x_label: "percentile",
                y_label: "latency (log)",
                x: Axis::Percentile,
                y: Axis::Log,
                y_micros: true,
                series,
            }
            .render(),
        );
    }
    body.push_str("</div></section>");
    page::document(&title, &body)
}
