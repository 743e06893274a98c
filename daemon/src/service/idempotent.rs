//! Idempotent admin writes: `Idempotent { key, request, body }` runs its
//! inner admin request once per key; a request re-sent with the same key (after a lost
//! answer, on any connection to this node) gets the first answer and changes nothing again.
//! Kept per node, in memory, for `idempotency_ttl` (24 h by default), at most
//! [`MAX_KEYS`] keys at once (past it: CAPACITY); a restart forgets them.
//!
//! An answer that decided nothing (UNAVAILABLE, INTERNAL, SHUTTING_DOWN: the request may be
//! retried) is not kept: a retry with the key runs the request again. The same key with
//! another request (type or fields) is IDEMPOTENCY_KEY_REUSED; with the first still being
//! handled, IDEMPOTENCY_IN_PROGRESS.

use std::hash::{BuildHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use sls_protocol::{Access, Message, Status};

use super::reply::Reply;

/// Most keys kept at once.
pub const MAX_KEYS: usize = 100_000;

/// The keys this node answered, and those it is answering.
pub struct Keys<K> {
    ttl: Duration,
    hasher: ahash::RandomState,
    map: DashMap<[u8; 16], Slot<K>, ahash::RandomState>,
}

struct Slot<K> {
    /// A digest of the request (its type and body).
    digest: u64,
    at: Instant,
    /// The first answer and its durable ticket; `None` while it is being handled.
    answer: Option<(Message, Option<K>)>,
}

/// What to do with an `Idempotent` request.
pub enum Claim<K> {
    /// Run the inner request; then [`Keys::finish`].
    Run(Message),
    /// Answer this (the first answer, with the ticket to wait on, or a refusal).
    Answer(Reply, Option<K>),
}

fn refuse<K>(status: Status, text: &str) -> Claim<K> {
    Claim::Answer(
        Reply::Now(Message::Error {
            status,
            message: text.into(),
        }),
        None,
    )
}

impl<K: Copy> Keys<K> {
    /// No keys, kept `ttl` each.
    pub fn new(ttl: Duration) -> Keys<K> {
        Keys {
            ttl,
            hasher: ahash::RandomState::new(),
            map: DashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    fn digest(&self, request: u16, body: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        request.hash(&mut h);
        body.hash(&mut h);
        h.finish()
    }

    /// Claims `key` for the request `request` with `body`.
    pub fn claim(&self, key: [u8; 16], request: u16, body: &[u8]) -> Claim<K> {
        let inner = match Message::decode_body(request, body) {
            Ok(m) => m,
            Err(e) => return refuse(Status::MALFORMED_FRAME, &format!("inner request: {e}")),
        };
        if inner.access() != Access::Admin || matches!(inner, Message::Idempotent { .. }) {
            return refuse(
                Status::NOT_IDEMPOTENT,
                "the inner request is not an admin request",
            );
        }
        let digest = self.digest(request, body);
        let now = Instant::now();
        if self.map.len() >= MAX_KEYS && !self.map.contains_key(&key) {
            return refuse(Status::CAPACITY, "too many idempotency keys kept");
        }
        match self.map.entry(key) {
            Entry::Occupied(o) if now.duration_since(o.get().at) >= self.ttl => {
                o.replace_entry(Slot {
                    digest,
                    at: now,
                    answer: None,
                });
                Claim::Run(inner)
            }
            Entry::Occupied(o) => {
                let slot = o.get();
                if slot.digest != digest {
                    return refuse(
                        Status::IDEMPOTENCY_KEY_REUSED,
                        "this idempotency key was used for another request",
                    );
                }
                match &slot.answer {
                    Some((m, ticket)) => Claim::Answer(Reply::Now(m.clone()), *ticket),
                    None => refuse(
                        Status::IDEMPOTENCY_IN_PROGRESS,
                        "the first request with this key is still being handled",
                    ),
                }
            }
            Entry::Vacant(v) => {
                v.insert(Slot {
                    digest,
                    at: now,
                    answer: None,
                });
                Claim::Run(inner)
            }
        }
    }

    /// The claimed `key`'s request was answered `reply`, durable at `ticket`: kept, unless it
    /// decided nothing (then the key is free again).
    pub fn finish(&self, key: [u8; 16], reply: &Reply, ticket: Option<K>) {
        let keep = match reply {
            Reply::Now(Message::Error { status, .. }) => !matches!(
                *status,
                Status::UNAVAILABLE | Status::INTERNAL | Status::SHUTTING_DOWN
            ),
            Reply::Now(_) => true,
            // Admin requests answer now; anything else is not kept.
            Reply::Later => false,
        };
        match (keep, reply) {
            (true, Reply::Now(m)) => {
                if let Some(mut slot) = self.map.get_mut(&key) {
                    slot.answer = Some((m.clone(), ticket));
                }
            }
            _ => {
                self.map.remove(&key);
            }
        }
    }

    /// Forgets keys past their time (one whose request never finished, too).
    pub fn sweep(&self) {
        let now = Instant::now();
        self.map.retain(|_, s| now.duration_since(s.at) < self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(user: &str) -> Vec<u8> {
        Message::Unlock { user: user.into() }.encode_body().unwrap()
    }

    fn status(c: &Claim<u64>) -> Option<Status> {
        match c {
            Claim::Answer(Reply::Now(Message::Error { status, .. }), _) => Some(*status),
            _ => None,
        }
    }

    #[test]
    fn a_key_answers_its_first_answer_and_only_for_the_same_request() {
        let keys = Keys::<u64>::new(Duration::from_secs(60));
        let k = [1; 16];
        assert!(matches!(keys.claim(k, 0x005e, &body("amy")), Claim::Run(_)));
        let again = keys.claim(k, 0x005e, &body("amy"));
        assert_eq!(status(&again), Some(Status::IDEMPOTENCY_IN_PROGRESS));
        keys.finish(k, &Reply::Now(Message::Done {}), Some(7));
        match keys.claim(k, 0x005e, &body("amy")) {
            Claim::Answer(Reply::Now(Message::Done {}), Some(7)) => {}
            _ => panic!("the first answer, with its ticket"),
        }
        let other = keys.claim(k, 0x005e, &body("bob"));
        assert_eq!(status(&other), Some(Status::IDEMPOTENCY_KEY_REUSED));
        let status_req = Message::Status { user: "amy".into() }
            .encode_body()
            .unwrap();
        let not = keys.claim([2; 16], 0x0014, &status_req);
        assert_eq!(status(&not), Some(Status::NOT_IDEMPOTENT));
        let bad = keys.claim([3; 16], 0x005e, &[0xff]);
        assert_eq!(status(&bad), Some(Status::MALFORMED_FRAME));
    }

    #[test]
    fn an_answer_that_decided_nothing_frees_the_key_and_old_keys_are_forgotten() {
        let keys = Keys::<u64>::new(Duration::from_secs(60));
        let k = [4; 16];
        assert!(matches!(keys.claim(k, 0x005e, &body("amy")), Claim::Run(_)));
        let unavailable = Reply::Now(crate::service::reply::unavailable("down"));
        keys.finish(k, &unavailable, None);
        assert!(matches!(keys.claim(k, 0x005e, &body("amy")), Claim::Run(_)));
        let short = Keys::<u64>::new(Duration::ZERO);
        assert!(matches!(
            short.claim(k, 0x005e, &body("amy")),
            Claim::Run(_)
        ));
        short.finish(k, &Reply::Now(Message::Done {}), None);
        short.sweep();
        assert!(matches!(
            short.claim(k, 0x005e, &body("bob")),
            Claim::Run(_)
        ));
    }
}
