//! IB Key activation and recovery over the wire (R22): the token by SMS, the key registered,
//! the app proving it and approving a push; what activation ends (R1 SMS, R15 temporary
//! devices); and each refusal with its status.

use std::time::Duration;

use sls_loadgen::harness::{
    approve_push, await_decision, begin, begin_reply, enrol_device, enrol_user, login_ocra,
    prove_device,
};
use sls_protocol::ocra::IB_KEY_DEFAULT_SUITE;
use sls_protocol::*;

use super::super::{start, IP, KEY};
use super::{enrolled, judged, refused, status, temp_code, NEW_KEY};
use crate::call;

/// An international number: digits only, no trunk prefix (R22).
const PHONE: &str = "41791234567";

/// R22: `ActivationStart` answers an 8-digit token; `ActivateIbKey` with it answers `Enrolled`;
/// the token is spent; the SMS device ends (R1) and the temporary code stops (R15); the app
/// proves the key on the device ALPN and a push is approved. Recovery: the same flow with a new
/// key replaces the old IB Key, whose key no longer proves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_activate_ib_key_over_the_wire_then_the_app_proves_the_key_and_a_push_works() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    enrol_user(&admin, "ivan").await.unwrap();
    let sms = enrol_device(&admin, "ivan", DeviceKind::Sms, &KEY, "")
        .await
        .unwrap();
    let (tmp, _) = temp_code(&admin, "ivan").await;
    let start_activation = || {
        call(
            &admin,
            Message::ActivationStart {
                user: "ivan".into(),
                phone: PHONE.into(),
            },
        )
    };
    let Message::ActivationToken { token } = start_activation().await else {
        panic!("a token")
    };
    assert!(
        token.len() == 8 && token.bytes().all(|b| b.is_ascii_digit()),
        "§5.5: 8 digits: {token}"
    );
    let activate = |token: &str, key: &[u8], pin: &str| Message::ActivateIbKey {
        user: "ivan".into(),
        token: token.into(),
        key: key.to_vec(),
        pin: pin.into(),
    };
    let ib = enrolled(&call(&admin, activate(&token, &KEY, "a1b2")).await);
    assert_eq!(
        refused(&admin, activate(&token, &KEY, "a1b2")).await,
        Status::BAD_TOKEN,
        "a token is used once"
    );
    for (dev, what) in [(sms, "R1: SMS ends"), (tmp, "R15")] {
        assert_eq!(
            begin_reply(&fe, "ivan", dev, IP).await.unwrap(),
            judged(Verdict::Unknown),
            "{what}"
        );
    }
    assert_eq!(status(&fe, "ivan").await.4, vec![ib]);

    // The app proves the registered key, then receives the push and approves it.
    let mut app = d.connect(Role::Device).await.unwrap();
    prove_device(&app, ib, &KEY).await.unwrap();
    let (txn, Challenge::Push { number }) = begin(&fe, "ivan", ib, IP).await.unwrap() else {
        panic!("a push with the app connected")
    };
    let waiter = await_decision(&fe, txn, 10_000);
    let Some(Message::Push {
        txn: pushed,
        user,
        nonce,
        ..
    }) = tokio::time::timeout(Duration::from_secs(5), app.pushes.recv())
        .await
        .unwrap()
    else {
        panic!("the push")
    };
    assert_eq!((pushed, user.as_str()), (txn, "ivan"));
    assert!(matches!(
        approve_push(&app, &KEY, txn, "ivan", number, &nonce).await.unwrap(),
        Message::Judged {
            verdict: Verdict::Accepted { device, .. }
        } if device == ib
    ));
    assert!(matches!(
        waiter.await.unwrap().unwrap(),
        Message::Judged {
            verdict: Verdict::Accepted {
                kind: DeviceKind::IbKey,
                ..
            }
        }
    ));

    // Recovery after a reinstall (R22): the same token flow registers the new key.
    let Message::ActivationToken { token } = start_activation().await else {
        panic!("a token")
    };
    let recovered = enrolled(&call(&admin, activate(&token, &NEW_KEY, "b2c3")).await);
    assert_ne!(recovered, ib);
    assert_eq!(
        begin_reply(&fe, "ivan", ib, IP).await.unwrap(),
        judged(Verdict::Unknown),
        "the old IB Key is replaced"
    );
    assert_eq!(status(&fe, "ivan").await.4, vec![recovered]);
    let stale = d.connect(Role::Device).await.unwrap();
    assert!(
        prove_device(&stale, ib, &KEY).await.is_err(),
        "the old key proves nothing"
    );
    // The recovered key answers the fallback (no app has proven it: a typed challenge).
    assert!(matches!(
        login_ocra(
            &fe,
            "ivan",
            recovered,
            IB_KEY_DEFAULT_SUITE,
            &NEW_KEY,
            "b2c3",
            IP
        )
        .await
        .unwrap(),
        Verdict::Accepted { device, .. } if device == recovered
    ));
}

/// R22's refusals: a phone number that is not digits only or has a trunk prefix is `BAD_PHONE`;
/// a token never started, or wrong, is `BAD_TOKEN`; an R7 PIN is `INVALID_PIN`; an unknown
/// user `UNKNOWN_USER`, an R10 name `BAD_CHARACTER`. None of them enrols a device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r22_activation_refuses_bad_phones_bad_tokens_and_bad_pins() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    enrol_user(&admin, "hugo").await.unwrap();
    let start_activation = |user: &str, phone: &str| Message::ActivationStart {
        user: user.into(),
        phone: phone.into(),
    };
    for phone in [
        "0791234567",
        "+41791234567",
        "41 79 123 45 67",
        "4179123456x",
    ] {
        assert_eq!(
            refused(&admin, start_activation("hugo", phone)).await,
            Status::BAD_PHONE,
            "{phone:?}"
        );
    }
    assert_eq!(
        refused(&admin, start_activation("ghost", PHONE)).await,
        Status::UNKNOWN_USER
    );
    assert_eq!(
        refused(&admin, start_activation("Hugo", PHONE)).await,
        Status::BAD_CHARACTER
    );

    let activate = |user: &str, token: &str, pin: &str| Message::ActivateIbKey {
        user: user.into(),
        token: token.into(),
        key: KEY.to_vec(),
        pin: pin.into(),
    };
    assert_eq!(
        refused(&admin, activate("hugo", "12345678", "a1b2")).await,
        Status::BAD_TOKEN,
        "no activation started"
    );
    let Message::ActivationToken { token } = call(&admin, start_activation("hugo", PHONE)).await
    else {
        panic!("a token")
    };
    let wrong = if token == "12345678" {
        "87654321"
    } else {
        "12345678"
    };
    assert_eq!(
        refused(&admin, activate("hugo", wrong, "a1b2")).await,
        Status::BAD_TOKEN
    );
    assert_eq!(
        refused(&admin, activate("hugo", &token, "a1")).await,
        Status::INVALID_PIN,
        "R7: 4 to 6 characters"
    );
    // A token is the user's own: another user's, started for that user, is refused.
    enrol_user(&admin, "iris").await.unwrap();
    let Message::ActivationToken { token: hers } =
        call(&admin, start_activation("iris", PHONE)).await
    else {
        panic!("a token")
    };
    if hers != token {
        assert_eq!(
            refused(&admin, activate("iris", &token, "a1b2")).await,
            Status::BAD_TOKEN
        );
    }
    assert_eq!(
        refused(&admin, activate("ghost", &token, "a1b2")).await,
        Status::UNKNOWN_USER
    );
    assert_eq!(
        refused(&admin, activate("Hugo", &token, "a1b2")).await,
        Status::BAD_CHARACTER
    );
    for user in ["hugo", "iris"] {
        assert_eq!(
            status(&admin, user).await.4,
            vec![],
            "{user}: nothing enrolled"
        );
    }
}
