//! Every test vector of RFC 6287 Appendix C, verbatim.

use sls_protocol::ocra::{pin_hash, HashAlg, OcraInput, OcraSuite};

const KEY20: &str = "3132333435363738393031323334353637383930";
const KEY32: &str = "3132333435363738393031323334353637383930313233343536373839303132";
const KEY64: &str = "31323334353637383930313233343536373839303132333435363738393031323334353637383930313233343536373839303132333435363738393031323334";
const T: u64 = 0x132d0b6;

fn key(h: &str) -> Vec<u8> {
    hex::decode(h).unwrap()
}

fn check(
    suite: &str,
    key_hex: &str,
    counter: u64,
    question: &str,
    pin: bool,
    timestamp: Option<u64>,
    expected: &str,
) {
    let s: OcraSuite = suite.parse().unwrap();
    let ph = pin_hash(HashAlg::Sha1, b"1234");
    let input = OcraInput {
        counter,
        question,
        pin_hash: pin.then_some(ph.as_bytes()),
        session: None,
        timestamp,
    };
    let k = key(key_hex);
    let got = s.compute(&k, &input).unwrap();
    assert_eq!(got.as_str(), expected, "{suite} C={counter} Q={question}");
    assert!(s.verify(&k, &input, expected).unwrap());
    // One digit off is wrong; the same digits with a space are wrong too.
    let mut off = expected.as_bytes().to_vec();
    off[0] = if off[0] == b'9' { b'0' } else { off[0] + 1 };
    assert!(!s
        .verify(&k, &input, std::str::from_utf8(&off).unwrap())
        .unwrap());
    assert!(!s
        .verify(&k, &input, &format!(" {}", &expected[1..]))
        .unwrap());
}

#[test]
fn pin_1234_sha1() {
    assert_eq!(
        hex::encode(pin_hash(HashAlg::Sha1, b"1234").as_bytes()),
        "7110eda4d09e062aa5e4a390b0a572ac0d2c0220"
    );
}

#[test]
fn c1_one_way_sha1_6_qn08() {
    let expected = [
        "237653", "243178", "653583", "740991", "608993", "388898", "816933", "224598", "750600",
        "294470",
    ];
    for (i, e) in expected.iter().enumerate() {
        check(
            "OCRA-1:HOTP-SHA1-6:QN08",
            KEY20,
            0,
            &i.to_string().repeat(8),
            false,
            None,
            e,
        );
    }
}

#[test]
fn c1_one_way_sha256_8_c_qn08_psha1() {
    let expected = [
        "65347737", "86775851", "78192410", "71565254", "10104329", "65983500", "70069104",
        "91771096", "75011558", "08522129",
    ];
    for (c, e) in expected.iter().enumerate() {
        check(
            "OCRA-1:HOTP-SHA256-8:C-QN08-PSHA1",
            KEY32,
            c as u64,
            "12345678",
            true,
            None,
            e,
        );
    }
}

#[test]
fn c1_one_way_sha256_8_qn08_psha1() {
    let expected = ["83238735", "01501458", "17957585", "86776967", "86807031"];
    for (i, e) in expected.iter().enumerate() {
        check(
            "OCRA-1:HOTP-SHA256-8:QN08-PSHA1",
            KEY32,
            0,
            &i.to_string().repeat(8),
            true,
            None,
            e,
        );
    }
}

#[test]
fn c1_one_way_sha512_8_c_qn08() {
    let expected = [
        "07016083", "63947962", "70123924", "25341727", "33203315", "34205738", "44343969",
        "51946085", "20403879", "31409299",
    ];
    for (i, e) in expected.iter().enumerate() {
        check(
            "OCRA-1:HOTP-SHA512-8:C-QN08",
            KEY64,
            i as u64,
            &i.to_string().repeat(8),
            false,
            None,
            e,
        );
    }
}

#[test]
fn c1_one_way_sha512_8_qn08_t1m() {
    let expected = ["95209754", "55907591", "22048402", "24218844", "36209546"];
    for (i, e) in expected.iter().enumerate() {
        check(
            "OCRA-1:HOTP-SHA512-8:QN08-T1M",
            KEY64,
            0,
            &i.to_string().repeat(8),
            false,
            Some(T),
            e,
        );
    }
}

fn mutual(i: usize, server_first: bool) -> String {
    let cli = format!("CLI2222{i}");
    let srv = format!("SRV1111{i}");
    if server_first {
        format!("{cli}{srv}")
    } else {
        format!("{srv}{cli}")
    }
}

#[test]
fn c2_mutual_sha256_8_qa08() {
    let server = ["28247970", "01984843", "65387857", "03351211", "83412541"];
    let client = ["15510767", "90175646", "33777207", "95285278", "28934924"];
    for i in 0..5 {
        check(
            "OCRA-1:HOTP-SHA256-8:QA08",
            KEY32,
            0,
            &mutual(i, true),
            false,
            None,
            server[i],
        );
        check(
            "OCRA-1:HOTP-SHA256-8:QA08",
            KEY32,
            0,
            &mutual(i, false),
            false,
            None,
            client[i],
        );
    }
}

#[test]
fn c2_mutual_sha512_8_qa08_and_psha1() {
    let server = ["79496648", "76831980", "12250499", "90856481", "12761449"];
    let client = ["18806276", "70020315", "01600026", "18951020", "32528969"];
    for i in 0..5 {
        check(
            "OCRA-1:HOTP-SHA512-8:QA08",
            KEY64,
            0,
            &mutual(i, true),
            false,
            None,
            server[i],
        );
        check(
            "OCRA-1:HOTP-SHA512-8:QA08-PSHA1",
            KEY64,
            0,
            &mutual(i, false),
            true,
            None,
            client[i],
        );
    }
}

#[test]
fn c3_plain_signature() {
    let a = ["53095496", "04110475", "31331128", "76028668", "46554205"];
    let b = ["77537423", "31970405", "10235557", "95213541", "65360607"];
    for i in 0..5 {
        check(
            "OCRA-1:HOTP-SHA256-8:QA08",
            KEY32,
            0,
            &format!("SIG1{i}000"),
            false,
            None,
            a[i],
        );
        check(
            "OCRA-1:HOTP-SHA512-8:QA10-T1M",
            KEY64,
            0,
            &format!("SIG1{i}00000"),
            false,
            Some(T),
            b[i],
        );
    }
}

#[test]
fn missing_inputs_are_errors_not_answers() {
    let s: OcraSuite = "OCRA-1:HOTP-SHA256-8:QN08-PSHA1".parse().unwrap();
    let input = OcraInput {
        question: "12345678",
        ..OcraInput::default()
    };
    assert!(s.compute(&key(KEY32), &input).is_err());
    let t: OcraSuite = "OCRA-1:HOTP-SHA512-8:QN08-T1M".parse().unwrap();
    assert!(t.compute(&key(KEY64), &input).is_err());
    let sess: OcraSuite = "OCRA-1:HOTP-SHA1-6:QN08-S064".parse().unwrap();
    let short = [0u8; 63];
    assert!(sess
        .compute(
            &key(KEY20),
            &OcraInput {
                session: Some(&short),
                ..input
            }
        )
        .is_err());
    assert!(sess
        .compute(
            &key(KEY20),
            &OcraInput {
                session: Some(&[0u8; 64]),
                ..input
            }
        )
        .is_ok());
    assert!(s.compute(&[], &input).is_err());
}
