//! The simulator in CI: a fixed set of seeds keeps every rule, and one seed always gives the
//! same trace digest. A failure prints the command that replays it.

use sls_sim::{run, Config};

fn all_pass(seeds: std::ops::Range<u64>, steps: u64) {
    for seed in seeds {
        if let Err(f) = run(Config { seed, steps }) {
            panic!("{f}");
        }
    }
}

#[test]
fn five_hundred_seeds_of_two_thousand_steps_keep_every_rule() {
    all_pass(0..500, 2_000);
}

#[test]
fn a_few_long_runs_keep_every_rule() {
    all_pass(10_000..10_020, 20_000);
}

#[test]
fn one_seed_gives_one_digest() {
    let digest = |seed| match run(Config { seed, steps: 3_000 }) {
        Ok(s) => s.digest,
        Err(f) => panic!("{f}"),
    };
    assert_eq!(digest(4242), digest(4242));
    assert_ne!(digest(4242), digest(4243));
}
