//! The scenarios: one step of each is one whole user journey over the wire, judged by what the
//! rules say should happen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::Rng;
use sls_protocol::{
    ApprovalMethod, Challenge, DeviceId, DeviceKind, Message, Purpose, SecurityLevel, TxnId,
    Verdict,
};

use crate::attack::{Attacker, Victims};
pub use crate::behaviour::{Behaviour, Route, Screen};
use crate::fleet::{Persona, SimUser};
use crate::judge::{judge, judge_unexpected_reply, mistype};
use crate::report::Outcome;
use sls_client::pipeline::Pipeline;

/// A scenario: what one step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    /// Begin, 6-digit challenge, PIN + OCRA on the card, answer (R5).
    DscPlus,
    /// Begin, push to the connected app, the user types the number and approves, await (R6).
    IbKeyPush,
    /// Begin, numeric challenge, PIN + OCRA in the app, answer (R6 fallback).
    IbKeyChallenge,
    /// Begin, index positions, the codes read off the card (R9).
    Scc,
    /// Begin, the temporary code (R13).
    TempCode,
    /// A withdrawal over the IB Key limit: only the DSC+ is offered and accepted (R3, R4).
    Withdrawal,
    /// Wrong answers until the lock: it must come at exactly the 10th failure and hold (R11).
    Attacker,
    /// A correct answer sent twice: the second is refused (R12).
    Replay,
    /// A wrong password reported by the frontend counts, then a login resets (R11).
    PasswordFail,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Scenario; 9] = [
        Scenario::DscPlus,
        Scenario::IbKeyPush,
        Scenario::IbKeyChallenge,
        Scenario::Scc,
        Scenario::TempCode,
        Scenario::Withdrawal,
        Scenario::Attacker,
        Scenario::Replay,
        Scenario::PasswordFail,
    ];

    /// The scenario's name in reports and `--scenarios`.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::DscPlus => "dsc_plus",
            Scenario::IbKeyPush => "ib_key_push",
            Scenario::IbKeyChallenge => "ib_key_challenge",
            Scenario::Scc => "scc",
            Scenario::TempCode => "temp_code",
            Scenario::Withdrawal => "withdrawal",
            Scenario::Attacker => "attacker",
            Scenario::Replay => "replay",
            Scenario::PasswordFail => "password_fail",
        }
    }

    /// The users it draws from.
    pub fn persona(self) -> Persona {
        match self {
            Scenario::DscPlus | Scenario::Replay | Scenario::PasswordFail => Persona::DscPlus,
            Scenario::IbKeyPush => Persona::IbKeyPush,
            Scenario::IbKeyChallenge => Persona::IbKeyChallenge,
            Scenario::Scc => Persona::Scc,
            Scenario::TempCode => Persona::TempCode,
            Scenario::Withdrawal => Persona::Withdrawal,
            Scenario::Attacker => Persona::Attacked,
        }
    }

    /// Whether its steps need the users' IB Key apps connected (to approve pushes).
    pub fn uses_apps(self) -> bool {
        self == Scenario::IbKeyPush
    }

    /// The default weight in the mixed run.
    pub fn default_weight(self) -> u32 {
        match self {
            Scenario::DscPlus => 30,
            Scenario::IbKeyPush => 25,
            Scenario::IbKeyChallenge => 10,
            Scenario::Scc => 10,
            Scenario::TempCode => 5,
            Scenario::Withdrawal => 5,
            Scenario::Attacker => 2,
            Scenario::Replay => 5,
            Scenario::PasswordFail => 8,
        }
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;
    fn from_str(s: &str) -> Result<Scenario, String> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|x| x.name()).collect();
                format!("unknown scenario {s:?}; known: {}", names.join(", "))
            })
    }
}

/// Everything the steps share: the fleet, the frontends' streams, the admin stream.
pub struct World {
    /// The fleet, with device ids filled in by enrolment.
    pub users: Vec<SimUser>,
    by_persona: HashMap<Persona, Vec<usize>>,
    cursors: HashMap<Persona, AtomicUsize>,
    victims: Victims,
    frontends: Vec<Pipeline>,
    next_frontend: AtomicUsize,
    /// The admin stream (unlocks after an attack).
    pub admin: Pipeline,
    /// The login screens.
    pub screen: Screen,
    /// The users' behaviour.
    pub behaviour: Behaviour,
    /// The frontends' connections, when the scenarios that are a request/reply chain may run
    /// batched on streams of their own ([`crate::batched`]); empty: never.
    pub(crate) batchable: Vec<quinn::Connection>,
}

impl World {
    /// A world over an enrolled fleet.
    pub fn new(
        users: Vec<SimUser>,
        frontends: Vec<Pipeline>,
        admin: Pipeline,
        behaviour: Behaviour,
    ) -> World {
        let mut by_persona: HashMap<Persona, Vec<usize>> = HashMap::new();
        for (i, u) in users.iter().enumerate() {
            by_persona.entry(u.persona).or_default().push(i);
        }
        let victims = Victims::new(
            by_persona
                .get(&Persona::Attacked)
                .cloned()
                .unwrap_or_default(),
        );
        World {
            cursors: Persona::ALL
                .into_iter()
                .map(|p| (p, AtomicUsize::new(0)))
                .collect(),
            by_persona,
            victims,
            users,
            frontends,
            next_frontend: AtomicUsize::new(0),
            admin,
            screen: Screen::default(),
            behaviour,
            batchable: Vec::new(),
        }
    }

    /// Keeps, among the push users, only those whose app is connected (`connected` holds user
    /// indexes): the others would get the typed fallback, not a push.
    pub fn restrict_push_users(&mut self, connected: &[usize]) {
        if let Some(list) = self.by_persona.get_mut(&Persona::IbKeyPush) {
            list.retain(|u| connected.contains(u));
        }
    }

    /// Lets the closed loop run the scenarios that are a request/reply chain batched, on a
    /// stream of their own on each of `conns` (the frontends' connections, to one node):
    /// see [`crate::batched`].
    pub fn batch_on(&mut self, conns: Vec<quinn::Connection>) {
        self.batchable = conns;
    }

    /// The users of `persona`, as indexes into `users`.
    pub(crate) fn users_of(&self, persona: Persona) -> &[usize] {
        self.by_persona.get(&persona).map_or(&[], Vec::as_slice)
    }

    /// Whether the fleet has users for `scenario`.
    pub fn can_run(&self, scenario: Scenario) -> bool {
        self.by_persona
            .get(&scenario.persona())
            .is_some_and(|v| !v.is_empty())
    }

    fn pick(&self, persona: Persona) -> Option<&SimUser> {
        let list = self.by_persona.get(&persona)?;
        let i = self.cursors.get(&persona)?.fetch_add(1, Ordering::Relaxed);
        list.get(i % list.len()).map(|&u| &self.users[u])
    }

    fn frontend(&self) -> &Pipeline {
        let i = self.next_frontend.fetch_add(1, Ordering::Relaxed);
        &self.frontends[i % self.frontends.len()]
    }

    /// Runs one step of `scenario` and judges it.
    pub async fn step(&self, scenario: Scenario) -> Outcome {
        match scenario {
            Scenario::Attacker => {
                let attacker = Attacker {
                    users: &self.users,
                    frontend: self.frontend(),
                    admin: &self.admin,
                    threshold: self.behaviour.lockout_threshold,
                };
                return attacker.step(&self.victims).await;
            }
            Scenario::Withdrawal => return self.withdrawal().await,
            Scenario::Replay => return self.replay().await,
            Scenario::PasswordFail => return self.password_fail().await,
            _ => {}
        }
        let Some(user) = self.pick(scenario.persona()) else {
            return Outcome::Unexpected("no_user");
        };
        let kind = match scenario {
            Scenario::DscPlus => DeviceKind::DscPlus,
            Scenario::IbKeyPush | Scenario::IbKeyChallenge => DeviceKind::IbKey,
            Scenario::Scc => DeviceKind::Scc,
            _ => DeviceKind::TempCode,
        };
        match self
            .login(user, kind, Purpose::Login, scenario == Scenario::IbKeyPush)
            .await
        {
            Ok(outcome) => outcome.0,
            Err(o) => o,
        }
    }

    /// The frontend connection `user`'s next request goes through ([`Route`]).
    fn via(&self, user: &SimUser) -> &Pipeline {
        match self.behaviour.route {
            Route::Request => self.frontend(),
            Route::User => {
                let mut h = std::collections::hash_map::DefaultHasher::new();
                std::hash::Hash::hash(&user.name, &mut h);
                let i = std::hash::Hasher::finish(&h) as usize;
                &self.frontends[i % self.frontends.len()]
            }
        }
    }

    async fn call(&self, user: &SimUser, msg: Message) -> Result<Message, Outcome> {
        self.via(user)
            .call(msg)
            .await
            .map_err(|_| Outcome::Unexpected("transport"))
    }

    async fn begin(
        &self,
        user: &SimUser,
        purpose: Purpose,
        device: Option<DeviceId>,
    ) -> Result<Message, Outcome> {
        self.call(
            user,
            Message::Begin {
                user: user.name.clone(),
                purpose,
                device,
                client: user.client,
            },
        )
        .await
    }

    /// One login with the user's device of `kind`: begin, compute, answer. Returns the outcome
    /// and, for replay, the transaction and the answer sent.
    async fn login(
        &self,
        user: &SimUser,
        kind: DeviceKind,
        purpose: Purpose,
        push: bool,
    ) -> Result<(Outcome, Option<(TxnId, String)>), Outcome> {
        let device_id = match kind {
            DeviceKind::TempCode => user.temp_device,
            _ => user.device(kind).and_then(|d| d.id),
        };
        let Some(device_id) = device_id else {
            return Err(Outcome::Unexpected("no_device"));
        };
        let (txn, challenge) = match self.begin(user, purpose, Some(device_id)).await? {
            Message::ChallengeIssued { txn, challenge, .. } => (txn, challenge),
            other => {
                return Err(judge_unexpected_reply(
                    &other,
                    self.behaviour.wrong_rate > 0.0,
                ))
            }
        };
        if push {
            let Challenge::Push { number } = challenge else {
                return Err(Outcome::Unexpected("no_push"));
            };
            self.screen.show(txn, number);
            let reply = self
                .call(
                    user,
                    Message::Await {
                        txn,
                        timeout_ms: self.behaviour.await_timeout.as_millis() as u32,
                    },
                )
                .await?;
            return Ok((judge(&reply, false, self.behaviour.wrong_rate > 0.0), None));
        }
        let wrong = rand::thread_rng().gen_bool(self.behaviour.wrong_rate.clamp(0.0, 1.0));
        let answer = match (&challenge, kind) {
            (Challenge::Numeric(q), DeviceKind::DscPlus | DeviceKind::IbKey) => {
                user.device(kind).and_then(|d| d.ocra_answer(q))
            }
            (Challenge::Positions(p), DeviceKind::Scc) => {
                user.device(kind).and_then(|d| d.card_answer(p))
            }
            (Challenge::Code, DeviceKind::TempCode) => user.temp_code.clone(),
            _ => return Err(Outcome::Unexpected("wrong_challenge_kind")),
        };
        let Some(mut answer) = answer else {
            return Err(Outcome::Unexpected("cannot_answer"));
        };
        if wrong {
            answer = mistype(&answer);
        }
        self.slow_user().await;
        let reply = self
            .call(
                user,
                Message::Answer {
                    txn,
                    response: answer.clone(),
                    client: user.client,
                },
            )
            .await?;
        Ok((
            judge(&reply, wrong, self.behaviour.wrong_rate > 0.0),
            Some((txn, answer)),
        ))
    }

    async fn slow_user(&self) {
        if self.behaviour.slow_rate > 0.0
            && rand::thread_rng().gen_bool(self.behaviour.slow_rate.clamp(0.0, 1.0))
        {
            tokio::time::sleep(self.behaviour.slow_delay).await;
        }
    }

    async fn replay(&self) -> Outcome {
        let Some(user) = self.pick(Persona::DscPlus) else {
            return Outcome::Unexpected("no_user");
        };
        let (first, sent) = match self
            .login(user, DeviceKind::DscPlus, Purpose::Login, false)
            .await
        {
            Ok(x) => x,
            Err(o) => return o,
        };
        let (Outcome::Ok, Some((txn, answer))) = (first, sent) else {
            return first;
        };
        match self
            .call(
                user,
                Message::Answer {
                    txn,
                    response: answer,
                    client: user.client,
                },
            )
            .await
        {
            Ok(Message::Judged {
                verdict: Verdict::Replayed,
            }) => Outcome::Ok,
            Ok(Message::Judged {
                verdict: Verdict::Accepted { .. },
            }) => Outcome::Unexpected("replay_accepted"),
            Ok(other) => judge_unexpected_reply(&other, false),
            Err(o) => o,
        }
    }

    async fn password_fail(&self) -> Outcome {
        let Some(user) = self.pick(Persona::DscPlus) else {
            return Outcome::Unexpected("no_user");
        };
        match self
            .call(
                user,
                Message::PasswordFailed {
                    user: user.name.clone(),
                    client: user.client,
                },
            )
            .await
        {
            Ok(Message::Judged {
                verdict: Verdict::Rejected { .. },
            }) => {}
            Ok(other) => return judge_unexpected_reply(&other, self.behaviour.wrong_rate > 0.0),
            Err(o) => return o,
        }
        // A successful login afterwards resets the count (R11).
        match self
            .login(user, DeviceKind::DscPlus, Purpose::Login, false)
            .await
        {
            Ok((o, _)) => o,
            Err(o) => o,
        }
    }

    async fn withdrawal(&self) -> Outcome {
        let Some(user) = self.pick(Persona::Withdrawal) else {
            return Outcome::Unexpected("no_user");
        };
        // Over the IB Key's 1M/day (R3): only the DSC+ may confirm it (R4).
        let purpose = Purpose::Withdrawal {
            amount_usd: 2_000_000,
        };
        match self.begin(user, purpose, None).await {
            Ok(Message::Devices { devices }) => {
                if devices.iter().any(|d| d.kind == DeviceKind::IbKey) || devices.is_empty() {
                    return Outcome::Unexpected("withdrawal_offers_weak_device");
                }
            }
            Ok(other) => return judge_unexpected_reply(&other, false),
            Err(o) => return o,
        }
        let ib = user.device(DeviceKind::IbKey).and_then(|d| d.id);
        match self.begin(user, purpose, ib).await {
            Ok(Message::Judged {
                verdict:
                    Verdict::NeedsStrongerDevice {
                        required: SecurityLevel::Top,
                    },
            }) => {}
            Ok(Message::ChallengeIssued { .. }) => {
                return Outcome::Unexpected("weak_device_challenged")
            }
            Ok(other) => return judge_unexpected_reply(&other, false),
            Err(o) => return o,
        }
        match self.login(user, DeviceKind::DscPlus, purpose, false).await {
            Ok((o, _)) => o,
            Err(o) => o,
        }
    }
}

/// Approves pushes for one connected IB Key app until its stream ends: for each push the
/// simulated user reads the number off the login screen, types it, and approves with
/// biometrics (or with the PIN, one time in four).
pub async fn run_app(
    world: std::sync::Arc<World>,
    user_index: usize,
    pipe: Pipeline,
    mut pushes: sls_client::pipeline::Pushes,
) {
    let user = &world.users[user_index];
    let Some(device) = user.device(DeviceKind::IbKey).cloned() else {
        return;
    };
    while let Some(msg) = pushes.recv().await {
        let Message::Push {
            txn,
            user: name,
            nonce,
            ..
        } = msg
        else {
            continue;
        };
        let world = world.clone();
        let pipe = pipe.clone();
        let device = device.clone();
        tokio::spawn(async move {
            let Some(number) = world.screen.read(txn, world.behaviour.await_timeout).await else {
                return;
            };
            world.slow_user().await;
            let method = if rand::thread_rng().gen_ratio(1, 4) {
                ApprovalMethod::Pin
            } else {
                ApprovalMethod::Biometric
            };
            let mac = device.push_mac(txn, &name, number, &nonce, method, true);
            let _ = pipe
                .call(Message::PushAnswer {
                    txn,
                    approve: true,
                    method,
                    number,
                    mac,
                })
                .await;
        });
    }
}
