//! A whole run: connect, enrol the fleet, hold the IB Key apps' connections open, drive the
//! plan, report.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use sls_protocol::{BulkOutcome, DeviceKind, Message, Role, ALPN_DEVICE, ALPN_FRONTEND};

use crate::abort::{self, Stopped, Watch};
use crate::apps;
use crate::fleet::{self, Mix, Persona, SimUser};
use crate::live::LiveMetrics;
use crate::report::{self, Summary};
use crate::scenario::{self, Behaviour, World};
use crate::schedule::{self, Plan};
use sls_client::pipeline::{self as client, Peer, Pipeline};
use sls_client::ClientTls;

/// Where the daemon is and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The daemon's address.
    pub addr: SocketAddr,
    /// The name its certificate is verified against (`--server-name`, else the host of
    /// `--target` as written).
    pub server_name: String,
    /// How long a handshake may take before the daemon counts as not answering.
    pub connect_timeout: Duration,
    /// The daemon's `tls` directory (`<data-dir>/tls`): `ca.pem`, `frontend.*`, `admin.*`.
    pub tls_dir: PathBuf,
}

impl Target {
    /// A target at `addr` with the daemon's own certificates in `tls_dir` (made for
    /// `localhost`), 5 s to connect.
    pub fn local(addr: SocketAddr, tls_dir: PathBuf) -> Target {
        Target {
            addr,
            server_name: "localhost".into(),
            connect_timeout: Duration::from_secs(5),
            tls_dir,
        }
    }

    /// The address, the server name and the connect timeout, as the client crate takes them.
    pub fn peer(&self) -> Peer {
        Peer {
            addr: self.addr,
            server_name: self.server_name.clone(),
            connect_timeout: self.connect_timeout,
        }
    }
}

/// The fleet and how it connects.
#[derive(Debug, Clone)]
pub struct FleetSpec {
    /// Users to enrol.
    pub users: usize,
    /// Their mix of personas.
    pub mix: Mix,
    /// The seed of their keys and PINs.
    pub seed: u64,
    /// Frontend connections (one long-lived stream each).
    pub connections: usize,
    /// Most IB Key app connections to hold open.
    pub max_apps: usize,
}

/// What a run produced.
pub struct RunResult {
    /// The summary, as written to `summary.json`.
    pub summary: Summary,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Steps that should not have happened, over all scenarios.
    pub unexpected: u64,
    /// Why the run stopped before its end, if it did (its report holds the steps so far).
    pub stopped: Option<Stopped>,
}

type Connected = Vec<(quinn::Connection, Pipeline, client::Pushes)>;

/// Connects `n` pipelines of `role` to the daemon.
pub async fn connect_pipelines(
    target: &Target,
    role: Role,
    n: usize,
    endpoint: &quinn::Endpoint,
) -> anyhow::Result<Connected> {
    connect_pipelines_idle(target, role, n, endpoint, Watch::default().lost_after).await
}

/// As [`connect_pipelines`], each connection given up after `idle` of the daemon's silence.
pub async fn connect_pipelines_idle(
    target: &Target,
    role: Role,
    n: usize,
    endpoint: &quinn::Endpoint,
    idle: Duration,
) -> anyhow::Result<Connected> {
    let tls = ClientTls::from_dir(&target.tls_dir, role)
        .with_context(|| format!("reading certificates from {}", target.tls_dir.display()))?;
    let alpn = if role == Role::Device {
        ALPN_DEVICE
    } else {
        ALPN_FRONTEND
    };
    let config = tls.quinn_config_idle(alpn, idle)?;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let conn = target.peer().connect(endpoint, config.clone()).await?;
        let (pipe, pushes) =
            Pipeline::open(&conn, &format!("sls-loadgen/{}-{i}", role.name())).await?;
        out.push((conn, pipe, pushes));
    }
    Ok(out)
}

/// Enrols the fleet through the admin stream in bulk (512 records a frame, many frames in
/// flight), fills in the device ids, and issues the temporary codes. Returns the time taken.
pub async fn enrol(admin: &Pipeline, users: &mut [SimUser]) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let records = fleet::bulk_records(users);
    let mut calls = tokio::task::JoinSet::new();
    for (batch_no, chunk) in records.chunks(sls_protocol::limits::MAX_BULK).enumerate() {
        let admin = admin.clone();
        let batch: Vec<_> = chunk.iter().map(|(_, _, r)| r.clone()).collect();
        calls.spawn(async move {
            (
                batch_no,
                admin.call(Message::EnrolBulk { records: batch }).await,
            )
        });
        // Bound the frames in flight.
        if calls.len() >= 64 {
            if let Some(done) = calls.join_next().await {
                apply_bulk(done?, &records, users)?;
            }
        }
    }
    while let Some(done) = calls.join_next().await {
        apply_bulk(done?, &records, users)?;
    }
    for user in users.iter_mut().filter(|u| u.persona == Persona::TempCode) {
        match admin
            .call(Message::IssueTempCode {
                user: user.name.clone(),
            })
            .await?
        {
            Message::TempCodeIssued { device, code, .. } => {
                user.temp_code = Some(code);
                user.temp_device = Some(device);
            }
            other => bail!("issuing a temporary code for {}: {other:?}", user.name),
        }
    }
    Ok(t0.elapsed())
}

type BulkReply = (usize, Result<Message, client::CallError>);

fn apply_bulk(
    done: BulkReply,
    records: &[(usize, usize, sls_protocol::BulkRecord)],
    users: &mut [SimUser],
) -> anyhow::Result<()> {
    let (batch_no, reply) = done;
    let base = batch_no * sls_protocol::limits::MAX_BULK;
    match reply? {
        Message::BulkEnrolled { outcomes } => {
            for (i, outcome) in outcomes.into_iter().enumerate() {
                let Some((u, d, rec)) = records.get(base + i) else {
                    bail!("more outcomes than records")
                };
                match outcome {
                    BulkOutcome::Enrolled(id) => users[*u].devices[*d].id = Some(id),
                    BulkOutcome::Refused(status) => {
                        bail!("enrolling {} ({}): {status}", rec.user, rec.kind)
                    }
                }
            }
            Ok(())
        }
        other => bail!("bulk enrolment answered {other:?}"),
    }
}

/// A fleet enrolled and connected, ready to be driven: [`prepare`], then [`Prepared::drive`]
/// once or more (the same users and connections each time), then [`Prepared::close`].
pub struct Prepared {
    endpoint: quinn::Endpoint,
    admin_conn: quinn::Connection,
    conns: Vec<quinn::Connection>,
    apps: Vec<quinn::Connection>,
    /// The fleet and its streams, as the steps see them.
    pub world: Arc<World>,
    targets: String,
    spec: FleetSpec,
    /// The daemon's settings as it reported them (`meta.daemon`).
    daemon: serde_json::Value,
}

/// Runs a whole load test against a running daemon and writes its report to `out`.
pub async fn run(
    target: &Target,
    spec: &FleetSpec,
    plan: &Plan,
    behaviour: Behaviour,
    out: Option<&Path>,
) -> anyhow::Result<RunResult> {
    run_live(target, spec, plan, behaviour, out, None).await
}

/// As [`run`], the measured steps also counted in `live` as they happen (`run --metrics`).
pub async fn run_live(
    target: &Target,
    spec: &FleetSpec,
    plan: &Plan,
    behaviour: Behaviour,
    out: Option<&Path>,
    live: Option<&LiveMetrics>,
) -> anyhow::Result<RunResult> {
    run_watched(target, spec, plan, behaviour, out, live, &Watch::default()).await
}

/// As [`run_live`], stopped early by `watch` (a lost connection, a threshold already lost):
/// the result then says why, and its report holds the steps so far. IB Key apps are connected
/// only when the plan runs a scenario that uses them.
pub async fn run_watched(
    target: &Target,
    spec: &FleetSpec,
    plan: &Plan,
    behaviour: Behaviour,
    out: Option<&Path>,
    live: Option<&LiveMetrics>,
    watch: &Watch,
) -> anyhow::Result<RunResult> {
    let spec = FleetSpec {
        max_apps: if plan.uses_apps() { spec.max_apps } else { 0 },
        ..spec.clone()
    };
    let prepared = prepare_idle(
        std::slice::from_ref(target),
        &spec,
        behaviour,
        watch.lost_after,
    )
    .await?;
    let result = prepared.drive_watched(plan, out, live, watch).await;
    prepared.close().await;
    result
}

/// Builds `spec`'s fleet and enrols it through an admin connection to `target` on `endpoint`,
/// saying how long it took. Returns the admin connection, its stream and the users with their
/// device ids filled in.
pub async fn enrol_fleet(
    target: &Target,
    spec: &FleetSpec,
    endpoint: &quinn::Endpoint,
) -> anyhow::Result<(quinn::Connection, Pipeline, Vec<SimUser>)> {
    enrol_fleet_idle(target, spec, endpoint, Watch::default().lost_after).await
}

async fn enrol_fleet_idle(
    target: &Target,
    spec: &FleetSpec,
    endpoint: &quinn::Endpoint,
    idle: Duration,
) -> anyhow::Result<(quinn::Connection, Pipeline, Vec<SimUser>)> {
    let mut admin = connect_pipelines_idle(target, Role::Admin, 1, endpoint, idle).await?;
    let (admin_conn, admin_pipe, _) = admin.pop().context("no admin connection")?;
    let mut users = fleet::build(spec.users, &spec.mix, spec.seed);
    let took = enrol(&admin_pipe, &mut users).await?;
    eprintln!(
        "enrolled {} users in {:.2} s",
        users.len(),
        took.as_secs_f64()
    );
    Ok((admin_conn, admin_pipe, users))
}

/// Enrols the fleet through the first target's admin stream and connects the frontends,
/// `spec.connections` of them spread in turn over `targets` (nodes sharing one store): the
/// steps take them in turn, so a login may begin on one node and be answered on another. The
/// IB Key apps connect to the first target.
pub async fn prepare(
    targets: &[Target],
    spec: &FleetSpec,
    behaviour: Behaviour,
) -> anyhow::Result<Prepared> {
    prepare_idle(targets, spec, behaviour, Watch::default().lost_after).await
}

/// As [`prepare`], the admin's and the frontends' connections given up after `idle` of the
/// daemon's silence ([`Watch::lost_after`]).
pub async fn prepare_idle(
    targets: &[Target],
    spec: &FleetSpec,
    behaviour: Behaviour,
    idle: Duration,
) -> anyhow::Result<Prepared> {
    let first = targets.first().context("no target")?;
    let endpoint = client::endpoint("127.0.0.1:0".parse()?)?;
    let (admin_conn, admin_pipe, users) = enrol_fleet_idle(first, spec, &endpoint, idle).await?;
    let daemon = crate::meta::welcome_json(&admin_pipe.welcome());
    let want = spec.connections.max(1);
    let mut per_target: Vec<_> = Vec::with_capacity(targets.len());
    for (t, target) in targets.iter().enumerate() {
        let n = want / targets.len() + usize::from(t < want % targets.len());
        per_target.push(connect_pipelines_idle(target, Role::Frontend, n, &endpoint, idle).await?);
    }
    // Interleaved: A, B, A, B, … so that consecutive calls go to different nodes.
    let mut frontends = Vec::with_capacity(want);
    let mut iters: Vec<_> = per_target.into_iter().map(Vec::into_iter).collect();
    while frontends.len() < want {
        let before = frontends.len();
        frontends.extend(iters.iter_mut().filter_map(Iterator::next));
        if frontends.len() == before {
            break;
        }
    }
    let (conns, pipes): (Vec<_>, Vec<_>) = frontends.into_iter().map(|(c, p, _)| (c, p)).unzip();
    // The push users whose app will be connected; the others are left out of the push
    // scenario (they would get the typed fallback).
    let app_users: Vec<usize> = users
        .iter()
        .enumerate()
        .filter(|(_, u)| {
            u.persona == Persona::IbKeyPush
                && u.device(DeviceKind::IbKey).is_some_and(|d| d.id.is_some())
        })
        .map(|(i, _)| i)
        .take(spec.max_apps)
        .collect();
    let apps = apps::connect(&users, &first.peer(), &first.tls_dir, &endpoint, &app_users).await?;
    let connected: Vec<usize> = apps.iter().map(|a| a.user).collect();
    let mut world = World::new(users, pipes, admin_pipe, behaviour);
    world.restrict_push_users(&connected);
    // One node: the closed loop's request/reply chains may run batched, a stream of their own
    // on each frontend connection. Over several nodes each step keeps taking the connections
    // in turn (a login may begin on one node and be answered on another).
    if targets.len() == 1 {
        world.batch_on(conns.clone());
    }
    let world = Arc::new(world);
    let apps: Vec<quinn::Connection> = apps
        .into_iter()
        .map(|app| {
            tokio::spawn(scenario::run_app(
                world.clone(),
                app.user,
                app.pipe,
                app.pushes,
            ));
            app.conn
        })
        .collect();
    eprintln!(
        "{} frontend connections, {} IB Key apps connected",
        conns.len(),
        apps.len()
    );
    let targets = targets
        .iter()
        .map(|t| t.addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    Ok(Prepared {
        endpoint,
        admin_conn,
        conns,
        apps,
        world,
        targets,
        spec: spec.clone(),
        daemon,
    })
}

impl Prepared {
    /// Drives `plan` and writes its report to `out`.
    pub async fn drive(&self, plan: &Plan, out: Option<&Path>) -> anyhow::Result<RunResult> {
        self.drive_live(plan, out, None).await
    }

    /// As [`Prepared::drive`], the measured steps also counted in `live`.
    pub async fn drive_live(
        &self,
        plan: &Plan,
        out: Option<&Path>,
        live: Option<&LiveMetrics>,
    ) -> anyhow::Result<RunResult> {
        self.drive_watched(plan, out, live, &Watch::default()).await
    }

    /// As [`Prepared::drive_live`], stopped early when a frontend's or the admin's connection
    /// is lost, or by `watch` (see [`crate::abort`]).
    pub async fn drive_watched(
        &self,
        plan: &Plan,
        out: Option<&Path>,
        live: Option<&LiveMetrics>,
        watch: &Watch,
    ) -> anyhow::Result<RunResult> {
        let Prepared {
            apps,
            world,
            targets,
            spec,
            daemon,
            conns,
            admin_conn,
            ..
        } = self;
        let watched: Vec<_> = conns.iter().chain([admin_conn]).cloned().collect();
        let watchers = abort::watch_connections(&watched, &watch.abort);
        let stats = schedule::run_watched(world.clone(), plan, live, watch).await;
        drop(watchers);
        let summaries: Vec<_> = stats
            .scenarios
            .iter()
            .map(|(_, s)| s.summary(stats.elapsed))
            .collect();
        let unexpected = summaries.iter().map(|s| s.unexpected_errors).sum();
        let merged = report::merged_histogram(stats.scenarios.iter().map(|(_, s)| s.as_ref()));
        let mut overall = report::overall(&summaries, &merged, stats.elapsed);
        overall.service_us = Some(report::Latency::of(&report::merged_service_histogram(
            stats.scenarios.iter().map(|(_, s)| s.as_ref()),
        )));
        let cpu_us_per_request = stats.cpu.as_secs_f64() * 1e6 / stats.requests.max(1) as f64;
        eprintln!(
            "load generator: {cpu_us_per_request:.2} µs of its own CPU per request ({} requests, {:.0}% of a core over the window){}",
            stats.requests,
            100.0 * stats.cpu.as_secs_f64() / stats.elapsed.as_secs_f64().max(1e-9),
            if stats.cpu.as_secs_f64() >= 0.8 * stats.elapsed.as_secs_f64() {
                ": the client may be the limit"
            } else {
                ""
            }
        );
        let summary = Summary {
            format: report::FORMAT,
            meta: crate::meta::Meta::of_run(stats.started, stats.elapsed, daemon.clone()),
            run: serde_json::json!({
                "target": targets,
                "users": spec.users,
                "seed": spec.seed,
                "connections": spec.connections,
                "ib_key_apps": apps.len(),
                "model": plan.model.to_json(),
                "duration_s": plan.duration.as_secs_f64(),
                "warmup_s": plan.warmup.as_secs_f64(),
                "dropped": stats.dropped,
                "client_requests": stats.requests,
                "client_cpu_s": stats.cpu.as_secs_f64(),
                "client_cpu_us_per_request": cpu_us_per_request,
                "stopped": stats.stopped.as_ref().map(ToString::to_string),
                "measured_s": stats.elapsed.as_secs_f64(),
            }),
            scenarios: summaries,
            overall,
            thresholds: Vec::new(),
        };
        let files = match out {
            Some(dir) => {
                let refs: Vec<_> = stats.scenarios.iter().map(|(_, s)| s.as_ref()).collect();
                report::write_all(dir, &summary, &refs, stats.started)?
            }
            None => Vec::new(),
        };
        Ok(RunResult {
            summary,
            files,
            unexpected,
            stopped: stats.stopped,
        })
    }

    /// Disconnects the frontends, the apps and the admin stream.
    pub async fn close(self) {
        for c in self
            .conns
            .iter()
            .chain(self.apps.iter())
            .chain(std::iter::once(&self.admin_conn))
        {
            c.close(0u32.into(), b"done");
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), self.endpoint.wait_idle()).await;
    }
}
