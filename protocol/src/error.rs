//! Codec errors, each mapped to its wire [`Status`].

use crate::status::Status;

/// Why a frame body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body ended before a field did.
    #[error("truncated field")]
    Truncated,
    /// Bytes were left after the last field.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
    /// A length or count is over its field's limit.
    #[error("length {len} over the limit of {max}")]
    TooLong {
        /// The length on the wire.
        len: usize,
        /// The field's limit.
        max: usize,
    },
    /// A text field is not UTF-8.
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// A tag or enum byte names nothing.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// The message type is unknown.
    #[error("unknown message type {0:#06x}")]
    UnknownType(u16),
}

impl DecodeError {
    /// The status a daemon answers this error with.
    pub fn status(&self) -> Status {
        match self {
            DecodeError::InvalidUtf8 => Status::INVALID_UTF8,
            DecodeError::UnknownType(_) => Status::UNKNOWN_TYPE,
            _ => Status::MALFORMED_FRAME,
        }
    }
}

/// Why a frame could not be decoded, with what the receiver needs to answer it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("frame {id} (type {type_code:#06x}): {kind}")]
pub struct FrameError {
    /// The request id from the header (0 when the header itself was bad).
    pub id: u32,
    /// The message type from the header (0 when the header itself was bad).
    pub type_code: u16,
    /// What was wrong.
    pub kind: FrameErrorKind,
}

impl FrameError {
    /// Whether the stream can go on: the frame's bytes were consumed and the next frame starts
    /// right after them. When false, framing is lost and the stream must be closed.
    pub fn recoverable(&self) -> bool {
        matches!(self.kind, FrameErrorKind::Body(_))
    }

    /// The status a daemon answers this error with.
    pub fn status(&self) -> Status {
        match self.kind {
            FrameErrorKind::TooLarge { .. } => Status::FRAME_TOO_LARGE,
            FrameErrorKind::TooShort { .. } => Status::MALFORMED_FRAME,
            FrameErrorKind::Body(e) => e.status(),
        }
    }
}

/// The kinds of [`FrameError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameErrorKind {
    /// The length field is over [`crate::limits::MAX_FRAME`]: framing is lost.
    #[error("frame length {len} over the limit of {max}")]
    TooLarge {
        /// The length on the wire.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The length field is under the header's own size: framing is lost.
    #[error("frame length {len} under the header size")]
    TooShort {
        /// The length on the wire.
        len: usize,
    },
    /// The header is sound but the body is not; the frame was skipped.
    #[error(transparent)]
    Body(#[from] DecodeError),
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or list is over its field's limit.
    #[error("length {len} over the limit of {max}")]
    TooLong {
        /// The value's length.
        len: usize,
        /// The field's limit.
        max: usize,
    },
    /// The whole frame is over [`crate::limits::MAX_FRAME`].
    #[error("frame of {len} bytes over the limit of {max}")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The limit.
        max: usize,
    },
}
