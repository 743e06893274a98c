//! The device emulator, as a user runs it.

use std::process::Command;

const KEY32: &str = "3132333435363738393031323334353637383930313233343536373839303132";

fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sls-loadgen"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn ocra_prints_the_answer_alone() {
    let (ok, out, _) = run(&[
        "device",
        "ocra",
        "--suite",
        "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
        "--key",
        KEY32,
        "--question",
        "00000000",
        "--pin",
        "1234",
    ]);
    assert!(ok);
    assert_eq!(out, "83238735\n");
    // With the PIN's hash instead, and a counter (RFC 6287 C-QN08-PSHA1, C=1).
    let (ok, out, _) = run(&[
        "device",
        "ocra",
        "--suite",
        "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
        "--key",
        KEY32,
        "--question",
        "12345678",
        "--counter",
        "1",
        "--pin-hash",
        "7110eda4d09e062aa5e4a390b0a572ac0d2c0220",
    ]);
    assert!(ok);
    assert_eq!(out, "86775851\n");
    // With a timestamp (RFC 6287 QN08-T1M).
    let key64 = "31323334353637383930313233343536373839303132333435363738393031323334353637383930313233343536373839303132333435363738393031323334";
    let (ok, out, _) = run(&[
        "device",
        "ocra",
        "--suite",
        "OCRA-1:HOTP-SHA512-8:QN08-T1M",
        "--key",
        key64,
        "--question",
        "11111111",
        "--timestamp",
        "132d0b6",
    ]);
    assert!(ok);
    assert_eq!(out, "55907591\n");
}

#[test]
fn scc_prints_the_codes_concatenated() {
    let (ok, grid, _) = run(&["device", "scc-grid", "--secret", "00112233"]);
    assert!(ok);
    let lines: Vec<&str> = grid.lines().collect();
    assert_eq!(lines.len(), 100);
    let code = |i: usize| lines[i].split_whitespace().nth(1).unwrap().to_owned();
    let (ok, out, _) = run(&[
        "device",
        "scc",
        "--secret",
        "00112233",
        "--positions",
        "12,57",
    ]);
    assert!(ok);
    assert_eq!(out.trim(), format!("{}{}", code(12), code(57)));
}

#[test]
fn bad_arguments_get_a_clear_message_and_a_non_zero_exit() {
    for (args, needle) in [
        (
            vec![
                "device",
                "ocra",
                "--suite",
                "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
                "--key",
                KEY32,
                "--question",
                "00000000",
            ],
            "needs --pin",
        ),
        (
            vec![
                "device",
                "ocra",
                "--suite",
                "OCRA-9:HOTP-SHA256-8:QN08",
                "--key",
                KEY32,
                "--question",
                "00000000",
            ],
            "OCRA-1",
        ),
        (
            vec![
                "device",
                "ocra",
                "--suite",
                "OCRA-1:HOTP-SHA1-6:QN08",
                "--key",
                "zz",
                "--question",
                "00000000",
            ],
            "hexadecimal",
        ),
        (
            vec![
                "device",
                "ocra",
                "--suite",
                "OCRA-1:HOTP-SHA1-6:QN08",
                "--key",
                KEY32,
                "--question",
                "12ab5678",
            ],
            "question",
        ),
        (
            vec![
                "device",
                "ocra",
                "--suite",
                "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
                "--key",
                KEY32,
                "--question",
                "00000000",
                "--pin",
                "1",
                "--pin-hash",
                "00",
            ],
            "cannot be used with",
        ),
        (
            vec!["device", "scc", "--secret", "0011", "--positions", "100"],
            "not on the card",
        ),
    ] {
        let (ok, out, err) = run(&args);
        assert!(!ok, "{args:?} succeeded");
        assert!(out.is_empty(), "{args:?} printed {out:?}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
