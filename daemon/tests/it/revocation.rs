//! The device's life over real QUIC against the real slsd (protocol version 3): a lost DSC+ revoked by
//! client services answers `DEVICE_REVOKED` on its next use, and so does the share copy of it
//! (R17); its open challenge is void; the user keeps a temporary code (R13); a suspended card
//! comes back with `ResumeDevice`; the revocation survives a SIGKILL and restart.

use std::net::{IpAddr, Ipv4Addr};

use sls_loadgen::daemon::{Daemon, GENEROUS_LIMITS};
use sls_loadgen::harness::ocra_answer;
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE as SUITE;
use sls_protocol::*;

use crate::call;

const KEY: [u8; 32] = *b"lost-card-key-0123456789abcdef!!";
const PIN: &str = "1234";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 29));
const LOST: u8 = 1;

fn start() -> Daemon {
    crate::slsd(&[&GENEROUS_LIMITS[..], &["--log", "warn"]].concat())
}

async fn done(p: &sls_client::pipeline::Pipeline, m: Message) {
    let what = format!("{m:?}");
    assert_eq!(call(p, m).await, Message::Done {}, "{what}");
}

fn begin_msg(user: &str, device: Option<DeviceId>) -> Message {
    Message::Begin {
        user: user.into(),
        purpose: Purpose::Login,
        device,
        client: IP,
    }
}

/// The status of an `Error` answer.
fn status_of(m: &Message) -> Status {
    match m {
        Message::Error { status, .. } => *status,
        other => panic!("expected an Error, got {other:?}"),
    }
}

async fn challenge(p: &sls_client::pipeline::Pipeline, user: &str, d: DeviceId) -> (TxnId, String) {
    match call(p, begin_msg(user, Some(d))).await {
        Message::ChallengeIssued {
            txn,
            challenge: Challenge::Numeric(q),
            ..
        } => (txn, q),
        other => panic!("a challenge for {user}'s {d}: {other:?}"),
    }
}

async fn judged(p: &sls_client::pipeline::Pipeline, txn: TxnId, response: &str) -> Verdict {
    let m = Message::Answer {
        txn,
        response: response.into(),
        client: IP,
    };
    match call(p, m).await {
        Message::Judged { verdict } => verdict,
        other => panic!("{other:?}"),
    }
}

async fn offered(p: &sls_client::pipeline::Pipeline, user: &str) -> Vec<DeviceId> {
    match call(p, begin_msg(user, None)).await {
        Message::Devices { devices } => devices.iter().map(|d| d.id).collect(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_dsc_plus_and_its_share_copy_answer_revoked_on_next_use() {
    let mut d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    for (name, entity) in [("lena", "acme"), ("lars", "acme")] {
        let m = Message::EnrolUser {
            user: name.into(),
            entity: entity.into(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        };
        done(&admin, m).await;
    }
    let card = match call(
        &admin,
        Message::EnrolDevice {
            user: "lena".into(),
            kind: DeviceKind::DscPlus,
            secret: KEY.to_vec(),
            pin: PIN.into(),
            suite: String::new(),
        },
    )
    .await
    {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    };
    // lars shares lena's card (same entity: approved at once, R17).
    let (txn, q) = challenge(&admin, "lena", card).await;
    let share = Message::ShareRequest {
        requester: "lars".into(),
        owner: "lena".into(),
        device: card,
        txn,
        answer: ocra_answer(SUITE, &KEY, &q, PIN).unwrap(),
    };
    assert!(matches!(
        call(&admin, share).await,
        Message::ShareState { pending: false, .. }
    ));
    let copy = offered(&admin, "lars").await[0];
    let (txn, q) = challenge(&admin, "lars", copy).await;
    assert!(matches!(
        judged(&admin, txn, &ocra_answer(SUITE, &KEY, &q, PIN).unwrap()).await,
        Verdict::Accepted { .. }
    ));

    // A challenge left open, then the card is reported lost.
    let (open, q) = challenge(&admin, "lena", card).await;
    let revoke = Message::RevokeDevice {
        user: "lena".into(),
        device: card,
        suspend: false,
        reason: LOST,
    };
    done(&admin, revoke.clone()).await;
    let fe = d.connect(Role::Frontend).await.unwrap();
    for (user, device) in [("lena", card), ("lars", copy)] {
        let got = call(&fe, begin_msg(user, Some(device))).await;
        assert_eq!(status_of(&got), Status::DEVICE_REVOKED, "{user}");
    }
    assert!(offered(&fe, "lena").await.is_empty());
    assert!(offered(&fe, "lars").await.is_empty());
    assert_eq!(
        judged(&fe, open, &ocra_answer(SUITE, &KEY, &q, PIN).unwrap()).await,
        Verdict::Expired,
        "the open challenge is void"
    );
    // For good: not again, not resumed, not reactivated.
    assert_eq!(
        status_of(&call(&admin, revoke).await),
        Status::DEVICE_REVOKED
    );
    let resume = Message::ResumeDevice {
        user: "lena".into(),
        device: card,
    };
    assert_eq!(
        status_of(&call(&admin, resume).await),
        Status::DEVICE_REVOKED
    );
    let reactivate = Message::Reactivate {
        user: "lena".into(),
        device: card,
    };
    assert_eq!(
        status_of(&call(&admin, reactivate).await),
        Status::DEVICE_REVOKED
    );
    // Interim access (R13).
    let (temp, code) = match call(
        &admin,
        Message::IssueTempCode {
            user: "lena".into(),
        },
    )
    .await
    {
        Message::TempCodeIssued { device, code, .. } => (device, code),
        other => panic!("{other:?}"),
    };
    let txn = match call(&fe, begin_msg("lena", Some(temp))).await {
        Message::ChallengeIssued { txn, .. } => txn,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        judged(&fe, txn, &code).await,
        Verdict::Accepted { .. }
    ));

    // Durable: after a SIGKILL and restart, still revoked, the copy too.
    drop((admin, fe));
    d.restart().unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    for (user, device) in [("lena", card), ("lars", copy)] {
        assert_eq!(
            status_of(&call(&fe, begin_msg(user, Some(device))).await),
            Status::DEVICE_REVOKED,
            "{user} after restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_card_answers_suspended_until_resumed() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let m = Message::EnrolUser {
        user: "sven".into(),
        entity: String::new(),
        identification: String::new(),
        primary: true,
        equity_usd: 0,
    };
    done(&admin, m).await;
    let card = match call(
        &admin,
        Message::EnrolDevice {
            user: "sven".into(),
            kind: DeviceKind::DscPlus,
            secret: KEY.to_vec(),
            pin: PIN.into(),
            suite: String::new(),
        },
    )
    .await
    {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    };
    let suspend = Message::RevokeDevice {
        user: "sven".into(),
        device: card,
        suspend: true,
        reason: 3,
    };
    done(&admin, suspend).await;
    assert_eq!(
        status_of(&call(&admin, begin_msg("sven", Some(card))).await),
        Status::DEVICE_SUSPENDED
    );
    let bad_reason = Message::RevokeDevice {
        user: "sven".into(),
        device: card,
        suspend: false,
        reason: 9,
    };
    assert_eq!(
        status_of(&call(&admin, bad_reason).await),
        Status::INVALID_CREDENTIAL
    );
    done(
        &admin,
        Message::ResumeDevice {
            user: "sven".into(),
            device: card,
        },
    )
    .await;
    let (txn, q) = challenge(&admin, "sven", card).await;
    assert!(matches!(
        judged(&admin, txn, &ocra_answer(SUITE, &KEY, &q, PIN).unwrap()).await,
        Verdict::Accepted { .. }
    ));
}

/// The shared-copy repro over the wire (R17, R16): owner DSC+, requester SCC, one entity; the
/// share is approved; the owner's replacement is ordered, shipped and activated: the
/// requester's copy of the old card is refused from then on, its open challenge too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_copy_is_refused_once_the_owners_replacement_activates() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    for name in ["olga", "otto"] {
        let m = Message::EnrolUser {
            user: name.into(),
            entity: "globex".into(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        };
        done(&admin, m).await;
    }
    let enrol = |user: &str, kind, secret: &[u8], pin: &str| Message::EnrolDevice {
        user: user.into(),
        kind,
        secret: secret.to_vec(),
        pin: pin.into(),
        suite: String::new(),
    };
    let card = match call(&admin, enrol("olga", DeviceKind::DscPlus, &KEY, PIN)).await {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    };
    let own = enrol("otto", DeviceKind::Scc, b"otto's own card", "");
    assert!(matches!(call(&admin, own).await, Message::Enrolled { .. }));
    let (txn, q) = challenge(&admin, "olga", card).await;
    let share = Message::ShareRequest {
        requester: "otto".into(),
        owner: "olga".into(),
        device: card,
        txn,
        answer: ocra_answer(SUITE, &KEY, &q, PIN).unwrap(),
    };
    assert!(matches!(
        call(&admin, share).await,
        Message::ShareState { pending: false, .. }
    ));
    let copy = offered(&admin, "otto").await[0];
    let (open, q) = challenge(&admin, "otto", copy).await;
    let order = Message::OrderReplacement {
        user: "olga".into(),
        secret: b"olga's replacement card key 0123".to_vec(),
        pin: "5678".into(),
    };
    let new = match call(&admin, order).await {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    };
    for m in [
        Message::Ship {
            user: "olga".into(),
            device: new,
        },
        Message::Activate {
            user: "olga".into(),
            device: new,
        },
    ] {
        done(&admin, m).await;
    }
    assert_eq!(
        judged(&admin, open, &ocra_answer(SUITE, &KEY, &q, PIN).unwrap()).await,
        Verdict::Expired,
        "the old card's OCRA is refused through the copy"
    );
    assert_eq!(
        call(&admin, begin_msg("otto", Some(copy))).await,
        Message::Judged {
            verdict: Verdict::Unknown
        }
    );
    assert!(!offered(&admin, "otto").await.contains(&copy));
}
