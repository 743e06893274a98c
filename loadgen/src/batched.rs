//! The closed loop of the scenarios that are a request/reply chain (`dsc_plus`,
//! `ib_key_challenge`, `scc`, `temp_code`), batched: one task per frontend connection drives
//! all its steps in flight as login state machines ([`Machine`]), on a stream of its own, the
//! way `run --raw` does ([`crate::raw`]): every read decodes all the frames it holds, every
//! slot whose request was answered writes its next one, and the batch goes out in one write.
//! No task, channel or `oneshot` per call; one clock read per read.
//!
//! ```text
//!  frontend conn c ─ stream ─ slots 0..k: Begin → challenge → Answer → verdict → judged
//!                                          into the scenario's ScenarioStats, next login
//! ```
//!
//! Each step is judged and recorded as the task-per-call path does it ([`crate::judge`]), its
//! latency from the step's start (a closed loop has no due time), counted only from the
//! measured window's start; the progress lines, thresholds, `--abort-on-fail`, the live
//! metrics and the reports read the same stats. A connection takes each scenario's users
//! `c, c + connections, …` in turn. The plan runs here only when every scenario of it can
//! ([`batch`]); otherwise every step takes the task-per-call path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rand::distributions::{Distribution, WeightedIndex};
use rand::Rng;
use sls_protocol::{frame, DeviceKind, Frame};
use tokio::time::sleep_until;

use crate::abort::Abort;
use crate::judge::{judge, judge_unexpected_reply};
use crate::machine::{Login, Machine, Step};
use crate::report::{Outcome, ScenarioStats};
use crate::scenario::{Scenario, World};

/// The device a scenario that is a request/reply chain logs in with; `None` for the others.
fn device_of(scenario: Scenario) -> Option<DeviceKind> {
    match scenario {
        Scenario::DscPlus => Some(DeviceKind::DscPlus),
        Scenario::IbKeyChallenge => Some(DeviceKind::IbKey),
        Scenario::Scc => Some(DeviceKind::Scc),
        Scenario::TempCode => Some(DeviceKind::TempCode),
        _ => None,
    }
}

/// The logins of a plan that runs batched.
pub struct Batch {
    logins: Arc<Vec<Login>>,
    ranges: Vec<(usize, usize)>,
}

/// Whether `mix` (the scenarios a closed loop runs, with users) runs batched on `world`, and
/// its logins if so: when its connections allow it ([`World::batch_on`]), no user takes their
/// time (a slow user would hold a slot on a timer), and every scenario is a request/reply
/// chain whose every user has the device to log in with.
pub fn batch(world: &World, mix: &[(Scenario, u32)]) -> Option<Batch> {
    if world.batchable.is_empty() || mix.is_empty() || world.behaviour.slow_rate > 0.0 {
        return None;
    }
    // One list of logins for all the scenarios, each scenario's users a range of it.
    let mut logins = Vec::new();
    let mut ranges = Vec::with_capacity(mix.len());
    for (scenario, _) in mix {
        let kind = device_of(*scenario)?;
        let lo = logins.len();
        for &u in world.users_of(scenario.persona()) {
            logins.push(Login::of(&world.users[u], kind)?);
        }
        if logins.len() == lo {
            return None;
        }
        ranges.push((lo, logins.len()));
    }
    Some(Batch {
        logins: Arc::new(logins),
        ranges,
    })
}

/// The times of a run (see [`crate::schedule`]).
#[derive(Clone, Copy)]
pub struct Window {
    /// When the steps start.
    pub start: Instant,
    /// From when they count.
    pub measure_from: Instant,
    /// When no new step starts.
    pub end: Instant,
}

/// What a connection's task shares with the run.
#[derive(Clone)]
pub struct Shared {
    /// The stop switch.
    pub abort: Abort,
    /// Replies received inside the window, every connection's.
    pub replies: Arc<AtomicU64>,
    /// The live gauge of steps in flight.
    pub gauge: Option<prometheus_client::metrics::gauge::Gauge>,
}

/// One connection's steps: the login machine, the scenario and start of each slot's step.
struct Steps {
    machine: Machine,
    ranges: Vec<(usize, usize)>,
    /// Per scenario, the next of its users (this connection's index, then by `stride`).
    cursors: Vec<usize>,
    stride: usize,
    weights: Option<WeightedIndex<u32>>,
    wrong_rate: f64,
    scenario: Vec<usize>,
    began: Vec<Instant>,
}

impl Steps {
    fn request(&mut self, slot: usize, id: u32, out: &mut BytesMut, now: Instant) {
        if !self.machine.answering(slot) {
            let k = match &self.weights {
                Some(w) => w.sample(&mut rand::thread_rng()),
                None => 0,
            };
            self.scenario[slot] = k;
            self.began[slot] = now;
        }
        let k = self.scenario[slot];
        let ((lo, hi), cursor, stride) = (self.ranges[k], &mut self.cursors[k], self.stride);
        let wrong_rate = self.wrong_rate;
        self.machine.request(slot, id, out, || {
            let login = lo + *cursor % (hi - lo).max(1);
            *cursor = cursor.wrapping_add(stride);
            let wrong = wrong_rate > 0.0 && rand::thread_rng().gen_bool(wrong_rate.min(1.0));
            (login, wrong)
        });
    }

    /// The outcome of `slot`'s step if `reply` ended it.
    fn reply(&mut self, slot: usize, reply: sls_protocol::Message) -> Option<Outcome> {
        let wrong_happen = self.wrong_rate > 0.0;
        match self.machine.reply(slot, reply) {
            Step::Answering => None,
            Step::Failed(why) => Some(Outcome::Unexpected(why)),
            Step::Ended {
                reply,
                answered: true,
                wrong,
            } => Some(judge(&reply, wrong, wrong_happen)),
            Step::Ended { reply, .. } => Some(judge_unexpected_reply(&reply, wrong_happen)),
        }
    }
}

/// Runs `mix` (as [`batch`] found it) in a closed loop of `workers` steps in flight, spread
/// over the world's batchable connections, recording each step into `stats` (in `mix`'s
/// order). Returns once every connection's steps ended: at `window.end`, or when the run is
/// stopped, then the steps in flight drained (at most 15 s, 3 once stopped; 20 s past the
/// window's end in all).
pub async fn closed(
    batch: Batch,
    world: &World,
    mix: &[(Scenario, u32)],
    stats: Vec<Arc<ScenarioStats>>,
    workers: usize,
    window: Window,
    shared: Shared,
) {
    let Batch { logins, ranges } = batch;
    let conns = &world.batchable;
    let n = conns.len();
    let mut tasks = tokio::task::JoinSet::new();
    for (c, conn) in conns.iter().enumerate() {
        let slots = workers / n + usize::from(c < workers % n);
        if slots == 0 {
            continue;
        }
        let steps = Steps {
            machine: Machine::new(logins.clone(), slots),
            ranges: ranges.clone(),
            cursors: vec![c; ranges.len()],
            stride: n,
            weights: (mix.len() > 1)
                .then(|| WeightedIndex::new(mix.iter().map(|(_, w)| *w)).ok())
                .flatten(),
            wrong_rate: world.behaviour.wrong_rate.clamp(0.0, 1.0),
            scenario: vec![0; slots],
            began: vec![window.start; slots],
        };
        let (conn, stats, shared) = (conn.clone(), stats.clone(), shared.clone());
        tasks.spawn(async move {
            let agent = format!("sls-loadgen/batched-{c}");
            let Ok((send, recv)) = crate::raw::open(&conn, &agent, slots as u32 + 1).await else {
                return;
            };
            if let Some(g) = &shared.gauge {
                g.inc_by(slots as i64);
            }
            let io = Io { send, recv, slots };
            drive(io, steps, &stats, window, &shared).await;
            if let Some(g) = &shared.gauge {
                g.dec_by(slots as i64);
            }
        });
    }
    // Each task ends by itself (its drain is bounded); this bounds a write that never ends.
    let bound = window.end + Duration::from_secs(20);
    let _ = tokio::time::timeout_at(bound.into(), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}

struct Io {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    slots: usize,
}

/// One connection's loop (see the module documentation).
async fn drive(
    io: Io,
    mut steps: Steps,
    stats: &[Arc<ScenarioStats>],
    window: Window,
    shared: &Shared,
) {
    let Io {
        mut send,
        mut recv,
        slots,
    } = io;
    sleep_until(window.start.into()).await;
    let mut out = BytesMut::with_capacity(slots * 128);
    let mut inbuf = BytesMut::with_capacity(64 * 1024);
    let mut busy = vec![false; slots];
    let now = Instant::now();
    for (slot, b) in busy.iter_mut().enumerate() {
        steps.request(slot, slot as u32 + 1, &mut out, now);
        *b = true;
    }
    let mut outstanding = slots;
    let mut lost = send.write_all(&out).await.is_err();
    out.clear();
    let stop = {
        let abort = shared.abort.clone();
        async move {
            tokio::select! {
                _ = sleep_until(window.end.into()) => {}
                _ = abort.stopped() => {}
            }
        }
    };
    tokio::pin!(stop);
    // Once stopping: no new step starts, and the ones in flight have until this to end.
    let mut drain_until: Option<Instant> = None;
    while outstanding > 0 && !lost {
        let read = match drain_until {
            None => tokio::select! {
                biased;
                r = recv.read_chunk(64 * 1024, true) => r,
                _ = &mut stop => {
                    let grace = if shared.abort.is_stopped() { 3 } else { 15 };
                    drain_until = Some(Instant::now() + Duration::from_secs(grace));
                    continue;
                }
            },
            Some(until) => {
                let read = recv.read_chunk(64 * 1024, true);
                match tokio::time::timeout_at(until.into(), read).await {
                    Ok(r) => r,
                    Err(_) => break,
                }
            }
        };
        match read {
            Ok(Some(chunk)) => inbuf.extend_from_slice(&chunk.bytes),
            _ => {
                lost = true;
                break;
            }
        }
        let now = Instant::now();
        let mut frames = 0u64;
        loop {
            let Frame { id, message } = match frame::decode(&mut inbuf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) if e.recoverable() => continue,
                Err(_) => {
                    lost = true;
                    break;
                }
            };
            frames += 1;
            let slot = (id as usize).wrapping_sub(1);
            if slot >= slots || !busy[slot] {
                continue;
            }
            busy[slot] = false;
            outstanding -= 1;
            if let Some(outcome) = steps.reply(slot, message) {
                let began = steps.began[slot];
                if began >= window.measure_from {
                    // A closed loop has no schedule to be late on: response and service time
                    // agree.
                    let took = now.duration_since(began);
                    stats[steps.scenario[slot]].record(outcome, took, took);
                }
            }
            // A login in progress goes on to its verdict even once stopping.
            if drain_until.is_none() || steps.machine.answering(slot) {
                steps.request(slot, id, &mut out, now);
                busy[slot] = true;
                outstanding += 1;
            }
        }
        if now >= window.measure_from && now < window.end {
            shared.replies.fetch_add(frames, Ordering::Relaxed);
        }
        if !out.is_empty() && !lost {
            lost = send.write_all(&out).await.is_err();
            out.clear();
        }
    }
    if lost {
        // The steps in flight on a lost stream fail as the task-per-call path's calls do.
        let now = Instant::now();
        for slot in (0..slots).filter(|&s| busy[s]) {
            let began = steps.began[slot];
            if began >= window.measure_from {
                let took = now.duration_since(began);
                stats[steps.scenario[slot]].record(Outcome::Unexpected("transport"), took, took);
            }
        }
    }
    let _ = send.finish();
}
