//! R11: ten failures in 24 hours lock for 24 hours after the last; exact under races.

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r11_ten_failures_lock_and_the_lock_holds_against_the_right_answer<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "frank");
    for left in (1..=9).rev() {
        assert_eq!(
            wrong(&c, "frank", d),
            Verdict::Rejected {
                failures_left: left
            }
        );
    }
    let Verdict::Locked { until_ms } = wrong(&c, "frank", d) else {
        panic!("10th failure must lock")
    };
    assert!(
        matches!(begin_verdict(&c, "frank", d), Verdict::Locked { until_ms: u } if u == until_ms)
    );
    assert_eq!(
        c.counters()
            .lockouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

pub fn r11_lock_holds_24h_after_last_failure<K: Kind>() {
    let (c, clock) = core::<K>();
    let d = dsc(&c, "gina");
    for _ in 0..9 {
        wrong(&c, "gina", d);
    }
    clock.advance(H);
    assert!(matches!(wrong(&c, "gina", d), Verdict::Locked { .. }));
    clock.advance(24 * H - MS);
    assert!(
        matches!(begin_verdict(&c, "gina", d), Verdict::Locked { .. }),
        "24 h - 1 ms after the last failure: still locked"
    );
    clock.advance(MS);
    assert!(
        matches!(right(&c, "gina", d), Verdict::Accepted { .. }),
        "24 h after the last failure: unlocked"
    );
}

pub fn r11_attempts_while_locked_do_not_extend_the_lock<K: Kind>() {
    let (c, clock) = core::<K>();
    let d = dsc(&c, "hank");
    for _ in 0..10 {
        wrong(&c, "hank", d);
    }
    let until = c.status("hank").unwrap().locked_until_ms;
    clock.advance(12 * H);
    assert_eq!(
        c.password_failed("hank", IP).unwrap().value,
        Verdict::Locked { until_ms: until }
    );
    assert_eq!(
        begin_verdict(&c, "hank", d),
        Verdict::Locked { until_ms: until }
    );
    clock.advance(12 * H);
    assert!(matches!(right(&c, "hank", d), Verdict::Accepted { .. }));
    // Configurable: extending.
    let (c2, clock2) = core_with::<K>(CoreConfig {
        extend_lock_while_locked: true,
        ..no_limits()
    });
    let d2 = dsc(&c2, "hank");
    for _ in 0..10 {
        wrong(&c2, "hank", d2);
    }
    clock2.advance(12 * H);
    let Verdict::Locked { until_ms } = c2.password_failed("hank", IP).unwrap().value else {
        panic!()
    };
    assert!(until_ms > until + 11 * 3_600_000);
}

pub fn r11_failures_count_only_within_24h<K: Kind>() {
    let (c, clock) = core::<K>();
    let d = dsc(&c, "ivan");
    for _ in 0..9 {
        wrong(&c, "ivan", d);
    }
    // The 10th failure exactly 24 h after the first nine: they have left the window.
    clock.advance(24 * H);
    assert_eq!(wrong(&c, "ivan", d), Verdict::Rejected { failures_left: 9 });
    // Sliding, not fixed: 5 at t, 5 at t + 23 h lock.
    let (c, clock) = core::<K>();
    let d = dsc(&c, "jill");
    for _ in 0..5 {
        wrong(&c, "jill", d);
    }
    clock.advance(23 * H);
    for _ in 0..4 {
        wrong(&c, "jill", d);
    }
    assert!(matches!(wrong(&c, "jill", d), Verdict::Locked { .. }));
    // Boundary: 9 failures, then the 10th at 24 h - 1 ms locks.
    let (c, clock) = core::<K>();
    let d = dsc(&c, "kate");
    for _ in 0..9 {
        wrong(&c, "kate", d);
    }
    clock.advance(24 * H - MS);
    assert!(matches!(wrong(&c, "kate", d), Verdict::Locked { .. }));
}

pub fn r11_password_failures_count_and_success_resets<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "liam");
    for _ in 0..9 {
        assert!(matches!(
            c.password_failed("liam", IP).unwrap().value,
            Verdict::Rejected { .. }
        ));
    }
    assert!(matches!(right(&c, "liam", d), Verdict::Accepted { .. }));
    assert_eq!(c.status("liam").unwrap().failures, 0);
    for _ in 0..9 {
        c.password_failed("liam", IP).unwrap();
    }
    assert!(
        matches!(wrong(&c, "liam", d), Verdict::Locked { .. }),
        "password and answer failures add up"
    );
}

pub fn r11_admin_unlock<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "mona");
    for _ in 0..10 {
        wrong(&c, "mona", d);
    }
    let out = c.unlock("mona").unwrap();
    assert_eq!(
        out.records,
        vec![Record::Reset {
            user: "mona".into()
        }]
    );
    assert!(matches!(right(&c, "mona", d), Verdict::Accepted { .. }));
}

pub fn r11_exact_under_concurrency_64_threads<K: Kind>() {
    // 64 threads, 3,840 wrong answers and 640 right ones: exactly 10 failures are evaluated,
    // then every answer, right ones included, is refused as locked.
    // Thousands of challenges open at once for one user: past the default bound per user.
    let (c, _) = core_with::<K>(CoreConfig {
        max_open_per_user: 10_000,
        ..no_limits()
    });
    let d = dsc(&c, "nora");
    let mut work = Vec::new();
    for i in 0..4480 {
        let (txn, ch) = begin(&c, "nora", d);
        let Challenge::Numeric(q) = ch else { panic!() };
        let good = dsc_answer(&q, "1234");
        let right = i % 7 == 6;
        let answer = if right {
            good
        } else {
            format!("{:08}", (good.parse::<u64>().unwrap() + 1) % 100_000_000)
        };
        work.push((txn, answer, right));
    }
    let results: Vec<(bool, Verdict)> = std::thread::scope(|s| {
        let handles: Vec<_> = work
            .chunks(70)
            .map(|chunk| {
                let c = c.clone();
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut seen_lock = false;
                    for (t, a, right) in chunk {
                        // Right answers are sent only once this thread has seen the lock: they
                        // race the other threads' failures, never precede the lock.
                        if *right && !seen_lock {
                            continue;
                        }
                        let v = c.answer(*t, a, IP).value;
                        seen_lock |= matches!(v, Verdict::Locked { .. });
                        out.push((*right, v));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let evaluated = c
        .counters()
        .failures_evaluated
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(evaluated, 10, "exactly 10 failures evaluated");
    assert_eq!(
        results
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Rejected { .. }))
            .count(),
        9
    );
    assert_eq!(
        results
            .iter()
            .filter(|(_, v)| matches!(v, Verdict::Accepted { .. }))
            .count(),
        0,
        "no right answer after the lock"
    );
    assert!(
        results.iter().filter(|(right, _)| *right).count() > 100,
        "right answers did race"
    );
    assert_eq!(
        c.counters()
            .lockouts
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

pub fn r11_a_right_answer_racing_the_10th_failure_never_slips_through<K: Kind>() {
    // 300 rounds: nine failures, then the 10th failure and a right answer at once. Either the
    // right one wins (accepted, and the failure sees a fresh count), or the lock wins (both
    // locked). Never a lock with an acceptance after it.
    for round in 0..300 {
        let (c, _) = core::<K>();
        let name = format!("race{round}");
        let d = dsc(&c, &name);
        for _ in 0..9 {
            wrong(&c, &name, d);
        }
        let (t1, ch1) = begin(&c, &name, d);
        let (t2, ch2) = begin(&c, &name, d);
        let (Challenge::Numeric(q1), Challenge::Numeric(q2)) = (ch1, ch2) else {
            panic!()
        };
        let bad = format!(
            "{:08}",
            (dsc_answer(&q1, "1234").parse::<u64>().unwrap() + 1) % 100_000_000
        );
        let good = dsc_answer(&q2, "1234");
        let barrier = std::sync::Barrier::new(2);
        let (vw, vr) = std::thread::scope(|s| {
            let w = s.spawn(|| {
                barrier.wait();
                c.answer(t1, &bad, IP).value
            });
            let r = s.spawn(|| {
                barrier.wait();
                c.answer(t2, &good, IP).value
            });
            (w.join().unwrap(), r.join().unwrap())
        });
        match (vw, vr) {
            (Verdict::Locked { .. }, Verdict::Locked { .. }) => {}
            (Verdict::Rejected { failures_left: 9 }, Verdict::Accepted { .. }) => {}
            other => panic!("round {round}: {other:?}"),
        }
    }
}

pub fn r11_only_locked_after_ten_failures_with_no_success_between<K: Kind>() {
    // All wrong, 64 threads: exactly 10 evaluated, then only Locked.
    // Thousands of challenges open at once for one user: past the default bound per user.
    let (c, _) = core_with::<K>(CoreConfig {
        max_open_per_user: 10_000,
        ..no_limits()
    });
    let d = dsc(&c, "olga");
    let txns: Vec<_> = (0..2000).map(|_| begin(&c, "olga", d).0).collect();
    let verdicts: Vec<Verdict> = std::thread::scope(|s| {
        txns.chunks(32)
            .map(|chunk| {
                let c = c.clone();
                s.spawn(move || {
                    chunk
                        .iter()
                        .map(|t| c.answer(*t, "00000000", IP).value)
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let rejected = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Rejected { .. }))
        .count();
    let locked = verdicts
        .iter()
        .filter(|v| matches!(v, Verdict::Locked { .. }))
        .count();
    // "00000000" could be right by a 1e-8 chance per challenge; accept none here.
    assert_eq!(
        verdicts
            .iter()
            .filter(|v| matches!(v, Verdict::Accepted { .. }))
            .count(),
        0
    );
    assert_eq!(rejected, 9);
    assert_eq!(locked, 2000 - 9);
    assert_eq!(
        c.counters()
            .failures_evaluated
            .load(std::sync::atomic::Ordering::Relaxed),
        10
    );
}

pub fn r11_an_unknown_name_counts_down_as_a_known_user_with_no_device<K: Kind>() {
    // No user enumeration: every answer about a name nobody enrolled is the answer about an
    // enrolled user with no device, and waits for a write as that one's does.
    let (c, clock) = core::<K>();
    user(&c, "kate");
    let same = |what: &str, ask: &dyn Fn(&str) -> String| {
        assert_eq!(ask("kate"), ask("ghost"), "{what}");
    };
    let begin = |name: &str, device: Option<DeviceId>| {
        format!(
            "{:?}",
            c.begin(
                &BeginRequest {
                    user: name,
                    purpose: Purpose::Login,
                    device,
                    client: IP,
                },
                false,
            )
            .unwrap()
            .value
        )
    };
    for n in 0..12 {
        same("status", &|u| format!("{:?}", c.status(u).unwrap()));
        same("begin none", &|u| begin(u, None));
        same("begin some", &|u| begin(u, Some(DeviceId(99))));
        let real = c.password_failed("kate", IP).unwrap();
        let ghost = c.password_failed("ghost", IP).unwrap();
        assert_eq!(real.value, ghost.value, "failure {n}");
        assert_eq!(real.waits, ghost.waits, "failure {n}");
        // Counted failures are written; attempts while locked are not (R11).
        assert_eq!(real.waits, n < 10, "failure {n}");
        // What the ghost wrote is nothing a replay would read as a user.
        assert!(ghost
            .records
            .iter()
            .all(|r| matches!(r, Record::Decoy { .. })));
        clock.advance(MS);
    }
    assert!(matches!(
        c.password_failed("ghost", IP).unwrap().value,
        Verdict::Locked { .. }
    ));
    // The lock ends as a real one does; a name never tried still reads fresh.
    clock.advance(24 * H);
    same("status after the lock", &|u| {
        format!("{:?}", c.status(u).unwrap())
    });
    assert_eq!(
        c.status("nobody").unwrap().failures_left,
        c.config().lockout_threshold
    );
}
