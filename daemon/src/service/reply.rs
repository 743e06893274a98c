//! Answers: given now, in the batch a request came in, or owed and sent later on the same
//! stream (after a durable wait, or when a parked `Await` is decided).
//!
//! An owed answer is a [`Late`]: it is sent exactly once, by [`Late::send`] or, if the task
//! holding it ends without sending (a panic, a cancelled task), by its `Drop` as an `INTERNAL`
//! error. So a stream can count exactly what it still owes ([`Later::owed`]) and end only once
//! everything owed has been written.

use sls_protocol::{Message, Status};
use tokio::sync::mpsc;

/// What handling one request produced.
#[derive(Debug)]
pub enum Reply {
    /// Answer now, in this batch.
    Now(Message),
    /// Answer later: a [`Late`] was issued for the request and a task sends it.
    Later,
}

/// The `INTERNAL` error a request gets when its handling failed.
pub fn internal(message: &str) -> Message {
    Message::Error {
        status: Status::INTERNAL,
        message: sls_protocol::clip_text(message, sls_protocol::limits::MAX_TEXT),
    }
}

/// An `UNAVAILABLE` answer: the store could not record or make durable what the request
/// changed.
pub fn unavailable(message: &str) -> Message {
    Message::Error {
        status: Status::UNAVAILABLE,
        message: sls_protocol::clip_text(message, sls_protocol::limits::MAX_TEXT),
    }
}

type Sender = mpsc::UnboundedSender<(u32, Message)>;

/// One answer owed on a stream, for request `id`.
#[must_use = "dropping a Late answers its request INTERNAL"]
#[derive(Debug)]
pub struct Late {
    id: u32,
    tx: Option<Sender>,
}

impl Late {
    /// Sends the answer.
    pub fn send(mut self, message: Message) {
        if let Some(tx) = self.tx.take() {
            // The stream may be gone (its connection closed): nobody is left to answer.
            let _ = tx.send((self.id, message));
        }
    }
}

impl Drop for Late {
    fn drop(&mut self) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send((self.id, internal("the request failed")));
        }
    }
}

/// A stream's owed answers: issues [`Late`]s and receives what they send.
#[derive(Debug)]
pub struct Later {
    tx: Sender,
    rx: mpsc::UnboundedReceiver<(u32, Message)>,
    issued: u64,
    owed: usize,
}

impl Default for Later {
    fn default() -> Self {
        Later::new()
    }
}

impl Later {
    /// Nothing owed yet.
    pub fn new() -> Later {
        let (tx, rx) = mpsc::unbounded_channel();
        Later {
            tx,
            rx,
            issued: 0,
            owed: 0,
        }
    }

    /// Owes an answer to request `id`.
    pub fn promise(&mut self, id: u32) -> Late {
        self.issued += 1;
        self.owed += 1;
        Late {
            id,
            tx: Some(self.tx.clone()),
        }
    }

    /// Answers owed and not yet received.
    pub fn owed(&self) -> usize {
        self.owed
    }

    /// How many answers were ever promised (to tell whether a call promised one).
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// The next owed answer, once it is sent. Pending forever when nothing is owed.
    pub async fn next(&mut self) -> Option<(u32, Message)> {
        let got = self.rx.recv().await;
        if got.is_some() {
            self.owed = self.owed.saturating_sub(1);
        }
        got
    }

    /// An owed answer already sent, if any.
    pub fn try_next(&mut self) -> Option<(u32, Message)> {
        let got = self.rx.try_recv().ok();
        if got.is_some() {
            self.owed = self.owed.saturating_sub(1);
        }
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_late_answers_exactly_once() {
        let mut later = Later::new();
        let sent = later.promise(1);
        let dropped = later.promise(2);
        assert_eq!((later.owed(), later.issued()), (2, 2));
        sent.send(Message::Pong {});
        // A task that ends without answering (a panic unwinds through it) answers INTERNAL.
        let r = std::thread::spawn(move || {
            let _owed = dropped;
            panic!("an await task's bug");
        })
        .join();
        assert!(r.is_err());
        assert_eq!(later.next().await, Some((1, Message::Pong {})));
        match later.next().await {
            Some((2, Message::Error { status, .. })) => assert_eq!(status, Status::INTERNAL),
            other => panic!("{other:?}"),
        }
        assert_eq!(later.owed(), 0);
        assert_eq!(later.try_next(), None);
    }
}
