//! The per-user rate limit, exact across nodes: one GCRA step ([`sls_core::gcra`]) per
//! request, in Lua on `{P:u:<user>}r`, a key in the user's slot kept `PX` until its TAT (and a
//! second more).
//!
//! **No round trip of its own**: the token rides on the request's first contact with its
//! user's slot ([`sls_engine::Store::update_limited`]): the compare-and-set that writes the user
//! ([`keys::CAS`](crate::keys::CAS)), or the read that fetches them
//! ([`keys::READ_LIMITED`](crate::keys::READ_LIMITED)), which an unknown user's request makes
//! too, so the limiter tells nothing of who exists. Only an update that ends with neither
//! (a conflict, then a rule that writes nothing) takes it alone
//! ([`keys::TAKE_USER_TOKEN`](crate::keys::TAKE_USER_TOKEN)). A request refused here writes
//! nothing: the user's version does not move.
//!
//! **What a refusal costs** differs a little with what the node knows: an unknown name's, or
//! an uncached user's, is one `READ_LIMITED`; a cached user's is the compare-and-set the rule's
//! result was sent in (sealed, larger), two round trips if the cached value was stale. The
//! answer is the same `rate_limited` for all; the passing requests differ in round trips the
//! same way (a cached user's update needs no read), so a refusal's timing tells no more.
//!
//! **Time** is the caller's `now` (the core's clock), so the limit follows a fake clock in
//! tests; across nodes it is exact up to the skew of their clocks (a node whose clock runs
//! `δ` ahead gets about `δ / interval` requests more at most: nothing under NTP, where `δ` is
//! milliseconds and the interval 200 ms by default).

use sls_core::gcra::retry_after_ms;
use sls_engine::{Limited, StoreError, TokenAsk, UserQuota};

use crate::read::{next_field, Fields, Versioned};
use crate::{unavailable, Command, RedisStore};

const READ: &str = "limited read's reply";

/// The three arguments of a token: now, the interval and the tolerance, in µs.
pub(crate) fn token_args(t: &TokenAsk) -> [u64; 3] {
    [
        t.now_ms.saturating_mul(1000),
        t.quota.interval_us,
        t.quota.tolerance_us(),
    ]
}

/// A script's wait in µs as the seam's answer.
pub(crate) fn refused(wait_us: u64) -> Limited<()> {
    match wait_us {
        0 => Limited::Passed(()),
        w => Limited::Refused {
            retry_after_ms: retry_after_ms(w),
        },
    }
}

impl RedisStore {
    /// Takes one of `user`'s rate-limit tokens at `now_ms` under `quota`, alone, in one round
    /// trip ([`crate::keys::TAKE_USER_TOKEN`]).
    pub async fn take_user_token(
        &self,
        user: &str,
        now_ms: u64,
        quota: UserQuota,
    ) -> Result<Limited<()>, StoreError> {
        let mut c = self.conn(Command::Token);
        let wait_us: u64 = self
            .scripts
            .take_user_token
            .key(self.keys.rate(user))
            .arg(&token_args(&TokenAsk { now_ms, quota }))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(refused(wait_us))
    }

    /// `user`'s value (at `key`) as Redis has it, read with their token taken
    /// ([`crate::keys::READ_LIMITED`]); nothing read if it was refused.
    pub(crate) async fn read_limited(
        &self,
        user: &str,
        key: &[u8],
        token: &TokenAsk,
    ) -> Result<Limited<Versioned>, StoreError> {
        let mut c = self.conn(Command::Read);
        let reply: Vec<redis::Value> = self
            .scripts
            .read_limited
            .key(key)
            .key(self.keys.rate(user))
            .arg(&token_args(token))
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        let mut reply = reply.into_iter();
        let wait_us: u64 = next_field(&mut reply, READ)?.unwrap_or(0);
        let fields: Option<Fields> = next_field(&mut reply, READ)?;
        Ok(match (refused(wait_us), fields) {
            (Limited::Refused { retry_after_ms }, _) => Limited::Refused { retry_after_ms },
            (Limited::Passed(()), Some(fields)) => Limited::Passed(self.opened(key, fields)?),
            (Limited::Passed(()), None) => {
                return Err(StoreError::Damaged(format!("{READ}: no value").into()))
            }
        })
    }
}
