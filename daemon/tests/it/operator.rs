//! Operator basics on a real slsd: a `--tls-dir` that does not exist is refused
//! (named, non-zero exit) unless `--init-tls`; `--log-format json` writes one JSON object per
//! line; text logs to a pipe carry no colour codes; every error family is on `/metrics` at 0
//! from the start.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use sls_daemon::metrics::FRAME_ERROR_STATUSES;
use sls_protocol::{Message, Role};

use crate::call;
use crate::metrics::{free_port, get};

fn slsd_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_slsd"))
}

/// Runs slsd with `args` to its end (it must refuse to start): its exit status and stderr.
fn refused(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(slsd_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.stdout.is_empty(),
        "it must not listen: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_tls_dir_is_refused_and_named_unless_init_tls() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let tls = tmp.path().join("no-such").join("tls");
    let (data_s, tls_s) = (data.to_str().unwrap(), tls.to_str().unwrap());
    let base = ["--listen", "127.0.0.1:0", "--data-dir", data_s];
    // Given as a flag.
    let (status, stderr) = refused(&[&base[..], &["--tls-dir", tls_s]].concat());
    assert!(!status.success(), "{status}: {stderr}");
    assert_eq!(
        stderr,
        format!(
            "slsd: tls_dir {tls_s} does not exist (give --init-tls to create a new CA and \
             certificates there)\n"
        )
    );
    assert!(!tls.exists(), "nothing made in a directory refused");
    // Given in the file.
    let file = tmp.path().join("slsd.toml");
    std::fs::write(&file, format!("tls_dir = {tls_s:?}\n")).unwrap();
    let (status, stderr) = refused(&[&base[..], &["--config", file.to_str().unwrap()]].concat());
    assert!(!status.success());
    assert!(
        stderr.contains(&format!("tls_dir {tls_s} does not exist")),
        "{stderr}"
    );
    // With --init-tls it is made, and serves with what it made.
    let d = crate::slsd(&["--tls-dir", tls_s, "--init-tls"]);
    for f in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "admin.pem",
        "frontend.key",
    ] {
        assert!(tls.join(f).exists(), "{f}");
    }
    let admin = d.connect(Role::Admin).await.unwrap();
    let pong = call(&admin.pipe, Message::Ping {}).await;
    assert!(matches!(pong, Message::Pong {}), "{pong:?}");
    // Now it exists: another node sharing it needs no --init-tls.
    let b = crate::slsd(&["--tls-dir", tls_s]);
    b.connect(Role::Frontend).await.unwrap();
}

/// Starts slsd with `flags` (debug log: lines for each connection), makes one admin
/// connection, stops it (SIGTERM), and returns its stderr.
async fn log_of(flags: &[&str]) -> String {
    let mut d = crate::slsd(&[flags, &["--log", "debug"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    assert!(matches!(
        call(&admin.pipe, Message::Ping {}).await,
        Message::Pong {}
    ));
    drop(admin);
    let d = tokio::task::spawn_blocking(move || {
        assert!(d.stop(Duration::from_secs(30)), "a clean stop");
        d
    })
    .await
    .unwrap();
    std::fs::read_to_string(&d.log).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let text = log_of(&["--log-format", "json"]).await;
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    for line in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert!(v.is_object(), "{line}");
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    // The daemon's own lines too, and tracing's events with their fields.
    assert!(text.contains("\"slsd: data in "), "{text}");
    assert!(
        lines.iter().any(|l| l.contains("\"level\":\"DEBUG\"")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_logs_to_a_pipe_have_no_colour_codes() {
    // stderr is a file here, not a terminal.
    let text = log_of(&[]).await;
    assert!(text.contains(" DEBUG "), "{text}");
    assert!(!text.contains("\x1b["), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_family_is_at_zero_from_the_start() {
    let metrics = free_port();
    let addr = metrics.to_string();
    let _d = crate::slsd(&["--metrics", &addr]);
    let (status, _, text) = get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    let mut want: Vec<String> = FRAME_ERROR_STATUSES
        .iter()
        .map(|s| format!("sls_frame_errors_total{{status=\"0x{:04x}\"}} 0", s.0))
        .collect();
    // Spelled out once: the malformed frames and the calls refused for a role.
    want.push("sls_frame_errors_total{status=\"0x0001\"} 0".into());
    want.push("sls_frame_errors_total{status=\"0x0005\"} 0".into());
    for reason in [
        "busy",
        "address",
        "unproven",
        "handshakes",
        "handshake_rate",
    ] {
        want.push(format!(
            "sls_connections_refused_total{{reason=\"{reason}\"}} 0"
        ));
    }
    for verdict in [
        "rejected",
        "locked",
        "rate_limited",
        "expired",
        "replayed",
        "malformed",
    ] {
        want.push(format!("sls_verdicts_total{{verdict=\"{verdict}\"}} 0"));
    }
    for single in [
        "sls_framing_lost_total",
        "sls_frame_timeouts_total",
        "sls_proof_timeouts_total",
        "sls_store_unhealthy_total",
        "sls_store_retries_total",
        "sls_rate_limited_total",
        "sls_replays_total",
        "sls_lockouts_total",
        "sls_refused_locked_total",
    ] {
        want.push(format!("{single} 0"));
    }
    for sample in want {
        assert!(
            text.lines().any(|l| l == sample),
            "{sample} missing from a fresh daemon's /metrics:\n{text}"
        );
    }
}
