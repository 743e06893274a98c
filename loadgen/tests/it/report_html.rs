//! `report.html` as a person opens it: `sls-loadgen quickstart --out DIR` (a real slsd, a real
//! run), then the page in a real headless Chromium (Debian's, `/usr/bin/chromium`, driven by
//! `scripts/report-browser.py` over the DevTools protocol): no console error, no exception,
//! no network request but the file itself, a chart with data for every scenario, the page
//! fits a phone's width and prints. The screenshots and the PDF are kept under
//! `target/tmp/report-html/`. Also what `summary.json` says of the run (its metadata), and
//! `sls-loadgen report DIR` rewriting the page from the directory as it is.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Debian's chromium, or `SLS_CHROMIUM`.
fn chromium() -> PathBuf {
    let p =
        std::env::var_os("SLS_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        p.exists(),
        "{}: no chromium; install Debian's (apt-get install chromium; scripts/test does)",
        p.display()
    );
    p
}

/// The venv's Python with `websockets` (made or completed by `scripts/python-venv.sh`).
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SLS_PYTHON") {
        return p.into();
    }
    let ok = Command::new("bash")
        .arg(root().join("scripts/python-venv.sh"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "scripts/python-venv.sh failed: the report test needs websockets"
    );
    root().join("target/py-venv/bin/python")
}

/// What the browser saw of `report` (see `scripts/report-browser.py`); the screenshot goes to
/// `shot`.
pub fn open_in_chromium(report: &Path, shot: &Path) -> Value {
    let out = Command::new(python())
        .arg(root().join("scripts/report-browser.py"))
        .arg(chromium())
        .arg(report)
        .arg(shot)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "report-browser.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Where the test keeps its screenshots: `target/tmp/report-html/`.
pub fn artefacts() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Asserts the browser saw a clean, offline page with charts; returns the charts.
pub fn assert_clean(seen: &Value) -> &Vec<Value> {
    for key in ["console_errors", "exceptions", "log_errors"] {
        assert_eq!(seen[key], serde_json::json!([]), "{key}: {seen:#}");
    }
    let url = seen["url"].as_str().unwrap();
    for r in seen["requests"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        assert!(
            r == url || r.starts_with("data:"),
            "a request for {r}: the report must fetch nothing"
        );
    }
    assert_eq!(seen["phone_width"], 390, "the page is wider than a phone");
    assert!(seen["pdf_bytes"].as_u64().unwrap() > 10_000, "it prints");
    seen["charts"].as_array().unwrap()
}

/// Points drawn in the chart of `kind` (of `scenario`, if given).
pub fn points(charts: &[Value], kind: &str, scenario: Option<&str>) -> u64 {
    charts
        .iter()
        .filter(|c| c["chart"] == kind && c["scenario"].as_str() == scenario)
        .flat_map(|c| c["series"].as_array().unwrap())
        .map(|s| {
            // What the DOM holds is what the report says it drew.
            assert_eq!(s["points"], s["drawn"], "{s}");
            s["points"].as_u64().unwrap()
        })
        .sum()
}

#[test]
fn quickstart_writes_a_report_that_opens_offline_with_a_chart_for_every_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(["quickstart", "--duration", "2s", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = out.join("report.html");
    assert!(
        stdout.contains(&format!("wrote {}", report.display())),
        "{stdout}"
    );

    // summary.json says what ran.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let meta = &summary["meta"];
    assert_eq!(summary["format"], 2);
    assert!(
        meta["ended_unix_ms"].as_u64() > meta["started_unix_ms"].as_u64(),
        "{meta}"
    );
    assert!(meta["started"].as_str().unwrap().ends_with('Z'), "{meta}");
    assert_eq!(meta["command"][1], "quickstart");
    assert_eq!(meta["version"], env!("CARGO_PKG_VERSION"));
    assert!(!meta["revision"].as_str().unwrap().is_empty());
    assert!(meta["host"]["cores"].as_u64().unwrap() >= 1);
    assert!(!meta["host"]["kernel"].as_str().unwrap().is_empty());
    // The daemon's settings, as the daemon gave them: its Welcome and its --print-config.
    assert!(
        meta["daemon"]["welcome"]["max_in_flight"].as_u64().unwrap() > 0,
        "{meta}"
    );
    assert_eq!(meta["daemon"]["config"]["rate_per_user"], "1000", "{meta}");
    assert_eq!(summary["run"]["model"]["kind"], "open");
    assert_eq!(summary["run"]["model"]["rate_per_s"], 2000.0);
    let scenarios: Vec<String> = summary["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            // Service time beside response time: never longer, in the summary and its own log.
            let (r, sv) = (&s["latency_us"], &s["service_us"]);
            assert!(
                sv["max"].as_u64().unwrap() <= r["max"].as_u64().unwrap(),
                "{s}"
            );
            let name = s["name"].as_str().unwrap().to_owned();
            assert!(out.join(format!("{name}.service.hlog")).exists(), "{name}");
            name
        })
        .collect();
    assert!(scenarios.len() >= 5, "{scenarios:?}");

    let keep = artefacts();
    let seen = open_in_chromium(&report, &keep.join("quickstart.png"));
    let charts = assert_clean(&seen);
    assert!(
        seen["title"]
            .as_str()
            .unwrap()
            .contains("open loop at 2000/s"),
        "{seen}"
    );
    assert!(points(charts, "throughput", None) > 0, "{seen:#}");
    for name in &scenarios {
        assert!(
            points(charts, "latency-over-time", Some(name)) > 0,
            "no latency over time for {name}"
        );
        let in_distribution = charts
            .iter()
            .filter(|c| c["chart"] == "distribution")
            .flat_map(|c| c["series"].as_array().unwrap())
            .any(|s| s["name"] == name.as_str() && s["points"].as_u64() > Some(0));
        assert!(in_distribution, "{name} not in the distribution");
    }
    std::fs::copy(&report, keep.join("quickstart.html")).unwrap();

    // `report DIR` writes the page again from the directory alone.
    std::fs::remove_file(&report).unwrap();
    let again = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .arg("report")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(0));
    let html = std::fs::read_to_string(&report).unwrap();
    for name in &scenarios {
        assert!(
            html.contains(&format!("data-scenario=\"{name}\"")),
            "{name}"
        );
    }
    let none = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .arg("report")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no summary.json of a run here"));
}
