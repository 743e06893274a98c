//! The admin reads and updates over the wire: `ListDevices` (every device in
//! every state), `UserDetail` (failures and lock, R11; withdrawals used and left, R3) and
//! `UpdateUser` (entity, identification in its canonical form, R17(a); primary, R18; equity,
//! R20), durable across a restart.

use std::net::{IpAddr, Ipv4Addr};

use sls_loadgen::daemon::GENEROUS_LIMITS;
use sls_loadgen::harness::{answer, begin, enrol_device};
use sls_protocol::*;

use crate::call;

const KEY: [u8; 32] = *b"inspect-card-secret-000000000001";
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));

fn details(m: Message) -> (String, bool, u64, Vec<u64>, u64, (u64, u64)) {
    match m {
        Message::UserDetails {
            identification,
            primary,
            equity_usd,
            failures_ms,
            locked_until_ms,
            left_day_usd,
            left_5bd_usd,
            ..
        } => (
            identification,
            primary,
            equity_usd,
            failures_ms,
            locked_until_ms,
            (left_day_usd, left_5bd_usd),
        ),
        other => panic!("UserDetails expected, got {other:?}"),
    }
}

/// R11, R16, R17(a), R20: the reads show what the rules decided; the update is canonical and
/// survives a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_admin_reads_list_every_device_and_failures_and_update_user_is_canonical() {
    let mut d = crate::slsd(&GENEROUS_LIMITS);
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let enrolled = call(
        &admin,
        Message::EnrolUser {
            user: "jane".into(),
            entity: String::new(),
            identification: "  jane \t doe  1980-01-02 ".into(),
            primary: true,
            equity_usd: 2_000_000,
        },
    )
    .await;
    assert_eq!(enrolled, Message::Done {});
    let dsc = enrol_device(&admin, "jane", DeviceKind::DscPlus, &KEY, "4321")
        .await
        .unwrap();
    let ordered = match call(
        &admin,
        Message::OrderReplacement {
            user: "jane".into(),
            secret: KEY.to_vec(),
            pin: "9876".into(),
        },
    )
    .await
    {
        Message::Enrolled { device } => device,
        other => panic!("{other:?}"),
    };
    // Three wrong answers (R11).
    for _ in 0..3 {
        let (txn, _) = begin(&fe, "jane", dsc, IP).await.unwrap();
        let v = answer(&fe, txn, "00000000", IP).await.unwrap();
        assert!(matches!(v, Verdict::Rejected { .. }), "{v:?}");
    }

    let list = call(
        &admin,
        Message::ListDevices {
            user: "jane".into(),
        },
    )
    .await;
    let Message::DeviceList { devices } = list else {
        panic!("DeviceList expected, got {list:?}")
    };
    let seen: Vec<(DeviceId, u8, bool)> =
        devices.iter().map(|x| (x.id, x.state, x.usable)).collect();
    // R16: the replacement is listed, ordered (2) and not usable; the card active (1).
    assert_eq!(seen, vec![(dsc, 1, true), (ordered, 2, false)]);

    let (ident, primary, equity, failures, locked, left) = details(
        call(
            &admin,
            Message::UserDetail {
                user: "jane".into(),
            },
        )
        .await,
    );
    assert_eq!(
        ident, "JANE DOE 1980-01-02",
        "canonical at enrolment (R17a)"
    );
    assert!(primary);
    assert_eq!(equity, 2_000_000);
    assert_eq!(failures.len(), 3, "R11: each failure's time");
    assert!(failures.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(locked, 0);
    assert_eq!(left, (u64::MAX, u64::MAX), "R3: a DSC+ is unlimited");

    let update = Message::UpdateUser {
        user: "jane".into(),
        entity: Some("acme".into()),
        identification: Some("Jane Doe\n1980-01-02".into()),
        primary: Some(false),
        equity_usd: None,
    };
    assert_eq!(call(&admin, update).await, Message::Done {});
    let after = |m| details(m);
    let (ident, primary, equity, ..) = after(
        call(
            &admin,
            Message::UserDetail {
                user: "jane".into(),
            },
        )
        .await,
    );
    assert_eq!(
        (ident.as_str(), primary, equity),
        ("JANE DOE 1980-01-02", false, 2_000_000)
    );

    // Unknown users and bad names.
    let unknown = call(
        &admin,
        Message::ListDevices {
            user: "nobody".into(),
        },
    )
    .await;
    assert!(
        matches!(
            unknown,
            Message::Error {
                status: Status::UNKNOWN_USER,
                ..
            }
        ),
        "{unknown:?}"
    );
    let bad = Message::UpdateUser {
        user: "nobody".into(),
        entity: None,
        identification: None,
        primary: None,
        equity_usd: Some(1),
    };
    let bad = call(&admin, bad).await;
    assert!(
        matches!(
            bad,
            Message::Error {
                status: Status::UNKNOWN_USER,
                ..
            }
        ),
        "{bad:?}"
    );
    let no = call(
        &fe,
        Message::ListDevices {
            user: "jane".into(),
        },
    )
    .await;
    assert!(
        matches!(
            no,
            Message::Error {
                status: Status::FORBIDDEN,
                ..
            }
        ),
        "{no:?}"
    );

    // The update is durable: a restart replays it.
    drop((admin, fe));
    d.restart().unwrap();
    let admin = d.connect(Role::Admin).await.unwrap();
    let Message::UserDetails {
        entity,
        identification,
        primary,
        ..
    } = call(
        &admin,
        Message::UserDetail {
            user: "jane".into(),
        },
    )
    .await
    else {
        panic!("UserDetails expected")
    };
    assert_eq!(
        (entity.as_str(), identification.as_str(), primary),
        ("acme", "JANE DOE 1980-01-02", false)
    );
}

/// `RemoveDevice` over the wire: `Done`, the device gone from `DeviceList`
/// (after a restart too: the removal is journalled), a second removal UNKNOWN_DEVICE, both in
/// the audit trail; `ListShares` with no share is empty with nothing to follow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_device_is_durable_and_audited_and_list_shares_pages() {
    let mut d = crate::slsd(&GENEROUS_LIMITS);
    let admin = d.connect(Role::Admin).await.unwrap();
    let enrolled = call(
        &admin,
        Message::EnrolUser {
            user: "remy".into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        },
    )
    .await;
    assert_eq!(enrolled, Message::Done {});
    let dsc = enrol_device(&admin, "remy", DeviceKind::DscPlus, &KEY, "4321")
        .await
        .unwrap();
    let remove = || Message::RemoveDevice {
        user: "remy".into(),
        device: dsc,
    };
    assert_eq!(call(&admin, remove()).await, Message::Done {});
    let again = call(&admin, remove()).await;
    assert!(
        matches!(
            again,
            Message::Error {
                status: Status::UNKNOWN_DEVICE,
                ..
            }
        ),
        "{again:?}"
    );
    let list = || Message::ListDevices {
        user: "remy".into(),
    };
    assert_eq!(
        call(&admin, list()).await,
        Message::DeviceList { devices: vec![] }
    );
    // Audited: the removal and the refused second one, with the device.
    let mut seen = Vec::new();
    for _ in 0..50 {
        let Message::AuditEntries { entries, .. } = call(
            &admin,
            Message::AuditRead {
                user: "remy".into(),
                since_ms: 0,
                skip: 0,
                limit: 64,
            },
        )
        .await
        else {
            panic!("AuditEntries expected")
        };
        seen = entries
            .into_iter()
            .filter(|e| e.event == 0x0079)
            .map(|e| (e.device, e.status))
            .collect();
        if seen.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert_eq!(
        seen,
        vec![(Some(dsc), None), (Some(dsc), Some(Status::UNKNOWN_DEVICE))]
    );
    assert_eq!(
        call(
            &admin,
            Message::ListShares {
                pending_only: false,
                after: 0,
            },
        )
        .await,
        Message::Shares {
            shares: vec![],
            next: 0
        }
    );
    drop(admin);
    d.restart().unwrap();
    let admin = d.connect(Role::Admin).await.unwrap();
    assert_eq!(
        call(&admin, list()).await,
        Message::DeviceList { devices: vec![] },
        "the removal is durable"
    );
}
