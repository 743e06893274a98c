//! What a request reads of users other than its own: the sources of a user's share copies
//! (R17, see `lifecycle`), and a user's status, which lists only the devices usable now.

use crate::lifecycle::{self, source_state, standing, Need, SourceState, Sources};
use crate::store::Store;
use crate::user::UserState;
use crate::{lockout, Core, UserStatus};
use crate::{CoreError, Error, StoreError};

impl<S: Store> Core<S> {
    /// The standing of the sources of share copies `need` at `now` (R17): each read from its
    /// owner's committed state.
    ///
    /// # Errors
    /// The store.
    pub(crate) async fn read_sources(
        &self,
        need: &[Need],
        now: u64,
    ) -> Result<Sources, StoreError> {
        let cfg = &self.0.config;
        let mut out = Vec::with_capacity(need.len());
        for (copy, owner, device) in need {
            let state = self
                .0
                .store
                .read(owner, |o| source_state(o, *device, now, cfg))
                .await?
                .unwrap_or(SourceState::Stopped);
            out.push((*copy, state));
        }
        Ok(Sources(out))
    }

    /// A user's state. An unknown name is described as a known user with no device would be
    /// (no user enumeration), with the countdown its password failures made.
    ///
    /// # Errors
    /// A user name that breaks R10; the store.
    pub async fn status(&self, user: &str) -> Result<UserStatus, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let now = self.now_ms();
        let cfg = &self.0.config;
        let describe = |u: &UserState, sources: &Sources| {
            let failures =
                u8::try_from(lockout::failures_in_window(u, now, cfg)).unwrap_or(u8::MAX);
            UserStatus {
                locked_until_ms: if lockout::is_locked(u, now) {
                    u.locked_until
                } else {
                    0
                },
                failures,
                failures_left: cfg.lockout_threshold.saturating_sub(failures),
                opted_out: u.opted_out,
                devices: u
                    .devices
                    .iter()
                    .filter(|d| standing(u, d, now, cfg, sources).grant().is_some())
                    .map(|d| d.info())
                    .take(sls_protocol::limits::MAX_LIST)
                    .collect(),
            }
        };
        // R17: a user who holds share copies is read again once their sources are read; the
        // others are read once.
        let none = Sources::default();
        let first = self
            .0
            .store
            .read(user, |u| {
                let need = lifecycle::needs(u, None, now, cfg);
                let status = need.is_empty().then(|| describe(u, &none));
                (need, status)
            })
            .await?;
        Ok(match first {
            Some((_, Some(status))) => status,
            Some((need, None)) => {
                let sources = self.read_sources(&need, now).await?;
                match self.0.store.read(user, |u| describe(u, &sources)).await? {
                    Some(status) => status,
                    None => self.shadow_read(user, now, |u| describe(u, &none)),
                }
            }
            // No user enumeration: an unknown name is described as a known one with no device.
            None => self.shadow_read(user, now, |u| describe(u, &none)),
        })
    }
}
