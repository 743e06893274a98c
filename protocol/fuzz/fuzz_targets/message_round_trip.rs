//! Any message the `arbitrary` generators build encodes within its limits or is refused, and
//! decodes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sls_protocol::{frame, Frame, Message};

fuzz_target!(|input: (u32, Message)| {
    let (id, message) = input;
    if let Ok(bytes) = frame::to_bytes(id, &message) {
        assert_eq!(frame::decode_exact(&bytes).expect("round trip"), Frame { id, message });
    }
});
