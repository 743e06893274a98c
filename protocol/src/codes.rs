//! Temporary codes (R10, R13), SMS passcodes and IB Key activation tokens (R22).
//!
//! # Security
//! Comparisons are constant-time; the daemon stores a temporary code's digest, not the code.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The alphabet of temporary codes: upper-case letters and digits without 0, O, 1 and I.
pub const TEMP_CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Characters in a temporary code.
pub const TEMP_CODE_LEN: usize = 8;

/// A temporary code from 16 bytes of caller-supplied randomness (5 bits a character from a
/// 32-letter alphabet: uniform, no bias).
pub fn temp_code_from_entropy(entropy: [u8; 16]) -> String {
    let bits = u128::from_be_bytes(entropy);
    (0..TEMP_CODE_LEN)
        .map(|i| TEMP_CODE_ALPHABET[((bits >> (5 * i)) & 0x1f) as usize] as char)
        .collect()
}

/// Why a typed code is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodeFormatError {
    /// Not the code's number of characters.
    #[error("code length {0}")]
    Length(usize),
    /// A character outside the code's alphabet: a space, a lower-case letter (R10: temporary
    /// codes are upper case and case sensitive), a 0/O/1/I.
    #[error("code has a character outside its alphabet")]
    Alphabet,
}

/// Checks a typed temporary code's shape (R10).
///
/// **Choice:** a lower-case letter is outside the alphabet, so `abcd2345` is malformed rather
/// than a different wrong code: the user sees why.
///
/// # Errors
/// Its length or a character.
pub fn check_temp_code_format(code: &str) -> Result<(), CodeFormatError> {
    if code.len() != TEMP_CODE_LEN {
        return Err(CodeFormatError::Length(code.len()));
    }
    if code.bytes().all(|b| TEMP_CODE_ALPHABET.contains(&b)) {
        Ok(())
    } else {
        Err(CodeFormatError::Alphabet)
    }
}

/// The digest the daemon stores for a temporary code.
pub fn code_digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

/// Whether `given` is the code with digest `expected`, in constant time.
pub fn temp_code_matches(expected: &[u8; 32], given: &str) -> bool {
    bool::from(code_digest(given).ct_eq(expected))
}

fn hotp_digits(key: &[u8], label: &[u8], nonce: u64, digits: u32) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(label);
    mac.update(&nonce.to_be_bytes());
    let tag = mac.finalize().into_bytes();
    let v = crate::ocra::truncate(&tag) % 10u32.pow(digits);
    format!("{v:0width$}", width = digits as usize)
}

/// A 6-digit SMS passcode for `nonce`, from a daemon-side key.
pub fn sms_code(key: &[u8], nonce: u64) -> String {
    hotp_digits(key, b"sls-sms-v1", nonce, 6)
}

/// An 8-digit IB Key activation token for `nonce` (R22), from a daemon-side key.
pub fn activation_token(key: &[u8], nonce: u64) -> String {
    hotp_digits(key, b"sls-activation-v1", nonce, 8)
}

/// Whether two short codes are equal, in constant time.
pub fn codes_equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r13_temp_codes_are_upper_case_and_unambiguous() {
        let c = temp_code_from_entropy([0xa5; 16]);
        assert_eq!(c.len(), 8);
        assert!(check_temp_code_format(&c).is_ok());
        assert_ne!(c, temp_code_from_entropy([0x5a; 16]));
        // Every character reachable: 5-bit groups map one to one.
        let mut seen = std::collections::HashSet::new();
        for i in 0..64u8 {
            let mut e = [0u8; 16];
            e[15] = i;
            e[14] = i.wrapping_mul(7);
            seen.extend(temp_code_from_entropy(e).chars());
        }
        assert!(seen.len() >= 30);
    }

    #[test]
    fn r10_lower_case_and_spaces_are_malformed() {
        assert_eq!(
            check_temp_code_format("abcd2345"),
            Err(CodeFormatError::Alphabet)
        );
        assert_eq!(
            check_temp_code_format("ABCD 345"),
            Err(CodeFormatError::Alphabet)
        );
        assert_eq!(
            check_temp_code_format("ABCD23450"),
            Err(CodeFormatError::Length(9))
        );
        assert_eq!(
            check_temp_code_format("ABCD0345"),
            Err(CodeFormatError::Alphabet)
        );
        assert!(check_temp_code_format("ABCD2345").is_ok());
        let d = code_digest("ABCD2345");
        assert!(temp_code_matches(&d, "ABCD2345"));
        assert!(!temp_code_matches(&d, "ABCD2346"));
    }

    #[test]
    fn sms_and_activation_codes() {
        let a = sms_code(b"k", 1);
        assert_eq!(a.len(), 6);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(a, sms_code(b"k", 1));
        assert_ne!(sms_code(b"k", 1), sms_code(b"k", 2));
        let t = activation_token(b"k", 1);
        assert_eq!(t.len(), 8);
        assert!(codes_equal(&t, &activation_token(b"k", 1)));
        assert!(!codes_equal(&t, &sms_code(b"k", 1)));
    }
}
