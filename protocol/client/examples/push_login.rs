//! An IB Key push login (PROTOCOL.md §7, "IB Key push"): the app side and the frontend side in
//! one program. The app connects without a certificate and proves its key; the frontend begins
//! a login on the IB Key, shows the number, and awaits the app's decision; the app receives the
//! push and approves it with the number the user typed (R6, number matching).
//!
//! ```text
//! cargo run -p sls-client --example push_login -- --target 127.0.0.1:7443 --tls-dir sls-data/tls \
//!     --user alice --device 2 --app-key 000102…1f
//! ```
//! Exits 0 when the login is accepted, 1 when it is refused, 2 on an error.

mod common;

use std::process::ExitCode;
use std::time::Duration;

use sls_client::{ApprovalMethod, Begun, Challenge, Client, DeviceId, Purpose, Role, Verdict};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("push_login: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let args = common::Args::parse();
    let user = args.need("user")?.to_string();
    let device = DeviceId(args.need("device")?.parse()?);
    let key = hex::decode(args.need("app-key")?)?;
    let ip = args.get("client").unwrap_or("203.0.113.9").parse()?;

    // The phone: connected, key proven; from now on it receives this device's pushes.
    let app = Client::connect(args.config(Role::Device)?).await?;
    app.prove_device(device, &key).await?;

    // The login screen.
    let frontend = Client::connect(args.config(Role::Frontend)?).await?;
    let issued = match frontend
        .begin(&user, Purpose::Login, Some(device), ip)
        .await?
    {
        Begun::Challenge(issued) => issued,
        other => {
            println!("{user}: {other:?}");
            return Ok(false);
        }
    };
    let Challenge::Push { number } = issued.challenge else {
        // The app counts as away, or push fatigue (R6): a typed challenge instead.
        println!("no push: {:?}", issued.challenge);
        return Ok(false);
    };
    println!("the login screen shows {number}");

    // The phone: the push arrives; the user picks the number the screen shows and approves.
    let phone = tokio::spawn(async move {
        let push = app
            .push()
            .await
            .ok_or_else(|| anyhow::anyhow!("the app's connection ended"))?;
        println!("push for {} on the phone", push.user);
        let verdict = app
            .answer_push(&push, &key, true, ApprovalMethod::Biometric, number)
            .await?;
        anyhow::Ok(verdict)
    });

    let verdict = frontend
        .await_push(issued.txn, Duration::from_secs(30))
        .await?;
    println!("the app got {:?}", phone.await??);
    match &verdict {
        Verdict::Accepted { device, grant, .. } => println!(
            "accepted: device {} (ib_key), grant {:?} for {} s",
            device.0, grant.kind, grant.valid_secs
        ),
        other => println!("refused: {other:?}"),
    }
    Ok(matches!(verdict, Verdict::Accepted { .. }))
}
