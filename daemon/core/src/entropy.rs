//! Randomness as an input, like time: transaction ids, challenges, push numbers, codes and
//! keys come from the injected [`Entropy`]: the system's generator in production, a seeded one
//! in tests (a failing run can be replayed with its seed).

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

/// An [`Entropy`] seen as a [`RngCore`], for the rules (`rng.gen_range(..)`). Draws 64 bytes
/// at a time: a challenge, its transaction id and a push nonce cost one call to the source.
pub struct Rng<'a> {
    src: &'a dyn Entropy,
    buf: [u8; 64],
    at: usize,
    filled: bool,
}

impl<'a> Rng<'a> {
    /// A generator drawing from `src`.
    pub fn new(src: &'a dyn Entropy) -> Rng<'a> {
        Rng {
            src,
            buf: [0; 64],
            at: 64,
            filled: false,
        }
    }

    fn take<const N: usize>(&mut self) -> [u8; N] {
        if self.at + N > self.buf.len() {
            self.src.fill(&mut self.buf);
            self.at = 0;
            self.filled = true;
        }
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        out
    }
}

impl Drop for Rng<'_> {
    fn drop(&mut self) {
        // What was drawn is not left on the stack.
        if self.filled {
            zeroize::Zeroize::zeroize(&mut self.buf);
        }
    }
}

impl RngCore for Rng<'_> {
    fn next_u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn next_u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.src.fill(dest);
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.src.fill(dest);
        Ok(())
    }
}
