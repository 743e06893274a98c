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
