//! `slsctl`: the admin command line of sls, on the client crate. See `slsctl --help`.
//!
//! Each command prints one line for people, or with `--json` one JSON object for scripts; the
//! exit code says how it went ([`cli::EXIT_CODES`]).

mod cert;
mod cli;
mod show;

use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use serde_json::{json, Value};
use sls_client::{Client, ClientConfig, ClientError, ClientTls, DeviceId, NewUser, Role};
use zeroize::Zeroizing;

use crate::cli::{Cli, Command, PinArg, RoleArg, SecretArg};

/// What a command printed, and how it ended.
struct Done {
    json: Value,
    text: String,
}

/// Why a command failed, and its exit code.
enum Failed {
    /// 2: arguments, files, certificates.
    Local(String),
    /// 3 or 4, from the client.
    Client(ClientError),
}

impl From<ClientError> for Failed {
    fn from(e: ClientError) -> Failed {
        Failed::Client(e)
    }
}

impl From<sls_client::SetupError> for Failed {
    fn from(e: sls_client::SetupError) -> Failed {
        Failed::Local(e.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    let result = match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "slsctl",
                &mut std::io::stdout(),
            );
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            let man = clap_mangen::Man::new(Cli::command()).section("8");
            return match man.render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("slsctl: {e}");
                    ExitCode::from(2)
                }
            };
        }
        Command::Cert(c) => cert::run(&cli.tls_dir, c).map_err(Failed::Local),
        _ => match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(remote(&cli)),
            Err(e) => Err(Failed::Local(format!("cannot start a runtime: {e}"))),
        },
    };
    match result {
        Ok(done) => {
            if json {
                println!("{}", done.json);
            } else {
                println!("{}", done.text);
            }
            ExitCode::SUCCESS
        }
        Err(f) => {
            let (code, value, text) = failure(&f);
            if json {
                println!("{value}");
            } else {
                eprintln!("slsctl: {text}");
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code, the JSON object and the line of a failure.
fn failure(f: &Failed) -> (u8, Value, String) {
    match f {
        Failed::Local(why) => (
            2,
            json!({"error": {"kind": "local", "message": why}}),
            why.clone(),
        ),
        Failed::Client(e) => match e {
            ClientError::Refused { status, message } => {
                let name = show::status_name(*status);
                (
                    3,
                    json!({"error": {"kind": "refused", "status": name,
                        "code": format!("{:#06x}", status.0), "message": message}}),
                    format!("refused: {name} ({:#06x}): {message}", status.0),
                )
            }
            ClientError::Role { .. } => (
                3,
                json!({"error": {"kind": "role", "message": e.to_string()}}),
                e.to_string(),
            ),
            ClientError::Unreachable(_) | ClientError::Timeout(_) | ClientError::Lost(_) => (
                4,
                json!({"error": {"kind": "unreachable", "message": e.to_string()}}),
                e.to_string(),
            ),
            ClientError::Encode(_) => (
                2,
                json!({"error": {"kind": "local", "message": e.to_string()}}),
                e.to_string(),
            ),
            ClientError::Setup(s) => (
                2,
                json!({"error": {"kind": "local", "message": s.to_string()}}),
                s.to_string(),
            ),
            other => (
                4,
                json!({"error": {"kind": "unexpected", "message": other.to_string()}}),
                other.to_string(),
            ),
        },
    }
}

fn config(cli: &Cli) -> Result<ClientConfig, Failed> {
    let role = match cli.role {
        RoleArg::Admin => Role::Admin,
        RoleArg::Frontend => Role::Frontend,
    };
    let tls = match (&cli.cert, &cli.key) {
        (Some(cert), Some(key)) => ClientTls::from_files(&cli.tls_dir.join("ca.pem"), cert, key)?,
        _ => ClientTls::from_dir(&cli.tls_dir, role)?,
    };
    let mut config = ClientConfig::new(&cli.target, tls)?
        .with_role(role)
        .with_connect_timeout(cli.connect_timeout)
        .with_call_timeout(cli.timeout)
        .with_agent(format!("slsctl/{}", env!("CARGO_PKG_VERSION")));
    if let Some(name) = &cli.server_name {
        config = config.with_server_name(name);
    }
    Ok(config)
}

/// The commands that speak to slsd.
async fn remote(cli: &Cli) -> Result<Done, Failed> {
    let client = Client::connect(config(cli)?).await?;
    let c = &client;
    Ok(match &cli.command {
        Command::Status { user } => show::status(user, &c.status(user).await?),
        Command::Unlock { user } => {
            c.unlock(user).await?;
            let after = c.status(user).await?;
            let mut done = show::status(user, &after);
            done.text =
                done.text
                    .replacen(&format!("{user}: "), &format!("{user}: unlocked; now "), 1);
            done.json["unlocked"] = json!(true);
            done
        }
        Command::EnrolUser {
            user,
            entity,
            identification,
            not_primary,
            equity,
        } => {
            c.enrol_user(&NewUser {
                user: user.clone(),
                entity: entity.clone(),
                identification: identification.clone(),
                primary: !not_primary,
                equity_usd: *equity,
            })
            .await?;
            ok(
                json!({"user": user, "enrolled": true}),
                format!("{user}: enrolled"),
            )
        }
        Command::EnrolDevice {
            user,
            kind,
            secret,
            pin,
            suite,
        } => {
            let kind = kind
                .parse()
                .map_err(|_| Failed::Local(format!("--kind {kind}: not a device kind")))?;
            let (secret, pin) = (read_secret(secret)?, read_pin(pin)?);
            let device = c.enrol_device(user, kind, &secret, &pin, suite).await?;
            enrolled(user, device)
        }
        Command::TempCode { user } => {
            let t = c.issue_temp_code(user).await?;
            ok(
                json!({"user": user, "device": t.device.0, "code": t.code,
                    "full_until_ms": t.full_until_ms, "full_until": show::time(t.full_until_ms),
                    "portal_until_ms": t.portal_until_ms, "portal_until": show::time(t.portal_until_ms)}),
                format!(
                    "{user}: temporary code {} (device {}): full access until {}, Client Portal until {}",
                    t.code,
                    t.device.0,
                    show::time(t.full_until_ms),
                    show::time(t.portal_until_ms)
                ),
            )
        }
        Command::OnlineScc { user } => {
            let (device, secret, expires) = c.issue_online_scc(user).await?;
            ok(
                json!({"user": user, "device": device.0, "secret": hex::encode(&secret),
                    "expires_at_ms": expires, "expires_at": show::time(expires)}),
                format!(
                    "{user}: Online SCC device {} secret {} until {}",
                    device.0,
                    hex::encode(&secret),
                    show::time(expires)
                ),
            )
        }
        Command::Notices { user } => show::notices(user, &c.notices(user).await?),
        Command::OptOut { user } => {
            c.opt_out(user).await?;
            ok(
                json!({"user": user, "opted_out": true}),
                format!("{user}: opted out"),
            )
        }
        Command::OptIn { user, by } => {
            c.opt_in(user, by).await?;
            ok(
                json!({"user": user, "opted_out": false, "by": by}),
                format!("{user}: opted back in by {by}"),
            )
        }
        Command::Reactivate { user, device } => {
            c.reactivate(user, DeviceId(*device)).await?;
            device_done(user, *device, "reactivated")
        }
        Command::OrderReplacement { user, secret, pin } => {
            let (secret, pin) = (read_secret(secret)?, read_pin(pin)?);
            let device = c.order_replacement(user, &secret, &pin).await?;
            ok(
                json!({"user": user, "device": device.0, "state": "ordered"}),
                format!("{user}: replacement DSC+ ordered as device {}", device.0),
            )
        }
        Command::Ship { user, device } => {
            c.ship(user, DeviceId(*device)).await?;
            device_done(user, *device, "shipped")
        }
        Command::Activate { user, device } => {
            c.activate(user, DeviceId(*device)).await?;
            device_done(user, *device, "activated")
        }
        Command::Revoke {
            user,
            device,
            reason,
        } => {
            c.revoke_device(user, DeviceId(*device), false, *reason as u8)
                .await?;
            device_done(user, *device, "revoked")
        }
        Command::RemoveDevice { user, device } => {
            c.remove_device(user, DeviceId(*device)).await?;
            device_done(user, *device, "removed")
        }
        Command::Suspend {
            user,
            device,
            reason,
        } => {
            c.revoke_device(user, DeviceId(*device), true, *reason as u8)
                .await?;
            device_done(user, *device, "suspended")
        }
        Command::Resume { user, device } => {
            c.resume_device(user, DeviceId(*device)).await?;
            device_done(user, *device, "resumed")
        }
        Command::OptInOverride { user } => {
            c.opt_in_override(user).await?;
            ok(
                json!({"user": user, "opted_out": false, "by": "admin override"}),
                format!("{user}: opted back in by admin override"),
            )
        }
        Command::ReleaseWithdrawal { user, txn } => {
            c.release_withdrawal(user, sls_client::TxnId(*txn)).await?;
            ok(
                json!({"user": user, "txn": format!("{txn:032x}"), "released": true}),
                format!("{user}: withdrawal of transaction {txn:032x} released"),
            )
        }
        Command::ShareDecide { share, approve } => {
            c.share_decide(*share, *approve).await?;
            let what = if *approve { "approved" } else { "refused" };
            ok(
                json!({"share": share, "decision": what}),
                format!("share {share}: {what}"),
            )
        }
        Command::ShareCancel { share } => {
            c.share_cancel(*share).await?;
            ok(
                json!({"share": share, "cancelled": true}),
                format!("share {share}: cancelled"),
            )
        }
        Command::Audit { user, since, limit } => {
            let (mut entries, mut at, mut skip) = (Vec::new(), *since, 0u16);
            loop {
                let want = limit.saturating_sub(entries.len()).min(64);
                if want == 0 {
                    break;
                }
                let page = c.audit_read(user, at, skip, want as u16).await?;
                let (empty, same) = (
                    page.entries.is_empty(),
                    (page.next_since_ms, page.next_skip) == (at, skip),
                );
                entries.extend(page.entries);
                // A page that brings nothing, or a cursor that does not move, ends the read.
                if !page.more || empty || same {
                    break;
                }
                (at, skip) = (page.next_since_ms, page.next_skip);
            }
            show::audit(user, &entries)
        }
        Command::Devices { user } => show::devices(user, &c.list_devices(user).await?),
        Command::Shares { pending, limit } => {
            let (mut shares, mut after) = (Vec::new(), 0);
            loop {
                let (page, next) = c.list_shares(*pending, after).await?;
                shares.extend(page);
                if next == 0 || shares.len() >= *limit {
                    break;
                }
                after = next;
            }
            shares.truncate(*limit);
            show::shares(&shares)
        }
        Command::Detail { user } => show::detail(user, &c.user_detail(user).await?),
        Command::UpdateUser {
            user,
            entity,
            identification,
            primary,
            equity,
        } => {
            let update = sls_client::UserUpdate {
                entity: entity.clone(),
                identification: identification.clone(),
                primary: *primary,
                equity_usd: *equity,
            };
            c.update_user(user, &update).await?;
            show::detail(user, &c.user_detail(user).await?)
        }
        Command::Stats => show::stats(&c.stats().await?),
        Command::Ping => {
            c.ping().await?;
            let node = c.connected_node().unwrap_or_default();
            ok(json!({"node": node, "pong": true}), format!("{node}: pong"))
        }
        Command::Cert(_) | Command::Completions { .. } | Command::Man => {
            return Err(Failed::Local("not a daemon command".into()))
        }
    })
}

fn ok(json: Value, text: String) -> Done {
    Done { json, text }
}

fn enrolled(user: &str, device: DeviceId) -> Done {
    ok(
        json!({"user": user, "device": device.0}),
        format!("{user}: enrolled device {}", device.0),
    )
}

fn device_done(user: &str, device: u32, what: &str) -> Done {
    ok(
        json!({"user": user, "device": device, "done": what}),
        format!("{user}: device {device} {what}"),
    )
}

/// Reads `path`, or standard input for `-`.
fn read_file(path: &Path) -> Result<Zeroizing<String>, Failed> {
    let mut s = Zeroizing::new(String::new());
    let r = if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut s)
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut s))
    };
    r.map_err(|e| Failed::Local(format!("cannot read {}: {e}", path.display())))?;
    Ok(s)
}

fn read_secret(a: &SecretArg) -> Result<Zeroizing<Vec<u8>>, Failed> {
    let text = match (&a.secret_hex, &a.secret_file) {
        (Some(h), _) => Zeroizing::new(h.clone()),
        (None, Some(f)) => read_file(f)?,
        (None, None) => return Err(Failed::Local("give --secret-hex or --secret-file".into())),
    };
    hex::decode(text.trim())
        .map(Zeroizing::new)
        .map_err(|e| Failed::Local(format!("the secret is not hex: {e}")))
}

fn read_pin(a: &PinArg) -> Result<Zeroizing<String>, Failed> {
    Ok(match (&a.pin, &a.pin_file) {
        (Some(p), _) => Zeroizing::new(p.clone()),
        (None, Some(f)) => Zeroizing::new(read_file(f)?.trim().to_string()),
        (None, None) => Zeroizing::new(String::new()),
    })
}
