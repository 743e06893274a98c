//! What the simulated users do apart from the protocol: their knobs ([`Behaviour`]), how a
//! fleet's requests are spread over the frontend connections ([`Route`]), and the login screen
//! a push login shows them ([`Screen`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use sls_protocol::TxnId;
use tokio::sync::oneshot;

/// Knobs of the simulated users.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// Share of honest answers typed wrong (then a `rejected` is expected).
    pub wrong_rate: f64,
    /// Share of users who take their time before answering.
    pub slow_rate: f64,
    /// How long a slow user takes.
    pub slow_delay: Duration,
    /// How long the frontend waits for a push decision.
    pub await_timeout: Duration,
    /// The lockout threshold the daemon runs with (R11, default 10).
    pub lockout_threshold: u8,
    /// Which frontend connection each request goes through.
    pub route: Route,
}

/// How requests are spread over the frontend connections (and so over the nodes they reach).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Route {
    /// Each request through the next connection in turn: a login's `begin` and answer, and a
    /// user's logins, reach any node (no routing at all).
    #[default]
    Request,
    /// Every request of a user through the same connection, chosen by a hash of the name: a
    /// deployment whose frontends route each user to one node.
    User,
}

impl Default for Behaviour {
    fn default() -> Behaviour {
        Behaviour {
            wrong_rate: 0.0,
            slow_rate: 0.0,
            slow_delay: Duration::from_millis(200),
            await_timeout: Duration::from_secs(10),
            lockout_threshold: 10,
            route: Route::Request,
        }
    }
}

enum Slot {
    Shown(u8),
    Waiting(oneshot::Sender<u8>),
}

/// The login screen as the simulated user sees it: the number a push login shows, which the
/// user then types into the app (number matching). Whichever side comes first waits for the
/// other.
#[derive(Default)]
pub struct Screen {
    slots: Mutex<HashMap<TxnId, Slot>>,
}

impl Screen {
    /// The frontend shows `number` for `txn`.
    pub fn show(&self, txn: TxnId, number: u8) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        match slots.remove(&txn) {
            Some(Slot::Waiting(tx)) => {
                let _ = tx.send(number);
            }
            _ => {
                slots.insert(txn, Slot::Shown(number));
            }
        }
    }

    /// The user reads the number shown for `txn`, waiting up to `timeout` for the screen.
    pub async fn read(&self, txn: TxnId, timeout: Duration) -> Option<u8> {
        let rx = {
            let mut slots = self.slots.lock().ok()?;
            match slots.remove(&txn) {
                Some(Slot::Shown(n)) => return Some(n),
                _ => {
                    let (tx, rx) = oneshot::channel();
                    slots.insert(txn, Slot::Waiting(tx));
                    rx
                }
            }
        };
        let got = tokio::time::timeout(timeout, rx)
            .await
            .ok()
            .and_then(Result::ok);
        if got.is_none() {
            if let Ok(mut slots) = self.slots.lock() {
                slots.remove(&txn);
            }
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_screen_meets_either_order() {
        let s = Screen::default();
        s.show(TxnId(1), 42);
        assert_eq!(s.read(TxnId(1), Duration::from_millis(10)).await, Some(42));
        let s = std::sync::Arc::new(s);
        let reader = tokio::spawn({
            let s = s.clone();
            async move { s.read(TxnId(2), Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        s.show(TxnId(2), 7);
        assert_eq!(reader.await.unwrap(), Some(7));
        assert_eq!(s.read(TxnId(3), Duration::from_millis(5)).await, None);
    }
}
