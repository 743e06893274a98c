//! PROTOCOL.md's hex examples are real frames: each decodes, whole, to the message type its
//! block names, and re-encodes to the same bytes.

use sls_protocol::frame;

#[test]
fn protocol_md_hex_examples_decode() {
    let doc = include_str!("../../PROTOCOL.md");
    let mut checked = 0;
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(name) = line.strip_prefix("```hex ") else {
            continue;
        };
        let mut hex = String::new();
        for body in lines.by_ref() {
            if body.starts_with("```") {
                break;
            }
            hex.push_str(body);
        }
        let bytes: Vec<u8> = hex
            .split_whitespace()
            .map(|b| {
                u8::from_str_radix(b, 16).unwrap_or_else(|_| panic!("bad hex {b:?} in {name}"))
            })
            .collect();
        let f = frame::decode_exact(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(f.message.type_name(), name.trim());
        assert_eq!(
            &frame::to_bytes(f.id, &f.message).unwrap()[..],
            &bytes[..],
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} examples found");
}
