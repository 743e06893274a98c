//! What can go wrong, as values a caller matches on.
//!
//! A verdict is never an error: a wrong answer is `Ok(Verdict::Rejected { .. })`. An error is a
//! request the daemon refused with a status ([`ClientError::Refused`]), or one whose answer
//! never came (unreachable, timed out, connection lost).

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use sls_protocol::{Message, Role, Status};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The daemon refused the request with this status (an `Error` frame, PROTOCOL.md §6).
    /// `message` is English for logs; act on `status`.
    #[error("refused: {} ({:#06x}): {message}", status_name(*status), status.0)]
    Refused {
        /// The status code.
        status: Status,
        /// The daemon's text, for people.
        message: String,
    },
    /// No node answered: each node tried, with why.
    #[error("{0}")]
    Unreachable(Unreachable),
    /// No answer within the call timeout. A request that changes state may have been handled.
    #[error("no answer within {0:?} (the request may have been handled)")]
    Timeout(Duration),
    /// The connection was lost with the request in flight, and the request is not one that
    /// may be sent again (it may have been handled: an `Answer` may have been judged).
    #[error("connection lost before the answer ({0}); the request may have been handled")]
    Lost(String),
    /// The daemon answered with a message this call does not expect (a daemon newer or older
    /// than this library).
    #[error("unexpected answer: {}", .0.type_name())]
    Unexpected(Box<Message>),
    /// The daemon's answer could not be decoded by this library (a daemon newer than it).
    #[error("cannot decode the answer: {0}")]
    Decode(String),
    /// The request could not be encoded (a field over its limit).
    #[error("cannot encode the request: {0}")]
    Encode(#[from] sls_protocol::EncodeError),
    /// The daemon granted another role than the certificate was made for.
    #[error("asked for the {} role, the daemon granted {}", .asked.name(), .granted.name())]
    Role {
        /// The role asked for.
        asked: Role,
        /// The role granted.
        granted: Role,
    },
    /// The client could not be set up.
    #[error(transparent)]
    Setup(#[from] SetupError),
}

impl ClientError {
    /// The status of a refusal, if this is one.
    pub fn status(&self) -> Option<Status> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether no node could be reached (as opposed to a node that answered).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }
}

fn status_name(s: Status) -> &'static str {
    s.describe().unwrap_or("status newer than this client")
}

/// Every node tried, and why each failed.
#[derive(Debug, Clone)]
pub struct Unreachable {
    /// (the node as configured, the reason), in the order tried.
    pub attempts: Vec<(String, String)>,
}

impl fmt::Display for Unreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no slsd answering")?;
        for (i, (node, why)) in self.attempts.iter().enumerate() {
            let sep = if i == 0 { " at " } else { "; at " };
            if why.starts_with("within ") {
                write!(f, "{sep}{node} {why}")?;
            } else {
                write!(f, "{sep}{node} ({why})")?;
            }
        }
        Ok(())
    }
}

/// Errors of setting a client up: files, certificates, configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", .path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file could not be parsed.
    #[error("cannot read the {what}: {source}")]
    Pem {
        /// Which file.
        what: &'static str,
        /// Why.
        source: rustls::pki_types::pem::Error,
    },
    /// TLS configuration failed.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// QUIC configuration failed.
    #[error("QUIC: {0}")]
    Quic(String),
    /// A node's address or a server name is not usable.
    #[error("{0}")]
    Config(String),
    /// The client's UDP socket could not be opened.
    #[error("client socket: {0}")]
    Socket(std::io::Error),
}

/// A message that is not the answer a call expects: a refusal, or [`ClientError::Unexpected`].
pub(crate) fn unexpected(m: Message) -> ClientError {
    match m {
        Message::Error { status, message } => ClientError::Refused { status, message },
        other => ClientError::Unexpected(Box::new(other)),
    }
}

/// A duration as people write it: `5s`, `1.5s`, `250ms`.
pub(crate) fn humanize(d: Duration) -> String {
    // To the nearest millisecond: a deadline computed a few microseconds apart reads the same.
    let ms = (d.as_micros() + 500) / 1000;
    if ms >= 1000 && ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms >= 1000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}
