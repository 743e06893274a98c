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
    /// The durable log refuses records (a failed write or fsync, a full queue, closed).
    #[error("state could not be recorded: {0}")]
    Unavailable(String),
    /// A stored record could not be read.
    #[error("stored state is damaged: {0}")]
    Damaged(String),
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
