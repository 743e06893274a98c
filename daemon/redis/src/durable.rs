//! Durability with replicas ([`RedisConfig::wait_replicas`](crate::RedisConfig) `> 0`): the
//! tickets this node hands out for its writes, and the `WAIT` rounds that resolve them.
//!
//! **A ticket names its write**: its place in this node's order of writes (`seq`) and the hash
//! slot it went to. Two tickets of different slots joined (`Store::join_tickets`) name the
//! slots of both (kept in a table here, the ticket holding its index); waiting for it waits
//! for the master of each.
//!
//! **A round per master** (group commit per shard): each master has its own rounds
//! (`rounds.rs`), one at a time, each covering every ticket drawn before it began. A ticket
//! waits for a round of its slot's master only, so a master that is frozen, or lacks its
//! replica, holds up and refuses the writes of its own slots and no other: the other masters'
//! rounds go on meanwhile. A round sends its master, on a connection of its own (the
//! rounds'), a pipeline: a write of a few bytes to a key in that master's slots (its *mark*),
//! `CLUSTER MYID`, `CLUSTER SLOTS`, then `WAIT n timeout`.
//!
//! - `WAIT` counts the replicas that have the master's replication stream up to the last write
//!   *of the connection it is sent on*. The mark makes that the whole stream up to the mark,
//!   which the master wrote after every write this node had a reply for when the round began:
//!   whichever connection carried them, and even if it dropped and came back in between.
//! - `WAIT` blocks the connection it is sent on until the replicas answer: on the rounds'
//!   connection it holds up only that master's next round.
//! - The cluster client follows a redirect (a slot moved) or retries by slot after an error,
//!   and the pipeline then runs on another node: the round counts for its master only if
//!   `CLUSTER MYID` names it; else the tickets it covered are judged again by the map as it is
//!   now.
//!
//! **The rounds learn a master before acknowledging its slots**: which master a ticket waits
//! for comes from this node's slot map (`slots.rs`: `CLUSTER SLOTS`, read at most a second
//! ago), but a round acknowledges only the slots its master serves *by its own `CLUSTER SLOTS`
//! in the round's pipeline*, asked after every write the round covers. A ticket whose slot
//! moved to another master (one the map did not know yet, or a replica promoted) is then not
//! its master's to answer for: the map is replaced by the master's view and the ticket waits
//! for a round of the slot's master as that view has it. A write that went to the new master
//! (the client followed `MOVED`) is thus never acknowledged by the old master's `WAIT`.
//!
//! A new id (`INCR`, [`sls_engine::Store::next_id`]) waits for its own round before it is used,
//! so that a failover cannot hand it out again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::Value;
use sls_engine::{IndexOp, Record, StoreError};

use crate::rounds::{Judged, Outcome, Rounds};
use crate::slots::{Master, SlotMap};
use crate::written_on::WrittenOn;
use crate::{unavailable, Command, RedisStore};

/// Slots take 14 bits (16,384), then one bit says the ticket joined several slots (the 14 bits
/// are then its place in the joins' table), one that the node which ran its write was noted
/// (`written_on.rs`), then the write's place.
const SLOT_BITS: u32 = 14;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
const MULTI: u64 = 1 << SLOT_BITS;
const NOTED: u64 = 1 << (SLOT_BITS + 1);
const SEQ_SHIFT: u32 = SLOT_BITS + 2;

/// Slots a joined ticket names at most; past that it waits for every master.
const JOINED_SLOTS: usize = 16;

/// How long the rounds trust the slot map they read, at most: a slot moved is also learnt at
/// once from the masters' own view in each round.
const MAP_FOR: Duration = Duration::from_secs(1);

/// A mark's life: it only has to reach the replication stream.
const MARK_LIFE_MS: u64 = 60_000;

/// Times a ticket follows its slot to another master before it is refused.
const MOVES: usize = 4;

/// What the Redis store hands out to wait on before an answer leaves ([`sls_engine::Store::Ticket`]):
/// a write's place in this node's order of writes and the hash slot (or the joined slots) it went
/// to. Opaque outside this crate: it is no journal position, and only this store can tell what
/// it waits for. Ordered by its place, as the seam's tickets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(pub(crate) u64);

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

/// The slots joined tickets name, by their place (the ticket's 14 low bits): each entry keeps
/// the ticket it was made for, so a ticket whose entry was reused waits for every master.
#[derive(Debug, Default)]
struct Joins {
    next: usize,
    /// `None` in an entry: every master.
    entries: Vec<(u64, Option<Vec<u16>>)>,
}

impl Joins {
    /// The slots `t` names; `None`: every master's.
    fn slots_of(&self, t: u64) -> Option<Vec<u16>> {
        if !multi(t) {
            return Some(vec![slot(t)]);
        }
        let at = usize::from(slot(t));
        match self.entries.get(at) {
            Some((made_for, slots)) if *made_for == t => slots.clone(),
            _ => None,
        }
    }

    /// One ticket for the writes of `a` and `b`.
    fn join(&mut self, a: u64, b: u64) -> u64 {
        let last = seq(a).max(seq(b));
        let slots = match (self.slots_of(a), self.slots_of(b)) {
            (Some(mut x), Some(y)) => {
                x.extend(y);
                x.sort_unstable();
                x.dedup();
                (x.len() <= JOINED_SLOTS).then_some(x)
            }
            _ => None,
        };
        if let Some([only]) = slots.as_deref() {
            return ticket(last, *only, false);
        }
        let size = 1usize << SLOT_BITS;
        let at = self.next % size;
        self.next = (at + 1) % size;
        // `at` < 2^14: the conversion cannot fail.
        let t = ticket(last, u16::try_from(at).unwrap_or(0), true);
        if self.entries.len() < size {
            self.entries.resize(size, (0, None));
        }
        // The same ticket made again at this place (its place came round with the same
        // write): whoever holds it waits for both sets.
        let slots = match &self.entries[at] {
            (made_for, old) if *made_for == t => match (old, slots) {
                (Some(old), Some(mut new)) => {
                    new.extend(old);
                    new.sort_unstable();
                    new.dedup();
                    Some(new)
                }
                _ => None,
            },
            _ => slots,
        };
        self.entries[at] = (t, slots);
        t
    }
}

/// One master's rounds: one at a time, and what they found.
#[derive(Debug, Default)]
struct Shard {
    round: tokio::sync::Mutex<()>,
    rounds: Mutex<Rounds>,
}

/// The durability state of a store: the slot map, each master's rounds, the joined tickets.
#[derive(Debug, Default)]
pub(crate) struct Shards {
    map: Mutex<Option<(Instant, Arc<SlotMap>)>>,
    /// One read of the map at a time.
    reading: tokio::sync::Mutex<()>,
    by_master: Mutex<HashMap<String, Arc<Shard>>>,
    joins: Mutex<Joins>,
    /// Which node ran each recent write (`written_on.rs`).
    written_on: Mutex<WrittenOn>,
}

impl Shards {
    fn shard(&self, id: &str) -> Arc<Shard> {
        let mut all = self.by_master.lock();
        if all.len() > 1024 {
            // Masters come and go over failovers: drop those no round uses now.
            all.retain(|_, s| Arc::strong_count(s) > 1);
        }
        all.entry(id.to_string()).or_default().clone()
    }

    /// Marks `stale` (if it is still the map) to be read again by the next round.
    fn forget(&self, stale: &Arc<SlotMap>) {
        let mut map = self.map.lock();
        if let Some((at, m)) = map.as_mut() {
            if Arc::ptr_eq(m, stale) {
                *at = Instant::now().checked_sub(MAP_FOR).unwrap_or(*at);
            }
        }
    }
}

impl RedisStore {
    /// A new ticket for a write to the slot of `key` (`multi`: its request wrote to other slots
    /// too, so it waits for every master).
    pub(crate) fn next_ticket(&self, key: &[u8], multi: bool) -> u64 {
        let seq = self.tickets.fetch_add(1, Ordering::AcqRel) + 1;
        let t = ticket(seq, crate::keys::slot(key), false);
        if multi {
            // A ticket no entry names: every master.
            let every = ticket(seq, 0, true);
            return self.shards.joins.lock().join(t, every);
        }
        t
    }

    /// Notes that the write of ticket `t`, to the slot of `key`, ran on node `id`: only that
    /// node's `WAIT` acknowledges it. The ticket to wait on: `t` marked as noted, so that it is
    /// refused, not judged by its slot's master alone, if the note is forgotten before it is
    /// judged (a joined ticket is not marked: its earlier writes were never noted under it).
    pub(crate) fn ran_on(&self, t: u64, key: &[u8], id: String) -> u64 {
        if self.config.wait_replicas == 0 || multi(t) {
            return t;
        }
        let slot = crate::keys::slot(key);
        self.shards
            .written_on
            .lock()
            .note(seq(t), slot, Arc::from(id));
        t | NOTED
    }

    /// One ticket for the writes of `a` and `b` ([`sls_engine::Store::join_tickets`]).
    pub(crate) fn join_now(&self, a: u64, b: u64) -> u64 {
        self.shards.joins.lock().join(a, b)
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

    /// Resolves once a `WAIT` round of each master `t` names, begun after `t`'s write, has
    /// ended, and answers for that write (module docs).
    pub(crate) async fn durable_now(&self, t: u64) -> Result<(), StoreError> {
        if self.config.wait_replicas == 0 {
            return Ok(());
        }
        let slots = self.shards.joins.lock().slots_of(t);
        let slots = match slots {
            Some(slots) => slots,
            None => self.slot_map().await?.one_slot_per_range(),
        };
        let noted = !multi(t) && t & NOTED != 0;
        let waits = slots.iter().map(|s| self.slot_durable(seq(t), *s, noted));
        for verdict in futures_util::future::join_all(waits).await {
            verdict?;
        }
        Ok(())
    }

    /// Resolves once a round of `slot`'s master, begun after the write at place `seq`, has
    /// ended: `Ok` if that master served the slot then and its replicas acknowledged.
    async fn slot_durable(&self, seq: u64, slot: u16, noted: bool) -> Result<(), StoreError> {
        let refused = |why: String| Err(StoreError::Unavailable(format!("WAIT: {why}").into()));
        let ran_on = self.shards.written_on.lock().node(seq, slot);
        if noted && ran_on.is_none() {
            return refused(format!(
                "which node ran slot {slot}'s write is forgotten ({} writes since)",
                crate::written_on::SIZE
            ));
        }
        for _ in 0..MOVES {
            let map = self.slot_map().await?;
            let Some(master) = map.owner(slot) else {
                return refused(format!("no master serves slot {slot}"));
            };
            if ran_on.as_deref().is_some_and(|id| id != master.id) {
                // Written on a node the map does not have as the slot's master: the map is old
                // (read it again), or the write went to a master that was one no longer.
                self.shards.forget(&map);
                continue;
            }
            let shard = self.shards.shard(&master.id);
            let judged = loop {
                if let Some(j) = shard.rounds.lock().judge(seq, slot) {
                    break j;
                }
                let _one = shard.round.lock().await;
                // A round that ended while this one queued answers for it too: the waiters
                // of a lost replica are refused together, not one timeout after another.
                if let Some(j) = shard.rounds.lock().judge(seq, slot) {
                    break j;
                }
                // Every ticket handed out so far is a write its master has answered.
                let upto = self.tickets.load(Ordering::Acquire);
                let outcome = self.round(&master, &map).await;
                shard.rounds.lock().ended(upto, outcome);
            };
            match judged {
                Judged::Durable => return Ok(()),
                Judged::Refused(why) => return refused(format!("{}: {why}", master.address)),
                Judged::Elsewhere => self.shards.forget(&map),
            }
        }
        if let Some(id) = ran_on {
            return refused(format!(
                "slot {slot}'s write ran on node {id}, which does not serve the slot now"
            ));
        }
        refused(format!(
            "slot {slot} moved to another master {MOVES} times while its write waited"
        ))
    }

    /// One round of `master` (module docs), `map` being the slot map the tickets it covers
    /// were sent to it by.
    async fn round(&self, master: &Master, map: &Arc<SlotMap>) -> Outcome {
        self.sent[Command::Wait as usize].fetch_add(1, Ordering::Relaxed);
        let want = self.config.wait_replicas;
        let timeout = u64::try_from(self.config.wait_timeout.as_millis()).unwrap_or(u64::MAX);
        let mark = self.keys.round_mark(master.mark_slot);
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&mark)
            .arg(1)
            .arg("PX")
            .arg(MARK_LIFE_MS)
            .cmd("CLUSTER")
            .arg("MYID")
            .cmd("CLUSTER")
            .arg("SLOTS")
            .cmd("WAIT")
            .arg(want)
            .arg(timeout);
        // Routed by the mark's slot (`CLUSTER MYID` names none: by itself the client would
        // send it elsewhere).
        let to = Route::new(master.mark_slot, SlotAddr::Master);
        let mut c = self.round_handle();
        let replies = c
            .route_pipeline(pipe, 0, 4, SingleNodeRoutingInfo::SpecificNode(to))
            .await;
        let outcome = match replies {
            Ok(replies) => self.judge_round(master, map, replies),
            Err(e) => Outcome::Short(format!("redis: {e}")),
        };
        if !matches!(outcome, Outcome::Acked(_)) {
            // The topology may have changed: read it again for the next round.
            self.shards.forget(map);
        }
        outcome
    }

    /// What a round's replies say (see [`RedisStore::round`]); the map is replaced by the
    /// master's own view when they differ.
    fn judge_round(&self, master: &Master, map: &Arc<SlotMap>, replies: Vec<Value>) -> Outcome {
        let mut replies = replies.into_iter();
        let mut next = || replies.next().unwrap_or(Value::Nil);
        // Without its mark the `WAIT` would cover only this connection's past writes.
        let marked = next();
        if !matches!(marked, Value::Okay) {
            return Outcome::Short(format!("the mark was not written: {marked:?}"));
        }
        let id: String = match redis::from_redis_value(next()) {
            Ok(id) => id,
            Err(e) => return Outcome::Short(format!("CLUSTER MYID: {e}")),
        };
        let view = match SlotMap::parse(next()) {
            Ok(view) => view,
            Err(e) => return Outcome::Short(format!("CLUSTER SLOTS: {e}")),
        };
        let serves = view.ranges_of(&master.id);
        if view != **map && !view.is_empty() {
            *self.shards.map.lock() = Some((Instant::now(), Arc::new(view)));
        }
        if id != master.id {
            // The client's map sent the round to node `id` (a failover, a slot moved): its
            // view, taken above, tells where the tickets' slots are now.
            return Outcome::Elsewhere;
        }
        let want = self.config.wait_replicas;
        match redis::from_redis_value::<i64>(next()) {
            Ok(n) if usize::try_from(n).is_ok_and(|n| n >= want) => {
                Outcome::Acked(Arc::new(serves))
            }
            Ok(n) => Outcome::Short(format!("{n} of {want} replicas acknowledged")),
            Err(e) => Outcome::Short(format!("WAIT: {e}")),
        }
    }

    /// The slot map: as read at most [`MAP_FOR`] ago; else read again, from the first master
    /// of the map to answer (a frozen one must not hold up the others' tickets), or kept as
    /// it is if none does or another read is under way: a stale map costs a round that finds
    /// its master no longer serves a slot, never a wrong acknowledgement (module docs).
    async fn slot_map(&self) -> Result<Arc<SlotMap>, StoreError> {
        let cached = self.shards.map.lock().clone();
        let Some((at, map)) = cached else {
            let _one = self.shards.reading.lock().await;
            if let Some((_, map)) = &*self.shards.map.lock() {
                return Ok(map.clone());
            }
            let map = Arc::new(self.read_slot_map(None).await?);
            *self.shards.map.lock() = Some((Instant::now(), map.clone()));
            return Ok(map);
        };
        if at.elapsed() < MAP_FOR {
            return Ok(map);
        }
        let Ok(_one) = self.shards.reading.try_lock() else {
            return Ok(map);
        };
        match self.read_slot_map(Some(&map)).await {
            Ok(new) => {
                let new = Arc::new(new);
                *self.shards.map.lock() = Some((Instant::now(), new.clone()));
                Ok(new)
            }
            Err(_) => Ok(map),
        }
    }

    /// `CLUSTER SLOTS`, asked of every master of `known` at once (the first answer counts),
    /// else of a master the client picks.
    async fn read_slot_map(&self, known: Option<&SlotMap>) -> Result<SlotMap, StoreError> {
        let ask = |routing: RoutingInfo| {
            self.sent[Command::Other as usize].fetch_add(1, Ordering::Relaxed);
            let mut c = self.round_handle();
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SLOTS");
            Box::pin(async move {
                let reply = c.route_command(cmd, routing).await.map_err(unavailable)?;
                let map = SlotMap::parse(reply)
                    .map_err(|e| StoreError::Unavailable(format!("CLUSTER SLOTS: {e}").into()))?;
                if map.is_empty() {
                    return Err(StoreError::Unavailable("CLUSTER SLOTS: no master".into()));
                }
                Ok(map)
            })
        };
        let by_address: Vec<_> = known
            .map(|m| m.masters())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let (host, port) = m.address.rsplit_once(':')?;
                let port = port.parse().ok()?;
                let to = SingleNodeRoutingInfo::ByAddress {
                    host: host.to_string(),
                    port,
                };
                Some(ask(RoutingInfo::SingleNode(to)))
            })
            .collect();
        if by_address.is_empty() {
            return ask(RoutingInfo::SingleNode(
                SingleNodeRoutingInfo::RandomPrimary,
            ))
            .await;
        }
        futures_util::future::select_ok(by_address)
            .await
            .map(|(map, _)| map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ticket_keeps_its_order_and_slot_and_a_join_names_every_slot_it_joined() {
        let mut joins = Joins::default();
        let a = ticket(7, 16383, false);
        let b = ticket(9, 12, false);
        assert_eq!((seq(a), slot(a), multi(a)), (7, 16383, false));
        assert!(a < b, "ordered by their place first");
        let j = joins.join(a, b);
        assert_eq!((seq(j), multi(j)), (9, true));
        assert_eq!(joins.slots_of(j), Some(vec![12, 16383]));
        let same = joins.join(ticket(3, 12, false), b);
        assert_eq!((seq(same), slot(same), multi(same)), (9, 12, false));
        // Joined again: the union.
        let k = joins.join(j, ticket(11, 500, false));
        assert_eq!(seq(k), 11);
        assert_eq!(joins.slots_of(k), Some(vec![12, 500, 16383]));
        // A ticket whose entry is unknown, or too many slots: every master.
        let every = ticket(4, 9999, true);
        assert_eq!(joins.slots_of(every), None);
        let with_every = joins.join(every, a);
        assert_eq!(joins.slots_of(with_every), None);
        let mut many = a;
        for s in 0..=JOINED_SLOTS as u16 {
            many = joins.join(many, ticket(1, s, false));
        }
        assert_eq!(joins.slots_of(many), None);
    }

    #[test]
    fn a_noted_ticket_keeps_its_place_and_slot_and_a_join_does_not_carry_the_mark() {
        let t = ticket(5, 300, false) | NOTED;
        assert_eq!((seq(t), slot(t), multi(t)), (5, 300, false));
        assert!(t & NOTED != 0);
        // Ordered by place first, marked or not.
        assert!(ticket(4, 16383, false) < t && t < ticket(6, 0, false));
        let mut joins = Joins::default();
        let j = joins.join(t, ticket(7, 300, false));
        assert_eq!((seq(j), slot(j)), (7, 300));
        assert_eq!(
            j & NOTED,
            0,
            "the earlier write's note is not the joined ticket's"
        );
    }

    #[test]
    fn a_reused_entry_waits_for_every_master() {
        let mut joins = Joins::default();
        let first = joins.join(ticket(1, 1, false), ticket(1, 2, false));
        for i in 0..(1u64 << SLOT_BITS) {
            joins.join(ticket(i + 2, 1, false), ticket(i + 2, 3, false));
        }
        assert_eq!(joins.slots_of(first), None, "its place was reused");
    }
}
