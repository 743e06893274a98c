//! The reference model: what SLS_RULES.md says the core must answer, kept small and checked
//! after every step. It is told each request at the moment the core judges it (its first
//! poll: the embedded store's futures are ready until the durable wait), with the core's
//! verdict and ticket, and says whether that verdict is one the rules allow; then it moves
//! on as the rules say.
//!
//! Every change that the rules make durable is kept as an event with the lsn of its records
//! (its ticket). A crash keeps the events whose lsn the restart read back and folds them
//! again: the model after a restart is what the surviving journal says, and an acknowledged
//! change must be among them.

use std::collections::BTreeMap;

use sls_protocol::{DeviceId, DeviceKind, TxnId, Verdict};

mod user;
use user::{limits, Event, Life, UserModel};

/// The rules' numbers (the defaults of SLS_RULES.md).
#[derive(Debug, Clone, Copy)]
pub struct Numbers {
    /// R11: failures that lock.
    pub threshold: usize,
    /// R11: the window they must fall in.
    pub window_ms: u64,
    /// R11: the lock lasts this long after the last failure.
    pub lock_ms: u64,
    /// R12: a challenge's life.
    pub ttl_ms: u64,
    /// R12: how long a spent challenge's verdict is remembered.
    pub replay_ms: u64,
    /// R13: a temporary code's whole life (full, then Client Portal only).
    pub temp_ms: u64,
    /// R16: a shipped replacement activates by itself this long after shipment.
    pub auto_ms: u64,
}

/// A device's standing (R15/R16: a stopped device is not usable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Usable.
    Active,
    /// Suspended by client services.
    Suspended,
    /// Revoked for good.
    Revoked,
    /// A temporary device stopped by a newer one or a reactivation (R13, R15).
    Voided,
}

/// What the model knows of a transaction.
#[derive(Debug, Clone)]
pub struct TxnModel {
    /// Its user.
    pub user: String,
    /// Its device.
    pub device: DeviceId,
    /// The withdrawal amount, 0 for a login.
    pub amount: u64,
    /// When its challenge expires.
    pub expires: u64,
    /// Open, spent or void.
    pub state: TxnState,
}

/// A transaction's life (R12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// Waiting for its one answer.
    Open,
    /// Spent at `at` with `verdict`.
    Spent {
        /// When.
        at: u64,
        /// Its verdict.
        verdict: Verdict,
    },
    /// Void: its device stopped, or a restart forgot it (open challenges are not durable).
    Void,
}

/// What a `begin` came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Began {
    /// A challenge bound to a new transaction, expiring then.
    Challenge {
        /// The transaction.
        txn: TxnId,
        /// When its challenge expires.
        expires: u64,
    },
    /// A verdict without a challenge.
    Verdict(Verdict),
    /// Refused: the device is revoked.
    Revoked,
    /// Refused: the device is suspended.
    Suspended,
    /// Another error.
    Error(String),
}

/// What a frontend or an app sent in answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The device's answer.
    Right,
    /// A wrong one (or a forged or mismatched push approval).
    Wrong,
    /// A malformed one (R10: counts by default).
    Malformed,
    /// The user declined the push.
    Declined,
}

/// The model.
#[derive(Debug)]
pub struct Model {
    n: Numbers,
    users: BTreeMap<String, UserModel>,
    /// Transactions by id.
    pub txns: BTreeMap<u128, TxnModel>,
    /// The highest lsn acknowledged to a client (a reply sent after its durable wait).
    acked_lsn: u64,
    /// When each `begin` since the last restart made a challenge (the index's bound).
    begun: Vec<u64>,
}

type Check = Result<(), String>;

fn fail_if(bad: bool, why: impl FnOnce() -> String) -> Check {
    if bad {
        Err(why())
    } else {
        Ok(())
    }
}

impl Model {
    /// An empty model.
    pub fn new(n: Numbers) -> Model {
        Model {
            n,
            users: BTreeMap::new(),
            txns: BTreeMap::new(),
            acked_lsn: 0,
            begun: Vec::new(),
        }
    }

    /// An enrolled user with their devices, all active (enrolled durably before the run).
    pub fn enrol(&mut self, user: &str, devices: &[(u32, DeviceKind)]) {
        let u = self.users.entry(user.to_string()).or_default();
        for (d, kind) in devices {
            u.devices.insert(*d, Standing::Active);
            u.lives.insert(*d, Life::Permanent(*kind));
        }
    }

    /// Enrolled users.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn user(&mut self, name: &str) -> Result<&mut UserModel, String> {
        self.users
            .get_mut(name)
            .ok_or_else(|| format!("model: unknown user {name}"))
    }

    fn event(&mut self, user: &str, ticket: Option<u64>, e: Event) -> Check {
        let n = self.n;
        let u = self.user(user)?;
        let lsn = ticket.ok_or_else(|| format!("{user}: {e:?} changed state without a ticket"))?;
        u.apply(e, &n);
        u.events.push((lsn, e));
        Ok(())
    }

    /// A reply left after its durable wait: what it waited for is acknowledged.
    pub fn acknowledged(&mut self, ticket: Option<u64>) {
        self.acked_lsn = self.acked_lsn.max(ticket.unwrap_or(0));
    }

    /// A crash, then a restart that read the journal back to `last_lsn`: every acknowledged
    /// change must be there; the rest of the model is what survived; open transactions and
    /// the index are gone.
    pub fn restart(&mut self, last_lsn: u64) -> Check {
        fail_if(self.acked_lsn > last_lsn, || {
            format!(
                "an acknowledged change was lost: lsn {} acknowledged, the restart read back to {last_lsn}",
                self.acked_lsn
            )
        })?;
        let n = self.n;
        for u in self.users.values_mut() {
            u.events.retain(|(lsn, _)| *lsn <= last_lsn);
            let enrolled: std::collections::BTreeMap<u32, Life> = u
                .lives
                .iter()
                .filter(|(_, l)| matches!(l, Life::Permanent(_)))
                .map(|(id, l)| (*id, *l))
                .collect();
            *u = UserModel {
                events: std::mem::take(&mut u.events),
                devices: enrolled.keys().map(|d| (*d, Standing::Active)).collect(),
                lives: enrolled,
                ..UserModel::default()
            };
            for (_, e) in u.events.clone() {
                u.apply(e, &n);
            }
        }
        for t in self.txns.values_mut() {
            t.state = TxnState::Void;
        }
        self.begun.clear();
        Ok(())
    }

    /// A `begin` for `user`'s `device` answered `got` (a challenge's transaction and expiry,
    /// or a verdict, or an error's name).
    pub fn begin(
        &mut self,
        user: &str,
        device: DeviceId,
        amount: u64,
        now: u64,
        got: Began,
    ) -> Check {
        let n = self.n;
        let u = self.user(user)?;
        let standing = u.devices.get(&device.0).copied();
        let usable = u.usable(device.0, now, &n);
        if u.locked(now) {
            // R11: locked, whatever comes; the lock is not extended.
            let want = Verdict::Locked {
                until_ms: u.locked_until,
            };
            return fail_if(got != Began::Verdict(want), || {
                format!("R11: begin of locked {user} gave {got:?}, {want:?} expected")
            });
        }
        match (standing, usable, got) {
            (_, true, Began::Challenge { txn, expires }) => {
                fail_if(expires != now + n.ttl_ms, || {
                    format!("R12: challenge expires at {expires}, now {now}")
                })?;
                self.begun.push(now);
                self.txns.insert(
                    txn.0,
                    TxnModel {
                        user: user.into(),
                        device,
                        amount,
                        expires,
                        state: TxnState::Open,
                    },
                );
                Ok(())
            }
            // R4: a withdrawal over the device's limits needs a stronger one.
            (_, true, Began::Verdict(Verdict::NeedsStrongerDevice { .. })) if amount > 0 => Ok(()),
            (Some(Standing::Revoked), _, Began::Revoked)
            | (Some(Standing::Suspended), _, Began::Suspended) => Ok(()),
            // R13-R16: a device not usable now (stopped, expired, voided, replaced, not yet
            // active) gives no challenge; how it is refused (by name or `unknown`, a
            // suspended card its replacement retired) is not the model's concern.
            (s, false, got @ Began::Challenge { .. }) => Err(format!(
                "R13-R16: begin on {user}'s unusable device {} ({s:?}) gave {got:?}",
                device.0
            )),
            (_, false, _) => Ok(()),
            (s, _, got) => Err(format!(
                "begin of {user}'s device {} ({s:?}) gave {got:?}",
                device.0
            )),
        }
    }

    /// An answer to `txn` (typed by the frontend, or the app's push answer), judged `got`
    /// with `ticket`.
    pub fn answer(
        &mut self,
        txn: TxnId,
        answer: Answer,
        kind: DeviceKind,
        now: u64,
        got: Verdict,
        ticket: Option<u64>,
    ) -> Check {
        let n = self.n;
        let Some(t) = self.txns.get(&txn.0).cloned() else {
            return fail_if(got != Verdict::Unknown, || {
                format!("an answer to a transaction never begun gave {got:?}")
            });
        };
        let user = t.user.clone();
        // R16: the first rule run on a user after a replacement's due time activates it, with
        // records of its own, whatever the request.
        let activates = self.activation_due(&user, now);
        let no_change = |what: &str| {
            fail_if(ticket.is_some() && !activates, || {
                format!("{what}: {got:?} wrote records (ticket {ticket:?})")
            })
        };
        match t.state {
            // R12: one answer, one use; after a restart the transaction is forgotten.
            TxnState::Void => {
                fail_if(
                    !matches!(
                        got,
                        Verdict::Unknown
                            | Verdict::Replayed
                            | Verdict::Expired
                            | Verdict::Locked { .. }
                    ),
                    || format!("R12/R15: an answer to a void transaction gave {got:?}"),
                )?;
                return no_change("void transaction");
            }
            TxnState::Spent { at, .. } => {
                let remembered = now < at + n.replay_ms;
                let ok = match got {
                    Verdict::Replayed => true,
                    Verdict::Unknown => !remembered,
                    _ => false,
                };
                fail_if(!ok, || {
                    format!(
                        "R12: a replay {}ms after the first answer gave {got:?}",
                        now - at
                    )
                })?;
                return no_change("replay");
            }
            TxnState::Open => {}
        }
        let um = self.user(&user)?;
        if now >= t.expires + n.ttl_ms {
            // Forgotten by the index with its user's open challenges.
            return fail_if(got != Verdict::Unknown, || {
                format!("R12: an answer past twice the challenge's life gave {got:?}")
            });
        }
        if um.locked(now) {
            let want = Verdict::Locked {
                until_ms: um.locked_until,
            };
            fail_if(got != want, || {
                format!("R11: an answer of locked {user} gave {got:?}, {want:?} expected")
            })?;
            return no_change("locked");
        }
        let spend = |m: &mut Model, verdict: Verdict| {
            if let Some(t) = m.txns.get_mut(&txn.0) {
                t.state = TxnState::Spent { at: now, verdict };
            }
        };
        if now >= t.expires {
            fail_if(got != Verdict::Expired, || {
                format!("R12: an answer to an expired challenge gave {got:?}")
            })?;
            spend(self, got);
            return no_change("expired");
        }
        if !um.usable(t.device.0, now, &n) {
            // R13-R16: a stopped, expired or replaced device's open challenges are void.
            fail_if(
                !matches!(got, Verdict::Expired | Verdict::Unknown | Verdict::Replayed),
                || {
                    format!(
                        "R15: an answer for stopped device {} gave {got:?}",
                        t.device.0
                    )
                },
            )?;
            spend(self, got);
            return no_change("stopped device");
        }
        match answer {
            Answer::Right => {
                let (day, week) = um.withdrawn(now);
                let (per_day, per_week) = limits(kind);
                let covered = t.amount == 0
                    || (t.amount.saturating_add(day) <= per_day
                        && t.amount.saturating_add(week) <= per_week);
                if !covered {
                    // R3/R4: the limits are judged when the withdrawal is confirmed.
                    fail_if(!matches!(got, Verdict::NeedsStrongerDevice { .. }), || {
                        format!(
                            "R3: {user} withdrew {} by {kind:?} with {day} in the day, {week} in five business days: {got:?}",
                            t.amount
                        )
                    })?;
                    spend(self, got);
                    return Ok(());
                }
                fail_if(
                    !matches!(got, Verdict::Accepted { device, .. } if device == t.device),
                    || format!("a right answer of {user} gave {got:?}"),
                )?;
                let had = !um.failures.is_empty();
                spend(self, got);
                if had {
                    self.event(&user, ticket, Event::Reset)?;
                }
                if t.amount > 0 {
                    self.event(
                        &user,
                        ticket,
                        Event::Withdrawal {
                            at: now,
                            amount: t.amount,
                        },
                    )?;
                }
                Ok(())
            }
            Answer::Declined => {
                fail_if(got != Verdict::Declined, || {
                    format!("a declined push gave {got:?}")
                })?;
                spend(self, got);
                no_change("declined")
            }
            Answer::Wrong | Answer::Malformed => {
                let mut probe = UserModel {
                    failures: um.failures.clone(),
                    ..UserModel::default()
                };
                let want = probe.fail(now, &n);
                let ok = got == want
                    || (answer == Answer::Malformed
                        && got == Verdict::Malformed
                        && matches!(want, Verdict::Rejected { .. }));
                fail_if(!ok, || {
                    format!("R11: a failure of {user} gave {got:?}, {want:?} expected")
                })?;
                spend(self, got);
                self.event(&user, ticket, Event::Failure { at: now })
            }
        }
    }

    /// A failed password reported for a known `user` (R11).
    pub fn password_failed(
        &mut self,
        user: &str,
        now: u64,
        got: Verdict,
        ticket: Option<u64>,
    ) -> Check {
        let n = self.n;
        let u = self.user(user)?;
        if u.locked(now) {
            let want = Verdict::Locked {
                until_ms: u.locked_until,
            };
            let activates = u.activation_due(now, &n);
            return fail_if(got != want || (ticket.is_some() && !activates), || {
                format!("R11: a password failure of locked {user} gave {got:?}")
            });
        }
        let mut probe = UserModel {
            failures: u.failures.clone(),
            ..UserModel::default()
        };
        let want = probe.fail(now, &n);
        fail_if(got != want, || {
            format!("R11: a password failure of {user} gave {got:?}, {want:?} expected")
        })?;
        self.event(user, ticket, Event::Failure { at: now })
    }

    /// Client services lifted `user`'s lock (R11).
    pub fn unlocked(&mut self, user: &str, ticket: Option<u64>) -> Check {
        self.event(user, ticket, Event::Reset)
    }

    /// Client services revoked, suspended or resumed a device (R15/R16: stopped devices are
    /// not usable; their open challenges are void).
    pub fn device(&mut self, user: &str, id: DeviceId, s: Standing, ticket: Option<u64>) -> Check {
        self.event(
            user,
            ticket,
            Event::Device {
                id: id.0,
                standing: s,
            },
        )?;
        if s != Standing::Active {
            for t in self.txns.values_mut() {
                if t.device == id && t.state == TxnState::Open {
                    t.state = TxnState::Void;
                }
            }
        }
        Ok(())
    }

    /// R13: a temporary code issued (the previous one stops).
    pub fn temp_issued(
        &mut self,
        user: &str,
        id: DeviceId,
        now: u64,
        ticket: Option<u64>,
    ) -> Check {
        self.event(user, ticket, Event::TempIssued { id: id.0, at: now })
    }

    /// R16: a replacement ordered.
    pub fn ordered(&mut self, user: &str, id: DeviceId, ticket: Option<u64>) -> Check {
        self.event(user, ticket, Event::Ordered { id: id.0 })
    }

    /// R16: a replacement shipped.
    pub fn shipped(&mut self, user: &str, id: DeviceId, now: u64, ticket: Option<u64>) -> Check {
        self.event(user, ticket, Event::Shipped { id: id.0, at: now })
    }

    /// R15: client services reactivate a permanent device, answered `got`: allowed for an
    /// active one not replaced (its temporary devices stop), refused otherwise.
    pub fn reactivated(
        &mut self,
        user: &str,
        id: DeviceId,
        now: u64,
        got: Result<(), String>,
        ticket: Option<u64>,
    ) -> Check {
        let n = self.n;
        let u = self.user(user)?;
        let allowed = u.devices.get(&id.0) == Some(&Standing::Active) && !u.replaced(id.0, now, &n);
        match (allowed, got) {
            (true, Ok(())) => self.event(user, ticket, Event::Reactivated),
            (false, Err(_)) => Ok(()),
            (a, got) => Err(format!(
                "R15: reactivate of {user}'s device {} (allowed: {a}) gave {got:?}",
                id.0
            )),
        }
    }

    fn activation_due(&self, user: &str, now: u64) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.activation_due(now, &self.n))
    }

    /// Whether `user`'s permanent DSC+ `id` was replaced by `now` (R16).
    pub fn replaced(&self, user: &str, id: DeviceId, now: u64) -> bool {
        self.users
            .get(user)
            .is_some_and(|u| u.replaced(id.0, now, &self.n))
    }

    /// A device's standing.
    pub fn standing(&self, user: &str, id: DeviceId) -> Option<Standing> {
        self.users.get(user)?.devices.get(&id.0).copied()
    }

    /// R6: what a frontend's `await` for a decided push may report: the decision, while the
    /// index remembers it (`None`: no claim).
    pub fn decided(&self, txn: TxnId, now: u64) -> Option<Verdict> {
        match self.txns.get(&txn.0)?.state {
            TxnState::Spent { at, verdict } if now < at + self.n.replay_ms => Some(verdict),
            _ => None,
        }
    }

    /// R11 as `status` must show it at `now`: failures in the window, locked until.
    pub fn status(&self, user: &str, now: u64) -> Option<(u8, u64)> {
        let u = self.users.get(user)?;
        let until = if u.locked(now) { u.locked_until } else { 0 };
        Some((u.in_window(now, &self.n) as u8, until))
    }

    /// When `user`'s lock ends (0: not locked at `now`).
    pub fn lock_end(&self, user: &str, now: u64) -> u64 {
        self.status(user, now).map_or(0, |s| s.1)
    }

    /// The most transactions the index may hold at `now` once swept: those begun since the
    /// restart less than two lives and a replay window ago.
    pub fn index_bound(&self, now: u64) -> usize {
        let horizon = 2 * self.n.ttl_ms + self.n.replay_ms;
        self.begun
            .iter()
            .filter(|t| now.saturating_sub(**t) <= horizon)
            .count()
    }

    /// Forgets transactions the core has forgotten too (bounds the model's own memory).
    pub fn forget(&mut self, now: u64) {
        let keep = 2 * self.n.ttl_ms + 2 * self.n.replay_ms;
        self.txns.retain(|_, t| now < t.expires + keep);
        let horizon = 2 * self.n.ttl_ms + self.n.replay_ms;
        self.begun.retain(|t| now.saturating_sub(*t) <= horizon);
    }
}
