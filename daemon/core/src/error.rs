//! Why the core refused a request (admin calls, R10 names), and why the store failed.

use sls_protocol::Status;

/// A request the core refused (admin calls, R10 names): each maps to one wire [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// R10.
    #[error("BAD CHARACTER")]
    BadCharacter,
    /// No such user.
    #[error("unknown user")]
    UnknownUser,
    /// No such device.
    #[error("unknown device")]
    UnknownDevice,
    /// Already exists.
    #[error("already exists")]
    AlreadyExists,
    /// The state forbids it.
    #[error("invalid state: {0}")]
    InvalidState(&'static str),
    /// R7.
    #[error("invalid PIN: {0}")]
    InvalidPin(&'static str),
    /// A key or suite is unusable.
    #[error("invalid credential: {0}")]
    InvalidCredential(String),
    /// R17(c).
    #[error("Less secure device")]
    LessSecureDevice,
    /// R17(a).
    #[error("Different identification information")]
    DifferentIdentification,
    /// R17(b).
    #[error("a participant has a temporary device")]
    TemporaryDevice,
    /// R18: names the user who holds the right.
    #[error("only the primary user {primary} may opt back in")]
    NotPrimaryUser {
        /// The primary user.
        primary: String,
    },
    /// R22.
    #[error("bad activation token")]
    BadToken,
    /// R22.
    #[error("bad phone number: digits only, no trunk prefix")]
    BadPhone,
    /// A bound is reached.
    #[error("capacity reached")]
    Capacity,
    /// R17: the owner's answer was wrong.
    #[error("owner's answer rejected")]
    OwnerNotVerified,
    /// R20.
    #[error("equity under the DSC+ threshold")]
    NotEligible,
    /// The device (or the source of a share copy, R17) is revoked: never usable again.
    #[error("device revoked")]
    DeviceRevoked,
    /// The device (or the source of a share copy, R17) is suspended until resumed.
    #[error("device suspended")]
    DeviceSuspended,
    /// R17: requester and owner are one user.
    #[error("a user does not share a device with itself")]
    SelfShare,
    /// The cap on devices per user.
    #[error("the user holds as many devices as allowed")]
    TooManyDevices,
    /// R16: a replaced (retired) device does not come back.
    #[error("device replaced by a newer one")]
    DeviceRetired,
    /// R3: no withdrawal of the user under that transaction.
    #[error("no such withdrawal")]
    UnknownWithdrawal,
    /// R18: the account has no primary user who could opt the user back in (client
    /// services may: `OptInOverride`).
    #[error("the account has no primary user: client services may opt the user back in")]
    NoPrimaryUser,
    /// R18: the override is for an account without a primary user.
    #[error("the account has a primary user")]
    HasPrimaryUser,
}

impl CoreError {
    /// The wire status.
    pub fn status(&self) -> Status {
        match self {
            CoreError::BadCharacter => Status::BAD_CHARACTER,
            CoreError::UnknownUser => Status::UNKNOWN_USER,
            CoreError::UnknownDevice => Status::UNKNOWN_DEVICE,
            CoreError::AlreadyExists => Status::ALREADY_EXISTS,
            CoreError::InvalidState(_) => Status::INVALID_STATE,
            CoreError::InvalidPin(_) => Status::INVALID_PIN,
            CoreError::InvalidCredential(_) => Status::INVALID_CREDENTIAL,
            CoreError::LessSecureDevice => Status::LESS_SECURE_DEVICE,
            CoreError::DifferentIdentification => Status::DIFFERENT_IDENTIFICATION,
            CoreError::TemporaryDevice => Status::TEMPORARY_DEVICE,
            CoreError::NotPrimaryUser { .. } | CoreError::NoPrimaryUser => Status::NOT_PRIMARY_USER,
            CoreError::BadToken => Status::BAD_TOKEN,
            CoreError::BadPhone => Status::BAD_PHONE,
            CoreError::Capacity => Status::CAPACITY,
            CoreError::OwnerNotVerified => Status::OWNER_NOT_VERIFIED,
            CoreError::NotEligible => Status::NOT_ELIGIBLE,
            CoreError::DeviceRevoked => Status::DEVICE_REVOKED,
            CoreError::DeviceSuspended => Status::DEVICE_SUSPENDED,
            CoreError::SelfShare => Status::SELF_SHARE,
            CoreError::TooManyDevices => Status::TOO_MANY_DEVICES,
            CoreError::DeviceRetired => Status::DEVICE_RETIRED,
            CoreError::UnknownWithdrawal => Status::UNKNOWN_WITHDRAWAL,
            CoreError::HasPrimaryUser => Status::HAS_PRIMARY_USER,
        }
    }
}

/// The store could not read or record state: the request is refused, never answered as if it
/// had been recorded (fail closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The durable log or the shared store refuses records or reads (a failed write or fsync,
    /// a full queue, closed; a server that does not answer or lost its replicas): the request
    /// may be retried.
    #[error("state could not be recorded: {0}")]
    Unavailable(#[source] Cause),
    /// A stored record could not be read.
    #[error("stored state is damaged: {0}")]
    Damaged(#[source] Cause),
}

/// Why a store failed: where (a text for the log) and the error underneath, when there is one,
/// kept as it was ([`std::error::Error::source`]).
#[derive(Clone)]
pub struct Cause {
    what: String,
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// A cause with no error underneath.
    pub fn new(what: impl Into<String>) -> Cause {
        Cause {
            what: what.into(),
            source: None,
        }
    }

    /// `source`, met while doing `what`.
    pub fn of(
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Cause {
        Cause {
            what: what.into(),
            source: Some(std::sync::Arc::new(source)),
        }
    }

    /// Where it failed, without the error underneath.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.source {
            None => f.write_str(&self.what),
            Some(e) => write!(f, "{}: {e}", self.what),
        }
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cause")
            .field("what", &self.what)
            .field("source", &self.source)
            .finish()
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Two causes are the same if they read the same (an error underneath need not be comparable).
impl PartialEq for Cause {
    fn eq(&self, other: &Cause) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Cause {}

impl From<String> for Cause {
    fn from(what: String) -> Cause {
        Cause::new(what)
    }
}

impl From<&str> for Cause {
    fn from(what: &str) -> Cause {
        Cause::new(what)
    }
}

/// A rule refused the request, or the store failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The rules refused it: an answer for the caller.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The store failed: the server's fault, not the caller's.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    /// The wire status.
    pub fn status(&self) -> Status {
        match self {
            Error::Core(e) => e.status(),
            Error::Store(StoreError::Unavailable(_)) => Status::UNAVAILABLE,
            Error::Store(_) => Status::INTERNAL,
        }
    }
}
