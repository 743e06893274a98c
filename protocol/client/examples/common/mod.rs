//! What the examples share: `--flag value` arguments and the client configuration they make.

use std::path::PathBuf;

use sls_client::{ClientConfig, ClientTls, Role};

/// The examples' arguments, `--name value` pairs.
pub struct Args(Vec<String>);

impl Args {
    pub fn parse() -> Args {
        Args(std::env::args().skip(1).collect())
    }

    /// The value of `--name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        let i = self.0.iter().position(|a| *a == flag)?;
        self.0.get(i + 1).map(String::as_str)
    }

    /// The value of `--name`, or an error naming it.
    pub fn need(&self, name: &str) -> anyhow::Result<&str> {
        self.get(name)
            .ok_or_else(|| anyhow::anyhow!("--{name} is required"))
    }

    /// `--target` (comma-separated nodes, default 127.0.0.1:7443), `--tls-dir` (default
    /// sls-data/tls) with `role`'s certificate, and `--server-name` if given.
    pub fn config(&self, role: Role) -> anyhow::Result<ClientConfig> {
        let dir = PathBuf::from(self.get("tls-dir").unwrap_or("sls-data/tls"));
        let tls = match role {
            Role::Device => ClientTls::app(&dir.join("ca.pem"))?,
            _ => ClientTls::from_dir(&dir, role)?,
        };
        let nodes = self.get("target").unwrap_or("127.0.0.1:7443").split(',');
        let mut config = ClientConfig::new(nodes, tls)?.with_role(role);
        if let Some(name) = self.get("server-name") {
            config = config.with_server_name(name);
        }
        Ok(config)
    }
}
