//! What client services read and change of a user through the store: the views of
//! [`sls_core::inspect`] (every device, failures, lock, withdrawals) and its account updates.

use crate::store::Store;
use crate::{Core, Outcome};
use crate::{CoreError, Error};
use sls_core::inspect::{list_devices, update_user, view_user, DeviceView, UserUpdate, UserView};

impl<S: Store> Core<S> {
    /// Every device of `user`, in every state, in enrolment order.
    ///
    /// # Errors
    /// A name that breaks R10, an unknown user; the store.
    pub async fn list_devices(&self, user: &str) -> Result<Vec<DeviceView>, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let now = self.now_ms();
        let cfg = &self.0.config;
        self.0
            .store
            .read(user, |u| list_devices(u, now, cfg))
            .await?
            .flatten()
            .ok_or_else(|| CoreError::UnknownUser.into())
    }

    /// `user`'s account data, failures, lock and withdrawals (R3, R11, R17, R18, R20).
    ///
    /// # Errors
    /// A name that breaks R10, an unknown user; the store.
    pub async fn user_detail(&self, user: &str) -> Result<UserView, Error> {
        if !sls_protocol::valid_user_name(user) {
            return Err(CoreError::BadCharacter.into());
        }
        let now = self.now_ms();
        let cfg = &self.0.config;
        self.0
            .store
            .read(user, |u| u.enrolled.then(|| view_user(u, now, cfg)))
            .await?
            .flatten()
            .ok_or_else(|| CoreError::UnknownUser.into())
    }

    /// Updates `user`'s account data: each field `update` gives (R17, R18, R20).
    ///
    /// # Errors
    /// A name that breaks R10, an unknown user; the store.
    pub async fn update_user(
        &self,
        user: &str,
        update: &UserUpdate,
    ) -> Result<Outcome<(), S::Ticket>, Error> {
        self.change_user(user, |u, cx| {
            update_user(u, update, cx);
            Ok(())
        })
        .await
    }
}
