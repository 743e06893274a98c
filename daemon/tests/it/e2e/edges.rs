//! PROTOCOL.md's "Behaviour at the edges", over real QUIC: what a stream does with a request
//! before `Hello`, a second `Hello`, request id 0 and a daemon-only type code (whatever its
//! body), and what an IB Key app that proved no device gets for a `PushAnswer`.

use std::time::Duration;

use sls_protocol::*;

use super::start;

/// Sends `frames` on a new stream of `conn`, finishes it, and returns every frame the daemon
/// wrote before finishing its side.
pub(super) async fn exchange(conn: &quinn::Connection, frames: &[Vec<u8>]) -> Vec<Frame> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frames.concat()).await.unwrap();
    send.finish().unwrap();
    let all = tokio::time::timeout(Duration::from_secs(5), recv.read_to_end(1 << 20))
        .await
        .unwrap()
        .unwrap();
    let mut buf = bytes::BytesMut::from(&all[..]);
    let mut out = Vec::new();
    while let Some(f) = frame::decode(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty());
    out
}

pub(super) fn encoded(id: u32, m: &Message) -> Vec<u8> {
    frame::to_bytes(id, m).unwrap().to_vec()
}

/// A frame of type `ty` with `body` as it is, sound or not.
fn raw(ty: u16, id: u32, body: &[u8]) -> Vec<u8> {
    let mut v = ((6 + body.len()) as u32).to_be_bytes().to_vec();
    v.extend_from_slice(&ty.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn hello() -> Message {
    Message::Hello {
        min_version: 1,
        max_version: 2,
        agent: "edges".into(),
    }
}

fn status(f: &Frame) -> Option<Status> {
    match &f.message {
        Message::Error { status, .. } => Some(*status),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_edges_are_answered_as_the_spec_says_and_the_stream_stays_open() {
    let d = start();
    let (_ep, conn) = super::raw_frontend(&d).await;

    // A request before Hello: VERSION, and the stream stays open for a Hello.
    let got = exchange(
        &conn,
        &[
            encoded(5, &Message::Ping {}),
            encoded(6, &hello()),
            encoded(7, &Message::Ping {}),
        ],
    )
    .await;
    let ids: Vec<u32> = got.iter().map(|f| f.id).collect();
    assert_eq!(ids, [5, 6, 7], "{got:?}");
    assert_eq!(status(&got[0]), Some(Status::VERSION));
    assert!(matches!(
        got[1].message,
        Message::Welcome { version: 2, .. }
    ));
    assert_eq!(got[2].message, Message::Pong {});

    // After Hello: a second Hello is UNEXPECTED (the version stays), id 0 is answered like
    // any other, and a daemon-only type is UNEXPECTED whether its body decodes (Pong, Done)
    // or not (a Welcome or a Judged with an empty body).
    let got = exchange(
        &conn,
        &[
            encoded(1, &hello()),
            encoded(2, &hello()),
            encoded(0, &Message::Ping {}),
            raw(0x8002, 3, b""),
            raw(0x8000, 4, b""),
            raw(0x8001, 5, b""),
            raw(0x8020, 6, b""),
            raw(0xffff, 7, b"\x00"),
            encoded(8, &Message::Ping {}),
        ],
    )
    .await;
    let ids: Vec<u32> = got.iter().map(|f| f.id).collect();
    assert_eq!(ids, [1, 2, 0, 3, 4, 5, 6, 7, 8], "{got:?}");
    assert!(matches!(got[0].message, Message::Welcome { .. }));
    assert_eq!(status(&got[1]), Some(Status::UNEXPECTED));
    assert_eq!(got[2].message, Message::Pong {});
    for f in &got[3..8] {
        assert_eq!(status(f), Some(Status::UNEXPECTED), "{f:?}");
    }
    assert_eq!(got[8].message, Message::Pong {});

    // An IB Key app that proved no device: FORBIDDEN for a PushAnswer.
    let app = d.connect(Role::Device).await.unwrap();
    let answer = Message::PushAnswer {
        txn: TxnId(7),
        approve: true,
        method: ApprovalMethod::Biometric,
        number: 42,
        mac: [0; 32],
    };
    assert!(matches!(
        app.call(answer).await.unwrap(),
        Message::Error {
            status: Status::FORBIDDEN,
            ..
        }
    ));
}
