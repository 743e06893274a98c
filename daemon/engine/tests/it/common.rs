//! Helpers every rule module shares: a core on a fake clock, users and devices, answers.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sls_engine::*;
use sls_protocol::ocra::{self, OcraInput, OcraSuite};
use sls_protocol::*;

use crate::harness::{Kind, Rig};

pub const H: Duration = Duration::from_secs(3600);
pub const MS: Duration = Duration::from_millis(1);
pub const KEY: [u8; 32] = *b"12345678901234567890123456789012";
pub const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9));

pub fn no_limits() -> CoreConfig {
    CoreConfig {
        rates: RatePolicy {
            per_user: 0,
            per_client: 0,
            global: 0,
            ..RatePolicy::default()
        },
        ..CoreConfig::default()
    }
}

pub fn core_with<K: Kind>(config: CoreConfig) -> (Rig<K>, FakeClock) {
    let clock = FakeClock::default();
    (Rig::new(config, &clock), clock)
}

pub fn core<K: Kind>() -> (Rig<K>, FakeClock) {
    core_with::<K>(no_limits())
}

pub fn user<K: Kind>(c: &Rig<K>, name: &str) {
    c.enrol_user(&UserSpec {
        name: name.into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
}

pub fn dsc<K: Kind>(c: &Rig<K>, name: &str) -> DeviceId {
    user(c, name);
    c.enrol_device(
        name,
        &DeviceSpec {
            kind: DeviceKind::DscPlus,
            secret: KEY.to_vec(),
            pin: "1234".into(),
            suite: String::new(),
        },
    )
    .unwrap()
    .value
}

pub fn begin<K: Kind>(c: &Rig<K>, name: &str, device: DeviceId) -> (TxnId, Challenge) {
    begin_for(c, name, device, Purpose::Login)
}

pub fn begin_for<K: Kind>(
    c: &Rig<K>,
    name: &str,
    device: DeviceId,
    purpose: Purpose,
) -> (TxnId, Challenge) {
    match c
        .begin(
            &BeginRequest {
                user: name,
                purpose,
                device: Some(device),
                client: IP,
            },
            false,
        )
        .unwrap()
        .value
    {
        BeginResult::Challenge { txn, challenge, .. } => (txn, challenge),
        other => panic!("no challenge: {other:?}"),
    }
}

pub fn dsc_answer(q: &str, pin: &str) -> String {
    let suite: OcraSuite = ocra::DSC_PLUS_DEFAULT_SUITE.parse().unwrap();
    let ph = ocra::pin_hash(suite.pin.unwrap(), pin.as_bytes());
    suite
        .compute(
            &KEY,
            &OcraInput {
                question: q,
                pin_hash: Some(ph.as_bytes()),
                ..OcraInput::default()
            },
        )
        .unwrap()
        .to_string()
}

pub fn right<K: Kind>(c: &Rig<K>, name: &str, d: DeviceId) -> Verdict {
    let (txn, ch) = begin(c, name, d);
    let Challenge::Numeric(q) = ch else { panic!() };
    c.answer(txn, &dsc_answer(&q, "1234"), IP).value
}

pub fn wrong<K: Kind>(c: &Rig<K>, name: &str, d: DeviceId) -> Verdict {
    let (txn, ch) = begin(c, name, d);
    let Challenge::Numeric(q) = ch else { panic!() };
    let mut a = dsc_answer(&q, "1234").into_bytes();
    a[7] = if a[7] == b'9' { b'0' } else { a[7] + 1 };
    c.answer(txn, std::str::from_utf8(&a).unwrap(), IP).value
}

pub fn begin_verdict<K: Kind>(c: &Rig<K>, name: &str, d: DeviceId) -> Verdict {
    match c
        .begin(
            &BeginRequest {
                user: name,
                purpose: Purpose::Login,
                device: Some(d),
                client: IP,
            },
            false,
        )
        .unwrap()
        .value
    {
        BeginResult::Verdict(v) => v,
        other => panic!("expected a verdict: {other:?}"),
    }
}

pub fn ib_key<K: Kind>(c: &Rig<K>, name: &str, pin: &str) -> DeviceId {
    user(c, name);
    also_ib_key(c, name, pin)
}

/// An IB Key for `name`, a user enrolled already (a second device, say).
pub fn also_ib_key<K: Kind>(c: &Rig<K>, name: &str, pin: &str) -> DeviceId {
    c.enrol_device(
        name,
        &DeviceSpec {
            kind: DeviceKind::IbKey,
            secret: KEY.to_vec(),
            pin: pin.into(),
            suite: String::new(),
        },
    )
    .unwrap()
    .value
}

pub fn push_begin<K: Kind>(c: &Rig<K>, name: &str, d: DeviceId) -> (TxnId, u8, PushOrder) {
    match c
        .begin(
            &BeginRequest {
                user: name,
                purpose: Purpose::Login,
                device: Some(d),
                client: IP,
            },
            true,
        )
        .unwrap()
        .value
    {
        BeginResult::Challenge {
            txn,
            challenge: Challenge::Push { number },
            push: Some(p),
            ..
        } => (txn, number, p),
        other => panic!("{other:?}"),
    }
}

pub fn person<K: Kind>(c: &Rig<K>, name: &str, entity: &str, ident: &str) {
    c.enrol_user(&UserSpec {
        name: name.into(),
        entity: entity.into(),
        identification: ident.into(),
        primary: true,
        ..UserSpec::default()
    })
    .unwrap();
}

pub fn card_of<K: Kind>(c: &Rig<K>, name: &str, kind: DeviceKind, secret: &[u8]) -> DeviceId {
    let pin = if kind == DeviceKind::DscPlus {
        "1234"
    } else {
        ""
    };
    c.enrol_device(
        name,
        &DeviceSpec {
            kind,
            secret: secret.to_vec(),
            pin: pin.into(),
            suite: String::new(),
        },
    )
    .unwrap()
    .value
}

/// The owner's answer to a fresh challenge of `device` (a DSC+ keyed with KEY, PIN 1234).
pub fn owner_answer<K: Kind>(c: &Rig<K>, owner: &str, device: DeviceId) -> (TxnId, String) {
    let (txn, ch) = begin(c, owner, device);
    let Challenge::Numeric(q) = ch else { panic!() };
    (txn, dsc_answer(&q, "1234"))
}
