//! The Security Code Card (R9) and the Online SCC (R14): a grid of codes derived from the
//! card's secret; a challenge names a few positions, the answer is their codes, concatenated.
//!
//! `code(i) = HOTP-truncate(HMAC-SHA256(secret, "sls-scc-v1" || i as u16 BE)) mod 10^digits`
//!
//! # Security
//! [`verify`] compares in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The shape of a card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CardLayout {
    /// Positions on the card, numbered from 0.
    pub positions: u16,
    /// Digits of each code.
    pub code_digits: u8,
    /// Positions asked per challenge.
    pub per_challenge: u8,
}

impl Default for CardLayout {
    /// 100 positions of 3-digit codes; 2 asked per challenge (a 6-digit answer).
    fn default() -> CardLayout {
        CardLayout {
            positions: 100,
            code_digits: 3,
            per_challenge: 2,
        }
    }
}

/// Why a card computation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// A position is not on the card.
    #[error("position {0} is not on the card")]
    Position(u16),
    /// The layout is unusable.
    #[error("bad card layout")]
    Layout,
    /// The secret is empty.
    #[error("empty card secret")]
    Secret,
}

/// The code at `index`.
///
/// # Errors
/// A position off the card, a bad layout or an empty secret.
pub fn code_at(secret: &[u8], layout: &CardLayout, index: u16) -> Result<u32, CardError> {
    if secret.is_empty() {
        return Err(CardError::Secret);
    }
    if layout.code_digits == 0 || layout.code_digits > 9 {
        return Err(CardError::Layout);
    }
    if index >= layout.positions {
        return Err(CardError::Position(index));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| CardError::Secret)?;
    mac.update(b"sls-scc-v1");
    mac.update(&index.to_be_bytes());
    let tag = mac.finalize().into_bytes();
    Ok(crate::ocra::truncate(&tag) % 10u32.pow(u32::from(layout.code_digits)))
}

/// The answer to a challenge: the codes at `indices`, zero-padded and concatenated.
///
/// # Errors
/// As [`code_at`].
pub fn answer(secret: &[u8], layout: &CardLayout, indices: &[u16]) -> Result<String, CardError> {
    let mut out = String::with_capacity(indices.len() * layout.code_digits as usize);
    for &i in indices {
        let code = code_at(secret, layout, i)?;
        out.push_str(&format!(
            "{code:0width$}",
            width = layout.code_digits as usize
        ));
    }
    Ok(out)
}

/// Whether `given` is the answer to `indices`, in constant time. A malformed answer is false.
pub fn verify(secret: &[u8], layout: &CardLayout, indices: &[u16], given: &str) -> bool {
    match answer(secret, layout, indices) {
        Ok(expected) => bool::from(expected.as_bytes().ct_eq(given.as_bytes())),
        Err(_) => false,
    }
}

/// The whole grid, position by position, for printing the card.
///
/// # Errors
/// As [`code_at`].
pub fn grid(secret: &[u8], layout: &CardLayout) -> Result<Vec<String>, CardError> {
    (0..layout.positions)
        .map(|i| answer(secret, layout, &[i]))
        .collect()
}

/// Picks `layout.per_challenge` distinct positions, avoiding those in `recent` while enough
/// others remain (so that an observer of past logins learns little). Randomness is passed in:
/// `entropy` returns uniform `u32`s.
pub fn choose_positions(
    layout: &CardLayout,
    recent: &[u16],
    mut entropy: impl FnMut() -> u32,
) -> Vec<u16> {
    let want = (layout.per_challenge as usize).min(layout.positions as usize);
    let fresh: Vec<u16> = (0..layout.positions)
        .filter(|p| !recent.contains(p))
        .collect();
    let pool: Vec<u16> = if fresh.len() >= want {
        fresh
    } else {
        (0..layout.positions).collect()
    };
    let mut pool = pool;
    let mut out = Vec::with_capacity(want);
    for _ in 0..want {
        let i = (entropy() as usize) % pool.len();
        out.push(pool.swap_remove(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r9_codes_are_the_grid_and_answers_concatenate_them() {
        let secret = b"card secret 0001";
        let layout = CardLayout::default();
        let g = grid(secret, &layout).unwrap();
        assert_eq!(g.len(), 100);
        assert!(g
            .iter()
            .all(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit())));
        let a = answer(secret, &layout, &[12, 57]).unwrap();
        assert_eq!(a, format!("{}{}", g[12], g[57]));
        assert!(verify(secret, &layout, &[12, 57], &a));
        assert!(!verify(secret, &layout, &[57, 12], &a) || g[12] == g[57]);
        assert!(!verify(
            secret,
            &layout,
            &[12, 57],
            &format!("{} {}", g[12], g[57])
        ));
        assert!(
            !verify(b"another card", &layout, &[12, 57], &a)
                || a == answer(b"another card", &layout, &[12, 57]).unwrap()
        );
        assert_eq!(code_at(secret, &layout, 100), Err(CardError::Position(100)));
        // Independent recomputation of one code from the documented formula.
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(b"sls-scc-v1");
        mac.update(&12u16.to_be_bytes());
        let tag = mac.finalize().into_bytes();
        let off = (tag[31] & 0x0f) as usize;
        let v =
            u32::from_be_bytes([tag[off] & 0x7f, tag[off + 1], tag[off + 2], tag[off + 3]]) % 1000;
        assert_eq!(g[12], format!("{v:03}"));
    }

    #[test]
    fn challenges_avoid_recent_positions() {
        let layout = CardLayout {
            positions: 10,
            code_digits: 3,
            per_challenge: 2,
        };
        let recent: Vec<u16> = (0..8).collect();
        let mut x = 12345u32;
        let mut rng = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        for _ in 0..100 {
            let mut p = choose_positions(&layout, &recent, &mut rng);
            p.sort();
            assert_eq!(p, vec![8, 9]);
        }
        // When too few fresh positions remain, any distinct ones.
        let all_recent: Vec<u16> = (0..10).collect();
        let p = choose_positions(&layout, &all_recent, &mut rng);
        assert_eq!(p.len(), 2);
        assert_ne!(p[0], p[1]);
    }
}
