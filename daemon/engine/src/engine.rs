//! [`Core`]: the rules driven through a [`Store`]. It owns what is per node (rate limits,
//! counters, the clock and the random source) and the order of the steps of each request; the
//! decisions are the rule functions', the state the store's.

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sls_protocol::{TxnId, Verdict};

use crate::cx::{after, ms, Cx, Tally};
use crate::entropy::{Entropy, SystemEntropy};
use crate::limits::Limiters;
use crate::record::Record;
use crate::rng::{Rng, Seed};
use crate::shadow::Shadows;
use crate::store::{Committed, IndexOp, Limited, Store, TokenAsk, TxnEntry};
use crate::txn::Spent;
use crate::user::UserState;
use crate::{admin, lockout, Clock, CoreConfig, MemoryStore};
use crate::{CoreError, Error, StoreError};

/// A value and what to wait on before sending it: `ticket` is `Some` when the request changed
/// durable state (wait for [`Store::durable`]).
pub type Outcome<T, K> = Committed<T, K>;

pub(crate) struct Shared<S> {
    pub config: CoreConfig,
    pub clock: Arc<dyn Clock>,
    pub entropy: Arc<dyn Entropy>,
    pub store: S,
    limiters: Limiters,
    counters: Counters,
    pub shadows: Shadows,
    /// Where verdicts are audited, once the daemon sets it.
    pub audit: std::sync::OnceLock<Arc<dyn crate::audit::AuditSink>>,
}

/// The verifier. Cheap to clone: every clone shares the same store and counters.
pub struct Core<S: Store = MemoryStore>(pub(crate) Arc<Shared<S>>);

impl<S: Store> Clone for Core<S> {
    fn clone(&self) -> Self {
        Core(self.0.clone())
    }
}

impl<S: Store> std::fmt::Debug for Core<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("users", &self.0.store.user_count())
            .finish()
    }
}

impl Core<MemoryStore> {
    /// A core on a new embedded store with no journal (tests, benches).
    pub fn in_memory(config: CoreConfig, clock: Arc<dyn Clock>) -> Core<MemoryStore> {
        let store = MemoryStore::new(config.clone());
        Core::new(config, store, clock, Arc::new(SystemEntropy))
    }
}

impl<S: Store> Core<S> {
    /// A core over `store`.
    pub fn new(
        config: CoreConfig,
        store: S,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Core<S> {
        Core(Arc::new(Shared {
            limiters: Limiters::new(&config.rates, clock.clone()),
            config,
            clock,
            entropy,
            store,
            counters: Counters::default(),
            shadows: Shadows::default(),
            audit: std::sync::OnceLock::new(),
        }))
    }

    /// The configuration.
    pub fn config(&self) -> &CoreConfig {
        &self.0.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.0.store
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.0.counters
    }

    pub(crate) fn now_ms(&self) -> u64 {
        ms(self.0.clock.now())
    }

    /// A rule's random seed, from the random source (wiped when dropped).
    pub(crate) fn seed(&self) -> zeroize::Zeroizing<Seed> {
        let mut seed = zeroize::Zeroizing::new([0u8; crate::rng::DIRECT + 32]);
        self.0.entropy.fill(&mut *seed);
        seed
    }

    /// Enrolled users.
    pub fn user_count(&self) -> usize {
        self.0.store.user_count()
    }

    /// Open transactions.
    pub fn open_txns(&self) -> usize {
        self.0.store.open_txns()
    }

    pub(crate) fn rate_limited(&self, v: Option<Verdict>) -> Option<Verdict> {
        if v.is_some() {
            self.0.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        }
        v
    }

    pub(crate) fn limit_client(&self, client: IpAddr) -> Option<Verdict> {
        self.rate_limited(self.0.limiters.client(client))
    }

    /// The per-user limit before an update of `user` at `now`: `Ok(Some(token))` if the store
    /// keeps it (the update takes the token, [`Store::update_limited`]); `Ok(None)` if there is
    /// none or this node's limiter let the request through; `Err` if it refused it.
    pub(crate) fn user_limit(&self, user: &str, now: u64) -> Result<Option<TokenAsk>, Verdict> {
        let Some(quota) = self.0.limiters.user_quota else {
            return Ok(None);
        };
        if self.0.store.keeps_user_limit() {
            return Ok(Some(TokenAsk { now_ms: now, quota }));
        }
        match self.rate_limited(self.0.limiters.user(user)) {
            Some(v) => Err(v),
            None => Ok(None),
        }
    }

    /// A request the store's per-user limit refused.
    pub(crate) fn refused_by_store(&self, retry_after_ms: u32) -> Verdict {
        self.0.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
        Verdict::RateLimited { retry_after_ms }
    }

    /// Runs `rule` on `user` through the store and counts what it did once committed.
    pub(crate) async fn change<T: Send>(
        &self,
        user: &str,
        create: bool,
        rule: impl FnMut(&mut UserState, &mut Cx<'_>) -> T + Send,
    ) -> Result<Option<Outcome<T, S::Ticket>>, StoreError> {
        self.change_at(self.now_ms(), user, create, rule).await
    }

    /// [`Core::change`] at `now` (one clock read per request).
    pub(crate) async fn change_at<T: Send>(
        &self,
        now: u64,
        user: &str,
        create: bool,
        rule: impl FnMut(&mut UserState, &mut Cx<'_>) -> T + Send,
    ) -> Result<Option<Outcome<T, S::Ticket>>, StoreError> {
        self.change_indexed(now, user, create, rule, |_| None).await
    }

    /// As [`Core::change_at`], and what the committed value tells the transaction index
    /// (`index`), which the store writes with the change (a cluster store in the same
    /// script, when the transaction lives beside its user) or right after it.
    pub(crate) async fn change_indexed<T: Send>(
        &self,
        now: u64,
        user: &str,
        create: bool,
        rule: impl FnMut(&mut UserState, &mut Cx<'_>) -> T + Send,
        index: impl Fn(&T) -> Option<IndexOp> + Send + Sync,
    ) -> Result<Option<Outcome<T, S::Ticket>>, StoreError> {
        let mut tally = Tally::default();
        let committed = self
            .0
            .store
            .update_indexed(
                user,
                create,
                self.in_cx(now, user, &mut tally, true, rule),
                index,
            )
            .await?;
        if committed.is_some() {
            self.count(&tally, now).await?;
        }
        Ok(committed)
    }

    /// As [`Core::change_indexed`], after the per-user limit: `token` from
    /// [`Core::user_limit`], taken by the store with the change when it keeps the limit.
    /// `seeded`: whether the rule draws random bytes (a seed is drawn for it; a rule that
    /// draws none, judging an answer or counting a failure, costs no draw). Never creates the
    /// user.
    pub(crate) async fn change_limited<T: Send>(
        &self,
        now: u64,
        user: &str,
        token: Option<TokenAsk>,
        seeded: bool,
        rule: impl FnMut(&mut UserState, &mut Cx<'_>) -> T + Send,
        index: impl Fn(&T) -> Option<IndexOp> + Send + Sync,
    ) -> Result<Limited<Option<Outcome<T, S::Ticket>>>, StoreError> {
        let mut tally = Tally::default();
        let run = self.in_cx(now, user, &mut tally, seeded, rule);
        let out = match token {
            None => Limited::Passed(self.0.store.update_indexed(user, false, run, index).await?),
            Some(token) => {
                self.0
                    .store
                    .update_limited(user, false, token, run, index)
                    .await?
            }
        };
        if let Limited::Passed(Some(_)) = out {
            self.count(&tally, now).await?;
        }
        Ok(out)
    }

    /// `rule` as the store runs it: in a context of its own at `now` each time (a store may run
    /// it more than once), counting into `tally`.
    fn in_cx<'a, T>(
        &'a self,
        now: u64,
        user: &'a str,
        tally: &'a mut Tally,
        seeded: bool,
        mut rule: impl FnMut(&mut UserState, &mut Cx<'_>) -> T + Send + 'a,
    ) -> impl FnMut(&mut UserState, &mut Vec<Record>) -> T + Send + 'a {
        let cfg = &self.0.config;
        // Drawn once, before the rule: a rule run again draws the same ids and codes.
        let seed = seeded.then(|| self.seed());
        let txn_slot = self.0.store.txn_slot(user);
        move |u, records| {
            *tally = Tally::default();
            let mut rng = match &seed {
                Some(seed) => Rng::from_seed(**seed),
                None => Rng::unseeded(),
            };
            let mut cx = Cx {
                cfg,
                now,
                user,
                rng: &mut rng,
                records,
                tally,
                txn_slot,
            };
            // R16: a replacement due to activate by itself does so before any rule reads the
            // user.
            admin::auto_activate(u, &mut cx);
            rule(u, &mut cx)
        }
    }

    /// Like [`Core::change`] for a rule that may refuse: an unknown user is `UnknownUser`.
    pub(crate) async fn change_user<T: Send>(
        &self,
        user: &str,
        rule: impl FnMut(&mut UserState, &mut Cx<'_>) -> Result<T, CoreError> + Send,
    ) -> Result<Outcome<T, S::Ticket>, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let c = self
            .change(user, false, rule)
            .await?
            .ok_or(CoreError::UnknownUser)?;
        Ok(Outcome {
            value: c.value?,
            ticket: c.ticket,
        })
    }

    pub(crate) async fn count(&self, t: &Tally, now: u64) -> Result<(), StoreError> {
        let c = &self.0.counters;
        let add = |counter: &std::sync::atomic::AtomicU64, n: u32| {
            if n > 0 {
                counter.fetch_add(u64::from(n), Ordering::Relaxed);
            }
        };
        add(&c.failures_evaluated, t.failures);
        add(&c.lockouts, t.lockouts);
        add(&c.refused_locked, t.refused_locked);
        add(&c.accepted, t.accepted);
        add(&c.replays, t.replays);
        add(&c.expired, t.expired);
        add(&c.pushes, t.pushes);
        add(&c.push_capped, t.push_capped);
        for _ in 0..t.lockouts {
            self.0
                .store
                .note_lockout(now, ms(self.0.config.mass_lockout_window))
                .await?;
        }
        Ok(())
    }

    /// What the index learns from an answer that spent its transaction: its verdict, kept for
    /// the replay window only (R12).
    pub(crate) fn settle(
        &self,
        txn: TxnId,
        now: u64,
        verdict: &Verdict,
        spent: Spent,
    ) -> Option<IndexOp> {
        (spent == Spent::Yes).then(|| IndexOp::Settle {
            txn,
            verdict: *verdict,
            until_ms: after(now, self.0.config.replay_window),
        })
    }

    /// The index's entry for an open transaction, for an answer that updates its user next
    /// ([`Store::txn_to_answer`]). A spent one's second answer is a replay (R12), refused here
    /// without touching its user: `Err(Replayed)`.
    pub(crate) async fn open_txn(
        &self,
        txn: TxnId,
        now: u64,
    ) -> Result<Result<TxnEntry, Verdict>, StoreError> {
        match self.0.store.txn_to_answer(txn, now).await? {
            None => Ok(Err(Verdict::Unknown)),
            Some(e) if e.verdict.is_some() => {
                self.0.counters.replays.fetch_add(1, Ordering::Relaxed);
                Ok(Err(Verdict::Replayed))
            }
            Some(e) => Ok(Ok(e)),
        }
    }

    /// A failed password reported by the frontend counts as a failed attempt (R11).
    ///
    /// # Errors
    /// A user name that breaks R10; the store.
    pub async fn password_failed(
        &self,
        user: &str,
        client: IpAddr,
    ) -> Result<Outcome<Verdict, S::Ticket>, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let now = self.now_ms();
        if let Some(v) = self.limit_client(client) {
            return Ok(bare(v));
        }
        let token = match self.user_limit(user, now) {
            Ok(token) => token,
            Err(v) => return Ok(bare(v)),
        };
        match self
            .change_limited(now, user, token, false, lockout::password_failed, |_| None)
            .await?
        {
            Limited::Refused { retry_after_ms } => Ok(bare(self.refused_by_store(retry_after_ms))),
            Limited::Passed(Some(out)) => {
                self.audit_password_failed(now, (user, true), client, out.value);
                Ok(out)
            }
            // No user enumeration: an unknown name counts down as a known one would, and its
            // trail entry's decoy costs what the entry would.
            Limited::Passed(None) => {
                let out = self
                    .shadow_change(now, user, true, false, lockout::password_failed)
                    .await?;
                self.audit_password_failed(now, (user, false), client, out.value);
                Ok(out)
            }
        }
    }

    /// Forgets transaction ids past their life and idle limiter state. Returns transactions
    /// forgotten.
    pub fn sweep(&self) -> usize {
        self.0.limiters.sweep();
        let now = self.now_ms();
        self.sweep_shadows(now);
        self.0.store.sweep(now)
    }

    /// Lockouts in the recent window, and whether they look like a mass-lockout attack.
    pub fn mass_lockout(&self) -> (usize, bool) {
        let n = self
            .0
            .store
            .recent_lockouts(self.now_ms(), ms(self.0.config.mass_lockout_window));
        (
            n,
            u32::try_from(n).unwrap_or(u32::MAX) >= self.0.config.mass_lockout_threshold,
        )
    }

    /// Counters by name, for the stats call and metrics.
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        let c = &self.0.counters;
        let (recent, alert) = self.mass_lockout();
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        vec![
            ("users", self.user_count() as u64),
            ("open_transactions", self.open_txns() as u64),
            ("accepted", get(&c.accepted)),
            ("failures_evaluated", get(&c.failures_evaluated)),
            ("lockouts", get(&c.lockouts)),
            ("refused_locked", get(&c.refused_locked)),
            ("replays", get(&c.replays)),
            ("rate_limited", get(&c.rate_limited)),
            ("expired", get(&c.expired)),
            ("pushes", get(&c.pushes)),
            ("push_capped", get(&c.push_capped)),
            ("lockouts_recent_window", recent as u64),
            ("mass_lockout_alert", u64::from(alert)),
        ]
    }
}

/// Counters of the core, for stats and metrics.
#[derive(Debug, Default)]
pub struct Counters {
    /// Failures evaluated (wrong answers, malformed answers, password failures) (R11).
    pub failures_evaluated: std::sync::atomic::AtomicU64,
    /// Users locked (R11).
    pub lockouts: std::sync::atomic::AtomicU64,
    /// Requests refused while locked.
    pub refused_locked: std::sync::atomic::AtomicU64,
    /// Accepted verifications.
    pub accepted: std::sync::atomic::AtomicU64,
    /// Replays refused (R12).
    pub replays: std::sync::atomic::AtomicU64,
    /// Rate-limited requests.
    pub rate_limited: std::sync::atomic::AtomicU64,
    /// Pushes sent (R6).
    pub pushes: std::sync::atomic::AtomicU64,
    /// Pushes refused by the fatigue cap (fallback challenge given instead).
    pub push_capped: std::sync::atomic::AtomicU64,
    /// Expired challenges answered.
    pub expired: std::sync::atomic::AtomicU64,
}

/// An answer's verdict once its change is committed (an unknown user: `unknown`).
pub(crate) fn settled<K>(out: Option<Outcome<(Verdict, Spent), K>>) -> Outcome<Verdict, K> {
    match out {
        None => bare(Verdict::Unknown),
        Some(out) => Outcome {
            value: out.value.0,
            ticket: out.ticket,
        },
    }
}

pub(crate) fn bare<T, K>(value: T) -> Outcome<T, K> {
    Outcome {
        value,
        ticket: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FakeClock;

    /// A store may run a rule again (a compare-and-set that lost a race): the second run must
    /// draw the same transaction id, challenge and codes as the first, because the seed is drawn
    /// once, before the rule, not inside it.
    #[test]
    fn a_rule_run_twice_draws_the_same_random_values() {
        let core = Core::in_memory(CoreConfig::default(), Arc::new(FakeClock::default()));
        let mut tally = Tally::default();
        let mut run = core.in_cx(1, "ann", &mut tally, true, |_, cx| {
            (cx.txn_id(), rand::Rng::gen::<[u8; 32]>(&mut *cx.rng))
        });
        let first = run(&mut UserState::default(), &mut Vec::new());
        let again = run(&mut UserState::default(), &mut Vec::new());
        assert_eq!(first, again);
        // And another request draws others.
        let mut tally = Tally::default();
        let mut other = core.in_cx(1, "ann", &mut tally, true, |_, cx| cx.txn_id());
        assert_ne!(other(&mut UserState::default(), &mut Vec::new()), first.0);
    }
}
