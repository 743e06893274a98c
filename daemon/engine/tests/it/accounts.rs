//! Accounts and enrolment: R7 (PINs), R18 (opt-out), R19 (paths), R20 (equity), R22.

use std::time::Duration;

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::{Kind, Rig};

pub fn r7_pins<K: Kind>() {
    let (c, _) = core::<K>();
    user(&c, "bob");
    let spec = |kind, pin: &str| DeviceSpec {
        kind,
        secret: KEY.to_vec(),
        pin: pin.into(),
        suite: String::new(),
    };
    assert_eq!(
        c.enrol_device("bob", &spec(DeviceKind::DscPlus, "123"))
            .unwrap_err(),
        CoreError::InvalidPin("a DSC+ PIN is 4 digits")
    );
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::DscPlus, "12a4"))
        .is_err());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::DscPlus, "1234"))
        .is_ok());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "a!3"))
        .is_err());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "a!3$5z7"))
        .is_err());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "a!3$5z"))
        .is_ok());
    assert!(c
        .enrol_device("bob", &spec(DeviceKind::IbKey, "ab 1"))
        .is_err());
}

pub fn r18_opt_out_logs_in_without_device_and_only_the_primary_opts_back_in<K: Kind>() {
    let (c, _) = core::<K>();
    c.enrol_user(&UserSpec {
        name: "boss".into(),
        entity: "acme".into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
    c.enrol_user(&UserSpec {
        name: "clerk".into(),
        entity: "acme".into(),
        primary: false,
        ..UserSpec::default()
    })
    .unwrap();
    c.opt_out("clerk").unwrap();
    let v = c
        .begin(
            &BeginRequest {
                user: "clerk",
                purpose: Purpose::Login,
                device: None,
                client: IP,
            },
            false,
        )
        .unwrap()
        .value;
    assert!(matches!(
        v,
        BeginResult::Verdict(Verdict::Accepted {
            kind: DeviceKind::NoDevice,
            level: SecurityLevel::None,
            ..
        })
    ));
    let v = c
        .begin(
            &BeginRequest {
                user: "clerk",
                purpose: Purpose::Withdrawal { amount_usd: 60_000 },
                device: None,
                client: IP,
            },
            false,
        )
        .unwrap()
        .value;
    assert!(
        matches!(v, BeginResult::Verdict(Verdict::NeedsStrongerDevice { .. })),
        "none limits: 50K a day"
    );
    assert_eq!(
        c.opt_in("clerk", "clerk").unwrap_err(),
        CoreError::NotPrimaryUser {
            primary: "boss".into()
        }
    );
    c.opt_in("clerk", "boss").unwrap();
    assert!(matches!(
        c.begin(
            &BeginRequest {
                user: "clerk",
                purpose: Purpose::Login,
                device: None,
                client: IP
            },
            false
        )
        .unwrap()
        .value,
        BeginResult::Devices(_)
    ));
}

pub fn r20_dsc_plus_needs_the_equity_threshold<K: Kind>() {
    let (c, _) = core::<K>();
    c.enrol_user(&UserSpec {
        name: "poor".into(),
        equity_usd: 999_999,
        ..UserSpec::default()
    })
    .unwrap();
    c.enrol_user(&UserSpec {
        name: "rich".into(),
        equity_usd: 1_000_000,
        ..UserSpec::default()
    })
    .unwrap();
    let spec = DeviceSpec {
        kind: DeviceKind::DscPlus,
        secret: KEY.to_vec(),
        pin: "1234".into(),
        suite: String::new(),
    };
    assert_eq!(
        c.enrol_device("poor", &spec).unwrap_err(),
        CoreError::NotEligible
    );
    assert!(c.enrol_device("rich", &spec).is_ok());
}

pub fn r22_ib_key_activation_and_recovery_by_sms_token<K: Kind>() {
    let (c, clock) = core::<K>();
    user(&c, "dana");
    assert_eq!(
        c.activation_start("dana", "+41791234567").unwrap_err(),
        CoreError::BadPhone
    );
    assert_eq!(
        c.activation_start("dana", "0791234567").unwrap_err(),
        CoreError::BadPhone,
        "no trunk prefix"
    );
    let token = c.activation_start("dana", "41791234567").unwrap().value;
    assert_eq!(
        c.activate_ib_key("dana", "00000000", &KEY, "1234")
            .unwrap_err(),
        CoreError::BadToken
    );
    let first = c
        .activate_ib_key("dana", &token, &KEY, "1234")
        .unwrap()
        .value;
    assert_eq!(
        c.activate_ib_key("dana", &token, &KEY, "1234").unwrap_err(),
        CoreError::BadToken,
        "a token is used once"
    );
    // Recovery after reinstall: a new key replaces the old one.
    let token = c.activation_start("dana", "41791234567").unwrap().value;
    clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        c.activate_ib_key("dana", &token, &[9u8; 32], "1234")
            .unwrap_err(),
        CoreError::BadToken,
        "expired"
    );
    let token = c.activation_start("dana", "41791234567").unwrap().value;
    let second = c
        .activate_ib_key("dana", &token, &[9u8; 32], "1234")
        .unwrap()
        .value;
    assert_eq!(begin_verdict(&c, "dana", first), Verdict::Unknown);
    assert!(c.device_authenticate(
        second,
        &[1; 32],
        &push::device_proof(&[9u8; 32], second, &[1; 32])
    ));
    assert!(!c.device_authenticate(
        second,
        &[1; 32],
        &push::device_proof(&KEY, second, &[1; 32])
    ));
}

pub fn r19_the_three_enrolment_paths<K: Kind>() {
    let (c, _) = core::<K>();
    // Install IB Key (R22).
    user(&c, "path1");
    let token = c.activation_start("path1", "41790000000").unwrap().value;
    let ib = c
        .activate_ib_key("path1", &token, &KEY, "1234")
        .unwrap()
        .value;
    assert_eq!(
        c.status("path1")
            .unwrap()
            .devices
            .iter()
            .map(|d| d.id)
            .collect::<Vec<_>>(),
        vec![ib]
    );
    // Without IB Key: an Online SCC (R14).
    user(&c, "path2");
    let (scc, _, _) = c.issue_online_scc("path2").unwrap().value;
    assert_eq!(
        c.status("path2").unwrap().devices[0].kind,
        DeviceKind::OnlineScc
    );
    assert_eq!(c.status("path2").unwrap().devices[0].id, scc);
    // "I already have access to a Secure Login Device under a different username": R17.
    person(&c, "path3", "path3", "");
    c.enrol_user(&UserSpec {
        name: "path4".into(),
        entity: "path3".into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
    let owner_dsc = card_of(&c, "path3", DeviceKind::DscPlus, &KEY);
    let (txn, a) = owner_answer(&c, "path3", owner_dsc);
    let (_, pending) = c
        .share_request("path4", "path3", owner_dsc, txn, &a, IP)
        .unwrap()
        .value
        .unwrap();
    assert!(!pending);
    assert_eq!(
        c.status("path4").unwrap().devices[0].kind,
        DeviceKind::DscPlus
    );
}

pub fn r19_bulk_enrolment_creates_users_and_refuses_bad_records_one_by_one<K: Kind>() {
    let (c, _) = core::<K>();
    user(&c, "bulk0");
    let rec = |name: &str, pin: &str| BulkRecord {
        user: name.into(),
        kind: DeviceKind::DscPlus,
        secret: KEY.to_vec(),
        pin: pin.into(),
        suite: String::new(),
    };
    let out = c.enrol_bulk(&[
        rec("bulk0", "1234"),
        rec("bulk1", "1234"),
        rec("Bad", "1234"),
        rec("bulk2", "12"),
    ]);
    assert!(out.value[0].is_ok(), "an existing user gets the device");
    assert!(out.value[1].is_ok(), "a new user is created");
    assert_eq!(out.value[2], Err(CoreError::BadCharacter));
    assert!(matches!(out.value[3], Err(CoreError::InvalidPin(_))));
    assert!(
        c.reactivate("bulk2", DeviceId(1)).unwrap_err() == CoreError::UnknownUser,
        "a refused record creates no user"
    );
    let d1 = *out.value[1].as_ref().unwrap();
    assert!(matches!(right(&c, "bulk1", d1), Verdict::Accepted { .. }));
    assert!(out
        .records
        .iter()
        .any(|r| matches!(r, Record::User { name, primary: true, .. } if name == "bulk1")));
}

pub fn r18_users_without_entity_data_share_no_account<K: Kind>() {
    // Bulk-enrolled users have no entity data, and each is the primary user of its own
    // account: one must not opt another back in.
    let (c, _) = core::<K>();
    user(&c, "ann");
    user(&c, "bob");
    c.opt_out("ann").unwrap();
    assert_eq!(
        c.opt_in("ann", "bob").unwrap_err(),
        CoreError::NotPrimaryUser {
            primary: "ann".into()
        }
    );
    assert!(c.status("ann").unwrap().opted_out);
    c.opt_in("ann", "ann").unwrap();
    assert!(!c.status("ann").unwrap().opted_out);
}

/// R18: kind `none` names how an opted-out user logs in; enrolled as a device it could never
/// be answered (every answer malformed, and counted), so it is refused.
pub fn r18_kind_none_is_not_enrolled_as_a_device<K: Kind>() {
    let (c, _) = core::<K>();
    dsc(&c, "nell");
    let spec = DeviceSpec {
        kind: DeviceKind::NoDevice,
        secret: KEY.to_vec(),
        pin: String::new(),
        suite: String::new(),
    };
    assert!(matches!(
        c.enrol_device("nell", &spec),
        Err(CoreError::InvalidCredential(_))
    ));
    let bulk = c.enrol_bulk(&[BulkRecord {
        user: "nora".into(),
        kind: DeviceKind::NoDevice,
        secret: KEY.to_vec(),
        pin: String::new(),
        suite: String::new(),
    }]);
    assert!(matches!(
        bulk.value[..],
        [Err(CoreError::InvalidCredential(_))]
    ));
    assert_eq!(c.status("nell").unwrap().devices.len(), 1);
}

/// R22, bounded (issue 15): a wrong activation token can be tried only
/// `ACTIVATION_ATTEMPTS` (5) times; the last voids the activation, so that even the right token
/// is then refused `BadToken` until `ActivationStart` sends a new one.
pub fn r22_five_wrong_activation_tokens_void_the_activation<K: Kind>() {
    let (c, _clock) = core::<K>();
    user(&c, "erin");
    let activate = |c: &Rig<K>, token: &str| c.activate_ib_key("erin", token, &KEY, "1234");
    let wrong = |c: &Rig<K>| {
        assert_eq!(activate(c, "00000000").unwrap_err(), CoreError::BadToken);
    };
    let token = c.activation_start("erin", "41791234567").unwrap().value;
    for _ in 1..ACTIVATION_ATTEMPTS {
        wrong(&c);
    }
    assert!(
        activate(&c, &token).is_ok(),
        "one wrong token fewer than the cap: the right one still works"
    );
    let token = c.activation_start("erin", "41791234567").unwrap().value;
    for _ in 0..ACTIVATION_ATTEMPTS {
        wrong(&c);
    }
    assert_eq!(
        activate(&c, &token).unwrap_err(),
        CoreError::BadToken,
        "the activation is void after the fifth wrong token"
    );
    // A new start counts afresh.
    let token = c.activation_start("erin", "41791234567").unwrap().value;
    wrong(&c);
    assert!(activate(&c, &token).is_ok());
}
