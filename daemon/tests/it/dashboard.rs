//! The Grafana board `docs/grafana/slsd.json`: it parses, every panel (rows' nested panels
//! too) has a title and a query, and [`metric_names`] lists every metric its queries name,
//! which `metrics` checks against what a real slsd exposes.

use std::path::Path;

use serde_json::Value;

/// The board, parsed.
fn board() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/slsd.json");
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every panel that draws (not rows), with the panels nested in rows.
fn panels(board: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            if p["type"] == "row" {
                walk(&p["panels"], out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&board["panels"], &mut out);
    out
}

/// The metric names in a PromQL expression: identifiers starting `sls_` or `process_`, outside
/// quoted label values.
fn metrics_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut quoted = None;
    let mut word = String::new();
    for c in expr.chars().chain([' ']) {
        match quoted {
            Some(q) if c == q => quoted = None,
            Some(_) => {}
            None if c == '"' || c == '\'' || c == '`' => quoted = Some(c),
            None if c.is_ascii_alphanumeric() || c == '_' || c == ':' => {
                word.push(c);
                continue;
            }
            None => {}
        }
        if word.starts_with("sls_") || word.starts_with("process_") {
            out.push(std::mem::take(&mut word));
        }
        word.clear();
    }
    out
}

/// Every panel's title and its queries, as written (with Grafana's `$instance`).
pub fn panel_queries() -> Vec<(String, Vec<String>)> {
    let b = board();
    panels(&b)
        .into_iter()
        .map(|p| {
            let exprs = p["targets"].as_array().into_iter().flatten();
            let exprs = exprs.filter_map(|t| t["expr"].as_str().map(str::to_owned));
            (
                p["title"].as_str().unwrap_or_default().to_owned(),
                exprs.collect(),
            )
        })
        .collect()
}

/// Every metric the board's queries name, with the title of its panel.
pub fn metric_names() -> Vec<(String, String)> {
    let b = board();
    let mut out = Vec::new();
    for p in panels(&b) {
        let title = p["title"].as_str().unwrap_or_default();
        for t in p["targets"].as_array().into_iter().flatten() {
            for m in metrics_in(t["expr"].as_str().unwrap_or_default()) {
                out.push((title.to_owned(), m));
            }
        }
    }
    out
}

#[test]
fn the_board_parses_and_every_panel_has_a_title_and_a_query() {
    let b = board();
    assert!(b["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(b["schemaVersion"].as_u64().is_some());
    let ps = panels(&b);
    assert!(ps.len() >= 8, "{} panels", ps.len());
    for p in ps {
        let title = p["title"].as_str().unwrap_or_default();
        assert!(!title.is_empty(), "a panel without a title: {p}");
        let targets = p["targets"].as_array().map_or(&[][..], |t| &t[..]);
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().unwrap_or_default();
            assert!(
                !metrics_in(expr).is_empty(),
                "{title}: {expr:?} names no metric"
            );
        }
    }
    let named: Vec<String> = metric_names().into_iter().map(|(_, m)| m).collect();
    for want in [
        "sls_verdicts_total",
        "sls_lockouts_total",
        "sls_mass_lockout_alert",
        "sls_rate_limited_total",
        "sls_request_duration_seconds_bucket",
        "sls_open_challenges",
        "sls_connections",
        "process_resident_memory_bytes",
        "sls_store_ready",
        "sls_loadgen_steps_total",
        "sls_loadgen_step_duration_seconds_bucket",
    ] {
        assert!(named.iter().any(|m| m == want), "the board shows {want}");
    }
}

#[test]
fn metric_names_skip_label_values_and_functions() {
    let expr = r#"histogram_quantile(0.99, sum by (le) (rate(sls_request_duration_seconds_bucket{verdict="sls_x"}[5m])))"#;
    assert_eq!(metrics_in(expr), ["sls_request_duration_seconds_bucket"]);
}
