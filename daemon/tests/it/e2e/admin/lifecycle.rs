//! The device lifecycle as client services drive it, over the wire: the Online SCC (R14),
//! reactivation (R15) and the replacement DSC+ (R16, R20), each seen through the logins it
//! allows or stops; and each call's refusals.

use sls_client::pipeline::Pipeline;
use sls_loadgen::harness::{answer, begin, begin_reply, enrol, enrol_user, login_ocra};
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE;
use sls_protocol::*;

use super::super::{start, IP, KEY};
use super::{
    begin_without_device, enrolled, judged, now_ms, refused, sorted, status, temp_code, DAY_MS,
    NEW_KEY, NO_DEVICE,
};
use crate::call;

/// `IssueOnlineScc` for `user` (R14): the device, the card's secret and its expiry.
async fn online_scc(admin: &Pipeline, user: &str) -> (DeviceId, Vec<u8>, u64) {
    match call(admin, Message::IssueOnlineScc { user: user.into() }).await {
        Message::OnlineSccIssued {
            device,
            secret,
            expires_at_ms,
        } => (device, secret, expires_at_ms),
        other => panic!("an Online SCC for {user}: {other:?}"),
    }
}

/// The ids in a `Devices` answer.
fn offered(m: &Message) -> Vec<DeviceId> {
    match m {
        Message::Devices { devices } => sorted(devices.iter().map(|i| i.id).collect()),
        other => panic!("Devices expected, got {other:?}"),
    }
}

/// R14: `IssueOnlineScc` answers the card's secret and an expiry 21 days away; the grid printed
/// from the secret logs in, with a temporary grant that lasts until that expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r14_issue_online_scc_over_the_wire_logs_in_with_its_grid_for_21_days() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    enrol_user(&admin, "olga").await.unwrap();
    let t0 = now_ms();
    let (scc, secret, expires_at_ms) = online_scc(&admin, "olga").await;
    let t1 = now_ms();
    assert!(
        (t0 + 21 * DAY_MS..=t1 + 21 * DAY_MS).contains(&expires_at_ms),
        "R14: 21 days from issue: {expires_at_ms} vs {t0}..{t1}"
    );
    assert_eq!(status(&fe, "olga").await.4, vec![scc]);

    let (txn, Challenge::Positions(p)) = begin(&fe, "olga", scc, IP).await.unwrap() else {
        panic!("an Online SCC is answered by index positions (R9)")
    };
    let codes = card::answer(&secret, &CardLayout::default(), &p).unwrap();
    match answer(&fe, txn, &codes, IP).await.unwrap() {
        Verdict::Accepted {
            device,
            kind,
            level,
            limits,
            grant,
        } => {
            assert_eq!(
                (device, kind, level, limits),
                (
                    scc,
                    DeviceKind::OnlineScc,
                    SecurityLevel::Scc,
                    SecurityLevel::Scc.limits()
                )
            );
            assert_eq!(grant.kind, GrantKind::Temporary);
            // Valid until the card expires, not beyond.
            let left = u64::from(grant.valid_secs) * 1000;
            assert!(left <= expires_at_ms - t0, "{left} ms");
            assert!(left + 60_000 >= expires_at_ms - now_ms(), "{left} ms");
        }
        other => panic!("the printed grid logs in: {other:?}"),
    }
}

/// R15: `Reactivate` of the permanent device answers `Done`, and at once the temporary code and
/// the Online SCC stop: an open challenge of the code is no longer accepted, neither gives a
/// challenge, neither is listed; the reactivated card logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r15_reactivate_over_the_wire_voids_the_temporary_code_and_the_online_scc() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let dsc = enrol(&admin, "rita", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let (tmp, code) = temp_code(&admin, "rita").await;
    let (scc, _, _) = online_scc(&admin, "rita").await;
    assert_eq!(
        status(&fe, "rita").await.4,
        sorted(vec![dsc, tmp, scc]),
        "all three usable before"
    );
    let (open, Challenge::Code) = begin(&fe, "rita", tmp, IP).await.unwrap() else {
        panic!("the temporary code's challenge")
    };
    let (_, Challenge::Positions(_)) = begin(&fe, "rita", scc, IP).await.unwrap() else {
        panic!("the Online SCC's challenge")
    };

    let reactivate = Message::Reactivate {
        user: "rita".into(),
        device: dsc,
    };
    assert_eq!(call(&admin, reactivate).await, Message::Done {});

    // At once: the right code to the challenge opened before is refused ...
    let v = answer(&fe, open, &code, IP).await.unwrap();
    assert!(
        !matches!(v, Verdict::Accepted { .. }),
        "R15: the temporary code stopped: {v:?}"
    );
    // ... and neither temporary device is a device to log in with any more.
    for dev in [tmp, scc] {
        assert_eq!(
            begin_reply(&fe, "rita", dev, IP).await.unwrap(),
            judged(Verdict::Unknown),
            "device {dev}"
        );
    }
    assert_eq!(status(&fe, "rita").await.4, vec![dsc]);
    assert_eq!(
        offered(&begin_without_device(&fe, "rita", Purpose::Login).await),
        vec![dsc]
    );
    assert!(matches!(
        login_ocra(&fe, "rita", dsc, DSC_PLUS_DEFAULT_SUITE, &KEY, "1234", IP)
            .await
            .unwrap(),
        Verdict::Accepted {
            kind: DeviceKind::DscPlus,
            ..
        }
    ));
}

/// R16: `OrderReplacement` answers `Enrolled` with a new id, which is `judged unknown` (not
/// offered, not listed) while ordered and while shipped; the old card keeps working. `Activate`
/// makes it the user's card: the old card is replaced, the temporary code stops (R15), and the
/// new card logs in with its new PIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_replacement_is_unknown_until_activated_then_replaces_the_old_card_and_voids_temporaries(
) {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let old = enrol(&admin, "nina", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let (tmp, _) = temp_code(&admin, "nina").await;
    let new = enrolled(
        &call(
            &admin,
            Message::OrderReplacement {
                user: "nina".into(),
                secret: NEW_KEY.to_vec(),
                pin: "5678".into(),
            },
        )
        .await,
    );
    assert!(new != old && new != tmp);

    let before = sorted(vec![old, tmp]);
    for step in ["ordered", "shipped"] {
        if step == "shipped" {
            let ship = Message::Ship {
                user: "nina".into(),
                device: new,
            };
            assert_eq!(call(&admin, ship).await, Message::Done {});
        }
        assert_eq!(
            begin_reply(&fe, "nina", new, IP).await.unwrap(),
            judged(Verdict::Unknown),
            "{step}: not a card to log in with yet"
        );
        assert_eq!(
            offered(&begin_without_device(&fe, "nina", Purpose::Login).await),
            before,
            "{step}"
        );
        assert_eq!(status(&fe, "nina").await.4, before, "{step}");
    }
    // The old card still logs in while the new one is on its way.
    assert!(matches!(
        login_ocra(&fe, "nina", old, DSC_PLUS_DEFAULT_SUITE, &KEY, "1234", IP)
            .await
            .unwrap(),
        Verdict::Accepted { device, .. } if device == old
    ));

    let activate = Message::Activate {
        user: "nina".into(),
        device: new,
    };
    assert_eq!(call(&admin, activate).await, Message::Done {});
    for (dev, what) in [(old, "R16: the old card is replaced"), (tmp, "R15")] {
        assert_eq!(
            begin_reply(&fe, "nina", dev, IP).await.unwrap(),
            judged(Verdict::Unknown),
            "{what}"
        );
    }
    assert_eq!(status(&fe, "nina").await.4, vec![new]);
    match login_ocra(
        &fe,
        "nina",
        new,
        DSC_PLUS_DEFAULT_SUITE,
        &NEW_KEY,
        "5678",
        IP,
    )
    .await
    .unwrap()
    {
        Verdict::Accepted { device, kind, .. } => {
            assert_eq!((device, kind), (new, DeviceKind::DscPlus));
        }
        other => panic!("the new card with its new PIN: {other:?}"),
    }
    // Activated, it is no longer a replacement to tell the user about (v2 Notices).
    assert_eq!(
        call(
            &fe,
            Message::Notices {
                user: "nina".into()
            }
        )
        .await,
        Message::UserNotices {
            replacement: None,
            activation: 0,
            activates_at_ms: 0,
            mass_lockout: false,
        }
    );
}

/// The other lifecycle calls' refusals, each with its status, and none changes anything:
/// `IssueOnlineScc`, `Reactivate`, `OrderReplacement` (R7 PIN, R20 equity), `Ship`, `Activate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lifecycle_calls_refuse_with_their_status_and_change_nothing() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let dsc = enrol(&admin, "pat", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let (tmp, _) = temp_code(&admin, "pat").await;
    let theirs = enrol(&admin, "quin", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();

    let issue = |user: &str| Message::IssueOnlineScc { user: user.into() };
    assert_eq!(refused(&admin, issue("ghost")).await, Status::UNKNOWN_USER);
    assert_eq!(refused(&admin, issue("Pat")).await, Status::BAD_CHARACTER);

    let reactivate = |user: &str, device| Message::Reactivate {
        user: user.into(),
        device,
    };
    for (m, want, why) in [
        (
            reactivate("ghost", dsc),
            Status::UNKNOWN_USER,
            "no such user",
        ),
        (reactivate("Pat", dsc), Status::BAD_CHARACTER, "R10"),
        (
            reactivate("pat", NO_DEVICE),
            Status::UNKNOWN_DEVICE,
            "no such device",
        ),
        (
            reactivate("pat", theirs),
            Status::UNKNOWN_DEVICE,
            "another user's",
        ),
        (
            reactivate("pat", tmp),
            Status::INVALID_STATE,
            "a temporary device",
        ),
    ] {
        assert_eq!(refused(&admin, m).await, want, "Reactivate: {why}");
    }

    let order = |user: &str, secret: &[u8], pin: &str| Message::OrderReplacement {
        user: user.into(),
        secret: secret.to_vec(),
        pin: pin.into(),
    };
    for (m, want, why) in [
        (
            order("pat", &KEY, "12345"),
            Status::INVALID_PIN,
            "R7: 5 digits",
        ),
        (
            order("pat", &KEY, "12a4"),
            Status::INVALID_PIN,
            "R7: a letter",
        ),
        (
            order("pat", &[], "1234"),
            Status::INVALID_CREDENTIAL,
            "no secret",
        ),
        (
            order("ghost", &KEY, "1234"),
            Status::UNKNOWN_USER,
            "no such user",
        ),
        (order("Pat", &KEY, "1234"), Status::BAD_CHARACTER, "R10"),
    ] {
        assert_eq!(refused(&admin, m).await, want, "OrderReplacement: {why}");
    }
    // R20: a DSC+ needs equity over the threshold (1M by default).
    for (name, equity_usd) in [("poor", 100_000), ("rich", 2_000_000)] {
        let m = Message::EnrolUser {
            user: name.into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd,
        };
        assert_eq!(call(&admin, m).await, Message::Done {});
    }
    assert_eq!(
        refused(&admin, order("poor", &KEY, "1234")).await,
        Status::NOT_ELIGIBLE
    );
    enrolled(&call(&admin, order("rich", &KEY, "1234")).await);

    let ship = |user: &str, device| Message::Ship {
        user: user.into(),
        device,
    };
    let activate = |user: &str, device| Message::Activate {
        user: user.into(),
        device,
    };
    for (m, want, why) in [
        (ship("pat", dsc), Status::INVALID_STATE, "an active card"),
        (
            ship("pat", NO_DEVICE),
            Status::UNKNOWN_DEVICE,
            "no such device",
        ),
        (
            ship("pat", theirs),
            Status::UNKNOWN_DEVICE,
            "another user's",
        ),
        (ship("ghost", dsc), Status::UNKNOWN_USER, "no such user"),
        (ship("Pat", dsc), Status::BAD_CHARACTER, "R10"),
        (
            activate("pat", NO_DEVICE),
            Status::UNKNOWN_DEVICE,
            "no such device",
        ),
        (
            activate("pat", theirs),
            Status::UNKNOWN_DEVICE,
            "another user's",
        ),
        (activate("ghost", dsc), Status::UNKNOWN_USER, "no such user"),
        (activate("Pat", dsc), Status::BAD_CHARACTER, "R10"),
    ] {
        assert_eq!(refused(&admin, m).await, want, "{why}");
    }
    // A replacement ships once.
    let new = enrolled(&call(&admin, order("pat", &NEW_KEY, "5678")).await);
    assert_eq!(call(&admin, ship("pat", new)).await, Message::Done {});
    assert_eq!(
        refused(&admin, ship("pat", new)).await,
        Status::INVALID_STATE,
        "shipped already"
    );

    // Nothing refused changed a device: both users hold what they held, and the temporary
    // code was not voided by a refused reactivation.
    assert_eq!(status(&admin, "pat").await.4, sorted(vec![dsc, tmp]));
    assert_eq!(status(&admin, "quin").await.4, vec![theirs]);
}
