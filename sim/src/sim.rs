//! The simulation: a world of users and devices, a core over a simulated journal, requests in
//! flight, the clock, the faults, and the checks after every step.

use std::collections::{BTreeMap, VecDeque};
use std::task::Poll;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sls_engine::{CoreConfig, DeviceSpec, FakeClock, MemoryStore, RatePolicy, UserSpec};
use sls_protocol::{DeviceId, DeviceKind};

use crate::journal::{Fault, SimJournal};
use crate::model::{Model, Numbers, TxnState};
use crate::requests::{core_over, journal, now_or_never, spawn, Judged, Req, Shown, SimCore, Task};
use crate::world::{Device, Rng, Role, User};

/// 2026-11-27T00:00:00Z, a Friday: the first weekend comes early.
const START_MS: u64 = 1_795_737_600_000;

/// A run's parameters.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// The seed.
    pub seed: u64,
    /// Steps to run.
    pub steps: u64,
}

/// A run that kept every invariant.
#[derive(Debug, Clone)]
pub struct Summary {
    /// SHA-256 over the trace of steps and replies, hex.
    pub digest: String,
    /// Steps run.
    pub steps: u64,
    /// Simulated time covered, ms.
    pub span_ms: u64,
    /// Counts of what happened, by name.
    pub counts: BTreeMap<&'static str, u64>,
}

/// A broken invariant.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The steps asked for.
    pub steps: u64,
    /// The step at which it broke (1-based).
    pub step: u64,
    /// What broke.
    pub why: String,
    /// The last lines of the trace.
    pub tail: Vec<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "seed {} failed at step {}: {}",
            self.seed, self.step, self.why
        )?;
        writeln!(f, "the trace's last steps:")?;
        for l in &self.tail {
            writeln!(f, "  {l}")?;
        }
        write!(
            f,
            "replay: sls-sim --seed {} --steps {}",
            self.seed, self.step
        )
    }
}

/// A transaction the world can answer.
#[derive(Debug, Clone)]
pub(crate) struct Open {
    pub user: usize,
    pub device: DeviceId,
    pub shown: Shown,
}

pub(crate) struct Sim {
    pub rng: Rng,
    pub config: CoreConfig,
    pub clock: FakeClock,
    pub disk: SimJournal,
    pub core: SimCore,
    pub model: Model,
    pub users: Vec<User>,
    /// Transactions begun, by id (forgotten with the model's).
    pub open: BTreeMap<u128, Open>,
    pub tasks: BTreeMap<u64, Task>,
    pub next_task: u64,
    pub restarts: u64,
    pub seed: u64,
    pub step: u64,
    trace: Sha256,
    tail: VecDeque<String>,
    pub counts: BTreeMap<&'static str, u64>,
    /// Users whose state the step may have changed: checked after it.
    pub touched: Vec<String>,
}

pub(crate) type Check = Result<(), String>;

fn config() -> CoreConfig {
    CoreConfig {
        rates: RatePolicy {
            per_user: 0,
            per_client: 0,
            global: 0,
            ..RatePolicy::default()
        },
        ..CoreConfig::default()
    }
}

fn numbers(c: &CoreConfig) -> Numbers {
    let ms = |d: Duration| d.as_millis() as u64;
    Numbers {
        threshold: usize::from(c.lockout_threshold),
        window_ms: ms(c.lockout_window),
        lock_ms: ms(c.lock_duration),
        ttl_ms: ms(c.challenge_ttl),
        replay_ms: ms(c.replay_window),
        temp_ms: ms(c.temp_full) + ms(c.temp_portal),
        auto_ms: ms(c.auto_activation),
    }
}

impl Sim {
    /// A world of a few users (the seed says how many), each with a DSC+ and maybe an IB Key,
    /// enrolled and made durable before the first step.
    pub fn new(seed: u64) -> Result<Sim, String> {
        let mut rng = Rng::new(seed);
        let config = config();
        let clock = FakeClock::at(Duration::from_millis(START_MS));
        let disk = SimJournal::default();
        let store = MemoryStore::with_journal(config.clone(), disk.clone());
        let core = core_over(config.clone(), store, &clock, seed);
        let mut model = Model::new(numbers(&config));
        let mut users = Vec::new();
        for i in 0..rng.range(3, 8) {
            let name = format!("u{i}");
            let spec = UserSpec {
                name: name.clone(),
                primary: true,
                equity_usd: 2_000_000,
                ..UserSpec::default()
            };
            now_or_never(core.enrol_user(&spec))
                .ok_or("enrol pending")?
                .map_err(|e| format!("enrol {name}: {e}"))?;
            let mut devices = Vec::new();
            let kinds: &[DeviceKind] = if rng.chance(700) {
                &[DeviceKind::DscPlus, DeviceKind::IbKey]
            } else {
                &[DeviceKind::DscPlus]
            };
            for kind in kinds {
                let secret = rng.bytes::<32>().to_vec();
                let pin = format!("{:04}", rng.below(10_000));
                let spec = DeviceSpec {
                    kind: *kind,
                    secret: secret.clone(),
                    pin: pin.clone(),
                    suite: String::new(),
                };
                let id = now_or_never(core.enrol_device(&name, &spec))
                    .ok_or("enrol pending")?
                    .map_err(|e| format!("enrol {name}'s device: {e}"))?
                    .value;
                devices.push(Device {
                    id,
                    kind: *kind,
                    secret,
                    pin,
                    role: Role::Permanent,
                    lsn: 0,
                });
            }
            let ids: Vec<_> = devices.iter().map(|d| (d.id.0, d.kind)).collect();
            model.enrol(&name, &ids);
            users.push(User { name, devices });
        }
        {
            let mut d = disk.disk();
            if !(d.write() && d.sync()) {
                return Err("the enrolment did not become durable".into());
            }
        }
        Ok(Sim {
            rng,
            config,
            clock,
            disk,
            core,
            model,
            users,
            open: BTreeMap::new(),
            tasks: BTreeMap::new(),
            next_task: 0,
            restarts: 0,
            seed,
            step: 0,
            trace: Sha256::new(),
            tail: VecDeque::new(),
            counts: BTreeMap::new(),
            touched: Vec::new(),
        })
    }

    pub fn now(&self) -> u64 {
        sls_engine::Clock::now(&self.clock).as_millis() as u64
    }

    /// A line of the trace (hashed into the digest; the last ones kept for a failure).
    pub fn log(&mut self, line: String) {
        self.trace.update(self.step.to_le_bytes());
        self.trace.update(line.as_bytes());
        self.trace.update(b"\n");
        if self.tail.len() == 40 {
            self.tail.pop_front();
        }
        self.tail.push_back(format!("{} {line}", self.step));
    }

    pub fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    /// Submits a request (not polled yet: the seed chooses when).
    pub fn submit(&mut self, req: Req) {
        self.next_task += 1;
        self.log(format!("submit #{} {req:?}", self.next_task));
        let task = spawn(&self.core, self.next_task, req);
        self.tasks.insert(self.next_task, task);
    }

    /// Polls task `id` once: on its first poll the core judges it and the model is told; once
    /// ready its reply leaves.
    pub fn poll(&mut self, id: u64) -> Check {
        let now = self.now();
        let Some(task) = self.tasks.get_mut(&id) else {
            return Ok(());
        };
        let first = !task.started;
        if first {
            if let Req::Await { txn } = task.req {
                task.expect = self.model.decided(txn, now);
            }
        }
        let polled = task.poll();
        let judged = task.probe.borrow_mut().take();
        let req = task.req.clone();
        if first && !matches!(req, Req::Await { .. }) {
            let (j, ticket) = judged.ok_or_else(|| {
                format!("#{id} {req:?}: the core's future was pending before judging")
            })?;
            self.log(format!("judged #{id} {j:?} ticket {ticket:?}"));
            self.judged(&req, j, ticket, now)?;
        }
        if let Poll::Ready(reply) = polled {
            let task = self.tasks.remove(&id).ok_or("task vanished")?;
            self.log(format!(
                "reply #{id} ticket {:?} {:?}",
                reply.ticket, reply.durable
            ));
            if reply.durable.is_ok() {
                self.count("acknowledged");
                self.model.acknowledged(reply.ticket);
            } else {
                self.count("unavailable");
            }
            if let (Req::Await { txn }, Some(want)) = (&task.req, task.expect) {
                if let (Some(Judged::Verdict(got)), Ok(())) = (&reply.judged, &reply.durable) {
                    self.count("await_of_decided");
                    if got.name() != want.name() {
                        return Err(format!(
                            "R6: await of decided {txn:?} gave {got:?}, {want:?} decided"
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn user_index(&self, name: &str) -> usize {
        self.users
            .iter()
            .position(|u| u.name == name)
            .unwrap_or_default()
    }

    /// After every step: R11 as `status` shows it for the users the step touched (all of
    /// them after a restart), and the bounds.
    pub fn check(&mut self) -> Check {
        let now = self.now();
        let mut touched = std::mem::take(&mut self.touched);
        touched.sort();
        touched.dedup();
        for name in touched {
            let Some((failures, until)) = self.model.status(&name, now) else {
                continue;
            };
            let s = now_or_never(self.core.status(&name))
                .ok_or("status pending")?
                .map_err(|e| format!("status {name}: {e}"))?;
            if (s.failures, s.locked_until_ms) != (failures, until) {
                return Err(format!(
                    "R11: {name} shows {} failures, locked until {}; the model {failures}, {until} (now {now})",
                    s.failures, s.locked_until_ms
                ));
            }
        }
        // Unknown names never become users (no enumeration, bounded memory).
        let n = self.core.user_count();
        if n != self.model.user_count() {
            return Err(format!("{n} users, {} enrolled", self.model.user_count()));
        }
        Ok(())
    }

    /// A crash at this point: the core and every request in flight are dropped, the journal is
    /// cut at a random byte of what was written but not synced, and a fresh core replays it.
    pub fn crash(&mut self) -> Check {
        let unsynced = self.disk.disk().unsynced();
        let keep = self.rng.below(unsynced as u64 + 1) as usize;
        self.tasks.clear();
        self.disk.disk().crash(keep);
        let rec = self.disk.disk().recover()?;
        self.restarts += 1;
        self.count("crash");
        if rec.torn > 0 {
            self.count("torn_tail");
        }
        self.log(format!(
            "crash: kept {keep} of {unsynced} unsynced bytes, torn {}, {} records back to lsn {}",
            rec.torn,
            rec.records.len(),
            rec.last_lsn
        ));
        let store = MemoryStore::with_journal(self.config.clone(), self.disk.clone());
        for r in &rec.records {
            store.apply(r);
        }
        self.core = core_over(
            self.config.clone(),
            store,
            &self.clock,
            self.seed ^ (self.restarts << 48),
        );
        self.model.restart(rec.last_lsn)?;
        // Devices whose records were lost are gone (their ids may be given again).
        let last = rec.last_lsn;
        for u in &mut self.users {
            u.devices.retain(|d| d.lsn <= last);
            for d in &mut u.devices {
                if let Role::Replacement { shipped: Some(s) } = d.role {
                    if s > last {
                        d.role = Role::Replacement { shipped: None };
                    }
                }
            }
        }
        self.touched = self.users.iter().map(|u| u.name.clone()).collect();
        Ok(())
    }

    /// A snapshot, once everything queued is durable.
    pub fn snapshot(&mut self) -> Check {
        let store = self.core.store();
        let ok = journal(&self.core).disk().snapshot(|| {
            store
                .snapshot(|| Ok::<(), ()>(()))
                .map(|((), r)| r)
                .unwrap_or_default()
        })?;
        self.log(format!("snapshot {ok}"));
        self.count("snapshot");
        Ok(())
    }

    /// The write fault in force, or a new one, or healed.
    pub fn fault(&mut self) {
        let f = match self.rng.below(3) {
            0 => Some(Fault::DiskFull),
            1 => Some(Fault::SyncFails),
            _ => None,
        };
        self.disk.disk().set_fault(f);
        self.count("fault");
        self.log(format!("fault {f:?}"));
    }

    /// The transaction's state in the model, for choosing answers.
    pub fn txn_state(&self, txn: u128) -> Option<TxnState> {
        self.model.txns.get(&txn).map(|t| t.state)
    }

    pub fn tail(&self) -> Vec<String> {
        self.tail.iter().cloned().collect()
    }

    pub fn digest(&self) -> String {
        hex::encode(self.trace.clone().finalize())
    }
}
