//! R13 (temporary code), R14/R15 (Online SCC, reactivation), R16 (replacements).

use std::time::Duration;

use sls_core::*;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r13_temporary_code_two_days_full_ten_days_portal_then_expired<K: Kind>() {
    let (c, clock) = core::<K>();
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

pub fn r14_online_scc_21_days_and_r15_reactivation_voids_temporary_devices<K: Kind>() {
    let (c, clock) = core::<K>();
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

pub fn r16_replacement_auto_activates_three_weeks_after_shipment<K: Kind>() {
    let (c, clock) = core::<K>();
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
