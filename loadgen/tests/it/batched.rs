//! The closed loop of the request/reply scenarios, batched per connection on the login
//! machine, against a real slsd: a plan of only such scenarios takes that path, and each of
//! its scenarios' steps is judged as the task-per-call path judges it (logins accepted, the
//! typos rejected, nothing unexpected); a plan with push logins or slow users does not take it.

use std::time::Duration;

use sls_loadgen::fleet::Mix;
use sls_loadgen::run::{self, FleetSpec};
use sls_loadgen::scenario::{Behaviour, Scenario};
use sls_loadgen::schedule::{LoadModel, Plan};

use crate::slsd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_scenarios_run_batched_and_are_judged_as_before() {
    let d = slsd(&[]);
    let spec = FleetSpec {
        users: 400,
        mix: "dsc_plus=1,ib_key_challenge=1,scc=1,temp=1,ib_key_push=1"
            .parse::<Mix>()
            .unwrap(),
        seed: 11,
        connections: 2,
        max_apps: 0,
    };
    let behaviour = Behaviour {
        wrong_rate: 0.2,
        ..Behaviour::default()
    };
    let batched = [
        Scenario::DscPlus,
        Scenario::IbKeyChallenge,
        Scenario::Scc,
        Scenario::TempCode,
    ];
    let plan = Plan {
        model: LoadModel::Closed { workers: 16 },
        mix: batched.iter().map(|s| (*s, 1)).collect(),
        duration: Duration::from_secs(2),
        warmup: Duration::from_millis(200),
        progress: false,
    };
    let prepared = run::prepare(&[d.target()], &spec, behaviour.clone())
        .await
        .unwrap();
    let world = prepared.world.clone();
    assert!(sls_loadgen::batched::batch(&world, &plan.mix).is_some());
    // A push login (its app's approval) or a slow user (a timer) keeps the task-per-call path.
    let with_push = [plan.mix.clone(), vec![(Scenario::IbKeyPush, 1)]].concat();
    assert!(sls_loadgen::batched::batch(&world, &with_push).is_none());

    let r = prepared.drive(&plan, None).await.unwrap();
    prepared.close().await;
    let mut rejected = 0;
    for s in &r.summary.scenarios {
        assert!(s.ok > 0, "{s:?}");
        // A typo of a temporary code can leave its alphabet (`judge::mistype` moves its last
        // letter on by one): the daemon says `malformed`, on the task-per-call path too.
        // Nothing else is unexpected.
        match s.name.as_str() {
            "temp_code" => assert!(s.unexpected.keys().all(|k| k == "malformed"), "{s:?}"),
            _ => assert_eq!(s.unexpected_errors, 0, "{s:?}"),
        }
        // A typo is rejected; ten in a row lock the user (expected with typos).
        for kind in s.errors.keys() {
            assert!(kind == "rejected" || kind == "locked", "{s:?}");
        }
        rejected += s.errors.get("rejected").copied().unwrap_or(0);
        let judged = s.ok + s.errors.values().sum::<u64>() + s.unexpected_errors;
        assert_eq!(s.count, judged, "{s:?}");
    }
    assert_eq!(r.summary.scenarios.len(), batched.len());
    assert!(rejected > 0, "{:?}", r.summary.scenarios);
    // Two requests a step, less the steps begun before the window.
    assert!(r.summary.run["client_requests"].as_u64().unwrap() >= r.summary.overall.ok);

    let slow = Behaviour {
        slow_rate: 0.1,
        ..behaviour
    };
    let prepared = run::prepare(&[d.target()], &spec, slow).await.unwrap();
    assert!(sls_loadgen::batched::batch(&prepared.world, &plan.mix).is_none());
    prepared.close().await;
}
