//! A DSC+ login as a login frontend does it, once the user's password is checked (PROTOCOL.md
//! §7, "DSC+ login"): list the user's devices, begin a challenge on the DSC+, send the answer.
//!
//! The card is simulated from its key and PIN (`--card-key`, `--pin`): a real frontend shows
//! the challenge and reads the 8 digits the user types from the card.
//!
//! ```text
//! cargo run -p sls-client --example dsc_login -- --target 127.0.0.1:7443 --tls-dir sls-data/tls \
//!     --user alice --card-key 3132333435363738393031323334353637383930313233343536373839303132 --pin 1234
//! ```
//! Exits 0 when the login is accepted, 1 when it is refused, 2 on an error.

mod common;

use std::process::ExitCode;

use sls_client::{Begun, Challenge, Client, DeviceKind, Purpose, Role, Verdict};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("dsc_login: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let args = common::Args::parse();
    let user = args.need("user")?;
    let key = hex::decode(args.need("card-key")?)?;
    let pin = args.need("pin")?;
    // The end user's address, for the daemon's per-address rate limit.
    let ip = args.get("client").unwrap_or("203.0.113.9").parse()?;

    let client = Client::connect(args.config(Role::Frontend)?).await?;

    // 1. The user's devices (R4): pick the DSC+.
    let card = match client.begin(user, Purpose::Login, None, ip).await? {
        Begun::Devices(devices) => devices
            .into_iter()
            .find(|d| d.kind == DeviceKind::DscPlus)
            .ok_or_else(|| anyhow::anyhow!("{user} has no usable DSC+"))?,
        other => {
            println!("{user}: {other:?}");
            return Ok(false);
        }
    };
    // 2. A challenge on it (R5): 6 digits to type into the card after the PIN.
    let issued = match client
        .begin(user, Purpose::Login, Some(card.id), ip)
        .await?
    {
        Begun::Challenge(issued) => issued,
        other => {
            println!("{user}: {other:?}");
            return Ok(false);
        }
    };
    let Challenge::Numeric(question) = &issued.challenge else {
        anyhow::bail!("a DSC+ challenge is numeric, got {:?}", issued.challenge);
    };
    println!("challenge {question} for device {}", card.id.0);
    // 3. What the card shows (here computed as the card would) is the user's answer.
    let typed = card_answer(&key, question, pin)?;
    let verdict = client.answer(issued.txn, &typed, ip).await?;
    match &verdict {
        Verdict::Accepted {
            device,
            kind,
            grant,
            ..
        } => {
            println!(
                "accepted: device {} ({kind}), grant {:?}",
                device.0, grant.kind
            )
        }
        Verdict::Rejected { failures_left } => {
            println!("rejected: {failures_left} failures left before the lock")
        }
        Verdict::Locked { until_ms } => println!("locked until {until_ms} ms since the epoch"),
        other => println!("refused: {other:?}"),
    }
    Ok(matches!(verdict, Verdict::Accepted { .. }))
}

/// The 8 digits a DSC+ shows for `question` with `pin` (RFC 6287, PROTOCOL.md §5.1).
fn card_answer(key: &[u8], question: &str, pin: &str) -> anyhow::Result<String> {
    let suite: OcraSuite = ocra::DSC_PLUS_DEFAULT_SUITE.parse()?;
    let pin_hash = suite.pin.map(|alg| ocra::pin_hash(alg, pin.as_bytes()));
    let input = OcraInput {
        counter: 0,
        question,
        pin_hash: pin_hash.as_ref().map(|p| p.as_bytes()),
        session: None,
        timestamp: None,
    };
    Ok(suite.compute(key, &input)?.as_str().to_owned())
}
