//! The loop of one stream: decode the pipelined frames of a read, ask the core for each, make
//! the batch's records durable, and write the answers.
//!
//! ```text
//!  read ─▶ decode all frames ─▶ handler, isolated (µs) ─▶ answers that changed nothing: now
//!                             └▶ journal ticket ─▶ durable-wait task ─▶ answers: later
//!  owed answers (durable waits, parked Awaits) ─▶ written as they come
//! ```
//!
//! A stream ends when its peer finishes sending, a frame loses framing, or shutdown begins:
//! then it reads no more, writes every answer it still owes, and finishes. It ends at once when
//! the connection is lost, and when a frame begun on it is not whole within the frame deadline
//! (reset both ways with FRAME_TIMEOUT: what it held is freed). What a stream holds of a
//! partial frame is at most one frame: `MAX_FRAME`, or `MAX_FRAME_UNPROVEN` until its
//! connection has proven a key.

use std::future::{poll_fn, Future};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::Poll;
use std::time::Instant;

use bytes::BytesMut;
use futures_util::FutureExt;
use sls_protocol::{frame, negotiate, Access, CloseCode, Frame, Message, Status, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::limits::Event;
use super::reply::{internal, unavailable, Late, Later, Reply};
use super::state::{Held, Peer, State, Ticket};
use super::{handlers, nodes};
use crate::backend::Backend;

/// Most bytes one batch takes from a stream before it handles them.
const READ_MAX: usize = 64 * 1024;

/// The length of the frame `buf` begins with, header included, as its header declares it (the
/// bytes there so far when the length field itself is partial).
fn declared_len(buf: &[u8]) -> usize {
    match buf.get(..4).and_then(|b| <[u8; 4]>::try_from(b).ok()) {
        Some(len) => {
            usize::try_from(u32::from_be_bytes(len)).map_or(usize::MAX, |n| n.saturating_add(4))
        }
        None => buf.len(),
    }
}

/// Serves one stream until it ends.
pub async fn serve_stream<B: Backend>(
    state: State<B>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Peer,
) {
    let (push_tx, mut push_rx) = mpsc::unbounded_channel::<Message>();
    let state_is_shared = B::SHARED;
    let mut s = Conversation {
        state,
        peer,
        hello: false,
        draining: false,
        later: Later::new(),
        out: BytesMut::with_capacity(16 * 1024),
        push_tx,
        registered: Vec::new(),
        concurrent: state_is_shared,
    };
    let mut inbuf = BytesMut::with_capacity(16 * 1024);
    // No more reading: the peer finished, framing was lost, or shutdown began.
    let mut closing = false;
    let mut lost = false;
    // The bytes of a partial frame held in `inbuf`, counted daemon-wide; and when the frame
    // they begin must be whole (armed while there is one).
    let mut held = s.state.admission.partial();
    let frame_timeout = s.state.admission.policy().frame_timeout;
    let mut partial = false;
    let deadline = tokio::time::sleep(frame_timeout);
    tokio::pin!(deadline);
    loop {
        if closing && s.later.owed() == 0 {
            break;
        }
        tokio::select! {
            chunk = recv.read_chunk(READ_MAX, true), if !closing => match chunk {
                Ok(Some(chunk)) => {
                    inbuf.extend_from_slice(&chunk.bytes);
                    // What else has arrived joins this batch: one pass, one write for all.
                    while inbuf.len() < READ_MAX {
                        match recv.read_chunk(READ_MAX, true).now_or_never() {
                            Some(Ok(Some(chunk))) => inbuf.extend_from_slice(&chunk.bytes),
                            Some(Ok(None)) => {
                                closing = true;
                                break;
                            }
                            // An error is the stream's: the next read meets it again.
                            Some(Err(_)) | None => break,
                        }
                    }
                }
                Ok(None) => {
                    closing = true;
                    continue;
                }
                Err(_) => {
                    lost = true;
                    break;
                }
            },
            Some((id, msg)) = s.later.next() => {
                encode_or_internal(id, &msg, &mut s.out);
                while let Some((id, msg)) = s.later.try_next() {
                    encode_or_internal(id, &msg, &mut s.out);
                }
                if !s.flush(&mut send).await {
                    lost = true;
                    break;
                }
                continue;
            }
            Some(push) = push_rx.recv() => {
                encode_or_internal(0, &push, &mut s.out);
                while let Ok(push) = push_rx.try_recv() {
                    encode_or_internal(0, &push, &mut s.out);
                }
                if !s.flush(&mut send).await {
                    lost = true;
                    break;
                }
                continue;
            }
            () = s.state.stopping.cancelled(), if !closing => {
                closing = true;
                continue;
            }
            () = &mut deadline, if partial && !closing => {
                debug!(addr = %s.peer.addr, "frame not completed in time: stream reset");
                s.state.admission.count(Event::FrameTimeout);
                let code = quinn::VarInt::from_u32(CloseCode::FRAME_TIMEOUT.0);
                let _ = recv.stop(code);
                let _ = send.reset(code);
                lost = true;
                break;
            }
        }
        let started = Instant::now();
        let before = inbuf.len();
        let mut batch = s.batch(&mut inbuf, started).await;
        if !batch.fatal && !inbuf.is_empty() && declared_len(&inbuf) > s.peer.max_frame() {
            // Longer than this connection may send yet: answered like a frame out of range.
            s.state.metrics.frame_error(Status::FRAME_TOO_LARGE);
            let text = "frame too large for a connection that has proven no key";
            error_frame(0, Status::FRAME_TOO_LARGE, text, &mut s.out);
            batch.fatal = true;
        }
        if batch.fatal {
            // Framing is lost: no more of this stream is read, and what it held is freed.
            s.state.admission.count(Event::FramingLost);
            let _ = recv.stop(quinn::VarInt::from_u32(CloseCode::FRAMING_LOST.0));
            inbuf = BytesMut::new();
        }
        held.set(inbuf.len());
        if inbuf.is_empty() {
            partial = false;
        } else if !partial || inbuf.len() < before {
            // A new frame begun (the one before it was whole): its own deadline.
            partial = true;
            deadline
                .as_mut()
                .reset(tokio::time::Instant::now() + frame_timeout);
        }
        if !s.flush(&mut send).await {
            lost = true;
            break;
        }
        if batch.answered > 0 {
            s.state.metrics.batch(batch.answered);
        }
        if batch.fatal {
            closing = true;
        }
    }
    let gone: Vec<_> = s
        .registered
        .drain(..)
        .filter(|dev| {
            s.state
                .devices
                .remove_if(dev, |_, tx| tx.same_channel(&s.push_tx))
                .is_some()
        })
        .collect();
    nodes::offline(&s.state, gone);
    if !lost && send.finish().is_ok() && s.state.is_draining() {
        // Shutdown closes the endpoint once every task is done, which would drop what the peer
        // has not acknowledged yet: wait for it (the drain's grace period bounds this).
        let _ = send.stopped().await;
    }
}

/// A stream's state between reads.
struct Conversation<B: Backend> {
    state: State<B>,
    peer: Peer,
    hello: bool,
    /// Whether shutdown had begun when this batch began (read once a batch, not per request).
    draining: bool,
    later: Later,
    /// Answers to write.
    out: BytesMut,
    /// Where pushes for the devices this stream proved arrive (R6, R8).
    push_tx: mpsc::UnboundedSender<Message>,
    registered: Vec<sls_protocol::DeviceId>,
    /// Whether a login's requests are handled concurrently ([`Conversation::concurrently`]):
    /// on a shared store, where each waits for network round trips.
    concurrent: bool,
}

/// What a batch did.
struct Batch {
    answered: usize,
    fatal: bool,
}

impl<B: Backend> Conversation<B> {
    /// Writes the pending answers; false if the stream is gone.
    async fn flush(&mut self, send: &mut quinn::SendStream) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let ok = send.write_all(&self.out).await.is_ok();
        self.out.clear();
        ok
    }

    /// Handles every whole frame in `inbuf`. Answers that changed nothing go to `out`; the
    /// others wait, on a tracked task, until the journal is durable up to the batch's last
    /// record (group commit: with other streams' records, one fsync). `read_at`: when the read
    /// that brought them in completed (where their queue wait starts).
    async fn batch(&mut self, inbuf: &mut BytesMut, read_at: Instant) -> Batch {
        let state = self.state.clone();
        self.draining = state.is_draining();
        let mut batch = Batch {
            answered: 0,
            fatal: false,
        };
        // Answers whose request changed durable state: sent once their records are on disk.
        let mut after_durable: Vec<(u32, Message)> = Vec::new();
        let mut last: Option<Ticket<B>> = None;
        // When the request before ended, which is when the next one's handling starts: one
        // clock read per request, not two.
        let mut clock = read_at;
        loop {
            match frame::decode(inbuf) {
                Ok(None) => break,
                Ok(Some(Frame { id, message })) => {
                    batch.answered += 1;
                    if let Some((id, msg, lsn)) = self
                        .one(&state, id, message, read_at, &mut clock, &mut batch.fatal)
                        .await
                    {
                        last = state.core.store().later(last, Some(lsn));
                        after_durable.push((id, msg));
                    }
                    if batch.fatal {
                        break;
                    }
                }
                Err(e) => {
                    let status = refused_frame_status(&e);
                    state.metrics.frame_error(status);
                    error_frame(e.id, status, &e.kind.to_string(), &mut self.out);
                    if !e.recoverable() {
                        batch.fatal = true;
                        break;
                    }
                }
            }
        }
        if let (Some(lsn), false) = (last, after_durable.is_empty()) {
            let owed: Vec<(Late, Message)> = after_durable
                .into_iter()
                .map(|(id, msg)| (self.later.promise(id), msg))
                .collect();
            let st = state.clone();
            state.tasks.spawn(async move {
                let t0 = Instant::now();
                let durable = st.core.store().durable(lsn).await;
                st.metrics.durable_wait(t0.elapsed());
                if let Err(e) = &durable {
                    super::answers::warn_store(e);
                }
                for (late, msg) in owed {
                    // Nothing that could not be made durable is acknowledged.
                    late.send(match &durable {
                        Ok(()) => msg,
                        Err(_) => unavailable("state could not be made durable"),
                    });
                }
            });
        }
        batch
    }

    /// Handles one decoded request: answers it into `out`, or returns the answer that must
    /// wait for the journal to be durable up to the returned position. `state` is the
    /// batch's handle on the stream's state (one count of its `Arc` a batch, not a request).
    async fn one(
        &mut self,
        state: &State<B>,
        id: u32,
        message: Message,
        read_at: Instant,
        clock: &mut Instant,
        fatal: &mut bool,
    ) -> Option<(u32, Message, Ticket<B>)> {
        if self.draining {
            error_frame(id, Status::SHUTTING_DOWN, "shutting down", &mut self.out);
            return None;
        }
        if !self.hello {
            match message {
                Message::Hello {
                    min_version,
                    max_version,
                    ..
                } if negotiate(min_version, max_version).is_some() => {
                    self.hello = true;
                    let welcome = Message::Welcome {
                        version: negotiate(min_version, max_version).unwrap_or(PROTOCOL_VERSION),
                        max_frame: sls_protocol::limits::MAX_FRAME as u32,
                        max_in_flight: state.limits.max_in_flight,
                        role: self.peer.role,
                    };
                    encode_or_internal(id, &welcome, &mut self.out);
                }
                Message::Hello { .. } => {
                    let text = "no common protocol version";
                    error_frame(id, Status::VERSION, text, &mut self.out);
                    *fatal = true;
                }
                _ => {
                    let text = "the first frame of a stream must be Hello";
                    error_frame(id, Status::VERSION, text, &mut self.out);
                }
            }
            return None;
        }
        if !message.access().allows(self.peer.role) {
            let status = if message.access() == Access::Server {
                Status::UNEXPECTED
            } else {
                Status::FORBIDDEN
            };
            state.metrics.frame_error(status);
            error_frame(id, status, "not allowed for this role", &mut self.out);
            return None;
        }
        if self.later.owed() >= state.limits.max_in_flight as usize {
            let text = "too many requests in flight";
            error_frame(id, Status::TOO_MANY_IN_FLIGHT, text, &mut self.out);
            return None;
        }
        if self.concurrent && handlers::is_login(&message) {
            self.concurrently(id, message, read_at);
            return None;
        }
        let t0 = *clock;
        let kind = message.type_code();
        let name = message.type_name();
        let mut ticket = None;
        let reply = {
            let _in_flight = Held::new(&state.in_flight, 1);
            let promised = self.later.issued();
            let handled = {
                let handling = handlers::handle(
                    state,
                    &mut self.peer,
                    id,
                    message,
                    &mut ticket,
                    &mut self.later,
                );
                isolate(std::pin::pin!(handling)).await
            };
            match handled {
                Some(reply) => reply,
                None => after_panic(name, &self.later, promised),
            }
        };
        // An app that just proved its key starts receiving pushes on this stream.
        let fresh: Vec<_> = self
            .peer
            .proven
            .iter()
            .skip(self.registered.len())
            .copied()
            .collect();
        for dev in &fresh {
            state.devices.insert(*dev, self.push_tx.clone());
            self.registered.push(*dev);
            debug!(device = %dev, "IB Key app connected");
        }
        if !fresh.is_empty() {
            // The connection has proven a key: no deadline, full-size frames.
            self.peer.proof.cancel();
        }
        nodes::proven(state, fresh, &self.push_tx);
        let Reply::Now(msg) = reply else {
            return None;
        };
        *clock = Instant::now();
        state.metrics.request(
            kind,
            &msg,
            t0.duration_since(read_at),
            clock.duration_since(t0),
        );
        if let Some(lsn) = ticket {
            return Some((id, msg, lsn));
        }
        encode_or_internal(id, &msg, &mut self.out);
        None
    }
}

impl<B: Backend> Conversation<B> {
    /// Handles a login's request on a task of its own, answered when it is done (and durable):
    /// on a shared store each request waits for round trips to it, and handled in turn, the
    /// requests of a stream would have one round trip in flight at a time. A panic drops the
    /// promise, which answers `INTERNAL`.
    fn concurrently(&mut self, id: u32, message: Message, read_at: Instant) {
        let late = self.later.promise(id);
        let state = self.state.clone();
        let opened = self.peer.opened.clone();
        self.state.tasks.spawn(async move {
            let _in_flight = Held::new(&state.in_flight, 1);
            let t0 = Instant::now();
            let kind = message.type_code();
            let mut ticket = None;
            let msg = match handlers::login(&state, &opened, message, &mut ticket).await {
                Reply::Now(msg) => msg,
                Reply::Later => internal("the request failed"),
            };
            state
                .metrics
                .request(kind, &msg, t0.duration_since(read_at), t0.elapsed());
            let Some(lsn) = ticket else {
                return late.send(msg);
            };
            let t1 = Instant::now();
            let durable = state.core.store().durable(lsn).await;
            state.metrics.durable_wait(t1.elapsed());
            late.send(match durable {
                Ok(()) => msg,
                Err(e) => {
                    super::answers::warn_store(&e);
                    unavailable("state could not be made durable")
                }
            });
        });
    }
}

/// Runs one request's handling so that a panic in it is this request's `INTERNAL` answer and
/// not the end of the stream (and of the other requests in flight on it): `None` if it
/// panicked. Changes the core committed before the panic are journalled with their change.
///
/// The handling is polled where it was pinned: a handler's future is large (a kilobyte and
/// more), and a wrapper that owned it would copy it on every request.
async fn isolate<F: Future<Output = Reply>>(mut handling: Pin<&mut F>) -> Option<Reply> {
    poll_fn(
        |cx| match std::panic::catch_unwind(AssertUnwindSafe(|| handling.as_mut().poll(cx))) {
            Ok(Poll::Ready(reply)) => Poll::Ready(Some(reply)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(None),
        },
    )
    .await
}

/// Warnings of panicked requests (a peer could repeat the request that panics).
static PANIC_WARNINGS: crate::logging::Throttle =
    crate::logging::Throttle::new(std::time::Duration::from_secs(10));

/// The answer to a request whose handling panicked.
fn after_panic(name: &str, later: &Later, promised: u64) -> Reply {
    if later.issued() > promised {
        // The answer was promised before the panic: the promise answers (INTERNAL, if its
        // task never sends), and the request must not be answered twice.
        return Reply::Later;
    }
    if let Some(suppressed) = PANIC_WARNINGS.allow() {
        warn!(
            request = name,
            suppressed, "handling panicked: answered INTERNAL"
        );
    }
    Reply::Now(internal("the request failed"))
}

/// The status of a frame that did not decode. A daemon-only type code is `UNEXPECTED` whatever
/// its body (PROTOCOL.md §6): a client must not send it at all, and an empty or short body
/// must not turn that into `MALFORMED_FRAME`.
fn refused_frame_status(e: &sls_protocol::FrameError) -> Status {
    let daemon_only = Message::TYPES
        .iter()
        .any(|&(code, _, access)| code == e.type_code && access == Access::Server);
    if e.recoverable() && daemon_only {
        Status::UNEXPECTED
    } else {
        e.status()
    }
}

fn encode_or_internal(id: u32, msg: &Message, out: &mut BytesMut) {
    if let Err(e) = frame::encode(id, msg, out) {
        warn!("cannot encode {}: {e}", msg.type_name());
        error_frame(id, Status::INTERNAL, "response could not be encoded", out);
    }
}

/// Appends an `Error` frame; the text is clipped to the wire's limit at a char boundary.
pub fn error_frame(id: u32, status: Status, text: &str, out: &mut BytesMut) {
    let message = sls_protocol::clip_str(text, sls_protocol::limits::MAX_TEXT).to_owned();
    // An Error frame with a text within the limit always encodes.
    let _ = frame::encode(id, &Message::Error { status, message }, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_the_next_request_is_served() {
        let later = Later::new();
        let promised = later.issued();
        let reply = match isolate(std::pin::pin!(async { panic!("a handler's bug") })).await {
            Some(r) => r,
            None => after_panic("EnrolDevice", &later, promised),
        };
        match reply {
            Reply::Now(Message::Error { status, .. }) => assert_eq!(status, Status::INTERNAL),
            other => panic!("{other:?}"),
        }
        let reply = isolate(std::pin::pin!(async { Reply::Now(Message::Pong {}) })).await;
        assert!(matches!(reply, Some(Reply::Now(Message::Pong {}))));
    }

    #[tokio::test]
    async fn a_panic_after_a_promise_is_answered_once_by_the_promise() {
        let mut later = Later::new();
        let promised = later.issued();
        let owed = later.promise(9);
        let r = isolate(std::pin::pin!(async move {
            let _owed = owed;
            panic!("after parking");
        }))
        .await;
        assert!(r.is_none());
        assert!(matches!(
            after_panic("Await", &later, promised),
            Reply::Later
        ));
        match later.next().await {
            Some((9, Message::Error { status, .. })) => assert_eq!(status, Status::INTERNAL),
            other => panic!("{other:?}"),
        }
        assert_eq!(later.owed(), 0);
    }

    #[test]
    fn an_error_frame_with_a_long_multibyte_text_fits_the_limit() {
        let text = format!("{}é", "x".repeat(sls_protocol::limits::MAX_TEXT - 1));
        let mut out = BytesMut::new();
        error_frame(7, Status::INVALID_CREDENTIAL, &text, &mut out);
        match frame::decode(&mut out) {
            Ok(Some(Frame {
                id: 7,
                message: Message::Error { status, message },
            })) => {
                assert_eq!(status, Status::INVALID_CREDENTIAL);
                assert_eq!(message, "x".repeat(sls_protocol::limits::MAX_TEXT - 1));
            }
            other => panic!("{other:?}"),
        }
    }
}
