//! Randomness as an input, like time. A rule that needs random bytes (a transaction id, a
//! challenge, a push number, a code, a key) draws them from a [`Rng`] built from a seed its
//! caller drew *before* the rule ran. A rule is then a function of its inputs: a store that runs
//! it again (a compare-and-set that lost a race) gets the same ids and codes, and a seeded run
//! (the simulator, the rule suite) replays exactly.
//!
//! The seed's first [`DIRECT`] bytes are handed out as they are: a DSC+ or IB Key login's
//! challenge takes fewer (a transaction id, a six-digit question or a push's number and nonce),
//! so the common login path pays for no generator; longer questions and card positions may go
//! past them. A rule that wants more (a key) gets them from ChaCha12 ([`StdRng`]) keyed with
//! the seed's last 32 bytes, which are never handed out themselves.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use zeroize::Zeroize;

/// Seed bytes handed out as they are, before the generator takes over.
pub const DIRECT: usize = 64;

/// The bytes a [`Rng`] starts from: [`DIRECT`] bytes handed out first, then the 32-byte key of
/// the generator, all from a cryptographically secure source.
pub type Seed = [u8; DIRECT + 32];

/// A rule's random source. See the module docs.
pub struct Rng {
    /// `None`: the caller gave no seed (its rule draws nothing).
    seed: Option<Seed>,
    /// Bytes of the seed handed out so far.
    at: usize,
    inner: Option<StdRng>,
}

impl Rng {
    /// A generator that gives the same bytes for the same `seed`.
    pub fn from_seed(seed: Seed) -> Rng {
        Rng {
            seed: Some(seed),
            at: 0,
            inner: None,
        }
    }

    /// For a rule that draws nothing (judging an answer, counting a failure): no seed is drawn
    /// for it. A rule that draws from it anyway is a bug in its caller, and panics (the request
    /// is answered `INTERNAL`) rather than be given bytes anyone could predict.
    pub fn unseeded() -> Rng {
        Rng {
            seed: None,
            at: 0,
            inner: None,
        }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        self.fill(&mut out);
        out
    }

    fn fill(&mut self, dest: &mut [u8]) {
        let Some(seed) = &mut self.seed else {
            panic!("a rule drew random bytes, but its caller gave it no seed (Rng::unseeded)");
        };
        let direct = DIRECT.saturating_sub(self.at).min(dest.len());
        let (now, rest) = dest.split_at_mut(direct);
        now.copy_from_slice(&seed[self.at..self.at + direct]);
        self.at += direct;
        if rest.is_empty() {
            return;
        }
        let inner = self.inner.get_or_insert_with(|| {
            let mut key = [0u8; 32];
            key.copy_from_slice(&seed[DIRECT..]);
            // The key is the generator's now: not kept twice (the generator's own state is
            // rand's, not wiped).
            seed[DIRECT..].zeroize();
            let rng = StdRng::from_seed(key);
            key.zeroize();
            rng
        });
        inner.fill_bytes(rest);
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        if let Some(seed) = &mut self.seed {
            // What was handed out may have become a code or a key; what was not tells nothing
            // of it. The generator's key, if it was not taken.
            seed[..self.at].zeroize();
            if self.inner.is_none() {
                seed[DIRECT..].zeroize();
            }
        }
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed: codes and keys come from it.
        f.debug_struct("Rng")
            .field("seeded", &self.seed.is_some())
            .finish_non_exhaustive()
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill(dest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed(b: u8) -> Seed {
        let mut s = [0u8; DIRECT + 32];
        for (i, x) in s.iter_mut().enumerate() {
            *x = b.wrapping_add(i as u8);
        }
        s
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes_past_the_direct_ones_and_another_seed_others() {
        let draw = |seed: Seed| {
            let mut r = Rng::from_seed(seed);
            let mut out = [0u8; 200];
            r.fill_bytes(&mut out);
            (out, r.next_u64())
        };
        assert_eq!(draw(seed(7)), draw(seed(7)));
        assert_ne!(draw(seed(7)).0[..DIRECT], draw(seed(8)).0[..DIRECT]);
        assert_ne!(draw(seed(7)).0[DIRECT..], draw(seed(8)).0[DIRECT..]);
    }

    #[test]
    fn the_direct_bytes_come_first_and_the_key_is_never_handed_out() {
        let s = seed(1);
        let mut r = Rng::from_seed(s);
        let mut out = [0u8; DIRECT + 32];
        r.fill_bytes(&mut out);
        assert_eq!(out[..DIRECT], s[..DIRECT]);
        assert_ne!(out[DIRECT..], s[DIRECT..]);
    }

    #[test]
    #[should_panic(expected = "no seed")]
    fn an_unseeded_rng_refuses_to_draw() {
        Rng::unseeded().next_u32();
    }
}
