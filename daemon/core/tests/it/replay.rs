//! The embedded store: replaying its records (journal, snapshot) rebuilds the state.

use sls_core::*;
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
