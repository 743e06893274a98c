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

/// PROTOCOL.md §4's tables and the code agree: every message type has its row, `| 0xCODE |
/// Name`, and every row names a type the code has, with the same code (a version marker such
/// as `(v4)` after the name is allowed).
#[test]
fn protocol_md_message_tables_match_the_code() {
    let doc = include_str!("../../PROTOCOL.md");
    let start = doc.find("## 4. Messages").expect("§4");
    let end = doc[start..]
        .find("\n## 5.")
        .map_or(doc.len(), |e| start + e);
    let mut rows = std::collections::BTreeMap::new();
    for line in doc[start..end].lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (Some(code), Some(name)) = (cells.get(1), cells.get(2)) else {
            continue;
        };
        let Some(hex) = code.strip_prefix("0x") else {
            continue;
        };
        let Ok(code) = u16::from_str_radix(hex, 16) else {
            continue;
        };
        let name = name.split_whitespace().next().unwrap_or_default();
        if !name.starts_with(|c: char| c.is_ascii_uppercase()) {
            continue; // a status or another table's row
        }
        rows.insert(code, name.to_owned());
    }
    for (code, name, _) in sls_protocol::Message::TYPES {
        assert_eq!(
            rows.get(code).map(String::as_str),
            Some(*name),
            "{name} ({code:#06x}) has no row `| {code:#06x} | {name}` in PROTOCOL.md §4"
        );
    }
    for (code, name) in &rows {
        assert!(
            sls_protocol::Message::TYPES
                .iter()
                .any(|(c, n, _)| c == code && n == name),
            "PROTOCOL.md §4 has a row {code:#06x} {name} that the code does not"
        );
    }
}
