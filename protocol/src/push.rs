//! IB Key push approvals (R6) and the app's proof of possession of its key.
//!
//! ```text
//! proof = HMAC-SHA256(key, "sls-device-v1" || device (u32 BE) || nonce (32 bytes))
//! mac   = HMAC-SHA256(key, "sls-push-v1" || txn (16 bytes BE) || len(user) (u8) || user
//!                          || number (u8) || nonce (16 bytes) || method (u8) || approve (u8))
//! ```
//!
//! # Security
//! Verification is constant-time. The number is the one the user typed from the login screen
//! (number matching): the push does not carry it.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::types::{ApprovalMethod, DeviceId, TxnId};

fn mac_of(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// The app's signed answer to a push.
pub fn push_mac(
    key: &[u8],
    txn: TxnId,
    user: &str,
    number: u8,
    nonce: &[u8; 16],
    method: ApprovalMethod,
    approve: bool,
) -> [u8; 32] {
    let user = &user.as_bytes()[..user.len().min(255)];
    mac_of(
        key,
        &[
            b"sls-push-v1",
            &txn.0.to_be_bytes(),
            &[user.len() as u8],
            user,
            &[number],
            nonce,
            &[method.code()],
            &[u8::from(approve)],
        ],
    )
}

/// Whether `mac` is the app's answer to this push, in constant time.
#[allow(clippy::too_many_arguments)]
pub fn push_verify(
    key: &[u8],
    txn: TxnId,
    user: &str,
    number: u8,
    nonce: &[u8; 16],
    method: ApprovalMethod,
    approve: bool,
    mac: &[u8],
) -> bool {
    bool::from(
        push_mac(key, txn, user, number, nonce, method, approve)
            .as_slice()
            .ct_eq(mac),
    )
}

/// The app's proof of possession of its key, for the daemon's `nonce`.
pub fn device_proof(key: &[u8], device: DeviceId, nonce: &[u8; 32]) -> [u8; 32] {
    mac_of(key, &[b"sls-device-v1", &device.0.to_be_bytes(), nonce])
}

/// Whether `proof` proves possession of `key`, in constant time.
pub fn device_proof_verify(key: &[u8], device: DeviceId, nonce: &[u8; 32], proof: &[u8]) -> bool {
    bool::from(device_proof(key, device, nonce).as_slice().ct_eq(proof))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r6_push_mac_follows_the_documented_layout() {
        let key = [7u8; 32];
        let txn = TxnId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        let nonce = [9u8; 16];
        let mac = push_mac(
            &key,
            txn,
            "alice",
            42,
            &nonce,
            ApprovalMethod::Biometric,
            true,
        );
        let mut m = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        let mut data = b"sls-push-v1".to_vec();
        data.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
        data.push(5);
        data.extend_from_slice(b"alice");
        data.push(42);
        data.extend_from_slice(&nonce);
        data.push(2);
        data.push(1);
        m.update(&data);
        assert_eq!(mac.to_vec(), m.finalize().into_bytes().to_vec());
        assert!(push_verify(
            &key,
            txn,
            "alice",
            42,
            &nonce,
            ApprovalMethod::Biometric,
            true,
            &mac
        ));
        // Any field changed breaks it: the number, the decision, the method, the user.
        assert!(!push_verify(
            &key,
            txn,
            "alice",
            41,
            &nonce,
            ApprovalMethod::Biometric,
            true,
            &mac
        ));
        assert!(!push_verify(
            &key,
            txn,
            "alice",
            42,
            &nonce,
            ApprovalMethod::Biometric,
            false,
            &mac
        ));
        assert!(!push_verify(
            &key,
            txn,
            "alice",
            42,
            &nonce,
            ApprovalMethod::Pin,
            true,
            &mac
        ));
        assert!(!push_verify(
            &key,
            txn,
            "alicf",
            42,
            &nonce,
            ApprovalMethod::Biometric,
            true,
            &mac
        ));
        assert!(!push_verify(
            &[8u8; 32],
            txn,
            "alice",
            42,
            &nonce,
            ApprovalMethod::Biometric,
            true,
            &mac
        ));
    }

    #[test]
    fn device_proof_binds_device_and_nonce() {
        let key = [3u8; 32];
        let p = device_proof(&key, DeviceId(5), &[1; 32]);
        let mut m = Hmac::<Sha256>::new_from_slice(&key).unwrap();
        m.update(b"sls-device-v1");
        m.update(&5u32.to_be_bytes());
        m.update(&[1; 32]);
        assert_eq!(p.to_vec(), m.finalize().into_bytes().to_vec());
        assert!(device_proof_verify(&key, DeviceId(5), &[1; 32], &p));
        assert!(!device_proof_verify(&key, DeviceId(6), &[1; 32], &p));
        assert!(!device_proof_verify(&key, DeviceId(5), &[2; 32], &p));
    }
}
