//! A login as a state machine, for the batched paths ([`crate::raw`]'s [`Driver`]s): each slot
//! of a connection sends a `Begin`, answers the challenge the way the user's device would (or
//! mistyped), and ends at the reply to its answer (or at a `Begin` that got no challenge).
//!
//! One machine serves both users of the batched path: `run --raw` ([`crate::raw_dsc`], DSC+
//! logins counted in units) and the scenarios that are a request/reply chain
//! ([`crate::batched`], each ended login judged into its scenario's stats).
//!
//! [`Driver`]: crate::raw::Driver

use std::sync::Arc;

use bytes::BytesMut;
use sls_protocol::{frame, Challenge, DeviceId, DeviceKind, Message, Purpose, TxnId};

use crate::fleet::{SimDevice, SimUser};
use crate::judge::mistype;

/// What answers a user's challenges.
#[derive(Clone)]
enum Answerer {
    /// A DSC+, an IB Key's typed fallback or a Security Code Card.
    Device(SimDevice),
    /// A temporary code.
    Code(String),
}

/// A user as the machine logs them in: with one of their devices.
#[derive(Clone)]
pub struct Login {
    user: String,
    device: DeviceId,
    client: std::net::IpAddr,
    answerer: Answerer,
}

impl Login {
    /// `user`'s login with their device of `kind` (their temporary code for
    /// [`DeviceKind::TempCode`]), if they have it enrolled.
    pub fn of(user: &SimUser, kind: DeviceKind) -> Option<Login> {
        let (device, answerer) = match kind {
            DeviceKind::TempCode => (user.temp_device?, Answerer::Code(user.temp_code.clone()?)),
            _ => {
                let d = user.device(kind)?;
                (d.id?, Answerer::Device(d.clone()))
            }
        };
        Some(Login {
            user: user.name.clone(),
            device,
            client: user.client,
            answerer,
        })
    }

    /// The answer the user's device shows for `challenge`, or why there is none (the same
    /// cases as the scenarios' own logins).
    fn answer(&self, challenge: &Challenge) -> Result<String, &'static str> {
        let answer = match (challenge, &self.answerer) {
            (Challenge::Numeric(q), Answerer::Device(d))
                if matches!(d.kind, DeviceKind::DscPlus | DeviceKind::IbKey) =>
            {
                d.ocra_answer(q)
            }
            (Challenge::Positions(p), Answerer::Device(d)) if d.kind == DeviceKind::Scc => {
                d.card_answer(p)
            }
            (Challenge::Code, Answerer::Code(c)) => Some(c.clone()),
            _ => return Err("wrong_challenge_kind"),
        };
        answer.ok_or("cannot_answer")
    }
}

/// One slot's login in progress.
#[derive(Clone, Default)]
struct Slot {
    /// Its user, an index into the machine's logins.
    login: usize,
    /// Whether it answers wrong (a typo, see [`mistype`]).
    wrong: bool,
    /// The answer to send next, if its challenge came.
    pending: Option<(TxnId, String)>,
    /// Whether its answer was sent (the next reply is the verdict).
    answered: bool,
}

/// What a reply did to a slot's login.
#[derive(Debug)]
pub enum Step {
    /// The challenge came and is answered: the slot's next request is the answer.
    Answering,
    /// The login ended with `reply`: the verdict on its answer (`answered`), or a `Begin`'s
    /// reply that was no challenge.
    Ended {
        /// The last reply.
        reply: Message,
        /// Whether it answers the answer (else the `Begin`).
        answered: bool,
        /// Whether the answer sent was mistyped.
        wrong: bool,
    },
    /// The challenge came but could not be answered (`wrong_challenge_kind`,
    /// `cannot_answer`): the login ended.
    Failed(&'static str),
}

/// The logins in progress on one connection's slots.
pub struct Machine {
    logins: Arc<Vec<Login>>,
    slots: Vec<Slot>,
}

impl Machine {
    /// `slots` slots logging in users among `logins`.
    pub fn new(logins: Arc<Vec<Login>>, slots: usize) -> Machine {
        Machine {
            logins,
            slots: vec![Slot::default(); slots],
        }
    }

    /// How many users it draws from.
    pub fn logins(&self) -> usize {
        self.logins.len()
    }

    /// Whether `slot` is in a login (its next request is its answer).
    pub fn answering(&self, slot: usize) -> bool {
        self.slots[slot].pending.is_some()
    }

    /// Appends `slot`'s next request, framed with `id`, to `out`: its answer if its challenge
    /// came, else the `Begin` of a new login of `next()`'s user (an index into the logins,
    /// taken modulo their number) answering wrong or not.
    pub fn request(
        &mut self,
        slot: usize,
        id: u32,
        out: &mut BytesMut,
        next: impl FnOnce() -> (usize, bool),
    ) {
        let s = &mut self.slots[slot];
        let message = match s.pending.take() {
            Some((txn, response)) => {
                s.answered = true;
                Message::Answer {
                    txn,
                    response,
                    client: self.logins[s.login].client,
                }
            }
            None => {
                let (login, wrong) = next();
                *s = Slot {
                    login: login % self.logins.len().max(1),
                    wrong,
                    pending: None,
                    answered: false,
                };
                let login = &self.logins[s.login];
                Message::Begin {
                    user: login.user.clone(),
                    purpose: Purpose::Login,
                    device: Some(login.device),
                    client: login.client,
                }
            }
        };
        // The fleet's names and answers are within the protocol's limits.
        let _ = frame::encode(id, &message, out);
    }

    /// `slot`'s reply to its last request.
    pub fn reply(&mut self, slot: usize, reply: Message) -> Step {
        let s = &mut self.slots[slot];
        match reply {
            Message::ChallengeIssued { txn, challenge, .. } if !s.answered => {
                match self.logins[s.login].answer(&challenge) {
                    Ok(answer) => {
                        let answer = if s.wrong { mistype(&answer) } else { answer };
                        s.pending = Some((txn, answer));
                        Step::Answering
                    }
                    Err(why) => Step::Failed(why),
                }
            }
            reply => {
                s.pending = None;
                Step::Ended {
                    reply,
                    answered: s.answered,
                    wrong: s.wrong,
                }
            }
        }
    }
}
