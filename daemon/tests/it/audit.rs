//! The audit trail over the wire: `AuditRead` after a login, wrong answers,
//! the lock they make (R11) and an admin unlock lists each with its time, device and client
//! address; pages join up; the trail survives a restart; `slsd --audit-export` writes JSON lines
//! a JSON reader parses; no secret, PIN or answer is in it. And idempotent admin writes (item
//! 5): a re-sent `EnrolDevice` with the same key, on a new connection, is the first device.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sls_client::pipeline::Pipeline;
use sls_loadgen::daemon::{Daemon, GENEROUS_LIMITS};
use sls_loadgen::harness::{answer, begin, enrol, enrol_user, ocra_answer, stats};
use sls_protocol::ocra::DSC_PLUS_DEFAULT_SUITE;
use sls_protocol::*;

use crate::call;

const KEY: [u8; 32] = *b"audit-trail-card-secret-98765432";
const PIN: &str = "7391";
/// The end user's address, as the frontend reports it.
const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23));
/// The admin tool's own address: it connects from loopback.
const ADMIN_IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn start() -> Daemon {
    crate::slsd(&[&GENEROUS_LIMITS[..], &["--node-name", "node-a"]].concat())
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Every entry of `user`'s trail, page by page (`limit` a page), as PROTOCOL.md says to page.
async fn read_all(admin: &Pipeline, user: &str, limit: u16) -> Vec<AuditEntry> {
    let mut all = Vec::new();
    let (mut since_ms, mut skip) = (0, 0);
    loop {
        let reply = call(
            admin,
            Message::AuditRead {
                user: user.into(),
                since_ms,
                skip,
                limit,
            },
        )
        .await;
        let Message::AuditEntries {
            entries,
            more,
            next_since_ms,
            next_skip,
        } = reply
        else {
            panic!("AuditEntries expected, got {reply:?}")
        };
        assert!(entries.len() <= usize::from(limit));
        all.extend(entries);
        if !more {
            return all;
        }
        (since_ms, skip) = (next_since_ms, next_skip);
    }
}

/// A login with the DSC+ (R5): begin, then `response` (the right answer if `None`).
async fn try_login(fe: &Pipeline, dev: DeviceId, wrong: Option<&str>) -> (TxnId, String, Verdict) {
    let (txn, challenge) = begin(fe, "alice", dev, IP).await.unwrap();
    let Challenge::Numeric(q) = challenge else {
        panic!("numeric challenge expected")
    };
    let response = match wrong {
        Some(w) => w.to_owned(),
        None => ocra_answer(DSC_PLUS_DEFAULT_SUITE, &KEY, &q, PIN).unwrap(),
    };
    let v = answer(fe, txn, &response, IP).await.unwrap();
    (txn, response, v)
}

/// R11 through the trail: a login, a wrong answer, eight more and the tenth that locks, a
/// refusal while locked, the admin's unlock, a login again: each listed once, in order, with
/// its time, device, transaction and client address; the admin's with the admin's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r11_audit_read_lists_a_login_wrong_answers_the_lock_and_the_unlock() {
    let mut d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let t0 = now_ms();
    let dev = enrol(&admin, "alice", DeviceKind::DscPlus, &KEY, PIN)
        .await
        .unwrap();
    let mut answers = Vec::new();
    let (ok_txn, right, v) = try_login(&fe, dev, None).await;
    assert!(matches!(v, Verdict::Accepted { .. }), "{v:?}");
    answers.push(right);
    let mut wrong_txns = Vec::new();
    for i in 0..10 {
        let wrong = format!("{:08}", 31_415_900 + i);
        let (txn, _, v) = try_login(&fe, dev, Some(&wrong)).await;
        if i < 9 {
            assert!(matches!(v, Verdict::Rejected { .. }), "{i}: {v:?}");
        } else {
            assert!(
                matches!(v, Verdict::Locked { .. }),
                "R11: the 10th locks: {v:?}"
            );
        }
        wrong_txns.push(txn);
        answers.push(wrong);
    }
    // Refused while locked: the Begin's verdict.
    let locked = call(
        &fe,
        Message::Begin {
            user: "alice".into(),
            purpose: Purpose::Login,
            device: Some(dev),
            client: IP,
        },
    )
    .await;
    assert!(
        matches!(
            locked,
            Message::Judged {
                verdict: Verdict::Locked { .. }
            }
        ),
        "{locked:?}"
    );
    assert_eq!(
        call(
            &admin,
            Message::Unlock {
                user: "alice".into()
            }
        )
        .await,
        Message::Done {}
    );
    let (_, right, v) = try_login(&fe, dev, None).await;
    assert!(matches!(v, Verdict::Accepted { .. }), "unlocked: {v:?}");
    answers.push(right);
    let t1 = now_ms();

    let all = read_all(&admin, "alice", 64).await;
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (Message::name_of(e.event).unwrap(), e.outcome()))
        .collect();
    let mut expected = vec![
        ("EnrolUser", "done"),
        ("EnrolDevice", "done"),
        ("Begin", "challenge"),
        ("Answer", "accepted"),
    ];
    for _ in 0..9 {
        expected.extend([("Begin", "challenge"), ("Answer", "rejected")]);
    }
    expected.extend([
        ("Begin", "challenge"),
        ("Answer", "locked"),
        ("Begin", "locked"),
        ("Unlock", "done"),
        ("Begin", "challenge"),
        ("Answer", "accepted"),
    ]);
    assert_eq!(kinds, expected);
    for e in &all {
        assert!(
            (t0..=t1).contains(&e.at_ms),
            "time {} in {t0}..{t1}",
            e.at_ms
        );
        assert_eq!(e.user, "alice");
        assert_eq!(e.node, "node-a");
        let is_admin = e.event >= 0x0050;
        assert_eq!(
            e.client,
            Some(if is_admin { ADMIN_IP } else { IP }),
            "{e:?}"
        );
        if !is_admin {
            assert_eq!(e.device, Some(dev), "{e:?}");
        }
        if e.event == 0x0011 {
            assert!(
                e.txn.is_some() && e.purpose == Some(Purpose::Login),
                "{e:?}"
            );
        }
    }
    assert!(
        all.windows(2).all(|w| w[0].at_ms <= w[1].at_ms),
        "oldest first"
    );
    // The accepted answer's entry: its transaction and grant (R21: a DSC+ grants the session).
    let accepted = all
        .iter()
        .find(|e| e.txn == Some(ok_txn) && e.event == 0x0011)
        .unwrap();
    match accepted.verdict {
        Some(Verdict::Accepted { device, grant, .. }) => {
            assert_eq!(device, dev);
            assert_eq!(grant.kind, GrantKind::Session);
        }
        ref v => panic!("{v:?}"),
    }
    let locking = all
        .iter()
        .find(|e| e.txn == wrong_txns.last().copied() && e.event == 0x0011);
    assert!(matches!(
        locking.unwrap().verdict,
        Some(Verdict::Locked { .. })
    ));

    // Small pages join up to the same list, even inside one millisecond.
    for limit in [1, 2, 3, 5] {
        assert_eq!(
            read_all(&admin, "alice", limit).await,
            all,
            "pages of {limit}"
        );
    }

    // No secret, PIN or answer anywhere: not in an entry's values, not in the files.
    let lines: Vec<String> = all.iter().map(AuditEntry::to_json).collect();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        for (k, val) in v.as_object().unwrap() {
            if let Some(s) = val.as_str() {
                assert!(!answers.iter().any(|a| s.contains(a.as_str())), "{k}: {s}");
                assert!(
                    !s.contains(PIN) && !s.contains("audit-trail-card"),
                    "{k}: {s}"
                );
            }
        }
    }
    // GetStats counts them: recorded, held in memory, none dropped.
    let counters = stats(&admin).await.unwrap();
    assert!(counters["audit_recorded"] >= all.len() as u64);
    assert_eq!(counters["audit_held_entries"], all.len() as u64);
    assert!(counters["audit_held_bytes"] > 0);
    assert_eq!(counters["audit_dropped"], 0);
    drop((admin, fe));
    assert!(d.stop(Duration::from_secs(30)), "a clean stop");
    let mut on_disk = Vec::new();
    for f in std::fs::read_dir(d.data_dir.join("audit")).unwrap() {
        on_disk.extend(std::fs::read(f.unwrap().path()).unwrap());
    }
    assert!(!on_disk.is_empty());
    let has = |needle: &[u8]| on_disk.windows(needle.len()).any(|w| w == needle);
    for a in &answers {
        assert!(!has(a.as_bytes()), "an answer on disk: {a}");
    }
    assert!(
        !has(&KEY[..8]) && !has(PIN.as_bytes()),
        "the secret or PIN on disk"
    );

    // The export: one JSON object a line, for every entry kept, as the admin read them.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_slsd"))
        .args(["--data-dir"])
        .arg(&d.data_dir)
        .args(["--node-name", "node-a", "--audit-export", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object a line"))
        .collect();
    let expected: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported, expected);
    assert_eq!(exported[3]["client"], "198.51.100.23");
    assert_eq!(exported[3]["outcome"], "accepted");

    // A restart reads the trail back.
    d.restart().unwrap();
    let admin = d.connect(Role::Admin).await.unwrap();
    assert_eq!(read_all(&admin, "alice", 64).await, all);
}

/// An unknown name has no trail (nothing is kept for a name nobody enrolled), and a bad one is
/// BAD_CHARACTER (R10).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_read_of_an_unknown_user_is_empty_and_a_bad_name_refused() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    let fe = d.connect(Role::Frontend).await.unwrap();
    let failed = call(
        &fe,
        Message::PasswordFailed {
            user: "nobody".into(),
            client: IP,
        },
    )
    .await;
    assert!(matches!(failed, Message::Judged { .. }));
    assert!(read_all(&admin, "nobody", 10).await.is_empty());
    let bad = call(
        &admin,
        Message::AuditRead {
            user: "Bad".into(),
            since_ms: 0,
            skip: 0,
            limit: 1,
        },
    )
    .await;
    assert!(
        matches!(
            bad,
            Message::Error {
                status: Status::BAD_CHARACTER,
                ..
            }
        ),
        "{bad:?}"
    );
    // A frontend may not read the trail.
    let no = call(
        &fe,
        Message::AuditRead {
            user: "nobody".into(),
            since_ms: 0,
            skip: 0,
            limit: 1,
        },
    )
    .await;
    assert!(
        matches!(
            no,
            Message::Error {
                status: Status::FORBIDDEN,
                ..
            }
        ),
        "{no:?}"
    );
}

/// Item 5: `EnrolDevice` wrapped in `Idempotent`: its connection is closed as soon as it is
/// sent (the answer may be lost), then the same key on a new connection answers the first
/// device and the user has one device; the same key for another request is refused, and so
/// is a wrapped request that is not an admin's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_enrol_device_resent_on_a_new_connection_makes_one_device() {
    let d = start();
    let admin = d.connect(Role::Admin).await.unwrap();
    enrol_user(&admin, "ivy").await.unwrap();
    let key = *b"ivy-enrol-key-01";
    let enrol_dsc = Message::EnrolDevice {
        user: "ivy".into(),
        kind: DeviceKind::DscPlus,
        secret: KEY.to_vec(),
        pin: PIN.into(),
        suite: String::new(),
    };
    let wrapped = Message::idempotent(key, &enrol_dsc).unwrap();

    // Sent, and the connection closed before the answer is read.
    let lost = d.connect(Role::Admin).await.unwrap();
    let sent = lost.call(wrapped.clone());
    let _ = tokio::time::timeout(Duration::from_millis(1), sent).await;
    lost.conn.close(0u32.into(), b"gone");
    drop(lost);

    // Re-sent on a new connection, twice: the same device each time.
    let again = d.connect(Role::Admin).await.unwrap();
    let first = loop {
        match call(&again, wrapped.clone()).await {
            Message::Enrolled { device } => break device,
            Message::Error {
                status: Status::IDEMPOTENCY_IN_PROGRESS,
                ..
            } => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => panic!("{other:?}"),
        }
    };
    let third = d.connect(Role::Admin).await.unwrap();
    assert_eq!(
        call(&third, wrapped.clone()).await,
        Message::Enrolled { device: first }
    );
    let fe = d.connect(Role::Frontend).await.unwrap();
    let Message::UserStatus { devices, .. } =
        call(&fe, Message::Status { user: "ivy".into() }).await
    else {
        panic!("UserStatus expected")
    };
    assert_eq!(
        devices.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![first],
        "one device"
    );
    let enrolments = read_all(&admin, "ivy", 64)
        .await
        .iter()
        .filter(|e| e.event == 0x0051)
        .count();
    assert_eq!(enrolments, 1, "one change in the trail");

    // The same key for another request: refused, nothing done.
    let other = Message::idempotent(key, &Message::IssueTempCode { user: "ivy".into() }).unwrap();
    let reused = call(&third, other).await;
    assert!(
        matches!(
            reused,
            Message::Error {
                status: Status::IDEMPOTENCY_KEY_REUSED,
                ..
            }
        ),
        "{reused:?}"
    );
    // A frontend's request cannot be wrapped.
    let status = Message::Status { user: "ivy".into() };
    let not = call(
        &third,
        Message::idempotent(*b"ivy-status-key-1", &status).unwrap(),
    )
    .await;
    assert!(
        matches!(
            not,
            Message::Error {
                status: Status::NOT_IDEMPOTENT,
                ..
            }
        ),
        "{not:?}"
    );
    // Unwrapped, the same write makes a second device: the key is what deduplicates.
    assert!(
        matches!(call(&third, enrol_dsc).await, Message::Enrolled { device } if device != first)
    );
}
