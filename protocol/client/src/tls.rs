//! The certificates a client presents and trusts, and the QUIC configuration made of them.
//!
//! A frontend or an admin tool connects with ALPN `sls/1` and a client certificate whose
//! organizational unit names its role (`sls-frontend`, `sls-admin`: PROTOCOL.md §1); an IB Key
//! app connects with ALPN `sls-device/1` and no certificate. Both trust the daemon's CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::QuicClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sls_protocol::{Role, ALPN_DEVICE, ALPN_FRONTEND};

use crate::error::SetupError;

/// The PEM material of a client: the daemon's CA, and for `sls/1` a role certificate and key.
#[derive(Clone)]
pub struct ClientTls {
    /// The CA that signed the daemon's certificate (`<data-dir>/tls/ca.pem`).
    pub ca_pem: Vec<u8>,
    /// The client's certificate and key (frontend or admin), or none for an IB Key app.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for ClientTls {
    // The key is a secret: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca_pem", &format_args!("{} bytes", self.ca_pem.len()))
            .field(
                "identity",
                &self.identity.as_ref().map(|_| "certificate and key"),
            )
            .finish()
    }
}

impl ClientTls {
    /// Reads `ca.pem` and, for `role` frontend or admin, `<role>.pem` and `<role>.key` from a
    /// directory laid out as the daemon's (`<data-dir>/tls`, or what `slsctl cert` wrote).
    ///
    /// ```no_run
    /// # fn main() -> Result<(), sls_client::SetupError> {
    /// use sls_client::{ClientTls, Role};
    /// let tls = ClientTls::from_dir("sls-data/tls".as_ref(), Role::Frontend)?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// A file is missing or unreadable: the error names it.
    pub fn from_dir(dir: &Path, role: Role) -> Result<ClientTls, SetupError> {
        let ca_pem = read(&dir.join("ca.pem"))?;
        let identity = match role {
            Role::Device => None,
            _ => Some((
                read(&dir.join(format!("{}.pem", role.name())))?,
                read(&dir.join(format!("{}.key", role.name())))?,
            )),
        };
        Ok(ClientTls { ca_pem, identity })
    }

    /// The CA file, and a certificate and key (any names) for a frontend or an admin.
    ///
    /// # Errors
    /// A file is missing or unreadable: the error names it.
    pub fn from_files(ca: &Path, cert: &Path, key: &Path) -> Result<ClientTls, SetupError> {
        Ok(ClientTls {
            ca_pem: read(ca)?,
            identity: Some((read(cert)?, read(key)?)),
        })
    }

    /// An IB Key app's: the CA file only.
    ///
    /// # Errors
    /// The file is missing or unreadable.
    pub fn app(ca: &Path) -> Result<ClientTls, SetupError> {
        Ok(ClientTls {
            ca_pem: read(ca)?,
            identity: None,
        })
    }

    /// The ALPN of this material: `sls/1` with a certificate, `sls-device/1` without.
    pub fn alpn(&self) -> &'static [u8] {
        match self.identity {
            Some(_) => ALPN_FRONTEND,
            None => ALPN_DEVICE,
        }
    }

    /// A quinn client configuration for `alpn`: TLS 1.3 only, no 0-RTT, a keep-alive every
    /// 5 s (the daemon's idle timeout is 30 s by default) and an idle timeout of 30 s.
    ///
    /// # Errors
    /// Bad PEM, or rustls refused the material.
    pub fn quinn_config(&self, alpn: &[u8]) -> Result<quinn::ClientConfig, SetupError> {
        self.config(alpn, false, Duration::from_secs(30))
    }

    /// As [`ClientTls::quinn_config`], with this idle timeout: a node that stops answering is
    /// given up after it.
    ///
    /// # Errors
    /// Bad PEM, or rustls refused the material.
    pub fn quinn_config_idle(
        &self,
        alpn: &[u8],
        idle: Duration,
    ) -> Result<quinn::ClientConfig, SetupError> {
        self.config(alpn, false, idle)
    }

    /// As [`ClientTls::quinn_config`], but willing to send 0-RTT early data when the server's
    /// ticket allows it: for tests that check the daemon never does.
    ///
    /// # Errors
    /// Bad PEM, or rustls refused the material.
    pub fn quinn_config_trying_0rtt(&self, alpn: &[u8]) -> Result<quinn::ClientConfig, SetupError> {
        self.config(alpn, true, Duration::from_secs(30))
    }

    fn config(
        &self,
        alpn: &[u8],
        early_data: bool,
        idle: Duration,
    ) -> Result<quinn::ClientConfig, SetupError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&self.ca_pem) {
            let cert = cert.map_err(|source| SetupError::Pem {
                what: "CA certificate",
                source,
            })?;
            roots.add(cert)?;
        }
        if roots.is_empty() {
            return Err(SetupError::Quic("the CA file holds no certificate".into()));
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_root_certificates(roots);
        let mut tls = match &self.identity {
            None => builder.with_no_client_auth(),
            Some((cert_pem, key_pem)) => {
                let certs = CertificateDer::pem_slice_iter(cert_pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| SetupError::Pem {
                        what: "client certificate",
                        source,
                    })?;
                let key =
                    PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| SetupError::Pem {
                        what: "client key",
                        source,
                    })?;
                builder.with_client_auth_cert(certs, key)?
            }
        };
        tls.alpn_protocols = vec![alpn.to_vec()];
        tls.enable_early_data = early_data;
        let quic = QuicClientConfig::try_from(tls).map_err(|e| SetupError::Quic(e.to_string()))?;
        let mut config = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // A keep-alive well inside the idle timeout, so that an idle connection stays open.
        transport.keep_alive_interval(Some((idle / 3).min(Duration::from_secs(5))));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(idle).map_err(|e| SetupError::Quic(e.to_string()))?,
        ));
        config.transport_config(Arc::new(transport));
        Ok(config)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// The role a [`ClientTls`] is for, from its ALPN and certificate: what the caller asked.
pub(crate) fn alpn_of(role: Role) -> &'static [u8] {
    match role {
        Role::Device => ALPN_DEVICE,
        _ => ALPN_FRONTEND,
    }
}
