//! The harness the integration tests and the benches' end-to-end runner share, once
//! [`Daemon`](crate::daemon::Daemon) has started a real `slsd`: connect with a role, enrol users
//! and devices, log in, prove an IB Key app's key, read the daemon's counters.
//!
//! ```text
//!  Daemon::start_temp(slsd, flags) ─▶ d.connect(Role::Admin) ─▶ enrol(&admin, user, kind, key, pin)
//!                                     d.connect(Role::Frontend) ─▶ begin / answer, login_ocra
//!                                     d.connect(Role::Device) ─▶ prove_device, then pushes
//! ```
//!
//! Like the rest of this crate it speaks only the wire, never the daemon's internals. A call
//! does not panic: it returns an error naming the reply it did not expect, so that a test's
//! `.unwrap()` shows what came back.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Deref;

use anyhow::{bail, ensure, Context};
use sls_protocol::{
    limits, BulkOutcome, BulkRecord, Challenge, DeviceId, DeviceKind, Message, Purpose, Role,
    TxnId, Verdict,
};

use crate::run::{connect_pipelines, Target};
use sls_client::pipeline::{self as client, Pipeline, Pushes};

pub use crate::device::ocra_answer;

/// One connection with one pipeline, as a frontend, an admin tool or an IB Key app holds it, on
/// a client endpoint of its own. Dereferences to its [`Pipeline`]; dropping it disconnects.
pub struct Client {
    /// The client endpoint (one UDP socket).
    pub endpoint: quinn::Endpoint,
    /// The connection.
    pub conn: quinn::Connection,
    /// Its one long-lived stream.
    pub pipe: Pipeline,
    /// What the daemon sends unsolicited on that stream: an IB Key app's pushes.
    pub pushes: Pushes,
}

impl Client {
    /// Connects with `role`'s certificate (none for [`Role::Device`], on the device ALPN) and
    /// opens one pipeline; fails unless the daemon grants that role.
    pub async fn connect(target: &Target, role: Role) -> anyhow::Result<Client> {
        let (endpoint, mut opened) = open(target, role, 1).await?;
        let (conn, pipe, pushes) = opened.pop().context("no connection")?;
        Ok(Client {
            endpoint,
            conn,
            pipe,
            pushes,
        })
    }
}

impl Deref for Client {
    type Target = Pipeline;

    fn deref(&self) -> &Pipeline {
        &self.pipe
    }
}

/// `n` connections of one role on one client endpoint, one pipeline each (their pushes are
/// dropped).
pub struct Pool {
    /// The client endpoint they share.
    pub endpoint: quinn::Endpoint,
    /// The connections, in order.
    pub conns: Vec<quinn::Connection>,
    /// Their pipelines, in the same order.
    pub pipes: Vec<Pipeline>,
}

impl Pool {
    /// Connects `n` times with `role`'s certificate; fails unless the daemon grants that role.
    pub async fn connect(target: &Target, role: Role, n: usize) -> anyhow::Result<Pool> {
        let (endpoint, opened) = open(target, role, n).await?;
        let (conns, pipes) = opened.into_iter().map(|(c, p, _)| (c, p)).unzip();
        Ok(Pool {
            endpoint,
            conns,
            pipes,
        })
    }
}

type Opened = (quinn::Endpoint, Vec<(quinn::Connection, Pipeline, Pushes)>);

async fn open(target: &Target, role: Role, n: usize) -> anyhow::Result<Opened> {
    let endpoint = client::endpoint("127.0.0.1:0".parse()?)?;
    let opened = connect_pipelines(target, role, n, &endpoint).await?;
    for (_, pipe, _) in &opened {
        ensure!(
            pipe.role() == role,
            "asked for the {} role, the daemon granted {}",
            role.name(),
            pipe.role().name()
        );
    }
    Ok((endpoint, opened))
}

/// Enrols `user` as a primary user with no entity, no identification and no equity.
pub async fn enrol_user(admin: &Pipeline, user: &str) -> anyhow::Result<()> {
    let reply = admin
        .call(Message::EnrolUser {
            user: user.into(),
            entity: String::new(),
            identification: String::new(),
            primary: true,
            equity_usd: 0,
        })
        .await?;
    match reply {
        Message::Done {} => Ok(()),
        other => bail!("enrolling user {user}: {other:?}"),
    }
}

/// Enrols a device of `kind` with `secret` and `pin` and its kind's default suite for an
/// enrolled `user`.
pub async fn enrol_device(
    admin: &Pipeline,
    user: &str,
    kind: DeviceKind,
    secret: &[u8],
    pin: &str,
) -> anyhow::Result<DeviceId> {
    let reply = admin
        .call(Message::EnrolDevice {
            user: user.into(),
            kind,
            secret: secret.to_vec(),
            pin: pin.into(),
            suite: String::new(),
        })
        .await?;
    match reply {
        Message::Enrolled { device } => Ok(device),
        other => bail!("enrolling a {kind} for {user}: {other:?}"),
    }
}

/// Enrols `user` ([`enrol_user`]) and one device ([`enrol_device`]).
pub async fn enrol(
    admin: &Pipeline,
    user: &str,
    kind: DeviceKind,
    secret: &[u8],
    pin: &str,
) -> anyhow::Result<DeviceId> {
    enrol_user(admin, user).await?;
    enrol_device(admin, user, kind, secret, pin).await
}

/// Enrols `records` in bulk, [`limits::MAX_BULK`] a frame, one frame at a time; fails if any is
/// refused. Returns the device ids in the records' order.
pub async fn enrol_bulk(admin: &Pipeline, records: &[BulkRecord]) -> anyhow::Result<Vec<DeviceId>> {
    let mut ids = Vec::with_capacity(records.len());
    for chunk in records.chunks(limits::MAX_BULK) {
        let reply = admin
            .call(Message::EnrolBulk {
                records: chunk.to_vec(),
            })
            .await?;
        let Message::BulkEnrolled { outcomes } = reply else {
            bail!("bulk enrolment answered {reply:?}")
        };
        for (outcome, record) in outcomes.into_iter().zip(chunk) {
            match outcome {
                BulkOutcome::Enrolled(id) => ids.push(id),
                BulkOutcome::Refused(status) => bail!("enrolling {}: {status}", record.user),
            }
        }
    }
    ensure!(ids.len() == records.len(), "fewer outcomes than records");
    Ok(ids)
}

/// Begins a login of `user` with `device` from the end user's address `client`: the challenge.
pub async fn begin(
    fe: &Pipeline,
    user: &str,
    device: DeviceId,
    client: IpAddr,
) -> anyhow::Result<(TxnId, Challenge)> {
    match begin_reply(fe, user, device, client).await? {
        Message::ChallengeIssued { txn, challenge, .. } => Ok((txn, challenge)),
        other => bail!("begin for {user}: {other:?}"),
    }
}

/// As [`begin`], but the daemon's reply as it is: a challenge, or a verdict that refuses one
/// (`Locked`, `RateLimited`, ...).
pub async fn begin_reply(
    fe: &Pipeline,
    user: &str,
    device: DeviceId,
    client: IpAddr,
) -> anyhow::Result<Message> {
    let reply = fe
        .call(Message::Begin {
            user: user.into(),
            purpose: Purpose::Login,
            device: Some(device),
            client,
        })
        .await?;
    Ok(reply)
}

/// Answers the challenge of `txn` with `response`: the verdict.
pub async fn answer(
    fe: &Pipeline,
    txn: TxnId,
    response: &str,
    client: IpAddr,
) -> anyhow::Result<Verdict> {
    let reply = fe
        .call(Message::Answer {
            txn,
            response: response.into(),
            client,
        })
        .await?;
    match reply {
        Message::Judged { verdict } => Ok(verdict),
        other => bail!("answer to {txn:?}: {other:?}"),
    }
}

/// A whole typed login with an OCRA device (a DSC+, or an IB Key without its app connected):
/// begins, computes the answer under `suite` with `secret` and `pin`, answers. The verdict.
pub async fn login_ocra(
    fe: &Pipeline,
    user: &str,
    device: DeviceId,
    suite: &str,
    secret: &[u8],
    pin: &str,
    client: IpAddr,
) -> anyhow::Result<Verdict> {
    let (txn, challenge) = begin(fe, user, device, client).await?;
    let Challenge::Numeric(question) = challenge else {
        bail!("a typed challenge expected for {user}, got {challenge:?}")
    };
    let response = ocra_answer(suite, secret, &question, pin)
        .with_context(|| format!("computing the answer under {suite}"))?;
    answer(fe, txn, &response, client).await
}

pub use sls_client::pipeline::prove_device;

/// The IB Key app approves the push of `txn` for `user` (R6): the user typed `number` and
/// confirmed by biometrics; the app signs with its `secret` and the push's `nonce`. The daemon's
/// reply as it is.
pub async fn approve_push(
    app: &Pipeline,
    secret: &[u8],
    txn: TxnId,
    user: &str,
    number: u8,
    nonce: &[u8; 16],
) -> anyhow::Result<Message> {
    let method = sls_protocol::ApprovalMethod::Biometric;
    let mac = sls_protocol::push::push_mac(secret, txn, user, number, nonce, method, true);
    let reply = app
        .call(Message::PushAnswer {
            txn,
            approve: true,
            method,
            number,
            mac,
        })
        .await?;
    Ok(reply)
}

/// The frontend's `Await` of `txn`'s push decision (R6), sent in a task of its own so that the
/// caller can play the app meanwhile; the task yields the daemon's reply as it is.
pub fn await_decision(
    fe: &Pipeline,
    txn: TxnId,
    timeout_ms: u32,
) -> tokio::task::JoinHandle<anyhow::Result<Message>> {
    let fe = fe.clone();
    tokio::spawn(async move { Ok(fe.call(Message::Await { txn, timeout_ms }).await?) })
}

/// The daemon's counters, by name (an admin call).
pub async fn stats(admin: &Pipeline) -> anyhow::Result<HashMap<String, u64>> {
    match admin.call(Message::GetStats {}).await? {
        Message::Stats { counters } => {
            Ok(counters.into_iter().map(|c| (c.name, c.value)).collect())
        }
        other => bail!("stats: {other:?}"),
    }
}
