//! No user enumeration over the wire: a password failure for a name nobody enrolled is
//! answered like one for an enrolled user with no device, in content and in time. The time is
//! compared as two distributions sampled in turn, never against a fixed figure: the answers
//! for unknown names must not be faster than the known names' median much more (or less) often
//! than half the time. Before the decoy write they were faster about 90% of the time: the known
//! user's answer waited for the journal's fsync and the unknown one's did not. Once the audit
//! trail came, the same shares reached 0.80-0.96 (or, on a quieter disk, 0.25): a known name's
//! failure was followed by the trail's own `fdatasync`, which the next answer's fsync queued
//! behind, until an unknown name's got a decoy record in the trail too.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use sls_loadgen::daemon::NO_LIMITS;
use sls_loadgen::harness::enrol_user;
use sls_protocol::{Message, Role, Verdict};

use crate::call;

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
/// Samples of each kind; each name fails once, so that no lock changes the path.
const SAMPLES: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_is_answered_like_a_known_one_in_content_and_in_time() {
    let d = crate::slsd(&[&NO_LIMITS[..], &["--log", "warn"]].concat());
    let admin = d.connect(Role::Admin).await.unwrap();
    for i in 0..SAMPLES {
        enrol_user(&admin, &format!("known{i}")).await.unwrap();
    }
    let fe = d.connect(Role::Frontend).await.unwrap();
    let fail = |user: String| {
        let fe = &fe;
        async move {
            let t0 = Instant::now();
            let reply = call(fe, Message::PasswordFailed { user, client: IP }).await;
            (reply, t0.elapsed())
        }
    };
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..SAMPLES {
        // In turn, so that whatever else the machine does falls on both alike.
        let (k, u) = if i % 2 == 0 {
            let k = fail(format!("known{i}")).await;
            (k, fail(format!("ghost{i}")).await)
        } else {
            let u = fail(format!("ghost{i}")).await;
            (fail(format!("known{i}")).await, u)
        };
        // Content: the same countdown.
        assert_eq!(k.0, u.0, "sample {i}");
        assert!(
            matches!(
                k.0,
                Message::Judged {
                    verdict: Verdict::Rejected { failures_left: 9 }
                }
            ),
            "{:?}",
            k.0
        );
        known.push(k.1);
        unknown.push(u.1);
        // And the same status.
        let ks = call(
            &fe,
            Message::Status {
                user: format!("known{i}"),
            },
        )
        .await;
        let us = call(
            &fe,
            Message::Status {
                user: format!("ghost{i}"),
            },
        )
        .await;
        assert_eq!(ks, us, "status {i}");
    }
    known.sort_unstable();
    let median: Duration = known[known.len() / 2];
    let faster = unknown.iter().filter(|t| **t < median).count();
    let share = faster as f64 / unknown.len() as f64;
    eprintln!(
        "known median {median:?}; unknown faster than it: {faster}/{} ({share:.2})",
        unknown.len()
    );
    assert!(
        (0.2..=0.8).contains(&share),
        "unknown names answered faster than the known median {share:.2} of the time"
    );
}
