//! What the IB Key app and a frontend awaiting its decision ask of the core (R6, R8): the app
//! proves its key, answers a push; the frontend's `Await` reads the decision, once durable.

use sls_protocol::{ApprovalMethod, DeviceId, TxnId, Verdict};

use crate::engine::{bare, settled};
use crate::push::{self, PushAnswer};
use crate::store::{Store, TxnEntry};
use crate::StoreError;
use crate::{txn, Core, Outcome, PushOrder};

impl<S: Store> Core<S> {
    /// Whether `proof` proves that the app holds `device`'s key, for `nonce`.
    ///
    /// # Errors
    /// The store.
    pub async fn device_authenticate(
        &self,
        device: DeviceId,
        nonce: &[u8; 32],
        proof: &[u8],
    ) -> Result<bool, StoreError> {
        let Some(owner) = self.0.store.device_owner(device).await? else {
            return Ok(false);
        };
        let now = self.now_ms();
        let cfg = &self.0.config;
        Ok(self
            .0
            .store
            .read(&owner, |u| push::proves(u, device, nonce, proof, now, cfg))
            .await?
            .unwrap_or(false))
    }

    /// The pushes of IB Key `device` still open (R6): not answered, not expired, oldest first,
    /// read from the store (so begun on any node), for an app that proved the device: a push
    /// published while the app was away or reconnecting is not lost (delivery to a connected
    /// app is at most once).
    ///
    /// # Errors
    /// The store.
    pub async fn open_pushes(
        &self,
        device: DeviceId,
    ) -> Result<Vec<(TxnId, PushOrder)>, StoreError> {
        let Some(owner) = self.0.store.device_owner(device).await? else {
            return Ok(Vec::new());
        };
        let now = self.now_ms();
        Ok(self
            .0
            .store
            .read(&owner, |u| push::open(u, device, &owner, now))
            .await?
            .unwrap_or_default())
    }

    /// The app's answer to a push (R6): its MAC, the number the user typed, approve or
    /// decline. An app can answer only its own device's pushes.
    ///
    /// # Errors
    /// The store.
    pub async fn push_answer(
        &self,
        device: DeviceId,
        txn: TxnId,
        approve: bool,
        method: ApprovalMethod,
        number: u8,
        mac: &[u8],
    ) -> Result<Outcome<Verdict, S::Ticket>, StoreError> {
        self.push_answer_from(device, txn, approve, method, number, mac, None)
            .await
    }

    /// As [`Core::push_answer`], from the app at `client` (for the audit trail).
    ///
    /// # Errors
    /// The store.
    #[allow(clippy::too_many_arguments)]
    pub async fn push_answer_from(
        &self,
        device: DeviceId,
        txn: TxnId,
        approve: bool,
        method: ApprovalMethod,
        number: u8,
        mac: &[u8],
        client: Option<std::net::IpAddr>,
    ) -> Result<Outcome<Verdict, S::Ticket>, StoreError> {
        let now = self.now_ms();
        let entry = match self.open_txn(txn, now).await? {
            Ok(entry) => entry,
            Err(v) => return Ok(bare(v)),
        };
        let a = PushAnswer {
            device,
            txn,
            approve,
            method,
            number,
            mac,
        };
        let mut purpose = None;
        let out = self
            .change_indexed(
                now,
                &entry.user,
                false,
                |u, cx| {
                    purpose = u.txns.iter().find(|t| t.id == txn).map(|t| t.purpose);
                    push::answer(u, &a, cx)
                },
                |(verdict, spent)| self.settle(txn, now, verdict, *spent),
            )
            .await?;
        if let Some(out) = &out {
            let v = out.value.0;
            self.audit_push_answer(now, &entry, txn, client, purpose, v);
        }
        Ok(settled(out))
    }

    /// The device a transaction's challenge is for, while the index remembers it.
    ///
    /// # Errors
    /// The store.
    pub async fn txn_device(&self, txn: TxnId) -> Result<Option<DeviceId>, StoreError> {
        Ok(self
            .0
            .store
            .txn_get(txn, self.now_ms())
            .await?
            .map(|e| e.device))
    }

    /// What a frontend's `await` reports for a transaction (R6). A decision (the app's
    /// answer, through another connection or node) is returned only once it is durable
    /// ([`Store::fence`]).
    ///
    /// # Errors
    /// The store.
    pub async fn txn_verdict(&self, txn: TxnId) -> Result<Verdict, StoreError> {
        let now = self.now_ms();
        let Some(entry) = self.0.store.txn_get(txn, now).await? else {
            return Ok(Verdict::Unknown);
        };
        let v = self.txn_verdict_of(txn, &entry, now).await?;
        // A decision another connection (or node) made: reported only once it is durable.
        if !matches!(v, Verdict::Pending | Verdict::Unknown) {
            if let Some(ticket) = self.0.store.fence(&entry.user).await? {
                self.0.store.durable(ticket).await?;
            }
        }
        Ok(v)
    }

    async fn txn_verdict_of(
        &self,
        txn: TxnId,
        entry: &TxnEntry,
        now: u64,
    ) -> Result<Verdict, StoreError> {
        if let Some(v) = entry.verdict {
            return Ok(v);
        }
        let open = self
            .0
            .store
            .read(&entry.user, |u| txn::verdict(u, txn, now))
            .await?
            .flatten();
        match open {
            Some(v) => Ok(v),
            // Spent between the two reads: the index has its verdict now (a store writes it
            // before the user's change can be read, [`Store::update_indexed`]); none, and the
            // transaction gave way to newer ones at the user's bound.
            None => Ok(self
                .0
                .store
                .txn_get(txn, now)
                .await?
                .and_then(|e| e.verdict)
                .unwrap_or(Verdict::Unknown)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::Duration;

    use pollster::block_on;
    use sls_protocol::{DeviceKind, Purpose};

    use super::*;
    use crate::store::IndexOp;
    use crate::{
        BeginRequest, BeginResult, CoreConfig, DeviceSpec, FakeClock, MemoryStore, SeededEntropy,
        UserSpec,
    };

    /// The bound of open transactions counts the open ones, not the spent ones the index keeps
    /// for the replay window: before, `max_open_txns` logins answered within 5 s refused the
    /// next `Begin` (at 400 k logins/s the default 2,000,000 was reached by spent ones alone).
    #[test]
    fn answered_challenges_do_not_count_against_the_bound_of_open_ones() {
        let cfg = CoreConfig {
            max_open_txns: 5,
            ..CoreConfig::default()
        };
        let core = Core::new(
            cfg.clone(),
            MemoryStore::new(cfg),
            Arc::new(FakeClock::default()),
            Arc::new(SeededEntropy::new(3)),
        );
        let client = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for n in 0..4 {
            let name = format!("user{n}");
            let user = UserSpec {
                name: name.clone(),
                ..UserSpec::default()
            };
            block_on(core.enrol_user(&user)).expect("enrolled");
            let spec = DeviceSpec {
                kind: DeviceKind::DscPlus,
                secret: vec![9; 32],
                pin: "1234".into(),
                suite: String::new(),
            };
            let device = block_on(core.enrol_device(&name, &spec))
                .expect("enrolled")
                .value;
            // Three logins each, every one answered (wrong: it spends its challenge all the
            // same), twelve in all against a bound of five, with no time passing.
            for _ in 0..3 {
                let req = BeginRequest {
                    user: &name,
                    purpose: Purpose::Login,
                    device: Some(device),
                    client,
                };
                let out = block_on(core.begin(&req, false)).expect("begun");
                let BeginResult::Challenge { txn, .. } = out.value else {
                    panic!("a challenge: {:?}", out.value);
                };
                let judged = block_on(core.answer(txn, "00000000", client)).expect("judged");
                assert!(
                    matches!(judged.value, Verdict::Rejected { .. }),
                    "{:?}",
                    judged.value
                );
                assert_eq!(core.open_txns(), 0);
            }
        }
    }

    /// An `Await` that reads a push transaction while its answer is being committed must get
    /// the decision, never `unknown`: the app's answer spends the transaction in the user's
    /// state and settles its verdict in the index, and a reader must not see the first
    /// without the second. The answer here stops in its index step until the reader has read
    /// (or a second has passed: then the reader was held off, as it must be).
    #[test]
    fn an_await_reading_while_a_push_answer_commits_gets_the_decision() {
        let cfg = CoreConfig::default();
        let core = Core::new(
            cfg.clone(),
            MemoryStore::new(cfg),
            Arc::new(FakeClock::default()),
            Arc::new(SeededEntropy::new(7)),
        );
        let user = UserSpec {
            name: "ann".into(),
            primary: true,
            ..UserSpec::default()
        };
        block_on(core.enrol_user(&user)).expect("enrolled");
        let spec = DeviceSpec {
            kind: DeviceKind::IbKey,
            secret: vec![7; 32],
            pin: "1234".into(),
            suite: String::new(),
        };
        let device = block_on(core.enrol_device("ann", &spec))
            .expect("enrolled")
            .value;
        let req = BeginRequest {
            user: "ann",
            purpose: Purpose::Login,
            device: Some(device),
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        let out = block_on(core.begin(&req, true)).expect("begun");
        let BeginResult::Challenge {
            txn, push: Some(_), ..
        } = out.value
        else {
            panic!("a push: {:?}", out.value);
        };
        assert_eq!(block_on(core.txn_verdict(txn)), Ok(Verdict::Pending));

        let (entered, in_index) = mpsc::channel();
        let (go, wait) = mpsc::channel::<()>();
        let wait = Mutex::new(wait);
        let answering = {
            let core = core.clone();
            std::thread::spawn(move || {
                block_on(core.store().update_indexed(
                    "ann",
                    false,
                    |u, _| u.txns.retain(|t| t.id != txn),
                    |_| {
                        let _ = entered.send(());
                        let _ = wait
                            .lock()
                            .expect("not poisoned")
                            .recv_timeout(Duration::from_secs(1));
                        Some(IndexOp::Settle {
                            txn,
                            verdict: Verdict::Declined,
                            until_ms: u64::MAX,
                        })
                    },
                ))
                .expect("committed");
            })
        };
        in_index.recv().expect("the answer reached its index step");
        let read = block_on(core.txn_verdict(txn));
        let _ = go.send(());
        answering.join().expect("the answer committed");
        assert_eq!(read, Ok(Verdict::Declined));
    }
}
