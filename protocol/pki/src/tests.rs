#![allow(clippy::unwrap_used)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::PermissionsExt;

use rustls::pki_types::pem::PemObject;
use x509_parser::extensions::GeneralName;

use super::*;

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn an_issued_client_certificate_reads_back_as_its_role() {
    let ca = Ca::create().unwrap();
    for role in [Role::Frontend, Role::Admin] {
        let issued = ca.issue_client(role, "fe-1").unwrap();
        let cert = der(&issued.cert_pem);
        assert_eq!(role_from_cert(&cert).unwrap(), role);
        let (_, x) = x509_parser::parse_x509_certificate(&cert).unwrap();
        let cn: Vec<_> = x.subject().iter_common_name().collect();
        assert_eq!(cn[0].as_str().unwrap(), "fe-1");
        let eku = x.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        // Signed by the CA: its issuer is the CA's subject and the CA's key verifies it.
        let ca_der = der(ca.cert_pem());
        let (_, ca_x) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
        assert_eq!(x.issuer(), ca_x.subject());
        x.verify_signature(Some(ca_x.public_key())).unwrap();
    }
}

#[test]
fn a_frontend_certificate_is_not_an_admin_certificate() {
    let ca = Ca::create().unwrap();
    let fe = ca.issue_client(Role::Frontend, "admin").unwrap();
    // Named "admin", but its unit says frontend: the name grants nothing.
    assert_eq!(role_from_cert(&der(&fe.cert_pem)).unwrap(), Role::Frontend);
    assert_ne!(role_from_cert(&der(&fe.cert_pem)).unwrap(), Role::Admin);
    // Neither the CA's nor a server certificate names a role.
    assert!(matches!(
        role_from_cert(&der(ca.cert_pem())),
        Err(PkiError::NoRole(_))
    ));
    let server = ca.issue_server(&["localhost".into()], &[]).unwrap();
    assert!(matches!(
        role_from_cert(&der(&server.cert_pem)),
        Err(PkiError::NoRole(_))
    ));
    assert!(matches!(
        role_from_cert(&CertificateDer::from(b"garbage".to_vec())),
        Err(PkiError::NoRole(_))
    ));
}

#[test]
fn device_and_nameless_certificates_are_refused() {
    let ca = Ca::create().unwrap();
    assert!(matches!(
        ca.issue_client(Role::Device, "app"),
        Err(PkiError::Refused(_))
    ));
    assert!(matches!(
        ca.issue_client(Role::Admin, " "),
        Err(PkiError::Refused(_))
    ));
    assert!(matches!(
        ca.issue_server(&[], &[]),
        Err(PkiError::Refused(_))
    ));
    assert_eq!(role_unit(Role::Frontend), "sls-frontend");
    assert_eq!(role_unit(Role::Admin), "sls-admin");
    assert_eq!(role_unit(Role::Device), "sls-device");
}

#[test]
fn a_server_certificate_has_the_names_asked() {
    let ca = Ca::create().unwrap();
    let dns = vec!["sls.example.com".to_string(), "localhost".to_string()];
    let ips = [
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    let issued = ca.issue_server(&dns, &ips).unwrap();
    let cert = der(&issued.cert_pem);
    let (_, x) = x509_parser::parse_x509_certificate(&cert).unwrap();
    let san = x.subject_alternative_name().unwrap().unwrap().value;
    let mut names = Vec::new();
    let mut addrs = Vec::new();
    for n in &san.general_names {
        match n {
            GeneralName::DNSName(d) => names.push((*d).to_string()),
            GeneralName::IPAddress(b) => addrs.push(b.to_vec()),
            other => panic!("unexpected SAN {other:?}"),
        }
    }
    assert_eq!(names, dns);
    assert_eq!(
        addrs,
        vec![vec![10, 0, 0, 7], Ipv6Addr::LOCALHOST.octets().to_vec()]
    );
    let eku = x.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    // Only IP addresses is enough; a name that is no DNS name is refused.
    ca.issue_server(&[], &ips[..1]).unwrap();
    assert!(ca.issue_server(&["bad name é".into()], &[]).is_err());
}

#[test]
fn a_saved_ca_loads_and_still_signs_for_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tls");
    let ca = Ca::create().unwrap();
    ca.save(&dir).unwrap();
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    let loaded = Ca::load(&dir).unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    let issued = loaded.issue_client(Role::Admin, "ops").unwrap();
    let issued_der = der(&issued.cert_pem);
    let (_, x) = x509_parser::parse_x509_certificate(&issued_der).unwrap();
    let ca_der = der(ca.cert_pem());
    let (_, ca_x) = x509_parser::parse_x509_certificate(&ca_der).unwrap();
    x.verify_signature(Some(ca_x.public_key())).unwrap();
    // Saving again never replaces the CA: it would orphan every certificate it signed.
    let again = Ca::create().unwrap().save(&dir).unwrap_err().to_string();
    assert!(
        again.contains("ca.pem") && again.contains("already exists"),
        "{again}"
    );
    assert_eq!(Ca::load(&dir).unwrap().cert_pem(), ca.cert_pem());
}

#[test]
fn a_ca_that_cannot_be_loaded_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = Ca::load(dir).unwrap_err().to_string();
    assert!(e.contains("ca.pem"), "{e}");
    Ca::create().unwrap().save(dir).unwrap();
    let other = tempfile::tempdir().unwrap();
    Ca::create().unwrap().save(other.path()).unwrap();
    let good_key = std::fs::read(dir.join("ca.key")).unwrap();
    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "ca.pem",
            b"garbage\n".to_vec(),
            "ca.pem: not a CA certificate",
        ),
        ("ca.key", b"garbage\n".to_vec(), "ca.key: not a private key"),
        (
            "ca.key",
            std::fs::read(other.path().join("ca.key")).unwrap(),
            "ca.key: is not the key of",
        ),
    ];
    let good_pem = std::fs::read(dir.join("ca.pem")).unwrap();
    for (name, bytes, want) in cases {
        std::fs::write(dir.join(name), bytes).unwrap();
        let e = Ca::load(dir).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
        std::fs::write(dir.join("ca.pem"), &good_pem).unwrap();
        std::fs::write(dir.join("ca.key"), &good_key).unwrap();
        Ca::load(dir).unwrap();
    }
}

#[test]
fn issued_files_are_written_once_with_a_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("new").join("certs");
    let ca = Ca::create().unwrap();
    let issued = ca.issue_client(Role::Frontend, "fe").unwrap();
    let (cert, key) = issued.write(&dir, "fe").unwrap();
    assert_eq!(
        (cert.clone(), key.clone()),
        (dir.join("fe.pem"), dir.join("fe.key"))
    );
    assert_eq!(std::fs::read_to_string(&cert).unwrap(), issued.cert_pem);
    assert_eq!(std::fs::read_to_string(&key).unwrap(), *issued.key_pem);
    assert_eq!(mode(&key), 0o600);
    // A second issue to the same stem does not replace a key in use.
    let e = ca
        .issue_client(Role::Frontend, "fe")
        .unwrap()
        .write(&dir, "fe")
        .unwrap_err()
        .to_string();
    assert!(e.contains("fe.pem") && e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), *issued.key_pem);
    // The key never shows in Debug output.
    let shown = format!("{issued:?} {ca:?}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}
