//! `sls-loadgen compare BASE NEW`: two runs' summaries side by side, per scenario and overall,
//! with a verdict on each change, as `benchstat` or `critcmp` do for benchmarks.
//!
//! Compared: `rate/s` (steps per second), `ok/s` (steps that went as the scenario expected, per
//! second: a daemon that refuses more work shows here) and the latency percentiles p50, p90,
//! p99 and p99.9. A change beyond the tolerance (a percentage of BASE's value) is a
//! *regression* when it is for the worse (a rate down, a percentile up) and an *improvement*
//! when it is for the better; within it, *ok*. A scenario in one run only is listed, not
//! judged (the runs did not do the same work).

use std::fmt::Write as _;

use crate::report::ScenarioSummary;
use crate::rundir::SummaryFile;

/// The verdict on one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance.
    Ok,
    /// Worse by more than the tolerance.
    Regression,
    /// Better by more than the tolerance.
    Improvement,
}

impl Verdict {
    /// `ok`, `regression`, `improvement`.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Regression => "regression",
            Verdict::Improvement => "improvement",
        }
    }
}

/// One metric of one scenario in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The scenario (or `overall`).
    pub scenario: String,
    /// `rate/s`, `ok/s`, `p50 µs`, ...
    pub metric: &'static str,
    /// BASE's value.
    pub base: f64,
    /// NEW's value.
    pub new: f64,
    /// `new - base`.
    pub change: f64,
    /// The change as a percentage of `base`; `None` when `base` is 0.
    pub percent: Option<f64>,
    /// The verdict.
    pub verdict: Verdict,
}

/// Two runs compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The tolerance, percent.
    pub tolerance: f64,
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
}

/// Whether more is better for a metric.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

fn metrics(s: &ScenarioSummary) -> [(&'static str, f64, Better); 6] {
    let ok_rate = if s.count == 0 {
        0.0
    } else {
        s.rate_per_s * s.ok as f64 / s.count as f64
    };
    let l = &s.latency_us;
    [
        ("rate/s", s.rate_per_s, Better::Higher),
        ("ok/s", ok_rate, Better::Higher),
        ("p50 µs", l.p50 as f64, Better::Lower),
        ("p90 µs", l.p90 as f64, Better::Lower),
        ("p99 µs", l.p99 as f64, Better::Lower),
        ("p99.9 µs", l.p999 as f64, Better::Lower),
    ]
}

fn judge(base: f64, new: f64, better: Better, tolerance: f64) -> (Option<f64>, Verdict) {
    let percent = (base != 0.0).then(|| (new - base) / base * 100.0);
    // From 0, any change is beyond any tolerance.
    let beyond = percent.map_or(new != base, |p| p.abs() > tolerance);
    let worse = match better {
        Better::Higher => new < base,
        Better::Lower => new > base,
    };
    let verdict = match (beyond, worse) {
        (false, _) => Verdict::Ok,
        (true, true) => Verdict::Regression,
        (true, false) => Verdict::Improvement,
    };
    (percent, verdict)
}

fn rows(base: &ScenarioSummary, new: &ScenarioSummary, tolerance: f64) -> Vec<Row> {
    metrics(base)
        .into_iter()
        .zip(metrics(new))
        .map(|((metric, b, better), (_, n, _))| {
            let (percent, verdict) = judge(b, n, better, tolerance);
            Row {
                scenario: base.name.clone(),
                metric,
                base: b,
                new: n,
                change: n - b,
                percent,
                verdict,
            }
        })
        .collect()
}

/// Compares NEW against BASE with a tolerance in percent.
pub fn compare(base: &SummaryFile, new: &SummaryFile, tolerance: f64) -> Comparison {
    let mut out = Comparison {
        tolerance,
        rows: Vec::new(),
        only_base: Vec::new(),
        only_new: Vec::new(),
    };
    for b in &base.scenarios {
        match new.scenarios.iter().find(|n| n.name == b.name) {
            Some(n) => out.rows.extend(rows(b, n, tolerance)),
            None => out.only_base.push(b.name.clone()),
        }
    }
    for n in &new.scenarios {
        if !base.scenarios.iter().any(|b| b.name == n.name) {
            out.only_new.push(n.name.clone());
        }
    }
    out.rows
        .extend(rows(&base.overall, &new.overall, tolerance));
    out
}

fn value(metric: &str, v: f64) -> String {
    if metric.ends_with("/s") {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

/// The comparison's table, one row per scenario and metric, then a line per scenario with a
/// regression and a last line with the count.
pub fn table(c: &Comparison) -> String {
    let mut out = format!(
        "{:<18} {:<9} {:>12} {:>12} {:>12} {:>9}  verdict\n",
        "scenario", "metric", "base", "new", "change", "%"
    );
    let mut last = "";
    for r in &c.rows {
        let name = if r.scenario == last { "" } else { &r.scenario };
        last = &r.scenario;
        let percent = r
            .percent
            .map_or_else(|| "n/a".to_owned(), |p| format!("{p:+.1}%"));
        let change = if r.metric.ends_with("/s") {
            format!("{:+.1}", r.change)
        } else {
            format!("{:+.0}", r.change)
        };
        let _ = writeln!(
            out,
            "{:<18} {:<9} {:>12} {:>12} {:>12} {:>9}  {}",
            name,
            r.metric,
            value(r.metric, r.base),
            value(r.metric, r.new),
            change,
            percent,
            r.verdict.name()
        );
    }
    for s in &c.only_base {
        let _ = writeln!(out, "{s:<18} only in BASE: not compared");
    }
    for s in &c.only_new {
        let _ = writeln!(out, "{s:<18} only in NEW: not compared");
    }
    let n = c.regressions();
    let _ = writeln!(
        out,
        "{n} regressions beyond {}% (a rate down or a percentile up by more than that)",
        c.tolerance
    );
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
            run: serde_json::Value::Null,
            overall: scenarios[0].clone(),
            scenarios,
        }
    }

    #[test]
    fn changes_beyond_the_tolerance_are_judged_by_their_direction() {
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
        let c = compare(&base, &new, 10.0);
        let verdicts: Vec<_> = c.rows.iter().take(6).map(|r| r.verdict).collect();
        use Verdict::*;
        assert_eq!(
            verdicts,
            [Ok, Regression, Ok, Regression, Improvement, Ok],
            "{c:#?}"
        );
        assert_eq!(c.rows[1].base, 1000.0);
        assert_eq!(c.rows[1].new, 475.0);
        assert_eq!(c.rows[1].percent, Some(-52.5));
        assert_eq!(c.only_base, ["scc"]);
        assert_eq!(c.only_new, ["attacker"]);
        assert_eq!(c.rows.len(), 12, "dsc_plus and overall");
        assert_eq!(
            c.rows[6].scenario, "dsc_plus",
            "overall is the first scenario here"
        );
        assert_eq!(c.regressions(), 4);
        let t = table(&c);
        assert!(t.contains("only in BASE"), "{t}");
        assert!(t.contains("4 regressions beyond 10%"), "{t}");
        assert!(t.contains("-52.5%  regression"), "{t}");
    }

    #[test]
    fn a_run_against_itself_changes_nothing() {
        let a = file(vec![s("dsc_plus", 1000.0, 990, 1000, [100, 200, 300, 400])]);
        let c = compare(&a, &a, 0.0);
        assert!(c.rows.iter().all(|r| r.verdict == Verdict::Ok));
        assert_eq!(c.regressions(), 0);
    }

    #[test]
    fn from_zero_any_change_counts() {
        assert_eq!(judge(0.0, 0.0, Better::Higher, 10.0), (None, Verdict::Ok));
        assert_eq!(
            judge(0.0, 5.0, Better::Lower, 10.0),
            (None, Verdict::Regression)
        );
        assert_eq!(
            judge(0.0, 5.0, Better::Higher, 10.0),
            (None, Verdict::Improvement)
        );
    }
}
