//! The embedded store: replaying its records (journal, snapshot) rebuilds the state.

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::Embedded;

#[test]
fn replaying_records_rebuilds_the_state() {
    let (c, clock) = core::<Embedded>();
    let d = dsc(&c, "hope");
    let mut journal = Vec::new();
    journal.extend(c.snapshot_records());
    for _ in 0..7 {
        let (txn, _) = begin(&c, "hope", d);
        journal.extend(c.answer(txn, "00000001", IP).records);
    }
    let (c2, clock2) = core::<Embedded>();
    clock2.advance(clock.now() - clock2.now());
    for r in &journal {
        c2.apply(r);
    }
    assert_eq!(c2.status("hope").unwrap().failures, 7);
    for _ in 0..2 {
        wrong(&c2, "hope", d);
    }
    assert!(
        matches!(wrong(&c2, "hope", d), Verdict::Locked { .. }),
        "replayed failures count towards the lock"
    );
    // A snapshot of the restored core restores again.
    let (c3, clock3) = core::<Embedded>();
    clock3.advance(clock2.now() - clock3.now());
    for r in c2.snapshot_records() {
        c3.apply(&r);
    }
    assert!(matches!(
        begin_verdict(&c3, "hope", d),
        Verdict::Locked { .. }
    ));
}

#[test]
fn r17_shares_survive_replay() {
    let (c, clock) = core::<Embedded>();
    person(&c, "owni", "acme", "");
    person(&c, "reqi", "acme", "");
    let dsc = card_of(&c, "owni", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "owni", dsc);
    let mut journal = c.snapshot_records();
    let out = c.share_request("reqi", "owni", dsc, txn, &a, IP).unwrap();
    let (share, _) = out.value.unwrap();
    journal.extend(out.records);
    let (c2, clock2) = core::<Embedded>();
    clock2.advance(clock.now() - clock2.now());
    for r in &journal {
        c2.apply(r);
    }
    assert_eq!(c2.status("reqi").unwrap().devices.len(), 1);
    c2.share_cancel(share).unwrap();
    assert!(c2.status("reqi").unwrap().devices.is_empty());
}

/// A revoked card, a suspended one, and a share copy's source survive replay of the
/// journal and of a snapshot: after a restart the revoked card still answers revoked, and the
/// copy of the suspended card still follows it.
#[test]
fn revocation_suspension_and_a_copys_source_survive_replay_and_snapshot() {
    let (c, clock) = core::<Embedded>();
    person(&c, "rplo", "acme", "");
    person(&c, "rplr", "acme", "");
    let lost = card_of(&c, "rplo", DeviceKind::Scc, b"lost card");
    let dsc = card_of(&c, "rplo", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "rplo", dsc);
    c.share_request("rplr", "rplo", dsc, txn, &a, IP).unwrap();
    // The state so far as a snapshot (the copy's source in it), then the journal after it.
    let mut journal = c.snapshot_records();
    let copy = c.status("rplr").unwrap().devices[0].id;
    journal.extend(c.revoke_device("rplo", lost, false, 1).unwrap().records);
    journal.extend(c.revoke_device("rplo", dsc, true, 3).unwrap().records);
    let check = |c: &crate::harness::Rig<Embedded>| {
        let err = |user: &str, d: DeviceId| {
            c.begin(
                &BeginRequest {
                    user,
                    purpose: Purpose::Login,
                    device: Some(d),
                    client: IP,
                },
                false,
            )
            .unwrap_err()
        };
        assert_eq!(err("rplo", lost), CoreError::DeviceRevoked);
        assert_eq!(err("rplo", dsc), CoreError::DeviceSuspended);
        assert_eq!(err("rplr", copy), CoreError::DeviceSuspended);
    };
    let (c2, clock2) = core::<Embedded>();
    clock2.advance(clock.now() - clock2.now());
    for r in &journal {
        c2.apply(r);
    }
    check(&c2);
    let (c3, clock3) = core::<Embedded>();
    clock3.advance(clock.now() - clock3.now());
    for r in c2.snapshot_records() {
        c3.apply(&r);
    }
    check(&c3);
    c3.resume_device("rplo", dsc).unwrap();
    assert!(matches!(right(&c3, "rplr", copy), Verdict::Accepted { .. }));
}

/// R3: a withdrawal's transaction survives a snapshot (it can be released
/// after a restart), and a release survives replay of the journal (it counts no more).
#[test]
fn a_withdrawals_transaction_and_its_release_survive_replay() {
    let (c, clock) = core::<Embedded>();
    user(&c, "wrpl");
    let scc = card_of(&c, "wrpl", DeviceKind::Scc, b"replay card");
    let withdraw = |c: &crate::harness::Rig<Embedded>, amount_usd| {
        let (txn, ch) = begin_for(c, "wrpl", scc, Purpose::Withdrawal { amount_usd });
        let Challenge::Positions(p) = ch else {
            panic!()
        };
        let codes = card::answer(b"replay card", &Default::default(), &p).unwrap();
        let out = c.answer(txn, &codes, IP);
        assert!(matches!(out.value, Verdict::Accepted { .. }));
        (txn, out.records)
    };
    let (first, _) = withdraw(&c, 120_000);
    let (second, _) = withdraw(&c, 60_000);
    let snapshot = c.snapshot_records();
    let released = c.release_withdrawal("wrpl", second).unwrap().records;
    // Snapshot only: both count; the first is released after the restart.
    let (c2, clock2) = core::<Embedded>();
    clock2.advance(clock.now() - clock2.now());
    for r in &snapshot {
        c2.apply(r);
    }
    c2.release_withdrawal("wrpl", first).unwrap();
    assert_eq!(
        c2.release_withdrawal("wrpl", first).unwrap_err(),
        CoreError::UnknownWithdrawal
    );
    // Snapshot then the journal's release: 120K + 60K - 60K count; 80K more fits the 200K.
    let (c3, clock3) = core::<Embedded>();
    clock3.advance(clock.now() - clock3.now());
    for r in snapshot.iter().chain(&released) {
        c3.apply(r);
    }
    withdraw(&c3, 80_000);
    assert_eq!(
        c3.release_withdrawal("wrpl", second).unwrap_err(),
        CoreError::UnknownWithdrawal,
        "released before the restart"
    );
}
