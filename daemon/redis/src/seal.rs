//! Sealing values at rest: a user's encoded state holds the secrets of their devices (OCRA
//! keys, IB Key keys, card codes), so it never reaches Redis in plain. Every versioned value
//! (a user's state, a sharing request) is sealed whole with AES-256-GCM under a [`SealKey`]
//! that every node is given; PIN hashes stay hashes inside it, as in the embedded store.
//!
//! ```text
//!   value at {P:u:ann} = 0x01 (format) ‖ nonce (12) ‖ AES-256-GCM(state, AAD = b"{P:u:ann}") ‖ tag (16)
//!                                         └ prefix (64 random bits, per store start) ‖ counter (32)
//! ```
//!
//! **The key as associated data.** The Redis key's bytes are authenticated with the value, so
//! a value copied onto another user's key (or another deployment's prefix) does not open: a
//! Redis-level attacker cannot hand one user another user's devices. It also means a prefix
//! cannot be renamed without sealing every value again.
//!
//! **Why not fully random 96-bit nonces.** GCM fails badly if one key ever seals two values
//! under one nonce (the authentication key leaks, and forgeries follow). With random nonces
//! the chance of a repeat after `n` seals is about `n² / 2⁹⁷`; NIST SP 800-38D caps random
//! nonces at 2³² seals per key to keep it under 2⁻³², and at 200,000 writes/s a cluster spends
//! that in six hours. Here a nonce is 64 random bits drawn when a store starts (and again each
//! time its 32-bit counter wraps) followed by the counter: within one store nonces never
//! repeat, by construction; two stores (nodes, or one node's restarts) repeat one only if two
//! of their 64-bit draws meet, about `d² / 2⁶⁵` for `d` draws in the key's whole life (a
//! million restarts: 3·10⁻⁸), whatever the write rate.
//!
//! **Failure.** A value that does not open (another key, damage, a copy onto another user's
//! key, an unknown format) is [`StoreError::Damaged`]: never a panic, never read as plain.
//!
//! **Not here:** key rotation (a second key to open with while values are sealed again); and
//! rollback: whoever can write to Redis can put back an older value of the same key (with its
//! version), which opens. Sealing keeps secrets secret and values unforgeable, not fresh.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use parking_lot::Mutex;
use rand::RngCore;
use sls_engine::StoreError;
use zeroize::Zeroizing;

/// The format byte of a sealed value.
const FORMAT: u8 = 1;
const NONCE: usize = 12;
const TAG: usize = 16;
/// The bytes a sealed value has besides its plaintext.
pub(crate) const OVERHEAD: usize = 1 + NONCE + TAG;

/// The 256-bit key values are sealed with. Zeroized when dropped; its `Debug` shows nothing of
/// it.
#[derive(Clone)]
pub struct SealKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// Why a seal key file could not be used. No message holds any of the file's content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SealKeyError {
    /// The file could not be read.
    #[error("cannot read the seal key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be created.
    #[error("cannot create the seal key file {path}: {source}")]
    Create {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file does not hold exactly 64 hex digits (and an optional newline).
    #[error(
        "the seal key file {path} must hold 64 hex digits (a 256-bit key) and an optional \
         newline, nothing else"
    )]
    Format {
        /// The file.
        path: PathBuf,
    },
}

impl SealKey {
    /// A new random key (tests, and [`SealKey::load_or_create`]).
    pub fn generate() -> SealKey {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(&mut *k);
        SealKey(k)
    }

    /// Reads a key from `path`: 64 hex digits, optionally followed by a newline.
    ///
    /// # Errors
    /// The file cannot be read, or holds anything else ([`SealKeyError::Format`], which names
    /// the file and nothing of its content).
    pub fn load(path: &Path) -> Result<SealKey, SealKeyError> {
        let text = Zeroizing::new(std::fs::read(path).map_err(|source| SealKeyError::Read {
            path: path.to_owned(),
            source,
        })?);
        let digits = text.strip_suffix(b"\n").unwrap_or(&text);
        let mut k = Zeroizing::new([0u8; 32]);
        // `hex`'s own error names the offending character: it is not passed on.
        hex::decode_to_slice(digits, &mut *k).map_err(|_| SealKeyError::Format {
            path: path.to_owned(),
        })?;
        Ok(SealKey(k))
    }

    /// Reads the key at `path`, or creates it there with a new random key (mode 0600) if there
    /// is no such file: the development setup, a key generated into the data directory.
    ///
    /// The new key is written to a temporary file beside `path` and linked into place, which
    /// fails if `path` exists: two processes starting at once never overwrite each other's
    /// key nor read a half-written one; the one that loses loads the winner's.
    ///
    /// # Errors
    /// As [`SealKey::load`], or the file cannot be created.
    pub fn load_or_create(path: &Path) -> Result<SealKey, SealKeyError> {
        if path.exists() {
            return SealKey::load(path);
        }
        let create = |source| SealKeyError::Create {
            path: path.to_owned(),
            source,
        };
        let key = SealKey::generate();
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(
            ".{}.{:016x}.tmp",
            std::process::id(),
            rand::random::<u64>()
        ));
        let tmp = PathBuf::from(tmp);
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            let mut text = Zeroizing::new(hex::encode(*key.0).into_bytes());
            text.push(b'\n');
            f.write_all(&text)?;
            f.sync_all()
        })();
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::File::open(dir)
                        .and_then(|d| d.sync_all())
                        .map_err(create)?;
                }
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => SealKey::load(path),
            Err(e) => Err(create(e)),
        }
    }
}

/// Where the next nonce comes from.
#[derive(Debug)]
struct Nonces {
    prefix: u64,
    counter: u32,
}

impl Nonces {
    fn fresh() -> Nonces {
        Nonces {
            prefix: rand::rngs::OsRng.next_u64(),
            counter: 0,
        }
    }

    fn next(&mut self) -> [u8; NONCE] {
        if self.counter == u32::MAX {
            *self = Nonces::fresh();
        }
        let mut n = [0u8; NONCE];
        n[..8].copy_from_slice(&self.prefix.to_be_bytes());
        n[8..].copy_from_slice(&self.counter.to_be_bytes());
        self.counter += 1;
        n
    }
}

/// Seals and opens one store's values (see the module docs).
pub(crate) struct Sealer {
    cipher: Aes256Gcm,
    nonces: Mutex<Nonces>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

fn does_not_open(key: &[u8]) -> StoreError {
    StoreError::Damaged(
        format!(
            "{}: does not open: wrong seal key or damaged value",
            String::from_utf8_lossy(key)
        )
        .into(),
    )
}

impl Sealer {
    /// A sealer under `key`, with a fresh nonce prefix.
    pub fn new(key: &SealKey) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(key.0.as_slice().into()),
            nonces: Mutex::new(Nonces::fresh()),
        }
    }

    /// `plain` sealed for the Redis key `key`.
    ///
    /// # Errors
    /// Only for a value past GCM's 64 GiB bound.
    pub fn seal(&self, key: &[u8], plain: &[u8]) -> Result<Vec<u8>, StoreError> {
        let nonce = self.nonces.lock().next();
        // Room for the tag up front: the plaintext copied in is never left behind by a growth.
        let mut out = Vec::with_capacity(OVERHEAD + plain.len());
        out.push(FORMAT);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), key, &mut out[1 + NONCE..])
            .map_err(|_| {
                StoreError::Unavailable(format!("a value of {} bytes", plain.len()).into())
            })?;
        out.extend_from_slice(&tag);
        Ok(out)
    }

    /// The plaintext of `value`, read at the Redis key `key`.
    ///
    /// # Errors
    /// [`StoreError::Damaged`]: the value was sealed under another key, for another Redis key,
    /// or is damaged.
    pub fn open(&self, key: &[u8], value: &[u8]) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        if value.len() < OVERHEAD || value[0] != FORMAT {
            return Err(does_not_open(key));
        }
        let (nonce, rest) = value[1..].split_at(NONCE);
        let (sealed, tag) = rest.split_at(rest.len() - TAG);
        let mut plain = Zeroizing::new(sealed.to_vec());
        self.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                key,
                &mut plain,
                Tag::from_slice(tag),
            )
            .map_err(|_| does_not_open(key))?;
        Ok(plain)
    }
}

#[cfg(test)]
#[path = "seal_tests.rs"]
mod tests;
