//! What protocol version 2 added, over the wire: `BeginTyped` (R6's "Click here if you do not
//! receive the notification") and `Notices` (R16's notice, the mass-lockout signal); and the
//! negotiation that keeps version 1 clients working.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sls_loadgen::daemon::NO_LIMITS;
use sls_loadgen::harness::{begin, enrol, enrol_user, prove_device};
use sls_protocol::*;

use super::edges::{encoded, exchange};
use super::{start, IP, KEY};
use crate::call;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_begin_typed_gives_the_typed_challenge_while_the_app_is_connected() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let ib = enrol(&admin, "tess", DeviceKind::IbKey, &KEY, "a1b2")
        .await
        .unwrap();
    let app = d.connect(Role::Device).await.unwrap();
    prove_device(&app, ib, &KEY).await.unwrap();
    // With the app connected, Begin pushes ...
    let (_, ch) = begin(&fe, "tess", ib, IP).await.unwrap();
    assert!(matches!(ch, Challenge::Push { .. }), "{ch:?}");
    // ... and BeginTyped does not: the user types the challenge into the app.
    let reply = call(
        &fe,
        Message::BeginTyped {
            user: "tess".into(),
            purpose: Purpose::Login,
            device: Some(ib),
            client: IP,
        },
    )
    .await;
    let Message::ChallengeIssued {
        challenge: Challenge::Numeric(q),
        ..
    } = reply
    else {
        panic!("a typed challenge expected: {reply:?}")
    };
    assert!(
        !q.is_empty() && q.bytes().all(|b| b.is_ascii_digit()),
        "{q}"
    );
    // Without a device it lists them, as Begin does.
    let reply = call(
        &fe,
        Message::BeginTyped {
            user: "tess".into(),
            purpose: Purpose::Login,
            device: None,
            client: IP,
        },
    )
    .await;
    assert!(
        matches!(&reply, Message::Devices { devices } if devices.len() == 1),
        "{reply:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r16_the_notices_name_the_replacement_and_carry_the_mass_lockout_signal() {
    let d = crate::slsd(&[&NO_LIMITS[..], &["--log", "warn"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    enrol(&admin, "uma", DeviceKind::DscPlus, &KEY, "1234")
        .await
        .unwrap();
    let notices = |user: &str| call(&fe, Message::Notices { user: user.into() });
    let nothing = Message::UserNotices {
        replacement: None,
        activation: 0,
        activates_at_ms: 0,
        mass_lockout: false,
    };
    assert_eq!(notices("uma").await, nothing);
    let Message::Enrolled { device: new } = call(
        &admin,
        Message::OrderReplacement {
            user: "uma".into(),
            secret: KEY.to_vec(),
            pin: "5678".into(),
        },
    )
    .await
    else {
        panic!()
    };
    assert_eq!(notices("uma").await, nothing, "ordered, not shipped");
    let shipped = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    assert_eq!(
        call(
            &admin,
            Message::Ship {
                user: "uma".into(),
                device: new
            }
        )
        .await,
        Message::Done {}
    );
    let Message::UserNotices {
        replacement,
        activation,
        activates_at_ms,
        mass_lockout,
    } = notices("uma").await
    else {
        panic!()
    };
    assert_eq!(
        (replacement, activation, mass_lockout),
        (Some(new), 0, false)
    );
    // Three weeks after shipment (R16), to the second.
    let three_weeks = Duration::from_secs(21 * 86_400);
    let due = Duration::from_millis(activates_at_ms);
    assert!(
        due + Duration::from_secs(1) >= shipped + three_weeks
            && due <= shipped + three_weeks + Duration::from_secs(5),
        "{due:?} vs {shipped:?}"
    );
    // An unknown name has nothing to be told, as a known user without a replacement.
    assert_eq!(notices("nobody").await, nothing);
    // 100 users locked within a minute (the default threshold): the signal is up for every
    // frontend, in the notices of any user.
    for i in 0..100 {
        enrol_user(&admin, &format!("m{i}")).await.unwrap();
    }
    for i in 0..100 {
        for _ in 0..10 {
            call(
                &fe,
                Message::PasswordFailed {
                    user: format!("m{i}"),
                    client: IP,
                },
            )
            .await;
        }
    }
    let Message::UserNotices { mass_lockout, .. } = notices("uma").await else {
        panic!()
    };
    assert!(mass_lockout);
    // And the log says so once for the episode (the sweeper looks every second).
    let warned = |log: &str| log.matches("mass lockout: lockouts across users").count();
    let t0 = std::time::Instant::now();
    while warned(&std::fs::read_to_string(&d.log).unwrap_or_default()) == 0
        && t0.elapsed() < Duration::from_secs(10)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few more sweeps inside the same episode add no line.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let log = std::fs::read_to_string(&d.log).unwrap_or_default();
    assert_eq!(warned(&log), 1, "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hello_agrees_on_the_newest_version_both_speak() {
    let d = start();
    let (_ep, conn) = super::raw_frontend(&d).await;
    let conn = &conn;
    let hello = |min_version, max_version| async move {
        let hello = Message::Hello {
            min_version,
            max_version,
            agent: "v".into(),
        };
        let got = exchange(conn, &[encoded(1, &hello)]).await;
        got.into_iter().next().unwrap().message
    };
    let version = |m: Message| match m {
        Message::Welcome { version, .. } => Some(version),
        _ => None,
    };
    // A version 1 client keeps version 1, a version 2 client version 2, a version 3 client
    // version 3; a client that speaks 4 or later gets 4, the newest this daemon speaks.
    assert_eq!(version(hello(1, 1).await), Some(1));
    assert_eq!(version(hello(1, 2).await), Some(2));
    assert_eq!(version(hello(1, 3).await), Some(3));
    assert_eq!(version(hello(2, 7).await), Some(4));
    assert_eq!(version(hello(4, 7).await), Some(4));
    assert_eq!(version(hello(2, 2).await), Some(2));
    assert_eq!(version(hello(5, 7).await), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_a_push_cap_of_0_set_on_the_command_line_never_pushes() {
    // The rules' choices reach the rules: with `--push-cap 0` an app that is connected still
    // gets no push, and the user types the challenge.
    let d = crate::slsd(&[&NO_LIMITS[..], &["--log", "warn", "--push-cap", "0"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let ib = enrol(&admin, "vic", DeviceKind::IbKey, &KEY, "a1b2")
        .await
        .unwrap();
    let app = d.connect(Role::Device).await.unwrap();
    prove_device(&app, ib, &KEY).await.unwrap();
    let (_, ch) = begin(&fe, "vic", ib, IP).await.unwrap();
    assert!(matches!(ch, Challenge::Numeric(_)), "{ch:?}");
}
