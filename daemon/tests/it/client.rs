//! The client crate (`sls-client`) against a real slsd: its three examples end to end, failover
//! past a node that does not answer, refusals as errors that carry their status, and a read
//! moving to the next node when one stops.

use std::net::IpAddr;
use std::process::Output;
use std::time::Duration;

use sls_client::{
    Begun, Client, ClientConfig, ClientError, ClientTls, DeviceKind, NewUser, Purpose, Role,
    Status, Verdict,
};
use sls_loadgen::daemon::{find_built, Daemon};
use sls_loadgen::harness::{self, ocra_answer};
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE;
use sls_protocol::Message;

use crate::{call, slsd, within};

const CARD: &[u8] = b"12345678901234567890123456789012";
const APP: &[u8] = b"an ib key app key of 32 bytes...";
const IP: &str = "203.0.113.9";

fn config(d: &Daemon, role: Role) -> ClientConfig {
    let tls = ClientTls::from_dir(&d.tls_dir(), role).unwrap();
    ClientConfig::new([d.addr.to_string()], tls)
        .unwrap()
        .with_role(role)
}

/// Runs an example of the client crate with `args`, off the runtime's threads.
async fn example(name: &str, args: Vec<String>) -> Output {
    let path = format!("examples/{name}");
    let bin = find_built(&path, &["-p", "sls-client", "--example", name]).unwrap();
    tokio::task::spawn_blocking(move || std::process::Command::new(bin).args(args).output())
        .await
        .unwrap()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_log_in_approve_a_push_and_unlock() {
    let d = slsd(&[]);
    let admin = within(d.connect(Role::Admin)).await;
    within(harness::enrol(
        &admin,
        "alice",
        DeviceKind::DscPlus,
        CARD,
        "1234",
    ))
    .await;
    let bob = within(harness::enrol(
        &admin,
        "bob",
        DeviceKind::IbKey,
        APP,
        "123456",
    ))
    .await;
    let carol = within(harness::enrol(
        &admin,
        "carol",
        DeviceKind::DscPlus,
        CARD,
        "1234",
    ))
    .await;
    // Carol locked by ten wrong passwords (R11).
    let fe = within(d.connect(Role::Frontend)).await;
    let ip: IpAddr = IP.parse().unwrap();
    for _ in 0..10 {
        call(
            &fe,
            Message::PasswordFailed {
                user: "carol".into(),
                client: ip,
            },
        )
        .await;
    }
    let common = |user: &str| {
        vec![
            "--target".to_string(),
            d.addr.to_string(),
            "--tls-dir".into(),
            d.tls_dir().display().to_string(),
            "--user".into(),
            user.into(),
        ]
    };

    let mut args = common("alice");
    args.extend([
        "--card-key".into(),
        hex::encode(CARD),
        "--pin".into(),
        "1234".into(),
    ]);
    let o = example("dsc_login", args).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("accepted: device"), "{}", text(&o));

    let mut args = common("bob");
    args.extend([
        "--device".into(),
        bob.0.to_string(),
        "--app-key".into(),
        hex::encode(APP),
    ]);
    let o = example("push_login", args).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("the login screen shows"), "{}", text(&o));
    assert!(text(&o).contains("accepted: device"), "{}", text(&o));

    let o = example("unlock", common("carol")).await;
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    let before = out
        .lines()
        .find_map(|l| l.strip_prefix("before: locked_until_ms "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap();
    assert!(before > 0, "carol was locked: {out}");
    assert!(out.contains("after: locked_until_ms 0 failures 0"), "{out}");
    // And she logs in again.
    let verdict = within(harness::login_ocra(
        &fe,
        "carol",
        carol,
        DSC_PLUS_DEFAULT_SUITE,
        CARD,
        "1234",
        ip,
    ))
    .await;
    assert!(matches!(verdict, Verdict::Accepted { .. }), "{verdict:?}");
}

/// A UDP port on loopback where nothing listens.
fn dead_port() -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.local_addr().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_goes_past_a_node_where_nothing_answers_and_names_it() {
    let d = slsd(&[]);
    let dead = dead_port();
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Frontend).unwrap();
    let both = ClientConfig::new([dead.clone(), d.addr.to_string()], tls.clone())
        .unwrap()
        .with_connect_timeout(Duration::from_secs(1));
    let client = within(Client::connect(both)).await;
    assert_eq!(client.connected_node(), Some(d.addr.to_string()));
    let s = within(client.status("nobody")).await;
    assert_eq!(s.locked_until_ms, 0);

    // Only the dead node: an error within the connect timeout that names the address.
    let alone = ClientConfig::new([dead.clone()], tls)
        .unwrap()
        .with_connect_timeout(Duration::from_secs(1));
    let e = match tokio::time::timeout(Duration::from_secs(5), Client::connect(alone)).await {
        Ok(Err(e)) => e,
        Ok(Ok(_)) => panic!("connected to {dead} where nothing listens"),
        Err(_) => panic!("no error within 5 s for a 1 s connect timeout"),
    };
    assert!(e.is_unreachable(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("no slsd answering at {dead} within 1s")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_carries_its_status_and_a_wrong_answer_is_a_verdict() {
    let d = slsd(&[]);
    let admin = within(Client::connect(config(&d, Role::Admin))).await;
    within(admin.enrol_user(&NewUser::new("dave"))).await;
    let card = within(admin.enrol_device("dave", DeviceKind::DscPlus, CARD, "1234", "")).await;
    match admin.enrol_user(&NewUser::new("dave")).await {
        Err(ClientError::Refused { status, .. }) => assert_eq!(status, Status::ALREADY_EXISTS),
        other => panic!("a second enrolment: {other:?}"),
    }
    // A frontend certificate may not unlock.
    let fe = within(Client::connect(config(&d, Role::Frontend))).await;
    let e = fe.unlock("dave").await.unwrap_err();
    assert_eq!(e.status(), Some(Status::FORBIDDEN), "{e}");
    // The daemon grants the certificate's role, not the one asked for.
    let tls = ClientTls::from_dir(&d.tls_dir(), Role::Frontend).unwrap();
    let wrong = ClientConfig::new([d.addr.to_string()], tls)
        .unwrap()
        .with_role(Role::Admin);
    match Client::connect(wrong).await {
        Err(ClientError::Role { asked, granted }) => {
            assert_eq!((asked, granted), (Role::Admin, Role::Frontend))
        }
        other => panic!("a frontend certificate asking for admin: {:?}", other.err()),
    }
    // A wrong answer is an answer (R11): rejected with 9 left.
    let ip: IpAddr = IP.parse().unwrap();
    let Begun::Challenge(issued) = within(fe.begin("dave", Purpose::Login, Some(card), ip)).await
    else {
        panic!("no challenge")
    };
    let verdict = within(fe.answer(issued.txn, "00000000", ip)).await;
    assert_eq!(verdict, Verdict::Rejected { failures_left: 9 });
    // The right one to a new challenge is accepted.
    let Begun::Challenge(issued) = within(fe.begin("dave", Purpose::Login, Some(card), ip)).await
    else {
        panic!("no challenge")
    };
    let sls_protocol::Challenge::Numeric(q) = &issued.challenge else {
        panic!("{:?}", issued.challenge)
    };
    let right = ocra_answer(DSC_PLUS_DEFAULT_SUITE, CARD, q, "1234").unwrap();
    let verdict = within(fe.answer(issued.txn, &right, ip)).await;
    assert!(matches!(verdict, Verdict::Accepted { .. }), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_moves_to_the_next_node_when_one_stops() {
    let mut a = slsd(&[]);
    let tls_dir = a.tls_dir().display().to_string();
    let b = slsd(&["--tls-dir", &tls_dir]);
    let tls = ClientTls::from_dir(&a.tls_dir(), Role::Frontend).unwrap();
    let config = ClientConfig::new([a.addr.to_string(), b.addr.to_string()], tls)
        .unwrap()
        .with_connect_timeout(Duration::from_secs(1));
    let client = within(Client::connect(config)).await;
    assert_eq!(client.connected_node(), Some(a.addr.to_string()));
    within(client.status("erin")).await;
    let stopped = tokio::task::spawn_blocking(move || {
        a.stop(Duration::from_secs(10));
        a
    })
    .await
    .unwrap();
    // The next read is served by b, without an error to the caller.
    let s = within(client.status("erin")).await;
    assert_eq!(s.failures, 0);
    assert_eq!(client.connected_node(), Some(b.addr.to_string()));
    drop(stopped);
}
