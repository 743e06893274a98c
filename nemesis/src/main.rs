//! `sls-nemesis`: many faults in one run under a storm of logins, every acknowledged verdict
//! checked at the end (docs/NEMESIS.md).
//!
//! ```text
//!   seed ─▶ schedule ─▶ cycle: calm storm ─▶ fault ─▶ heal ─▶ every node ready and serving?
//!                                 │ (kill / freeze / restart a Redis master or replica, an slsd node)
//!   storm (steady + attacked users) ─▶ history (JSON lines) + tallies
//!   end: every node's and a fresh node's counts and locks ─▶ the checks ─▶ PASS / FAIL
//! ```
//!
//! It starts everything it needs on loopback (a 6-node Redis Cluster through
//! `scripts/redis-cluster.sh`, two or three `slsd`) and stops all of it when it ends, fails or
//! is interrupted (Ctrl-C stops after the current cycle and still checks).

mod check;
mod history;
mod latency;
mod nemesis;
mod run;
mod storm;
mod world;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = run::Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sls-nemesis: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(run::main(args))
}
