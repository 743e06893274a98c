//! Updates: a rule run on a copy of a versioned value and written back with a compare-and-set
//! on the id of the write it came from ([`crate::keys::CAS`]).
//!
//! An update of a user starts from the value this node last knew of them, when it knows one
//! ([`crate::read::UserCache`]), rather than reading: a login's answer finds its user as its
//! `begin` wrote it, and a user's next login finds them as their last one left them. That guess
//! is proved by the compare-and-set, which refuses it if another write came in between and
//! sends back the current value in the same reply, so the rule runs again at once on that. A
//! rule that would write nothing is never answered from a guess: its update reads, and runs
//! the rule again on what it read. So a login is two round trips (`begin`'s write, the
//! answer's write) where it was four, and no decision rests on a stale value.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis::AsyncCommands;
use sls_engine::{
    Committed, IndexOp, Limited, LimitedUpdate, Record, Share, StoreError, TokenAsk, UserState,
};
use sls_protocol::DeviceKind;
use zeroize::Zeroizing;

use crate::limit::{refused, token_args};
use crate::read::{next_field, Fields, Version, Versioned};
use crate::txn::op_txn;
use crate::{unavailable, Command, RedisStore};

fn damaged(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Damaged(format!("{what}: {e}").into())
}

const REPLY: &str = "compare-and-set reply";

/// A compare-and-set's outcome.
pub(crate) enum Cas {
    /// Written: the value's new version, whether the transaction's entry sent with it was
    /// written too (`true` if none was sent), and the id of the node that ran it (`None` if it
    /// did not say: no cluster).
    Written(Version, bool, Option<String>),
    /// Another write came in between: the value as it is now.
    Moved(Versioned),
    /// The user's rate-limit token sent with the write was refused: nothing written; would
    /// pass `retry_after_ms` later.
    Refused(u32),
    /// An earlier send of this very write applied it (its reply was lost, the client sent it
    /// again), and other writes came after: the value as it is now.
    Superseded(Versioned),
}

/// The users' locks of this node's updates, one per user (not stripes: two users who shared a
/// stripe waited for each other, and a user of a frozen master held the other's update for the
/// whole reply timeout though the other's master answered). A lock stays while some update
/// holds or awaits it; the others are dropped when the map has doubled since it was last
/// pruned, so a user updated again soon reuses its lock.
#[derive(Debug)]
pub(crate) struct Updating {
    locks: std::collections::HashMap<Box<str>, Arc<tokio::sync::Mutex<()>>>,
    prune_at: usize,
}

/// Locks kept before the first pruning, at least.
const LOCKS: usize = 1024;

impl Default for Updating {
    fn default() -> Updating {
        Updating {
            locks: std::collections::HashMap::new(),
            prune_at: LOCKS,
        }
    }
}

impl Updating {
    /// `user`'s lock: the one every update of `user` on this node holds while it runs.
    pub(crate) fn of(&mut self, user: &str) -> Arc<tokio::sync::Mutex<()>> {
        if let Some(lock) = self.locks.get(user) {
            return lock.clone();
        }
        if self.locks.len() >= self.prune_at {
            // Held or awaited by an update: more than the map's own reference.
            self.locks.retain(|_, lock| Arc::strong_count(lock) > 1);
            self.prune_at = self.locks.len().saturating_mul(2).max(LOCKS);
        }
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        self.locks.insert(user.into(), lock.clone());
        lock
    }
}

impl RedisStore {
    /// Compare-and-set: writes `value` at `key`, sealed (deletes if empty), if `key` still
    /// holds the write `base`; the transaction index's `op` in the same script when its key is
    /// in `key`'s slot; and first, with `token`, the rate-limit token of the user it names.
    async fn cas(
        &self,
        key: &[u8],
        base: &Version,
        value: &[u8],
        op: Option<(&str, &IndexOp)>,
        token: Option<(&str, &TokenAsk)>,
    ) -> Result<Cas, StoreError> {
        let sealed = if value.is_empty() {
            Vec::new()
        } else {
            self.sealer.seal(key, value)?
        };
        let write = format!(
            "{:x}:{}",
            self.nonce,
            self.writes.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = self.conn(match op {
            None => Command::Cas,
            Some((_, IndexOp::Bind { .. })) => Command::CasBind,
            Some((_, IndexOp::Settle { .. })) => Command::CasSettle,
        });
        let mut inv = self.scripts.cas.key(key);
        inv.arg(&*base.w).arg(sealed).arg(&write);
        match token {
            Some((user, t)) => {
                inv.key(self.keys.rate(user)).arg(&token_args(t));
            }
            None => {
                inv.arg("").arg("").arg("");
            }
        }
        match op {
            None => {}
            Some((
                user,
                IndexOp::Bind {
                    txn,
                    device,
                    until_ms,
                },
            )) => {
                inv.key(self.keys.txn(*txn))
                    .arg("b")
                    .arg(user)
                    .arg(device.0)
                    .arg(*until_ms)
                    .arg(self.ttl_ms(*until_ms));
            }
            Some((
                _,
                IndexOp::Settle {
                    txn,
                    verdict,
                    until_ms,
                },
            )) => {
                inv.key(self.keys.txn(*txn))
                    .arg("s")
                    .arg(crate::txn::encode_verdict(verdict)?)
                    .arg(*until_ms)
                    .arg(self.ttl_ms(*until_ms));
            }
        }
        let reply: Vec<redis::Value> = inv.invoke_async(&mut c).await.map_err(unavailable)?;
        let mut reply = reply.into_iter();
        let status: i64 = next_field(&mut reply, REPLY)?.ok_or_else(|| damaged(REPLY, "empty"))?;
        if let Ok(n) = u64::try_from(status) {
            // A re-sent write that had applied answers its count, `0` for its entry (whether
            // it was written then is not known: the node notes nothing of it and asks Redis
            // later) and the node where it now is.
            let indexed = next_field::<i64>(&mut reply, REPLY)? == Some(1);
            let node = next_field::<String>(&mut reply, REPLY)?.filter(|id| !id.is_empty());
            if node.is_none() && self.config.wait_replicas > 0 {
                // Without it any master's `WAIT` could vouch for the write (`written_on.rs`):
                // the change stands, its answer is not given as if recorded.
                return Err(StoreError::Unavailable(
                    "the compare-and-set did not say which node ran it (CLUSTER MYID)".into(),
                ));
            }
            return Ok(Cas::Written(Version { n, w: write.into() }, indexed, node));
        }
        if status == -3 {
            let wait_us: u64 = next_field(&mut reply, REPLY)?.unwrap_or(0);
            if let Limited::Refused { retry_after_ms } = refused(wait_us) {
                return Ok(Cas::Refused(retry_after_ms));
            }
            return Err(damaged(REPLY, "a refusal with no wait"));
        }
        let now: Fields =
            next_field(&mut reply, REPLY)?.ok_or_else(|| damaged(REPLY, "no current value"))?;
        let now = self.opened(key, now)?;
        Ok(if status == -2 {
            Cas::Superseded(now)
        } else {
            Cas::Moved(now)
        })
    }

    /// Tries again after a lost compare-and-set, a little later each time.
    async fn backoff(&self, attempt: u32) {
        self.conflicts.fetch_add(1, Ordering::Relaxed);
        let n = self.conflicts.load(Ordering::Relaxed);
        // Up to 8 ms, jittered per node so that two nodes do not retry in step.
        let ms = u64::from(attempt.min(8)) + (self.nonce.wrapping_add(n) % 3);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }

    /// The indexes kept from committed records: IB Key device → owner, entity → primary.
    /// Whether it wrote any (in slots of their own).
    async fn index(&self, records: &[Record]) -> Result<bool, StoreError> {
        let mut wrote = false;
        for r in records {
            match r {
                Record::Device {
                    user,
                    id,
                    kind: DeviceKind::IbKey,
                    ..
                } => {
                    let () = self
                        .conn(Command::Other)
                        .set(self.keys.ib_owner(id.0), user)
                        .await
                        .map_err(unavailable)?;
                    wrote = true;
                }
                Record::User {
                    name,
                    entity,
                    primary: true,
                    ..
                } if !entity.is_empty() => {
                    let () = self
                        .conn(Command::Other)
                        .set(self.keys.primary(entity), name)
                        .await
                        .map_err(unavailable)?;
                    wrote = true;
                }
                _ => {}
            }
        }
        Ok(wrote)
    }

    /// Takes a token still pending alone: for an update that ends with neither a read nor a
    /// write of its own to carry it. `Some(retry_after_ms)` if refused.
    async fn token_alone(
        &self,
        user: &str,
        token: &mut Option<TokenAsk>,
    ) -> Result<Option<u32>, StoreError> {
        let Some(t) = token.take() else {
            return Ok(None);
        };
        Ok(match self.take_user_token(user, t.now_ms, t.quota).await? {
            Limited::Passed(()) => None,
            Limited::Refused { retry_after_ms } => Some(retry_after_ms),
        })
    }

    /// Runs `rule` on `user` and writes what it changed (module docs); with `token`, takes
    /// the user's rate-limit token first, in the same round trip as the first read or write
    /// ([`crate::limit`]).
    pub(crate) async fn update_now<T, F, I>(
        &self,
        user: &str,
        create: bool,
        mut token: Option<TokenAsk>,
        mut rule: F,
        index: I,
    ) -> Result<LimitedUpdate<T, u64>, StoreError>
    where
        F: FnMut(&mut UserState, &mut Vec<Record>) -> T,
        I: Fn(&T) -> Option<IndexOp>,
    {
        let lock = self.updating.lock().of(user);
        let _local = lock.lock().await;
        let key = self.keys.user(user);
        // Where the rule starts, and whether it was read (or sent back by a lost
        // compare-and-set) for this update; `false`: the cache's guess (module docs).
        let mut base: Option<(Versioned, bool)> = self.cache.get(&key).map(|v| (v, false));
        // A guess takes one attempt more than the configured tries: it is no conflict.
        let tries = self
            .config
            .max_tries
            .saturating_add(u32::from(base.is_some()));
        for attempt in 0..tries {
            let (
                Versioned {
                    version,
                    value: old,
                },
                read,
            ) = match base.take() {
                Some(b) => b,
                // The token, if still pending, rides on the read.
                None => match token.take() {
                    None => (self.read_versioned(&key).await?, true),
                    Some(t) => match self.read_limited(user, &key, &t).await? {
                        Limited::Passed(v) => (v, true),
                        Limited::Refused { retry_after_ms } => {
                            return Ok(Limited::Refused { retry_after_ms })
                        }
                    },
                },
            };
            let mut state = match &old {
                Some(b) => UserState::decode(b).map_err(|e| damaged("user state", e))?,
                None if create => UserState::default(),
                None if !read => continue,
                None => {
                    if let Some(retry_after_ms) = self.token_alone(user, &mut token).await? {
                        return Ok(Limited::Refused { retry_after_ms });
                    }
                    return Ok(Limited::Passed(None));
                }
            };
            let mut records = Vec::new();
            let value = rule(&mut state, &mut records);
            let mut new = Zeroizing::new(Vec::with_capacity(state.encoded_len_hint()));
            state.encode(&mut new);
            let unchanged = records.is_empty() && old.as_deref().is_some_and(|o| **o == *new);
            if !read && (unchanged || (old.is_none() && !state.is_enrolled())) {
                continue;
            }
            if (old.is_none() && !state.is_enrolled()) || unchanged {
                if let Some(retry_after_ms) = self.token_alone(user, &mut token).await? {
                    return Ok(Limited::Refused { retry_after_ms });
                }
            }
            if old.is_none() && !state.is_enrolled() {
                return Ok(Limited::Passed(Some(Committed {
                    value,
                    ticket: None,
                })));
            }
            let op = index(&value);
            if unchanged {
                // Nothing changed: what was read is the state this answer is based on.
                if let Some(op) = &op {
                    self.index_apart(user, op).await?;
                }
                self.cache.put(
                    &key,
                    Versioned {
                        version,
                        value: old,
                    },
                );
                return Ok(Limited::Passed(Some(Committed {
                    value,
                    ticket: None,
                })));
            }
            // The index's entry goes in the same script when it lives in the user's slot (ids
            // made for this user do); else right after.
            let beside = op
                .as_ref()
                .filter(|op| {
                    crate::keys::slot(&self.keys.txn(op_txn(op))) == crate::keys::slot(&key)
                })
                .map(|op| (user, op));
            let limited = token.as_ref().map(|t| (user, t));
            let cas = self.cas(&key, &version, &new, beside, limited).await?;
            if !matches!(cas, Cas::Moved(_)) {
                // Taken with the write, or by an earlier send of it.
                token = None;
            }
            // The node that ran the write, when it said: only its `WAIT` answers for it.
            let mut ran_on = None;
            let indexed = match cas {
                Cas::Refused(retry_after_ms) => return Ok(Limited::Refused { retry_after_ms }),
                Cas::Moved(now) => {
                    // A guess that was stale is no conflict: only a read value backs off.
                    if read {
                        self.backoff(attempt).await;
                    } else {
                        self.stale.fetch_add(1, Ordering::Relaxed);
                    }
                    base = Some((now, true));
                    continue;
                }
                Cas::Superseded(now) => {
                    // Written by an earlier send; what is there now is a later write's. Whether
                    // its entry was written is not known: noted nothing of (asked later).
                    self.cache.put(&key, now);
                    false
                }
                Cas::Written(_, indexed, node) if new.is_empty() => {
                    self.cache.forget(&key);
                    ran_on = node;
                    indexed
                }
                Cas::Written(version, indexed, node) => {
                    ran_on = node;
                    self.cache.put_written(
                        &key,
                        Versioned {
                            version,
                            value: Some(new),
                        },
                    );
                    indexed
                }
            };
            // Whether this request wrote outside the user's slot: its ticket then waits for
            // every master ([`crate::durable`]).
            let mut elsewhere = false;
            if let Some(op) = &op {
                if beside.is_none() {
                    self.index_apart(user, op).await?;
                    elsewhere = true;
                } else if indexed {
                    // What Redis has, as this node knows it (not what it refused).
                    self.indexed(user, op);
                }
            }
            if old.is_none() {
                let mut c = self.conn(Command::Other);
                let n: u64 = c.incr(self.keys.users(), 1).await.map_err(unavailable)?;
                self.users
                    .fetch_max(usize::try_from(n).unwrap_or(usize::MAX), Ordering::Relaxed);
            }
            // (The count of users is a gauge: its `INCR` waits for nothing.)
            elsewhere |= self.index(&records).await?;
            let ticket = match (self.written(&records, op.as_ref(), &key, elsewhere), ran_on) {
                (Some(t), Some(node)) => Some(self.ran_on(t, &key, node)),
                (t, _) => t,
            };
            return Ok(Limited::Passed(Some(Committed { value, ticket })));
        }
        Err(StoreError::Unavailable(
            format!(
                "user {user:?}: {} compare-and-set conflicts in a row",
                self.config.max_tries
            )
            .into(),
        ))
    }

    /// A user's state as Redis has it now (never from the cache: a read decides alone).
    pub(crate) async fn read_now<T, F>(&self, user: &str, read: F) -> Result<Option<T>, StoreError>
    where
        F: FnOnce(&UserState) -> T,
    {
        let key = self.keys.user(user);
        let got = self.read_versioned(&key).await?;
        let out = match &got.value {
            None => None,
            Some(b) => {
                let u = UserState::decode(b).map_err(|e| damaged("user state", e))?;
                Some(read(&u))
            }
        };
        self.cache.put(&key, got);
        Ok(out)
    }

    pub(crate) async fn update_share_now<T, F>(
        &self,
        id: u32,
        mut change: F,
    ) -> Result<Committed<T, u64>, StoreError>
    where
        F: FnMut(&mut Option<Share>, &mut Vec<Record>) -> T,
    {
        let key = self.keys.share(id);
        let mut base = None;
        for attempt in 0..self.config.max_tries {
            let Versioned {
                version,
                value: old,
            } = match base.take() {
                Some(b) => b,
                None => self.read_versioned(&key).await?,
            };
            let mut share = old
                .as_deref()
                .map(|b| Share::decode(b))
                .transpose()
                .map_err(|e| damaged("share", e))?;
            let before = share.clone();
            let mut records = Vec::new();
            let value = change(&mut share, &mut records);
            if records.is_empty() && share == before {
                return Ok(Committed {
                    value,
                    ticket: None,
                });
            }
            let mut new = Vec::new();
            if let Some(s) = &share {
                s.encode(&mut new);
            } else if old.is_none() {
                // Absent and still absent.
                return Ok(Committed {
                    value,
                    ticket: self.ticket(&records, &key, false),
                });
            }
            // Superseded: written, by an earlier send of this very write.
            if let Cas::Moved(now) = self.cas(&key, &version, &new, None, None).await? {
                self.backoff(attempt).await;
                base = Some(now);
                continue;
            }
            return Ok(Committed {
                value,
                ticket: self.written(&records, None, &key, false),
            });
        }
        Err(StoreError::Unavailable(
            format!(
                "share {id}: {} compare-and-set conflicts in a row",
                self.config.max_tries
            )
            .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_user_has_a_lock_of_its_own_kept_while_held() {
        let mut u = Updating::default();
        let ann = u.of("ann");
        assert!(Arc::ptr_eq(&ann, &u.of("ann")), "one lock per user");
        assert!(
            !Arc::ptr_eq(&ann, &u.of("bob")),
            "no user waits for another"
        );
        let held = ann.try_lock().expect("free");
        for i in 0..LOCKS * 3 {
            u.of(&format!("u{i}"));
        }
        assert!(
            u.locks.len() < LOCKS * 3,
            "locks no update holds are dropped"
        );
        assert!(
            Arc::ptr_eq(&ann, &u.of("ann")),
            "a held lock is kept: the next update of its user waits for it"
        );
        drop(held);
    }
}
