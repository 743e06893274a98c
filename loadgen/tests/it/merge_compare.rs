//! `sls-loadgen merge` and `compare` on real runs against real slsd daemons: two runs made side
//! by side merge into their counts added and their histograms added; a daemon slowed by a low
//! per-user rate limit is flagged a regression (exit 4); a run against itself is not.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use sls_loadgen::daemon::{find_slsd, Daemon};
use sls_loadgen::fleet::Mix;
use sls_loadgen::run::{self, FleetSpec, Target};
use sls_loadgen::rundir;
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};

use crate::slsd;

/// A short closed loop of DSC+ and card logins (4 workers, 1.5 s, no warm-up), written to `out`.
async fn short_run(target: &Target, seed: u64, out: &Path) -> run::RunResult {
    let spec = FleetSpec {
        users: 100,
        mix: "dsc_plus=1,scc=1".parse::<Mix>().unwrap(),
        seed,
        connections: 1,
        max_apps: 0,
    };
    let plan = Plan {
        model: LoadModel::Closed { workers: 4 },
        mix: vec![(Scenario::DscPlus, 1), (Scenario::Scc, 1)],
        duration: Duration::from_millis(1500),
        warmup: Duration::ZERO,
        progress: false,
    };
    run::run(target, &spec, &plan, Behaviour::default(), Some(out))
        .await
        .unwrap()
}

fn loadgen(args: &[&str]) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(args)
        .output()
        .unwrap();
    (
        status.code(),
        String::from_utf8(stdout).unwrap(),
        String::from_utf8(stderr).unwrap(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_of_two_real_runs_adds_their_counts_and_histograms() {
    let d = slsd(&[]);
    let target = d.target();
    let dir = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("m"),
    );
    // Two load machines at the same time: two fleets (two seeds) against one daemon.
    let (ra, rb) = tokio::join!(short_run(&target, 11, &a), short_run(&target, 12, &b));
    assert_eq!(ra.unexpected + rb.unexpected, 0);

    let (code, stdout, stderr) = loadgen(&["merge", path(&a), path(&b), "--out", path(&m)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("merged 2 runs"), "{stdout}");
    for f in ["summary.json", "dsc_plus.hlog", "scc.hlog", "latency.svg"] {
        assert!(m.join(f).exists(), "no {f}: {stdout}");
    }
    let merged = rundir::read_summary(&m).unwrap();
    assert_eq!(merged.scenarios.len(), 2);
    for s in &merged.scenarios {
        let sa = ra
            .summary
            .scenarios
            .iter()
            .find(|x| x.name == s.name)
            .unwrap();
        let sb = rb
            .summary
            .scenarios
            .iter()
            .find(|x| x.name == s.name)
            .unwrap();
        assert!(sa.count > 0 && sb.count > 0, "{sa:?} {sb:?}");
        assert_eq!(s.count, sa.count + sb.count, "{}", s.name);
        assert_eq!(s.ok, sa.ok + sb.ok, "{}", s.name);
        assert!((s.rate_per_s - (sa.rate_per_s + sb.rate_per_s)).abs() < 1e-6);
        // The merged interval log holds every step of both runs' logs...
        let h = |dir: &Path| {
            let log = dir.join(format!("{}.hlog", s.name));
            rundir::read_hlog(&log, &s.name).unwrap().total().unwrap()
        };
        let (ha, hb, hm) = (h(&a), h(&b), h(&m));
        assert_eq!(ha.len(), sa.count);
        assert_eq!(hm.len(), ha.len() + hb.len(), "{}", s.name);
        assert_eq!(hm.len(), s.count);
        // ...and the merged percentiles are the merged histogram's, between the two runs'.
        assert_eq!(s.latency_us.p99, hm.value_at_quantile(0.99));
        let (lo, hi) = (
            sa.latency_us.p99.min(sb.latency_us.p99),
            sa.latency_us.p99.max(sb.latency_us.p99),
        );
        assert!(
            (lo..=hi).contains(&s.latency_us.p99),
            "{}: p99 {} not within {lo}..={hi}",
            s.name,
            s.latency_us.p99
        );
        assert_eq!(s.latency_us.max, sa.latency_us.max.max(sb.latency_us.max));
    }
    assert_eq!(
        merged.overall.count,
        ra.summary.overall.count + rb.summary.overall.count
    );

    // Refused clearly: a missing hlog, a directory that is no run.
    std::fs::remove_file(b.join("scc.hlog")).unwrap();
    let (code, _, stderr) = loadgen(&["merge", path(&a), path(&b), "--out", path(&m)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("scc.hlog: missing"), "{stderr}");
    let (code, _, stderr) = loadgen(&["merge", path(&a), path(dir.path()), "--out", path(&m)]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("no summary of a run here"), "{stderr}");
}

/// The verdict of `metric` in `scenario`'s rows of a compare table.
fn verdict<'a>(table: &'a str, scenario: &str, metric: &str) -> Option<&'a str> {
    let mut current = "";
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let rest = if line.starts_with(' ') {
            &cols[..]
        } else {
            current = cols.first().copied().unwrap_or("");
            cols.get(1..).unwrap_or(&[])
        };
        if current == scenario && rest.first() == Some(&metric) {
            return rest.last().copied();
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_flags_a_daemon_slowed_by_a_low_rate_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (dir.path().join("base"), dir.path().join("new"));
    {
        let d = slsd(&[]);
        short_run(&d.target(), 21, &base).await;
    }
    {
        // The same load against a daemon that lets each user make one request a second.
        let flags = [
            "--rate-per-user",
            "1",
            "--rate-per-client",
            "1000",
            "--log",
            "warn",
        ];
        let d = Daemon::start_temp(&find_slsd().unwrap(), &flags).unwrap();
        let r = short_run(&d.target(), 21, &new).await;
        let o = &r.summary.overall;
        assert!(o.errors.contains_key("rate_limited"), "{o:?}");
    }
    let (code, stdout, stderr) = loadgen(&["compare", path(&base), path(&new)]);
    assert_eq!(code, Some(4), "{stdout}{stderr}");
    // The regression is where the limit bites: fewer steps go through per second.
    assert_eq!(
        verdict(&stdout, "overall", "ok/s"),
        Some("regression"),
        "{stdout}"
    );
    assert!(stderr.contains("regressions (see the table)"), "{stderr}");

    // A run against itself: nothing changed, exit 0 (a summary.json path works as well).
    let summary = base.join("summary.json");
    let (code, stdout, stderr) = loadgen(&["compare", path(&base), path(&summary)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("0 regressions beyond 10%"), "{stdout}");
    assert_eq!(verdict(&stdout, "dsc_plus", "p99"), Some("ok"), "{stdout}");
    assert!(!stdout.contains("regression "), "{stdout}");
}
