//! The nemesis suite's short run, as CI runs it: `sls-nemesis` with ten fault cycles (two of
//! each kind) under its storm, on its own Redis Cluster and three slsd nodes. It passes when the
//! binary's checks pass (R11, R12, readiness after each heal); the history and the summary
//! stay in `target/nemesis/` when it fails (the CI artefact). `NEMESIS_SEED` replays a seed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::path::PathBuf;
use std::process::Command;

fn target_dir() -> PathBuf {
    // The test binary runs from target/<profile>/deps.
    let exe = std::env::current_exe().unwrap();
    exe.ancestors().nth(3).unwrap().join("nemesis")
}

#[test]
fn ten_fault_cycles_under_a_storm_lose_no_acknowledged_verdict() {
    let seed: u64 = std::env::var("NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let dir = target_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join(format!("history-{seed}.jsonl"));
    let summary = dir.join(format!("summary-{seed}.json"));
    let out = Command::new(env!("CARGO_BIN_EXE_sls-nemesis"))
        .args([
            "--seed",
            &seed.to_string(),
            "--cycles",
            "10",
            "--nodes",
            "3",
        ])
        .arg("--history")
        .arg(&history)
        .arg("--summary")
        .arg(&summary)
        .output()
        .expect("sls-nemesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "sls-nemesis failed (seed {seed}; replay with NEMESIS_SEED={seed}); history kept in {}",
        history.display()
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&summary).expect("a summary")).unwrap();
    assert_eq!(s["passed"], true);
    // Ten cycles, every kind of fault at least once (the schedule shuffles them in blocks).
    let cycles = s["cycles"].as_array().unwrap();
    assert_eq!(cycles.len(), 10);
    for kind in [
        "kill-master",
        "kill-replica",
        "freeze-master",
        "kill-node",
        "lagging-failover",
    ] {
        assert!(
            cycles.iter().any(|c| c["step"]["fault"] == kind),
            "no {kind} cycle"
        );
    }
    // The storm was answered: something to check for each rule.
    let counts = &s["counts"];
    for what in [
        "rejected",
        "accepted",
        "locked_users",
        "replays",
        "right_while_locked",
    ] {
        assert!(counts[what].as_u64().unwrap() > 0, "no {what}: {counts}");
    }
    // A pass leaves nothing behind but the summary.
    assert!(!history.exists());
    std::fs::remove_file(&summary).ok();
}
