//! The admin reads and updates in the rule suite: the admin reads (every device in every state, failures
//! and the lock, R11) and `update_user`, whose identification is canonical (R17(a)) like an
//! enrolment's, and whose record carries the whole account data (R17, R18, R20).

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn r17_identification_is_canonical_and_update_user_records_the_account<K: Kind>() {
    let (c, _) = core::<K>();
    c.enrol_user(&UserSpec {
        name: "ann".into(),
        entity: "e1".into(),
        identification: "  ann\t smith  1980 ".into(),
        primary: true,
        equity_usd: 2_000_000,
    })
    .unwrap();
    c.enrol_user(&UserSpec {
        name: "anna".into(),
        entity: "e2".into(),
        identification: "ANN SMITH 1980".into(),
        ..UserSpec::default()
    })
    .unwrap();
    let detail = |u: &str| K::block_on(c.core.user_detail(u)).unwrap();
    // R17(a): one person written two ways is one identification.
    assert_eq!(detail("ann").identification, "ANN SMITH 1980");
    assert_eq!(detail("ann").identification, detail("anna").identification);
    assert_eq!(canonical_identification(" a\u{3000}b  "), "A B");

    let spec = DeviceSpec {
        kind: DeviceKind::DscPlus,
        secret: KEY.to_vec(),
        pin: "1234".into(),
        suite: String::new(),
    };
    let dev = c.enrol_device("ann", &spec).unwrap().value;
    c.password_failed("ann", IP).unwrap();
    c.password_failed("ann", IP).unwrap();
    let d = detail("ann");
    assert_eq!(d.failures_ms.len(), 2, "R11: the failures' times");
    assert_eq!(d.locked_until_ms, 0);
    assert_eq!(d.left, (u64::MAX, u64::MAX), "R3: a DSC+ is unlimited");

    let update = UserUpdate {
        identification: Some("ann smith 1981".into()),
        primary: Some(false),
        ..UserUpdate::default()
    };
    K::block_on(c.core.update_user("ann", &update)).unwrap();
    let d = detail("ann");
    assert_eq!(
        (
            d.entity.as_str(),
            d.identification.as_str(),
            d.primary,
            d.equity_usd
        ),
        ("e1", "ANN SMITH 1981", false, 2_000_000),
        "only the fields given change"
    );
    // The record is the whole account data, so a replay (or a snapshot's) rebuilds it.
    let records = K::take_records(c.core.store());
    assert!(records.contains(&Record::User {
        name: "ann".into(),
        entity: "e1".into(),
        identification: "ANN SMITH 1981".into(),
        primary: false,
        equity_usd: 2_000_000,
    }));

    // Every device in every state: an ordered replacement is listed, not usable (R16).
    let ordered = c.order_replacement("ann", &KEY, "9876").unwrap().value;
    let list = K::block_on(c.core.list_devices("ann")).unwrap();
    let seen: Vec<(DeviceId, DeviceState, bool)> =
        list.iter().map(|d| (d.id, d.state, d.usable)).collect();
    assert_eq!(
        seen,
        vec![
            (dev, DeviceState::Active, true),
            (ordered, DeviceState::Ordered, false)
        ]
    );
    assert!(matches!(
        K::block_on(c.core.list_devices("nobody")),
        Err(Error::Core(CoreError::UnknownUser))
    ));
    assert!(matches!(
        K::block_on(c.core.update_user("nobody", &update)),
        Err(Error::Core(CoreError::UnknownUser))
    ));
}
