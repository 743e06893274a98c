//! R17: device sharing, its prerequisites by name, compliance, cancel.

use sls_engine::*;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r17_sharing_same_entity_is_approved_at_once_and_cancel_restores<K: Kind>() {
    let (c, _) = core::<K>();
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
    let status = c.status("reqa").unwrap();
    assert_eq!(status.devices.len(), 1);
    let copy = status.devices[0].id;
    assert_eq!(status.devices[0].kind, DeviceKind::DscPlus);
    assert!(matches!(right(&c, "reqa", copy), Verdict::Accepted { .. }));
    assert_eq!(begin_verdict(&c, "reqa", own_scc), Verdict::Unknown);
    // The device list names the copy's source (R17), and only the copy's.
    let listed = K::block_on(c.core.list_devices("reqa")).unwrap();
    let from: Vec<(DeviceId, Option<(String, DeviceId)>)> =
        listed.into_iter().map(|d| (d.id, d.shared_from)).collect();
    assert_eq!(
        from,
        vec![(own_scc, None), (copy, Some(("owna".to_string(), dsc)))]
    );
    let owners = K::block_on(c.core.list_devices("owna")).unwrap();
    assert!(owners.iter().all(|d| d.shared_from.is_none()));
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

pub fn r17_same_identification_waits_for_compliance<K: Kind>() {
    let (c, _) = core::<K>();
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
        c.status("reqb").unwrap().devices.is_empty(),
        "nothing shared while pending"
    );
    c.share_decide(share, true).unwrap();
    assert_eq!(c.status("reqb").unwrap().devices.len(), 1);
    assert!(c.share_decide(share, true).is_err(), "decided once");
}

pub fn r17_the_three_prerequisites_and_their_named_errors<K: Kind>() {
    let (c, _) = core::<K>();
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

pub fn r17_a_wrong_owner_answer_is_refused_and_counts<K: Kind>() {
    let (c, _) = core::<K>();
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
    assert_eq!(c.status("owng").unwrap().failures, 1);
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

pub fn r17_compliance_lists_the_live_shares_page_by_page<K: Kind>() {
    let (c, _) = core::<K>();
    let ident = "1970-01-01|CH|CH|passport|X7";
    person(&c, "owlc", "acme", "");
    person(&c, "rqlc", "acme", "");
    person(&c, "owld", "d-llc", ident);
    person(&c, "rqld", "e-llc", ident);
    person(&c, "rqle", "f-llc", ident);
    let dsc_c = card_of(&c, "owlc", DeviceKind::DscPlus, &KEY);
    let dsc_d = card_of(&c, "owld", DeviceKind::DscPlus, &KEY);
    let ask = |req: &str, owner: &str, dsc: DeviceId| {
        let (txn, a) = owner_answer(&c, owner, dsc);
        c.share_request(req, owner, dsc, txn, &a, IP)
            .unwrap()
            .value
            .unwrap()
    };
    let (s1, p1) = ask("rqlc", "owlc", dsc_c);
    let (s2, p2) = ask("rqld", "owld", dsc_d);
    let (s3, p3) = ask("rqle", "owld", dsc_d);
    assert_eq!((p1, p2, p3), (false, true, true));
    let list = |pending_only: bool, after: u32, max: usize| {
        let page = K::block_on(c.core.list_shares(pending_only, after, max)).unwrap();
        let seen: Vec<(u32, String, String, DeviceId, u8)> = page
            .shares
            .into_iter()
            .map(|(id, s)| (id, s.requester, s.owner, DeviceId(s.device), s.state))
            .collect();
        (seen, page.next)
    };
    let row = |id: u32, r: &str, o: &str, d: DeviceId, state: u8| {
        (id, r.to_string(), o.to_string(), d, state)
    };
    let (all, next) = list(false, 0, 64);
    assert_eq!(
        all,
        vec![
            row(s1, "rqlc", "owlc", dsc_c, sls_core::share::APPROVED),
            row(s2, "rqld", "owld", dsc_d, sls_core::share::PENDING),
            row(s3, "rqle", "owld", dsc_d, sls_core::share::PENDING),
        ]
    );
    assert_eq!(next, None, "nothing follows");
    let (pending, _) = list(true, 0, 64);
    assert_eq!(
        pending.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![s2, s3],
        "pending only: compliance's queue"
    );
    // Page by page: one share a page, each page saying where the next starts.
    let (page, next) = list(false, 0, 1);
    assert_eq!((page.len(), page[0].0, next), (1, s1, Some(s1)));
    let (page, next) = list(false, s1, 1);
    assert_eq!((page.len(), page[0].0, next), (1, s2, Some(s2)));
    let (page, next) = list(false, s2, 1);
    assert_eq!((page.len(), page[0].0, next), (1, s3, None));
    // Refused and cancelled shares are over: no longer listed.
    c.share_decide(s3, false).unwrap();
    c.share_cancel(s1).unwrap();
    let (all, next) = list(false, 0, 64);
    assert_eq!(
        all,
        vec![row(s2, "rqld", "owld", dsc_d, sls_core::share::PENDING)]
    );
    assert_eq!(next, None);
}
