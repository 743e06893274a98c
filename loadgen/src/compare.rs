//! `sls-loadgen compare BASE... -- NEW...`: runs side by side, per scenario and overall, with
//! a verdict on each metric that knows the runs' noise, as `benchstat` or `critcmp` compare
//! samples rather than single numbers. `compare BASE NEW` (one run a side) still works; its
//! verdicts are *indicative*: one run says nothing of the noise.
//!
//! Compared: `rate/s` (steps per second), `ok/s` (steps that went as the scenario expected, per
//! second: a daemon that refuses more work shows here), the latency percentiles p50, p90, p99
//! and p99.9, and the service time's p50 and p99 when every run recorded it. Each side's runs
//! give a spread per metric: min, median, max.
//!
//! The verdict, with `T` the tolerance in percent of BASE's median:
//! - *regression*: every NEW run is worse than every BASE run (the ranges do not overlap), and
//!   the gap between the closest two (NEW's best against BASE's worst) is more than `T` and
//!   more than either side's own spread (max − min): a change larger than the noise the runs
//!   themselves show. Three runs a side from one distribution are all apart one way in 1 case
//!   of 20; apart by more than their own spread, far more rarely;
//! - *improvement*: the same the other way;
//! - *noise*: the medians differ by more than `T`, but the runs do not set them apart so: the
//!   runs cannot tell a change from their noise (more runs, or longer ones, can);
//! - *ok*: the medians are within `T`.
//!
//! With one run a side the range is the value itself: a change beyond `T` is a regression or
//! an improvement, as a plain percentage, and the table says the result is indicative.
//! A scenario in one side only is listed, not judged (the runs did not do the same work).

use std::fmt::Write as _;

use crate::report::ScenarioSummary;
use crate::rundir::SummaryFile;

/// The verdict on one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance.
    Ok,
    /// Worse beyond the tolerance and beyond the runs' spread.
    Regression,
    /// Better beyond the tolerance and beyond the runs' spread.
    Improvement,
    /// The medians differ beyond the tolerance, within the runs' spread.
    Noise,
}

impl Verdict {
    /// `ok`, `regression`, `improvement`, `noise`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
            Verdict::Noise => "noise",
        }
    }
}

/// One metric over one side's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The least.
    pub min: f64,
    /// The median (of an even count, the mean of the middle two).
    pub median: f64,
    /// The most.
    pub max: f64,
    /// Runs.
    pub n: usize,
}

impl Spread {
    /// The spread of `values` (none: all zero).
    pub fn of(values: &[f64]) -> Spread {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Spread {
                min: 0.0,
                median: 0.0,
                max: 0.0,
                n: 0,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            min: v[0],
            median,
            max: v[n - 1],
            n,
        }
    }
}

/// One metric of one scenario on both sides.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario (or `overall`).
    pub scenario: String,
    /// `rate/s`, `ok/s`, `p50 µs`, ...
    pub metric: &'static str,
    /// BASE's runs.
    pub base: Spread,
    /// NEW's runs.
    pub new: Spread,
    /// `new.median - base.median`.
    pub change: f64,
    /// The change as a percentage of BASE's median; `None` when that is 0.
    pub percent: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Runs compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The tolerance, percent.
    pub tolerance: f64,
    /// Runs on each side (BASE, NEW).
    pub runs: (usize, usize),
    /// Every compared metric, scenario by scenario (BASE's order, then NEW's), `overall` last.
    pub rows: Vec<Row>,
    /// Scenarios only BASE ran.
    pub only_base: Vec<String>,
    /// Scenarios only NEW ran.
    pub only_new: Vec<String>,
}

impl Comparison {
    /// Rows judged regressions.
    pub fn regressions(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| r.verdict == Verdict::Regression)
            .count()
    }

    /// One run on a side: the verdicts cannot know the noise.
    pub fn indicative(&self) -> bool {
        self.runs.0 < 2 || self.runs.1 < 2
    }
}

/// Whether more is better for a metric.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

const METRICS: usize = 8;

fn metrics(s: &ScenarioSummary) -> [(&'static str, Option<f64>, Better); METRICS] {
    let ok_rate = if s.count == 0 {
        0.0
    } else {
        s.rate_per_s * s.ok as f64 / s.count as f64
    };
    let l = &s.latency_us;
    let sv = s.service_us.as_ref();
    [
        ("rate/s", Some(s.rate_per_s), Better::Higher),
        ("ok/s", Some(ok_rate), Better::Higher),
        ("p50 µs", Some(l.p50 as f64), Better::Lower),
        ("p90 µs", Some(l.p90 as f64), Better::Lower),
        ("p99 µs", Some(l.p99 as f64), Better::Lower),
        ("p99.9 µs", Some(l.p999 as f64), Better::Lower),
        ("svc p50 µs", sv.map(|v| v.p50 as f64), Better::Lower),
        ("svc p99 µs", sv.map(|v| v.p99 as f64), Better::Lower),
    ]
}

fn judge(base: &Spread, new: &Spread, better: Better, tolerance: f64) -> (Option<f64>, Verdict) {
    let percent = (base.median != 0.0).then(|| (new.median - base.median) / base.median * 100.0);
    // From 0, any change is beyond any tolerance.
    let beyond = |d: f64| d > tolerance / 100.0 * base.median.abs();
    // Past the tolerance and past the noise each side shows (0 with one run a side).
    let spread = (base.max - base.min).max(new.max - new.min);
    let apart = |gap: f64| gap > 0.0 && beyond(gap) && gap > spread;
    // How far the NEW runs are past the BASE runs, for the worse and for the better.
    let (worse_gap, better_gap) = match better {
        Better::Higher => (base.min - new.max, new.min - base.max),
        Better::Lower => (new.min - base.max, base.min - new.max),
    };
    let verdict = if apart(worse_gap) {
        Verdict::Regression
    } else if apart(better_gap) {
        Verdict::Improvement
    } else if beyond((new.median - base.median).abs()) {
        Verdict::Noise
    } else {
        Verdict::Ok
    };
    (percent, verdict)
}

fn rows(
    name: &str,
    base: &[&ScenarioSummary],
    new: &[&ScenarioSummary],
    tolerance: f64,
) -> Vec<Row> {
    let b: Vec<_> = base.iter().map(|s| metrics(s)).collect();
    let n: Vec<_> = new.iter().map(|s| metrics(s)).collect();
    let mut out = Vec::new();
    for m in 0..METRICS {
        let (metric, _, better) = b
            .first()
            .map_or(metrics(&ScenarioSummary::empty(name))[m], |x| x[m]);
        let side = |runs: &[[(&'static str, Option<f64>, Better); METRICS]]| {
            runs.iter().map(|r| r[m].1).collect::<Option<Vec<f64>>>()
        };
        // A metric some run did not record (service time in a `--raw` run) is left out.
        let (Some(bv), Some(nv)) = (side(&b), side(&n)) else {
            continue;
        };
        let (bs, ns) = (Spread::of(&bv), Spread::of(&nv));
        let (percent, verdict) = judge(&bs, &ns, better, tolerance);
        out.push(Row {
            scenario: name.to_owned(),
            metric,
            base: bs,
            new: ns,
            change: ns.median - bs.median,
            percent,
            verdict,
        });
    }
    out
}

/// The names of the scenarios a side's runs ran, in order of first appearance.
fn names(runs: &[SummaryFile]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in runs {
        for s in &r.scenarios {
            if !out.contains(&s.name) {
                out.push(s.name.clone());
            }
        }
    }
    out
}

fn of<'a>(runs: &'a [SummaryFile], name: &str) -> Vec<&'a ScenarioSummary> {
    runs.iter()
        .filter_map(|r| r.scenarios.iter().find(|s| s.name == name))
        .collect()
}

/// Compares NEW's runs against BASE's with a tolerance in percent.
pub fn compare(base: &[SummaryFile], new: &[SummaryFile], tolerance: f64) -> Comparison {
    let mut out = Comparison {
        tolerance,
        runs: (base.len(), new.len()),
        rows: Vec::new(),
        only_base: Vec::new(),
        only_new: Vec::new(),
    };
    let (bn, nn) = (names(base), names(new));
    for name in &bn {
        if nn.contains(name) {
            out.rows
                .extend(rows(name, &of(base, name), &of(new, name), tolerance));
        } else {
            out.only_base.push(name.clone());
        }
    }
    out.only_new = nn.into_iter().filter(|n| !bn.contains(n)).collect();
    let (bo, no): (Vec<_>, Vec<_>) = (
        base.iter().map(|r| &r.overall).collect(),
        new.iter().map(|r| &r.overall).collect(),
    );
    out.rows.extend(rows("overall", &bo, &no, tolerance));
    out
}

/// A value as the table prints it.
pub fn value(metric: &str, v: f64) -> String {
    if metric.ends_with("/s") {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// A spread as the table prints it: `min..max`.
pub fn range(metric: &str, s: &Spread) -> String {
    format!("{}..{}", value(metric, s.min), value(metric, s.max))
}

/// The comparison's table, one row per scenario and metric (the verdict last), then a line per
/// scenario in one side only and a last line with the count. With several runs a side, each
/// side shows its median and its range.
pub fn table(c: &Comparison) -> String {
    let multi = !c.indicative();
    let mut out = if multi {
        format!(
            "{:<18} {:<10} {:>12} {:>21} {:>12} {:>21} {:>9}  verdict\n",
            "scenario", "metric", "base median", "base range", "new median", "new range", "%"
        )
    } else {
        format!(
            "{:<18} {:<10} {:>12} {:>12} {:>12} {:>9}  verdict\n",
            "scenario", "metric", "base", "new", "change", "%"
        )
    };
    let mut last = "";
    for r in &c.rows {
        let name = if r.scenario == last { "" } else { &r.scenario };
        last = &r.scenario;
        let percent = r
            .percent
            .map_or_else(|| "n/a".to_owned(), |p| format!("{p:+.1}%"));
        if multi {
            let _ = writeln!(
                out,
                "{:<18} {:<10} {:>12} {:>21} {:>12} {:>21} {:>9}  {}",
                name,
                r.metric,
                value(r.metric, r.base.median),
                range(r.metric, &r.base),
                value(r.metric, r.new.median),
                range(r.metric, &r.new),
                percent,
                r.verdict.name()
            );
        } else {
            let change = if r.metric.ends_with("/s") {
                format!("{:+.1}", r.change)
            } else {
                format!("{:+.0}", r.change)
            };
            let _ = writeln!(
                out,
                "{:<18} {:<10} {:>12} {:>12} {:>12} {:>9}  {}",
                name,
                r.metric,
                value(r.metric, r.base.median),
                value(r.metric, r.new.median),
                change,
                percent,
                r.verdict.name()
            );
        }
    }
    for s in &c.only_base {
        let _ = writeln!(out, "{s:<18} only in BASE: not compared");
    }
    for s in &c.only_new {
        let _ = writeln!(out, "{s:<18} only in NEW: not compared");
    }
    let n = c.regressions();
    if multi {
        let _ = writeln!(
            out,
            "{n} regressions beyond {}% over {} BASE and {} NEW runs (every NEW run worse than \
             every BASE run by more than that and than the runs' own spread; \"noise\": the \
             medians moved that much, the runs do not tell)",
            c.tolerance, c.runs.0, c.runs.1
        );
    } else {
        let _ = writeln!(
            out,
            "indicative: one run a side cannot tell a change from noise; give several a side \
             (compare B1 B2 B3 -- N1 N2 N3)"
        );
        let _ = writeln!(
            out,
            "{n} regressions beyond {}% (a rate down or a percentile up by more than that)",
            c.tolerance
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Latency;

    fn s(name: &str, rate: f64, ok: u64, count: u64, p: [u64; 4]) -> ScenarioSummary {
        ScenarioSummary {
            latency_us: Latency {
                p50: p[0],
                p90: p[1],
                p99: p[2],
                p999: p[3],
                max: p[3],
                mean: 0.0,
            },
            rate_per_s: rate,
            ok,
            count,
            ..ScenarioSummary::empty(name)
        }
    }

    fn file(scenarios: Vec<ScenarioSummary>) -> SummaryFile {
        SummaryFile {
            format: Some(crate::report::FORMAT),
            meta: None,
            run: serde_json::Value::Null,
            thresholds: Vec::new(),
            overall: scenarios[0].clone(),
            scenarios,
        }
    }

    fn one(v: f64) -> Spread {
        Spread::of(&[v])
    }

    #[test]
    fn one_run_a_side_judges_changes_beyond_the_tolerance_by_their_direction() {
        let base = file(vec![
            s("dsc_plus", 1000.0, 1000, 1000, [100, 200, 300, 400]),
            s("scc", 500.0, 500, 500, [100, 200, 300, 400]),
        ]);
        let new = file(vec![
            // rate -5% (ok), ok/s -50% (regression), p50 +10% (ok, at the edge), p90 +11%
            // (regression), p99 -20% (improvement), p99.9 unchanged.
            s("dsc_plus", 950.0, 500, 1000, [110, 222, 240, 400]),
            s("attacker", 10.0, 10, 10, [1, 1, 1, 1]),
        ]);
        let c = compare(&[base], &[new], 10.0);
        assert!(c.indicative());
        let verdicts: Vec<_> = c.rows.iter().take(6).map(|r| r.verdict).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Ok, Regression, Ok, Regression, Improvement, Ok],
            "{c:#?}"
        );
        assert_eq!(c.rows[1].base.median, 1000.0);
        assert_eq!(c.rows[1].new.median, 475.0);
        assert_eq!(c.rows[1].percent, Some(-52.5));
        assert_eq!(c.only_base, ["scc"]);
        assert_eq!(c.only_new, ["attacker"]);
        assert_eq!(
            c.rows.len(),
            12,
            "dsc_plus and overall, no service time recorded"
        );
        assert_eq!(c.rows[6].scenario, "overall");
        assert_eq!(c.regressions(), 4);
        let t = table(&c);
        assert!(t.contains("only in BASE"), "{t}");
        assert!(t.contains("indicative"), "{t}");
        assert!(t.contains("4 regressions beyond 10%"), "{t}");
        assert!(t.contains("-52.5%  regression"), "{t}");
    }

    #[test]
    fn a_run_against_itself_changes_nothing() {
        let a = file(vec![s("dsc_plus", 1000.0, 990, 1000, [100, 200, 300, 400])]);
        let c = compare(std::slice::from_ref(&a), std::slice::from_ref(&a), 0.0);
        assert!(c.rows.iter().all(|r| r.verdict == Verdict::Ok));
        assert_eq!(c.regressions(), 0);
    }

    #[test]
    fn from_zero_any_change_counts() {
        assert_eq!(
            judge(&one(0.0), &one(0.0), Better::Higher, 10.0),
            (None, Verdict::Ok)
        );
        assert_eq!(
            judge(&one(0.0), &one(5.0), Better::Lower, 10.0),
            (None, Verdict::Regression)
        );
        assert_eq!(
            judge(&one(0.0), &one(5.0), Better::Higher, 10.0),
            (None, Verdict::Improvement)
        );
    }

    #[test]
    fn with_repeats_overlapping_runs_are_noise_and_separated_ones_a_change() {
        // The p50s of three identical runs seen on one machine: 1,008 / 1,783 / 1,379 µs.
        let base = Spread::of(&[1008.0, 1783.0, 1379.0]);
        assert_eq!((base.min, base.median, base.max), (1008.0, 1379.0, 1783.0));
        let same = Spread::of(&[1650.0, 1100.0, 1700.0]);
        let (_, v) = judge(&base, &same, Better::Lower, 10.0);
        assert_eq!(
            v,
            Verdict::Noise,
            "medians 1,379 and 1,650: +20%, within the spread"
        );
        // Every NEW run slower than every BASE run, by more than 10% of 1,379 µs and more than
        // BASE's own spread (775 µs).
        let slower = Spread::of(&[3000.0, 3100.0, 3300.0]);
        assert_eq!(
            judge(&base, &slower, Better::Lower, 10.0).1,
            Verdict::Regression
        );
        // Apart, beyond the tolerance, but by less than the runs' own spread: noise.
        let apart = Spread::of(&[2000.0, 2100.0, 2500.0]);
        assert_eq!(judge(&base, &apart, Better::Lower, 10.0).1, Verdict::Noise);
        // Separated, but by less than the tolerance: not a regression.
        let close = Spread::of(&[1800.0, 1850.0, 1900.0]);
        assert_eq!(judge(&base, &close, Better::Lower, 10.0).1, Verdict::Noise);
        // A rate halved, every run.
        let rate = Spread::of(&[1000.0, 1040.0, 980.0]);
        let halved = Spread::of(&[510.0, 490.0, 500.0]);
        assert_eq!(
            judge(&rate, &halved, Better::Higher, 10.0).1,
            Verdict::Regression
        );
        assert_eq!(
            judge(&halved, &rate, Better::Higher, 10.0).1,
            Verdict::Improvement
        );
        assert_eq!(Spread::of(&[4.0, 1.0, 3.0, 2.0]).median, 2.5);
    }

    #[test]
    fn several_runs_a_side_print_medians_and_ranges() {
        let runs = |rates: &[f64]| -> Vec<SummaryFile> {
            rates
                .iter()
                .map(|r| {
                    file(vec![s(
                        "dsc_plus",
                        *r,
                        *r as u64,
                        *r as u64,
                        [100, 200, 300, 400],
                    )])
                })
                .collect()
        };
        let c = compare(
            &runs(&[1000.0, 1010.0, 990.0]),
            &runs(&[500.0, 505.0, 495.0]),
            10.0,
        );
        assert!(!c.indicative());
        assert_eq!(c.runs, (3, 3));
        let t = table(&c);
        assert!(t.contains("990.0..1010.0"), "{t}");
        assert!(t.contains("over 3 BASE and 3 NEW runs"), "{t}");
        assert!(!t.contains("indicative"), "{t}");
        // rate/s and ok/s, for dsc_plus and overall.
        assert_eq!(c.regressions(), 4, "{t}");
    }
}
