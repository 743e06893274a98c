//! What the nodes sharing a Redis store tell each other, over its bus (R6, R8): the IB Key app
//! may be connected to node B while the frontend begins and awaits on node A.
//!
//! | note | sent when | a node that hears it |
//! |---|---|---|
//! | `Online` | an app proves a device here, and every [`ANNOUNCE`] for all of them | counts the devices as reachable for [`PRESENCE`] |
//! | `Offline` | the app's stream ends | forgets them |
//! | `Push` | a push is for a device not connected here | delivers it if the device is connected there |
//! | `Decided` | an app answered a push here | wakes the `Await`s parked on it there |
//! | `Ask` | this node's subscription is (again) in place | announces its devices at once |
//!
//! The bus is at most once. What a lost note costs, and what makes up for it: a lost `Push`
//! is a push the app never shows (the user is asked again at the next login); a lost
//! `Decided` is covered by each parked `Await` looking at the store every [`POLL`]; a lost
//! presence note is repaired by the next announcement. The decision itself is never on the
//! bus: it is in the store, and an `Await` reads it from there.

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, BytesMut};
use sls_protocol::{frame, DeviceId, Message, TxnId};
use sls_redis::bus::Heard;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, warn};

use super::awaits;
use super::state::State;
use crate::backend::Backend;

/// How often a node announces the devices connected to it.
pub const ANNOUNCE: Duration = Duration::from_secs(5);
/// How long an announcement counts: three announcements, so one lost note does not matter.
pub const PRESENCE: Duration = Duration::from_secs(15);
/// How often a parked `Await` looks at the store when nodes share it (only a lost `Decided`
/// note makes it matter: a second late at worst, one read a second per parked `Await`).
pub const POLL: Duration = Duration::from_secs(1);

/// Most devices in one `Online` note (a message stays well under a megabyte).
const MAX_ANNOUNCED: usize = 50_000;

/// One note on the bus. Each carries the sending node's id, so that a node skips its own.
#[derive(Debug, Clone, PartialEq)]
enum Note {
    Online(Vec<DeviceId>),
    Offline(Vec<DeviceId>),
    Push(DeviceId, Message),
    Decided(TxnId),
    Ask,
}

const ONLINE: u8 = 1;
const OFFLINE: u8 = 2;
const PUSH: u8 = 3;
const DECIDED: u8 = 4;
const ASK: u8 = 5;

fn encode(node: u64, note: &Note) -> Option<Vec<u8>> {
    let mut b = BytesMut::with_capacity(64);
    b.put_u64(node);
    match note {
        Note::Online(devices) | Note::Offline(devices) => {
            b.put_u8(if matches!(note, Note::Online(_)) {
                ONLINE
            } else {
                OFFLINE
            });
            b.put_u32(u32::try_from(devices.len()).ok()?);
            for d in devices {
                b.put_u32(d.0);
            }
        }
        Note::Push(device, push) => {
            b.put_u8(PUSH);
            b.put_u32(device.0);
            frame::encode(0, push, &mut b).ok()?;
        }
        Note::Decided(txn) => {
            b.put_u8(DECIDED);
            b.put_u128(txn.0);
        }
        Note::Ask => b.put_u8(ASK),
    }
    Some(b.to_vec())
}

/// Decodes a note; `None` for anything malformed (another version's, or not ours at all).
fn decode(bytes: &[u8]) -> Option<(u64, Note)> {
    let mut b = bytes;
    if b.remaining() < 9 {
        return None;
    }
    let node = b.get_u64();
    let note = match b.get_u8() {
        kind @ (ONLINE | OFFLINE) => {
            if b.remaining() < 4 {
                return None;
            }
            let n = usize::try_from(b.get_u32()).ok()?;
            if b.remaining() != n.checked_mul(4)? {
                return None;
            }
            let devices = (0..n).map(|_| DeviceId(b.get_u32())).collect();
            if kind == ONLINE {
                Note::Online(devices)
            } else {
                Note::Offline(devices)
            }
        }
        PUSH => {
            if b.remaining() < 4 {
                return None;
            }
            let device = DeviceId(b.get_u32());
            let f = frame::decode_exact(b).ok()?;
            if !matches!(f.message, Message::Push { .. }) {
                return None;
            }
            Note::Push(device, f.message)
        }
        DECIDED => {
            if b.remaining() != 16 {
                return None;
            }
            Note::Decided(TxnId(b.get_u128()))
        }
        ASK if b.remaining() == 0 => Note::Ask,
        _ => return None,
    };
    Some((node, note))
}

/// Queues `note` for the publisher task ([`publisher`]): never waits, so a slow cluster does
/// not hold up the request that sent it; a note that finds the queue full is dropped (the bus
/// is at most once anyway) and counted.
fn publish<B: Backend>(state: &State<B>, note: Note) {
    let Some(queue) = &state.bus else { return };
    let Some(bytes) = encode(state.node, &note) else {
        return;
    };
    if queue.try_send(bytes).is_err() {
        state.metrics.bus_dropped();
    }
}

/// Notes queued for the bus, at most: past it, notes are dropped.
pub const QUEUE: usize = 16_384;

/// Publishes the queued notes, one after the other, until `stop` resolves.
pub async fn publisher(
    bus: sls_redis::bus::Bus,
    mut queue: tokio::sync::mpsc::Receiver<Vec<u8>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let drain = async {
        while let Some(bytes) = queue.recv().await {
            if let Err(e) = bus.publish(&bytes).await {
                warn!("bus: {e}");
            }
        }
    };
    tokio::select! {
        () = drain => {}
        () = stop => {}
    }
}

/// Whether IB Key `device` can be pushed to now: connected here, or announced by another node
/// within [`PRESENCE`].
pub fn reachable<B: Backend>(state: &State<B>, device: DeviceId) -> bool {
    // Asked before every begin that picks a device (the rule learns whether it is an IB Key
    // only as it runs): one lookup in a small map on the embedded store, whose nodes share
    // nothing.
    state.devices.contains_key(&device)
        || (B::SHARED
            && state
                .remote
                .get(&device)
                .is_some_and(|e| e.value().1 > Instant::now()))
}

/// Delivers `push` to `device`: here if it is connected here, else through the other nodes.
pub fn push<B: Backend>(state: &State<B>, device: DeviceId, push: Message) {
    if let Some(tx) = state.devices.get(&device) {
        let _ = tx.send(push);
        return;
    }
    publish(state, Note::Push(device, push));
}

/// An app answered the push of `txn` here: wakes the `Await`s on it, here and on the others.
pub fn decided<B: Backend>(state: &State<B>, txn: TxnId) {
    awaits::wake(state, txn);
    publish(state, Note::Decided(txn));
}

/// An app proved `devices` here.
pub fn online<B: Backend>(state: &State<B>, devices: Vec<DeviceId>) {
    if !devices.is_empty() {
        publish(state, Note::Online(devices));
    }
}

/// An app proved `devices` on the stream whose pushes go to `tx`: announced, and sent the
/// pushes of those devices still open in the store (begun on any node while the app was away
/// or reconnecting: a push goes out once, at most once to a live app, R6). A push begun while
/// this read runs may arrive twice; an app shows one per `txn`.
pub fn proven<B: Backend>(state: &State<B>, devices: Vec<DeviceId>, tx: &UnboundedSender<Message>) {
    for device in devices.iter().copied() {
        let (st, tx) = (state.clone(), tx.clone());
        state.tasks.spawn(async move {
            match st.core.open_pushes(device).await {
                Ok(open) => {
                    for (txn, p) in open {
                        let _ = tx.send(Message::Push {
                            txn,
                            user: p.user,
                            nonce: p.nonce,
                            purpose: p.purpose,
                            expires_at_ms: p.expires_at_ms,
                        });
                    }
                }
                Err(e) => warn!(device = %device, "open pushes not read: {e}"),
            }
        });
    }
    online(state, devices);
}

/// The app that proved `devices` here is gone.
pub fn offline<B: Backend>(state: &State<B>, devices: Vec<DeviceId>) {
    if !devices.is_empty() {
        publish(state, Note::Offline(devices));
    }
}

/// Announces every device connected here (every [`ANNOUNCE`], and when the subscription is
/// back, for nodes that may have forgotten them).
pub fn announce<B: Backend>(state: &State<B>) {
    let devices: Vec<DeviceId> = state.devices.iter().map(|e| *e.key()).collect();
    for chunk in devices.chunks(MAX_ANNOUNCED) {
        online(state, chunk.to_vec());
    }
    let now = Instant::now();
    state.remote.retain(|_, (_, until)| *until > now);
}

/// Its subscription is (again) in place: announces this node's devices and asks the others
/// for theirs, so that presence is whole again without waiting for [`ANNOUNCE`].
pub fn hello<B: Backend>(state: &State<B>) {
    announce(state);
    publish(state, Note::Ask);
}

/// Acts on what the bus brought (and answers an `Ask`, or its own resubscription).
pub fn heard<B: Backend>(state: &State<B>, heard: Heard) {
    let bytes = match heard {
        Heard::Resubscribed => {
            // A `Decided` may have been missed: every parked Await looks at the store again.
            for w in state.waiters.iter() {
                w.value().notify_waiters();
            }
            hello(state);
            return;
        }
        Heard::Message(bytes) => bytes,
    };
    let Some((node, note)) = decode(&bytes) else {
        debug!(
            bytes = bytes.len(),
            "bus: a note this node cannot read: ignored"
        );
        return;
    };
    if node == state.node {
        return;
    }
    match note {
        Note::Online(devices) => {
            let until = Instant::now() + PRESENCE;
            for d in devices {
                state.remote.insert(d, (node, until));
            }
        }
        Note::Offline(devices) => {
            for d in devices {
                state.remote.remove_if(&d, |_, (n, _)| *n == node);
            }
        }
        Note::Push(device, push) => {
            if let Some(tx) = state.devices.get(&device) {
                let _ = tx.send(push);
            }
        }
        Note::Decided(txn) => awaits::wake(state, txn),
        Note::Ask => announce(state),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push_message() -> Message {
        Message::Push {
            txn: TxnId(7),
            user: "ann".into(),
            nonce: [9; 16],
            purpose: sls_protocol::Purpose::Login,
            expires_at_ms: 1_000,
        }
    }

    #[test]
    fn every_note_reads_back_as_written() {
        let notes = [
            Note::Online(vec![DeviceId(1), DeviceId(u32::MAX)]),
            Note::Offline(vec![DeviceId(3)]),
            Note::Online(Vec::new()),
            Note::Push(DeviceId(4), push_message()),
            Note::Decided(TxnId(u128::MAX - 1)),
            Note::Ask,
        ];
        for note in notes {
            let bytes = encode(42, &note).expect("encodes");
            assert_eq!(decode(&bytes), Some((42, note)));
        }
    }

    #[test]
    fn a_damaged_or_foreign_note_is_ignored_not_a_panic() {
        let good = encode(1, &Note::Push(DeviceId(4), push_message())).expect("encodes");
        for cut in 0..good.len() {
            assert_eq!(decode(&good[..cut]), None, "cut at {cut}");
        }
        let mut count_lies = encode(1, &Note::Online(vec![DeviceId(1)])).expect("encodes");
        count_lies[9..13].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(decode(&count_lies), None);
        let mut unknown = encode(1, &Note::Decided(TxnId(1))).expect("encodes");
        unknown[8] = 99;
        assert_eq!(decode(&unknown), None);
        // A frame that is not a Push is not delivered to an app as one.
        let mut not_push = Vec::new();
        not_push.extend_from_slice(&1u64.to_be_bytes());
        not_push.push(PUSH);
        not_push.extend_from_slice(&4u32.to_be_bytes());
        let mut f = BytesMut::new();
        frame::encode(0, &Message::Ping {}, &mut f).expect("encodes");
        not_push.extend_from_slice(&f);
        assert_eq!(decode(&not_push), None);
    }
}
