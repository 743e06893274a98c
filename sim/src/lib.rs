//! # sls-sim: a deterministic simulator of the verifier core
//!
//! One `u64` seed drives everything: the clock (days, weekends, three weeks), the core's
//! random source, the users and their devices, the requests of frontends and IB Key apps,
//! the order in which the requests in flight are polled, and the faults (a crash at any step
//! with the journal cut at any byte of what was not synced, a full disk, a failed
//! `fdatasync`, snapshots). After every step a small reference model ([`model`]) checks the
//! rules. The same seed gives the same trace digest; a failing seed prints the command that
//! replays it.
//!
//! ```text
//!   seed ─▶ Rng ─▶ steps ─▶ requests (futures over Core<MemoryStore<SimJournal>>)
//!                    │          │ polled with a no-op waker, in the seed's order
//!                    │          ▼
//!                    │      judged (first poll) ─▶ model.check ─▶ trace digest
//!                    │          │ durable wait (SimJournal: group commit, faults)
//!                    ▼          ▼
//!              clock, faults   reply (acknowledged) ─▶ model
//! ```
//!
//! No threads, no wall clock, no tokio: the core is driven by hand, and every map the trace
//! reads is ordered.

pub mod journal;
mod judged;
pub mod model;
pub mod requests;
mod sim;
mod steps;
pub mod world;

pub use sim::{Config, Failure, Summary};

/// Runs `config.steps` steps from `config.seed`.
///
/// # Errors
/// The first broken invariant, with the step and the command that replays it.
pub fn run(config: Config) -> Result<Summary, Failure> {
    match sim::Sim::new(config.seed) {
        Ok(sim) => sim.run(config.steps),
        Err(why) => Err(Failure {
            seed: config.seed,
            steps: config.steps,
            step: 0,
            why,
            tail: Vec::new(),
        }),
    }
}
