//! TLS for `slsd`: a local CA made on first start, the server certificate, the role
//! certificates of frontends and admins, and the rustls/quinn configurations.
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
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use sls_protocol::{Role, ALPN_DEVICE, ALPN_FRONTEND};

/// Errors of TLS set-up and role checks.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A certificate could not be made.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
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
    /// The verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// The peer has no role.
    #[error("no valid role: {0}")]
    NoRole(&'static str),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> TlsError + 'a {
    move |source| TlsError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn bad_file(path: &Path, why: String) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why,
    }
}

/// The organizational unit that names each role in a client certificate.
pub fn role_unit(role: Role) -> &'static str {
    match role {
        Role::Frontend => "sls-frontend",
        Role::Admin => "sls-admin",
        Role::Device => "sls-device",
    }
}

/// The daemon's certificates, in `<data-dir>/tls`.
pub struct Pki {
    /// The directory.
    pub dir: PathBuf,
    ca_cert_pem: String,
    ca_key: KeyPair,
    server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    /// Files created by this start (empty when they existed).
    pub created: Vec<PathBuf>,
}

fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io("writing", path))?;
    f.write_all(contents.as_bytes())
        .map_err(io("writing", path))
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
    /// same frontends share one).
    ///
    /// # Errors
    /// Unreadable or unwritable files, bad PEM.
    pub fn load_or_create_in(dir: &Path) -> Result<Pki, TlsError> {
        let dir = dir.to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let mut created = Vec::new();
        let ca_pem_path = dir.join("ca.pem");
        let ca_key_path = dir.join("ca.key");
        if !ca_pem_path.exists() || !ca_key_path.exists() {
            let key = KeyPair::generate()?;
            let mut params = CertificateParams::new(Vec::<String>::new())?;
            params
                .distinguished_name
                .push(DnType::CommonName, "sls local CA");
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let cert = params.self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            std::fs::write(&ca_pem_path, cert.pem()).map_err(io("writing", &ca_pem_path))?;
            created.extend([ca_pem_path.clone(), ca_key_path.clone()]);
        }
        let ca_cert_pem =
            std::fs::read_to_string(&ca_pem_path).map_err(io("reading", &ca_pem_path))?;
        CertificateParams::from_ca_cert_pem(&ca_cert_pem)
            .map_err(|e| bad_file(&ca_pem_path, format!("not a CA certificate in PEM ({e})")))?;
        let ca_key = KeyPair::from_pem(
            &std::fs::read_to_string(&ca_key_path).map_err(io("reading", &ca_key_path))?,
        )
        .map_err(|e| bad_file(&ca_key_path, format!("not a private key in PEM ({e})")))?;
        let mut pki = Pki {
            dir: dir.clone(),
            ca_cert_pem,
            ca_key,
            server_chain: Vec::new(),
            server_key: PrivateKeyDer::Pkcs8(Vec::new().into()),
            created,
        };
        let server_pem = dir.join("server.pem");
        let server_key = dir.join("server.key");
        if !server_pem.exists() || !server_key.exists() {
            let (cert, key) = pki.issue("server", None)?;
            std::fs::write(&server_pem, cert).map_err(io("writing", &server_pem))?;
            write_private(&server_key, &key)?;
            pki.created.extend([server_pem.clone(), server_key.clone()]);
        }
        for role in [Role::Frontend, Role::Admin] {
            let pem = dir.join(format!("{}.pem", role.name()));
            let key = dir.join(format!("{}.key", role.name()));
            if !pem.exists() || !key.exists() {
                let (c, k) = pki.issue_client_cert(role, role.name())?;
                std::fs::write(&pem, c).map_err(io("writing", &pem))?;
                write_private(&key, &k)?;
                pki.created.extend([pem, key]);
            }
        }
        pki.server_chain = CertificateDer::pem_file_iter(&server_pem)
            .map_err(|e| TlsError::Pem(server_pem.clone(), e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Pem(server_pem.clone(), e))?;
        if pki.server_chain.is_empty() {
            return Err(bad_file(&server_pem, "no certificate in it".into()));
        }
        pki.server_key = PrivateKeyDer::from_pem_file(&server_key)
            .map_err(|e| TlsError::Pem(server_key.clone(), e))?;
        // Checked here, where the files are known, rather than as a bare rustls error later.
        rustls::crypto::ring::sign::any_supported_type(&pki.server_key)
            .map_err(|e| bad_file(&server_key, format!("unusable private key ({e})")))?;
        Ok(pki)
    }

    /// The CA certificate, PEM.
    pub fn ca_pem(&self) -> &str {
        &self.ca_cert_pem
    }

    fn issue(&self, name: &str, role: Option<Role>) -> Result<(String, String), TlsError> {
        let issuer =
            CertificateParams::from_ca_cert_pem(&self.ca_cert_pem)?.self_signed(&self.ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        match role {
            None => {
                params.subject_alt_names = vec![
                    SanType::DnsName("localhost".try_into()?),
                    SanType::IpAddress([127, 0, 0, 1].into()),
                    SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
                ];
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
            }
            Some(role) => {
                params
                    .distinguished_name
                    .push(DnType::OrganizationalUnitName, role_unit(role));
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params.signed_by(&key, &issuer, &self.ca_key)?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// A new client certificate and key (PEM) for a frontend or an admin, signed by the CA.
    ///
    /// # Errors
    /// Certificate generation failed.
    pub fn issue_client_cert(&self, role: Role, name: &str) -> Result<(String, String), TlsError> {
        self.issue(name, Some(role))
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
        for c in CertificateDer::pem_slice_iter(self.ca_cert_pem.as_bytes()) {
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
    role_from_cert(leaf)
}

/// The role named by a (verified) client certificate.
///
/// # Errors
/// No role unit in the subject.
pub fn role_from_cert(der: &CertificateDer<'_>) -> Result<Role, TlsError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| TlsError::NoRole("unparsable certificate"))?;
    for ou in cert.subject().iter_organizational_unit() {
        match ou.as_str() {
            Ok("sls-frontend") => return Ok(Role::Frontend),
            Ok("sls-admin") => return Ok(Role::Admin),
            _ => {}
        }
    }
    Err(TlsError::NoRole("certificate names no role"))
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
