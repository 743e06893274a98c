//! One step of the simulation, chosen by the seed: a request submitted, requests in flight
//! polled, the journal's group commit, the clock, a fault.

use std::time::Duration;

use sls_protocol::{DeviceId, DeviceKind, TxnId};

use crate::model::{Answer, TxnState};
use crate::requests::{DeviceOp, Req, Shown};
use crate::sim::{Check, Failure, Sim, Summary};
use crate::world::{malformed_answer, wrong_answer, Device, Role};

/// What the device shows for a typed challenge (a temporary code: the code itself).
fn answer_of(dev: &Device, shown: &Shown) -> Option<String> {
    match shown {
        Shown::Question(q) => Some(dev.ocra_answer(q)),
        Shown::Code => Some(String::from_utf8_lossy(&dev.secret).into_owned()),
        Shown::Push { .. } => None,
    }
}

const MINUTE: u64 = 60_000;
const HOUR: u64 = 60 * MINUTE;

impl Sim {
    /// Runs one step.
    fn one_step(&mut self) -> Check {
        let roll = self.rng.below(1000);
        match roll {
            0..=199 => self.begin(),
            200..=379 => self.answer(),
            380..=439 => self.push(),
            440..=469 => self.replay(),
            470..=489 => self.await_push(),
            490..=549 => self.password_failed(),
            550..=579 => self.admin(),
            580..=829 => {
                for _ in 0..self.rng.range(1, 6) {
                    self.poll_one()?;
                }
                Ok(())
            }
            830..=899 => {
                self.commit();
                Ok(())
            }
            900..=964 => {
                self.tick();
                Ok(())
            }
            965..=970 => self.crash(),
            971..=976 => {
                self.fault();
                Ok(())
            }
            977..=982 => self.snapshot(),
            _ => self.sweep(),
        }
    }

    /// A user, one of them far more often than the rest (so that failures pile up on it).
    fn some_user(&mut self) -> usize {
        if self.rng.chance(500) {
            0
        } else {
            self.rng.below(self.users.len() as u64) as usize
        }
    }

    fn begin(&mut self) -> Check {
        let u = self.some_user();
        let user = &self.users[u];
        let d = self.rng.below(user.devices.len() as u64) as usize;
        let dev = &user.devices[d];
        let permanent = matches!(dev.kind, DeviceKind::DscPlus | DeviceKind::IbKey);
        let amount = if permanent && self.rng.chance(200) {
            *self.rng.pick(&[100_000, 400_000, 700_000, 2_500_000])
        } else {
            0
        };
        let req = Req::Begin {
            user: user.name.clone(),
            device: dev.id,
            kind: dev.kind,
            amount,
            push_ready: dev.kind == DeviceKind::IbKey && self.rng.chance(700),
        };
        self.submit(req);
        Ok(())
    }

    /// A transaction of the world's, in the state `want` (open or spent), with a typed
    /// challenge or a push.
    fn pick_txn(&mut self, want: fn(TxnState) -> bool, push: bool) -> Option<u128> {
        // Mostly a challenge still live (an answer after a long pause now and then).
        let live_only = self.rng.chance(900);
        let now = self.now();
        let ids: Vec<u128> = self
            .open
            .iter()
            .filter(|(id, o)| {
                matches!(o.shown, Shown::Push { .. }) == push
                    && self.txn_state(**id).is_some_and(want)
                    && (!live_only || self.model.txns.get(id).is_some_and(|t| t.expires > now))
            })
            .map(|(id, _)| *id)
            .collect();
        (!ids.is_empty()).then(|| *self.rng.pick(&ids))
    }

    fn answer(&mut self) -> Check {
        let Some(id) = self.pick_txn(|s| s == TxnState::Open, false) else {
            return self.begin();
        };
        let o = self.open[&id].clone();
        let Some(dev) = self.device(o.user, o.device) else {
            return Ok(());
        };
        let Some(right) = answer_of(&dev, &o.shown) else {
            return Ok(());
        };
        // The first user is under attack: mostly wrong answers.
        let roll = self.rng.below(100) + if o.user == 0 { 50 } else { 0 };
        let code = matches!(o.shown, Shown::Code);
        let (response, answer) = match roll {
            0..=54 => (right, Answer::Right),
            // A wrong code in the code's own alphabet: its characters rotated.
            _ if code && right.len() > 1 && right[1..] != right[..right.len() - 1] => {
                (format!("{}{}", &right[1..], &right[..1]), Answer::Wrong)
            }
            _ if code => (right, Answer::Right),
            55..=119 => (wrong_answer(&right, &mut self.rng), Answer::Wrong),
            _ => (malformed_answer(&right, &mut self.rng), Answer::Malformed),
        };
        let kind = dev.kind;
        self.submit(Req::Answer {
            txn: TxnId(id),
            response,
            answer,
            kind,
        });
        Ok(())
    }

    fn push(&mut self) -> Check {
        let Some(id) = self.pick_txn(|s| s == TxnState::Open, true) else {
            return self.begin();
        };
        let o = self.open[&id].clone();
        let user = self.users[o.user].name.clone();
        let Some(dev) = self.device(o.user, o.device) else {
            return Ok(());
        };
        let Shown::Push { number, nonce } = o.shown else {
            return Ok(());
        };
        let txn = TxnId(id);
        let roll = self.rng.below(100);
        let (approve, typed, answer) = match roll {
            0..=59 if o.user != 0 || roll < 5 => (true, number, Answer::Right),
            0..=59 => (true, number.wrapping_add(7) % 100, Answer::Wrong),
            60..=74 => (true, number.wrapping_add(1) % 100, Answer::Wrong),
            75..=84 => (false, number, Answer::Declined),
            _ => (true, number, Answer::Wrong),
        };
        let mut mac = dev.push_mac(txn, &user, typed, &nonce, approve);
        if roll >= 85 {
            // Forged: not signed by the app's key.
            mac[0] ^= 1;
        }
        self.submit(Req::Push {
            device: dev.id,
            txn,
            approve,
            number: typed,
            mac,
            answer,
        });
        Ok(())
    }

    /// R12: a spent (or void) transaction answered again, rightly.
    fn replay(&mut self) -> Check {
        let spent = |s| matches!(s, TxnState::Spent { .. } | TxnState::Void);
        let push = self.rng.chance(300);
        let Some(id) = self.pick_txn(spent, push) else {
            return self.answer();
        };
        let o = self.open[&id].clone();
        let Some(dev) = self.device(o.user, o.device) else {
            return Ok(());
        };
        let user = self.users[o.user].name.clone();
        let txn = TxnId(id);
        self.count("replay_sent");
        match o.shown {
            Shown::Question(_) | Shown::Code => self.submit(Req::Answer {
                txn,
                response: answer_of(&dev, &o.shown).unwrap_or_default(),
                answer: Answer::Right,
                kind: dev.kind,
            }),
            Shown::Push { number, nonce } => self.submit(Req::Push {
                device: dev.id,
                txn,
                approve: true,
                number,
                mac: dev.push_mac(txn, &user, number, &nonce, true),
                answer: Answer::Right,
            }),
        }
        Ok(())
    }

    /// R6: a frontend awaits a push's decision.
    fn await_push(&mut self) -> Check {
        let any = |_| true;
        let decided = |s| matches!(s, TxnState::Spent { .. });
        let which: fn(TxnState) -> bool = if self.rng.chance(700) { decided } else { any };
        if let Some(id) = self.pick_txn(which, true) {
            self.submit(Req::Await { txn: TxnId(id) });
        }
        Ok(())
    }

    fn password_failed(&mut self) -> Check {
        let user = if self.rng.chance(150) {
            format!("zz{}", self.rng.below(50))
        } else {
            let u = self.some_user();
            self.users[u].name.clone()
        };
        self.submit(Req::PasswordFailed { user });
        Ok(())
    }

    /// Client services: unlock a user; revoke, suspend or resume a device (rarely revoke: a
    /// revoked device is gone for good); issue a temporary code, reactivate a card (R13,
    /// R15); order and ship a replacement (R16).
    fn admin(&mut self) -> Check {
        let u = self.some_user();
        let user = self.users[u].name.clone();
        let roll = self.rng.below(100);
        let permanent: Vec<DeviceId> = self.users[u]
            .devices
            .iter()
            .filter(|d| d.role == Role::Permanent)
            .map(|d| d.id)
            .collect();
        let device = *self.rng.pick(&permanent);
        let req = match roll {
            0..=39 => Req::Unlock { user },
            40..=45 => Req::Device {
                user,
                device,
                op: DeviceOp::Revoke,
            },
            46..=59 => Req::Device {
                user,
                device,
                op: DeviceOp::Suspend,
            },
            60..=71 => Req::Device {
                user,
                device,
                op: DeviceOp::Resume,
            },
            72..=83 => Req::IssueTemp { user },
            84..=90 => Req::Reactivate { user, device },
            _ => {
                let replacement = self.users[u].devices.iter().find_map(|d| match d.role {
                    Role::Replacement { shipped } => Some((d.id, shipped.is_some())),
                    _ => None,
                });
                match replacement {
                    None => Req::Order {
                        user,
                        secret: self.rng.bytes::<32>().to_vec(),
                        pin: format!("{:04}", self.rng.below(10_000)),
                    },
                    Some((device, false)) => Req::Ship { user, device },
                    Some((_, true)) => Req::Unlock { user },
                }
            }
        };
        self.submit(req);
        Ok(())
    }

    /// The world's device `id` of user `u` (gone if a crash lost its records).
    fn device(&self, u: usize, id: DeviceId) -> Option<Device> {
        self.users[u].devices.iter().find(|d| d.id == id).cloned()
    }

    /// Polls one request in flight, the seed choosing which.
    fn poll_one(&mut self) -> Check {
        let ids: Vec<u64> = self.tasks.keys().copied().collect();
        if ids.is_empty() {
            return Ok(());
        }
        let id = *self.rng.pick(&ids);
        self.poll(id)
    }

    /// The journal's group commit: write what is queued, then (mostly) sync it.
    fn commit(&mut self) {
        let mut d = self.disk.disk();
        if d.fault().is_some() && self.rng.chance(400) {
            d.set_fault(None);
        }
        let wrote = d.write();
        let synced = wrote && self.rng.chance(500) && d.sync();
        let (q, w, s) = d.sizes();
        drop(d);
        self.log(format!(
            "commit wrote {wrote} synced {synced} sizes {q}/{w}/{s}"
        ));
    }

    /// The clock: small steps mostly, minutes, hours, days; now and then to the exact end of
    /// a lock, or a millisecond before it (R11).
    fn tick(&mut self) {
        let now = self.now();
        let by = match self.rng.below(100) {
            0..=49 => self.rng.range(0, 3_000),
            50..=69 => self.rng.range(MINUTE, 30 * MINUTE),
            70..=84 => self.rng.range(HOUR, 12 * HOUR),
            85..=93 => self.rng.range(24 * HOUR, 72 * HOUR),
            _ => {
                let u = self.some_user();
                let end = self.model.lock_end(&self.users[u].name, now);
                if end > now {
                    end - now - self.rng.below(2).min(end - now)
                } else {
                    self.rng.range(0, 3_000)
                }
            }
        };
        self.clock.advance(Duration::from_millis(by));
        self.touched = self.users.iter().map(|u| u.name.clone()).collect();
        self.log(format!("clock +{by}ms"));
    }

    fn sweep(&mut self) -> Check {
        let now = self.now();
        let forgotten = self.core.sweep();
        self.model.forget(now);
        let keep: Vec<u128> = self.model.txns.keys().copied().collect();
        self.open.retain(|id, _| keep.binary_search(id).is_ok());
        self.log(format!("sweep {forgotten}"));
        self.count("sweep");
        self.bounds()
    }

    fn bounds(&self) -> Check {
        let now = self.now();
        let open = self.core.open_txns();
        let bound = self.model.index_bound(now);
        if open > bound {
            return Err(format!(
                "the transaction index holds {open} once swept, at most {bound} begun in its horizon"
            ));
        }
        Ok(())
    }

    /// Runs the steps; stops at the first broken invariant.
    pub fn run(mut self, steps: u64) -> Result<Summary, Failure> {
        let start = self.now();
        while self.step < steps {
            self.step += 1;
            let r = self.one_step().and_then(|()| self.check());
            if let Err(why) = r {
                return Err(Failure {
                    seed: self.seed,
                    steps,
                    step: self.step,
                    why,
                    tail: self.tail(),
                });
            }
        }
        self.counts.insert("restarts", self.restarts);
        Ok(Summary {
            digest: self.digest(),
            steps,
            span_ms: self.now() - start,
            counts: self.counts.clone(),
        })
    }
}
