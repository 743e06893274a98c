//! # sls-pki
//!
//! The certificates of an sls deployment, made and read in one place for `slsd` (which makes
//! its own on a first start) and the admin CLI (`slsctl cert …`):
//!
//! - a local CA ([`Ca`]): a self-signed certificate "sls local CA" and its key, kept as
//!   `ca.pem` and `ca.key` (mode 0600) in a directory;
//! - client certificates for the roles that present one ([`Ca::issue_client`]): the subject's
//!   organizational unit names the role ([`role_unit`]), the extended key usage is
//!   `clientAuth`;
//! - server certificates ([`Ca::issue_server`]): the DNS names and IP addresses asked, the
//!   extended key usage `serverAuth`;
//! - the role a (verified) client certificate names ([`role_from_cert`]).
//!
//! IB Key apps present no certificate (they prove their key in the protocol), so no client
//! certificate is ever issued for [`Role::Device`]. Nothing here does I/O but reading and
//! writing the files named; no TLS stack, no runtime.

use std::fmt;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
pub use rustls::pki_types::CertificateDer;
use sls_protocol::Role;
use zeroize::Zeroizing;

/// The common name of the CA that [`Ca::create`] makes.
pub const CA_NAME: &str = "sls local CA";

/// Errors of making, reading and writing certificates, and of reading a role.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// A file could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done (`reading`, `writing`, `creating`).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file holds no usable certificate or key, or a certificate and its key do not belong
    /// together.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
    /// A certificate or key could not be made.
    #[error("certificate: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A certificate asked for that is not issued (a device certificate, a server certificate
    /// without a name, a client certificate without a name).
    #[error("refused: {0}")]
    Refused(&'static str),
    /// A client certificate names no role.
    #[error("no valid role: {0}")]
    NoRole(&'static str),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> PkiError + 'a {
    move |source| PkiError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

fn bad_file(path: &Path, why: String) -> PkiError {
    PkiError::File {
        path: path.to_path_buf(),
        why,
    }
}

/// The organizational unit that names `role` in a client certificate: `sls-frontend`,
/// `sls-admin` (and `sls-device`, which no certificate carries).
#[must_use]
pub fn role_unit(role: Role) -> &'static str {
    match role {
        Role::Frontend => "sls-frontend",
        Role::Admin => "sls-admin",
        Role::Device => "sls-device",
    }
}

/// The role named by a client certificate's subject (its organizational unit): frontend or
/// admin. The certificate's signature is not checked here: the TLS handshake has verified it
/// against the CA before this is asked.
///
/// # Errors
/// [`PkiError::NoRole`]: the certificate cannot be parsed, or names neither role.
pub fn role_from_cert(der: &CertificateDer<'_>) -> Result<Role, PkiError> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|_| PkiError::NoRole("unparsable certificate"))?;
    for ou in cert.subject().iter_organizational_unit() {
        match ou.as_str() {
            Ok(unit) if unit == role_unit(Role::Frontend) => return Ok(Role::Frontend),
            Ok(unit) if unit == role_unit(Role::Admin) => return Ok(Role::Admin),
            _ => {}
        }
    }
    Err(PkiError::NoRole("certificate names no role"))
}

/// Writes `contents` to a new file `path` of mode `mode`; an existing file is not replaced.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io("writing", path))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(io("writing", path))
}

/// Writes a certificate and its key as a pair of new files, the key first (mode 0600); if the
/// certificate cannot be written, the key just written is removed again.
fn write_pair(cert: &Path, cert_pem: &str, key: &Path, key_pem: &str) -> Result<(), PkiError> {
    for path in [cert, key] {
        if path.exists() {
            return Err(bad_file(
                path,
                "already exists (not replaced: remove it first to make a new one)".into(),
            ));
        }
    }
    write_new(key, key_pem.as_bytes(), 0o600)?;
    write_new(cert, cert_pem.as_bytes(), 0o644).inspect_err(|_| {
        let _ = std::fs::remove_file(key);
    })
}

/// A certificate authority: its certificate (PEM) and its key pair. Debug output leaves the
/// key out.
pub struct Ca {
    cert_pem: String,
    key: KeyPair,
    /// The CA as rcgen signs with it (made from `cert_pem` and `key`).
    issuer: Certificate,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed CA, common name [`CA_NAME`], allowed to sign certificates; a new P-256
    /// key. Nothing is written: see [`Ca::save`].
    ///
    /// # Errors
    /// The key or the certificate could not be made.
    pub fn create() -> Result<Ca, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, CA_NAME);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
            issuer: cert,
        })
    }

    /// The CA kept in `dir`: `dir/ca.pem` (its certificate) and `dir/ca.key` (its key).
    ///
    /// # Errors
    /// A file cannot be read, is not a certificate or a key in PEM, or the key is not the
    /// certificate's; the error names the file.
    pub fn load(dir: &Path) -> Result<Ca, PkiError> {
        let pem_path = dir.join("ca.pem");
        let key_path = dir.join("ca.key");
        let cert_pem = std::fs::read_to_string(&pem_path).map_err(io("reading", &pem_path))?;
        let params = CertificateParams::from_ca_cert_pem(&cert_pem)
            .map_err(|e| bad_file(&pem_path, format!("not a CA certificate in PEM ({e})")))?;
        let key_text =
            Zeroizing::new(std::fs::read_to_string(&key_path).map_err(io("reading", &key_path))?);
        let key = KeyPair::from_pem(&key_text)
            .map_err(|e| bad_file(&key_path, format!("not a private key in PEM ({e})")))?;
        let (_, pem) = x509_parser::pem::parse_x509_pem(cert_pem.as_bytes())
            .map_err(|e| bad_file(&pem_path, format!("not a certificate in PEM ({e})")))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| bad_file(&pem_path, format!("not a certificate in PEM ({e})")))?;
        if cert.public_key().raw != key.public_key_der().as_slice() {
            return Err(bad_file(
                &key_path,
                format!("is not the key of {}", pem_path.display()),
            ));
        }
        let issuer = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem,
            key,
            issuer,
        })
    }

    /// Writes the CA to `dir` (created if missing): `ca.pem`, and `ca.key` with mode 0600.
    /// An existing file is never replaced (that would orphan every certificate the old CA
    /// signed): the error names it.
    ///
    /// # Errors
    /// A file exists already, or cannot be written.
    pub fn save(&self, dir: &Path) -> Result<(), PkiError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let key_pem = Zeroizing::new(self.key.serialize_pem());
        write_pair(
            &dir.join("ca.pem"),
            &self.cert_pem,
            &dir.join("ca.key"),
            &key_pem,
        )
    }

    /// The CA's certificate, PEM: what clients and servers trust.
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A new client certificate and key for `role`, signed by this CA: common name `name`,
    /// organizational unit [`role_unit`]`(role)`, extended key usage `clientAuth`.
    ///
    /// # Errors
    /// [`PkiError::Refused`] for [`Role::Device`] (IB Key apps present no certificate) or an
    /// empty `name`; the certificate could not be made.
    pub fn issue_client(&self, role: Role, name: &str) -> Result<Issued, PkiError> {
        if role == Role::Device {
            return Err(PkiError::Refused(
                "no client certificate for the device role: IB Key apps present none, they \
                 prove their key in the protocol",
            ));
        }
        if name.trim().is_empty() {
            return Err(PkiError::Refused("a client certificate needs a name"));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, role_unit(role));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    /// A new server certificate and key, signed by this CA, for the DNS names `dns` and the IP
    /// addresses `ips` (its subject alternative names); extended key usage `serverAuth`.
    ///
    /// # Errors
    /// [`PkiError::Refused`] when both are empty; a name that is not a DNS name
    /// ([`PkiError::Rcgen`]).
    pub fn issue_server(&self, dns: &[String], ips: &[IpAddr]) -> Result<Issued, PkiError> {
        if dns.is_empty() && ips.is_empty() {
            return Err(PkiError::Refused(
                "a server certificate needs at least one DNS name or IP address",
            ));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, "server");
        for name in dns {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.as_str().try_into()?));
        }
        for ip in ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<Issued, PkiError> {
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: Zeroizing::new(key.serialize_pem()),
        })
    }
}

/// A certificate just issued and its new private key, both PEM. The key is wiped from memory
/// when dropped, and Debug output leaves it out.
pub struct Issued {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM (PKCS#8).
    pub key_pem: Zeroizing<String>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl Issued {
    /// Writes `dir/<stem>.pem` and `dir/<stem>.key` (mode 0600), creating `dir` if missing,
    /// and returns their paths (certificate, key). An existing file is never replaced (it may
    /// be a key in use): the error names it.
    ///
    /// # Errors
    /// A file exists already, or cannot be written.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf), PkiError> {
        std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        write_pair(&cert, &self.cert_pem, &key, &self.key_pem)?;
        Ok((cert, key))
    }
}

#[cfg(test)]
mod tests;
