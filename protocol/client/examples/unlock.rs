//! A help desk lifting a user's lockout (R11): the user's status, the unlock, the status again.
//! Needs the admin certificate (`admin.pem`, `admin.key` in `--tls-dir`, or one made by
//! `slsctl cert admin`).
//!
//! ```text
//! cargo run -p sls-client --example unlock -- --target 127.0.0.1:7443 --tls-dir sls-data/tls --user alice
//! ```
//! Exits 0 when the user is unlocked, 2 on an error (a refusal prints its status).

mod common;

use std::process::ExitCode;

use sls_client::{Client, Role};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unlock: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let args = common::Args::parse();
    let user = args.need("user")?;
    let admin = Client::connect(args.config(Role::Admin)?).await?;
    let before = admin.status(user).await?;
    println!(
        "before: locked_until_ms {} failures {}",
        before.locked_until_ms, before.failures
    );
    admin.unlock(user).await?;
    let after = admin.status(user).await?;
    println!(
        "after: locked_until_ms {} failures {}",
        after.locked_until_ms, after.failures
    );
    anyhow::ensure!(after.locked_until_ms == 0, "{user} is still locked");
    Ok(())
}
