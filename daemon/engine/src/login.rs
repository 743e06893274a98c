//! The login path's two steps, `begin` and `answer` (R4, R5, R6, R9, R10, R11, R12): rate limits
//! first, then one atomic update of the user (two when a share copy's source must be read
//! first, R17), then the transaction index; each audited once, for the run that counts.

use std::net::IpAddr;

use sls_protocol::{TxnId, Verdict};

use crate::cx::Cx;
use crate::engine::{bare, settled, Core, Outcome};
use crate::lifecycle::{self, Need, Sources};
use crate::store::{IndexOp, Limited, Store};
use crate::txn::{self, Spent};
use crate::user::UserState;
use crate::{BeginRequest, BeginResult};
use crate::{CoreError, Error, StoreError};

impl<S: Store> Core<S> {
    // ---- frontend ------------------------------------------------------------------------

    /// Begins a login or a withdrawal (R4, R5, R6, R9, R12). `push_ready`: whether the app of
    /// the device the request picks can take a push now (R6: an IB Key whose app is connected;
    /// false for a typed challenge), read by the caller before the rule runs, so that the
    /// rule is a function of its inputs (a store may run it more than once).
    ///
    /// # Errors
    /// A user name that breaks R10 (`BAD CHARACTER`); open transactions at capacity; the
    /// store.
    pub async fn begin(
        &self,
        req: &BeginRequest<'_>,
        push_ready: bool,
    ) -> Result<Outcome<BeginResult, S::Ticket>, Error> {
        if !sls_protocol::valid_user_name(req.user) {
            return Err(CoreError::BadCharacter.into());
        }
        let now = self.now_ms();
        if let Some(v) = self.limit_client(req.client) {
            return Ok(bare(BeginResult::Verdict(v)));
        }
        let token = match self.user_limit(req.user, now) {
            Ok(token) => token,
            Err(v) => return Ok(bare(BeginResult::Verdict(v))),
        };
        // R17: a share copy follows its source. The first run finds the copies the request
        // needs (none for most users: then it is the only run); their sources are read from
        // their owners and the rule runs again with them (`lifecycle`).
        let mut sources = Sources::default();
        let mut token = token;
        let mut earlier = None;
        let out = loop {
            let mut need: Vec<Need> = Vec::new();
            let first = sources.0.is_empty();
            let rule = txn::Begin {
                purpose: req.purpose,
                device: req.device,
                push_ready,
                at_capacity: self.open_txns() >= self.0.config.max_open_txns,
                sources: &sources,
            };
            let config = &self.0.config;
            let bind = |v: &Result<BeginResult, CoreError>| match v {
                Ok(BeginResult::Challenge {
                    txn,
                    expires_at_ms,
                    device,
                    ..
                }) => Some(IndexOp::Bind {
                    txn: *txn,
                    device: device.id,
                    until_ms: txn::keep_until(*expires_at_ms, config),
                }),
                _ => None,
            };
            let begin = |u: &mut UserState, cx: &mut Cx<'_>| {
                need = if first {
                    lifecycle::needs(u, req.device.map(|d| d.0), cx.now, cx.cfg)
                } else {
                    Vec::new()
                };
                if !need.is_empty() {
                    return Ok(BeginResult::Devices(Vec::new()));
                }
                txn::begin(u, &rule, cx)
            };
            let (out, enrolled) = match self
                .change_limited(now, req.user, token.take(), true, begin, bind)
                .await?
            {
                Limited::Refused { retry_after_ms } => {
                    let v = self.refused_by_store(retry_after_ms);
                    return Ok(bare(BeginResult::Verdict(v)));
                }
                Limited::Passed(Some(out)) => (out, true),
                // No user enumeration: an unknown name answers as a known one with no device.
                Limited::Passed(None) => (
                    self.shadow_change(now, req.user, false, true, |u, cx| {
                        txn::begin(u, &rule, cx)
                    })
                    .await?,
                    false,
                ),
            };
            if need.is_empty() {
                // Audited once, for the run that counts; an unknown name's as a decoy.
                self.audit_begin(now, req, &out.value, enrolled);
                break Outcome {
                    value: out.value,
                    ticket: self.0.store.later(earlier.take(), out.ticket),
                };
            }
            // What the first run wrote (R16's auto-activation) is waited for with the answer.
            earlier = out.ticket;
            sources = self.read_sources(&need, now).await?;
        };
        let value = out.value?;
        Ok(Outcome {
            value,
            ticket: out.ticket,
        })
    }

    /// Judges an answer to a transaction's challenge (R5, R9, R10, R11, R12, R13).
    ///
    /// # Errors
    /// The store.
    pub async fn answer(
        &self,
        txn: TxnId,
        response: &str,
        client: IpAddr,
    ) -> Result<Outcome<Verdict, S::Ticket>, StoreError> {
        if let Some(v) = self.limit_client(client) {
            return Ok(bare(v));
        }
        let now = self.now_ms();
        let entry = match self.open_txn(txn, now).await? {
            Ok(entry) => entry,
            Err(v) => {
                // R12: a replay is audited (its user and device are known); `unknown` is not.
                if v == Verdict::Replayed {
                    self.audit_replay(txn, now, client).await;
                }
                return Ok(bare(v));
            }
        };
        let token = match self.user_limit(&entry.user, now) {
            Ok(token) => token,
            Err(v) => return Ok(bare(v)),
        };
        // R17: as in `begin`, the source of a share copy is read first (only for a copy).
        let mut sources = Sources::default();
        let mut token = token;
        let mut earlier = None;
        loop {
            let mut need: Option<Need> = None;
            // The transaction's purpose, for the trail, as the rule found it (R4).
            let mut purpose = None;
            let first = sources.0.is_empty();
            let judge = |u: &mut UserState, cx: &mut Cx<'_>| {
                need = first.then(|| lifecycle::txn_source(u, txn)).flatten();
                if need.is_some() {
                    return (Verdict::Unknown, Spent::No);
                }
                purpose = u.txns.iter().find(|t| t.id == txn).map(|t| t.purpose);
                txn::answer(u, txn, response, &sources, cx)
            };
            let out = self
                .change_limited(
                    now,
                    &entry.user,
                    token.take(),
                    false,
                    judge,
                    |(v, spent)| self.settle(txn, now, v, *spent),
                )
                .await?;
            let out = match out {
                Limited::Passed(out) => {
                    if let (None, Some(o)) = (&need, &out) {
                        self.audit_answer(now, &entry, txn, Some(client), purpose, o.value.0);
                    }
                    settled(out)
                }
                Limited::Refused { retry_after_ms } => bare(self.refused_by_store(retry_after_ms)),
            };
            match need {
                None => {
                    return Ok(Outcome {
                        value: out.value,
                        ticket: self.0.store.later(earlier.take(), out.ticket),
                    })
                }
                Some(n) => {
                    earlier = out.ticket;
                    sources = self.read_sources(&[n], now).await?;
                }
            }
        }
    }
}
