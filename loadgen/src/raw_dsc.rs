//! DSC+ logins on the throughput path ([`crate::raw`]): `run --raw`, for the closed-loop
//! regime that measures the daemon's ceiling, and `run --raw --rate R`, its open loop
//! ([`crate::raw_open`]) that measures each request's latency at a fixed rate (issue 13).
//!
//! Each slot of a connection logs its users in one after another: `Begin`, the device's OCRA
//! answer to the challenge, `Answer`, `Judged`. A connection takes the fleet's DSC+ users
//! `c, c + connections, …` in turn, so no two slots of the run share a user while the fleet
//! has more users than slots.
//!
//! With [`Answers::Wrong`] every answer is wrong (the right one with its last digit changed):
//! a failure storm, each answer a failure the daemon must make durable before its verdict
//! (R11). Its unit of work is a failure judged; a user it has locked is passed over.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use bytes::BytesMut;
use sls_protocol::{DeviceKind, Message, Role, Verdict, ALPN_FRONTEND};

use crate::fleet::{Mix, Persona};
use crate::machine::{Login, Machine, Step};
use crate::raw::{self, Driver, Shape, Stats};
use crate::raw_open::{self, Open};
use crate::report::{Latency, ScenarioSummary, Summary};
use crate::run::{enrol_fleet, FleetSpec, RunResult, Target};
use sls_client::ClientTls;

/// What the slots answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answers {
    /// The device's answer: logins.
    Right,
    /// A wrong answer every time (a typo): a failure storm.
    Wrong,
}

/// One connection's DSC+ logins: the login machine ([`Machine`]) and the users it takes in
/// turn.
pub struct DscPlus {
    answers: Answers,
    machine: Machine,
    next: usize,
    stride: usize,
}

impl DscPlus {
    fn new(
        answers: Answers,
        users: Arc<Vec<Login>>,
        first: usize,
        stride: usize,
        slots: usize,
    ) -> DscPlus {
        DscPlus {
            answers,
            machine: Machine::new(users, slots),
            next: first,
            stride: stride.max(1),
        }
    }
}

impl Driver for DscPlus {
    fn request(&mut self, slot: usize, id: u32, out: &mut BytesMut) {
        let (next, stride, wrong) = (&mut self.next, self.stride, self.answers == Answers::Wrong);
        self.machine.request(slot, id, out, || {
            let user = *next;
            *next = next.wrapping_add(stride);
            (user, wrong)
        });
    }

    fn reply(&mut self, slot: usize, reply: Message) -> Result<u64, &'static str> {
        match self.machine.reply(slot, reply) {
            Step::Answering => Ok(0),
            Step::Failed("cannot_answer") => Err("cannot_answer"),
            Step::Failed(_) => Err("unexpected_message"),
            Step::Ended { reply, .. } => match reply {
                Message::Judged { verdict } => match (self.answers, verdict) {
                    (Answers::Right, Verdict::Accepted { .. }) => Ok(1),
                    (Answers::Wrong, Verdict::Rejected { .. }) => Ok(1),
                    // Locked by the storm (its tenth failure, or a `Begin` after it), or held
                    // back by the daemon's rate limits: passed over.
                    (Answers::Wrong, Verdict::Locked { .. } | Verdict::RateLimited { .. }) => Ok(0),
                    (Answers::Right, _) => Err("not_accepted"),
                    (Answers::Wrong, _) => Err("not_rejected"),
                },
                Message::Error { .. } => Err("error_frame"),
                _ => Err("unexpected_message"),
            },
        }
    }
}

/// Enrols a fleet of `users` in `mix` (its DSC+ users are the ones logged in), then drives
/// `shape`'s DSC+ logins on the raw path: a closed loop, or with `open` an open loop of
/// requests (a `Begin` or an `Answer` each) at its rate; `answers` right or all wrong. `out`
/// gets `summary.json`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    target: &Target,
    users: usize,
    mix: Mix,
    seed: u64,
    shape: &Shape,
    open: Option<&Open>,
    answers: Answers,
    out: Option<&std::path::Path>,
) -> anyhow::Result<RunResult> {
    if let Some(o) = open {
        o.check()?;
    }
    let spec = FleetSpec {
        users,
        mix,
        seed,
        connections: shape.connections,
        max_apps: 0,
    };
    let endpoint = sls_client::pipeline::endpoint("127.0.0.1:0".parse()?)?;
    let (admin_conn, _admin_pipe, users) = enrol_fleet(target, &spec, &endpoint).await?;
    let logins: Vec<Login> = users
        .iter()
        .filter(|u| u.persona == Persona::DscPlus)
        .filter_map(|u| Login::of(u, DeviceKind::DscPlus))
        .collect();
    if logins.is_empty() {
        bail!("no DSC+ user in the fleet (--mix dsc_plus=1)");
    }
    let logins = Arc::new(logins);
    let config =
        ClientTls::from_dir(&target.tls_dir, Role::Frontend)?.quinn_config(ALPN_FRONTEND)?;
    let (peer, shape2, open2) = (target.peer(), shape.clone(), open.cloned());
    let (stride, slots) = (shape.connections.max(1), shape.in_flight.max(1));
    let stats = tokio::task::spawn_blocking(move || {
        let driver = move |c| DscPlus::new(answers, logins.clone(), c, stride, slots);
        match open2 {
            Some(o) => raw_open::run(peer, config, &shape2, &o, driver),
            None => raw::run(peer, config, &shape2, driver),
        }
    })
    .await??;
    admin_conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(3), endpoint.wait_idle()).await;
    let summary = summary(target, &spec, shape, open, answers, &stats);
    let files = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            let json = crate::report::write_summary(dir, &summary)?;
            println!("wrote {}", json.display());
            // No interval logs on this path: the page has what ran and the table.
            let html = crate::report::write_html(dir)?;
            println!("wrote {}", html.display());
            vec![json, html]
        }
        None => Vec::new(),
    };
    Ok(RunResult {
        unexpected: summary.overall.unexpected_errors,
        summary,
        files,
        stopped: None,
    })
}

/// The summary of a raw run. A closed loop's scenario is `dsc_plus`, counted in logins, its
/// latency a login's (both round trips); an open loop's is `dsc_plus_request`, counted in
/// requests, its latency a request's from its due time, and `run` says how many were due,
/// late, unanswered, and how late the load generator wrote them.
fn summary(
    target: &Target,
    spec: &FleetSpec,
    shape: &Shape,
    open: Option<&Open>,
    answers: Answers,
    stats: &Stats,
) -> Summary {
    let secs = stats.elapsed.as_secs_f64().max(1e-9);
    let unexpected: u64 = stats.unexpected.iter().map(|(_, n)| n).sum();
    let cpu_us = stats.cpu_us_per_request();
    eprintln!(
        "load generator: {cpu_us:.2} µs of its own CPU per request ({} requests, {:.0}% of a core over the window, {} threads)",
        stats.requests,
        100.0 * stats.cpu.as_secs_f64() / secs,
        shape.threads,
    );
    let (name, count) = match (open, answers) {
        (Some(_), _) => ("dsc_plus_request", stats.requests),
        (None, Answers::Right) => ("dsc_plus", stats.units),
        (None, Answers::Wrong) => ("failure_storm", stats.units),
    };
    let scenario = ScenarioSummary {
        name: name.into(),
        count,
        ok: count,
        rate_per_s: count as f64 / secs,
        unexpected_errors: unexpected + stats.unanswered,
        unexpected: stats
            .unexpected
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .chain((stats.unanswered > 0).then(|| ("unanswered".to_owned(), stats.unanswered)))
            .collect(),
        errors: Default::default(),
        latency_us: Latency::of(&stats.latency_us),
        service_us: None,
        timeline: Vec::new(),
    };
    let mut run = serde_json::json!({
        "target": target.addr.to_string(),
        "users": spec.users,
        "seed": spec.seed,
        "connections": shape.connections,
        "in_flight": shape.in_flight,
        "threads": shape.threads,
        "model": "raw closed loop",
        "duration_s": shape.duration.as_secs_f64(),
        "warmup_s": shape.warmup.as_secs_f64(),
        "client_requests": stats.requests,
        "client_requests_per_s": stats.requests_per_s(),
        "client_cpu_s": stats.cpu.as_secs_f64(),
        "client_cpu_us_per_request": cpu_us,
    });
    if let (Some(o), Some(map)) = (open, run.as_object_mut()) {
        let (lat, lag) = (
            Latency::of(&stats.latency_us),
            Latency::of(&stats.send_lag_us),
        );
        eprintln!("{}", open_line(o, stats));
        let extra = serde_json::json!({
            "model": "raw open loop",
            "rate": o.rate,
            "tick_us": o.tick.as_secs_f64() * 1e6,
            "drain_s": o.drain.as_secs_f64(),
            "scheduled": stats.scheduled,
            "late": stats.late,
            "unanswered": stats.unanswered,
            "logins": stats.units,
            "logins_per_s": stats.units as f64 / secs,
            "request_latency_us": lat,
            "send_lag_us": lag,
        });
        if let Some(extra) = extra.as_object() {
            map.extend(extra.clone());
        }
    }
    Summary {
        format: crate::report::FORMAT,
        meta: crate::meta::Meta::of_run(
            std::time::SystemTime::now()
                .checked_sub(stats.elapsed)
                .unwrap_or(std::time::UNIX_EPOCH),
            stats.elapsed,
            serde_json::Value::Null,
        ),
        run,
        scenarios: vec![scenario.clone()],
        overall: scenario,
        thresholds: Vec::new(),
    }
}

/// An open loop's line: its rate, how many requests were due, late and unanswered, and how
/// late the load generator wrote them.
pub fn open_line(open: &Open, stats: &Stats) -> String {
    let h = &stats.latency_us;
    let lag = &stats.send_lag_us;
    format!(
        "open loop at {:.0} requests/s (ticks of {} µs): {} due in the window, {} answered, {} late (no free slot), {} unanswered; request latency from the due time p50 {} p90 {} p99 {} p99.9 {} µs; written after their due time p50 {} p99 {} µs",
        open.rate,
        open.tick.as_micros(),
        stats.scheduled,
        stats.requests,
        stats.late,
        stats.unanswered,
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        lag.value_at_quantile(0.5),
        lag.value_at_quantile(0.99),
    )
}
