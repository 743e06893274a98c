//! What a run connects and when it stops before its end, against a real slsd: IB Key apps only
//! for the push scenario (counted by the daemon's own metrics); a daemon killed mid-run ends
//! the run with a "connection lost" line and exit 2; `--abort-on-fail` ends it at a threshold
//! already lost, with the results so far and exit 3.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::live_metrics::scrape;
use crate::slsd;

/// A free loopback TCP port for the daemon's metrics endpoint.
fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// `sls-loadgen run` against `addr` with `tls`, a small DSC+-heavy fleet, then `extra`.
fn loadgen(addr: SocketAddr, tls: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"));
    c.args(["run", "--target", &addr.to_string()])
        .args(["--tls-dir", tls.to_str().unwrap()])
        .args(["--users", "300", "--connections", "2", "--in-flight", "4"])
        .args(["--warmup", "0s"])
        .args(extra);
    c
}

/// The connections the daemon's endpoint has accepted so far, from its metrics.
fn accepted(metrics: SocketAddr) -> f64 {
    let (status, body) = scrape(metrics).unwrap();
    assert!(status.contains("200"), "{status}");
    body.lines()
        .filter(|l| l.starts_with("sls_endpoint_connections_accepted"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn ib_key_apps_connect_only_for_the_push_scenario() {
    let metrics = free_port();
    let m = metrics.to_string();
    // Up to 1,000 handshakes a second from this address: the apps connect at once.
    let d = slsd(&["--metrics", &m, "--handshakes-per-address", "1000"]);
    let tls = d.tls_dir();
    // The default mix has push users (90 of 300), but no step here would use their apps.
    let run = loadgen(d.addr, &tls, &["--scenarios", "dsc_plus=3,scc=1"])
        .args(["--duration", "1s"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 IB Key apps connected"), "{stderr}");
    // The admin and the two frontends, nothing else.
    assert_eq!(accepted(metrics), 3.0, "{stderr}");

    // With push logins, their apps connect (at most --max-apps), and the daemon counts them.
    let run = loadgen(d.addr, &tls, &["--scenarios", "dsc_plus=1,ib_key_push=1"])
        .args(["--duration", "1s", "--max-apps", "5"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("5 IB Key apps connected"), "{stderr}");
    assert_eq!(accepted(metrics), 3.0 + 3.0 + 5.0, "{stderr}");
}

/// Starts `cmd` with its stderr read line by line into a channel (kept as it comes).
fn spawn_lines(cmd: &mut Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

/// Waits for `child` to end by itself within `bound` (else kills it, by its handle, and
/// fails); its exit code and every stderr line.
fn ended_within(
    mut child: Child,
    lines: &mpsc::Receiver<String>,
    mut seen: Vec<String>,
    bound: Duration,
) -> (Option<i32>, Vec<String>) {
    let deadline = Instant::now() + bound;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            seen.extend(lines.try_iter());
            panic!("the run did not end within {bound:?}:\n{}", seen.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // The reader thread ends with the pipe.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        seen.push(line);
    }
    (status.code(), seen)
}

#[test]
fn a_daemon_killed_mid_run_ends_it_with_a_connection_lost_line() {
    let mut d = slsd(&[]);
    let (addr, tls) = (d.addr, d.tls_dir());
    let out = tempfile::tempdir().unwrap();
    // Ten minutes of load: only the lost connection can end it within the test's bound.
    let (child, lines) = spawn_lines(
        loadgen(
            addr,
            &tls,
            &["--scenarios", "dsc_plus=1", "--mix", "dsc_plus=1"],
        )
        .args(["--duration", "600s", "--lost-after", "2s"])
        .args(["--out", out.path().to_str().unwrap()]),
    );
    let mut seen = Vec::new();
    loop {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no progress line:\n{}", seen.join("\n")));
        let progress = line.starts_with("[   1s]");
        seen.push(line);
        if progress {
            break;
        }
    }
    // Killed by its pid, mid-run.
    d.crash();
    let (code, seen) = ended_within(child, &lines, seen, Duration::from_secs(60));
    let text = seen.join("\n");
    assert_eq!(code, Some(2), "{text}");
    let lost = format!("connection lost to slsd at {addr}");
    let at = seen
        .iter()
        .position(|l| l.contains(&lost) && l.starts_with('['))
        .unwrap_or_else(|| panic!("no progress line saying {lost:?}:\n{text}"));
    // It ends the progress lines: no percentiles of failing steps after it.
    assert!(!seen[at..].iter().any(|l| l.contains("steps/s")), "{text}");
    // The error names it too, and the results so far are written.
    assert!(seen.last().unwrap().contains(&lost), "{text}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["run"]["stopped"].as_str().unwrap().contains(&lost),
        "{summary}"
    );
    assert!(
        summary["scenarios"][0]["ok"].as_u64().unwrap() > 0,
        "{summary}"
    );
}

#[test]
fn abort_on_fail_ends_the_run_at_a_lost_threshold_with_its_results_so_far() {
    let d = slsd(&[]);
    let out = tempfile::tempdir().unwrap();
    // No login over real QUIC answers in under a microsecond: lost once 100 steps are in.
    let (child, lines) = spawn_lines(
        loadgen(
            d.addr,
            &d.tls_dir(),
            &["--scenarios", "dsc_plus=1", "--mix", "dsc_plus=1"],
        )
        .args(["--duration", "600s"])
        .args([
            "--threshold",
            "unexpected==0",
            "--threshold",
            "dsc_plus:p99<1us",
        ])
        .args(["--abort-on-fail", "--out", out.path().to_str().unwrap()]),
    );
    let (code, seen) = ended_within(child, &lines, Vec::new(), Duration::from_secs(120));
    let text = seen.join("\n");
    assert_eq!(code, Some(3), "{text}");
    assert!(
        seen.iter()
            .any(|l| l.starts_with('[') && l.contains("threshold dsc_plus:p99<1us already lost")),
        "{text}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("summary.json")).unwrap())
            .unwrap();
    let run = &summary["run"];
    assert!(
        run["stopped"]
            .as_str()
            .unwrap()
            .contains("dsc_plus:p99<1us"),
        "{run}"
    );
    // Well before its ten minutes, with the steps so far judged.
    assert!(run["measured_s"].as_f64().unwrap() < 600.0, "{run}");
    assert!(
        summary["scenarios"][0]["count"].as_u64().unwrap() >= 100,
        "{summary}"
    );
    let verdicts = summary["thresholds"].as_array().unwrap();
    assert_eq!(verdicts[0]["pass"], true, "{verdicts:?}");
    assert_eq!(verdicts[1]["threshold"], "dsc_plus:p99<1us");
    assert_eq!(verdicts[1]["pass"], false, "{verdicts:?}");
}

#[test]
fn abort_on_fail_needs_a_threshold() {
    let run = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(["run", "--abort-on-fail", "--target", "127.0.0.1:9"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--threshold"), "{stderr}");
}
