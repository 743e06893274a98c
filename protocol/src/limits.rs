//! Hard limits on every length on the wire. A decoder checks each one before it allocates.

/// Most bytes in one frame, header included.
pub const MAX_FRAME: usize = 64 * 1024;
/// Most bytes in one frame, header included, on a stream of an IB Key app connection that has
/// proven no key yet: the messages it may send before (Hello, DeviceHello, DeviceProve, Ping)
/// are all far smaller.
pub const MAX_FRAME_UNPROVEN: usize = 1024;
/// Most bytes in a user name (R10).
pub const MAX_USER: usize = 32;
/// Most bytes in an answer typed by a user or computed by a device.
pub const MAX_ANSWER: usize = 64;
/// Most bytes in a device secret (an OCRA key is at most 64 bytes, RFC 6287).
pub const MAX_SECRET: usize = 64;
/// Most bytes in an OCRA suite string.
pub const MAX_SUITE: usize = 64;
/// Most bytes in a PIN (R7: a DSC+ PIN is 4 digits, an IB Key PIN 4 to 6 characters).
pub const MAX_PIN: usize = 16;
/// Most bytes in a short text field (an entity, a document number, a client name, a reason).
pub const MAX_TEXT: usize = 128;
/// Most entries in a list (devices of a user, positions of a card challenge, counters).
pub const MAX_LIST: usize = 64;
/// Most records in one bulk enrolment frame.
pub const MAX_BULK: usize = 512;
/// Most bytes in a MAC or proof.
pub const MAX_MAC: usize = 64;
/// Most requests in flight on one stream that a daemon must accept (it may announce more).
pub const MIN_IN_FLIGHT: u32 = 256;
