//! The per-user rate limit, exact across nodes: one GCRA step ([`sls_core::gcra`]) per
//! request in a Lua script ([`keys::TAKE_USER_TOKEN`](crate::keys::TAKE_USER_TOKEN)) on
//! `{P:u:<user>}r`, a key in the user's slot kept `PX` until its TAT (and a second more).
//!
//! **Time** is the caller's `now` (the core's clock), so the limit follows a fake clock in
//! tests; across nodes it is exact up to the skew of their clocks (a node whose clock runs
//! `δ` ahead gets about `δ / interval` requests more at most: nothing under NTP, where `δ` is
//! milliseconds and the interval 200 ms by default).
//!
//! **One round trip per limited request**, before the user's own read: the key is outside the
//! user's hash, so a request refused here never touches the user's version.

use sls_core::gcra::retry_after_ms;
use sls_core::{StoreError, UserQuota, UserToken};

use crate::{unavailable, RedisStore};

impl RedisStore {
    pub(crate) async fn take_user_token_now(
        &self,
        user: &str,
        now_ms: u64,
        quota: UserQuota,
    ) -> Result<UserToken, StoreError> {
        let mut c = self.conn(crate::Command::Token);
        let wait_us: u64 = self
            .scripts
            .take_user_token
            .key(self.keys.rate(user))
            .arg(now_ms.saturating_mul(1000))
            .arg(quota.interval_us)
            .arg(quota.tolerance_us())
            .invoke_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(match wait_us {
            0 => UserToken::Taken,
            w => UserToken::Refused {
                retry_after_ms: retry_after_ms(w),
            },
        })
    }
}
