//! The report's page around its charts: the document with its CSS (screen, phone, print), what
//! ran, the thresholds, the scenarios' table and the errors by kind.

use std::fmt::Write as _;

use super::chart::{micros, short};
use super::{esc, rows};
use crate::meta::Meta;
use crate::summary::ScenarioSummary;

/// The style: readable from a phone's width up (tables scroll sideways inside their box,
/// charts scale) and on paper (no backgrounds, no breaks inside a chart or a table).
const CSS: &str = "
:root{--fg:#1b1b1b;--muted:#5b5b5b;--line:#d8d8d8;--bg:#fff;--ok:#1a7f37;--bad:#c62828;--warn:#9a6700}
*{box-sizing:border-box}
body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg);margin:0 auto;max-width:1180px;padding:12px 16px 40px}
h1{font-size:1.35rem;margin:.4em 0 .2em}h2{font-size:1.1rem;margin:1.4em 0 .4em;border-bottom:1px solid var(--line);padding-bottom:.2em}
code{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-size:13px;width:100%}
th,td{padding:3px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}
td.l,th.l{text-align:left;white-space:normal}
dl.meta{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dl.meta dt{color:var(--muted)}dl.meta dd{margin:0;min-width:0}
.pass,.ok,.improvement{color:var(--ok);font-weight:600}.fail,.regression{color:var(--bad);font-weight:600}.noise{color:var(--warn);font-weight:600}
.note{color:var(--muted);font-size:13px}
dl.kv{columns:3 260px;column-gap:24px;margin:0;font-size:13px}
dl.kv div{display:flex;justify-content:space-between;gap:10px;border-bottom:1px solid var(--line);padding:2px 0;break-inside:avoid}
dl.kv dt{color:var(--muted)}dl.kv dd{margin:0;text-align:right;min-width:0}
figure.chart{margin:10px 0 18px;break-inside:avoid;page-break-inside:avoid}
figure.chart figcaption{font-weight:600;font-size:14px;margin-bottom:2px}
figure.chart svg{width:100%;height:auto;display:block}
svg .grid line{stroke:#ececec;stroke-width:1}
svg .frame{fill:none;stroke:#9a9a9a}
svg text{font:11px system-ui,sans-serif;fill:#444}
svg .yt{text-anchor:end}svg .xt,svg .xl,svg .yl{text-anchor:middle}
svg .xl,svg .yl{font-size:12px;fill:#222}
svg polyline{fill:none;stroke-width:2;stroke-linejoin:round}
ul.legend{list-style:none;padding:0;margin:2px 0 0;display:flex;flex-wrap:wrap;gap:2px 14px;font-size:13px}
.swatch{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;margin-right:5px}
.swatch.dashed{border-top-style:dashed}
.bar{display:inline-block;height:10px;background:#d62728;vertical-align:middle;min-width:1px}
.bar.expected{background:#ff7f0e}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:0 20px}
@media (max-width:600px){body{font-size:14px;padding:8px}.grid2{grid-template-columns:1fr}dl.meta{grid-template-columns:1fr}dl.meta dt{margin-top:4px}}
@media print{body{max-width:none;padding:0;font-size:10pt}.scroll{overflow:visible}table{font-size:9pt}th,td{white-space:normal}.grid2{display:block}section{break-inside:auto}h2{break-after:avoid}a{color:inherit;text-decoration:none}}
";

/// The whole document around `body`.
pub fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"sls-loadgen {}\">\
         <title>{}</title><style>{CSS}</style></head><body>\n<h1>{}</h1>\n{body}\n\
         <p class=\"note\">Written by sls-loadgen {} ({}). One file: no script, nothing fetched.</p>\
         </body></html>\n",
        crate::meta::VERSION,
        esc(title),
        esc(title),
        crate::meta::VERSION,
        crate::meta::revision()
    )
}

/// A JSON value as one line of text (strings without their quotes).
fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        other => other.to_string(),
    }
}

/// `key: value` rows of a JSON object, nested objects flattened to `a.b`.
fn flatten(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_owned(), text(other))),
    }
}

fn kv_table(out: &mut String, v: &serde_json::Value) {
    let mut rows = Vec::new();
    flatten("", v, &mut rows);
    if rows.is_empty() {
        out.push_str("<p class=\"note\">not recorded</p>");
        return;
    }
    out.push_str("<dl class=\"kv\">");
    for (k, v) in rows {
        let _ = write!(
            out,
            "<div><dt>{}</dt><dd><code>{}</code></dd></div>",
            esc(&k),
            esc(&v)
        );
    }
    out.push_str("</dl>");
}

/// What ran: the command, versions, host, window, the run's model, the daemon's settings.
pub fn what_ran(out: &mut String, meta: &Meta, run: &serde_json::Value, format: Option<u32>) {
    out.push_str("<section id=\"what-ran\"><h2>What ran</h2><dl class=\"meta\">");
    let command = if meta.command.is_empty() {
        "not recorded".to_owned()
    } else {
        meta.command.join(" ")
    };
    let h = &meta.host;
    let rows = [
        ("command", format!("<code>{}</code>", esc(&command))),
        (
            "sls-loadgen",
            format!(
                "{} (revision {})",
                esc(or_unknown(&meta.version)),
                esc(or_unknown(&meta.revision))
            ),
        ),
        (
            "host",
            format!(
                "{}: {} cores, kernel {}, {}",
                esc(or_unknown(&h.name)),
                h.cores,
                esc(or_unknown(&h.kernel)),
                esc(or_unknown(&h.os))
            ),
        ),
        ("measured from", esc(or_unknown(&meta.started))),
        ("to", esc(or_unknown(&meta.ended))),
        (
            "summary format",
            format.map_or("none".into(), |f| f.to_string()),
        ),
    ];
    for (k, v) in rows {
        let _ = write!(out, "<dt>{k}</dt><dd>{v}</dd>");
    }
    out.push_str("</dl><h3>The run</h3>");
    kv_table(out, run);
    out.push_str("<h3>The daemon's settings, as it reported them</h3>");
    kv_table(out, &meta.daemon);
    out.push_str("</section>\n");
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() {
        "unknown"
    } else {
        s
    }
}

/// The thresholds and their verdicts.
pub fn thresholds(out: &mut String, verdicts: &[serde_json::Value]) {
    out.push_str("<section id=\"thresholds\"><h2>Thresholds</h2>");
    if verdicts.is_empty() {
        out.push_str("<p class=\"note\">none given</p></section>\n");
        return;
    }
    out.push_str(
        "<div class=\"scroll\"><table><thead><tr><th>threshold</th><th>observed</th>\
         <th>unit</th><th>verdict</th></tr></thead><tbody>",
    );
    for v in verdicts {
        let pass = v["pass"].as_bool().unwrap_or(false);
        let _ = write!(
            out,
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&text(&v["threshold"])),
            v["observed"].as_f64().map_or("—".into(), short),
            esc(&text(&v["unit"])),
            if pass { "pass" } else { "fail" },
            if pass { "pass" } else { "FAIL" }
        );
    }
    out.push_str("</tbody></table></div></section>\n");
}

/// One row per scenario (and overall): rate, outcomes, response and service percentiles.
pub fn scenario_table(out: &mut String, scenarios: &[ScenarioSummary], overall: &ScenarioSummary) {
    out.push_str(
        "<section id=\"scenarios\"><h2>Scenarios</h2><div class=\"scroll\"><table><thead><tr>\
         <th>scenario</th><th>steps/s</th><th>ok</th><th>errors</th><th>unexpected</th>\
         <th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th>\
         <th>service p50</th><th>service p99</th></tr></thead><tbody>",
    );
    for s in rows(scenarios, overall) {
        let l = &s.latency_us;
        let (sp50, sp99) = s
            .service_us
            .as_ref()
            .map_or(("—".into(), "—".into()), |sv| {
                (micros(sv.p50 as f64), micros(sv.p99 as f64))
            });
        let _ = write!(
            out,
            "<tr data-scenario=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&s.name),
            esc(&s.name),
            short(s.rate_per_s),
            s.ok,
            s.errors.values().sum::<u64>(),
            s.unexpected_errors,
            micros(l.p50 as f64),
            micros(l.p90 as f64),
            micros(l.p99 as f64),
            micros(l.p999 as f64),
            micros(l.max as f64),
            sp50,
            sp99
        );
    }
    out.push_str(
        "</tbody></table></div><p class=\"note\">Response time runs from each step's intended \
         start (its due time in an open loop, so a late schedule counts); service time from \
         its actual start (uncorrected). Far apart, the load generator was late, not the \
         daemon slow.</p></section>\n",
    );
}

/// Errors by kind and scenario, as bars scaled to the largest count.
pub fn errors_by_kind(out: &mut String, scenarios: &[ScenarioSummary]) {
    out.push_str("<section id=\"errors\"><h2>Errors by kind</h2>");
    let mut rows: Vec<(&str, &str, bool, u64)> = Vec::new();
    for s in scenarios {
        for (k, v) in &s.errors {
            rows.push((&s.name, k, false, *v));
        }
        for (k, v) in &s.unexpected {
            rows.push((&s.name, k, true, *v));
        }
    }
    if rows.is_empty() {
        out.push_str("<p class=\"note\">no errors</p></section>\n");
        return;
    }
    let most = rows.iter().map(|r| r.3).max().unwrap_or(1).max(1);
    out.push_str(
        "<div class=\"scroll\"><table data-chart=\"errors\"><thead><tr><th>scenario</th>\
         <th class=\"l\">kind</th><th>count</th><th class=\"l\">share of the most</th></tr>\
         </thead><tbody>",
    );
    for (scenario, kind, unexpected, n) in rows {
        let width = (n as f64 / most as f64 * 200.0).max(1.0);
        let _ = write!(
            out,
            "<tr><td>{}</td><td class=\"l\">{}{}</td><td>{n}</td><td class=\"l\">\
             <span class=\"bar{}\" style=\"width:{width:.0}px\"></span></td></tr>",
            esc(scenario),
            esc(kind),
            if unexpected { " (unexpected)" } else { "" },
            if unexpected { "" } else { " expected" },
        );
    }
    out.push_str(
        "</tbody></table></div><p class=\"note\">Orange: errors a healthy run can meet (rate \
         limited, locked…); red: unexpected ones.</p></section>\n",
    );
}
