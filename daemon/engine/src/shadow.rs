//! No user enumeration: a name nobody enrolled answers exactly as an enrolled user with no
//! device would, in content and in timing.
//!
//! - **Content.** Each unknown name that fails a password gets a *shadow*: a [`UserState`]
//!   with no device, kept in memory only, that the very same rule functions run on. It counts
//!   down (`rejected {9}`, `{8}`, …), locks after the threshold (R11), and `Status` and `Begin`
//!   read it like a real user's. Shadows are bounded (`CoreConfig::max_shadow_names`) and
//!   forgotten once nothing in them counts any more (the lockout window and the lock past).
//! - **Timing.** A real user's failure waits for its record to be durable; a shadow's waits
//!   for a decoy record of the same size ([`Store::decoy`]) on the same group commit. A real
//!   user's verdict is audited; a shadow's gives the sink a decoy of the same entry
//!   ([`crate::AuditSink::decoy`]), which the embedded trail writes and syncs as it would the
//!   entry, so that the trail's `fdatasync` follows both alike.
//!
//! What is not hidden: shadows live in one node's memory. A restart forgets them (a real
//! user's count survives), and on a shared store each node keeps its own (a real user's count
//! is the cluster's); past the bound, a new unknown name gets a fresh count each time.

use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;
use parking_lot::Mutex;

use crate::cx::{ms, Cx, Tally};

use crate::rng::Rng;
use crate::store::{Committed as Outcome, Store};
use crate::user::UserState;
use crate::Core;
use crate::StoreError;

/// The shadows of unknown names.
#[derive(Debug, Default)]
pub(crate) struct Shadows {
    users: DashMap<Box<str>, Mutex<Shadow>>,
    len: AtomicUsize,
}

#[derive(Debug, Default)]
struct Shadow {
    user: UserState,
    touched_ms: u64,
}

impl Shadows {
    /// Runs `f` on `name`'s shadow; when it has none, on a new one, kept if `create` and there
    /// is room under `cap`.
    fn with<T>(
        &self,
        name: &str,
        now: u64,
        create: bool,
        cap: usize,
        f: impl FnOnce(&mut UserState) -> T,
    ) -> T {
        if let Some(s) = self.users.get(name) {
            let mut s = s.lock();
            s.touched_ms = now;
            return f(&mut s.user);
        }
        if !create || self.len.load(Ordering::Relaxed) >= cap {
            return f(&mut UserState::default());
        }
        let entry = self.users.entry(name.into()).or_insert_with(|| {
            self.len.fetch_add(1, Ordering::Relaxed);
            Mutex::new(Shadow::default())
        });
        let mut s = entry.lock();
        s.touched_ms = now;
        f(&mut s.user)
    }

    /// Forgets the shadows untouched for `keep_ms`. Returns how many.
    fn sweep(&self, now: u64, keep_ms: u64) -> usize {
        let before = self.users.len();
        self.users
            .retain(|_, s| now.saturating_sub(s.get_mut().touched_ms) < keep_ms);
        let after = self.users.len();
        self.len.store(after, Ordering::Relaxed);
        before.saturating_sub(after)
    }
}

impl<S: Store> Core<S> {
    /// Runs `rule` on the shadow of the unknown name `user` as [`Core::change_at`] runs it on a
    /// real user: counted the same, and answered after a decoy write when the rule wrote
    /// anything (a real user's records would be waited for).
    pub(crate) async fn shadow_change<T: Send>(
        &self,
        now: u64,
        user: &str,
        create: bool,
        seeded: bool,
        rule: impl FnOnce(&mut UserState, &mut Cx<'_>) -> T + Send,
    ) -> Result<Outcome<T, S::Ticket>, StoreError> {
        let cfg = &self.0.config;
        let mut tally = Tally::default();
        let mut records = Vec::new();
        let value = {
            // As for an enrolled user: a seed only for a rule that draws (no timing difference).
            let mut rng = match seeded {
                true => Rng::from_seed(*self.seed()),
                false => Rng::unseeded(),
            };
            self.0
                .shadows
                .with(user, now, create, cfg.max_shadow_names, |u| {
                    let mut cx = Cx {
                        cfg,
                        now,
                        user,
                        rng: &mut rng,
                        records: &mut records,
                        tally: &mut tally,
                        txn_slot: None,
                    };
                    rule(u, &mut cx)
                })
        };
        self.count(&tally, now).await?;
        let ticket = if records.is_empty() {
            None
        } else {
            self.0.store.decoy(user).await?
        };
        Ok(Outcome { value, ticket })
    }

    /// Reads the shadow of the unknown name `user` (a fresh one if it has none).
    pub(crate) fn shadow_read<T>(
        &self,
        user: &str,
        now: u64,
        f: impl FnOnce(&UserState) -> T,
    ) -> T {
        self.0.shadows.with(user, now, false, 0, |u| f(u))
    }

    /// Forgets shadows nothing counts in any more.
    pub(crate) fn sweep_shadows(&self, now: u64) -> usize {
        let cfg = &self.0.config;
        let keep = ms(cfg.lockout_window).max(ms(cfg.lock_duration));
        self.0.shadows.sweep(now, keep)
    }
}
