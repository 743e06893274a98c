//! Pass/fail thresholds on a run's summary, like k6's: `dsc_plus:p99<5ms`, `unexpected==0`,
//! `rate>=1900`, `errors<1%`.
//!
//! Grammar: `[SCOPE:]METRIC OP VALUE[UNIT]`.
//!
//! - SCOPE: a scenario's name (`dsc_plus`, `ib_key_push`, ...) or none (or `overall`): every
//!   scenario together. Overall latency comes from the scenarios' histograms added together,
//!   so its percentiles are exact, not averages of percentiles.
//! - METRIC: `p50`, `p90`, `p99`, `p99.9`, `max` (latency; UNIT `us`, `µs`, `ms` or `s`,
//!   required), `rate` (steps per second), `errors` (share of steps that were errors, expected
//!   or not; a fraction `0.01` or a percentage `1%`), `unexpected` (a count).
//! - OP: `<`, `<=`, `>`, `>=`, `==`.
//!
//! Parsing and evaluation are pure: the run's [`ScenarioSummary`]s in, verdicts out.

use std::fmt;
use std::str::FromStr;

pub use crate::report::Verdict;
use crate::report::{ScenarioSummary, Summary};
use crate::scenario::Scenario;

/// A latency percentile (or the maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Percentile {
    /// Median.
    P50,
    /// 90th percentile.
    P90,
    /// 99th percentile.
    P99,
    /// 99.9th percentile.
    P999,
    /// Maximum.
    Max,
}

/// What a threshold measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A latency percentile, in µs.
    Latency(Percentile),
    /// Steps per second over the measured window.
    Rate,
    /// Errors (expected or not) as a share of the steps, a fraction.
    Errors,
    /// Unexpected outcomes, a count.
    Unexpected,
}

impl Metric {
    /// The unit of the metric's values, as written into `summary.json`.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::Latency(_) => "us",
            Metric::Rate => "steps/s",
            Metric::Errors => "fraction",
            Metric::Unexpected => "count",
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
}

impl Op {
    /// Whether `observed OP limit` holds.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Op::Lt => observed < limit,
            Op::Le => observed <= limit,
            Op::Gt => observed > limit,
            Op::Ge => observed >= limit,
            Op::Eq => observed == limit,
        }
    }
}

/// One `--threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As written.
    pub text: String,
    /// The scenario it is about; `None`: all of them.
    pub scope: Option<Scenario>,
    /// What it measures.
    pub metric: Metric,
    /// How it compares.
    pub op: Op,
    /// The limit, in the metric's unit (µs, steps/s, a fraction, a count).
    pub limit: f64,
}

/// Why a threshold does not parse; each names the threshold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No comparison operator.
    #[error("threshold {0:?}: no comparison (one of < <= > >= ==), e.g. 'dsc_plus:p99<5ms'")]
    NoOp(String),
    /// An operator like `=` or `=>`.
    #[error("threshold {text:?}: {op:?} is not a comparison (one of < <= > >= ==)")]
    BadOp {
        /// The threshold.
        text: String,
        /// What was found.
        op: String,
    },
    /// Not a scenario.
    #[error("threshold {text:?}: {scope:?} is not a scenario ({known})")]
    BadScope {
        /// The threshold.
        text: String,
        /// What was found.
        scope: String,
        /// The scenarios.
        known: String,
    },
    /// Not a metric.
    #[error(
        "threshold {text:?}: {metric:?} is not a metric (p50 p90 p99 p99.9 max rate errors \
         unexpected)"
    )]
    BadMetric {
        /// The threshold.
        text: String,
        /// What was found.
        metric: String,
    },
    /// The value is not a number with a unit the metric takes.
    #[error("threshold {text:?}: {value:?} {why}")]
    BadValue {
        /// The threshold.
        text: String,
        /// What was found.
        value: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl FromStr for Threshold {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Threshold, ParseError> {
        let owned = || text.to_owned();
        let start = text
            .find(['<', '>', '='])
            .ok_or_else(|| ParseError::NoOp(owned()))?;
        let (left, rest) = text.split_at(start);
        let op_len = rest
            .find(|c| !matches!(c, '<' | '>' | '='))
            .unwrap_or(rest.len());
        let (op, value) = rest.split_at(op_len);
        let op = match op {
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "==" => Op::Eq,
            _ => {
                return Err(ParseError::BadOp {
                    text: owned(),
                    op: op.to_owned(),
                })
            }
        };
        let (scope, metric) = match left.split_once(':') {
            Some((scope, metric)) => (Some(scope.trim()), metric.trim()),
            None => (None, left.trim()),
        };
        let scope = match scope {
            None | Some("overall") => None,
            Some(s) => Some(s.parse::<Scenario>().map_err(|_| ParseError::BadScope {
                text: owned(),
                scope: s.to_owned(),
                known: Scenario::ALL.map(Scenario::name).join(" "),
            })?),
        };
        let metric = match metric {
            "p50" => Metric::Latency(Percentile::P50),
            "p90" => Metric::Latency(Percentile::P90),
            "p99" => Metric::Latency(Percentile::P99),
            "p99.9" => Metric::Latency(Percentile::P999),
            "max" => Metric::Latency(Percentile::Max),
            "rate" => Metric::Rate,
            "errors" => Metric::Errors,
            "unexpected" => Metric::Unexpected,
            m => {
                return Err(ParseError::BadMetric {
                    text: owned(),
                    metric: m.to_owned(),
                })
            }
        };
        let value = value.trim();
        let bad = |why| ParseError::BadValue {
            text: owned(),
            value: value.to_owned(),
            why,
        };
        let split = value
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(value.len());
        let (number, unit) = value.split_at(split);
        let number: f64 = number
            .parse()
            .ok()
            .filter(|n: &f64| n.is_finite())
            .ok_or_else(|| bad("is not a number of 0 or more"))?;
        let limit = match (metric, unit.trim()) {
            (Metric::Latency(_), "us" | "µs") => number,
            (Metric::Latency(_), "ms") => number * 1e3,
            (Metric::Latency(_), "s") => number * 1e6,
            (Metric::Latency(_), _) => return Err(bad("needs a unit: us, µs, ms or s")),
            (Metric::Rate, "" | "/s") => number,
            (Metric::Rate, _) => return Err(bad("is a rate in steps/s, without a unit")),
            (Metric::Errors, "%") => number / 100.0,
            (Metric::Errors, "") => number,
            (Metric::Errors, _) => return Err(bad("is a share: a fraction (0.01) or 1%")),
            (Metric::Unexpected, "") => number,
            (Metric::Unexpected, _) => return Err(bad("is a count, without a unit")),
        };
        Ok(Threshold {
            text: text.to_owned(),
            scope,
            metric,
            op,
            limit,
        })
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The value of `metric` in one scenario's (or the overall) summary; `None` for a share of
/// no steps.
pub fn observe(metric: Metric, s: &ScenarioSummary) -> Option<f64> {
    let l = &s.latency_us;
    match metric {
        Metric::Latency(_) if s.count == 0 => None,
        Metric::Latency(p) => Some(match p {
            Percentile::P50 => l.p50,
            Percentile::P90 => l.p90,
            Percentile::P99 => l.p99,
            Percentile::P999 => l.p999,
            Percentile::Max => l.max,
        } as f64),
        Metric::Rate => Some(s.rate_per_s),
        Metric::Errors if s.count == 0 => None,
        Metric::Errors => {
            let errors: u64 = s.errors.values().sum::<u64>() + s.unexpected_errors;
            Some(errors as f64 / s.count as f64)
        }
        Metric::Unexpected => Some(s.unexpected_errors as f64),
    }
}

/// Judges each threshold against the run's summary.
pub fn evaluate(thresholds: &[Threshold], summary: &Summary) -> Vec<Verdict> {
    thresholds
        .iter()
        .map(|t| {
            let s = match t.scope {
                None => Some(&summary.overall),
                Some(sc) => summary.scenarios.iter().find(|s| s.name == sc.name()),
            };
            let observed = s.and_then(|s| observe(t.metric, s));
            Verdict {
                threshold: t.text.clone(),
                observed,
                unit: t.metric.unit(),
                pass: observed.is_some_and(|o| t.op.holds(o, t.limit)),
            }
        })
        .collect()
}

fn show(observed: Option<f64>, unit: &str) -> String {
    match (observed, unit) {
        (None, _) => "no data".to_owned(),
        (Some(v), "us") => format!("{v:.0} µs"),
        (Some(v), "steps/s") => format!("{v:.1} steps/s"),
        (Some(v), "fraction") => format!("{:.3}%", v * 100.0),
        (Some(v), _) => format!("{v:.0}"),
    }
}

/// The thresholds' table, printed after the summary table: one line each, ✓ or ✗.
pub fn table(verdicts: &[Verdict]) -> String {
    let width = verdicts
        .iter()
        .map(|v| v.threshold.chars().count())
        .max()
        .unwrap_or(0)
        .max("threshold".len());
    let mut out = format!("   {:<width$}  observed\n", "threshold");
    for v in verdicts {
        out.push_str(&format!(
            "{}  {:<width$}  {}\n",
            if v.pass { "✓" } else { "✗" },
            v.threshold,
            show(v.observed, v.unit)
        ));
    }
    let failed = verdicts.iter().filter(|v| !v.pass).count();
    out.push_str(&format!(
        "{} of {} thresholds passed\n",
        verdicts.len() - failed,
        verdicts.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::report::Latency;

    fn t(s: &str) -> Threshold {
        s.parse().unwrap()
    }

    #[test]
    fn the_grammar_reads_scope_metric_op_value_unit() {
        let x = t("dsc_plus:p99<5ms");
        assert_eq!(x.scope, Some(Scenario::DscPlus));
        assert_eq!(x.metric, Metric::Latency(Percentile::P99));
        assert_eq!(x.op, Op::Lt);
        assert_eq!(x.limit, 5_000.0);
        let x = t("p99.9 <= 1.5s");
        assert_eq!(
            (x.scope, x.metric),
            (None, Metric::Latency(Percentile::P999))
        );
        assert_eq!((x.op, x.limit), (Op::Le, 1_500_000.0));
        assert_eq!(t("max>250us").limit, 250.0);
        assert_eq!(t("p50>=800µs").op, Op::Ge);
        assert_eq!(t("p90<2ms").metric, Metric::Latency(Percentile::P90));
        let x = t("unexpected==0");
        assert_eq!((x.metric, x.op, x.limit), (Metric::Unexpected, Op::Eq, 0.0));
        let x = t("rate>=1900");
        assert_eq!((x.metric, x.op, x.limit), (Metric::Rate, Op::Ge, 1900.0));
        assert_eq!(t("rate>=1900/s").limit, 1900.0);
        assert_eq!(t("errors<1%").limit, 0.01);
        assert_eq!(t("errors<0.02").limit, 0.02);
        assert_eq!(t("overall:rate>5").scope, None);
        assert_eq!(t("ib_key_push:errors<=0").scope, Some(Scenario::IbKeyPush));
        assert_eq!(t("attacker:rate>1").text, "attacker:rate>1");
    }

    #[test]
    fn parse_errors_name_the_threshold_and_the_fault() {
        for (text, want) in [
            ("p99 5ms", "no comparison"),
            ("p99=5ms", "\"=\" is not a comparison"),
            ("p99=>5ms", "\"=>\" is not a comparison"),
            ("p99<<5ms", "\"<<\" is not a comparison"),
            ("dsc:p99<5ms", "\"dsc\" is not a scenario"),
            ("p95<5ms", "\"p95\" is not a metric"),
            ("p99<5", "needs a unit"),
            ("p99<5min", "needs a unit"),
            ("p99<ms", "is not a number"),
            ("p99<-5ms", "is not a number"),
            ("rate>=19k", "steps/s"),
            ("errors<1 percent", "fraction"),
            ("unexpected==0ms", "count"),
        ] {
            let e = text.parse::<Threshold>().unwrap_err().to_string();
            assert!(e.contains(&format!("threshold {text:?}")), "{text}: {e}");
            assert!(e.contains(want), "{text}: {e}");
        }
        // The scope error lists the scenarios there are.
        let e = "dsc:p99<5ms".parse::<Threshold>().unwrap_err().to_string();
        assert!(e.contains("dsc_plus") && e.contains("attacker"), "{e}");
    }

    #[test]
    fn comparisons_hold_at_the_edges_as_written() {
        assert!(Op::Lt.holds(4.0, 5.0) && !Op::Lt.holds(5.0, 5.0));
        assert!(Op::Le.holds(5.0, 5.0) && !Op::Le.holds(5.1, 5.0));
        assert!(Op::Gt.holds(6.0, 5.0) && !Op::Gt.holds(5.0, 5.0));
        assert!(Op::Ge.holds(5.0, 5.0) && !Op::Ge.holds(4.9, 5.0));
        assert!(Op::Eq.holds(0.0, 0.0) && !Op::Eq.holds(1.0, 0.0));
    }

    fn scenario(name: &str, count: u64, errors: u64, unexpected: u64, p99: u64) -> ScenarioSummary {
        ScenarioSummary {
            name: name.to_owned(),
            count,
            ok: count - errors - unexpected,
            rate_per_s: count as f64 / 10.0,
            unexpected_errors: unexpected,
            unexpected: BTreeMap::from([("wrong_verdict".to_owned(), unexpected)]),
            errors: BTreeMap::from([("rate_limited".to_owned(), errors)]),
            latency_us: Latency {
                p50: p99 / 4,
                p90: p99 / 2,
                p99,
                p999: p99 * 2,
                max: p99 * 3,
                mean: 0.0,
            },
            service_us: None,
            timeline: Vec::new(),
        }
    }

    fn summary() -> Summary {
        Summary {
            format: crate::report::FORMAT,
            meta: Default::default(),
            run: serde_json::Value::Null,
            scenarios: vec![
                scenario("dsc_plus", 1000, 10, 0, 4_000),
                scenario("ib_key_push", 500, 0, 2, 9_000),
            ],
            overall: scenario("overall", 1500, 10, 2, 8_000),
            thresholds: Vec::new(),
        }
    }

    #[test]
    fn evaluation_reads_the_scope_s_numbers() {
        let s = summary();
        let ths: Vec<Threshold> = [
            "dsc_plus:p99<5ms",       // 4000 µs: pass
            "ib_key_push:p99<5ms",    // 9000 µs: fail
            "p99<5ms",                // overall 8000 µs: fail
            "dsc_plus:max<=12ms",     // 12000 µs: pass, at the edge
            "dsc_plus:p99.9<8ms",     // 8000 µs: fail, at the edge
            "unexpected==0",          // 2: fail
            "dsc_plus:unexpected==0", // pass
            "rate>=150",              // 150: pass
            "ib_key_push:rate>=51",   // 50: fail
            "dsc_plus:errors<1%",     // 10/1000 = 1%: fail
            "errors<=0.01",           // 12/1500 = 0.8%: pass
            "attacker:rate>=0",       // did not run: fail, no data
        ]
        .iter()
        .map(|x| t(x))
        .collect();
        let v = evaluate(&ths, &s);
        let passed: Vec<bool> = v.iter().map(|v| v.pass).collect();
        assert_eq!(
            passed,
            [true, false, false, true, false, false, true, true, false, false, true, false]
        );
        assert_eq!(v[0].observed, Some(4_000.0));
        assert_eq!(v[0].unit, "us");
        assert_eq!(v[2].observed, Some(8_000.0));
        assert_eq!(v[5].observed, Some(2.0));
        assert_eq!(v[10].observed, Some(12.0 / 1500.0));
        assert_eq!(v[10].unit, "fraction");
        assert_eq!(v[11].observed, None);
        assert_eq!(v[11].threshold, "attacker:rate>=0");
    }

    #[test]
    fn no_steps_fail_latency_and_error_share_thresholds() {
        let empty = scenario("overall", 0, 0, 0, 0);
        assert_eq!(observe(Metric::Latency(Percentile::P99), &empty), None);
        assert_eq!(observe(Metric::Errors, &empty), None);
        assert_eq!(observe(Metric::Rate, &empty), Some(0.0));
        assert_eq!(observe(Metric::Unexpected, &empty), Some(0.0));
    }

    #[test]
    fn the_table_marks_each_threshold() {
        let v = evaluate(&[t("dsc_plus:p99<5ms"), t("unexpected==0")], &summary());
        let table = table(&v);
        assert!(table.contains("✓  dsc_plus:p99<5ms"), "{table}");
        assert!(table.contains("4000 µs"), "{table}");
        assert!(table.contains("✗  unexpected==0"), "{table}");
        assert!(table.contains("1 of 2 thresholds passed"), "{table}");
        let json = serde_json::to_value(&v[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "threshold": "dsc_plus:p99<5ms", "observed": 4000.0, "unit": "us", "pass": true
            })
        );
    }
}
