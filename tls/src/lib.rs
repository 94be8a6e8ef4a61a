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
