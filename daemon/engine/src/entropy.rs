//! Where the engine draws the seed of each rule's [`sls_core::rng::Rng`] (before the rule runs):
//! the system's generator in production, a seeded one in tests and the simulator (a failing run
//! can be replayed with its seed).

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

/// A source of random bytes.
pub trait Entropy: Send + Sync + std::fmt::Debug {
    /// Fills `dest`.
    fn fill(&self, dest: &mut [u8]);
}

/// The operating system's generator, through a per-thread CSPRNG seeded from it.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemEntropy;

impl Entropy for SystemEntropy {
    fn fill(&self, dest: &mut [u8]) {
        rand::thread_rng().fill_bytes(dest);
    }
}

/// A deterministic generator: the same seed gives the same challenges and ids.
#[derive(Debug)]
pub struct SeededEntropy(Mutex<StdRng>);

impl SeededEntropy {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> SeededEntropy {
        SeededEntropy(Mutex::new(StdRng::seed_from_u64(seed)))
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, dest: &mut [u8]) {
        self.0.lock().fill_bytes(dest);
    }
}
