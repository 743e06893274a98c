//! The IB Key app's calls (no certificate; [`Client::prove_device`] first): the pushes it
//! receives and its signed answers (R6, PROTOCOL.md §5.3).

use sls_protocol::{ApprovalMethod, Message, Purpose, TxnId, Verdict};

use crate::calls::judged;
use crate::client::Client;
use crate::error::ClientError;

/// A login awaiting the IB Key app's approval (R6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The transaction.
    pub txn: TxnId,
    /// The user logging in.
    pub user: String,
    /// The push's nonce, signed in the answer.
    pub nonce: [u8; 16],
    /// Login or withdrawal.
    pub purpose: Purpose,
    /// When it expires, ms since the epoch.
    pub expires_at_ms: u64,
}

/// IB Key app calls (a client without a certificate, [`Client::prove_device`] first).
impl Client {
    /// The next push to this app, from whichever connection brought it; `None` once the
    /// client is gone. Frames other than pushes are skipped.
    pub async fn push(&self) -> Option<Push> {
        loop {
            if let Message::Push {
                txn,
                user,
                nonce,
                purpose,
                expires_at_ms,
            } = self.next_push().await?
            {
                return Some(Push {
                    txn,
                    user,
                    nonce,
                    purpose,
                    expires_at_ms,
                });
            }
        }
    }

    /// Approves (with the number the user typed from the login screen) or declines a push,
    /// signed with the device's key (PROTOCOL.md §5.3). Never sent twice.
    ///
    /// # Errors
    /// No answer, or a refusal (`FORBIDDEN` before any device is proven).
    pub async fn answer_push(
        &self,
        push: &Push,
        secret: &[u8],
        approve: bool,
        method: ApprovalMethod,
        number: u8,
    ) -> Result<Verdict, ClientError> {
        let mac = sls_protocol::push::push_mac(
            secret,
            push.txn,
            &push.user,
            number,
            &push.nonce,
            method,
            approve,
        );
        judged(
            self.call(Message::PushAnswer {
                txn: push.txn,
                approve,
                method,
                number,
                mac,
            })
            .await?,
        )
    }
}
