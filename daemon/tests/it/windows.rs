//! The windows a fault leaves, closed, against a real slsd over QUIC: a frontend reads the
//! first verdict of a transaction it answered (`TxnVerdict`, R12) while a second answer is
//! refused as ever; an IB Key app that proves its device again gets the pushes still open for
//! it, and none answered or expired (R6). The same across two nodes of a Redis Cluster, one of
//! them killed or frozen, is in `cluster::windows`.

use std::net::IpAddr;
use std::time::Duration;

use sls_client::pipeline::Pipeline;
use sls_loadgen::harness::{answer, approve_push, begin, enrol, ocra_answer, prove_device, stats};
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE;
use sls_protocol::*;

use crate::{call, slsd, within};

const CARD: &[u8] = b"12345678901234567890123456789012";
const APP: &[u8] = b"an ib key app key of 32 bytes...";

fn ip() -> IpAddr {
    "203.0.113.9".parse().unwrap()
}

/// The daemon's verdict of `txn`, read with `TxnVerdict`.
pub(crate) async fn read(fe: &Pipeline, txn: TxnId) -> Verdict {
    match call(fe, Message::TxnVerdict { txn }).await {
        Message::Judged { verdict } => verdict,
        other => panic!("TxnVerdict answered {other:?}"),
    }
}

/// A wrong answer to `right` (an 8-digit OCRA answer).
pub(crate) fn wrong(right: &str) -> String {
    format!("{:08}", (right.parse::<u64>().unwrap() + 1) % 100_000_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r12_a_frontend_reads_the_first_verdict_and_a_second_answer_is_still_refused() {
    let d = slsd(&[]);
    let admin = within(d.connect(Role::Admin)).await;
    let card = within(enrol(&admin, "vera", DeviceKind::DscPlus, CARD, "1234")).await;
    let fe = within(d.connect(Role::Frontend)).await;
    let (txn, q) = match within(begin(&fe, "vera", card, ip())).await {
        (txn, Challenge::Numeric(q)) => (txn, q),
        other => panic!("{other:?}"),
    };
    // Open: pending, and reading it spends nothing.
    assert_eq!(read(&fe, txn).await, Verdict::Pending);
    assert_eq!(read(&fe, txn).await, Verdict::Pending);
    let right = ocra_answer(DSC_PLUS_DEFAULT_SUITE, CARD, &q, "1234").unwrap();
    let first = within(answer(&fe, txn, &wrong(&right), ip())).await;
    assert_eq!(first, Verdict::Rejected { failures_left: 9 });

    // The first verdict, on another connection, as often as asked.
    let other = within(d.connect(Role::Frontend)).await;
    for _ in 0..3 {
        assert_eq!(read(&other, txn).await, first);
    }
    // A second answer is refused as ever, the right one too: `replayed`, counted as a replay,
    // not as a failure, never accepted; the verdict read stays the first one.
    let replays = within(stats(&admin)).await["replays"];
    for again in [right.as_str(), &wrong(&right)] {
        assert_eq!(
            within(answer(&other, txn, again, ip())).await,
            Verdict::Replayed
        );
    }
    assert_eq!(within(stats(&admin)).await["replays"], replays + 2);
    assert_eq!(read(&other, txn).await, first);
    match call(
        &fe,
        Message::Status {
            user: "vera".into(),
        },
    )
    .await
    {
        Message::UserStatus { failures, .. } => assert_eq!(failures, 1, "one failure counted"),
        m => panic!("{m:?}"),
    }

    // An accepted answer reads `accepted`, with its grant.
    let (txn2, q) = match within(begin(&fe, "vera", card, ip())).await {
        (txn, Challenge::Numeric(q)) => (txn, q),
        other => panic!("{other:?}"),
    };
    let right = ocra_answer(DSC_PLUS_DEFAULT_SUITE, CARD, &q, "1234").unwrap();
    let accepted = within(answer(&fe, txn2, &right, ip())).await;
    assert!(matches!(accepted, Verdict::Accepted { .. }), "{accepted:?}");
    assert_eq!(read(&other, txn2).await, accepted);

    // A transaction never issued is `unknown`, as for `Answer`.
    assert_eq!(read(&fe, TxnId(rand::random())).await, Verdict::Unknown);
    // An IB Key app may not read a verdict: a frontend's message.
    let app = within(d.connect(Role::Device)).await;
    match call(&app, Message::TxnVerdict { txn }).await {
        Message::Error { status, .. } => assert_eq!(status, Status::FORBIDDEN),
        m => panic!("{m:?}"),
    }
    // Past the replay window (5 s) after the answer it is forgotten: `unknown`, like a late
    // second answer.
    tokio::time::sleep(Duration::from_millis(5_300)).await;
    assert_eq!(read(&fe, txn).await, Verdict::Unknown);
    assert_eq!(
        within(answer(&fe, txn, &right, ip())).await,
        Verdict::Unknown
    );
}

/// The next push `app` receives within `wait`, if any: its txn and nonce.
pub(crate) async fn next_push(
    app: &mut sls_loadgen::harness::Client,
    wait: Duration,
) -> Option<(TxnId, [u8; 16])> {
    match tokio::time::timeout(wait, app.pushes.recv()).await {
        Ok(Some(Message::Push { txn, nonce, .. })) => Some((txn, nonce)),
        Ok(other) => panic!("not a push: {other:?}"),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r6_an_app_proving_its_device_again_gets_the_pushes_still_open_and_no_other() {
    let d = slsd(&["--challenge-ttl", "2s"]);
    let admin = within(d.connect(Role::Admin)).await;
    let ib = within(enrol(&admin, "otto", DeviceKind::IbKey, APP, "a1b2")).await;
    let fe = within(d.connect(Role::Frontend)).await;
    // The app's first connection: the daemon pushes there. The app answers the first push,
    // then loses that connection without the daemon knowing yet (a phone that changed
    // networks: until the idle timeout the daemon sends there).
    let mut old = within(d.connect(Role::Device)).await;
    within(prove_device(&old, ib, APP)).await;
    let push = || {
        let fe = fe.pipe.clone();
        async move {
            match within(begin(&fe, "otto", ib, ip())).await {
                (txn, Challenge::Push { number }) => (txn, number),
                other => panic!("no push: {other:?}"),
            }
        }
    };
    let (answered, number) = push().await;
    let (txn, nonce) = next_push(&mut old, Duration::from_secs(5)).await.unwrap();
    assert_eq!(txn, answered);
    let v = within(approve_push(&old, APP, txn, "otto", number, &nonce)).await;
    assert!(
        matches!(
            v,
            Message::Judged {
                verdict: Verdict::Accepted { .. }
            }
        ),
        "{v:?}"
    );
    // A push that expires before the app is back, then one still open when it is.
    let (expired, _) = push().await;
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let (open, number) = push().await;
    // Both went to the lost connection.
    let mut went = Vec::new();
    while let Some((txn, _)) = next_push(&mut old, Duration::from_millis(500)).await {
        went.push(txn);
    }
    assert_eq!(went, vec![expired, open]);

    // The app reconnects and proves its device: the open push comes, and only it.
    let mut new = within(d.connect(Role::Device)).await;
    within(prove_device(&new, ib, APP)).await;
    let (txn, nonce) = next_push(&mut new, Duration::from_secs(5))
        .await
        .expect("the open push is sent again on the new connection");
    assert_eq!(txn, open);
    assert_eq!(next_push(&mut new, Duration::from_millis(500)).await, None);
    let v = within(approve_push(&new, APP, txn, "otto", number, &nonce)).await;
    assert!(
        matches!(
            v,
            Message::Judged {
                verdict: Verdict::Accepted { .. }
            }
        ),
        "{v:?}"
    );
    // The frontend learns it as from any push: the verdict read, or an `Await`.
    assert!(matches!(read(&fe, open).await, Verdict::Accepted { .. }));

    // A third connection gets nothing: no push is open any more.
    let mut third = within(d.connect(Role::Device)).await;
    within(prove_device(&third, ib, APP)).await;
    assert_eq!(
        next_push(&mut third, Duration::from_millis(700)).await,
        None
    );
}
