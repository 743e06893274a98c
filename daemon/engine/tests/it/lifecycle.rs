//! A device's life after enrolment: revocation and suspension, share copies that
//! follow their source (R17), and the lifecycle's edges (R13, R16, R18, the device cap).

use std::time::Duration;

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::{Kind, Rig};

const LOST: u8 = 1;
const STOLEN: u8 = 2;
const NEW_KEY: &[u8] = b"the replacement card's own key!!";

fn begin_err<K: Kind>(c: &Rig<K>, name: &str, d: DeviceId) -> CoreError {
    c.begin(
        &BeginRequest {
            user: name,
            purpose: Purpose::Login,
            device: Some(d),
            client: IP,
        },
        false,
    )
    .expect_err("refused by name")
}

fn listed<K: Kind>(c: &Rig<K>, name: &str) -> Vec<DeviceId> {
    let from_status: Vec<DeviceId> = c
        .status(name)
        .unwrap()
        .devices
        .iter()
        .map(|d| d.id)
        .collect();
    let from_begin = match c
        .begin(
            &BeginRequest {
                user: name,
                purpose: Purpose::Login,
                device: None,
                client: IP,
            },
            false,
        )
        .unwrap()
        .value
    {
        BeginResult::Devices(d) => d.iter().map(|d| d.id).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(from_status, from_begin, "Status and Begin offer the same");
    from_status
}

/// Owner (DSC+) and requester (SCC) of one entity; the share approved at once. Returns the
/// owner's card and the requester's copy.
fn shared<K: Kind>(c: &Rig<K>, owner: &str, requester: &str) -> (DeviceId, DeviceId) {
    person(c, owner, "acme", "");
    person(c, requester, "acme", "");
    let dsc = card_of(c, owner, DeviceKind::DscPlus, &KEY);
    card_of(c, requester, DeviceKind::Scc, b"requester card");
    let (txn, a) = owner_answer(c, owner, dsc);
    let (_, pending) = c
        .share_request(requester, owner, dsc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap();
    assert!(!pending);
    let copy = listed(c, requester)[0];
    assert!(matches!(
        right(c, requester, copy),
        Verdict::Accepted { .. }
    ));
    (dsc, copy)
}

/// A lost DSC+ revoked by client services answers `DEVICE_REVOKED` on its
/// next `Begin`, is offered no more, its open challenge is void (`expired`), and the user keeps
/// interim access (temporary code, Online SCC). A revoked device never comes back.
pub fn revocation_stops_a_lost_card_at_once_and_keeps_interim_access<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "rvka");
    let (open, ch) = begin(&c, "rvka", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let out = c.revoke_device("rvka", d, false, LOST).unwrap();
    assert!(out.waits, "durable before answered");
    assert!(out.records.iter().any(|r| matches!(
        r,
        Record::Stopped {
            state: DeviceState::Revoked,
            reason: LOST,
            ..
        }
    )));
    assert_eq!(begin_err(&c, "rvka", d), CoreError::DeviceRevoked);
    assert_eq!(begin_err(&c, "rvka", d).status(), Status::DEVICE_REVOKED);
    assert!(listed(&c, "rvka").is_empty());
    assert_eq!(
        c.answer(open, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired,
        "the open challenge is void: the right answer is refused"
    );
    // Interim access.
    let (temp, code, _, _) = c.issue_temp_code("rvka").unwrap().value;
    let (txn, _) = begin(&c, "rvka", temp);
    assert!(matches!(
        c.answer(txn, &code, IP).value,
        Verdict::Accepted { .. }
    ));
    let (scc, _, _) = c.issue_online_scc("rvka").unwrap().value;
    assert!(listed(&c, "rvka").contains(&scc));
    // For good.
    assert_eq!(
        c.resume_device("rvka", d).unwrap_err(),
        CoreError::DeviceRevoked
    );
    assert_eq!(
        c.reactivate("rvka", d).unwrap_err(),
        CoreError::DeviceRevoked
    );
    assert_eq!(c.activate("rvka", d).unwrap_err(), CoreError::DeviceRevoked);
    assert_eq!(
        c.revoke_device("rvka", d, true, STOLEN).unwrap_err(),
        CoreError::DeviceRevoked
    );
    assert_eq!(begin_err(&c, "rvka", d), CoreError::DeviceRevoked);
    // A reason out of range, an unknown device.
    let other = card_of(&c, "rvka", DeviceKind::Scc, b"second card");
    assert!(matches!(
        c.revoke_device("rvka", other, false, 0).unwrap_err(),
        CoreError::InvalidCredential(_)
    ));
    assert_eq!(
        c.revoke_device("rvka", DeviceId(999_999), false, LOST)
            .unwrap_err(),
        CoreError::UnknownDevice
    );
}

/// A suspended card and every share copy of it answer
/// `DEVICE_SUSPENDED` until resumed; resumed, both log in again (R17: the copy follows).
pub fn suspension_holds_the_card_and_its_copies_until_resumed<K: Kind>() {
    let (c, _) = core::<K>();
    let (dsc, copy) = shared(&c, "susa", "susb");
    let (open, ch) = begin(&c, "susb", copy);
    let Challenge::Numeric(q) = ch else { panic!() };
    c.revoke_device("susa", dsc, true, LOST).unwrap();
    assert_eq!(begin_err(&c, "susa", dsc), CoreError::DeviceSuspended);
    assert_eq!(begin_err(&c, "susb", copy), CoreError::DeviceSuspended);
    assert!(listed(&c, "susa").is_empty() && listed(&c, "susb").is_empty());
    assert_eq!(
        c.answer(open, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired,
        "the copy's open challenge is void"
    );
    assert_eq!(
        c.revoke_device("susa", dsc, true, LOST).unwrap_err(),
        CoreError::DeviceSuspended
    );
    assert_eq!(
        c.reactivate("susa", dsc).unwrap_err(),
        CoreError::DeviceSuspended
    );
    c.resume_device("susa", dsc).unwrap();
    assert!(matches!(right(&c, "susa", dsc), Verdict::Accepted { .. }));
    assert!(matches!(right(&c, "susb", copy), Verdict::Accepted { .. }));
    assert!(matches!(
        c.resume_device("susa", dsc).unwrap_err(),
        CoreError::InvalidState(_)
    ));
    // Revoked: the copy answers as revoked too.
    c.revoke_device("susa", dsc, false, STOLEN).unwrap();
    assert_eq!(begin_err(&c, "susb", copy), CoreError::DeviceRevoked);
}

/// A challenge shown before a suspension stays void once the device is resumed: client
/// services voided it, and a resume brings the device back, not what was open on it (found by
/// the simulator: the challenge was judged again after the resume).
pub fn a_challenge_open_before_a_suspension_stays_void_after_the_resume<K: Kind>() {
    let (c, _) = core::<K>();
    let d = dsc(&c, "susv");
    let (open, ch) = begin(&c, "susv", d);
    let Challenge::Numeric(q) = ch else { panic!() };
    c.revoke_device("susv", d, true, LOST).unwrap();
    c.resume_device("susv", d).unwrap();
    assert_eq!(
        c.answer(open, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired,
        "a challenge open before the suspension is void"
    );
    assert!(matches!(right(&c, "susv", d), Verdict::Accepted { .. }));
}

/// A device removed for good is gone from the lists and from `Begin`, its
/// open challenge and its share copy's are void (`expired`), the copy stops (R17), and the
/// removal is one `DeviceRemoved` record; a share copy itself goes only with its share.
pub fn a_removed_device_is_gone_its_challenges_void_and_its_copies_stop<K: Kind>() {
    let (c, _) = core::<K>();
    let (dsc, copy) = shared(&c, "rmva", "rmvb");
    let (own_open, ch) = begin(&c, "rmva", dsc);
    let Challenge::Numeric(q) = ch else { panic!() };
    let (copy_open, ch) = begin(&c, "rmvb", copy);
    let Challenge::Numeric(q2) = ch else { panic!() };
    assert!(matches!(
        c.remove_device("rmvb", copy).unwrap_err(),
        CoreError::InvalidState(_)
    ));
    let out = c.remove_device("rmva", dsc).unwrap();
    assert_eq!(
        out.records,
        vec![Record::DeviceRemoved {
            user: "rmva".into(),
            id: dsc,
        }]
    );
    assert_eq!(
        c.answer(own_open, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired,
        "the removed card's open challenge is void"
    );
    assert_eq!(
        c.answer(copy_open, &dsc_answer(&q2, "1234"), IP).value,
        Verdict::Expired,
        "the copy's open challenge is void"
    );
    assert_eq!(begin_verdict(&c, "rmva", dsc), Verdict::Unknown);
    assert_eq!(begin_verdict(&c, "rmvb", copy), Verdict::Unknown);
    assert!(listed(&c, "rmva").is_empty() && listed(&c, "rmvb").is_empty());
    assert!(K::block_on(c.core.list_devices("rmva")).unwrap().is_empty());
    assert_eq!(
        c.remove_device("rmva", dsc).unwrap_err(),
        CoreError::UnknownDevice
    );
    assert_eq!(
        c.remove_device("nobody", dsc).unwrap_err(),
        CoreError::UnknownUser
    );
}

/// The share-copy repro: the owner's card is replaced (OrderReplacement, Ship,
/// Activate); the requester's copy of the old card is no longer accepted with its OCRA.
pub fn r17_a_copy_stops_when_its_source_is_replaced_by_activate<K: Kind>() {
    let (c, _) = core::<K>();
    let (_, copy) = shared(&c, "rpla", "rplb");
    let (open, ch) = begin(&c, "rplb", copy);
    let Challenge::Numeric(q) = ch else { panic!() };
    let new = c.order_replacement("rpla", NEW_KEY, "5678").unwrap().value;
    c.ship("rpla", new).unwrap();
    assert!(matches!(right(&c, "rplb", copy), Verdict::Accepted { .. }));
    c.activate("rpla", new).unwrap();
    assert_eq!(
        c.answer(open, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired,
        "the old card's OCRA is refused through the copy"
    );
    assert_eq!(begin_verdict(&c, "rplb", copy), Verdict::Unknown);
    assert!(!listed(&c, "rplb").contains(&copy));
}

/// The share-copy repro by R16's auto-activation: 21 days after shipment the owner's
/// replacement is active with no write at all, and the copy of the old card stops then.
pub fn r17_a_copy_stops_at_its_sources_auto_activation<K: Kind>() {
    let (c, clock) = core::<K>();
    let (_, copy) = shared(&c, "auta", "autb");
    let new = c.order_replacement("auta", NEW_KEY, "5678").unwrap().value;
    c.ship("auta", new).unwrap();
    clock.advance(Duration::from_secs(21 * 24 * 3600) - MS);
    assert!(matches!(right(&c, "autb", copy), Verdict::Accepted { .. }));
    let (open, ch) = begin(&c, "autb", copy);
    let Challenge::Numeric(q) = ch else { panic!() };
    clock.advance(MS);
    assert_eq!(
        c.answer(open, &dsc_answer(&q, "1234"), IP).value,
        Verdict::Expired
    );
    assert_eq!(begin_verdict(&c, "autb", copy), Verdict::Unknown);
    assert!(listed(&c, "autb").is_empty());
}

/// R17(a): a user with no entity is an account of its own, even when its
/// name is another user's entity.
pub fn r17_a_user_without_entity_shares_no_entity_by_name<K: Kind>() {
    let (c, _) = core::<K>();
    person(&c, "ownent", "zeta", "");
    person(&c, "zeta", "", "");
    let dsc = card_of(&c, "ownent", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "ownent", dsc);
    assert_eq!(
        c.share_request("zeta", "ownent", dsc, txn, &a, IP)
            .unwrap()
            .value
            .unwrap_err(),
        CoreError::DifferentIdentification
    );
    assert!(listed(&c, "zeta").is_empty());
}

/// `ShareDecide` re-checks R17 at the decision: a temporary code issued to
/// the requester while pending refuses the approval (R17(b)), and so does the source revoked
/// or suspended; the share stays pending until a decision that holds.
pub fn r17_share_decide_rechecks_the_prerequisites_and_the_source<K: Kind>() {
    let (c, _) = core::<K>();
    person(&c, "decown", "acme", "1970-01-01|CH|CH|passport|X9");
    person(&c, "decreq", "other-llc", "1970-01-01|CH|CH|passport|X9");
    let dsc = card_of(&c, "decown", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "decown", dsc);
    let (share, pending) = c
        .share_request("decreq", "decown", dsc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap();
    assert!(pending);
    let (temp, _, _, _) = c.issue_temp_code("decreq").unwrap().value;
    assert_eq!(
        c.share_decide(share, true).unwrap_err(),
        CoreError::TemporaryDevice
    );
    assert!(listed(&c, "decreq").contains(&temp), "nothing shared");
    c.revoke_device("decreq", temp, false, 4).unwrap();
    c.revoke_device("decown", dsc, true, LOST).unwrap();
    assert_eq!(
        c.share_decide(share, true).unwrap_err(),
        CoreError::DeviceSuspended
    );
    c.resume_device("decown", dsc).unwrap();
    c.share_decide(share, true).unwrap();
    let copy = listed(&c, "decreq")[0];
    assert!(matches!(
        right(&c, "decreq", copy),
        Verdict::Accepted { .. }
    ));
}

/// A user does not share a device with itself (`SELF_SHARE`).
pub fn r17_self_share_is_refused_by_name<K: Kind>() {
    let (c, _) = core::<K>();
    person(&c, "selfy", "acme", "");
    let dsc = card_of(&c, "selfy", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "selfy", dsc);
    let e = c
        .share_request("selfy", "selfy", dsc, txn, &a, IP)
        .unwrap_err();
    assert_eq!(e, CoreError::SelfShare);
    assert_eq!(e.status(), Status::SELF_SHARE);
    assert_eq!(listed(&c, "selfy"), vec![dsc], "the own card stays");
    assert!(matches!(right(&c, "selfy", dsc), Verdict::Accepted { .. }));
}

/// R16: `Reactivate` never makes an ordered or shipped replacement active
/// beside its predecessor, and a replaced card does not come back.
pub fn r16_reactivate_follows_the_replacement_states<K: Kind>() {
    let (c, _) = core::<K>();
    let old = dsc(&c, "reac");
    let new = c.order_replacement("reac", NEW_KEY, "5678").unwrap().value;
    assert!(matches!(
        c.reactivate("reac", new).unwrap_err(),
        CoreError::InvalidState(_)
    ));
    c.ship("reac", new).unwrap();
    assert!(matches!(
        c.reactivate("reac", new).unwrap_err(),
        CoreError::InvalidState(_)
    ));
    assert_eq!(listed(&c, "reac"), vec![old], "the old card alone");
    c.activate("reac", new).unwrap();
    assert_eq!(
        c.reactivate("reac", old).unwrap_err(),
        CoreError::DeviceRetired
    );
    assert_eq!(listed(&c, "reac"), vec![new]);
    assert_eq!(begin_verdict(&c, "reac", old), Verdict::Unknown);
}

/// Devices per user are capped (`max_devices_per_user`, default 32, at
/// most the wire lists' 64): past it enrolment is refused `TOO_MANY_DEVICES`, and every
/// list a user's devices go in stays within it. Revoked devices do not count.
pub fn devices_per_user_are_capped_and_the_lists_stay_within_it<K: Kind>() {
    let (c, _) = core::<K>();
    assert_eq!(c.config().max_devices_per_user, 32);
    user(&c, "capa");
    let scc = |i: u32| card_of(&c, "capa", DeviceKind::Scc, format!("card {i}").as_bytes());
    let first: Vec<DeviceId> = (0..32).map(scc).collect();
    let spec = DeviceSpec {
        kind: DeviceKind::Scc,
        secret: b"one too many".to_vec(),
        pin: String::new(),
        suite: String::new(),
    };
    let e = c.enrol_device("capa", &spec).unwrap_err();
    assert_eq!(e, CoreError::TooManyDevices);
    assert_eq!(e.status(), Status::TOO_MANY_DEVICES);
    assert_eq!(
        c.issue_online_scc("capa").unwrap_err(),
        CoreError::TooManyDevices
    );
    assert_eq!(listed(&c, "capa").len(), 32);
    c.revoke_device("capa", first[0], false, LOST).unwrap();
    c.enrol_device("capa", &spec).unwrap();
    assert_eq!(listed(&c, "capa").len(), 32);
    // A smaller cap from the configuration.
    let (c, _) = core_with::<K>(CoreConfig {
        max_devices_per_user: 2,
        ..no_limits()
    });
    dsc(&c, "capb");
    card_of(&c, "capb", DeviceKind::Scc, b"second");
    assert_eq!(
        c.issue_temp_code("capb").unwrap_err(),
        CoreError::TooManyDevices
    );
}

/// R13: a new temporary code voids the previous one.
pub fn r13_a_new_temporary_code_voids_the_previous_one<K: Kind>() {
    let (c, _) = core::<K>();
    user(&c, "tmpv");
    let (first, code1, _, _) = c.issue_temp_code("tmpv").unwrap().value;
    let (open, _) = begin(&c, "tmpv", first);
    let (second, code2, _, _) = c.issue_temp_code("tmpv").unwrap().value;
    assert_eq!(c.answer(open, &code1, IP).value, Verdict::Expired);
    assert_eq!(begin_verdict(&c, "tmpv", first), Verdict::Unknown);
    assert_eq!(listed(&c, "tmpv"), vec![second]);
    let (txn, _) = begin(&c, "tmpv", second);
    assert!(matches!(
        c.answer(txn, &code2, IP).value,
        Verdict::Accepted { .. }
    ));
}

/// R18: an account with no primary user is not told that the refused user
/// is its primary, and client services may opt the user back in (`OptInOverride`), which is
/// refused while the account has a primary user (that user opts in).
pub fn r18_an_account_without_primary_opts_back_in_by_override<K: Kind>() {
    let (c, _) = core::<K>();
    c.enrol_user(&UserSpec {
        name: "noprim".into(),
        entity: "headless".into(),
        primary: false,
        ..UserSpec::default()
    })
    .unwrap();
    c.opt_out("noprim").unwrap();
    let e = c.opt_in("noprim", "noprim").unwrap_err();
    assert_eq!(e.status(), Status::NOT_PRIMARY_USER);
    assert!(
        !matches!(&e, CoreError::NotPrimaryUser { primary } if primary == "noprim"),
        "the refused user is not named as the primary: {e}"
    );
    c.opt_in_override("noprim").unwrap();
    assert!(!c.status("noprim").unwrap().opted_out);
    person(&c, "hasprim", "", "");
    c.opt_out("hasprim").unwrap();
    assert_eq!(
        c.opt_in_override("hasprim").unwrap_err(),
        CoreError::HasPrimaryUser
    );
}

/// R3: a withdrawal is counted when its second factor is accepted; the
/// frontend releases it by its transaction when it did not execute (`ReleaseWithdrawal`), once.
pub fn r3_a_withdrawal_that_did_not_execute_is_released_by_its_transaction<K: Kind>() {
    let (c, _) = core::<K>();
    user(&c, "wdrl");
    let scc = card_of(&c, "wdrl", DeviceKind::Scc, b"withdrawal card");
    let withdraw = |amount_usd| {
        let (txn, ch) = begin_for(&c, "wdrl", scc, Purpose::Withdrawal { amount_usd });
        let Challenge::Positions(p) = ch else {
            panic!()
        };
        let codes =
            sls_protocol::card::answer(b"withdrawal card", &Default::default(), &p).unwrap();
        (txn, c.answer(txn, &codes, IP).value)
    };
    let (first, v) = withdraw(150_000);
    assert!(matches!(v, Verdict::Accepted { .. }));
    let more = BeginRequest {
        user: "wdrl",
        purpose: Purpose::Withdrawal {
            amount_usd: 100_000,
        },
        device: Some(scc),
        client: IP,
    };
    assert!(matches!(
        c.begin(&more, false).unwrap().value,
        BeginResult::Verdict(Verdict::NeedsStrongerDevice { .. })
    ));
    let out = c.release_withdrawal("wdrl", first).unwrap();
    assert!(out.waits, "durable before answered");
    let (_, v) = withdraw(100_000);
    assert!(
        matches!(v, Verdict::Accepted { .. }),
        "the SCC's 200K cover it now"
    );
    assert_eq!(
        c.release_withdrawal("wdrl", first).unwrap_err(),
        CoreError::UnknownWithdrawal,
        "once"
    );
    assert_eq!(
        c.release_withdrawal("nobodyhere", first).unwrap_err(),
        CoreError::UnknownWithdrawal,
        "an unknown name as a user with no such withdrawal"
    );
}
