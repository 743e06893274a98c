//! Durability with replicas ([`RedisConfig::wait_replicas`](crate::RedisConfig) `> 0`): the
//! tickets this node hands out for its writes, and the `WAIT` rounds that resolve them.
//!
//! **A ticket names its write**: its place in this node's order of writes (`seq`), the hash
//! slot it went to, and whether the request behind it wrote to other slots too (`multi`). Two
//! tickets joined (`Store::join_tickets`) wait for both: for every master, when their
//! slots differ.
//!
//! **Group commit**: one round at a time, for everything written so far: a round covers every
//! ticket drawn before it. It sends each master, on a connection of its own (the rounds'), a
//! pipeline: a write of a few bytes to a key in that master's slots (its *mark*), `CLUSTER
//! MYID`, then `WAIT n timeout`. The cluster client follows a redirect, or retries by slot
//! after an error, and the pipeline then runs on another node: its answer counts for the master
//! only if the id is the one `CLUSTER SLOTS` gave for it.
//!
//! - `WAIT` counts the replicas that have the master's replication stream up to the last write
//!   *of the connection it is sent on*. The mark makes that the whole stream up to the mark,
//!   which the master wrote after every write this node had a reply for when the round began:
//!   whichever connection carried them, and even if it dropped and came back in between (a
//!   `WAIT` on a connection that had not written covered nothing, yet answered at once).
//! - `WAIT` blocks the connection it is sent on until the replicas answer. On the requests'
//!   connection it held up every write to that master for the round's whole length (the
//!   login's writes waited behind the round before them, then for their own); on the rounds'
//!   connection it holds up only the next round.
//!
//! **A shard that lost its replica refuses only its own writes**: each master answers for
//! itself. A round in which some master's replicas fell short fails the writes in the slots
//! whose master, as `CLUSTER SLOTS` has it then, did not acknowledge (an allow-list: a master
//! the round did not reach fails too), and the tickets that joined several slots; the others'
//! writes are acknowledged, but only once that master's `WAIT` has timed out, so while a shard
//! lacks its replica every node's changes wait up to twice `--redis-wait-timeout` more (the
//! round under way, then the one that covers them). A master the round could not reach falls
//! short as one whose replicas did. A round that failed as a whole (the slot map unknown, or at
//! odds with the masters that answered) fails every write it covered.
//!
//! Writes outside the user's slot are covered apart: an update that wrote an index elsewhere
//! gets a joined (`multi`) ticket, and a new id (`INCR`, [`sls_core::Store::next_id`]) waits
//! for its own round before it is used, so that a failover cannot hand it out again.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::Value;
use sls_core::{IndexOp, Record, StoreError};

use crate::{unavailable, Command, RedisStore};

/// Slots take 14 bits (16,384), then one bit says `multi`, then the write's place.
const SLOT_BITS: u32 = 14;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const MULTI: u64 = 1 << SLOT_BITS;
const SEQ_SHIFT: u32 = SLOT_BITS + 1;

/// Failed rounds remembered (the oldest go first): a write whose round was forgotten is
/// refused, never acknowledged by default.
const KEEP: usize = 4096;

/// A ticket: ordered by `seq` first, as the seam's tickets are.
pub(crate) fn ticket(seq: u64, slot: u16, multi: bool) -> u64 {
    (seq << SEQ_SHIFT) | (u64::from(multi) * MULTI) | (u64::from(slot) & SLOT_MASK)
}

fn seq(t: u64) -> u64 {
    t >> SEQ_SHIFT
}

fn slot(t: u64) -> u16 {
    // Masked to 14 bits: the conversion cannot fail.
    u16::try_from(t & SLOT_MASK).unwrap_or(0)
}

fn multi(t: u64) -> bool {
    t & MULTI != 0
}

/// One ticket for two writes: `multi` if they went to different slots.
pub(crate) fn join(a: u64, b: u64) -> u64 {
    let last = a.max(b);
    let several = multi(a) || multi(b) || slot(a) != slot(b);
    ticket(seq(last), slot(last), several)
}

/// What a round did not get.
#[derive(Debug, Clone)]
enum Failed {
    /// Nothing: the round itself failed.
    All(String),
    /// The writes in these slot ranges (inclusive): their masters' replicas fell short.
    Slots(Vec<(u16, u16)>, String),
}

/// What the rounds so far found.
#[derive(Debug, Default)]
pub(crate) struct Rounds {
    /// Every write up to this place was covered by a round that ended.
    done_through: u64,
    /// The rounds that did not get every master's replicas, by the last place they covered:
    /// the last place of the round before, and what failed.
    failed: BTreeMap<u64, (u64, Failed)>,
    /// Failed rounds dropped (past [`KEEP`]) up to this place.
    forgotten_through: u64,
}

impl Rounds {
    /// `t`'s verdict, if a round that covered it has ended.
    fn judge(&self, t: u64) -> Option<Result<(), StoreError>> {
        let s = seq(t);
        if s > self.done_through {
            return None;
        }
        let refused = |why: &str| Some(Err(StoreError::Unavailable(format!("WAIT: {why}"))));
        if let Some((_, (before, failed))) = self.failed.range(s..).next() {
            if *before < s {
                return match failed {
                    Failed::All(why) => refused(why),
                    Failed::Slots(_, why) if multi(t) => refused(why),
                    Failed::Slots(ranges, why) => {
                        let mine = ranges.iter().any(|(a, b)| (*a..=*b).contains(&slot(t)));
                        if mine {
                            refused(why)
                        } else {
                            Some(Ok(()))
                        }
                    }
                };
            }
        }
        if s <= self.forgotten_through {
            return refused("the round that covered this write is forgotten");
        }
        Some(Ok(()))
    }

    /// Notes a round that covered every place up to `upto`.
    fn ended(&mut self, upto: u64, failed: Option<Failed>) {
        let before = self.done_through;
        if upto <= before {
            return;
        }
        self.done_through = upto;
        if let Some(f) = failed {
            self.failed.insert(upto, (before, f));
            while self.failed.len() > KEEP {
                if let Some((last, _)) = self.failed.pop_first() {
                    self.forgotten_through = self.forgotten_through.max(last);
                }
            }
        }
    }
}

impl RedisStore {
    /// A new ticket for a write to the slot of `key` (`multi`: its request wrote to other slots
    /// too).
    pub(crate) fn next_ticket(&self, key: &[u8], multi: bool) -> u64 {
        let seq = self.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        ticket(seq, crate::keys::slot(key), multi)
    }

    /// A ticket if `records` are to be made durable.
    pub(crate) fn ticket(&self, records: &[Record], key: &[u8], multi: bool) -> Option<u64> {
        (!records.is_empty()).then(|| self.next_ticket(key, multi))
    }

    /// A write's ticket: with replicas to wait for, every write waits (an accepted answer
    /// spends its challenge, R12) but a `begin`'s (a BIND, nothing recorded): a failover that
    /// lost it loses an open challenge, as a restart does; the answer's wait covers it.
    pub(crate) fn written(
        &self,
        records: &[Record],
        op: Option<&IndexOp>,
        key: &[u8],
        multi: bool,
    ) -> Option<u64> {
        let opened = records.is_empty() && matches!(op, Some(IndexOp::Bind { .. }));
        if self.config.wait_replicas == 0 || opened {
            return self.ticket(records, key, multi);
        }
        Some(self.next_ticket(key, multi))
    }

    /// Resolves once a `WAIT` round that began after `t`'s write has ended, and answers for
    /// that write (module docs).
    pub(crate) async fn durable_now(&self, t: u64) -> Result<(), StoreError> {
        if self.config.wait_replicas == 0 {
            return Ok(());
        }
        loop {
            if let Some(verdict) = self.rounds.lock().judge(t) {
                return verdict;
            }
            let _round = self.wait_round.lock().await;
            // A round that ended while this one queued answers for it too: the waiters of a
            // lost replica are refused together, not one timeout after another.
            if let Some(verdict) = self.rounds.lock().judge(t) {
                return verdict;
            }
            // Every ticket handed out so far is a write its master has answered.
            let upto = self.tickets.load(Ordering::Acquire);
            let failed = match self.wait_all_masters().await {
                Ok((_, short)) if short.is_empty() => None,
                Ok((acked, short)) => Some(match self.failing_slots(&acked, &short).await {
                    Ok(ranges) => Failed::Slots(ranges, describe(&short)),
                    Err(e) => Failed::All(format!("{}; the slot map: {e}", describe(&short))),
                }),
                Err(e) => Some(Failed::All(e.to_string())),
            };
            self.rounds.lock().ended(upto, failed);
        }
    }

    /// A mark, then `WAIT n timeout`, on every master (module docs): the addresses
    /// (`host:port`) of those whose replicas acknowledged, and of those that fell short with
    /// what they answered (a master that could not be reached falls short).
    async fn wait_all_masters(&self) -> Result<(Vec<String>, Vec<(String, String)>), StoreError> {
        self.sent[Command::Wait as usize].fetch_add(1, Ordering::Relaxed);
        let masters = self.masters().await?;
        let conn = self.round_handle();
        let want = self.config.wait_replicas;
        let timeout = u64::try_from(self.config.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        let answers = futures_util::future::join_all(masters.iter().map(|m| {
            let mut c = conn.clone();
            let mut pipe = redis::pipe();
            // The client follows a redirect (a slot moved) or retries by slot after an error,
            // and then the whole pipeline runs on another node: its id tells which answered.
            pipe.cmd("SET")
                .arg(&m.mark)
                .arg(1)
                .arg("PX")
                .arg(MARK_LIFE_MS)
                .cmd("CLUSTER")
                .arg("MYID")
                .cmd("WAIT")
                .arg(want)
                .arg(timeout);
            // Routed by the mark's slot (`CLUSTER MYID` names none: by itself the client
            // would send it elsewhere).
            let to = Route::new(crate::keys::slot(&m.mark), SlotAddr::Master);
            async move {
                let replies = c
                    .route_pipeline(pipe, 0, 3, SingleNodeRoutingInfo::SpecificNode(to))
                    .await?;
                let mut replies = replies.into_iter();
                // Without its mark the `WAIT` would cover only this connection's past writes.
                let marked = replies.next().unwrap_or(Value::Nil);
                if !matches!(marked, Value::Okay) {
                    let _: () = redis::from_redis_value(marked)?;
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::UnexpectedReturnType,
                        "the mark was not written",
                    )));
                }
                let id: String = redis::from_redis_value(replies.next().unwrap_or(Value::Nil))?;
                let n: i64 = redis::from_redis_value(replies.next().unwrap_or(Value::Nil))?;
                Ok::<_, redis::RedisError>((id, n))
            }
        }))
        .await;
        let (mut acked, mut short) = (Vec::new(), Vec::new());
        for (m, answer) in masters.iter().zip(answers) {
            match answer {
                Ok((id, _)) if id != m.id => short.push((
                    m.address.clone(),
                    format!(
                        "the round's mark reached node {id}, not this master ({})",
                        m.id
                    ),
                )),
                Ok((_, n)) if usize::try_from(n).is_ok_and(|n| n >= want) => {
                    acked.push(m.address.clone());
                }
                Ok((_, n)) => short.push((
                    m.address.clone(),
                    format!("{n} of {want} replicas acknowledged"),
                )),
                Err(e) => short.push((m.address.clone(), format!("redis: {e}"))),
            }
        }
        if !short.is_empty() {
            // The topology may have changed: read it again for the next round.
            *self.masters.lock() = None;
        }
        Ok((acked, short))
    }

    /// The masters, each with its node id and its mark's key: as read at most [`MASTERS_FOR`]
    /// ago, else from `CLUSTER SLOTS` now.
    async fn masters(&self) -> Result<Vec<Master>, StoreError> {
        if let Some((at, masters)) = &*self.masters.lock() {
            if at.elapsed() < MASTERS_FOR {
                return Ok(masters.clone());
            }
        }
        let masters = by_master(&self.slot_map().await?, |slot| self.keys.round_mark(slot));
        if masters.is_empty() {
            return Err(StoreError::Unavailable("CLUSTER SLOTS: no master".into()));
        }
        *self.masters.lock() = Some((std::time::Instant::now(), masters.clone()));
        Ok(masters)
    }

    /// `CLUSTER SLOTS`, asked of a master (a replica that hangs would hold the round up).
    async fn slot_map(&self) -> Result<Vec<Range>, StoreError> {
        self.sent[Command::Other as usize].fetch_add(1, Ordering::Relaxed);
        let mut c = self.round_handle();
        let mut cmd = redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::RandomPrimary);
        let map = c.route_command(cmd, routing).await.map_err(unavailable)?;
        let Value::Array(map) = map else {
            return Err(StoreError::Unavailable(format!(
                "CLUSTER SLOTS: an array expected, got {map:?}"
            )));
        };
        masters_by_range(map).map_err(|e| StoreError::Unavailable(format!("CLUSTER SLOTS: {e}")))
    }

    /// The slot ranges whose writes a round did not get: those whose master, as `CLUSTER
    /// SLOTS` has it now, is not one that acknowledged (`acked`). An allow-list: a range of a
    /// master the round did not reach at all fails too. A master that fell short but is not
    /// in the map (the views of the topology differ) fails the whole round.
    async fn failing_slots(
        &self,
        acked: &[String],
        short: &[(String, String)],
    ) -> Result<Vec<(u16, u16)>, StoreError> {
        let ranges = self.slot_map().await?;
        failing(&ranges, acked, short).map_err(StoreError::Unavailable)
    }
}

/// A master as the rounds see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Master {
    /// `host:port`, as `CLUSTER SLOTS` names it.
    address: String,
    /// Its node id: the round's answer counts only if this node gave it.
    id: String,
    /// A key in the last slot of its first range: what a round writes there before its
    /// `WAIT` (a reshard moves a master's lowest slots first).
    mark: Vec<u8>,
}

/// How long a round trusts the masters it read: a failover or a slot moved is seen by the
/// rounds after it, or at once when a master falls short.
const MASTERS_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// A mark's life: it only has to reach the replication stream.
const MARK_LIFE_MS: u64 = 60_000;

/// Each master of `ranges` once, in the order first met, with `mark(the last slot of its
/// first range)`.
fn by_master(ranges: &[Range], mark: impl Fn(u16) -> Vec<u8>) -> Vec<Master> {
    let mut out: Vec<Master> = Vec::new();
    for r in ranges {
        if !out.iter().any(|m| m.address == r.address) {
            out.push(Master {
                address: r.address.clone(),
                id: r.id.clone(),
                mark: mark(r.last),
            });
        }
    }
    out
}

/// A range of `CLUSTER SLOTS`: its first and last slot, its master's `host:port` and node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Range {
    pub(crate) first: u16,
    pub(crate) last: u16,
    pub(crate) address: String,
    pub(crate) id: String,
}

/// `CLUSTER SLOTS`' ranges.
pub(crate) fn masters_by_range(map: Vec<Value>) -> Result<Vec<Range>, String> {
    fn field<T: redis::FromRedisValue>(
        it: &mut impl Iterator<Item = Value>,
        what: &str,
    ) -> Result<T, String> {
        let v = it.next().ok_or_else(|| format!("no {what}"))?;
        redis::from_redis_value(v).map_err(|e| format!("{what}: {e}"))
    }
    let mut out = Vec::new();
    for range in map {
        let Value::Array(fields) = range else {
            return Err("a range that is not an array".into());
        };
        let mut fields = fields.into_iter();
        let first: u16 = field(&mut fields, "first slot")?;
        let last: u16 = field(&mut fields, "last slot")?;
        let Some(Value::Array(master)) = fields.next() else {
            return Err("a range without its master".into());
        };
        let mut master = master.into_iter();
        let host: String = field(&mut master, "master host")?;
        let port: u16 = field(&mut master, "master port")?;
        let id: String = field(&mut master, "master id")?;
        out.push(Range {
            first,
            last,
            address: format!("{host}:{port}"),
            id,
        });
    }
    Ok(out)
}

/// The ranges whose master did not acknowledge (see [`RedisStore::failing_slots`]).
fn failing(
    ranges: &[Range],
    acked: &[String],
    short: &[(String, String)],
) -> Result<Vec<(u16, u16)>, String> {
    if let Some((unknown, _)) = short
        .iter()
        .find(|(a, _)| !ranges.iter().any(|r| &r.address == a))
    {
        return Err(format!("{unknown} fell short but serves no slot"));
    }
    let out: Vec<(u16, u16)> = ranges
        .iter()
        .filter(|r| !acked.contains(&r.address))
        .map(|r| (r.first, r.last))
        .collect();
    if out.is_empty() {
        return Err("every range's master acknowledged, yet some fell short".into());
    }
    Ok(out)
}

/// The masters that fell short, for an error.
fn describe(short: &[(String, String)]) -> String {
    short
        .iter()
        .map(|(address, why)| format!("{address}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_keeps_its_order_slot_and_multi_and_a_join_of_two_slots_is_multi() {
        let a = ticket(7, 16383, false);
        let b = ticket(9, 12, false);
        assert_eq!((seq(a), slot(a), multi(a)), (7, 16383, false));
        assert!(a < b, "ordered by their place first");
        let j = join(a, b);
        assert_eq!((seq(j), slot(j), multi(j)), (9, 12, true));
        let same = join(ticket(3, 12, false), b);
        assert_eq!((seq(same), slot(same), multi(same)), (9, 12, false));
    }

    #[test]
    fn a_failed_round_refuses_its_slots_and_joined_tickets_only() {
        let mut r = Rounds::default();
        assert!(r.judge(ticket(1, 5, false)).is_none(), "no round yet");
        r.ended(4, None);
        r.ended(
            9,
            Some(Failed::Slots(
                vec![(0, 99)],
                "0 of 1 replicas acknowledged".into(),
            )),
        );
        r.ended(12, None);
        let ok = |r: &Rounds, t: u64| matches!(r.judge(t), Some(Ok(())));
        assert!(ok(&r, ticket(3, 5, false)), "an earlier round got it");
        assert!(
            !ok(&r, ticket(5, 5, false)),
            "in the failed round, in its slots"
        );
        assert!(
            ok(&r, ticket(5, 100, false)),
            "in the failed round, another master's"
        );
        assert!(
            !ok(&r, ticket(9, 100, true)),
            "joined: waits for every master"
        );
        assert!(ok(&r, ticket(10, 5, false)), "a later round got it");
        assert!(r.judge(ticket(13, 5, false)).is_none());
        r.ended(20, Some(Failed::All("unreachable".into())));
        assert!(!ok(&r, ticket(15, 100, false)));
    }

    fn range(first: i64, last: i64, host: &str, port: i64) -> Value {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(format!("id-{p}").into_bytes()),
            ])
        };
        Value::Array(vec![
            Value::Int(first),
            Value::Int(last),
            node(host, port),
            node(host, port + 3),
        ])
    }

    #[test]
    fn the_slots_of_a_master_not_acknowledged_fail_and_an_unknown_one_fails_all() {
        let map = vec![
            range(0, 5460, "127.0.0.1", 7001),
            range(5461, 10922, "127.0.0.1", 7002),
            range(10923, 16383, "127.0.0.1", 7003),
        ];
        let ranges = masters_by_range(map).unwrap();
        assert_eq!(
            ranges[1],
            Range {
                first: 5461,
                last: 10922,
                address: "127.0.0.1:7002".into(),
                id: "id-7002".into(),
            }
        );
        let acked = ["127.0.0.1:7001".to_string(), "127.0.0.1:7003".to_string()];
        let short = [("127.0.0.1:7002".to_string(), "0 of 1".to_string())];
        assert_eq!(failing(&ranges, &acked, &short), Ok(vec![(5461, 10922)]));
        // A master the round never reached fails too (an allow-list).
        assert_eq!(
            failing(&ranges, &acked[..1], &short),
            Ok(vec![(5461, 10922), (10923, 16383)])
        );
        // One that fell short under an address the map does not know: the views differ.
        let other = [("localhost:7002".to_string(), "0 of 1".to_string())];
        assert!(failing(&ranges, &acked, &other).is_err());
        assert!(masters_by_range(vec![Value::Int(1)]).is_err());
    }

    #[test]
    fn a_round_marks_each_master_once_in_a_slot_of_its_own() {
        let ranges = masters_by_range(vec![
            range(0, 99, "127.0.0.1", 7001),
            range(100, 5460, "127.0.0.1", 7002),
            range(5461, 16383, "127.0.0.1", 7001),
        ])
        .unwrap();
        let keys = crate::keys::Keys::new("p");
        let masters = by_master(&ranges, |slot| keys.round_mark(slot));
        assert_eq!(masters.len(), 2, "a master with two ranges is one master");
        assert_eq!(masters[0].address, "127.0.0.1:7001");
        assert_eq!(masters[0].id, "id-7001");
        // The last slot of its first range: a reshard moves the lowest slots first.
        assert_eq!(crate::keys::slot(&masters[0].mark), 99);
        assert_eq!(masters[1].address, "127.0.0.1:7002");
        assert_eq!(crate::keys::slot(&masters[1].mark), 5460);
    }

    #[test]
    fn a_write_whose_failed_round_was_forgotten_is_refused() {
        let mut r = Rounds::default();
        for i in 0..=KEEP as u64 {
            r.ended(i + 1, Some(Failed::Slots(vec![(0, 0)], "short".into())));
        }
        assert_eq!(r.failed.len(), KEEP);
        assert!(matches!(r.judge(ticket(1, 9, false)), Some(Err(_))));
        assert!(matches!(
            r.judge(ticket(KEEP as u64 + 1, 9, false)),
            Some(Ok(()))
        ));
    }
}
