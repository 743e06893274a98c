//! Challenges and answers: R1 (every kind, SMS), R5, R9, R10, R12.

use std::time::Duration;

use sls_engine::*;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{OcraInput, OcraSuite};
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r5_dsc_plus_six_digit_challenge_eight_digit_answer_with_pin<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn r10_user_names_bad_character_and_case_sensitive<K: Kind>() {
    let (c, _) = core::<K>();
    dsc(&c, "carol");
    let r = |u: &str| {
        c.begin(
            &BeginRequest {
                user: u,
                purpose: Purpose::Login,
                device: None,
                client: IP,
            },
            false,
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

pub fn r10_malformed_answers_are_an_error_and_count_by_default<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "erin");
    for bad in ["1234 5678", " 12345678", "1234567a", "123456789", ""] {
        let (txn, _) = begin(&c, "erin", d);
        assert_eq!(c.answer(txn, bad, IP).value, Verdict::Malformed, "{bad:?}");
    }
    assert_eq!(c.status("erin").unwrap().failures, 5);
    // Configurable: not counted.
    let (c2, _) = core_with::<K>(CoreConfig {
        malformed_counts: false,
        ..no_limits()
    });
    let d2 = dsc(&c2, "erin");
    let (txn, _) = begin(&c2, "erin", d2);
    assert_eq!(c2.answer(txn, "1234 5678", IP).value, Verdict::Malformed);
    assert_eq!(c2.status("erin").unwrap().failures, 0);
}

pub fn r12_one_answer_one_use_and_expiry<K: Kind>() {
    let (c, clock) = core::<K>();
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

pub fn r9_scc_positions_and_codes<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn r1_every_permanent_kind_answers_its_own_way_and_legacy_cards_are_honoured<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn r1_sms_passcode_until_ib_key_is_activated<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn open_challenges_per_user_are_bounded<K: Kind>() {
    // One user's open challenges are bounded (an endless `begin` loop, or answers refused by a
    // rate limit before they spend their challenge, must not grow one user's state without
    // end): past the bound the oldest gives way, a new login still gets its challenge, and
    // other users are not affected.
    let (c, _) = core_with::<K>(CoreConfig {
        max_open_per_user: 3,
        ..no_limits()
    });
    let d = dsc(&c, "opal");
    let other = dsc(&c, "onyx");
    let open: Vec<_> = (0..4).map(|_| begin(&c, "opal", d)).collect();
    assert!(matches!(right(&c, "onyx", other), Verdict::Accepted { .. }));
    let answer = |(txn, ch): &(TxnId, Challenge)| {
        let Challenge::Numeric(q) = ch else { panic!() };
        c.answer(*txn, &dsc_answer(q, "1234"), IP).value
    };
    // The oldest gave way to the fourth: it is no longer judged.
    assert!(!matches!(answer(&open[0]), Verdict::Accepted { .. }));
    for o in &open[1..] {
        assert!(matches!(answer(o), Verdict::Accepted { .. }));
    }
}
