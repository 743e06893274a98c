//! The storm: logins, wrong answers and right answers through every slsd node, each user's
//! requests one at a time (so that its acknowledged verdicts have an order), a challenge begun on
//! one node and often answered on another. Two kinds of users:
//!
//! - **steady** users, for the whole run: at most three wrong answers, then a right one (so they
//!   never reach the lock unless a success is lost); some accepted answers are sent again to
//!   another node at once, and again seconds later, past a fault (a replay, R12);
//! - **attacked** users, a wave each fault cycle: a challenge is opened and kept, then wrong
//!   answers until a node answers `Locked` (R11), then the kept challenge is answered right
//!   (it must not be accepted).
//!
//! Every request is bounded by [`CALL_TIMEOUT`], every loop by a count and by the run's stop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sls_protocol::{ocra, Challenge, DeviceId, Message, Purpose, TxnId, Verdict};

use crate::check::Tally;
use crate::history::{History, Intent, Line, Outcome, Request};
use crate::world::{client_ip, key, Fronts};

/// An accepted challenge is replayed again after this long (well within its 2 minutes, R12).
const LATE_REPLAY: Duration = Duration::from_secs(4);

/// How long a request waits for its answer before it counts as lost.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A user of the storm.
#[derive(Debug, Clone)]
pub struct User {
    /// Its name.
    pub name: String,
    /// Its number (its end user's address).
    pub index: usize,
    /// Its DSC+.
    pub device: DeviceId,
    /// Its shard.
    pub shard: usize,
}

/// One login attempt's time (begin and answer, or a refused begin), for the per-shard figures.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Sent, ms since the run began.
    pub t_ms: u64,
    /// The user's shard.
    pub shard: usize,
    /// How long, µs.
    pub took_us: u64,
    /// Whether it got a verdict (not an error, not lost).
    pub judged: bool,
}

/// What a user's task hands back.
pub struct Done {
    /// Its folded history.
    pub tally: Tally,
    /// Its attempts' times.
    pub samples: Vec<Sample>,
}

/// A user's requests: where they go, what they record.
struct Session {
    fronts: Fronts,
    history: History,
    user: User,
    rng: StdRng,
    tally: Tally,
    samples: Vec<Sample>,
}

impl Session {
    fn new(fronts: Fronts, history: History, user: User, seed: u64) -> Session {
        let tally = Tally::new(&user.name);
        let rng = StdRng::seed_from_u64(seed ^ (user.index as u64).wrapping_mul(0x9e37_79b9));
        Session {
            fronts,
            history,
            user,
            rng,
            tally,
            samples: Vec::new(),
        }
    }

    fn node(&mut self) -> usize {
        let n = self.fronts.len().max(1);
        self.rng.gen_range(0..n)
    }

    /// Sends `message` to `node`, records it in the history and the tally.
    async fn send(
        &mut self,
        node: usize,
        intent: Intent,
        txn: Option<TxnId>,
        message: Message,
    ) -> (Option<Message>, u64) {
        let t_ms = self.history.now_ms();
        let sent = Instant::now();
        let k = self.user.index;
        let reply = match self.fronts.pipe(node, k) {
            None => None,
            Some(pipe) => Some(
                match tokio::time::timeout(CALL_TIMEOUT, pipe.call(message)).await {
                    Err(_) => Err(format!("no answer within {CALL_TIMEOUT:?}")),
                    Ok(Err(e)) => Err(e.to_string()),
                    Ok(Ok(m)) => Ok(m),
                },
            ),
        };
        let took_us = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
        let Some(reply) = reply else {
            // The node is down: nothing sent. A short pause, not a busy loop over it.
            self.history.record(Line::Request(Request {
                t_ms,
                took_us,
                node,
                user: self.user.name.clone(),
                txn: txn.map(|t| format!("{:032x}", t.0)),
                intent,
                outcome: Outcome::NotSent,
            }));
            tokio::time::sleep(Duration::from_millis(50)).await;
            return (None, took_us);
        };
        let (outcome, txn) = match &reply {
            Err(e) => (Outcome::Lost(e.clone()), txn),
            Ok(Message::ChallengeIssued { txn, .. }) => (Outcome::Challenge, Some(*txn)),
            Ok(Message::Judged {
                verdict: Verdict::Rejected { failures_left },
            }) => (Outcome::Rejected(*failures_left), txn),
            Ok(Message::Judged { verdict }) => (Outcome::Verdict(verdict.name().into()), txn),
            Ok(Message::Error { status, .. }) => (Outcome::Error(status.0), txn),
            Ok(other) => (Outcome::Lost(format!("unexpected {other:?}")), txn),
        };
        let txn = txn.map(|t| format!("{:032x}", t.0));
        self.tally
            .observe(t_ms, node, intent, txn.as_deref(), &outcome);
        self.history.record(Line::Request(Request {
            t_ms,
            took_us,
            node,
            user: self.user.name.clone(),
            txn,
            intent,
            outcome,
        }));
        (reply.ok(), took_us)
    }

    /// A `Begin` on `node`: the transaction and its right and wrong answers, or `None` (the
    /// reply is in the tally: `Locked`, a refusal, nothing).
    async fn begin(&mut self, node: usize) -> (Option<(TxnId, String, String)>, u64) {
        let msg = Message::Begin {
            user: self.user.name.clone(),
            purpose: Purpose::Login,
            device: Some(self.user.device),
            client: client_ip(self.user.index),
        };
        let (reply, took) = self.send(node, Intent::Begin, None, msg).await;
        let Some(Message::ChallengeIssued {
            txn,
            challenge: Challenge::Numeric(q),
            ..
        }) = reply
        else {
            return (None, took);
        };
        let right = ocra_answer(&self.user.name, &q);
        let wrong = wrong_of(&right);
        (Some((txn, right, wrong)), took)
    }

    async fn answer(
        &mut self,
        node: usize,
        intent: Intent,
        txn: TxnId,
        response: &str,
    ) -> ReplyTook {
        let msg = Message::Answer {
            txn,
            response: response.to_owned(),
            client: client_ip(self.user.index),
        };
        let (reply, took) = self.send(node, intent, Some(txn), msg).await;
        let reply = match reply {
            Some(Message::Judged { verdict }) => Reply::Judged(verdict),
            _ => Reply::Unknown,
        };
        ReplyTook { reply, took }
    }

    fn sample(&mut self, t_ms: u64, took_us: u64, judged: bool) {
        self.samples.push(Sample {
            t_ms,
            shard: self.user.shard,
            took_us,
            judged,
        });
    }

    fn done(self) -> Done {
        Done {
            tally: self.tally,
            samples: self.samples,
        }
    }
}

/// A verdict, or none (an `Error` frame, a timeout, a lost connection).
enum Reply {
    Judged(Verdict),
    Unknown,
}

/// An answer's reply and how long it took (µs).
struct ReplyTook {
    reply: Reply,
    took: u64,
}

/// The right answer of `user`'s DSC+ (PIN 1234) to `question`.
fn ocra_answer(user: &str, question: &str) -> String {
    sls_loadgen::harness::ocra_answer(ocra::DSC_PLUS_DEFAULT_SUITE, &key(user), question, "1234")
        .unwrap_or_default()
}

/// A wrong answer of the same length: the right one plus one, modulo 10^8.
fn wrong_of(right: &str) -> String {
    let n = right.parse::<u64>().unwrap_or(0);
    format!("{:08}", n.wrapping_add(1) % 100_000_000)
}

/// A steady user until `stop` (or `max` attempts, or `deadline`): at most three wrong
/// answers, then right ones until one is acknowledged; a third of the acknowledged ones re-sent
/// to another node.
pub async fn steady(
    fronts: Fronts,
    history: History,
    user: User,
    seed: u64,
    stop: Arc<AtomicBool>,
    (max, deadline): (usize, Instant),
) -> Done {
    let mut s = Session::new(fronts, history, user, seed);
    let mut wrongs = 0u32;
    let mut must_right = false;
    // Accepted challenges, replayed again later (past the next fault, often): a failover that
    // lost the acceptance would take the replay (R12).
    let mut spent: VecDeque<(TxnId, String, Instant)> = VecDeque::new();
    for _ in 0..max {
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            break;
        }
        let pause = s.rng.gen_range(20..60);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let late = spent
            .front()
            .is_some_and(|(_, _, at)| at.elapsed() > LATE_REPLAY);
        if late && s.rng.gen_bool(0.2) {
            if let Some((txn, answer, _)) = spent.pop_front() {
                let node = s.node();
                s.answer(node, Intent::Replay, txn, &answer).await;
                continue;
            }
        }
        let right = must_right || wrongs >= 3 || s.rng.gen_bool(0.35);
        let (b, a) = (s.node(), s.node());
        let t_ms = s.history.now_ms();
        let (begun, took_b) = s.begin(b).await;
        let Some((txn, right_answer, wrong_answer)) = begun else {
            s.sample(t_ms, took_b, false);
            continue;
        };
        let (intent, response) = if right {
            (Intent::Right, right_answer.clone())
        } else {
            (Intent::Wrong, wrong_answer)
        };
        let r = s.answer(a, intent, txn, &response).await;
        let judged = matches!(r.reply, Reply::Judged(_));
        s.sample(t_ms, took_b.saturating_add(r.took), judged);
        if !right {
            wrongs += 1;
            continue;
        }
        match r.reply {
            Reply::Judged(Verdict::Accepted { .. }) => {
                wrongs = 0;
                must_right = false;
                if s.rng.gen_bool(0.3) {
                    let again = (a + 1) % s.fronts.len().max(1);
                    s.answer(again, Intent::Replay, txn, &right_answer).await;
                }
                if spent.len() < 8 {
                    spent.push_back((txn, right_answer, Instant::now()));
                }
            }
            // No verdict, or one that is not a success: the count may still run.
            _ => must_right = true,
        }
    }
    s.done()
}

/// An attacked user: after `delay`, a challenge kept aside, then wrong answers every `pace`
/// until a node acknowledges the lock (at most `max` attempts, and not past `deadline`), then
/// the kept challenge answered right, which must not be accepted (R11).
pub async fn attacked(
    fronts: Fronts,
    history: History,
    user: User,
    seed: u64,
    delay: Duration,
    pace: Duration,
    deadline: Instant,
) -> Done {
    const MAX: usize = 60;
    let mut s = Session::new(fronts, history, user, seed);
    tokio::time::sleep(delay).await;
    let mut kept = None;
    for _ in 0..MAX {
        let b = s.node();
        if let (Some((txn, right, _)), _) = s.begin(b).await {
            kept = Some((txn, right));
            break;
        }
        if Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(pace).await;
    }
    for _ in 0..MAX {
        if s.tally.locked_at_ms.is_some() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(pace).await;
        let (b, a) = (s.node(), s.node());
        let t_ms = s.history.now_ms();
        let (begun, took_b) = s.begin(b).await;
        let Some((txn, _, wrong)) = begun else {
            s.sample(t_ms, took_b, s.tally.locked_at_ms.is_some());
            continue;
        };
        let r = s.answer(a, Intent::Wrong, txn, &wrong).await;
        let judged = matches!(r.reply, Reply::Judged(_));
        s.sample(t_ms, took_b.saturating_add(r.took), judged);
    }
    if let (Some((txn, right)), Some(_)) = (kept, s.tally.locked_at_ms) {
        // Until a node judges it (a fault may refuse it): never `Accepted`.
        for _ in 0..5 {
            let node = s.node();
            let r = s.answer(node, Intent::RightWhileLocked, txn, &right).await;
            if matches!(r.reply, Reply::Judged(_)) || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(pace).await;
        }
    }
    s.done()
}
