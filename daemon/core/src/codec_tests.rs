#![allow(clippy::unwrap_used)]

use super::*;
use proptest::prelude::*;
use sls_protocol::ocra;

fn bytes(u: &UserState) -> Vec<u8> {
    let mut out = Vec::new();
    u.encode(&mut out);
    out
}

fn arb_kind() -> impl Strategy<Value = DeviceKind> {
    proptest::sample::select(DeviceKind::ALL.to_vec())
}

fn arb_device() -> impl Strategy<Value = Device> {
    (
        any::<u32>(),
        arb_kind(),
        1u8..=8,
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..=64),
        proptest::collection::vec(any::<u8>(), 0..=64),
        any::<u64>(),
        proptest::option::of(proptest::collection::vec(any::<u16>(), 0..10)),
        proptest::option::of(("[a-z0-9]{1,32}", any::<u32>())),
    )
        .prop_map(
            |(id, kind, state, ocra, secret, pin, since, recent, source)| {
                let suite = ocra.then(|| ocra::IB_KEY_DEFAULT_SUITE.parse().unwrap());
                let state = state_from(state).unwrap();
                let mut d = Device::new(id, kind, state, suite, &secret, &pin, since);
                d.recent = recent.map(Box::new);
                // A share copy's source (R17) round-trips with the device.
                d.source = source.map(|(owner, device)| Box::new(Source { owner, device }));
                d
            },
        )
}

fn arb_txn() -> impl Strategy<Value = Txn> {
    let challenge = prop_oneof![
        "[0-9A-Za-z]{0,64}".prop_map(|q| TxnChallenge::question(&q)),
        proptest::collection::vec(any::<u16>(), 0..5)
            .prop_map(|p| TxnChallenge::Positions(p.into_boxed_slice())),
        (any::<u8>(), any::<[u8; 16]>())
            .prop_map(|(number, nonce)| TxnChallenge::Push { number, nonce }),
        Just(TxnChallenge::Code),
    ];
    (
        any::<u128>(),
        any::<u32>(),
        proptest::option::of(any::<u64>()),
        any::<u64>(),
        challenge,
    )
        .prop_map(|(id, device, amount, expires_ms, challenge)| Txn {
            id: TxnId(id),
            device,
            purpose: amount.map_or(Purpose::Login, |amount_usd| Purpose::Withdrawal {
                amount_usd,
            }),
            expires_ms,
            challenge,
        })
}

fn arb_extra() -> impl Strategy<Value = Extra> {
    (
        "[a-z]{0,20}",
        "[a-z0-9]{0,20}",
        any::<u64>(),
        proptest::collection::vec((any::<u64>(), any::<u64>()), 0..5),
        proptest::option::of((any::<[u8; 32]>(), any::<u64>(), 0u8..5)),
        proptest::collection::vec((any::<u128>(), any::<u64>(), any::<u64>()), 0..3),
    )
        .prop_map(
            |(entity, identification, equity_usd, withdrawals, activation, withdrawn_by)| Extra {
                entity,
                identification,
                equity_usd,
                withdrawals,
                activation: activation.map(|(d, at, _)| (d, at)),
                activation_wrong: activation.map_or(0, |(_, _, n)| n),
                withdrawn_by,
            },
        )
}

prop_compose! {
    fn arb_user()(
        flags in any::<[bool; 3]>(),
        locked_until in any::<u64>(),
        pushes in any::<u8>(),
        failures in proptest::option::of(proptest::collection::vec(any::<u64>(), 0..12)),
        devices in proptest::collection::vec(arb_device(), 0..5),
        extra in proptest::option::of(arb_extra()),
        txns in proptest::collection::vec(arb_txn(), 0..6),
    ) -> UserState {
        UserState {
            enrolled: flags[0],
            opted_out: flags[1],
            primary: flags[2],
            locked_until,
            pushes,
            failures: failures.map(|f| Box::new(f.into_iter().collect())),
            devices,
            extra: extra.map(Box::new),
            txns,
        }
    }
}

fn arb_share() -> impl Strategy<Value = Share> {
    (
        "[a-z]{1,32}",
        "[a-z]{1,32}",
        any::<u32>(),
        any::<u32>(),
        0u8..=3,
        proptest::collection::vec(any::<u32>(), 0..64),
    )
        .prop_map(
            |(requester, owner, device, copy, state, deactivated)| Share {
                requester,
                owner,
                device,
                copy,
                state,
                deactivated,
            },
        )
}

proptest! {
    #[test]
    fn a_user_round_trips(u in arb_user()) {
        let b = bytes(&u);
        let back = UserState::decode(&b).unwrap();
        // Every field is compared through its encoding, and the parts that matter directly.
        prop_assert_eq!(bytes(&back), b);
        prop_assert_eq!(back.devices.len(), u.devices.len());
        for (a, b) in back.devices.iter().zip(&u.devices) {
            prop_assert_eq!(a.secret(), b.secret());
            prop_assert_eq!(a.pin_hash(), b.pin_hash());
            prop_assert_eq!(a.suite, b.suite);
            prop_assert_eq!(&a.recent, &b.recent);
            prop_assert_eq!(&a.source, &b.source);
            prop_assert_eq!(a.state, b.state);
        }
        prop_assert_eq!(back.txns.len(), u.txns.len());
        prop_assert_eq!(&back.failures, &u.failures);
    }

    #[test]
    fn every_prefix_of_a_user_is_an_error(u in arb_user()) {
        let b = bytes(&u);
        for cut in 0..b.len() {
            prop_assert!(UserState::decode(&b[..cut]).is_err());
        }
        let mut longer = b.clone();
        longer.push(0);
        prop_assert!(UserState::decode(&longer).is_err());
    }

    #[test]
    fn a_share_round_trips(s in arb_share()) {
        let mut b = Vec::new();
        s.encode(&mut b);
        prop_assert_eq!(Share::decode(&b).unwrap(), s);
        for cut in 0..b.len() {
            prop_assert!(Share::decode(&b[..cut]).is_err());
        }
    }

    #[test]
    fn any_bytes_decode_or_fail_without_panic(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = UserState::decode(&b);
        let _ = Share::decode(&b);
        // With the right format byte, garbage goes deeper.
        let mut f = vec![FORMAT];
        f.extend_from_slice(&b);
        let _ = UserState::decode(&f);
        let _ = Share::decode(&f);
    }
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let mut b = bytes(&UserState::default());
    // The device count sits after format, 3 flags, lock, pushes and the failures flag.
    let at = 1 + 3 + 8 + 1 + 1;
    b[at..at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        UserState::decode(&b),
        Err(DecodeError::TooLong { .. })
    ));
    b[at..at + 4].copy_from_slice(&4_000u32.to_be_bytes());
    assert_eq!(UserState::decode(&b).err(), Some(DecodeError::Truncated));
}

#[test]
fn another_format_is_refused() {
    let mut b = bytes(&UserState::default());
    b[0] = FORMAT + 1;
    assert!(UserState::decode(&b).is_err());
}

#[test]
fn a_question_is_kept_to_64_bytes_on_a_character_boundary() {
    let cut = |q: &str| match TxnChallenge::question(q) {
        TxnChallenge::Question(q) => q.to_string(),
        other => panic!("{other:?}"),
    };
    assert_eq!(cut("123456"), "123456");
    assert_eq!(cut(&"7".repeat(70)), "7".repeat(64));
    // 1 + 2 × 40 bytes: byte 64 falls inside a character, so 63 are kept.
    let odd = format!("a{}", "é".repeat(40));
    assert_eq!(cut(&odd), odd[..63]);
}

#[test]
fn a_stored_question_that_is_not_utf8_is_refused() {
    let mut u = UserState::default();
    u.txns.push(Txn {
        id: TxnId(1),
        device: 1,
        purpose: Purpose::Login,
        expires_ms: 0,
        challenge: TxnChallenge::question("Q12345"),
    });
    let mut b = bytes(&u);
    assert!(UserState::decode(&b).is_ok());
    let at = b
        .windows(6)
        .position(|w| w == b"Q12345")
        .expect("the question is stored as is");
    b[at] = 0xFF;
    assert_eq!(
        UserState::decode(&b).err(),
        Some(DecodeError::Invalid("a question that is not UTF-8"))
    );
}
