//! `slsctl`, the admin command line, as a help desk and an operator run it against a real
//! slsd: a locked user unlocked with its status before and after (R11), certificates made for
//! a frontend, an admin and a server with a real name, exit codes scripts rely on.

use std::net::IpAddr;
use std::path::Path;
use std::process::Output;

use serde_json::Value;
use sls_client::{Client, ClientConfig, ClientTls, Role};
use sls_loadgen::daemon::find_built;
use sls_loadgen::harness;
use sls_protocol::{DeviceKind, Message};

use crate::{call, slsd, within};

const CARD: &[u8] = b"12345678901234567890123456789012";

async fn run(bin: &str, build: &[&str], args: Vec<String>) -> Output {
    let exe = find_built(bin, build).unwrap();
    tokio::task::spawn_blocking(move || std::process::Command::new(exe).args(args).output())
        .await
        .unwrap()
        .unwrap()
}

async fn slsctl(args: &[&str]) -> Output {
    let args = args.iter().map(ToString::to_string).collect();
    run("slsctl", &["-p", "slsctl", "--bin", "slsctl"], args).await
}

fn shown(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The one JSON object `--json` prints.
fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", shown(o)))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_user_is_unlocked_and_certificates_carry_their_roles() {
    let d = slsd(&[]);
    let (addr, tls) = (d.addr.to_string(), s(&d.tls_dir()));
    let admin = within(d.connect(Role::Admin)).await;
    let card = within(harness::enrol(
        &admin,
        "frank",
        DeviceKind::DscPlus,
        CARD,
        "1234",
    ))
    .await;
    let fe = within(d.connect(Role::Frontend)).await;
    let ip: IpAddr = "203.0.113.7".parse().unwrap();
    for _ in 0..10 {
        call(
            &fe,
            Message::PasswordFailed {
                user: "frank".into(),
                client: ip,
            },
        )
        .await;
    }

    // Before: locked, with the lock's end (R11).
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &tls,
        "--json",
        "status",
        "frank",
    ])
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    let before = json(&o);
    assert_eq!(before["locked"], true, "{before}");
    assert!(before["locked_until_ms"].as_u64().unwrap() > 0, "{before}");
    assert!(
        before["locked_until"].as_str().unwrap().ends_with('Z'),
        "{before}"
    );
    assert_eq!(before["failures"], 10, "{before}");

    // An admin certificate made by slsctl unlocks; a frontend one cannot (FORBIDDEN, exit 3).
    let dirs = tempfile::tempdir().unwrap();
    let (f1, a1) = (dirs.path().join("f1"), dirs.path().join("a1"));
    for (role, name, out) in [("frontend", "f1", &f1), ("admin", "a1", &a1)] {
        let o = slsctl(&[
            "--tls-dir",
            &tls,
            "cert",
            role,
            "--name",
            name,
            "--out",
            &s(out),
        ])
        .await;
        assert!(o.status.success(), "{}", shown(&o));
    }
    // The frontend's certificate logs a frontend in.
    let tls_f1 = ClientTls::from_dir(&f1, Role::Frontend).unwrap();
    let f1_client = within(Client::connect(
        ClientConfig::new([addr.clone()], tls_f1).unwrap(),
    ))
    .await;
    assert_eq!(f1_client.welcome().unwrap().role, Role::Frontend);
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &s(&f1),
        "--role",
        "frontend",
        "--json",
        "unlock",
        "frank",
    ])
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", shown(&o));
    assert_eq!(json(&o)["error"]["status"], "FORBIDDEN", "{}", shown(&o));

    let o = slsctl(&["--target", &addr, "--tls-dir", &s(&a1), "unlock", "frank"]).await;
    assert!(o.status.success(), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("frank: unlocked"),
        "{}",
        shown(&o)
    );

    // After: not locked, no failures.
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &tls,
        "--json",
        "status",
        "frank",
    ])
    .await;
    let after = json(&o);
    assert_eq!(after["locked"], false, "{after}");
    assert_eq!(after["locked_until"], Value::Null, "{after}");
    assert_eq!(after["failures"], 0, "{after}");

    // The card reported lost: revoked, it is refused on its next use.
    let (dev, json_flag) = (card.0.to_string(), "--json");
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &tls,
        json_flag,
        "revoke",
        "frank",
        &dev,
        "--reason",
        "lost",
    ])
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    assert_eq!(json(&o)["done"], "revoked");
    match within(harness::begin_reply(&fe, "frank", card, ip)).await {
        Message::Error { status, .. } => assert_eq!(status, sls_protocol::Status::DEVICE_REVOKED),
        other => panic!("a revoked card began: {other:?}"),
    }

    // The help desk reads it all back: the devices in every state, the trail of the failures
    // with their address, the lock, the unlock and the revocation.
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &tls,
        "--json",
        "devices",
        "frank",
    ])
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    assert_eq!(json(&o)["devices"][0]["state"], "revoked", "{}", shown(&o));
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &tls,
        "--json",
        "audit",
        "frank",
    ])
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    let entries = json(&o)["entries"].as_array().unwrap().clone();
    let events: Vec<&str> = entries.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        events.iter().filter(|e| **e == "PasswordFailed").count(),
        10,
        "{events:?}"
    );
    for (event, at) in [("Unlock", "Unlock"), ("RevokeDevice", "RevokeDevice")] {
        assert!(events.contains(&event), "{at} not in {events:?}");
    }
    let failure = entries
        .iter()
        .find(|e| e["event"] == "PasswordFailed")
        .unwrap();
    assert_eq!(failure["client"], "203.0.113.7", "{failure}");
    assert!(failure["at_ms"].as_u64().unwrap() > 0, "{failure}");
    let revoked = entries
        .iter()
        .find(|e| e["event"] == "RevokeDevice")
        .unwrap();
    assert_eq!(revoked["device"], card.0, "{revoked}");

    // A refusal names its status (exit 3); nothing answering is exit 4.
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &tls,
        "--json",
        "enrol-user",
        "frank",
    ])
    .await;
    assert_eq!(o.status.code(), Some(3), "{}", shown(&o));
    assert_eq!(json(&o)["error"]["status"], "ALREADY_EXISTS");
    assert_eq!(json(&o)["error"]["code"], "0x0103");
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dead = dead.local_addr().unwrap().to_string();
    let o = slsctl(&[
        "--target",
        &dead,
        "--tls-dir",
        &tls,
        "--connect-timeout",
        "1s",
        "status",
        "frank",
    ])
    .await;
    assert_eq!(o.status.code(), Some(4), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!("no slsd answering at {dead}")),
        "{}",
        shown(&o)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_serving_a_real_name_is_reached_with_server_name() {
    let dir = tempfile::tempdir().unwrap();
    let tls = dir.path().join("tls");
    let t = s(&tls);
    let o = slsctl(&["cert", "init", "--out", &t]).await;
    assert!(o.status.success(), "{}", shown(&o));
    // Serving a real name: the default server certificate aside, one for sls.test only.
    for f in ["server.pem", "server.key"] {
        std::fs::rename(tls.join(f), tls.join(format!("{f}.old"))).unwrap();
    }
    let o = slsctl(&[
        "--tls-dir",
        &t,
        "cert",
        "server",
        "--name",
        "sls.test",
        "--out",
        &t,
    ])
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    let d = slsd(&["--tls-dir", &t]);
    let addr = d.addr.to_string();
    let admin = d.connect(Role::Admin);
    // The harness verifies "localhost", which this certificate does not carry.
    assert!(
        tokio::time::timeout(std::time::Duration::from_secs(10), admin)
            .await
            .unwrap()
            .is_err()
    );

    // Without --server-name the address is verified, and refused.
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &t,
        "--json",
        "status",
        "gina",
    ])
    .await;
    assert_eq!(o.status.code(), Some(4), "{}", shown(&o));
    assert!(shown(&o).contains("not valid for name"), "{}", shown(&o));
    let o = slsctl(&[
        "--target",
        &addr,
        "--tls-dir",
        &t,
        "--server-name",
        "sls.test",
        "--json",
        "status",
        "gina",
    ])
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    assert_eq!(json(&o)["locked"], false);

    // The load generator too.
    let args = [
        "run",
        "--target",
        &addr,
        "--tls-dir",
        &t,
        "--server-name",
        "sls.test",
        "--users",
        "50",
        "--mix",
        "dsc_plus=1",
        "--scenarios",
        "dsc_plus=1",
        "--rate",
        "50",
        "--duration",
        "1s",
        "--warmup",
        "0s",
        "--max-apps",
        "0",
    ];
    let o = run(
        "sls-loadgen",
        &["-p", "sls-loadgen", "--bin", "sls-loadgen"],
        args.iter().map(ToString::to_string).collect(),
    )
    .await;
    assert!(o.status.success(), "{}", shown(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("dsc_plus"),
        "{}",
        shown(&o)
    );
}
