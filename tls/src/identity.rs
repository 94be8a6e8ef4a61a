//! Who is calling: the peer's address and, over TLS, its certificate.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use tonic::transport::server::TcpConnectInfo;
use x509_parser::extensions::GeneralName;

/// Certificates issued for one of our services carry the URI name
/// `spiffe://bookstore/SERVICE` (a SPIFFE ID), SERVICE one of
/// [`KNOWN_SERVICES`].
pub const SERVICE_URI_PREFIX: &str = "spiffe://bookstore/";

/// The services whose certificates may make the service-only calls.
pub const KNOWN_SERVICES: &[&str] = &["auth-service", "books-service", "gateway"];

/// What a gRPC server knows of the peer of a TLS connection (in each
/// request's extensions, as `TcpConnectInfo` is over plaintext).
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub remote_addr: Option<SocketAddr>,
    /// The certificate chain the peer presented, verified against the
    /// listener's client CA.
    pub certificates: Option<Arc<Vec<CertificateDer<'static>>>>,
}

/// The peer's address, over plaintext or TLS.
pub fn peer_addr<T>(request: &tonic::Request<T>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    match extensions.get::<TlsPeer>() {
        Some(peer) => peer.remote_addr,
        None => extensions.get::<TcpConnectInfo>().and_then(TcpConnectInfo::remote_addr),
    }
}

/// The certificate chain the peer presented, already verified against the
/// listener's client CA; `None` over plaintext or without one.
pub fn peer_certificates<T>(request: &tonic::Request<T>) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    request.extensions().get::<TlsPeer>().and_then(|peer| peer.certificates.clone())
}

/// The service a (verified) certificate was issued for, from its
/// `spiffe://bookstore/SERVICE` URI name; `None` for any other certificate
/// (a developer's or an app's client certificate).
pub fn service_identity(certificate: &CertificateDer<'_>) -> Option<&'static str> {
    let (_, parsed) = x509_parser::parse_x509_certificate(certificate).ok()?;
    let names = parsed.subject_alternative_name().ok()??;
    names.value.general_names.iter().find_map(|name| match name {
        GeneralName::URI(uri) => {
            let service = uri.strip_prefix(SERVICE_URI_PREFIX)?;
            KNOWN_SERVICES.iter().copied().find(|known| *known == service)
        }
        _ => None,
    })
}
