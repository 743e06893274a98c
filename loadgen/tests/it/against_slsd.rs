//! The load generator against a real slsd: its open-loop latency includes a stalled daemon's
//! stall, and its attacker scenario fails when the lock comes late or early.

use std::time::Duration;

use nix::sys::signal::Signal;
use sls_loadgen::fleet::Mix;
use sls_loadgen::run::{self, FleetSpec};
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};

use crate::slsd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_latency_includes_a_stalled_daemon() {
    let d = slsd(&[]);
    let target = d.target();
    let spec = FleetSpec {
        users: 200,
        mix: "dsc_plus=1".parse::<Mix>().unwrap(),
        seed: 3,
        connections: 2,
        max_apps: 0,
    };
    let plan = Plan {
        model: LoadModel::Open {
            rate: 200.0,
            ramp: None,
            max_in_flight: 10_000,
        },
        mix: vec![(Scenario::DscPlus, 1)],
        duration: Duration::from_secs(4),
        warmup: Duration::from_millis(500),
        progress: false,
    };
    let pid = d.pid().unwrap();
    let staller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2000));
        let p = nix::unistd::Pid::from_raw(pid as i32);
        nix::sys::signal::kill(p, Signal::SIGSTOP).unwrap();
        std::thread::sleep(Duration::from_secs(1));
        nix::sys::signal::kill(p, Signal::SIGCONT).unwrap();
    });
    let result = run::run(&target, &spec, &plan, Behaviour::default(), None)
        .await
        .unwrap();
    staller.join().unwrap();
    let s = &result.summary.scenarios[0];
    assert_eq!(s.name, "dsc_plus");
    assert_eq!(s.unexpected_errors, 0, "{s:?}");
    // The daemon answered nothing for 1 s: the steps due during it waited up to 1 s, and the
    // open loop counts that wait (a closed loop would have sent nothing and seen nothing).
    assert!(s.latency_us.max >= 900_000, "max {} µs", s.latency_us.max);
    assert!(s.latency_us.p99 >= 400_000, "p99 {} µs", s.latency_us.p99);
    // About a quarter of the steps were due during the stall or its backlog.
    assert!(s.count >= 600, "the schedule kept its rate: {}", s.count);
}

async fn attack(extra: &[&str], expected_threshold: u8) -> sls_loadgen::report::ScenarioSummary {
    let d = slsd(extra);
    let target = d.target();
    let spec = FleetSpec {
        users: 20,
        mix: "attacked=1".parse::<Mix>().unwrap(),
        seed: 5,
        connections: 1,
        max_apps: 0,
    };
    let plan = Plan {
        model: LoadModel::Closed { workers: 4 },
        mix: vec![(Scenario::Attacker, 1)],
        duration: Duration::from_secs(2),
        warmup: Duration::ZERO,
        progress: false,
    };
    let behaviour = Behaviour {
        lockout_threshold: expected_threshold,
        ..Behaviour::default()
    };
    let result = run::run(&target, &spec, &plan, behaviour, None)
        .await
        .unwrap();
    result.summary.scenarios.into_iter().next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_scenario_checks_the_lock_comes_at_exactly_the_10th_failure() {
    let good = attack(&[], 10).await;
    assert!(good.ok > 0, "{good:?}");
    assert_eq!(good.unexpected_errors, 0, "{good:?}");
    // A daemon that locks late (at the 11th) or early (at the 9th) is reported.
    let late = attack(&["--lockout-threshold", "11"], 10).await;
    assert_eq!(late.ok, 0, "{late:?}");
    assert!(late.unexpected.contains_key("late_lock"), "{late:?}");
    let early = attack(&["--lockout-threshold", "9"], 10).await;
    assert_eq!(early.ok, 0, "{early:?}");
    assert!(early.unexpected.contains_key("early_lock"), "{early:?}");
}

/// A daemon with nothing but its own defaults (R11's threshold, the per-user rate limit of 5 a
/// second, 100 handshakes a second and 1,000 connections per address), then `extra`.
fn default_slsd(extra: &[&str]) -> sls_loadgen::daemon::Daemon {
    let flags = [&["--log", "warn"][..], extra].concat();
    sls_loadgen::daemon::Daemon::start_temp(&sls_loadgen::daemon::find_slsd().unwrap(), &flags)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attacker_meets_the_lockout_at_the_daemons_default_settings() {
    // Issue 14, item 6: the attacker came back to its victims at once and met only the rate
    // limiter (every step `rate_limited`). Now it waits as the daemon says and attacks in turn.
    let d = default_slsd(&[]);
    let spec = FleetSpec {
        users: 24,
        mix: "attacked=1".parse::<Mix>().unwrap(),
        seed: 11,
        connections: 1,
        max_apps: 0,
    };
    let plan = Plan {
        model: LoadModel::Closed { workers: 8 },
        mix: vec![(Scenario::Attacker, 1)],
        duration: Duration::from_secs(3),
        warmup: Duration::ZERO,
        progress: false,
    };
    let result = run::run(&d.target(), &spec, &plan, Behaviour::default(), None)
        .await
        .unwrap();
    let s = &result.summary.scenarios[0];
    assert_eq!(s.unexpected_errors, 0, "{s:?}");
    assert_eq!(s.errors.get("rate_limited"), None, "{s:?}");
    // More attacks than victims: each victim was locked, unlocked and locked again, the later
    // rounds paced by the per-user limit.
    assert!(s.ok > 24, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ib_key_apps_connect_at_the_pace_and_up_to_the_cap_a_daemon_allows() {
    // A daemon that takes 10 handshakes a second from one address (burst 20) and 24 live
    // connections: the load generator's admin and frontend connections, then as many apps as
    // fit. It used to stop at the first refused handshake ("cannot connect").
    let d = default_slsd(&[
        "--handshakes-per-address",
        "10",
        "--max-connections-per-address",
        "24",
    ]);
    let spec = FleetSpec {
        users: 60,
        mix: "ib_key_push=1".parse::<Mix>().unwrap(),
        seed: 12,
        connections: 2,
        max_apps: 1_000,
    };
    let plan = Plan {
        model: LoadModel::Closed { workers: 4 },
        mix: vec![(Scenario::IbKeyPush, 1)],
        duration: Duration::from_secs(1),
        warmup: Duration::ZERO,
        progress: false,
    };
    let result = run::run(&d.target(), &spec, &plan, Behaviour::default(), None)
        .await
        .unwrap();
    let apps = result.summary.run["ib_key_apps"].as_u64().unwrap();
    // 24 in all, less the admin and two frontends: past the 20-handshake burst, so some waited.
    assert_eq!(apps, 21, "{:?}", result.summary.run);
    let s = &result.summary.scenarios[0];
    assert!(s.ok > 0, "{s:?}");
    assert_eq!(s.unexpected_errors, 0, "{s:?}");
}
