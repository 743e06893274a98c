//! `slsctl cert`: certificates signed by the deployment's CA, laid out as slsd and the client
//! crate read them (`ClientTls::from_dir`): no openssl recipe needed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde_json::json;
use sls_pki::Ca;
use sls_protocol::Role;

use crate::cli::CertCommand;
use crate::Done;

/// Runs one `cert` command with the CA in `tls_dir`.
pub fn run(tls_dir: &Path, command: &CertCommand) -> Result<Done, String> {
    match command {
        CertCommand::Frontend { name, out } => client(tls_dir, Role::Frontend, name, out),
        CertCommand::Admin { name, out } => client(tls_dir, Role::Admin, name, out),
        CertCommand::Server { name, ip, out } => {
            let ca = load(tls_dir)?;
            let issued = ca.issue_server(name, ip).map_err(|e| e.to_string())?;
            let (pem, key) = issued.write(out, "server").map_err(|e| e.to_string())?;
            let ca_pem = copy_ca(&ca, out)?;
            Ok(written(
                "server",
                format!("{} {}", name.join(" "), join_ips(ip)).trim(),
                &[pem, key, ca_pem],
            ))
        }
        CertCommand::Init { name, ip, out } => {
            if out.join("ca.pem").exists() || out.join("ca.key").exists() {
                return Err(format!(
                    "{} already holds a CA: not replaced (every certificate it signed would stop working)",
                    out.display()
                ));
            }
            let ca = Ca::create().map_err(|e| e.to_string())?;
            ca.save(out).map_err(|e| e.to_string())?;
            let mut names = vec!["localhost".to_string()];
            names.extend(name.iter().cloned());
            let mut ips: Vec<IpAddr> = vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()];
            ips.extend(ip.iter().copied());
            let mut files = vec![out.join("ca.pem"), out.join("ca.key")];
            let (pem, key) = ca
                .issue_server(&names, &ips)
                .and_then(|i| i.write(out, "server"))
                .map_err(|e| e.to_string())?;
            files.extend([pem, key]);
            for role in [Role::Frontend, Role::Admin] {
                let (pem, key) = ca
                    .issue_client(role, role.name())
                    .and_then(|i| i.write(out, role.name()))
                    .map_err(|e| e.to_string())?;
                files.extend([pem, key]);
            }
            Ok(written("init", &out.display().to_string(), &files))
        }
    }
}

fn load(tls_dir: &Path) -> Result<Ca, String> {
    Ca::load(tls_dir).map_err(|e| {
        format!(
            "{e} (the CA is ca.pem and ca.key in --tls-dir, {}; `slsctl cert init --out DIR` makes a new one)",
            tls_dir.display()
        )
    })
}

fn client(tls_dir: &Path, role: Role, name: &str, out: &Path) -> Result<Done, String> {
    let ca = load(tls_dir)?;
    let issued = ca.issue_client(role, name).map_err(|e| e.to_string())?;
    let (pem, key) = issued.write(out, role.name()).map_err(|e| e.to_string())?;
    let ca_pem = copy_ca(&ca, out)?;
    Ok(written(role.name(), name, &[pem, key, ca_pem]))
}

/// `out/ca.pem`, so that `out` is a whole client directory (`--tls-dir out`).
fn copy_ca(ca: &Ca, out: &Path) -> Result<PathBuf, String> {
    let path = out.join("ca.pem");
    if !path.exists() {
        std::fs::write(&path, ca.cert_pem())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(path)
}

fn join_ips(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn written(what: &str, name: &str, files: &[PathBuf]) -> Done {
    let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    Done {
        json: json!({"certificate": what, "name": name, "files": files}),
        text: format!("{what} certificate for {name}: wrote {}", files.join(", ")),
    }
}
