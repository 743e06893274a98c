//! Frames: how messages are cut on a stream.
//!
//! ```text
//! 0      4      6          10
//! ┌──────┬──────┬──────────┬────────────────────────┐
//! │ len  │ type │    id    │ body (len - 6 bytes)   │   len: u32 BE, bytes after itself
//! └──────┴──────┴──────────┴────────────────────────┘
//! ```
//!
//! Many requests are in flight on one stream: each carries an `id` chosen by the requester, and
//! the response echoes it. The decoder works on a caller-owned buffer and returns `Ok(None)`
//! until a whole frame has arrived; it checks the length against [`MAX_FRAME`] before it waits
//! for or allocates anything.

use bytes::{Buf, BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError, FrameError, FrameErrorKind};
use crate::limits::MAX_FRAME;
use crate::message::Message;

/// Bytes of the header: length (4), type (2), id (4).
pub const HEADER_LEN: usize = 10;
/// The smallest value of the length field: type and id, with an empty body.
const MIN_LEN: usize = HEADER_LEN - 4;

/// A decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The request id: chosen by the requester, echoed by the response; 0 for unsolicited
    /// pushes and stream-level errors.
    pub id: u32,
    /// The message.
    pub message: Message,
}

/// Appends one frame to `out`. On error nothing is appended.
///
/// # Errors
/// A string or list over its limit, or a frame over [`MAX_FRAME`].
pub fn encode(id: u32, message: &Message, out: &mut BytesMut) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_u32(0);
    out.put_u16(message.type_code());
    out.put_u32(id);
    if let Err(e) = message.put_body(out) {
        out.truncate(start);
        return Err(e);
    }
    let total = out.len() - start;
    if total > MAX_FRAME {
        out.truncate(start);
        return Err(EncodeError::FrameTooLarge {
            len: total,
            max: MAX_FRAME,
        });
    }
    let len = (total - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Encodes one frame into a new buffer.
///
/// # Errors
/// As [`encode`].
pub fn to_bytes(id: u32, message: &Message) -> Result<BytesMut, EncodeError> {
    let mut out = BytesMut::with_capacity(64);
    encode(id, message, &mut out)?;
    Ok(out)
}

/// Takes one frame off the front of `buf`.
///
/// - `Ok(None)`: not a whole frame yet; `buf` is untouched (read more and call again).
/// - `Ok(Some(frame))`: the frame's bytes were consumed.
/// - `Err(e)` with `e.recoverable()`: the header was sound and its bytes were consumed, but the
///   body was not a valid message; answer `e.status()` to `e.id` and go on.
/// - `Err(e)` otherwise: the length field is out of range and framing is lost; answer with id 0
///   and close the stream.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len + 4 > MAX_FRAME {
        return Err(FrameError {
            id: 0,
            type_code: 0,
            kind: FrameErrorKind::TooLarge {
                len: len + 4,
                max: MAX_FRAME,
            },
        });
    }
    if len < MIN_LEN {
        return Err(FrameError {
            id: 0,
            type_code: 0,
            kind: FrameErrorKind::TooShort { len },
        });
    }
    if buf.len() < 4 + len {
        // Reserve once for the rest of this frame, so that a large frame arriving in pieces is
        // not copied over and over; bounded by MAX_FRAME above.
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    let type_code = u16::from_be_bytes([buf[4], buf[5]]);
    let id = u32::from_be_bytes([buf[6], buf[7], buf[8], buf[9]]);
    let result = Message::get_body(type_code, &buf[HEADER_LEN..4 + len]);
    buf.advance(4 + len);
    match result {
        Ok(message) => Ok(Some(Frame { id, message })),
        Err(e) => Err(FrameError {
            id,
            type_code,
            kind: FrameErrorKind::Body(e),
        }),
    }
}

/// Decodes exactly one frame from a complete byte string (tests, tools).
///
/// # Errors
/// As [`decode`], plus `Truncated` when the bytes end early and `Trailing` when bytes remain.
pub fn decode_exact(bytes: &[u8]) -> Result<Frame, FrameError> {
    let mut buf = BytesMut::from(bytes);
    match decode(&mut buf)? {
        None => Err(FrameError {
            id: 0,
            type_code: 0,
            kind: FrameErrorKind::Body(DecodeError::Truncated),
        }),
        Some(frame) if buf.is_empty() => Ok(frame),
        Some(frame) => Err(FrameError {
            id: frame.id,
            type_code: frame.message.type_code(),
            kind: FrameErrorKind::Body(DecodeError::Trailing(buf.len())),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::Status;

    #[test]
    fn partial_frames_wait_and_leave_the_buffer_alone() {
        let bytes = to_bytes(7, &Message::Ping {}).unwrap();
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &bytes[..cut]);
        }
        let mut buf = bytes.clone();
        assert_eq!(
            decode(&mut buf),
            Ok(Some(Frame {
                id: 7,
                message: Message::Ping {}
            }))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn oversize_length_is_refused_before_waiting_for_it() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        let e = decode(&mut buf).unwrap_err();
        assert!(!e.recoverable());
        assert_eq!(e.status(), Status::FRAME_TOO_LARGE);
        assert!(buf.capacity() < 1024, "must not reserve for a lying length");
    }

    #[test]
    fn a_bad_body_is_skipped_and_the_next_frame_decodes() {
        let mut buf = BytesMut::new();
        // type 0x0002 (Ping) with one stray body byte, then a good frame.
        buf.put_u32(7);
        buf.put_u16(0x0002);
        buf.put_u32(41);
        buf.put_u8(0xaa);
        encode(42, &Message::Ping {}, &mut buf).unwrap();
        let e = decode(&mut buf).unwrap_err();
        assert!(e.recoverable());
        assert_eq!((e.id, e.type_code), (41, 0x0002));
        assert_eq!(e.kind, FrameErrorKind::Body(DecodeError::Trailing(1)));
        assert_eq!(decode(&mut buf).unwrap().unwrap().id, 42);
    }

    #[test]
    fn unknown_type_is_reported_with_its_id() {
        let mut buf = BytesMut::new();
        buf.put_u32(6);
        buf.put_u16(0x7777);
        buf.put_u32(9);
        let e = decode(&mut buf).unwrap_err();
        assert_eq!(e.status(), Status::UNKNOWN_TYPE);
        assert_eq!(e.id, 9);
        assert!(buf.is_empty());
    }

    #[test]
    fn encoder_refuses_over_limit_fields_and_appends_nothing() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let msg = Message::Status {
            user: "a".repeat(crate::limits::MAX_USER + 1),
        };
        assert!(encode(1, &msg, &mut out).is_err());
        assert_eq!(&out[..], b"keep");
    }
}
