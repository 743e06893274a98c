//! `sls-loadgen device`: what a device would show (kept apart from `main.rs` for its size).

use anyhow::{bail, Context};
use clap::Subcommand;
use sls_protocol::card::{self, CardLayout};
use sls_protocol::ocra::{self, OcraInput, OcraSuite};

#[derive(Subcommand)]
pub enum DeviceCmd {
    /// An RFC 6287 OCRA answer (DSC+, IB Key fallback); prints the answer alone.
    Ocra {
        /// The OCRA suite, e.g. OCRA-1:HOTP-SHA256-8:QN06-PSHA1.
        #[arg(long)]
        suite: String,
        /// The key, hex.
        #[arg(long)]
        key: String,
        /// The question, as typed.
        #[arg(long)]
        question: String,
        /// The counter C.
        #[arg(long, default_value_t = 0)]
        counter: u64,
        /// The PIN, hashed with the suite's P hash.
        #[arg(long, conflicts_with = "pin_hash")]
        pin: Option<String>,
        /// The PIN's hash, hex.
        #[arg(long)]
        pin_hash: Option<String>,
        /// Session information S, hex.
        #[arg(long)]
        session: Option<String>,
        /// Timestamp T: time steps since the epoch, hex (as in RFC 6287).
        #[arg(long)]
        timestamp: Option<String>,
    },
    /// A Security Code Card answer: the codes at the positions, concatenated.
    Scc {
        /// The card's secret, hex.
        #[arg(long)]
        secret: String,
        /// Positions, e.g. 12,57.
        #[arg(long, value_delimiter = ',', required = true)]
        positions: Vec<u16>,
    },
    /// A Security Code Card's whole grid, one "position code" per line.
    SccGrid {
        /// The card's secret, hex.
        #[arg(long)]
        secret: String,
    },
}

fn hex_arg(name: &str, v: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(v).with_context(|| format!("--{name}: not hexadecimal"))
}

pub fn device(cmd: DeviceCmd) -> anyhow::Result<String> {
    match cmd {
        DeviceCmd::Ocra {
            suite,
            key,
            question,
            counter,
            pin,
            pin_hash,
            session,
            timestamp,
        } => {
            let s: OcraSuite = suite.parse().context("--suite")?;
            let key = hex_arg("key", &key)?;
            let ph = match (s.pin, pin, pin_hash) {
                (Some(alg), Some(pin), None) => {
                    Some(ocra::pin_hash(alg, pin.as_bytes()).as_bytes().to_vec())
                }
                (Some(_), None, Some(h)) => Some(hex_arg("pin-hash", &h)?),
                (Some(_), None, None) => bail!("the suite {s} needs --pin or --pin-hash"),
                (None, _, _) => None,
                (Some(_), Some(_), Some(_)) => bail!("--pin and --pin-hash exclude each other"),
            };
            let session = session.map(|h| hex_arg("session", &h)).transpose()?;
            let timestamp = timestamp
                .map(|t| u64::from_str_radix(&t, 16).context("--timestamp: not hexadecimal"))
                .transpose()?;
            let input = OcraInput {
                counter,
                question: &question,
                pin_hash: ph.as_deref(),
                session: session.as_deref(),
                timestamp,
            };
            Ok(s.compute(&key, &input)?.to_string())
        }
        DeviceCmd::Scc { secret, positions } => Ok(card::answer(
            &hex_arg("secret", &secret)?,
            &CardLayout::default(),
            &positions,
        )?),
        DeviceCmd::SccGrid { secret } => {
            let grid = card::grid(&hex_arg("secret", &secret)?, &CardLayout::default())?;
            Ok(grid
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{i:02} {c}"))
                .collect::<Vec<_>>()
                .join("\n"))
        }
    }
}
