//! R3, R4: withdrawal limits by device, daily and 5-business-day totals.

use sls_engine::*;
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r4_m2fs_several_devices_and_withdrawals_need_a_covering_device<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "quin");
    let ib = also_ib_key(&c, "quin", "9z9z");
    let list = |purpose| match c
        .begin(
            &BeginRequest {
                user: "quin",
                purpose,
                device: None,
                client: IP,
            },
            false,
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
            false,
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

pub fn r3_daily_totals_count<K: Kind>() {
    let (c, clock) = core::<K>();
    user(&c, "rosa");
    let ib = also_ib_key(&c, "rosa", "9z9z");
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
            false,
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
            false,
        )
        .unwrap()
        .value;
    assert!(matches!(v, BeginResult::Challenge { .. }));
}

pub fn r18_r3_an_opted_out_users_withdrawals_add_up_over_five_business_days<K: Kind>() {
    // The clock starts on Tuesday 2026-11-24 at 00:00 UTC.
    let (c, clock) = core::<K>();
    user(&c, "otis");
    c.opt_out("otis").unwrap();
    let withdraw = |amount_usd| {
        let out = c
            .begin(
                &BeginRequest {
                    user: "otis",
                    purpose: Purpose::Withdrawal { amount_usd },
                    device: None,
                    client: IP,
                },
                false,
            )
            .unwrap();
        match out.value {
            BeginResult::Verdict(Verdict::Accepted { .. }) => {
                // Recorded, so that a restart counts it too.
                assert!(out.records.iter().any(|r| matches!(
                    r,
                    Record::Withdrawal { amount_usd: a, .. } if *a == amount_usd
                )));
                true
            }
            BeginResult::Verdict(Verdict::NeedsStrongerDevice { .. }) => false,
            other => panic!("{other:?}"),
        }
    };
    // R3 "none": 50K a day. Ten withdrawals of 50K in one day were all accepted.
    assert!(withdraw(50_000), "Tuesday");
    assert!(!withdraw(50_000), "a second 50K the same day");
    assert!(!withdraw(1), "the day is full");
    // Saturday 10:00: a new day; 100K in five business days leaves room for 50K.
    clock.advance(4 * 24 * H + 10 * H);
    assert!(withdraw(50_000), "Saturday");
    // Monday 10:00: Tuesday's and Saturday's 100K fill the five business days.
    clock.advance(48 * H);
    assert!(!withdraw(1), "Monday: 100K in five business days");
    // Tuesday 10:00: last Tuesday's is out (Wed, Thu, Fri, Mon, Tue began since).
    clock.advance(24 * H);
    assert!(withdraw(50_000), "Tuesday");
    // Thursday 10:00: Saturday's still counts (Mon, Tue, Wed, Thu began since it).
    clock.advance(48 * H);
    assert!(!withdraw(1), "Thursday: Saturday's and Tuesday's");
    // Friday 10:00: Saturday's is out, though seven calendar days have not passed.
    clock.advance(24 * H);
    assert!(withdraw(50_000), "Friday");
}

/// R3, R4: the limits hold when a withdrawal is confirmed, not only when it begins. One begun
/// on IB Key while nothing was withdrawn, confirmed after a DSC+ withdrawal of the same day
/// used the day up, needs a stronger device and counts no failure (found by the simulator:
/// it was accepted over IB Key's 1M a day).
pub fn r3_limits_hold_for_a_withdrawal_confirmed_after_another<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "wila");
    let ib = also_ib_key(&c, "wila", "9z9z");
    let (ib_txn, ch) = begin_for(
        &c,
        "wila",
        ib,
        Purpose::Withdrawal {
            amount_usd: 700_000,
        },
    );
    let Challenge::Numeric(ib_q) = ch else {
        panic!()
    };
    let (d_txn, ch) = begin_for(
        &c,
        "wila",
        d,
        Purpose::Withdrawal {
            amount_usd: 2_500_000,
        },
    );
    let Challenge::Numeric(q) = ch else { panic!() };
    assert!(matches!(
        c.answer(d_txn, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Accepted { .. }
    ));
    let suite: OcraSuite = ocra::IB_KEY_DEFAULT_SUITE.parse().unwrap();
    let ph = ocra::pin_hash(suite.pin.unwrap(), b"9z9z");
    let a = suite
        .compute(
            &KEY,
            &OcraInput {
                question: &ib_q,
                pin_hash: Some(ph.as_bytes()),
                ..OcraInput::default()
            },
        )
        .unwrap();
    assert_eq!(
        c.answer(ib_txn, a.as_str(), IP).value,
        Verdict::NeedsStrongerDevice {
            required: SecurityLevel::Top
        }
    );
    assert_eq!(c.status("wila").unwrap().failures, 0);
}

/// R3, R4, R6: the same when the withdrawal is confirmed by a push approval: begun on IB Key
/// by push while nothing was withdrawn, approved (the right number, a genuine MAC) after a
/// DSC+ withdrawal of the same day used the day up: it needs a stronger device, and the
/// approval counts no failure.
pub fn r3_limits_hold_for_a_withdrawal_approved_by_push_after_another<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "wilp");
    let ib = also_ib_key(&c, "wilp", "9z9z");
    let withdrawal = |device, amount_usd| {
        c.begin(
            &BeginRequest {
                user: "wilp",
                purpose: Purpose::Withdrawal { amount_usd },
                device: Some(device),
                client: IP,
            },
            true,
        )
        .unwrap()
        .value
    };
    let BeginResult::Challenge {
        txn: push_txn,
        challenge: Challenge::Push { number },
        push: Some(order),
        ..
    } = withdrawal(ib, 700_000)
    else {
        panic!("a push for the IB Key withdrawal")
    };
    let BeginResult::Challenge {
        txn: d_txn,
        challenge: Challenge::Numeric(q),
        ..
    } = withdrawal(d, 2_500_000)
    else {
        panic!("a challenge for the DSC+ withdrawal")
    };
    assert!(matches!(
        c.answer(d_txn, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Accepted { .. }
    ));
    let mac = push::push_mac(
        &KEY,
        push_txn,
        "wilp",
        number,
        &order.nonce,
        ApprovalMethod::Pin,
        true,
    );
    assert_eq!(
        c.push_answer(ib, push_txn, true, ApprovalMethod::Pin, number, &mac)
            .value,
        Verdict::NeedsStrongerDevice {
            required: SecurityLevel::Top
        }
    );
    assert_eq!(c.status("wilp").unwrap().failures, 0);
}
