//! The attacker scenario (R11): guess a victim's DSC+ answers until the lock comes, check that
//! it came at exactly the threshold and that it holds, then have an admin unlock the victim for
//! a later round.
//!
//! An attacker meets two defences, and the scenario exists to show the second. The per-user
//! rate limit (by default 5 requests a second, burst 40) *slows* guessing; the lockout *stops*
//! it. One attack is 21 requests (ten begins and ten answers, then the begin the lock refuses),
//! which a rested victim's burst takes whole; an attacker who came back at once to the same
//! victims would meet only the limiter. So the attacker here behaves as a patient one does:
//! - victims are attacked in turn (first in, first out): each rests while all the others are
//!   attacked, and one victim is never attacked by two steps at once;
//! - a request refused with `rate_limited` is sent again after the `retry_after_ms` the daemon
//!   named (the refusal did nothing: no failure counted, no challenge spent, PROTOCOL.md §4),
//!   up to [`MOST_WAIT`] in all per attack; past that the step ends `rate_limited` (expected).
//!
//! The time a step spent waiting on the limiter is part of its latency: an attacker's latency is
//! how long one lockout took, not a server's response time.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use sls_protocol::{DeviceKind, Message, Purpose, Verdict};

use crate::fleet::SimUser;
use crate::judge::judge_unexpected_reply;
use crate::report::Outcome;
use sls_client::pipeline::Pipeline;

/// Most time one attack waits on the rate limiter, in all, before it gives up: a whole attack
/// from an empty bucket at the default 5 a second takes about 4 s.
pub const MOST_WAIT: Duration = Duration::from_secs(10);

/// The victims not under attack, in the order they will be attacked.
pub struct Victims {
    queue: Mutex<VecDeque<usize>>,
}

impl Victims {
    /// Victims by their index in the fleet.
    pub fn new(users: impl IntoIterator<Item = usize>) -> Victims {
        Victims {
            queue: Mutex::new(users.into_iter().collect()),
        }
    }

    /// The victim rested longest, taken out of the queue while it is attacked.
    fn take(&self) -> Option<usize> {
        self.queue.lock().ok()?.pop_front()
    }

    /// `victim` goes to the back of the queue.
    fn give_back(&self, victim: usize) {
        if let Ok(mut q) = self.queue.lock() {
            q.push_back(victim);
        }
    }
}

/// Where an attack sends its requests, and what it expects of the daemon.
pub struct Attacker<'a> {
    /// The fleet.
    pub users: &'a [SimUser],
    /// The frontend stream the guesses go over.
    pub frontend: &'a Pipeline,
    /// The admin stream that unlocks a victim after the attack.
    pub admin: &'a Pipeline,
    /// The lockout threshold the daemon runs with (R11, default 10).
    pub threshold: u8,
}

impl Attacker<'_> {
    /// One attack on the victim rested longest, then its unlock.
    pub async fn step(&self, victims: &Victims) -> Outcome {
        let Some(victim) = victims.take() else {
            return Outcome::Expected("no_free_victim");
        };
        let outcome = self.attack(&self.users[victim]).await;
        let unlocked = self
            .admin
            .call(Message::Unlock {
                user: self.users[victim].name.clone(),
            })
            .await;
        victims.give_back(victim);
        match unlocked {
            Ok(Message::Done {}) => outcome,
            _ => Outcome::Unexpected("unlock_failed"),
        }
    }

    async fn attack(&self, user: &SimUser) -> Outcome {
        let threshold = self.threshold;
        let Some(device) = user.device(DeviceKind::DscPlus).and_then(|d| d.id) else {
            return Outcome::Unexpected("no_device");
        };
        let begin = Message::Begin {
            user: user.name.clone(),
            purpose: Purpose::Login,
            device: Some(device),
            client: user.client,
        };
        let mut patience = Patience::default();
        let mut left_mismatch = false;
        for attempt in 1..=threshold {
            let txn = match patience.call(self.frontend, &begin).await {
                Ok(Message::ChallengeIssued { txn, .. }) => txn,
                Ok(Message::Judged {
                    verdict: Verdict::Locked { .. },
                }) => return Outcome::Unexpected("early_lock"),
                Ok(other) => return judge_unexpected_reply(&other, false),
                Err(o) => return o,
            };
            // Eight digits that are never a DSC+ answer's shape mistake: a plain wrong guess.
            let guess = format!("{:08}", rand::thread_rng().gen_range(0..100_000_000u32));
            let answer = Message::Answer {
                txn,
                response: guess,
                client: user.client,
            };
            let verdict = match patience.call(self.frontend, &answer).await {
                Ok(Message::Judged { verdict }) => verdict,
                Ok(other) => return judge_unexpected_reply(&other, false),
                Err(o) => return o,
            };
            match verdict {
                Verdict::Rejected { failures_left } if attempt < threshold => {
                    left_mismatch |= failures_left != threshold - attempt;
                }
                Verdict::Locked { .. } if attempt == threshold => {}
                Verdict::Locked { .. } => return Outcome::Unexpected("early_lock"),
                Verdict::Rejected { .. } => return Outcome::Unexpected("late_lock"),
                // One guess in 10^8 is right; the scenario cannot tell it from a bug.
                Verdict::Accepted { .. } => return Outcome::Expected("lucky_guess"),
                Verdict::RateLimited { .. } => return Outcome::Expected("rate_limited"),
                _ => return Outcome::Unexpected("attack_verdict"),
            }
        }
        if left_mismatch {
            return Outcome::Unexpected("wrong_failures_left");
        }
        // The lock holds: even the right device gets no challenge.
        match patience.call(self.frontend, &begin).await {
            Ok(Message::Judged {
                verdict: Verdict::Locked { .. },
            }) => Outcome::Ok,
            Ok(Message::ChallengeIssued { .. }) => Outcome::Unexpected("lock_not_held"),
            Ok(other) => judge_unexpected_reply(&other, false),
            Err(o) => o,
        }
    }
}

/// How long an attack has waited on the rate limiter so far.
#[derive(Default)]
struct Patience {
    waited: Duration,
}

impl Patience {
    /// Sends `msg`; a `rate_limited` reply is waited out as the daemon says and the request
    /// sent again, until [`MOST_WAIT`] is spent (then that reply is returned).
    async fn call(&mut self, pipe: &Pipeline, msg: &Message) -> Result<Message, Outcome> {
        loop {
            let reply = pipe
                .call(msg.clone())
                .await
                .map_err(|_| Outcome::Unexpected("transport"))?;
            let Message::Judged {
                verdict: Verdict::RateLimited { retry_after_ms },
            } = reply
            else {
                return Ok(reply);
            };
            let wait = Duration::from_millis(u64::from(retry_after_ms.max(1)));
            if self.waited + wait > MOST_WAIT {
                return Ok(reply);
            }
            self.waited += wait;
            tokio::time::sleep(wait).await;
        }
    }
}
