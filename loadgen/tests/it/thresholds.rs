//! `sls-loadgen run --threshold` as a CI job runs it, against a real slsd: exit 0 when every
//! threshold holds, 3 when one fails, and the verdicts in summary.json.

use std::process::Command;

use serde_json::Value;

use crate::slsd;

/// A short closed-loop `dsc_plus` run (1 s of load) with `thresholds`; its exit code,
/// summary.json, stdout and report.html.
fn run_with(thresholds: &[&str]) -> (Option<i32>, Value, String, String) {
    let d = slsd(&[]);
    let out = tempfile::tempdir().unwrap();
    let addr = d.addr.to_string();
    let tls = d.tls_dir();
    let mut args = vec![
        "run",
        "--target",
        &addr,
        "--tls-dir",
        tls.to_str().unwrap(),
        "--users",
        "100",
        "--mix",
        "dsc_plus=1",
        "--scenarios",
        "dsc_plus=1",
        "--connections",
        "1",
        "--in-flight",
        "4",
        "--max-apps",
        "0",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--out",
        out.path().to_str().unwrap(),
    ];
    for t in thresholds {
        args.extend(["--threshold", t]);
    }
    let run = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(&args)
        .output()
        .unwrap();
    let stdout = String::from_utf8(run.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    let json = std::fs::read_to_string(out.path().join("summary.json"))
        .unwrap_or_else(|e| panic!("no summary.json ({e}); stderr: {stderr}"));
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    (
        run.status.code(),
        serde_json::from_str(&json).unwrap(),
        stdout,
        html,
    )
}

#[test]
fn thresholds_pass_with_0_and_fail_with_3() {
    let (code, summary, stdout, _) = run_with(&["dsc_plus:p99<60s", "unexpected==0", "rate>0"]);
    assert_eq!(code, Some(0), "{stdout}");
    let verdicts = summary["thresholds"].as_array().unwrap();
    assert_eq!(verdicts.len(), 3);
    assert_eq!(verdicts[0]["threshold"], "dsc_plus:p99<60s");
    assert_eq!(verdicts[0]["unit"], "us");
    assert!(verdicts.iter().all(|v| v["pass"] == true), "{verdicts:?}");
    // The observed values are the summary's own numbers.
    assert_eq!(
        verdicts[0]["observed"].as_f64(),
        summary["scenarios"][0]["latency_us"]["p99"].as_f64()
    );
    assert_eq!(verdicts[1]["observed"].as_f64(), Some(0.0));
    let rate = verdicts[2]["observed"].as_f64().unwrap();
    assert!(rate > 0.0);
    assert_eq!(Some(rate), summary["overall"]["rate_per_s"].as_f64());
    assert!(stdout.contains("✓  unexpected==0"), "{stdout}");
    assert!(stdout.contains("3 of 3 thresholds passed"), "{stdout}");

    let (code, summary, stdout, html) = run_with(&["unexpected==0", "rate>=100000000"]);
    assert_eq!(code, Some(3), "{stdout}");
    let verdicts = summary["thresholds"].as_array().unwrap();
    assert_eq!(verdicts[0]["pass"], true);
    assert_eq!(verdicts[1]["threshold"], "rate>=100000000");
    assert_eq!(verdicts[1]["pass"], false);
    assert!(verdicts[1]["observed"].as_f64().unwrap() < 100_000_000.0);
    assert!(stdout.contains("✗  rate>=100000000"), "{stdout}");
    // The report, rewritten with the verdicts, shows each with its result.
    assert!(
        html.contains("<code>rate&gt;=100000000</code>") && html.contains(">FAIL<"),
        "{html}"
    );
    assert!(html.contains("<code>unexpected==0</code>"), "{html}");
}

#[test]
fn a_bad_threshold_is_refused_before_any_load() {
    for (t, want) in [
        ("p99<5", "needs a unit"),
        ("ib_key_push:p99<5ms", "not in this run"),
    ] {
        let run = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
            .args(["run", "--scenarios", "dsc_plus=1", "--threshold", t])
            .args(["--target", "127.0.0.1:9", "--tls-dir", "/nonexistent"])
            .output()
            .unwrap();
        let stderr = String::from_utf8(run.stderr).unwrap();
        assert_eq!(run.status.code(), Some(2), "{t}: {stderr}");
        assert!(stderr.contains(want), "{t}: {stderr}");
        assert!(stderr.contains(t), "{t}: {stderr}");
    }
}
