//! Rate limits per user, per address and node-wide; the mass-lockout signal.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use sls_engine::*;
use sls_protocol::*;

use crate::common::*;
use crate::harness::Kind;

pub fn rate_limits_per_user_per_client_follow_the_clock<K: Kind>() {
    let (c, clock) = core_with::<K>(CoreConfig {
        rates: RatePolicy {
            per_user: 1,
            per_user_burst: 3,
            per_client: 100,
            per_client_burst: 100,
            global: 0,
        },
        ..CoreConfig::default()
    });
    let d = dsc(&c, "eve");
    for _ in 0..3 {
        begin(&c, "eve", d);
    }
    assert!(
        matches!(begin_verdict(&c, "eve", d), Verdict::RateLimited { retry_after_ms } if retry_after_ms > 0 && retry_after_ms <= 1000)
    );
    // Another user from the same address is not affected.
    let d2 = dsc(&c, "fred");
    begin(&c, "fred", d2);
    clock.advance(Duration::from_secs(1));
    begin(&c, "eve", d);
    // Per client: one flooding address does not slow another.
    let (c, _) = core_with::<K>(CoreConfig {
        rates: RatePolicy {
            per_user: 0,
            per_user_burst: 0,
            per_client: 1,
            per_client_burst: 5,
            global: 0,
        },
        ..CoreConfig::default()
    });
    let d = dsc(&c, "gus");
    let flood = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 66));
    let mut limited = 0;
    for _ in 0..100 {
        if let BeginResult::Verdict(Verdict::RateLimited { .. }) = c
            .begin(
                &BeginRequest {
                    user: "gus",
                    purpose: Purpose::Login,
                    device: Some(d),
                    client: flood,
                },
                false,
            )
            .unwrap()
            .value
        {
            limited += 1;
        }
    }
    assert_eq!(limited, 95);
    assert!(matches!(
        c.begin(
            &BeginRequest {
                user: "gus",
                purpose: Purpose::Login,
                device: Some(d),
                client: IP
            },
            false
        )
        .unwrap()
        .value,
        BeginResult::Challenge { .. }
    ));
}

pub fn mass_lockout_is_signalled<K: Kind>() {
    let (c, _) = core_with::<K>(CoreConfig {
        mass_lockout_threshold: 5,
        ..no_limits()
    });
    for i in 0..5 {
        let name = format!("m{i}");
        let d = dsc(&c, &name);
        assert!(!c.mass_lockout().1);
        for _ in 0..10 {
            wrong(&c, &name, d);
        }
    }
    assert_eq!(c.mass_lockout(), (5, true));
}
