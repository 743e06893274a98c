//! Prints real frames in hex, as PROTOCOL.md shows them: `cargo run -p sls-protocol --example frames`.

use std::net::{IpAddr, Ipv4Addr};

use sls_protocol::*;

fn main() {
    let txn = TxnId(0x5f0e_2c41_9a7b_4d13_8e62_01f4_a9c3_7b20);
    let client = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    let dev = DeviceInfo {
        id: DeviceId(1),
        kind: DeviceKind::DscPlus,
        limits: Limits::UNLIMITED,
    };
    let frames = [
        (
            1,
            Message::Hello {
                min_version: 1,
                max_version: 1,
                agent: "fe".into(),
            },
        ),
        (
            1,
            Message::Welcome {
                version: 1,
                max_frame: 65536,
                max_in_flight: 1024,
                role: Role::Frontend,
            },
        ),
        (
            2,
            Message::Begin {
                user: "alice".into(),
                purpose: Purpose::Login,
                device: Some(DeviceId(1)),
                client,
            },
        ),
        (
            2,
            Message::ChallengeIssued {
                txn,
                device: dev,
                challenge: Challenge::Numeric("472913".into()),
                expires_at_ms: 1_795_000_120_000,
            },
        ),
        (
            3,
            Message::Answer {
                txn,
                response: "30417852".into(),
                client,
            },
        ),
        (
            3,
            Message::Judged {
                verdict: Verdict::Rejected { failures_left: 9 },
            },
        ),
        (
            4,
            Message::PasswordFailed {
                user: "alice".into(),
                client,
            },
        ),
        (
            4,
            Message::Judged {
                verdict: Verdict::Locked {
                    until_ms: 1_795_086_400_000,
                },
            },
        ),
        (
            5,
            Message::Status {
                user: "Alice".into(),
            },
        ),
        (
            5,
            Message::Error {
                status: Status::BAD_CHARACTER,
                message: "BAD CHARACTER".into(),
            },
        ),
        (6, Message::TxnVerdict { txn }),
        (
            6,
            Message::Judged {
                verdict: Verdict::Rejected { failures_left: 9 },
            },
        ),
    ];
    for (id, m) in frames {
        let bytes = frame::to_bytes(id, &m).expect("encodes");
        let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
        println!(
            "{} (id {id}, {} bytes):\n{}\n",
            m.type_name(),
            bytes.len(),
            hex.join(" ")
        );
    }
}
