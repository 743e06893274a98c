//! Property tests of the wire format: every message round-trips, and no byte string panics
//! the decoder or makes it allocate beyond the frame limit.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::{Arbitrary, Unstructured};
use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use sls_protocol::frame::{self, HEADER_LEN};
use sls_protocol::limits::MAX_FRAME;
use sls_protocol::*;

/// One hand-built message of every type, with every field set to something non-trivial.
fn one_of_each() -> Vec<Message> {
    let txn = TxnId(0x0123_4567_89ab_cdef_0011_2233_4455_6677);
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let dev = DeviceInfo {
        id: DeviceId(3),
        kind: DeviceKind::DscPlus,
        limits: Limits::UNLIMITED,
    };
    let accepted = Verdict::Accepted {
        device: DeviceId(3),
        kind: DeviceKind::IbKey,
        level: SecurityLevel::IbKey,
        limits: SecurityLevel::IbKey.limits(),
        grant: Grant {
            kind: GrantKind::TradingPin,
            valid_secs: 12 * 3600,
        },
    };
    vec![
        Message::Hello {
            min_version: 1,
            max_version: 1,
            agent: "frontend-7".into(),
        },
        Message::Welcome {
            version: 1,
            max_frame: 65536,
            max_in_flight: 256,
            role: Role::Frontend,
        },
        Message::Ping {},
        Message::Pong {},
        Message::Done {},
        Message::Error {
            status: Status::BAD_CHARACTER,
            message: "user name: BAD CHARACTER".into(),
        },
        Message::Begin {
            user: "alice".into(),
            purpose: Purpose::Withdrawal {
                amount_usd: 250_000,
            },
            device: Some(DeviceId(3)),
            client: v4,
        },
        Message::Devices {
            devices: vec![
                dev,
                DeviceInfo {
                    id: DeviceId(4),
                    kind: DeviceKind::Scc,
                    limits: SecurityLevel::Scc.limits(),
                },
            ],
        },
        Message::ChallengeIssued {
            txn,
            device: dev,
            challenge: Challenge::Numeric("123456".into()),
            expires_at_ms: 1_795_000_000_000,
        },
        Message::ChallengeIssued {
            txn,
            device: DeviceInfo {
                id: DeviceId(8),
                kind: DeviceKind::Sms,
                limits: SecurityLevel::None.limits(),
            },
            challenge: Challenge::Sms {
                code: "482913".into(),
            },
            expires_at_ms: 1_795_000_000_000,
        },
        Message::Answer {
            txn,
            response: "83238735".into(),
            client: v6,
        },
        Message::TxnVerdict { txn },
        Message::Await {
            txn,
            timeout_ms: 30_000,
        },
        Message::PasswordFailed {
            user: "bob".into(),
            client: v4,
        },
        Message::Status {
            user: "alice".into(),
        },
        Message::UserStatus {
            locked_until_ms: 1_795_000_000_000,
            failures: 10,
            failures_left: 0,
            opted_out: false,
            devices: vec![dev],
        },
        Message::BeginTyped {
            user: "alice".into(),
            purpose: Purpose::Login,
            device: Some(DeviceId(5)),
            client: v4,
        },
        Message::Notices {
            user: "alice".into(),
        },
        Message::UserNotices {
            replacement: Some(DeviceId(6)),
            activation: 2,
            activates_at_ms: 1_795_000_000_000,
            mass_lockout: true,
        },
        Message::Judged { verdict: accepted },
        Message::DeviceHello {
            device: DeviceId(9),
        },
        Message::DeviceNonce { nonce: [7; 32] },
        Message::DeviceProve { proof: [8; 32] },
        Message::Push {
            txn,
            user: "carol".into(),
            nonce: [1; 16],
            purpose: Purpose::Login,
            expires_at_ms: 5,
        },
        Message::PushAnswer {
            txn,
            approve: true,
            method: ApprovalMethod::Biometric,
            number: 42,
            mac: [2; 32],
        },
        Message::EnrolUser {
            user: "dave".into(),
            entity: "acme-llc".into(),
            identification: "1970-01-01|US|US|passport|X123".into(),
            primary: true,
            equity_usd: 2_000_000,
        },
        Message::EnrolDevice {
            user: "dave".into(),
            kind: DeviceKind::DscPlus,
            secret: vec![0x31; 32],
            pin: "1234".into(),
            suite: String::new(),
        },
        Message::Enrolled {
            device: DeviceId(77),
        },
        Message::EnrolBulk {
            records: vec![BulkRecord {
                user: "u1".into(),
                kind: DeviceKind::IbKey,
                secret: vec![5; 32],
                pin: "12ab!".into(),
                suite: "OCRA-1:HOTP-SHA256-8:QN08-PSHA256".into(),
            }],
        },
        Message::BulkEnrolled {
            outcomes: vec![
                BulkOutcome::Enrolled(DeviceId(1)),
                BulkOutcome::Refused(Status::BAD_CHARACTER),
            ],
        },
        Message::IssueTempCode {
            user: "erin".into(),
        },
        Message::TempCodeIssued {
            device: DeviceId(5),
            code: "ABCD2345".into(),
            full_until_ms: 10,
            portal_until_ms: 20,
        },
        Message::IssueOnlineScc {
            user: "erin".into(),
        },
        Message::OnlineSccIssued {
            device: DeviceId(6),
            secret: vec![9; 20],
            expires_at_ms: 30,
        },
        Message::Reactivate {
            user: "erin".into(),
            device: DeviceId(2),
        },
        Message::OrderReplacement {
            user: "erin".into(),
            secret: vec![3; 32],
            pin: "4321".into(),
        },
        Message::Ship {
            user: "erin".into(),
            device: DeviceId(8),
        },
        Message::Activate {
            user: "erin".into(),
            device: DeviceId(8),
        },
        Message::ShareRequest {
            requester: "frank".into(),
            owner: "erin".into(),
            device: DeviceId(2),
            txn,
            answer: "12345678".into(),
        },
        Message::ShareState {
            share: 11,
            pending: true,
        },
        Message::ShareDecide {
            share: 11,
            approve: false,
        },
        Message::ShareCancel { share: 11 },
        Message::OptOut {
            user: "gina".into(),
        },
        Message::OptIn {
            user: "gina".into(),
            by: "hank".into(),
        },
        Message::Unlock {
            user: "ivan".into(),
        },
        Message::GetStats {},
        Message::Stats {
            counters: vec![Counter {
                name: "failures_evaluated".into(),
                value: 10,
            }],
        },
        Message::ActivationStart {
            user: "jill".into(),
            phone: "41791234567".into(),
        },
        Message::ActivationToken {
            token: "12345678".into(),
        },
        Message::ActivateIbKey {
            user: "jill".into(),
            token: "12345678".into(),
            key: vec![4; 32],
            pin: "9z9z".into(),
        },
        // Version 3.
        Message::RevokeDevice {
            user: "lena".into(),
            device: DeviceId(1),
            suspend: false,
            reason: 1,
        },
        Message::ResumeDevice {
            user: "lena".into(),
            device: DeviceId(1),
        },
        Message::ReleaseWithdrawal {
            user: "lena".into(),
            txn,
        },
        Message::OptInOverride {
            user: "lena".into(),
        },
        // ---- version 3 ----
        Message::AuditRead {
            user: "alice".into(),
            since_ms: 1_700_000_000_000,
            skip: 2,
            limit: 20,
        },
        Message::AuditEntries {
            entries: vec![
                AuditEntry {
                    at_ms: 1_700_000_000_123,
                    user: "alice".into(),
                    event: 0x0011,
                    device: Some(DeviceId(3)),
                    txn: Some(txn),
                    client: Some(v6),
                    purpose: Some(Purpose::Withdrawal { amount_usd: 5 }),
                    verdict: Some(Verdict::Locked { until_ms: 9 }),
                    status: None,
                    node: "node-a".into(),
                },
                AuditEntry {
                    at_ms: 1_700_000_000_124,
                    user: "alice".into(),
                    event: 0x005e,
                    device: None,
                    txn: None,
                    client: Some(v4),
                    purpose: None,
                    verdict: None,
                    status: Some(Status::UNKNOWN_USER),
                    node: String::new(),
                },
            ],
            more: true,
            next_since_ms: 1_700_000_000_124,
            next_skip: 1,
        },
        Message::idempotent([9; 16], &Message::Unlock { user: "bob".into() }).unwrap(),
        Message::ListDevices {
            user: "alice".into(),
        },
        Message::DeviceList {
            devices: vec![
                DeviceDetail {
                    id: DeviceId(4),
                    kind: DeviceKind::DscPlus,
                    state: 6,
                    since_ms: 17,
                    usable: false,
                    shared_from: None,
                },
                DeviceDetail {
                    id: DeviceId(9),
                    kind: DeviceKind::DscPlus,
                    state: 1,
                    since_ms: 18,
                    usable: true,
                    shared_from: Some(ShareSource {
                        owner: "bob".into(),
                        device: DeviceId(4),
                    }),
                },
            ],
        },
        Message::UserDetail {
            user: "alice".into(),
        },
        Message::RemoveDevice {
            user: "alice".into(),
            device: DeviceId(5),
        },
        Message::ListShares {
            pending_only: true,
            after: 64,
        },
        Message::Shares {
            shares: vec![ShareInfo {
                share: 65,
                requester: "bob".into(),
                owner: "alice".into(),
                device: DeviceId(4),
                pending: true,
            }],
            next: 1088,
        },
        Message::UserDetails {
            entity: "acme".into(),
            identification: "JANE DOE".into(),
            primary: true,
            equity_usd: 5,
            opted_out: false,
            failures_ms: vec![1, 2],
            locked_until_ms: 9,
            withdrawn_day_usd: 10,
            withdrawn_5bd_usd: 20,
            left_day_usd: u64::MAX,
            left_5bd_usd: 0,
        },
        Message::UpdateUser {
            user: "alice".into(),
            entity: None,
            identification: Some(" jane  doe ".into()),
            primary: Some(false),
            equity_usd: None,
        },
    ]
}

#[test]
fn every_message_type_round_trips() {
    let samples = one_of_each();
    let covered: BTreeSet<u16> = samples.iter().map(Message::type_code).collect();
    let all: BTreeSet<u16> = Message::TYPES.iter().map(|t| t.0).collect();
    assert_eq!(covered, all, "one_of_each must cover every message type");
    for (i, m) in samples.iter().enumerate() {
        let id = i as u32 * 7919;
        let bytes = frame::to_bytes(id, m).unwrap();
        let got = frame::decode_exact(&bytes).unwrap();
        assert_eq!(
            got,
            Frame {
                id,
                message: m.clone()
            }
        );
        // The length field counts every byte after itself.
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        assert_eq!(len + 4, bytes.len());
        // Every strict prefix is incomplete, never an error and never a message.
        let mut buf = BytesMut::from(&bytes[..bytes.len() - 1]);
        assert_eq!(frame::decode(&mut buf), Ok(None));
        // A body cut short (length field rewritten to match) is a recoverable error.
        if bytes.len() > HEADER_LEN {
            let mut cut = BytesMut::from(&bytes[..bytes.len() - 1]);
            cut[..4].copy_from_slice(&((len - 1) as u32).to_be_bytes());
            let e = frame::decode(&mut cut).unwrap_err();
            assert!(e.recoverable(), "{m:?}: {e}");
            assert_eq!(e.id, id);
        }
    }
}

#[test]
fn field_limits_hold_on_decode() {
    // A user name one byte over MAX_USER, written by hand.
    let mut buf = BytesMut::new();
    let user = vec![b'a'; limits::MAX_USER + 1];
    buf.put_u32((6 + 1 + user.len()) as u32);
    buf.put_u16(0x0014);
    buf.put_u32(1);
    buf.put_u8(user.len() as u8);
    buf.put_slice(&user);
    let e = frame::decode(&mut buf).unwrap_err();
    assert_eq!(e.status(), Status::MALFORMED_FRAME);
    // Invalid UTF-8 in a user name.
    let mut buf = BytesMut::new();
    buf.put_u32(6 + 1 + 2);
    buf.put_u16(0x0014);
    buf.put_u32(2);
    buf.put_u8(2);
    buf.put_slice(&[0xc3, 0x28]);
    assert_eq!(
        frame::decode(&mut buf).unwrap_err().status(),
        Status::INVALID_UTF8
    );
    // A list count far beyond the bytes present must not allocate for the count.
    let mut buf = BytesMut::new();
    buf.put_u32(6 + 2);
    buf.put_u16(0x8010);
    buf.put_u32(3);
    buf.put_u16(60);
    assert_eq!(
        frame::decode(&mut buf).unwrap_err().status(),
        Status::MALFORMED_FRAME
    );
}

/// PROTOCOL.md §2 and §4: `MAX_FRAME` (the `Welcome.max_frame` the daemon sends) counts the
/// 4-byte length prefix: `len` 65,532 (a 65,536-byte frame) is waited for, 65,533 is too large.
#[test]
fn max_frame_counts_the_length_prefix() {
    assert_eq!(MAX_FRAME, 65_536);
    let mut buf = BytesMut::new();
    buf.put_u32((MAX_FRAME - 4) as u32);
    buf.put_u16(0x0002);
    buf.put_u32(1);
    assert!(
        frame::decode(&mut buf).unwrap().is_none(),
        "a whole frame of MAX_FRAME bytes is allowed"
    );
    let mut buf = BytesMut::new();
    buf.put_u32((MAX_FRAME - 3) as u32);
    buf.put_u16(0x0002);
    buf.put_u32(1);
    let e = frame::decode(&mut buf).unwrap_err();
    assert_eq!(e.status(), Status::FRAME_TOO_LARGE);
    assert!(!e.recoverable());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Any message the `arbitrary` generators build (the same ones the fuzz target uses) either
    /// is refused by the encoder for a field over its limit, or round-trips exactly.
    #[test]
    fn arbitrary_messages_round_trip(seed in proptest::collection::vec(any::<u8>(), 0..600), id in any::<u32>()) {
        let mut u = Unstructured::new(&seed);
        if let Ok(m) = Message::arbitrary(&mut u) {
            match frame::to_bytes(id, &m) {
                Ok(bytes) => {
                    prop_assert!(bytes.len() <= MAX_FRAME);
                    prop_assert_eq!(frame::decode_exact(&bytes).unwrap(), Frame { id, message: m });
                }
                Err(EncodeError::TooLong { len, max }) => prop_assert!(len > max),
                Err(e) => prop_assert!(false, "unexpected encode error {e}"),
            }
        }
    }

    /// Random bytes never panic the decoder; every outcome is a frame, a wait or an error, and
    /// the decoder never reserves beyond the frame limit.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..64 {
            let before = buf.len();
            match frame::decode(&mut buf) {
                Ok(Some(_)) => prop_assert!(buf.len() < before),
                Ok(None) => break,
                Err(e) if e.recoverable() => prop_assert!(buf.len() < before),
                Err(_) => break,
            }
            prop_assert!(buf.capacity() <= MAX_FRAME + bytes.len());
        }
    }

    /// A valid frame with its header kept but its body mutated or truncated never panics.
    #[test]
    fn mutated_frames_never_panic(i in 0usize..45, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4), cut in any::<usize>()) {
        let samples = one_of_each();
        let m = &samples[i % samples.len()];
        let mut bytes = frame::to_bytes(1, m).unwrap().to_vec();
        for (at, x) in flips {
            let n = bytes.len();
            bytes[at % n] ^= x;
        }
        bytes.truncate(cut % (bytes.len() + 1));
        let _ = frame::decode_exact(&bytes);
        let mut buf = BytesMut::from(&bytes[..]);
        let _ = frame::decode(&mut buf);
    }
}

/// The property test above is only as good as its generator: check that it builds encodable
/// messages of most types, not only refusals.
#[test]
fn arbitrary_generator_reaches_most_types() {
    let mut seen = BTreeSet::new();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..4000 {
        let seed: Vec<u8> = (0..200)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        if let Ok(m) = Message::arbitrary(&mut Unstructured::new(&seed)) {
            if let Ok(bytes) = frame::to_bytes(1, &m) {
                assert_eq!(frame::decode_exact(&bytes).unwrap().message, m);
                seen.insert(m.type_code());
            }
        }
    }
    assert!(
        seen.len() * 10 >= Message::TYPES.len() * 8,
        "only {} of {} types",
        seen.len(),
        Message::TYPES.len()
    );
}
