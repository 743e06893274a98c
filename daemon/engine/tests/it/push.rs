//! R6: IB Key push, number matching, the fallback challenge, push fatigue; R21 grants.

use sls_engine::*;
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r6_push_approval_with_number_matching_and_r21_grants<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn r6_an_app_cannot_answer_another_devices_push<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn r6_fallback_challenge_when_the_app_is_not_connected<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn push_fatigue_cap_falls_back_to_a_typed_challenge<K: Kind>() {
    let (c, _) = core::<K>();
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
            true,
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
