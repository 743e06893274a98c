//! TLS for `slsd`: a local CA made on first start, the server certificate, the role
//! certificates of frontends and admins, and the rustls/quinn configurations. The certificates
//! are made and read by `sls-pki` (shared with the admin CLI); this module keeps the server's
//! side: the files of a TLS directory, the rustls/quinn configuration and a connection's role.
//!
//! Roles are told apart by the client certificate: its subject's organizational unit is
//! `sls-frontend` or `sls-admin`. IB Key apps use the ALPN `sls-device/1` and present no
//! certificate; they prove possession of their key in the protocol. Because one endpoint serves
//! both ALPNs, the TLS layer accepts a client without a certificate, and [`role_of`] refuses an
//! `sls/1` connection without a valid role certificate right after the handshake.
//!
//! Early data (0-RTT) is off: a replayable verification request must never be accepted.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::{HandshakeData, QuicServerConfig};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sls_pki::{Ca, PkiError};
use sls_protocol::{Role, ALPN_DEVICE, ALPN_FRONTEND};

pub use sls_pki::{role_from_cert, role_unit};

/// Errors of TLS set-up and role checks.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificates could not be made, read or written (the error names the file).
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// rustls refused a configuration.
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    /// A PEM file is unreadable.
    #[error("PEM {0}: {1}")]
    Pem(PathBuf, rustls::pki_types::pem::Error),
    /// A file holds no usable certificate or key, or its certificate and key do not belong
    /// together.
    #[error("{path}: {why}")]
    File {
        /// The file (for a pair that does not match, the certificate's).
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A `--tls-dir` given explicitly does not exist, and `--init-tls` was not given.
    #[error(
        "tls_dir {} does not exist (give --init-tls to create a new CA and certificates there)",
        .0.display()
    )]
    Missing(PathBuf),
    /// The verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// The peer has no role.
    #[error("no valid role: {0}")]
    NoRole(&'static str),
}

fn bad_file(path: &Path, why: String) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why,
    }
}

/// The daemon's certificates, in `<data-dir>/tls` or `--tls-dir`.
pub struct Pki {
    /// The directory.
    pub dir: PathBuf,
    ca: Ca,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    /// Files created by this start (empty when they existed).
    pub created: Vec<PathBuf>,
}

/// Whether both files of a pair are missing (a pair half there is left for [`Ca::load`] or the
/// PEM reading to name, rather than replaced).
fn both_missing(a: &Path, b: &Path) -> bool {
    !a.exists() && !b.exists()
}

impl Pki {
    /// Loads the certificates from `<data_dir>/tls`, creating the CA, the server certificate
    /// and the frontend and admin certificates on first start.
    ///
    /// # Errors
    /// Unreadable or unwritable files, bad PEM.
    pub fn load_or_create(data_dir: &Path) -> Result<Pki, TlsError> {
        Pki::load_or_create_in(&data_dir.join("tls"))
    }

    /// As [`Pki::load_or_create`], in the directory `dir` itself (several nodes that serve the
    /// same frontends share one). The directory is created if missing: `slsd` refuses a
    /// missing `--tls-dir` before this, unless `--init-tls` is given.
    ///
    /// # Errors
    /// Unreadable or unwritable files, bad PEM, a certificate or key without its pair.
    pub fn load_or_create_in(dir: &Path) -> Result<Pki, TlsError> {
        let dir = dir.to_path_buf();
        let mut created = Vec::new();
        let (ca_pem, ca_key) = (dir.join("ca.pem"), dir.join("ca.key"));
        if both_missing(&ca_pem, &ca_key) {
            Ca::create()?.save(&dir)?;
            created.extend([ca_pem, ca_key]);
        }
        let ca = Ca::load(&dir)?;
        let server_pem = dir.join("server.pem");
        let server_key = dir.join("server.key");
        if both_missing(&server_pem, &server_key) {
            let localhost = [
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::Ipv6Addr::LOCALHOST.into(),
            ];
            let (c, k) = ca
                .issue_server(&["localhost".into()], &localhost)?
                .write(&dir, "server")?;
            created.extend([c, k]);
        }
        for role in [Role::Frontend, Role::Admin] {
            let pem = dir.join(format!("{}.pem", role.name()));
            let key = dir.join(format!("{}.key", role.name()));
            if both_missing(&pem, &key) {
                let (c, k) = ca
                    .issue_client(role, role.name())?
                    .write(&dir, role.name())?;
                created.extend([c, k]);
            }
        }
        let server_chain = CertificateDer::pem_file_iter(&server_pem)
            .map_err(|e| TlsError::Pem(server_pem.clone(), e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem(server_pem.clone(), e))?;
        if server_chain.is_empty() {
            return Err(bad_file(&server_pem, "no certificate in it".into()));
        }
        let key = PrivateKeyDer::from_pem_file(&server_key)
            .map_err(|e| TlsError::Pem(server_key.clone(), e))?;
        // Checked here, where the files are known, rather than as a bare rustls error later.
        rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| bad_file(&server_key, format!("unusable private key ({e})")))?;
        Ok(Pki {
            dir,
            ca,
            server_chain,
            server_key: key,
            created,
        })
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        self.ca.cert_pem()
    }

    /// The quinn server configuration: TLS 1.3, both ALPNs, client certificates verified
    /// against the CA when presented, no 0-RTT.
    ///
    /// # Errors
    /// rustls refused the configuration.
    pub fn server_config(
        &self,
        transport: Arc<quinn::TransportConfig>,
    ) -> Result<quinn::ServerConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(self.ca.cert_pem().as_bytes()) {
            roots.add(c.map_err(|e| TlsError::Pem(self.dir.join("ca.pem"), e))?)?;
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .map_err(|e| {
                bad_file(
                    &self.dir.join("server.pem"),
                    format!(
                        "does not go with {} ({e})",
                        self.dir.join("server.key").display()
                    ),
                )
            })?;
        tls.alpn_protocols = vec![ALPN_FRONTEND.to_vec(), ALPN_DEVICE.to_vec()];
        // No 0-RTT: early data could be replayed by anyone on the path.
        tls.max_early_data_size = 0;
        let quic =
            QuicServerConfig::try_from(tls).map_err(|e| TlsError::Verifier(e.to_string()))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
        config.transport_config(transport);
        Ok(config)
    }
}

/// The role of a connection: its ALPN, and for `sls/1` its certificate's organizational unit.
///
/// # Errors
/// An `sls/1` peer without a role certificate; an unknown ALPN.
pub fn role_of(conn: &quinn::Connection) -> Result<Role, TlsError> {
    let alpn = conn
        .handshake_data()
        .and_then(|h| h.downcast::<HandshakeData>().ok())
        .and_then(|h| h.protocol)
        .ok_or(TlsError::NoRole("no ALPN"))?;
    if alpn == ALPN_DEVICE {
        return Ok(Role::Device);
    }
    if alpn != ALPN_FRONTEND {
        return Err(TlsError::NoRole("unknown ALPN"));
    }
    let certs = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or(TlsError::NoRole("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or(TlsError::NoRole("no client certificate"))?;
    role_from_cert(leaf).map_err(|e| match e {
        PkiError::NoRole(why) => TlsError::NoRole(why),
        e => TlsError::Pki(e),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// What start-up does with the certificates: load them, then build the server's TLS.
    fn start(dir: &Path) -> Result<(), TlsError> {
        let pki = Pki::load_or_create_in(dir)?;
        pki.server_config(Arc::new(quinn::TransportConfig::default()))?;
        Ok(())
    }

    #[test]
    fn a_damaged_certificate_or_key_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        start(dir).unwrap();
        let good = |name: &str| std::fs::read(dir.join(name)).unwrap();
        let (server_pem, server_key, ca_pem, ca_key) = (
            good("server.pem"),
            good("server.key"),
            good("ca.pem"),
            good("ca.key"),
        );
        let restore = || {
            for (name, bytes) in [
                ("server.pem", &server_pem),
                ("server.key", &server_key),
                ("ca.pem", &ca_pem),
                ("ca.key", &ca_key),
            ] {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        };
        // Each file in turn replaced by garbage, or by another valid file of its kind that
        // does not belong: the error names the file (it used to say "peer sent no
        // certificates" for a garbage server.pem).
        let cases: [(&str, Vec<u8>, &str); 5] = [
            (
                "server.pem",
                b"garbage\n".to_vec(),
                "server.pem: no certificate in it",
            ),
            ("server.key", b"garbage\n".to_vec(), "server.key"),
            (
                "server.key",
                good("frontend.key"),
                "server.pem: does not go with",
            ),
            (
                "ca.pem",
                b"garbage\n".to_vec(),
                "ca.pem: not a CA certificate",
            ),
            ("ca.key", b"garbage\n".to_vec(), "ca.key: not a private key"),
        ];
        for (name, bytes, want) in cases {
            std::fs::write(dir.join(name), &bytes).unwrap();
            let e = start(dir).unwrap_err().to_string();
            assert!(e.contains(want), "{name}: {e}");
            assert!(e.contains(&*dir.to_string_lossy()), "{name}: {e}");
            restore();
            start(dir).unwrap();
        }
    }
}
