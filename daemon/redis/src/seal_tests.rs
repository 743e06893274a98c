#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;

use super::*;

const KEY_HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn damaged(r: Result<Zeroizing<Vec<u8>>, StoreError>) -> String {
    match r {
        Err(StoreError::Damaged(m)) => m.to_string(),
        other => panic!("not Damaged: {other:?}"),
    }
}

#[test]
fn a_sealed_value_opens_at_its_key_only() {
    let s = Sealer::new(&SealKey::generate());
    let plain = b"device secret 0123456789abcdef, user ann";
    let v = s.seal(b"{p:u:ann}", plain).unwrap();
    assert_eq!(v.len(), plain.len() + OVERHEAD);
    assert_eq!(v[0], FORMAT);
    assert!(!v.windows(13).any(|w| w == b"device secret"));
    assert_eq!(&**s.open(b"{p:u:ann}", &v).unwrap(), plain);
    // Copied onto another user's key, or another prefix: it does not open.
    let m = damaged(s.open(b"{p:u:bob}", &v));
    assert!(
        m.contains("{p:u:bob}") && m.contains("does not open"),
        "{m}"
    );
    damaged(s.open(b"{q:u:ann}", &v));
}

#[test]
fn another_key_a_flipped_bit_a_short_value_or_an_unknown_format_do_not_open() {
    let s = Sealer::new(&SealKey::generate());
    let v = s.seal(b"k", b"state").unwrap();
    damaged(Sealer::new(&SealKey::generate()).open(b"k", &v));
    for i in 0..v.len() {
        let mut w = v.clone();
        w[i] ^= 0x40;
        damaged(s.open(b"k", &w));
    }
    damaged(s.open(b"k", &v[..OVERHEAD - 1]));
    damaged(s.open(b"k", b""));
    // Plain bytes stored by an older build are not read as plain.
    damaged(s.open(
        b"k",
        b"\x00plain user state, long enough to pass the length check",
    ));
}

#[test]
fn nonces_never_repeat_in_one_store_and_the_prefix_is_drawn_again_when_the_counter_wraps() {
    let s = Sealer::new(&SealKey::generate());
    let nonce = |v: &[u8]| v[1..1 + NONCE].to_vec();
    let a = s.seal(b"k", b"same").unwrap();
    let b = s.seal(b"k", b"same").unwrap();
    assert_ne!(nonce(&a), nonce(&b));
    assert_ne!(a, b, "the same state sealed twice differs");
    assert_eq!(a[1..9], b[1..9], "one prefix per store start");
    assert_eq!(b[9..13], 1u32.to_be_bytes());
    let prefix = s.nonces.lock().prefix;
    s.nonces.lock().counter = u32::MAX - 1;
    let last = s.seal(b"k", b"x").unwrap();
    assert_eq!(last[1..9], prefix.to_be_bytes());
    assert_eq!(last[9..13], (u32::MAX - 1).to_be_bytes());
    let wrapped = s.seal(b"k", b"x").unwrap();
    assert_ne!(
        wrapped[1..9],
        prefix.to_be_bytes(),
        "a new prefix after the wrap"
    );
    assert_eq!(wrapped[9..13], 0u32.to_be_bytes());
    assert_eq!(&**s.open(b"k", &wrapped).unwrap(), b"x");
}

#[test]
fn a_key_file_is_64_hex_digits_and_an_optional_newline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let s = |k: &SealKey| Sealer::new(k).seal(b"k", b"v").unwrap();
    std::fs::write(&path, KEY_HEX).unwrap();
    let a = SealKey::load(&path).unwrap();
    std::fs::write(&path, format!("{KEY_HEX}\n")).unwrap();
    let b = SealKey::load(&path).unwrap();
    // The same key: what one seals the other opens.
    assert_eq!(&**Sealer::new(&b).open(b"k", &s(&a)).unwrap(), b"v");
    assert_eq!(*a.0, *b.0);
    assert_eq!(a.0[31], 0x1f);
    assert_eq!(format!("{a:?}"), "SealKey(..)");
}

#[test]
fn a_bad_key_file_is_a_clear_error_that_names_the_file_and_nothing_of_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let secretish = "5ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ec7e75ecZ";
    for content in [
        &KEY_HEX[..62],
        &format!("{KEY_HEX}00"),
        &format!("{KEY_HEX}\n\n"),
        &format!(" {KEY_HEX}"),
        secretish,
        "",
    ] {
        std::fs::write(&path, content).unwrap();
        let e = SealKey::load(&path).unwrap_err();
        assert!(
            matches!(e, SealKeyError::Format { .. }),
            "{content:?}: {e:?}"
        );
        let shown = format!("{e} {e:?}");
        assert!(shown.contains(&*path.to_string_lossy()), "{shown}");
        assert!(shown.contains("64 hex digits"), "{shown}");
        assert!(
            !shown.contains("5ec7e") && !shown.contains("0102"),
            "{shown}"
        );
    }
    let missing = dir.path().join("missing.key");
    let e = SealKey::load(&missing).unwrap_err();
    assert!(matches!(e, SealKeyError::Read { .. }));
    assert!(e.to_string().contains("missing.key"), "{e}");
}

#[test]
fn load_or_create_makes_a_0600_key_once_and_then_loads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let a = SealKey::load_or_create(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    assert_eq!(std::fs::read(&path).unwrap().len(), 65);
    let b = SealKey::load_or_create(&path).unwrap();
    assert_eq!(*a.0, *b.0);
    assert_eq!(*SealKey::load(&path).unwrap().0, *a.0);
    // Nothing left beside it.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn load_or_create_racing_threads_all_get_the_one_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let keys: Vec<[u8; 32]> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8)
            .map(|_| s.spawn(|| *SealKey::load_or_create(&path).unwrap().0))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(keys.iter().all(|k| *k == keys[0]));
    assert_eq!(*SealKey::load(&path).unwrap().0, keys[0]);
}
