//! R17, device sharing, over real QUIC against the real slsd: `ShareRequest` proven by the
//! owner's answer, each prerequisite refused with its named error, approval at once (same
//! entity) or pending compliance (same identification), `ShareDecide`, `ShareCancel`, and a
//! login with the shared card.

use std::net::{IpAddr, Ipv4Addr};

use sls_client::pipeline::Pipeline;
use sls_loadgen::daemon::{Daemon, GENEROUS_LIMITS};
use sls_loadgen::harness::{begin, begin_reply, enrol_device, login_ocra, ocra_answer};
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE as SUITE;
use sls_protocol::*;

use crate::{call, within};

const OWNER_KEY: [u8; 32] = *b"owner-card-key-0123456789abcdef!";
const OWNER_PIN: &str = "1234";
const OTHER_KEY: [u8; 32] = *b"requester-own-card-key-012345678";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 17));
/// Identification data (R17a): date of birth, citizenship, residence, document type and number.
const IDENT: &str = "1970-01-01|CH|CH|passport|X1";

/// slsd with generous rate limits. The tests speak to it as an admin, who may also do what a
/// frontend does (`Begin`, `Answer`, `Status`).
fn start() -> Daemon {
    crate::slsd(&[&GENEROUS_LIMITS[..], &["--log", "warn"]].concat())
}

/// Enrols `name` in `entity` with `identification` (R17's prerequisites compare them).
async fn user(p: &Pipeline, name: &str, entity: &str, identification: &str) {
    let m = Message::EnrolUser {
        user: name.into(),
        entity: entity.into(),
        identification: identification.into(),
        primary: true,
        equity_usd: 0,
    };
    assert_eq!(call(p, m).await, Message::Done {}, "enrol {name}");
}

/// Enrols a card of `kind` with `key` and `pin` for `name`.
async fn card(p: &Pipeline, name: &str, kind: DeviceKind, key: &[u8], pin: &str) -> DeviceId {
    within(enrol_device(p, name, kind, key, pin)).await
}

/// A login challenge for `name`'s `device`: the transaction and its numeric question.
async fn challenge(p: &Pipeline, name: &str, device: DeviceId) -> (TxnId, String) {
    match within(begin(p, name, device, IP)).await {
        (txn, Challenge::Numeric(q)) => (txn, q),
        other => panic!("a challenge for {name}'s device {device}: {other:?}"),
    }
}

/// The requester asks for the owner's card with the owner's answer to a fresh challenge of it.
async fn request(
    p: &Pipeline,
    requester: &str,
    owner: &str,
    device: DeviceId,
    key: &[u8],
    pin: &str,
) -> Message {
    let (txn, q) = challenge(p, owner, device).await;
    let m = Message::ShareRequest {
        requester: requester.into(),
        owner: owner.into(),
        device,
        txn,
        answer: ocra_answer(SUITE, key, &q, pin).unwrap(),
    };
    call(p, m).await
}

fn shared(m: &Message) -> (u32, bool) {
    match m {
        Message::ShareState { share, pending } => (*share, *pending),
        other => panic!("expected ShareState, got {other:?}"),
    }
}

fn refused(m: &Message) -> (Status, String) {
    match m {
        Message::Error { status, message } => (*status, message.clone()),
        other => panic!("expected an Error, got {other:?}"),
    }
}

async fn devices(p: &Pipeline, name: &str) -> Vec<DeviceInfo> {
    match call(p, Message::Status { user: name.into() }).await {
        Message::UserStatus { devices, .. } => devices,
        other => panic!("{other:?}"),
    }
}

async fn failures(p: &Pipeline, name: &str) -> u8 {
    match call(p, Message::Status { user: name.into() }).await {
        Message::UserStatus { failures, .. } => failures,
        other => panic!("{other:?}"),
    }
}

/// R17 (same entity): approved at once; the requester logs in with the shared copy and its own
/// card is redundant; the share survives a crash (it was durable before it was answered);
/// cancelled, the copy goes and the requester's own card comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_same_entity_is_approved_at_once_then_logs_in_and_cancel_restores() {
    let mut d = start();
    let p = d.connect(Role::Admin).await.unwrap();
    user(&p, "ann", "acme", "").await;
    user(&p, "ben", "acme", "").await;
    let dsc = card(&p, "ann", DeviceKind::DscPlus, &OWNER_KEY, OWNER_PIN).await;
    let own = card(&p, "ben", DeviceKind::DscPlus, &OTHER_KEY, "5678").await;

    let (share, pending) = shared(&request(&p, "ben", "ann", dsc, &OWNER_KEY, OWNER_PIN).await);
    assert!(!pending, "R17: same entity, approved at once");

    // The requester holds a copy of the owner's card; its own is redundant (inactive).
    let held = devices(&p, "ben").await;
    assert_eq!(held.len(), 1, "{held:?}");
    let copy = held[0].id;
    assert_eq!(held[0].kind, DeviceKind::DscPlus);
    assert!(copy != dsc && copy != own);
    assert_eq!(
        within(begin_reply(&p, "ben", own, IP)).await,
        Message::Judged {
            verdict: Verdict::Unknown
        }
    );
    // The owner keeps the card.
    assert!(devices(&p, "ann").await.iter().any(|i| i.id == dsc));

    // The share was journalled before it was answered: it survives a crash.
    d.crash(); // SIGKILL: no shutdown, no flush
    d.restart().unwrap(); // the same data directory and flags
    let p = d.connect(Role::Admin).await.unwrap();
    assert_eq!(devices(&p, "ben").await, held);

    // The requester logs in: picks the shared copy from the offered devices and answers with
    // the owner's card (its key and the owner's PIN).
    let offered = call(
        &p,
        Message::Begin {
            user: "ben".into(),
            purpose: Purpose::Login,
            device: None,
            client: IP,
        },
    )
    .await;
    match &offered {
        Message::Devices { devices } => assert!(devices.iter().any(|i| i.id == copy)),
        other => panic!("{other:?}"),
    }
    match within(login_ocra(
        &p, "ben", copy, SUITE, &OWNER_KEY, OWNER_PIN, IP,
    ))
    .await
    {
        Verdict::Accepted { device, kind, .. } => {
            assert_eq!(device, copy);
            assert_eq!(kind, DeviceKind::DscPlus);
        }
        other => panic!("a login with the shared card: {other:?}"),
    }

    // Cancelled: the copy goes, the requester's own card comes back and logs in.
    assert_eq!(
        call(&p, Message::ShareCancel { share }).await,
        Message::Done {}
    );
    let back = devices(&p, "ben").await;
    assert_eq!(back.iter().map(|i| i.id).collect::<Vec<_>>(), vec![own]);
    assert_eq!(
        within(begin_reply(&p, "ben", copy, IP)).await,
        Message::Judged {
            verdict: Verdict::Unknown
        }
    );
    assert!(matches!(
        within(login_ocra(&p, "ben", own, SUITE, &OTHER_KEY, "5678", IP)).await,
        Verdict::Accepted { .. }
    ));
    // A share is cancelled once.
    let (status, _) = refused(&call(&p, Message::ShareCancel { share }).await);
    assert_eq!(status, Status::INVALID_STATE);
}

/// R17 (different entities, same identification data): pending until compliance decides with
/// `ShareDecide`; approved, the copy appears; refused, nothing is shared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_same_identification_is_pending_until_compliance_approves_or_refuses() {
    let d = start();
    let p = d.connect(Role::Admin).await.unwrap();
    user(&p, "cat", "cat-holdings", IDENT).await;
    user(&p, "dan", "dan-trading-llc", IDENT).await;
    user(&p, "eve", "eve-family-trust", IDENT).await;
    let dsc = card(&p, "cat", DeviceKind::DscPlus, &OWNER_KEY, OWNER_PIN).await;

    // Approved by compliance.
    let (first, pending) = shared(&request(&p, "dan", "cat", dsc, &OWNER_KEY, OWNER_PIN).await);
    assert!(
        pending,
        "R17: different entities, same identification: pending"
    );
    assert!(
        devices(&p, "dan").await.is_empty(),
        "nothing is shared while pending"
    );
    let approve = Message::ShareDecide {
        share: first,
        approve: true,
    };
    assert_eq!(call(&p, approve.clone()).await, Message::Done {});
    let held = devices(&p, "dan").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert!(matches!(
        within(login_ocra(
            &p, "dan", held[0].id, SUITE, &OWNER_KEY, OWNER_PIN, IP
        ))
        .await,
        Verdict::Accepted { .. }
    ));
    // Decided once.
    assert_eq!(refused(&call(&p, approve).await).0, Status::INVALID_STATE);

    // Refused by compliance: nothing shared, and the share is over.
    let (second, pending) = shared(&request(&p, "eve", "cat", dsc, &OWNER_KEY, OWNER_PIN).await);
    assert!(pending);
    assert_ne!(second, first);
    let refuse = Message::ShareDecide {
        share: second,
        approve: false,
    };
    assert_eq!(call(&p, refuse).await, Message::Done {});
    assert!(devices(&p, "eve").await.is_empty());
    assert_eq!(
        refused(&call(&p, Message::ShareCancel { share: second }).await).0,
        Status::INVALID_STATE
    );
}

/// R17: each prerequisite, refused with its named error; nothing is shared by a refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_each_prerequisite_is_refused_with_its_named_error() {
    let d = start();
    let p = d.connect(Role::Admin).await.unwrap();
    user(&p, "own", "acme", IDENT).await;
    let dsc = card(&p, "own", DeviceKind::DscPlus, &OWNER_KEY, OWNER_PIN).await;

    // The owner's answer is wrong: OWNER_NOT_VERIFIED, and it counts as the owner's failed
    // attempt (R11), journalled like any.
    user(&p, "req", "acme", "").await;
    let (txn, q) = challenge(&p, "own", dsc).await;
    let right = ocra_answer(SUITE, &OWNER_KEY, &q, OWNER_PIN).unwrap();
    let wrong = if right == "00000000" {
        "11111111"
    } else {
        "00000000"
    };
    let m = Message::ShareRequest {
        requester: "req".into(),
        owner: "own".into(),
        device: dsc,
        txn,
        answer: wrong.into(),
    };
    assert_eq!(refused(&call(&p, m).await).0, Status::OWNER_NOT_VERIFIED);
    assert_eq!(failures(&p, "own").await, 1);
    // An answer to another device's challenge does not prove this one.
    let other = card(&p, "own", DeviceKind::DscPlus, &OTHER_KEY, OWNER_PIN).await;
    let (txn, q) = challenge(&p, "own", other).await;
    let m = Message::ShareRequest {
        requester: "req".into(),
        owner: "own".into(),
        device: dsc,
        txn,
        answer: ocra_answer(SUITE, &OTHER_KEY, &q, OWNER_PIN).unwrap(),
    };
    assert_eq!(refused(&call(&p, m).await).0, Status::OWNER_NOT_VERIFIED);

    // (a) Different entity and different identification data.
    user(&p, "stranger", "elsewhere-inc", "1980-02-02|US|US|ssn|123").await;
    let (status, text) = refused(&request(&p, "stranger", "own", dsc, &OWNER_KEY, OWNER_PIN).await);
    assert_eq!(status, Status::DIFFERENT_IDENTIFICATION);
    assert_eq!(text, "Different identification information");

    // (b) A participant has a temporary device (a temporary code, R13).
    user(&p, "temp", "acme", "").await;
    assert!(matches!(
        call(
            &p,
            Message::IssueTempCode {
                user: "temp".into()
            }
        )
        .await,
        Message::TempCodeIssued { .. }
    ));
    assert_eq!(
        refused(&request(&p, "temp", "own", dsc, &OWNER_KEY, OWNER_PIN).await).0,
        Status::TEMPORARY_DEVICE
    );

    // (c) The shared device is not the most protective physical device among the
    // participants': a DSC (level dsc) while the requester holds a DSC+ (top).
    user(&p, "low", "acme", "").await;
    let legacy = card(&p, "low", DeviceKind::Dsc, &OTHER_KEY, OWNER_PIN).await;
    user(&p, "high", "acme", "").await;
    let _ = card(&p, "high", DeviceKind::DscPlus, &OWNER_KEY, "4321").await;
    let (status, text) = refused(&request(&p, "high", "low", legacy, &OTHER_KEY, OWNER_PIN).await);
    assert_eq!(status, Status::LESS_SECURE_DEVICE);
    assert_eq!(text, "Less secure device");

    // No refusal shared anything: the requesters hold only what they held.
    for name in ["req", "stranger", "temp"] {
        let held = devices(&p, name).await;
        assert!(
            held.iter().all(|i| !i.kind.is_physical()),
            "{name}: {held:?}"
        );
    }
    let held = devices(&p, "high").await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(held[0].kind, DeviceKind::DscPlus);
    // An unknown share cannot be decided or cancelled.
    for m in [
        Message::ShareDecide {
            share: 9_999,
            approve: true,
        },
        Message::ShareCancel { share: 9_999 },
    ] {
        assert!(matches!(call(&p, m).await, Message::Error { .. }));
    }
    // A frontend may not share: the calls are the admins' (compliance's).
    let fe = d.connect(Role::Frontend).await.unwrap();
    assert_eq!(
        refused(&call(&fe, Message::ShareCancel { share: 0 }).await).0,
        Status::FORBIDDEN
    );
}
