//! TLS for Bookstore's listeners and the calls between its services.
//!
//! - [`ServerTls`]: a listener's certificate chain and key (and, for mutual
//!   TLS, the CA bundle client certificates must chain to), read from files.
//!   [`TlsListener`] accepts TLS connections with it, for tonic
//!   (`serve_with_incoming`) and axum (`axum::serve`) alike.
//! - [`ClientTls`]: the CA bundle a client verifies servers against, and the
//!   certificate it presents; [`ClientTls::connector`] is a connector for
//!   tonic channels.
//! - Both read their files again when they change (checked every
//!   [`RELOAD_INTERVAL`]) or on SIGHUP, while serving: new connections use the
//!   new certificates, open ones keep theirs. Files that do not load (a
//!   half-written key, a key that does not match its certificate) are
//!   reported and the previous certificates stay in use.
//! - [`service_identity`]: which of our services a peer certificate was issued
//!   for, from its `spiffe://bookstore/SERVICE` URI name.
//! - [`dev`]: a development CA and certificates for every service (rcgen).
//!
//! The TLS is rustls on *ring*; tonic's own TLS is not used because its
//! configuration is fixed when a server or channel is built, so certificates
//! could not rotate without a restart.

mod client;
pub mod dev;
mod identity;
mod reload;
mod server;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub use client::{ClientFiles, ClientTls, TlsConnector};
pub use identity::{KNOWN_SERVICES, SERVICE_URI_PREFIX, TlsPeer, peer_addr, peer_certificates, service_identity};
pub use server::{ClientAuth, ServerFiles, ServerTls, TlsConnection, TlsListener};

/// How often certificate files are checked for changes (SIGHUP checks at once).
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// ALPN for gRPC listeners: HTTP/2, and HTTP/1.1 for grpc-web.
pub const ALPN_GRPC: &[&[u8]] = &[b"h2", b"http/1.1"];
/// ALPN of gRPC clients: HTTP/2 only.
pub const ALPN_H2: &[&[u8]] = &[b"h2"];
/// ALPN for the gateway: HTTP/2 or HTTP/1.1, as the client prefers.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A file's bytes, with its path in the error.
fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_to_string(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn parse_certs(path: &Path, pem: &[u8]) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("{}: not a PEM certificate file", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "{}: no certificate in it", path.display());
    Ok(certs)
}

fn parse_key(path: &Path, pem: &[u8]) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(pem).with_context(|| format!("{}: no PEM private key in it", path.display()))
}

fn parse_roots(path: &Path, pem: &[u8]) -> anyhow::Result<Arc<RootCertStore>> {
    let mut roots = RootCertStore::empty();
    for cert in parse_certs(path, pem)? {
        roots.add(cert).with_context(|| format!("{}: a certificate is not a usable CA", path.display()))?;
    }
    Ok(Arc::new(roots))
}

/// The files a configuration is built from, read together so that one
/// reload sees one version of each.
struct Files(Vec<PathBuf>);

impl Files {
    fn read(&self) -> anyhow::Result<Vec<Vec<u8>>> {
        self.0.iter().map(|path| read(path)).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::dev::{DevCa, Leaf};
    use super::*;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn service_certificates_name_their_service_and_others_none() {
        let ca = DevCa::generate("test CA").unwrap();
        let books = ca.issue(&Leaf::service("books-service", &[])).unwrap();
        assert_eq!(service_identity(&der(&books.cert_pem)), Some("books-service"));
        let developer = ca.issue(&Leaf::client("developer")).unwrap();
        assert_eq!(service_identity(&der(&developer.cert_pem)), None);
        let mut impostor = Leaf::service("books-service", &[]);
        impostor.service = Some("billing-service".to_owned());
        assert_eq!(service_identity(&der(&ca.issue(&impostor).unwrap().cert_pem)), None, "not one of ours");
        assert_eq!(service_identity(&CertificateDer::from(vec![0x30, 0x00])), None, "not a certificate");
    }

    #[test]
    fn half_a_configuration_is_refused_with_the_variable_to_set() {
        let path = PathBuf::from("x.pem");
        let refused =
            |cert, key, ca, auth| ServerFiles::from_settings("AUTH", cert, key, ca, auth).unwrap_err().to_string();
        assert_eq!(refused(Some(&path), None, None, ClientAuth::Optional), "AUTH_TLS_CERT needs AUTH_TLS_KEY");
        assert_eq!(refused(None, Some(&path), None, ClientAuth::Optional), "AUTH_TLS_KEY needs AUTH_TLS_CERT");
        assert!(refused(None, None, Some(&path), ClientAuth::Optional).starts_with("AUTH_TLS_CLIENT_CA needs"));
        assert!(refused(None, None, None, ClientAuth::Required).starts_with("AUTH_TLS_CLIENT_AUTH=required needs"));
        assert!(ServerFiles::from_settings("AUTH", None, None, None, ClientAuth::Optional).unwrap().is_none());
        let client = ClientFiles::from_settings(["CA", "CERT", "KEY"], None, Some(&path), Some(&path));
        assert_eq!(client.unwrap_err().to_string(), "a client certificate (CERT) needs CA");
    }

    #[tokio::test]
    async fn files_that_do_not_load_keep_the_current_certificate() {
        let dir = tempfile::tempdir().unwrap();
        dev::write_dev_certs(dir.path()).unwrap();
        let files = ServerFiles {
            cert: dir.path().join("gateway.pem"),
            key: dir.path().join("gateway-key.pem"),
            client_ca: None,
            client_auth: ClientAuth::Optional,
        };
        let tls = ServerTls::load(&files, ALPN_HTTP).unwrap();
        let served = |tls: &ServerTls| tls.config.current();
        let before = served(&tls);
        // Another service's key: does not go with the certificate.
        std::fs::copy(dir.path().join("auth-service-key.pem"), &files.key).unwrap();
        tls.config.check();
        assert!(Arc::ptr_eq(&before, &served(&tls)), "a mismatched key must not be taken");
        // The matching key arrives: taken.
        dev::write_dev_certs(dir.path()).unwrap();
        tls.config.check();
        assert!(!Arc::ptr_eq(&before, &served(&tls)));
        // A missing file keeps what is served.
        let current = served(&tls);
        std::fs::remove_file(&files.cert).unwrap();
        tls.config.check();
        assert!(Arc::ptr_eq(&current, &served(&tls)));
        assert!(ServerTls::load(&files, ALPN_HTTP).is_err(), "but a start without it fails");
    }
}
