//! R13 (temporary code), R14/R15 (Online SCC, reactivation), R16 (replacements).

use std::time::Duration;

use sls_engine::*;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::*;

use crate::common::*;
use crate::harness::{Kind, Rig};

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
            false,
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
            false
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

/// The usable devices' ids, as `Status` lists them.
fn usable_ids<K: Kind>(c: &Rig<K>, name: &str) -> Vec<DeviceId> {
    let s = c.status(name).unwrap();
    s.devices.into_iter().map(|d| d.id).collect()
}

pub fn r16_r15_auto_activation_at_21_days_retires_the_old_card_and_voids_temporaries<K: Kind>() {
    let (c, clock) = core::<K>();
    let old = dsc(&c, "ines");
    let new = c.order_replacement("ines", &KEY, "5678").unwrap().value;
    c.ship("ines", new).unwrap();
    let shipped = FakeClock::default().now();
    // The user waits for the card with temporary access (R13, R14), issued late enough to
    // be alive when it arrives.
    clock.advance(20 * 24 * H);
    let (temp, code, ..) = c.issue_temp_code("ines").unwrap().value;
    let (scc, ..) = c.issue_online_scc("ines").unwrap().value;
    // A millisecond before three weeks: the old card and the temporaries still work.
    clock.advance(24 * H - MS);
    assert_eq!(usable_ids(&c, "ines"), vec![old, temp, scc]);
    assert!(matches!(right(&c, "ines", old), Verdict::Accepted { .. }));
    // At three weeks exactly, with nothing written yet: the replacement is the card; the old
    // one and the temporaries stop (R15), for reads as for logins.
    clock.advance(MS);
    assert_eq!(usable_ids(&c, "ines"), vec![new]);
    let v = c
        .begin(
            &BeginRequest {
                user: "ines",
                purpose: Purpose::Login,
                device: Some(old),
                client: IP,
            },
            false,
        )
        .unwrap();
    assert_eq!(v.value, BeginResult::Verdict(Verdict::Unknown));
    // That first change wrote the activation down, dated at the three weeks, so that a
    // restart (a replay of the records) agrees with what the rules read.
    let due = shipped.as_millis() as u64 + 21 * 24 * 3_600_000;
    let mut written: Vec<(DeviceId, DeviceState, u64)> = v
        .records
        .iter()
        .filter_map(|r| match r {
            Record::DeviceState {
                id, state, at_ms, ..
            } => Some((*id, *state, *at_ms)),
            _ => None,
        })
        .collect();
    written.sort_by_key(|w| w.0 .0);
    let mut want = vec![
        (new, DeviceState::Active, due),
        (old, DeviceState::Replaced, due),
        (temp, DeviceState::Inactive, due),
        (scc, DeviceState::Inactive, due),
    ];
    want.sort_by_key(|w| w.0 .0);
    assert_eq!(written, want);
    // Written once: the next change writes nothing more of it.
    let v = c
        .begin(
            &BeginRequest {
                user: "ines",
                purpose: Purpose::Login,
                device: Some(temp),
                client: IP,
            },
            false,
        )
        .unwrap();
    assert_eq!(v.value, BeginResult::Verdict(Verdict::Unknown), "{code}");
    assert!(
        !v.records
            .iter()
            .any(|r| matches!(r, Record::DeviceState { .. })),
        "{:?}",
        v.records
    );
    let (txn, ch) = begin(&c, "ines", new);
    let Challenge::Numeric(q) = ch else { panic!() };
    assert!(matches!(
        c.answer(txn, &dsc_answer(&q, "5678"), IP).value,
        Verdict::Accepted { .. }
    ));
    // Client services may issue a new temporary code after it: that one works.
    let (temp2, ..) = c.issue_temp_code("ines").unwrap().value;
    assert_eq!(usable_ids(&c, "ines"), vec![new, temp2]);
}

pub fn r15_ib_key_activation_or_recovery_voids_temporaries<K: Kind>() {
    let (c, _) = core::<K>();
    user(&c, "otto");
    let (temp, ..) = c.issue_temp_code("otto").unwrap().value;
    let (scc, ..) = c.issue_online_scc("otto").unwrap().value;
    assert_eq!(usable_ids(&c, "otto"), vec![temp, scc]);
    let token = c.activation_start("otto", "41791234567").unwrap().value;
    let ib = c.activate_ib_key("otto", &token, &KEY, "1234").unwrap();
    assert_eq!(usable_ids(&c, "otto"), vec![ib.value]);
    assert!(ib.records.iter().any(|r| matches!(
        r,
        Record::DeviceState { id, state: DeviceState::Inactive, .. } if *id == temp
    )));
    // Recovery after a reinstall is an activation too: a code issued meanwhile stops.
    let (temp2, ..) = c.issue_temp_code("otto").unwrap().value;
    let token = c.activation_start("otto", "41791234567").unwrap().value;
    let ib2 = c
        .activate_ib_key("otto", &token, &[9u8; 32], "1234")
        .unwrap()
        .value;
    assert_eq!(usable_ids(&c, "otto"), vec![ib2]);
    assert_eq!(begin_verdict(&c, "otto", temp2), Verdict::Unknown);
}

/// R16's steps are ordered, shipped, activated: a replacement still ordered is not in the
/// user's hands, so activating it is refused and the card the user has keeps working.
pub fn r16_a_replacement_activates_only_once_shipped<K: Kind>() {
    let (c, _clock) = core::<K>();
    let old = dsc(&c, "omar");
    let new = c.order_replacement("omar", &KEY, "5678").unwrap().value;
    assert!(matches!(
        c.activate("omar", new),
        Err(CoreError::InvalidState(_))
    ));
    assert!(matches!(right(&c, "omar", old), Verdict::Accepted { .. }));
    assert_eq!(begin_verdict(&c, "omar", new), Verdict::Unknown);
    // Once shipped, the user may activate it before the three weeks are up.
    c.ship("omar", new).unwrap();
    c.activate("omar", new).unwrap();
    assert_eq!(begin_verdict(&c, "omar", old), Verdict::Unknown);
}
