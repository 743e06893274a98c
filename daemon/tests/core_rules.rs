//! The rules of SLS_RULES.md that the verifier core owns, each by name, driven by a fake clock:
//! 24 hours pass in a microsecond, and every boundary is tested on both sides.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use sls_daemon::core::*;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::*;

const H: Duration = Duration::from_secs(3600);
const MS: Duration = Duration::from_millis(1);
const KEY: [u8; 32] = *b"12345678901234567890123456789012";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

fn no_limits() -> CoreConfig {
    CoreConfig {
        rates: RatePolicy {
            per_user: 0,
            per_client: 0,
            global: 0,
            ..RatePolicy::default()
        },
        ..CoreConfig::default()
    }
}

fn core_with(config: CoreConfig) -> (Core, FakeClock) {
    let clock = FakeClock::default();
    (Core::new(config, Arc::new(clock.clone())), clock)
}

fn core() -> (Core, FakeClock) {
    core_with(no_limits())
}

fn user(c: &Core, name: &str) {
    c.enrol_user(&UserSpec {
        name: name.into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
}

fn dsc(c: &Core, name: &str) -> DeviceId {
    user(c, name);
    c.enrol_device(
        name,
        &DeviceSpec {
            kind: DeviceKind::DscPlus,
            secret: KEY.to_vec(),
            pin: "1234".into(),
            suite: String::new(),
        },
    )
    .unwrap()
    .value
}

fn never(_: DeviceId) -> bool {
    false
}
fn always(_: DeviceId) -> bool {
    true
}

fn begin(c: &Core, name: &str, device: DeviceId) -> (TxnId, Challenge) {
    begin_for(c, name, device, Purpose::Login)
}

fn begin_for(c: &Core, name: &str, device: DeviceId, purpose: Purpose) -> (TxnId, Challenge) {
    match c
        .begin(
            &BeginRequest {
                user: name,
                purpose,
                device: Some(device),
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value
    {
        BeginResult::Challenge { txn, challenge, .. } => (txn, challenge),
        other => panic!("no challenge: {other:?}"),
    }
}

fn dsc_answer(q: &str, pin: &str) -> String {
    let suite: OcraSuite = ocra::DSC_PLUS_DEFAULT_SUITE.parse().unwrap();
    let ph = ocra::pin_hash(suite.pin.unwrap(), pin.as_bytes());
    suite
        .compute(
            &KEY,
            &OcraInput {
                question: q,
                pin_hash: Some(ph.as_bytes()),
                ..OcraInput::default()
            },
        )
        .unwrap()
        .to_string()
}

fn right(c: &Core, name: &str, d: DeviceId) -> Verdict {
    let (txn, ch) = begin(c, name, d);
    let Challenge::Numeric(q) = ch else { panic!() };
    c.answer(txn, &dsc_answer(&q, "1234"), IP).value
}

fn wrong(c: &Core, name: &str, d: DeviceId) -> Verdict {
    let (txn, ch) = begin(c, name, d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let mut a = dsc_answer(&q, "1234").into_bytes();
    a[7] = if a[7] == b'9' { b'0' } else { a[7] + 1 };
    c.answer(txn, std::str::from_utf8(&a).unwrap(), IP).value
}

fn begin_verdict(c: &Core, name: &str, d: DeviceId) -> Verdict {
    match c
        .begin(
            &BeginRequest {
                user: name,
                purpose: Purpose::Login,
                device: Some(d),
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value
    {
        BeginResult::Verdict(v) => v,
        other => panic!("expected a verdict: {other:?}"),
    }
}

#[test]
fn r5_dsc_plus_six_digit_challenge_eight_digit_answer_with_pin() {
    let (c, _) = core();
    let d = dsc(&c, "alice");
    let (txn, ch) = begin(&c, "alice", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    assert_eq!(q.len(), 6);
    assert!(q.bytes().all(|b| b.is_ascii_digit()));
    // The right card with the wrong PIN gives a wrong answer.
    assert!(matches!(
        c.answer(txn, &dsc_answer(&q, "4321"), IP).value,
        Verdict::Rejected { failures_left: 9 }
    ));
    match right(&c, "alice", d) {
        Verdict::Accepted {
            kind,
            level,
            limits,
            grant,
            ..
        } => {
            assert_eq!(kind, DeviceKind::DscPlus);
            assert_eq!(level, SecurityLevel::Top);
            assert!(limits.is_unlimited());
            assert_eq!(grant.kind, GrantKind::Session);
        }
        v => panic!("{v:?}"),
    }
}

#[test]
fn r7_pins() {
    let (c, _) = core();
    user(&c, "bob");
    let spec = |kind, pin: &str| DeviceSpec {
        kind,
        secret: KEY.to_vec(),
        pin: pin.into(),
        suite: String::new(),
    };
    assert_eq!(
        c.enrol_device("bob", &spec(DeviceKind::DscPlus, "123"))
            .unwrap_err(),
        CoreError::InvalidPin("a DSC+ PIN is 4 digits")
    );
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::DscPlus, "12a4"))
        .is_err());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::DscPlus, "1234"))
        .is_ok());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "a!3"))
        .is_err());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "a!3$5z7"))
        .is_err());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "a!3$5z"))
        .is_ok());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "ab 1"))
        .is_err());
}

#[test]
fn r10_user_names_bad_character_and_case_sensitive() {
    let (c, _) = core();
    dsc(&c, "carol");
    let r = |u: &str| {
        c.begin(
            &BeginRequest {
                user: u,
                purpose: Purpose::Login,
                device: None,
                client: IP,
            },
            &never,
        )
    };
    assert_eq!(r("Carol").unwrap_err(), CoreError::BadCharacter);
    assert_eq!(r("carol ").unwrap_err(), CoreError::BadCharacter);
    assert_eq!(r("car-ol").unwrap_err().status(), Status::BAD_CHARACTER);
    assert!(matches!(r("carol").unwrap().value, BeginResult::Devices(d) if d.len() == 1));
    assert!(c
        .enrol_user(&UserSpec {
            name: "Dave".into(),
            ..UserSpec::default()
        })
        .is_err());
    assert_eq!(
        c.password_failed("CAROL", IP).unwrap_err(),
        CoreError::BadCharacter
    );
}

#[test]
fn r10_malformed_answers_are_an_error_and_count_by_default() {
    let (c, _) = core();
    let d = dsc(&c, "erin");
    for bad in ["1234 5678", " 12345678", "1234567a", "123456789", ""] {
        let (txn, _) = begin(&c, "erin", d);
        assert_eq!(c.answer(txn, bad, IP).value, Verdict::Malformed, "{bad:?}");
    }
    assert_eq!(c.status("erin").unwrap().unwrap().failures, 5);
    // Configurable: not counted.
    let (c2, _) = core_with(CoreConfig {
        malformed_counts: false,
        ..no_limits()
    });
    let d2 = dsc(&c2, "erin");
    let (txn, _) = begin(&c2, "erin", d2);
    assert_eq!(c2.answer(txn, "1234 5678", IP).value, Verdict::Malformed);
    assert_eq!(c2.status("erin").unwrap().unwrap().failures, 0);
}

#[test]
fn r11_ten_failures_lock_and_the_lock_holds_against_the_right_answer() {
    let (c, _) = core();
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

#[test]
fn r11_lock_holds_24h_after_last_failure() {
    let (c, clock) = core();
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

#[test]
fn r11_attempts_while_locked_do_not_extend_the_lock() {
    let (c, clock) = core();
    let d = dsc(&c, "hank");
    for _ in 0..10 {
        wrong(&c, "hank", d);
    }
    let until = c.status("hank").unwrap().unwrap().locked_until_ms;
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
    let (c2, clock2) = core_with(CoreConfig {
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

#[test]
fn r11_failures_count_only_within_24h() {
    let (c, clock) = core();
    let d = dsc(&c, "ivan");
    for _ in 0..9 {
        wrong(&c, "ivan", d);
    }
    // The 10th failure exactly 24 h after the first nine: they have left the window.
    clock.advance(24 * H);
    assert_eq!(wrong(&c, "ivan", d), Verdict::Rejected { failures_left: 9 });
    // Sliding, not fixed: 5 at t, 5 at t + 23 h lock.
    let (c, clock) = core();
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
    let (c, clock) = core();
    let d = dsc(&c, "kate");
    for _ in 0..9 {
        wrong(&c, "kate", d);
    }
    clock.advance(24 * H - MS);
    assert!(matches!(wrong(&c, "kate", d), Verdict::Locked { .. }));
}

#[test]
fn r11_password_failures_count_and_success_resets() {
    let (c, _) = core();
    let d = dsc(&c, "liam");
    for _ in 0..9 {
        assert!(matches!(
            c.password_failed("liam", IP).unwrap().value,
            Verdict::Rejected { .. }
        ));
    }
    assert!(matches!(right(&c, "liam", d), Verdict::Accepted { .. }));
    assert_eq!(c.status("liam").unwrap().unwrap().failures, 0);
    for _ in 0..9 {
        c.password_failed("liam", IP).unwrap();
    }
    assert!(
        matches!(wrong(&c, "liam", d), Verdict::Locked { .. }),
        "password and answer failures add up"
    );
}

#[test]
fn r11_admin_unlock() {
    let (c, _) = core();
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

#[test]
fn r11_exact_under_concurrency_64_threads() {
    // 64 threads, 3,840 wrong answers and 640 right ones: exactly 10 failures are evaluated,
    // then every answer, right ones included, is refused as locked.
    let (c, _) = core();
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

#[test]
fn r11_a_right_answer_racing_the_10th_failure_never_slips_through() {
    // 300 rounds: nine failures, then the 10th failure and a right answer at once. Either the
    // right one wins (accepted, and the failure sees a fresh count), or the lock wins (both
    // locked). Never a lock with an acceptance after it.
    for round in 0..300 {
        let (c, _) = core();
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

#[test]
fn r11_only_locked_after_ten_failures_with_no_success_between() {
    // All wrong, 64 threads: exactly 10 evaluated, then only Locked.
    let (c, _) = core();
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

#[test]
fn r12_one_answer_one_use_and_expiry() {
    let (c, clock) = core();
    let d = dsc(&c, "pete");
    let (txn, ch) = begin(&c, "pete", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let a = dsc_answer(&q, "1234");
    assert!(matches!(
        c.answer(txn, &a, IP).value,
        Verdict::Accepted { .. }
    ));
    assert_eq!(c.answer(txn, &a, IP).value, Verdict::Replayed);
    // Expiry: 2 minutes, both sides.
    let (txn, ch) = begin(&c, "pete", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    clock.advance(Duration::from_secs(120) - MS);
    assert!(matches!(
        c.answer(txn, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Accepted { .. }
    ));
    let (txn, ch) = begin(&c, "pete", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    clock.advance(Duration::from_secs(120));
    assert_eq!(
        c.answer(txn, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired
    );
    // Remembered as spent for the replay window, then refused as unknown (memory bound).
    let (txn, ch) = begin(&c, "pete", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let a = dsc_answer(&q, "1234");
    assert!(matches!(
        c.answer(txn, &a, IP).value,
        Verdict::Accepted { .. }
    ));
    clock.advance(c.config().replay_window - MS);
    c.sweep();
    assert_eq!(c.answer(txn, &a, IP).value, Verdict::Replayed);
    clock.advance(MS);
    c.sweep();
    assert_eq!(
        c.answer(txn, &a, IP).value,
        Verdict::Unknown,
        "still refused after the window"
    );
    // Bound to its user and device: an unknown transaction is unknown.
    assert_eq!(c.answer(TxnId(42), "12345678", IP).value, Verdict::Unknown);
    // An open challenge is swept after its life; memory is reclaimed.
    let _ = begin(&c, "pete", d);
    let before = c.open_txns();
    clock.advance(Duration::from_secs(600));
    assert!(c.sweep() >= 1);
    assert!(c.open_txns() < before);
}

#[test]
fn r4_m2fs_several_devices_and_withdrawals_need_a_covering_device() {
    let (c, _) = core();
    let d = dsc(&c, "quin");
    let ib = c
        .enrol_device(
            "quin",
            &DeviceSpec {
                kind: DeviceKind::IbKey,
                secret: KEY.to_vec(),
                pin: "9z9z".into(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let list = |purpose| match c
        .begin(
            &BeginRequest {
                user: "quin",
                purpose,
                device: None,
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value
    {
        BeginResult::Devices(v) => v.into_iter().map(|d| d.id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(list(Purpose::Login), vec![d, ib]);
    // R3: IB Key covers 1M a day; 2M needs the DSC+.
    assert_eq!(
        list(Purpose::Withdrawal {
            amount_usd: 1_000_000
        }),
        vec![d, ib]
    );
    assert_eq!(
        list(Purpose::Withdrawal {
            amount_usd: 1_000_001
        }),
        vec![d]
    );
    let v = c
        .begin(
            &BeginRequest {
                user: "quin",
                purpose: Purpose::Withdrawal {
                    amount_usd: 2_000_000,
                },
                device: Some(ib),
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value;
    assert_eq!(
        v,
        BeginResult::Verdict(Verdict::NeedsStrongerDevice {
            required: SecurityLevel::Top
        })
    );
    let (txn, ch) = begin_for(
        &c,
        "quin",
        d,
        Purpose::Withdrawal {
            amount_usd: 2_000_000,
        },
    );
    let Challenge::Numeric(q) = ch else { panic!() };
    let out = c.answer(txn, &dsc_answer(&q, "1234"), IP);
    assert!(matches!(out.value, Verdict::Accepted { .. }));
    assert!(out.records.iter().any(|r| matches!(
        r,
        Record::Withdrawal {
            amount_usd: 2_000_000,
            ..
        }
    )));
}

#[test]
fn r3_daily_totals_count() {
    let (c, clock) = core();
    user(&c, "rosa");
    let ib = c
        .enrol_device(
            "rosa",
            &DeviceSpec {
                kind: DeviceKind::IbKey,
                secret: KEY.to_vec(),
                pin: "9z9z".into(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let ib_answer = |q: &str| {
        let suite: OcraSuite = ocra::IB_KEY_DEFAULT_SUITE.parse().unwrap();
        let ph = ocra::pin_hash(suite.pin.unwrap(), b"9z9z");
        suite
            .compute(
                &KEY,
                &OcraInput {
                    question: q,
                    pin_hash: Some(ph.as_bytes()),
                    ..OcraInput::default()
                },
            )
            .unwrap()
            .to_string()
    };
    let (txn, ch) = begin_for(
        &c,
        "rosa",
        ib,
        Purpose::Withdrawal {
            amount_usd: 600_000,
        },
    );
    let Challenge::Numeric(q) = ch else { panic!() };
    assert!(matches!(
        c.answer(txn, &ib_answer(&q), IP).value,
        Verdict::Accepted { .. }
    ));
    // 600K + 600K > 1M a day.
    let v = c
        .begin(
            &BeginRequest {
                user: "rosa",
                purpose: Purpose::Withdrawal {
                    amount_usd: 600_000,
                },
                device: Some(ib),
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value;
    assert!(matches!(
        v,
        BeginResult::Verdict(Verdict::NeedsStrongerDevice { .. })
    ));
    // A day later, the daily total has room again.
    clock.advance(24 * H);
    let v = c
        .begin(
            &BeginRequest {
                user: "rosa",
                purpose: Purpose::Withdrawal {
                    amount_usd: 300_000,
                },
                device: Some(ib),
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value;
    assert!(matches!(v, BeginResult::Challenge { .. }));
}

fn ib_key(c: &Core, name: &str, pin: &str) -> DeviceId {
    user(c, name);
    c.enrol_device(
        name,
        &DeviceSpec {
            kind: DeviceKind::IbKey,
            secret: KEY.to_vec(),
            pin: pin.into(),
            suite: String::new(),
        },
    )
    .unwrap()
    .value
}

fn push_begin(c: &Core, name: &str, d: DeviceId) -> (TxnId, u8, PushOrder) {
    match c
        .begin(
            &BeginRequest {
                user: name,
                purpose: Purpose::Login,
                device: Some(d),
                client: IP,
            },
            &always,
        )
        .unwrap()
        .value
    {
        BeginResult::Challenge {
            txn,
            challenge: Challenge::Push { number },
            push: Some(p),
            ..
        } => (txn, number, p),
        other => panic!("{other:?}"),
    }
}

#[test]
fn r6_push_approval_with_number_matching_and_r21_grants() {
    let (c, _) = core();
    let d = ib_key(&c, "sam", "1234");
    let (txn, number, p) = push_begin(&c, "sam", d);
    assert_eq!(c.txn_verdict(txn), Verdict::Pending);
    let mac = push::push_mac(
        &KEY,
        txn,
        "sam",
        number,
        &p.nonce,
        ApprovalMethod::Biometric,
        true,
    );
    match c
        .push_answer(d, txn, true, ApprovalMethod::Biometric, number, &mac)
        .value
    {
        Verdict::Accepted { grant, .. } => {
            assert_eq!(grant.kind, GrantKind::TradingBiometric);
            assert!(grant.valid_secs > 30 * 3600 - 1);
        }
        v => panic!("{v:?}"),
    }
    assert!(matches!(c.txn_verdict(txn), Verdict::Accepted { .. }));
    assert_eq!(
        c.push_answer(d, txn, true, ApprovalMethod::Biometric, number, &mac)
            .value,
        Verdict::Replayed
    );
    // PIN: 12 hours.
    let (txn, number, p) = push_begin(&c, "sam", d);
    let mac = push::push_mac(
        &KEY,
        txn,
        "sam",
        number,
        &p.nonce,
        ApprovalMethod::Pin,
        true,
    );
    assert!(matches!(
        c.push_answer(d, txn, true, ApprovalMethod::Pin, number, &mac)
            .value,
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::TradingPin,
                valid_secs: 43_200
            },
            ..
        }
    ));
    // The wrong number typed: a failure, never an approval.
    let (txn, number, p) = push_begin(&c, "sam", d);
    let other = (number + 1) % 100;
    let mac = push::push_mac(&KEY, txn, "sam", other, &p.nonce, ApprovalMethod::Pin, true);
    assert_eq!(
        c.push_answer(d, txn, true, ApprovalMethod::Pin, other, &mac)
            .value,
        Verdict::Rejected { failures_left: 9 }
    );
    // A forged MAC: a failure.
    let (txn, number, _) = push_begin(&c, "sam", d);
    assert!(matches!(
        c.push_answer(d, txn, true, ApprovalMethod::Pin, number, &[0u8; 32])
            .value,
        Verdict::Rejected { .. }
    ));
    // Declined.
    let (txn, number, p) = push_begin(&c, "sam", d);
    let mac = push::push_mac(
        &KEY,
        txn,
        "sam",
        number,
        &p.nonce,
        ApprovalMethod::Pin,
        false,
    );
    assert_eq!(
        c.push_answer(d, txn, false, ApprovalMethod::Pin, number, &mac)
            .value,
        Verdict::Declined
    );
    assert_eq!(c.txn_verdict(txn), Verdict::Declined);
}

#[test]
fn r6_an_app_cannot_answer_another_devices_push() {
    let (c, _) = core();
    let d1 = ib_key(&c, "tina", "1234");
    let d2 = ib_key(&c, "umar", "1234");
    let (txn, number, p) = push_begin(&c, "tina", d1);
    let mac = push::push_mac(
        &KEY,
        txn,
        "tina",
        number,
        &p.nonce,
        ApprovalMethod::Pin,
        true,
    );
    assert_eq!(
        c.push_answer(d2, txn, true, ApprovalMethod::Pin, number, &mac)
            .value,
        Verdict::Unknown
    );
    assert_eq!(c.txn_verdict(txn), Verdict::Pending);
}

#[test]
fn r6_fallback_challenge_when_the_app_is_not_connected() {
    let (c, _) = core();
    let d = ib_key(&c, "vera", "p4ss!");
    let (txn, ch) = begin(&c, "vera", d);
    let Challenge::Numeric(q) = ch else {
        panic!("fallback is a numeric challenge")
    };
    assert_eq!(q.len(), 8);
    let suite: OcraSuite = ocra::IB_KEY_DEFAULT_SUITE.parse().unwrap();
    let ph = ocra::pin_hash(suite.pin.unwrap(), b"p4ss!");
    let a = suite
        .compute(
            &KEY,
            &OcraInput {
                question: &q,
                pin_hash: Some(ph.as_bytes()),
                ..OcraInput::default()
            },
        )
        .unwrap();
    assert!(matches!(
        c.answer(txn, a.as_str(), IP).value,
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::TradingPin,
                ..
            },
            ..
        }
    ));
}

#[test]
fn push_fatigue_cap_falls_back_to_a_typed_challenge() {
    let (c, _) = core();
    let d = ib_key(&c, "walt", "1234");
    for _ in 0..5 {
        push_begin(&c, "walt", d);
    }
    match c
        .begin(
            &BeginRequest {
                user: "walt",
                purpose: Purpose::Login,
                device: Some(d),
                client: IP,
            },
            &always,
        )
        .unwrap()
        .value
    {
        BeginResult::Challenge {
            challenge: Challenge::Numeric(_),
            push: None,
            ..
        } => {}
        other => panic!("the 6th push since the last success must not be sent: {other:?}"),
    }
}

#[test]
fn r9_scc_positions_and_codes() {
    let (c, _) = core();
    user(&c, "xena");
    let secret = b"scc secret for xena".to_vec();
    let d = c
        .enrol_device(
            "xena",
            &DeviceSpec {
                kind: DeviceKind::Scc,
                secret: secret.clone(),
                pin: String::new(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (txn, ch) = begin(&c, "xena", d);
        let Challenge::Positions(p) = ch else {
            panic!()
        };
        assert_eq!(p.len(), 2);
        assert!(
            p.iter().all(|x| !seen.contains(x)),
            "recent positions are not asked again"
        );
        seen.extend_from_slice(&p);
        let a = card::answer(&secret, &CardLayout::default(), &p).unwrap();
        assert!(matches!(
            c.answer(txn, &a, IP).value,
            Verdict::Accepted {
                kind: DeviceKind::Scc,
                ..
            }
        ));
    }
    let (txn, ch) = begin(&c, "xena", d);
    let Challenge::Positions(p) = ch else {
        panic!()
    };
    let a = card::answer(&secret, &CardLayout::default(), &p).unwrap();
    assert_eq!(
        c.answer(txn, &format!("{} {}", &a[..3], &a[3..]), IP).value,
        Verdict::Malformed
    );
}

#[test]
fn r13_temporary_code_two_days_full_ten_days_portal_then_expired() {
    let (c, clock) = core();
    dsc(&c, "yuri");
    let (d, code, full, portal) = c.issue_temp_code("yuri").unwrap().value;
    let now0 = full - 2 * 24 * 3_600_000;
    assert_eq!(portal - full, 10 * 24 * 3_600_000);
    let try_code = |code: &str| {
        let (txn, ch) = begin(&c, "yuri", d);
        assert_eq!(ch, Challenge::Code);
        c.answer(txn, code, IP).value
    };
    assert!(matches!(
        try_code(&code),
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::Temporary,
                ..
            },
            ..
        }
    ));
    // R10: temporary codes are upper case and case sensitive.
    assert_eq!(try_code(&code.to_lowercase()), Verdict::Malformed);
    clock.advance(Duration::from_millis(full - now0) - MS);
    assert!(matches!(
        try_code(&code),
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::Temporary,
                ..
            },
            ..
        }
    ));
    clock.advance(MS);
    assert!(matches!(
        try_code(&code),
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::PortalOnly,
                ..
            },
            ..
        }
    ));
    clock.advance(Duration::from_millis(portal - full) - MS);
    assert!(matches!(
        try_code(&code),
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::PortalOnly,
                ..
            },
            ..
        }
    ));
    clock.advance(MS);
    let v = c
        .begin(
            &BeginRequest {
                user: "yuri",
                purpose: Purpose::Login,
                device: Some(d),
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value;
    assert_eq!(
        v,
        BeginResult::Verdict(Verdict::Unknown),
        "an expired temporary code is no longer a usable device"
    );
}

#[test]
fn r14_online_scc_21_days_and_r15_reactivation_voids_temporary_devices() {
    let (c, clock) = core();
    let perm = dsc(&c, "zack");
    let (scc, secret, expires) = c.issue_online_scc("zack").unwrap().value;
    let (tmp, code, _, _) = c.issue_temp_code("zack").unwrap().value;
    let (txn, ch) = begin(&c, "zack", scc);
    let Challenge::Positions(p) = ch else {
        panic!()
    };
    assert!(matches!(
        c.answer(
            txn,
            &card::answer(&secret, &CardLayout::default(), &p).unwrap(),
            IP
        )
        .value,
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::Temporary,
                ..
            },
            ..
        }
    ));
    let start = expires - 21 * 24 * 3_600_000;
    clock.advance(Duration::from_millis(expires - start) - MS);
    assert!(matches!(
        c.begin(
            &BeginRequest {
                user: "zack",
                purpose: Purpose::Login,
                device: Some(scc),
                client: IP
            },
            &never
        )
        .unwrap()
        .value,
        BeginResult::Challenge { .. }
    ));
    clock.advance(MS);
    assert_eq!(begin_verdict(&c, "zack", scc), Verdict::Unknown);
    // R15: a new temporary code and Online SCC, then the permanent device is reactivated.
    let (scc2, _, _) = c.issue_online_scc("zack").unwrap().value;
    let _ = (tmp, code);
    let (tmp2, _, _, _) = c.issue_temp_code("zack").unwrap().value;
    c.reactivate("zack", perm).unwrap();
    assert_eq!(begin_verdict(&c, "zack", scc2), Verdict::Unknown);
    assert_eq!(begin_verdict(&c, "zack", tmp2), Verdict::Unknown);
    assert!(matches!(right(&c, "zack", perm), Verdict::Accepted { .. }));
}

#[test]
fn r16_replacement_auto_activates_three_weeks_after_shipment() {
    let (c, clock) = core();
    let old = dsc(&c, "abby");
    let new = c.order_replacement("abby", &KEY, "5678").unwrap().value;
    assert_eq!(
        begin_verdict(&c, "abby", new),
        Verdict::Unknown,
        "ordered is not usable"
    );
    c.ship("abby", new).unwrap();
    assert_eq!(
        c.activation_notice("abby", new).unwrap(),
        ActivationNotice::None
    );
    clock.advance(14 * 24 * H);
    assert_eq!(
        c.activation_notice("abby", new).unwrap(),
        ActivationNotice::Approaching
    );
    clock.advance(6 * 24 * H);
    assert_eq!(
        c.activation_notice("abby", new).unwrap(),
        ActivationNotice::Imminent
    );
    clock.advance(24 * H - MS);
    assert_eq!(begin_verdict(&c, "abby", new), Verdict::Unknown);
    clock.advance(MS);
    let (txn, ch) = begin(&c, "abby", new);
    let Challenge::Numeric(q) = ch else { panic!() };
    assert!(
        matches!(
            c.answer(txn, &dsc_answer(&q, "5678"), IP).value,
            Verdict::Accepted { .. }
        ),
        "new PIN"
    );
    // Activating it by hand replaces the old card.
    c.activate("abby", new).unwrap();
    assert_eq!(begin_verdict(&c, "abby", old), Verdict::Unknown);
}

#[test]
fn r18_opt_out_logs_in_without_device_and_only_the_primary_opts_back_in() {
    let (c, _) = core();
    c.enrol_user(&UserSpec {
        name: "boss".into(),
        entity: "acme".into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
    c.enrol_user(&UserSpec {
        name: "clerk".into(),
        entity: "acme".into(),
        primary: false,
        ..UserSpec::default()
    })
    .unwrap();
    c.opt_out("clerk").unwrap();
    let v = c
        .begin(
            &BeginRequest {
                user: "clerk",
                purpose: Purpose::Login,
                device: None,
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value;
    assert!(matches!(
        v,
        BeginResult::Verdict(Verdict::Accepted {
            kind: DeviceKind::NoDevice,
            level: SecurityLevel::None,
            ..
        })
    ));
    let v = c
        .begin(
            &BeginRequest {
                user: "clerk",
                purpose: Purpose::Withdrawal { amount_usd: 60_000 },
                device: None,
                client: IP,
            },
            &never,
        )
        .unwrap()
        .value;
    assert!(
        matches!(v, BeginResult::Verdict(Verdict::NeedsStrongerDevice { .. })),
        "none limits: 50K a day"
    );
    assert_eq!(
        c.opt_in("clerk", "clerk").unwrap_err(),
        CoreError::NotPrimaryUser {
            primary: "boss".into()
        }
    );
    c.opt_in("clerk", "boss").unwrap();
    assert!(matches!(
        c.begin(
            &BeginRequest {
                user: "clerk",
                purpose: Purpose::Login,
                device: None,
                client: IP
            },
            &never
        )
        .unwrap()
        .value,
        BeginResult::Devices(_)
    ));
}

#[test]
fn r20_dsc_plus_needs_the_equity_threshold() {
    let (c, _) = core();
    c.enrol_user(&UserSpec {
        name: "poor".into(),
        equity_usd: 999_999,
        ..UserSpec::default()
    })
    .unwrap();
    c.enrol_user(&UserSpec {
        name: "rich".into(),
        equity_usd: 1_000_000,
        ..UserSpec::default()
    })
    .unwrap();
    let spec = DeviceSpec {
        kind: DeviceKind::DscPlus,
        secret: KEY.to_vec(),
        pin: "1234".into(),
        suite: String::new(),
    };
    assert_eq!(
        c.enrol_device("poor", &spec).unwrap_err(),
        CoreError::NotEligible
    );
    assert!(c.enrol_device("rich", &spec).is_ok());
}

#[test]
fn r22_ib_key_activation_and_recovery_by_sms_token() {
    let (c, clock) = core();
    user(&c, "dana");
    assert_eq!(
        c.activation_start("dana", "+41791234567").unwrap_err(),
        CoreError::BadPhone
    );
    assert_eq!(
        c.activation_start("dana", "0791234567").unwrap_err(),
        CoreError::BadPhone,
        "no trunk prefix"
    );
    let token = c.activation_start("dana", "41791234567").unwrap().value;
    assert_eq!(
        c.activate_ib_key("dana", "00000000", &KEY, "1234")
            .unwrap_err(),
        CoreError::BadToken
    );
    let first = c
        .activate_ib_key("dana", &token, &KEY, "1234")
        .unwrap()
        .value;
    assert_eq!(
        c.activate_ib_key("dana", &token, &KEY, "1234").unwrap_err(),
        CoreError::BadToken,
        "a token is used once"
    );
    // Recovery after reinstall: a new key replaces the old one.
    let token = c.activation_start("dana", "41791234567").unwrap().value;
    clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        c.activate_ib_key("dana", &token, &[9u8; 32], "1234")
            .unwrap_err(),
        CoreError::BadToken,
        "expired"
    );
    let token = c.activation_start("dana", "41791234567").unwrap().value;
    let second = c
        .activate_ib_key("dana", &token, &[9u8; 32], "1234")
        .unwrap()
        .value;
    assert_eq!(begin_verdict(&c, "dana", first), Verdict::Unknown);
    assert!(c.device_authenticate(
        second,
        &[1; 32],
        &push::device_proof(&[9u8; 32], second, &[1; 32])
    ));
    assert!(!c.device_authenticate(
        second,
        &[1; 32],
        &push::device_proof(&KEY, second, &[1; 32])
    ));
}

#[test]
fn rate_limits_per_user_per_client_follow_the_clock() {
    let (c, clock) = core_with(CoreConfig {
        rates: RatePolicy {
            per_user: 1,
            per_user_burst: 3,
            per_client: 100,
            per_client_burst: 100,
            global: 0,
        },
        ..CoreConfig::default()
    });
    let d = dsc(&c, "eve");
    for _ in 0..3 {
        begin(&c, "eve", d);
    }
    assert!(
        matches!(begin_verdict(&c, "eve", d), Verdict::RateLimited { retry_after_ms } if retry_after_ms > 0 && retry_after_ms <= 1000)
    );
    // Another user from the same address is not affected.
    let d2 = dsc(&c, "fred");
    begin(&c, "fred", d2);
    clock.advance(Duration::from_secs(1));
    begin(&c, "eve", d);
    // Per client: one flooding address does not slow another.
    let (c, _) = core_with(CoreConfig {
        rates: RatePolicy {
            per_user: 0,
            per_user_burst: 0,
            per_client: 1,
            per_client_burst: 5,
            global: 0,
        },
        ..CoreConfig::default()
    });
    let d = dsc(&c, "gus");
    let flood = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
    let mut limited = 0;
    for _ in 0..100 {
        if let BeginResult::Verdict(Verdict::RateLimited { .. }) = c
            .begin(
                &BeginRequest {
                    user: "gus",
                    purpose: Purpose::Login,
                    device: Some(d),
                    client: flood,
                },
                &never,
            )
            .unwrap()
            .value
        {
            limited += 1;
        }
    }
    assert_eq!(limited, 95);
    assert!(matches!(
        c.begin(
            &BeginRequest {
                user: "gus",
                purpose: Purpose::Login,
                device: Some(d),
                client: IP
            },
            &never
        )
        .unwrap()
        .value,
        BeginResult::Challenge { .. }
    ));
}

#[test]
fn mass_lockout_is_signalled() {
    let (c, _) = core_with(CoreConfig {
        mass_lockout_threshold: 5,
        ..no_limits()
    });
    for i in 0..5 {
        let name = format!("m{i}");
        let d = dsc(&c, &name);
        assert!(!c.mass_lockout().1);
        for _ in 0..10 {
            wrong(&c, &name, d);
        }
    }
    assert_eq!(c.mass_lockout(), (5, true));
}

#[test]
fn replaying_records_rebuilds_the_state() {
    let (c, clock) = core();
    let d = dsc(&c, "hope");
    let mut journal = Vec::new();
    journal.extend(c.snapshot_records());
    for _ in 0..7 {
        let (txn, _) = begin(&c, "hope", d);
        journal.extend(c.answer(txn, "00000001", IP).records);
    }
    let (c2, clock2) = core();
    clock2.advance(clock.now() - clock2.now());
    for r in &journal {
        c2.apply(r);
    }
    assert_eq!(c2.status("hope").unwrap().unwrap().failures, 7);
    for _ in 0..2 {
        wrong(&c2, "hope", d);
    }
    assert!(
        matches!(wrong(&c2, "hope", d), Verdict::Locked { .. }),
        "replayed failures count towards the lock"
    );
    // A snapshot of the restored core restores again.
    let (c3, clock3) = core();
    clock3.advance(clock2.now() - clock3.now());
    for r in c2.snapshot_records() {
        c3.apply(&r);
    }
    assert!(matches!(
        begin_verdict(&c3, "hope", d),
        Verdict::Locked { .. }
    ));
}

fn person(c: &Core, name: &str, entity: &str, ident: &str) {
    c.enrol_user(&UserSpec {
        name: name.into(),
        entity: entity.into(),
        identification: ident.into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
}

fn card_of(c: &Core, name: &str, kind: DeviceKind, secret: &[u8]) -> DeviceId {
    let pin = if kind == DeviceKind::DscPlus {
        "1234"
    } else {
        ""
    };
    c.enrol_device(
        name,
        &DeviceSpec {
            kind,
            secret: secret.to_vec(),
            pin: pin.into(),
            suite: String::new(),
        },
    )
    .unwrap()
    .value
}

/// The owner's answer to a fresh challenge of `device` (a DSC+ keyed with KEY, PIN 1234).
fn owner_answer(c: &Core, owner: &str, device: DeviceId) -> (TxnId, String) {
    let (txn, ch) = begin(c, owner, device);
    let Challenge::Numeric(q) = ch else { panic!() };
    (txn, dsc_answer(&q, "1234"))
}

#[test]
fn r17_sharing_same_entity_is_approved_at_once_and_cancel_restores() {
    let (c, _) = core();
    person(&c, "owna", "acme", "");
    person(&c, "reqa", "acme", "");
    let dsc = card_of(&c, "owna", DeviceKind::DscPlus, &KEY);
    let own_scc = card_of(&c, "reqa", DeviceKind::Scc, b"requester card");
    let (txn, a) = owner_answer(&c, "owna", dsc);
    let out = c.share_request("reqa", "owna", dsc, txn, &a, IP).unwrap();
    let (share, pending) = out.value.unwrap();
    assert!(!pending);
    assert!(out
        .records
        .iter()
        .any(|r| matches!(r, Record::Share { state: 1, .. })));
    // The requester logs in with the shared card; its own, less protective card is redundant.
    let status = c.status("reqa").unwrap().unwrap();
    assert_eq!(status.devices.len(), 1);
    let copy = status.devices[0].id;
    assert_eq!(status.devices[0].kind, DeviceKind::DscPlus);
    assert!(matches!(right(&c, "reqa", copy), Verdict::Accepted { .. }));
    assert_eq!(begin_verdict(&c, "reqa", own_scc), Verdict::Unknown);
    // Cancelled: the shared card goes, the requester's own comes back.
    c.share_cancel(share).unwrap();
    assert_eq!(begin_verdict(&c, "reqa", copy), Verdict::Unknown);
    let (txn, ch) = begin(&c, "reqa", own_scc);
    let Challenge::Positions(p) = ch else {
        panic!()
    };
    assert!(matches!(
        c.answer(
            txn,
            &card::answer(b"requester card", &CardLayout::default(), &p).unwrap(),
            IP
        )
        .value,
        Verdict::Accepted { .. }
    ));
}

#[test]
fn r17_same_identification_waits_for_compliance() {
    let (c, _) = core();
    person(&c, "ownb", "acme", "1970-01-01|CH|CH|passport|X1");
    person(&c, "reqb", "other-llc", "1970-01-01|CH|CH|passport|X1");
    let dsc = card_of(&c, "ownb", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "ownb", dsc);
    let (share, pending) = c
        .share_request("reqb", "ownb", dsc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap();
    assert!(pending);
    assert!(
        c.status("reqb").unwrap().unwrap().devices.is_empty(),
        "nothing shared while pending"
    );
    c.share_decide(share, true).unwrap();
    assert_eq!(c.status("reqb").unwrap().unwrap().devices.len(), 1);
    assert!(c.share_decide(share, true).is_err(), "decided once");
}

#[test]
fn r17_the_three_prerequisites_and_their_named_errors() {
    let (c, _) = core();
    // (a) different entities and identification data.
    person(&c, "ownc", "acme", "id-1");
    person(&c, "reqc", "other", "id-2");
    let dsc = card_of(&c, "ownc", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "ownc", dsc);
    let e = c
        .share_request("reqc", "ownc", dsc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap_err();
    assert_eq!(e, CoreError::DifferentIdentification);
    assert_eq!(e.to_string(), "Different identification information");
    // (b) a participant with a temporary device.
    person(&c, "reqd", "acme", "");
    c.issue_temp_code("reqd").unwrap();
    let (txn, a) = owner_answer(&c, "ownc", dsc);
    assert_eq!(
        c.share_request("reqd", "ownc", dsc, txn, &a, IP)
            .unwrap()
            .value
            .unwrap_err(),
        CoreError::TemporaryDevice
    );
    // (c) sharing a less protective device than a participant's.
    person(&c, "owne", "beta", "");
    person(&c, "reqe", "beta", "");
    let scc = card_of(&c, "owne", DeviceKind::Scc, b"owner card");
    card_of(&c, "reqe", DeviceKind::DscPlus, &KEY);
    let (txn, ch) = begin(&c, "owne", scc);
    let Challenge::Positions(p) = ch else {
        panic!()
    };
    let a = card::answer(b"owner card", &CardLayout::default(), &p).unwrap();
    let e = c
        .share_request("reqe", "owne", scc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap_err();
    assert_eq!(e, CoreError::LessSecureDevice);
    assert_eq!(e.to_string(), "Less secure device");
    // IB Key is not shared this way (R8).
    person(&c, "ownf", "gamma", "");
    person(&c, "reqf", "gamma", "");
    let ib = c
        .enrol_device(
            "ownf",
            &DeviceSpec {
                kind: DeviceKind::IbKey,
                secret: KEY.to_vec(),
                pin: "1234".into(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let (txn, _) = begin(&c, "ownf", ib);
    assert!(matches!(
        c.share_request("reqf", "ownf", ib, txn, "12345678", IP),
        Err(CoreError::InvalidState(_))
    ));
}

#[test]
fn r17_a_wrong_owner_answer_is_refused_and_counts() {
    let (c, _) = core();
    person(&c, "owng", "acme", "");
    person(&c, "reqg", "acme", "");
    let dsc = card_of(&c, "owng", DeviceKind::DscPlus, &KEY);
    let (txn, _) = owner_answer(&c, "owng", dsc);
    let out = c
        .share_request("reqg", "owng", dsc, txn, "00000000", IP)
        .unwrap();
    assert_eq!(out.value.unwrap_err(), CoreError::OwnerNotVerified);
    assert!(
        out.records
            .iter()
            .any(|r| matches!(r, Record::Failure { user, .. } if user == "owng")),
        "the failure is journalled"
    );
    assert_eq!(c.status("owng").unwrap().unwrap().failures, 1);
    // A challenge of another user's device does not prove the owner.
    let other = self::dsc(&c, "ownh");
    let (txn, a) = owner_answer(&c, "ownh", other);
    assert_eq!(
        c.share_request("reqg", "owng", dsc, txn, &a, IP)
            .unwrap()
            .value
            .unwrap_err(),
        CoreError::OwnerNotVerified
    );
}

#[test]
fn r17_shares_survive_replay() {
    let (c, clock) = core();
    person(&c, "owni", "acme", "");
    person(&c, "reqi", "acme", "");
    let dsc = card_of(&c, "owni", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "owni", dsc);
    let mut journal = c.snapshot_records();
    let out = c.share_request("reqi", "owni", dsc, txn, &a, IP).unwrap();
    let (share, _) = out.value.unwrap();
    journal.extend(out.records);
    let (c2, clock2) = core();
    clock2.advance(clock.now() - clock2.now());
    for r in &journal {
        c2.apply(r);
    }
    assert_eq!(c2.status("reqi").unwrap().unwrap().devices.len(), 1);
    c2.share_cancel(share).unwrap();
    assert!(c2.status("reqi").unwrap().unwrap().devices.is_empty());
}

#[test]
fn r1_every_permanent_kind_answers_its_own_way_and_legacy_cards_are_honoured() {
    let (c, _) = core();
    user(&c, "lena");
    for (kind, level) in [
        (DeviceKind::Gold, SecurityLevel::Top),
        (DeviceKind::Platinum, SecurityLevel::Top),
        (DeviceKind::Dsc, SecurityLevel::Dsc),
    ] {
        let d = c
            .enrol_device(
                "lena",
                &DeviceSpec {
                    kind,
                    secret: KEY.to_vec(),
                    pin: String::new(),
                    suite: "OCRA-1:HOTP-SHA256-8:QN06".into(),
                },
            )
            .unwrap()
            .value;
        let (txn, ch) = begin(&c, "lena", d);
        let Challenge::Numeric(q) = ch else {
            panic!("{kind}: a challenge card")
        };
        let suite: OcraSuite = "OCRA-1:HOTP-SHA256-8:QN06".parse().unwrap();
        let a = suite
            .compute(
                &KEY,
                &OcraInput {
                    question: &q,
                    ..OcraInput::default()
                },
            )
            .unwrap();
        match c.answer(txn, a.as_str(), IP).value {
            Verdict::Accepted {
                kind: k, level: l, ..
            } => assert_eq!((k, l), (kind, level)),
            v => panic!("{kind}: {v:?}"),
        }
    }
    // Each kind's challenge has its own shape.
    let dsc = c
        .enrol_device(
            "lena",
            &DeviceSpec {
                kind: DeviceKind::DscPlus,
                secret: KEY.to_vec(),
                pin: "1234".into(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let scc = c
        .enrol_device(
            "lena",
            &DeviceSpec {
                kind: DeviceKind::Scc,
                secret: KEY.to_vec(),
                pin: String::new(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let (tmp, _, _, _) = c.issue_temp_code("lena").unwrap().value;
    assert!(matches!(begin(&c, "lena", dsc).1, Challenge::Numeric(q) if q.len() == 6));
    assert!(matches!(begin(&c, "lena", scc).1, Challenge::Positions(p) if p.len() == 2));
    assert_eq!(begin(&c, "lena", tmp).1, Challenge::Code);
}

#[test]
fn r19_the_three_enrolment_paths() {
    let (c, _) = core();
    // Install IB Key (R22).
    user(&c, "path1");
    let token = c.activation_start("path1", "41790000000").unwrap().value;
    let ib = c
        .activate_ib_key("path1", &token, &KEY, "1234")
        .unwrap()
        .value;
    assert_eq!(
        c.status("path1")
            .unwrap()
            .unwrap()
            .devices
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![ib]
    );
    // Without IB Key: an Online SCC (R14).
    user(&c, "path2");
    let (scc, _, _) = c.issue_online_scc("path2").unwrap().value;
    assert_eq!(
        c.status("path2").unwrap().unwrap().devices[0].kind,
        DeviceKind::OnlineScc
    );
    assert_eq!(c.status("path2").unwrap().unwrap().devices[0].id, scc);
    // "I already have access to a Secure Login Device under a different username": R17.
    person(&c, "path3", "path3", "");
    c.enrol_user(&UserSpec {
        name: "path4".into(),
        entity: "path3".into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
    let owner_dsc = card_of(&c, "path3", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "path3", owner_dsc);
    let (_, pending) = c
        .share_request("path4", "path3", owner_dsc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap();
    assert!(!pending);
    assert_eq!(
        c.status("path4").unwrap().unwrap().devices[0].kind,
        DeviceKind::DscPlus
    );
}

#[test]
fn r1_sms_passcode_until_ib_key_is_activated() {
    let (c, _) = core();
    user(&c, "sofi");
    let sms = c
        .enrol_device(
            "sofi",
            &DeviceSpec {
                kind: DeviceKind::Sms,
                secret: b"sms key of sofi".to_vec(),
                pin: String::new(),
                suite: String::new(),
            },
        )
        .unwrap()
        .value;
    let (txn, ch) = begin(&c, "sofi", sms);
    let Challenge::Sms { code } = ch else {
        panic!("an SMS challenge carries the code to send")
    };
    assert_eq!(code.len(), 6);
    assert!(matches!(
        c.answer(txn, &code, IP).value,
        Verdict::Accepted {
            kind: DeviceKind::Sms,
            grant: Grant {
                kind: GrantKind::Temporary,
                ..
            },
            ..
        }
    ));
    // Each login gets its own code; a wrong one is a failure, a malformed one is malformed.
    let (txn, ch) = begin(&c, "sofi", sms);
    let Challenge::Sms { code: other } = ch else {
        panic!()
    };
    let wrong = format!("{:06}", (other.parse::<u32>().unwrap() + 1) % 1_000_000);
    assert_eq!(
        c.answer(txn, &wrong, IP).value,
        Verdict::Rejected { failures_left: 9 }
    );
    let (txn, _) = begin(&c, "sofi", sms);
    assert_eq!(c.answer(txn, "12 456", IP).value, Verdict::Malformed);
    // Activating IB Key ends SMS (R1, R22).
    let token = c.activation_start("sofi", "41790000001").unwrap().value;
    c.activate_ib_key("sofi", &token, &KEY, "1234").unwrap();
    assert_eq!(begin_verdict(&c, "sofi", sms), Verdict::Unknown);
}
