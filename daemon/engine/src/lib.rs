//! # sls-engine: the rules driven through a store
//!
//! [`sls_core`] decides; this crate carries a request's decisions out. It owns what is per node
//! (rate limits, counters, the clock and the random source), the order of each request's steps,
//! and the seam to where user state lives ([`Store`]): the embedded [`MemoryStore`] (memory and
//! a [`Journal`] the daemon provides) or any other, such as the Redis Cluster store.
//!
//! ```text
//!            ┌──────────── Core<S: Store> (rate limits, counters, the order of the steps) ──┐
//!  begin ───▶│ limits ─▶ store.update(user, |state| txn::begin(state, ..))  ─▶ txn index     │
//!  answer ──▶│ limits ─▶ txn index ─▶ store.update(user, |state| txn::answer(state, ..))     │
//!            └──────────────────────────────────────────────────────────────────────────────┘
//!    the rules: sls_core (pure functions of a user's state, the time and a seeded Rng)
//!    stores:    MemoryStore<Journal> (embedded: memory + the daemon's journal), any other Store
//! ```
//!
//! Time is read once per request, here ([`Clock`]); a rule's random seed is drawn here
//! ([`Entropy`]) before the store runs the rule, so that a rule run twice does the same.
//!
//! **Exactness under concurrency (R11).** Every change to one user happens inside one atomic
//! [`Store::update`] of that user, including spending a transaction. When many answers for one
//! user race, they are judged one at a time: at most the threshold of failures is ever
//! evaluated before the lock holds.
//!
//! **Durability.** Every change comes with the [`Record`]s that make it durable, committed by
//! the store with the change; an answer that depends on them waits for [`Store::durable`].
//! Replaying the records ([`MemoryStore::apply`]) rebuilds the same state.
//!
//! The value types of [`sls_core`]'s root are public here too, so that the daemon and the stores
//! name one crate for a request's types; the rules' modules are [`sls_core`]'s.

#![warn(missing_docs)]

pub use sls_core::{
    canonical_identification, recent_lockouts, ActivationNotice, BeginRequest, BeginResult, Cause,
    CoreConfig, CoreError, DeviceSpec, DeviceState, DeviceView, Error, Notices, PushAnswer,
    PushOrder, RatePolicy, Record, Share, StoreError, UserQuota, UserSpec, UserState, UserStatus,
    UserUpdate, UserView, ACTIVATION_ATTEMPTS,
};
// The rules, by module, for the engine's own files.
use sls_core::{
    admin, cx, gcra, grant, lifecycle, lockout, push, record, replay, rng, share, txn, user,
    withdrawal,
};

mod app;
pub mod audit;
pub mod clock;
mod engine;
pub mod entropy;
mod follow;
mod limits;
mod login;
mod memory;
mod services;
mod shadow;
mod sharing;
mod store;
mod txn_index;
mod users;
mod views;

pub use audit::AuditSink;
pub use clock::{Clock, FakeClock, GovernorClock, SystemClock};
pub use engine::{Core, Counters, Outcome};
pub use entropy::{Entropy, SeededEntropy, SystemEntropy};
pub use memory::{Journal, MemoryStore, NoJournal};
pub use sharing::ShareResult;
pub use store::{
    Committed, IndexOp, Limited, LimitedUpdate, Sequence, SharePage, Store, TokenAsk, TxnEntry,
    UserName, SHARE_SCAN,
};
