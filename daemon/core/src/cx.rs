//! What every rule is given besides the user's state: the configuration, `now`, the random
//! source, where to put the records to make durable, and a tally for the counters.

use rand::RngCore;

use crate::config::CoreConfig;
use crate::record::Record;

/// A rule's context for one user.
pub struct Cx<'a> {
    /// The rules' numbers.
    pub cfg: &'a CoreConfig,
    /// Now, ms since the epoch.
    pub now: u64,
    /// The user's name (records carry it).
    pub user: &'a str,
    /// Randomness (ids, challenges, codes).
    pub rng: &'a mut dyn RngCore,
    /// Records to make durable before the result is sent.
    pub records: &'a mut Vec<Record>,
    /// What happened, for the counters (added only once the change is committed).
    pub tally: &'a mut Tally,
    /// The store's shard of this user, carried in the top bits of the transaction ids made
    /// for them (the store's `txn_slot`, in `sls-engine`); `None`: all bits random.
    pub txn_slot: Option<u16>,
}

/// Bits of a transaction id that carry the user's shard, when the store asks for it (14: a
/// Redis Cluster slot); the other 114 bits stay random.
pub const TXN_SLOT_BITS: u32 = 14;

impl Cx<'_> {
    /// A new transaction id: random, with the user's shard in its top bits if the store wants
    /// it there (so that a transaction's index entry can live beside its user).
    pub fn txn_id(&mut self) -> sls_protocol::TxnId {
        let random: u128 = rand::Rng::gen(&mut self.rng);
        sls_protocol::TxnId(match self.txn_slot {
            None => random,
            Some(slot) => {
                let shift = 128 - TXN_SLOT_BITS;
                (random & (u128::MAX >> TXN_SLOT_BITS))
                    | (u128::from(slot & ((1 << TXN_SLOT_BITS) - 1)) << shift)
            }
        })
    }
}

/// Events of one rule's run, counted once its change is committed (a store that retries a
/// rule counts only the run that stuck).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Failures evaluated (R11).
    pub failures: u32,
    /// Users newly locked (R11).
    pub lockouts: u32,
    /// Requests refused while locked.
    pub refused_locked: u32,
    /// Accepted verifications.
    pub accepted: u32,
    /// Replays refused (R12).
    pub replays: u32,
    /// Expired challenges answered.
    pub expired: u32,
    /// Pushes sent (R6).
    pub pushes: u32,
    /// Pushes refused by the fatigue cap.
    pub push_capped: u32,
}

/// A duration in milliseconds, saturating (a duration from config never wraps a deadline).
pub fn ms(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `at + d`, saturating.
pub fn after(at: u64, d: std::time::Duration) -> u64 {
    at.saturating_add(ms(d))
}
