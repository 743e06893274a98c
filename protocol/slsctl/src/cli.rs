//! The command line: global options, one subcommand per admin action.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// What `--help` ends with: the exit codes scripts rely on.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  2  bad arguments (a field over its limit too), unreadable files, a certificate that cannot
     be made
  3  refused by slsd: the status is printed (name and code, e.g. UNKNOWN_USER 0x0101), or the
     daemon granted the certificate another role than asked
  4  cannot reach slsd: no node answered (a certificate the daemon closes the connection on
     included), no answer in time, the connection was lost, or an answer this slsctl cannot
     read (a newer daemon)";

/// slsctl: the admin command line of sls.
///
/// Speaks to slsd over QUIC with an admin certificate (`admin.pem`, `admin.key` in --tls-dir),
/// as any client does (protocol/PROTOCOL.md). `cert` makes certificates signed by the
/// deployment's CA (`ca.pem`, `ca.key` in --tls-dir) and needs no daemon.
#[derive(Parser, Debug)]
#[command(name = "slsctl", version, after_help = EXIT_CODES)]
pub struct Cli {
    /// A node of the deployment (HOST:PORT, a name or an address); repeat for several: the
    /// next is tried when one fails.
    #[arg(long, global = true, default_value = "127.0.0.1:7443")]
    pub target: Vec<String>,
    /// The certificate directory: ca.pem, and admin.pem/admin.key (or frontend.* with --role
    /// frontend); for `cert`, the CA's ca.pem and ca.key.
    #[arg(long, global = true, default_value = "./sls-data/tls")]
    pub tls_dir: PathBuf,
    /// A client certificate to use instead of the one in --tls-dir (with --key).
    #[arg(long, global = true, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Its private key.
    #[arg(long, global = true, requires = "cert")]
    pub key: Option<PathBuf>,
    /// The role to ask for: admin, or frontend for the frontend calls (status, notices).
    #[arg(long, global = true, default_value = "admin")]
    pub role: RoleArg,
    /// The name the daemon's certificate is verified against [default: each --target's host].
    #[arg(long, global = true)]
    pub server_name: Option<String>,
    /// Print one JSON object per command (on stdout, errors too), for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    /// Time for each node's handshake.
    #[arg(long, global = true, default_value = "5s", value_parser = duration)]
    pub connect_timeout: Duration,
    /// Time for the command's call, retries included.
    #[arg(long, global = true, default_value = "10s", value_parser = duration)]
    pub timeout: Duration,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The role slsctl asks for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    /// Every call.
    Admin,
    /// Frontend calls only.
    Frontend,
}

/// Why a device is revoked or suspended (PROTOCOL.md §4, `RevokeDevice`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Reason {
    /// Reported lost.
    Lost = 1,
    /// Reported stolen.
    Stolen = 2,
    /// Damaged.
    Damaged = 3,
    /// Anything else.
    Other = 4,
}

/// A secret given on the command line as hex, or read from a file (`-` for stdin).
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct SecretArg {
    /// The device's secret (OCRA key, card secret, app key) in hex. Visible to other users of
    /// this machine in the process list: prefer --secret-file.
    #[arg(long)]
    pub secret_hex: Option<String>,
    /// A file holding the secret in hex (`-`: standard input).
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
}

/// A PIN given on the command line, or read from a file.
#[derive(Args, Debug, Clone)]
#[group(multiple = false)]
pub struct PinArg {
    /// The PIN (R7). Visible in the process list: prefer --pin-file.
    #[arg(long)]
    pub pin: Option<String>,
    /// A file holding the PIN (`-`: standard input).
    #[arg(long)]
    pub pin_file: Option<PathBuf>,
}

/// The admin actions.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Whether a user is locked and until when, the failures, the usable devices.
    Status {
        /// The user.
        user: String,
    },
    /// Lift a user's lockout (R11).
    Unlock {
        /// The user.
        user: String,
    },
    /// Enrol a user (R10, R17, R18, R20).
    EnrolUser {
        /// The user (a-z, 0-9).
        user: String,
        /// The entity the user belongs to (R17a); none: an account of its own.
        #[arg(long, default_value = "")]
        entity: String,
        /// Identification data (R17a).
        #[arg(long, default_value = "")]
        identification: String,
        /// Not the account's primary user (R18).
        #[arg(long)]
        not_primary: bool,
        /// Account equity in USD (R20), 0 if not known.
        #[arg(long, default_value_t = 0)]
        equity: u64,
    },
    /// Enrol a device for a user (R4).
    EnrolDevice {
        /// The user.
        user: String,
        /// dsc_plus, ib_key, scc, dsc, gold, platinum, sms.
        #[arg(long)]
        kind: String,
        #[command(flatten)]
        secret: SecretArg,
        #[command(flatten)]
        pin: PinArg,
        /// The OCRA suite [default: the kind's].
        #[arg(long, default_value = "")]
        suite: String,
    },
    /// Issue a temporary code (R13); prints the code to give the user.
    TempCode {
        /// The user.
        user: String,
    },
    /// Issue an Online SCC (R14); prints its secret, to print the grid.
    OnlineScc {
        /// The user.
        user: String,
    },
    /// What a frontend should tell the user (R16), and the mass-lockout signal.
    Notices {
        /// The user.
        user: String,
    },
    /// The user opts out of SLS (R18).
    OptOut {
        /// The user.
        user: String,
    },
    /// Opt a user back in, by the account's primary user (R18).
    OptIn {
        /// The user.
        user: String,
        /// The primary user who asks.
        #[arg(long)]
        by: String,
    },
    /// Reactivate a permanent device; voids the temporary ones (R15).
    Reactivate {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
    },
    /// Order a replacement DSC+ with a new PIN (R16); prints its device id.
    OrderReplacement {
        /// The user.
        user: String,
        #[command(flatten)]
        secret: SecretArg,
        #[command(flatten)]
        pin: PinArg,
    },
    /// A replacement has shipped: it activates by itself 3 weeks later (R16).
    Ship {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
    },
    /// The user activated a device (R16).
    Activate {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
    },
    /// Revoke a device for good (lost, stolen): it and every share copy of it stop at once.
    Revoke {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
        /// Why.
        #[arg(long, default_value = "lost")]
        reason: Reason,
    },
    /// Remove a device for good: its open challenges void, its share copies stop (v3).
    RemoveDevice {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
    },
    /// Suspend a device until `resume` (e.g. mislaid): it and its share copies are refused.
    Suspend {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
        /// Why.
        #[arg(long, default_value = "other")]
        reason: Reason,
    },
    /// Resume a suspended device.
    Resume {
        /// The user.
        user: String,
        /// The device id.
        device: u32,
    },
    /// Opt back in a user whose account has no primary user (R18, admin override).
    OptInOverride {
        /// The user.
        user: String,
    },
    /// A withdrawal confirmed by a transaction did not execute: release it (R3).
    ReleaseWithdrawal {
        /// The user.
        user: String,
        /// The transaction that confirmed it, as 32 hex digits (as the frontend logs it).
        #[arg(value_parser = txn_id)]
        txn: u128,
    },
    /// Approve or refuse a pending share (R17, compliance).
    ShareDecide {
        /// The share id.
        share: u32,
        /// Approve it (otherwise: refuse it).
        #[arg(long)]
        approve: bool,
    },
    /// Cancel a share; the requester's own devices come back (R17).
    ShareCancel {
        /// The share id.
        share: u32,
    },
    /// A user's audit trail, oldest first: every verdict and admin change with its time,
    /// device, client address and node (v3). `--json`: the entries as objects.
    Audit {
        /// The user.
        user: String,
        /// From this time on: RFC 3339 (2026-12-07T06:00:00Z) or ms since the epoch.
        #[arg(long, value_parser = since, default_value = "0")]
        since: u64,
        /// At most this many entries (pages of 64 are read until then).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Every device of a user in every state (v3).
    Devices {
        /// The user.
        user: String,
    },
    /// The live shares (R17), oldest first: pending ones for compliance to decide, and
    /// approved ones unless `--pending` (v3).
    Shares {
        /// Pending shares only.
        #[arg(long)]
        pending: bool,
        /// At most this many shares (pages of up to 64 are read until then).
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// A user's account, failure times, lock, withdrawals used and left (v3).
    Detail {
        /// The user.
        user: String,
    },
    /// Change a user's account data (v3): each field given.
    UpdateUser {
        /// The user.
        user: String,
        /// The entity (R17a).
        #[arg(long)]
        entity: Option<String>,
        /// Identification data (R17a), stored in its canonical form.
        #[arg(long)]
        identification: Option<String>,
        /// The account's primary user (R18): true or false.
        #[arg(long)]
        primary: Option<bool>,
        /// Account equity, USD (R20).
        #[arg(long)]
        equity: Option<u64>,
    },
    /// The daemon's counters.
    Stats,
    /// Whether a node answers.
    Ping,
    /// Make certificates signed by the CA in --tls-dir (no daemon needed).
    #[command(subcommand)]
    Cert(CertCommand),
    /// Shell completions for bash, zsh, fish, elvish or powershell.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// The man page (roff), section 8.
    Man,
}

/// Certificates.
#[derive(Subcommand, Debug)]
pub enum CertCommand {
    /// A frontend's certificate: DIR/frontend.pem, DIR/frontend.key, and DIR/ca.pem.
    Frontend {
        /// The certificate's common name (which frontend).
        #[arg(long)]
        name: String,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// An admin tool's certificate: DIR/admin.pem, DIR/admin.key, and DIR/ca.pem.
    Admin {
        /// The certificate's common name (who).
        #[arg(long)]
        name: String,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// A server certificate for slsd: DIR/server.pem, DIR/server.key (DIR: the node's
    /// --tls-dir, beside the CA).
    Server {
        /// A DNS name the certificate carries; repeat for several.
        #[arg(long, required_unless_present = "ip")]
        name: Vec<String>,
        /// An IP address it carries; repeat for several.
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// A new CA and the set slsd makes on first start (server for localhost, 127.0.0.1, ::1
    /// and each --name/--ip; frontend; admin) in DIR, which must not hold a CA yet.
    Init {
        /// More DNS names for the server certificate.
        #[arg(long)]
        name: Vec<String>,
        /// More IP addresses for it.
        #[arg(long)]
        ip: Vec<IpAddr>,
        /// Where to write.
        #[arg(long)]
        out: PathBuf,
    },
}

fn since(s: &str) -> Result<u64, String> {
    if let Ok(ms) = s.parse::<u64>() {
        return Ok(ms);
    }
    let t = humantime::parse_rfc3339_weak(s)
        .map_err(|e| format!("{s:?}: neither ms since the epoch nor an RFC 3339 time ({e})"))?;
    let d = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| format!("{s:?}: before 1970"))?;
    u64::try_from(d.as_millis()).map_err(|_| format!("{s:?}: too far ahead"))
}

fn txn_id(s: &str) -> Result<u128, String> {
    u128::from_str_radix(s, 16).map_err(|e| format!("{s:?}: not a transaction id in hex ({e})"))
}

fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 5s, 1m)"))
}
