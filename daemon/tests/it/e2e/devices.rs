//! Every device kind logs in over the wire, replays are refused, one IB Key app holds several
//! users, and no secret reaches the daemon's debug log.

use std::time::Duration;

use sls_loadgen::harness::{
    answer, approve_push, await_decision, begin, enrol, login_ocra, ocra_answer, prove_device,
};
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra;
use sls_protocol::*;

use super::{start, IP, KEY};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_device_kind_logs_in_and_replays_are_refused() {
    let mut d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();

    // DSC+ (R5), then the same answer again (R12).
    let dsc = enrol(&admin, "alice", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let (txn, Challenge::Numeric(q)) = begin(&fe, "alice", dsc, IP).await.unwrap() else {
        panic!()
    };
    let a = ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &KEY, &q, "1234").unwrap();
    assert!(matches!(
        answer(&fe, txn, &a, IP).await.unwrap(),
        Verdict::Accepted {
            kind: DeviceKind::DscPlus,
            ..
        }
    ));
    assert_eq!(answer(&fe, txn, &a, IP).await.unwrap(), Verdict::Replayed);

    // SCC (R9).
    let scc = enrol(&admin, "bob", DeviceKind::Scc, &KEY, "")
        .await
        .unwrap();
    let (txn, Challenge::Positions(p)) = begin(&fe, "bob", scc, IP).await.unwrap() else {
        panic!()
    };
    let codes = card::answer(&KEY, &CardLayout::default(), &p).unwrap();
    assert!(matches!(
        answer(&fe, txn, &codes, IP).await.unwrap(),
        Verdict::Accepted {
            kind: DeviceKind::Scc,
            ..
        }
    ));

    // Temporary code (R13).
    let Message::TempCodeIssued {
        device: tmp, code, ..
    } = admin
        .call(Message::IssueTempCode { user: "bob".into() })
        .await
        .unwrap()
    else {
        panic!()
    };
    let (txn, Challenge::Code) = begin(&fe, "bob", tmp, IP).await.unwrap() else {
        panic!()
    };
    assert!(matches!(
        answer(&fe, txn, &code, IP).await.unwrap(),
        Verdict::Accepted {
            grant: Grant {
                kind: GrantKind::Temporary,
                ..
            },
            ..
        }
    ));

    // IB Key fallback (R6): no app connected, so a typed challenge.
    let ib = enrol(&admin, "carol", DeviceKind::IbKey, &KEY, "a1b2")
        .await
        .unwrap();
    assert!(matches!(
        login_ocra(
            &fe,
            "carol",
            ib,
            ocra::IB_KEY_DEFAULT_SUITE,
            &KEY,
            "a1b2",
            IP
        )
        .await
        .unwrap(),
        Verdict::Accepted {
            kind: DeviceKind::IbKey,
            ..
        }
    ));

    // IB Key push (R6): the app connects, proves its key, receives the push, the user types
    // the number from the screen; the frontend's await returns the verdict.
    let mut app = d.connect(Role::Device).await.unwrap();
    prove_device(&app, ib, &KEY).await.unwrap();
    let (txn, Challenge::Push { number }) = begin(&fe, "carol", ib, IP).await.unwrap() else {
        panic!("push expected with the app connected")
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
        panic!()
    };
    assert_eq!((pushed, user.as_str()), (txn, "carol"));
    let v = approve_push(&app, &KEY, txn, "carol", number, &nonce)
        .await
        .unwrap();
    assert!(matches!(
        v,
        Message::Judged {
            verdict: Verdict::Accepted { .. }
        }
    ));
    match waiter.await.unwrap().unwrap() {
        Message::Judged {
            verdict: Verdict::Accepted { grant, .. },
        } => assert_eq!(grant.kind, GrantKind::TradingBiometric),
        other => panic!("{other:?}"),
    }
    // Another device's app cannot approve this user's push.
    let other = enrol(&admin, "dave", DeviceKind::IbKey, &KEY, "z9z9")
        .await
        .unwrap();
    let app2 = d.connect(Role::Device).await.unwrap();
    prove_device(&app2, other, &KEY).await.unwrap();
    let (txn, Challenge::Push { number }) = begin(&fe, "carol", ib, IP).await.unwrap() else {
        panic!()
    };
    let Some(Message::Push { nonce, .. }) = app.pushes.recv().await else {
        panic!()
    };
    let mac = push::push_mac(
        &KEY,
        txn,
        "carol",
        number,
        &nonce,
        ApprovalMethod::Pin,
        true,
    );
    assert_eq!(
        app2.call(Message::PushAnswer {
            txn,
            approve: true,
            method: ApprovalMethod::Pin,
            number,
            mac
        })
        .await
        .unwrap(),
        Message::Judged {
            verdict: Verdict::Unknown
        }
    );
    // A wrong proof is refused.
    let app3 = d.connect(Role::Device).await.unwrap();
    let Message::DeviceNonce { .. } = app3
        .call(Message::DeviceHello { device: ib })
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(matches!(
        app3.call(Message::DeviceProve { proof: [0; 32] })
            .await
            .unwrap(),
        Message::Error {
            status: Status::BAD_PROOF,
            ..
        }
    ));
    assert!(
        d.stop(Duration::from_secs(10)),
        "graceful shutdown on SIGTERM"
    );

    // No secret, PIN or answer in the daemon's debug log.
    let log = std::fs::read_to_string(&d.log).unwrap();
    for secret in [
        hex::encode(KEY),
        String::from_utf8_lossy(&KEY).into_owned(),
        a.clone(),
        code.clone(),
        "a1b2".into(),
    ] {
        assert!(
            !log.contains(&secret),
            "the log contains a secret: {secret}"
        );
    }
    assert!(log.contains("connection"), "the debug log was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_one_ib_key_app_holds_several_users() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let rae = enrol(&admin, "rae", DeviceKind::IbKey, &KEY, "1234")
        .await
        .unwrap();
    let sid = enrol(&admin, "sid", DeviceKind::IbKey, &KEY, "5678")
        .await
        .unwrap();
    let mut app = d.connect(Role::Device).await.unwrap();
    for dev in [rae, sid] {
        prove_device(&app, dev, &KEY).await.unwrap();
    }
    for (user, dev) in [("rae", rae), ("sid", sid)] {
        let (txn, Challenge::Push { number }) = begin(&fe, user, dev, IP).await.unwrap() else {
            panic!("{user}: push expected")
        };
        let Some(Message::Push {
            txn: pushed,
            user: pushed_user,
            nonce,
            ..
        }) = tokio::time::timeout(Duration::from_secs(5), app.pushes.recv())
            .await
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((pushed, pushed_user.as_str()), (txn, user));
        let mac = push::push_mac(&KEY, txn, user, number, &nonce, ApprovalMethod::Pin, true);
        let v = app
            .call(Message::PushAnswer {
                txn,
                approve: true,
                method: ApprovalMethod::Pin,
                number,
                mac,
            })
            .await
            .unwrap();
        assert!(
            matches!(v, Message::Judged { verdict: Verdict::Accepted { device, .. } } if device == dev),
            "{user}: {v:?}"
        );
    }
}
