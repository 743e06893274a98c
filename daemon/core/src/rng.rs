//! Randomness as an input, like time. A rule that needs random bytes (a transaction id, a
//! challenge, a push number, a code, a key) draws them from a [`Rng`] built from a seed its
//! caller drew *before* the rule ran. A rule is then a function of its inputs: a store that runs
//! it again (a compare-and-set that lost a race) gets the same ids and codes, and a seeded run
//! (the simulator, the rule suite) replays exactly.

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use zeroize::Zeroize;

/// The bytes a [`Rng`] starts from: 32 bytes from a cryptographically secure source.
pub type Seed = [u8; 32];

/// A rule's random source: ChaCha12 ([`StdRng`]) keyed with the [`Seed`] on its first use (a
/// rule that draws nothing costs nothing but the seed).
pub struct Rng {
    seed: Seed,
    inner: Option<StdRng>,
}

impl Rng {
    /// A generator that will give the same bytes for the same `seed`.
    pub fn from_seed(seed: Seed) -> Rng {
        Rng { seed, inner: None }
    }

    fn inner(&mut self) -> &mut StdRng {
        let seed = &mut self.seed;
        self.inner.get_or_insert_with(|| {
            let rng = StdRng::from_seed(*seed);
            // The seed is a key: once the generator holds it, it is not kept twice.
            seed.zeroize();
            rng
        })
    }
}

impl Drop for Rng {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

impl std::fmt::Debug for Rng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the seed: codes and keys come from it.
        f.debug_struct("Rng").finish_non_exhaustive()
    }
}

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.inner().next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.inner().next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.inner().fill_bytes(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.inner().try_fill_bytes(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes_and_another_seed_others() {
        let draw = |seed: Seed| {
            let mut r = Rng::from_seed(seed);
            let mut out = [0u8; 48];
            r.fill_bytes(&mut out);
            (out, r.next_u64())
        };
        assert_eq!(draw([7; 32]), draw([7; 32]));
        assert_ne!(draw([7; 32]), draw([8; 32]));
    }
}
