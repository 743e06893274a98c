//! Any byte string, fed to the frame decoder as a stream: never a panic, never a frame that
//! does not re-encode to the bytes it came from.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sls_protocol::frame;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    loop {
        let before = buf.clone();
        match frame::decode(&mut buf) {
            Ok(Some(f)) => {
                let used = before.len() - buf.len();
                let again = frame::to_bytes(f.id, &f.message).expect("a decoded frame re-encodes");
                assert_eq!(&again[..], &before[..used], "decode/encode is canonical");
            }
            Ok(None) => break,
            Err(e) if e.recoverable() => assert!(buf.len() < before.len()),
            Err(_) => break,
        }
    }
});
