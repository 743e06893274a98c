//! The account over the wire: opting out and back in (R18, R3), the frontend's password
//! failures (R11), the sharing calls' named refusals (R17), and the roles that may not make
//! admin calls.

use sls_client::pipeline::Pipeline;
use sls_loadgen::harness::{
    begin, begin_reply, enrol, enrol_device, enrol_user, login_ocra, ocra_answer,
};
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE as SUITE;
use sls_protocol::*;

use super::super::{start, IP, KEY};
use super::{begin_without_device, judged, now_ms, refused, status, status_of, DAY_MS, NO_DEVICE};
use crate::call;

/// Enrols `name` in `entity`, primary or not.
async fn member(admin: &Pipeline, name: &str, entity: &str, primary: bool) {
    let m = Message::EnrolUser {
        user: name.into(),
        entity: entity.into(),
        identification: String::new(),
        primary,
        equity_usd: 0,
    };
    assert_eq!(call(admin, m).await, Message::Done {}, "enrol {name}");
}

fn withdrawal(amount_usd: u64) -> Purpose {
    Purpose::Withdrawal { amount_usd }
}

fn password_failed(user: &str) -> Message {
    Message::PasswordFailed {
        user: user.into(),
        client: IP,
    }
}

/// R18: `OptOut` answers `Done`; `Status` says opted out; `Begin` without a device is accepted
/// with no device and the "none" limits, and (R3) those limits add up over the day's
/// withdrawals: 50 K a day, whatever the number of withdrawals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_opt_out_over_the_wire_logs_in_without_a_device_with_the_none_limits() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    enrol(&admin, "otto", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    assert!(!status(&fe, "otto").await.3);
    let opt_out = Message::OptOut {
        user: "otto".into(),
    };
    assert_eq!(call(&admin, opt_out).await, Message::Done {});
    assert!(status(&fe, "otto").await.3, "R18: opted out");

    match begin_without_device(&fe, "otto", Purpose::Login).await {
        Message::Judged {
            verdict:
                Verdict::Accepted {
                    kind,
                    level,
                    limits,
                    grant,
                    ..
                },
        } => {
            assert_eq!(
                (kind, level, limits),
                (
                    DeviceKind::NoDevice,
                    SecurityLevel::None,
                    SecurityLevel::None.limits()
                )
            );
            assert_eq!(grant.kind, GrantKind::Session);
        }
        other => panic!("R18: logged in without a device: {other:?}"),
    }
    // R3 × R18: 50 K a day in all, not per withdrawal.
    let more = judged(Verdict::NeedsStrongerDevice {
        required: SecurityLevel::Scc,
    });
    for (amount, want_accepted) in [(30_000, true), (30_000, false), (20_000, true), (1, false)] {
        let reply = begin_without_device(&fe, "otto", withdrawal(amount)).await;
        if want_accepted {
            assert!(
                matches!(
                    reply,
                    Message::Judged {
                        verdict: Verdict::Accepted {
                            kind: DeviceKind::NoDevice,
                            ..
                        }
                    }
                ),
                "{amount}: {reply:?}"
            );
        } else {
            assert_eq!(reply, more, "{amount}: over the day's 50 K");
        }
    }
    assert_eq!(
        refused(
            &admin,
            Message::OptOut {
                user: "ghost".into()
            }
        )
        .await,
        Status::UNKNOWN_USER
    );
    assert_eq!(
        refused(
            &admin,
            Message::OptOut {
                user: "Otto".into()
            }
        )
        .await,
        Status::BAD_CHARACTER
    );
}

/// R18: `OptIn` by another user of the account is `NOT_PRIMARY_USER`, naming the primary user
/// (as is one by the primary of another account, and between users without entity data, who
/// share no account); by the primary user it is `Done`, and the user logs in with devices
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_opt_in_by_a_non_primary_user_names_the_primary_and_by_the_primary_restores_devices() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    member(&admin, "boss", "acme", true).await;
    member(&admin, "clerk", "acme", false).await;
    member(&admin, "rival", "globex", true).await;
    let dsc = enrol_device(&admin, "clerk", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let opt_out = |user: &str| Message::OptOut { user: user.into() };
    let opt_in = |user: &str, by: &str| Message::OptIn {
        user: user.into(),
        by: by.into(),
    };
    assert_eq!(call(&admin, opt_out("clerk")).await, Message::Done {});

    for by in ["clerk", "rival"] {
        match call(&admin, opt_in("clerk", by)).await {
            Message::Error { status, message } => {
                assert_eq!(status, Status::NOT_PRIMARY_USER, "by {by}");
                assert!(
                    message.contains("boss"),
                    "names the primary user: {message}"
                );
            }
            other => panic!("R18: {by} may not opt clerk in: {other:?}"),
        }
        assert!(status(&fe, "clerk").await.3, "still opted out");
    }
    // Users without entity data are each their own account.
    enrol_user(&admin, "lone").await.unwrap();
    enrol_user(&admin, "solo").await.unwrap();
    assert_eq!(call(&admin, opt_out("lone")).await, Message::Done {});
    match call(&admin, opt_in("lone", "solo")).await {
        Message::Error { status, message } => {
            assert_eq!(status, Status::NOT_PRIMARY_USER);
            assert!(message.contains("lone"), "{message}");
        }
        other => panic!("R18: solo shares no account with lone: {other:?}"),
    }
    assert_eq!(call(&admin, opt_in("lone", "lone")).await, Message::Done {});
    assert!(!status(&fe, "lone").await.3);

    // The primary user: back to devices.
    assert_eq!(
        call(&admin, opt_in("clerk", "boss")).await,
        Message::Done {}
    );
    assert!(!status(&fe, "clerk").await.3);
    match begin_without_device(&fe, "clerk", Purpose::Login).await {
        Message::Devices { devices } => {
            assert_eq!(devices.iter().map(|i| i.id).collect::<Vec<_>>(), vec![dsc]);
        }
        other => panic!("back to devices: {other:?}"),
    }
    assert!(matches!(
        login_ocra(&fe, "clerk", dsc, SUITE, &KEY, "1234", IP)
            .await
            .unwrap(),
        Verdict::Accepted {
            kind: DeviceKind::DscPlus,
            ..
        }
    ));

    for (m, want) in [
        (opt_in("clerk", "ghost"), Status::UNKNOWN_USER),
        (opt_in("ghost", "boss"), Status::UNKNOWN_USER),
        (opt_in("Clerk", "boss"), Status::BAD_CHARACTER),
        (opt_in("clerk", "Boss"), Status::BAD_CHARACTER),
    ] {
        assert_eq!(refused(&admin, m.clone()).await, want, "{m:?}");
    }
}

/// R11: `PasswordFailed` counts down `rejected {9}` .. `{1}`, as `Status` shows; the 10th
/// answers `locked` until 24 h after it, and `Status` and `Begin` (with a device or without)
/// report that lock; a failure while locked is refused without extending it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_password_failed_over_the_wire_counts_down_and_locks_after_ten() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let dsc = enrol(&admin, "pam", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    for left in (1..=9).rev() {
        assert_eq!(
            call(&fe, password_failed("pam")).await,
            judged(Verdict::Rejected {
                failures_left: left
            })
        );
        assert_eq!(
            status(&fe, "pam").await,
            (0, 10 - left, left, false, vec![dsc])
        );
    }
    let t0 = now_ms();
    let reply = call(&fe, password_failed("pam")).await;
    let t1 = now_ms();
    let Message::Judged {
        verdict: Verdict::Locked { until_ms },
    } = reply
    else {
        panic!("the 10th failure locks: {reply:?}")
    };
    assert!(
        (t0 + DAY_MS..=t1 + DAY_MS).contains(&until_ms),
        "24 h after the last failure: {until_ms} vs {t0}..{t1}"
    );
    let locked = judged(Verdict::Locked { until_ms });
    assert_eq!(
        status(&fe, "pam").await,
        (until_ms, 10, 0, false, vec![dsc])
    );
    assert_eq!(begin_reply(&fe, "pam", dsc, IP).await.unwrap(), locked);
    assert_eq!(
        begin_without_device(&fe, "pam", Purpose::Login).await,
        locked
    );
    // R11's choice: refused while locked, and the lock is not extended.
    assert_eq!(call(&fe, password_failed("pam")).await, locked);
    assert_eq!(status(&fe, "pam").await.0, until_ms);
    // R10.
    assert_eq!(
        refused(&fe, password_failed("Pam")).await,
        Status::BAD_CHARACTER
    );
}

/// R11: a successful login resets the count the password failures made: the next failure
/// answers `rejected {9}` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_a_success_resets_the_password_failure_count() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let dsc = enrol(&admin, "sam", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    for left in [9, 8] {
        assert_eq!(
            call(&fe, password_failed("sam")).await,
            judged(Verdict::Rejected {
                failures_left: left
            })
        );
    }
    assert!(matches!(
        login_ocra(&fe, "sam", dsc, SUITE, &KEY, "1234", IP)
            .await
            .unwrap(),
        Verdict::Accepted { .. }
    ));
    assert_eq!(status(&fe, "sam").await.1, 0);
    assert_eq!(
        call(&fe, password_failed("sam")).await,
        judged(Verdict::Rejected { failures_left: 9 })
    );
}

/// R17's refusals before the owner's answer is judged, each with its status in the documented
/// order (R10 names, users, the device), and the share calls on a share that never existed or
/// is no longer pending. None of them spends the owner's challenge: its right answer then
/// shares the card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_share_calls_answer_their_named_status() {
    let d = start();
    let p = d.connect(Role::Admin).await.unwrap();
    member(&p, "own", "acme", true).await;
    member(&p, "req", "acme", false).await;
    let dsc = enrol_device(&p, "own", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    // Not shareable: an IB Key (not physical, R8) and an ordered card (not active).
    let ib = enrol_device(&p, "own", DeviceKind::IbKey, &KEY, "a1b2")
        .await
        .unwrap();
    let Message::Enrolled { device: ordered } = call(
        &p,
        Message::OrderReplacement {
            user: "own".into(),
            secret: KEY.to_vec(),
            pin: "5678".into(),
        },
    )
    .await
    else {
        panic!("ordered")
    };
    let theirs = enrol(&p, "third", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();

    let (txn, Challenge::Numeric(q)) = begin(&p, "own", dsc, IP).await.unwrap() else {
        panic!("the owner's challenge")
    };
    let right = ocra_answer(SUITE, &KEY, &q, "1234").unwrap();
    let request = |requester: &str, owner: &str, device| Message::ShareRequest {
        requester: requester.into(),
        owner: owner.into(),
        device,
        txn,
        answer: right.clone(),
    };
    for (m, want, why) in [
        (
            request("Req", "own", dsc),
            Status::BAD_CHARACTER,
            "R10 requester",
        ),
        (
            request("req", "Own", dsc),
            Status::BAD_CHARACTER,
            "R10 owner",
        ),
        (
            request("ghost", "own", dsc),
            Status::UNKNOWN_USER,
            "requester",
        ),
        (request("req", "ghost", dsc), Status::UNKNOWN_USER, "owner"),
        (
            request("req", "own", NO_DEVICE),
            Status::UNKNOWN_DEVICE,
            "none",
        ),
        (
            request("req", "own", theirs),
            Status::UNKNOWN_DEVICE,
            "another's",
        ),
        (
            request("req", "own", ib),
            Status::INVALID_STATE,
            "not physical",
        ),
        (
            request("req", "own", ordered),
            Status::INVALID_STATE,
            "not active",
        ),
    ] {
        assert_eq!(refused(&p, m).await, want, "ShareRequest: {why}");
    }
    assert_eq!(status(&p, "own").await.1, 0, "no failure counted");
    // The challenge is still open: its right answer shares the card (same entity: at once).
    let share = match call(&p, request("req", "own", dsc)).await {
        Message::ShareState {
            share,
            pending: false,
        } => share,
        other => panic!("shared at once: {other:?}"),
    };
    let decide = |share, approve| Message::ShareDecide { share, approve };
    assert_eq!(
        refused(&p, decide(share, true)).await,
        Status::INVALID_STATE,
        "approved, not pending"
    );
    let unknown = share + 1_000;
    assert_eq!(
        refused(&p, decide(unknown, false)).await,
        Status::UNKNOWN_DEVICE
    );
    assert_eq!(
        refused(&p, Message::ShareCancel { share: unknown }).await,
        Status::UNKNOWN_DEVICE
    );
}

/// Every admin message is `FORBIDDEN` to a frontend certificate and to an IB Key app, and a
/// forbidden call changes nothing: the lock stays, the user stays opted in with the same
/// devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_messages_are_forbidden_to_frontends_and_apps_and_change_nothing() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let app = d.connect(Role::Device).await.unwrap();
    let dsc = enrol(&admin, "fay", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    for _ in 0..10 {
        call(&fe, password_failed("fay")).await;
    }
    let before = status(&fe, "fay").await;
    assert!(before.0 > 0, "locked");
    let user = || String::from("fay");
    let admin_calls = [
        Message::EnrolUser {
            user: "newbie".into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        },
        Message::EnrolDevice {
            user: user(),
            kind: DeviceKind::Scc,
            secret: KEY.to_vec(),
            pin: String::new(),
            suite: String::new(),
        },
        Message::EnrolBulk {
            records: vec![BulkRecord {
                user: user(),
                kind: DeviceKind::Scc,
                secret: KEY.to_vec(),
                pin: String::new(),
                suite: String::new(),
            }],
        },
        Message::IssueTempCode { user: user() },
        Message::IssueOnlineScc { user: user() },
        Message::Reactivate {
            user: user(),
            device: dsc,
        },
        Message::OrderReplacement {
            user: user(),
            secret: KEY.to_vec(),
            pin: "5678".into(),
        },
        Message::Ship {
            user: user(),
            device: dsc,
        },
        Message::Activate {
            user: user(),
            device: dsc,
        },
        Message::ShareRequest {
            requester: "newbie".into(),
            owner: user(),
            device: dsc,
            txn: TxnId(1),
            answer: "12345678".into(),
        },
        Message::ShareDecide {
            share: 1,
            approve: true,
        },
        Message::ShareCancel { share: 1 },
        Message::OptOut { user: user() },
        Message::OptIn {
            user: user(),
            by: user(),
        },
        Message::Unlock { user: user() },
        Message::GetStats {},
        Message::ActivationStart {
            user: user(),
            phone: "41791234567".into(),
        },
        Message::ActivateIbKey {
            user: user(),
            token: "12345678".into(),
            key: KEY.to_vec(),
            pin: "a1b2".into(),
        },
    ];
    for (who, pipe) in [("a frontend", &fe), ("an IB Key app", &app)] {
        for m in &admin_calls {
            assert_eq!(
                status_of(&call(pipe, m.clone()).await),
                Status::FORBIDDEN,
                "{who}: {m:?}"
            );
        }
    }
    assert_eq!(status(&fe, "fay").await, before, "nothing changed");
    // Nor was the new user enrolled: the admin enrols it now.
    enrol_user(&admin, "newbie").await.unwrap();
}
