//! Development certificates: a CA, a certificate for each service and one
//! for tools such as grpcurl and curl. For trying TLS out and for tests; a
//! deployment takes its certificates from its own CA (cert-manager, Vault,
//! an internal PKI), with the same names.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};
use time::{Duration, OffsetDateTime};

use crate::{KNOWN_SERVICES, SERVICE_URI_PREFIX};

/// How long generated CA and leaf certificates are valid.
const CA_VALIDITY: Duration = Duration::days(5 * 365);
const LEAF_VALIDITY: Duration = Duration::days(365);

/// A certificate authority that issues certificates.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    key_pem: String,
}

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a certificate is issued for.
#[derive(Debug, Clone)]
pub struct Leaf {
    pub common_name: String,
    /// DNS names and IP addresses it is valid for.
    pub names: Vec<String>,
    /// One of [`KNOWN_SERVICES`]: the certificate identifies that service
    /// (a `spiffe://bookstore/SERVICE` URI name).
    pub service: Option<String>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Leaf {
    /// A service's certificate, for serving and as a client, valid for a
    /// year for localhost and `names`.
    pub fn service(service: &str, names: &[&str]) -> Self {
        let mut all = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
        all.extend(names.iter().map(|name| (*name).to_owned()));
        let now = OffsetDateTime::now_utc();
        Self {
            common_name: service.to_owned(),
            names: all,
            service: Some(service.to_owned()),
            not_before: now - Duration::hours(1),
            not_after: now + LEAF_VALIDITY,
        }
    }

    /// A client certificate that identifies no service (a developer, an app).
    pub fn client(common_name: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            common_name: common_name.to_owned(),
            names: Vec::new(),
            service: None,
            not_before: now - Duration::hours(1),
            not_after: now + LEAF_VALIDITY,
        }
    }
}

impl DevCa {
    /// A new CA with a new key.
    pub fn generate(common_name: &str) -> anyhow::Result<Self> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - Duration::hours(1);
        params.not_after = now + CA_VALIDITY;
        let cert = params.self_signed(&key)?;
        let key_pem = key.serialize_pem();
        Ok(Self { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
    }

    /// An existing CA, from its PEM certificate and key.
    pub fn load(cert_pem: &str, key_pem: &str) -> anyhow::Result<Self> {
        let key = KeyPair::from_pem(key_pem).context("the CA key")?;
        let issuer = Issuer::from_ca_cert_pem(cert_pem, key).context("the CA certificate")?;
        Ok(Self { issuer, cert_pem: cert_pem.to_owned(), key_pem: key_pem.to_owned() })
    }

    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Issues a certificate (with a new key) for `leaf`.
    pub fn issue(&self, leaf: &Leaf) -> anyhow::Result<Issued> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(leaf.names.clone())?;
        params.distinguished_name.push(DnType::CommonName, leaf.common_name.as_str());
        params.not_before = leaf.not_before;
        params.not_after = leaf.not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        if let Some(service) = &leaf.service {
            params.extended_key_usages.push(ExtendedKeyUsagePurpose::ServerAuth);
            params.subject_alt_names.push(SanType::URI(format!("{SERVICE_URI_PREFIX}{service}").try_into()?));
        }
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

/// Writes `ca.pem` (and its key `ca-key.pem`), `SERVICE.pem` and
/// `SERVICE-key.pem` for each service (valid for localhost, 127.0.0.1, ::1
/// and the service's name, as in the compose file), and
/// `client.pem`/`client-key.pem` for tools. An existing CA in `out` is kept
/// and the other certificates are issued anew, so running it again rotates
/// them. Returns the files written.
pub fn write_dev_certs(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let (ca_cert, ca_key) = (out.join("ca.pem"), out.join("ca-key.pem"));
    let mut written = Vec::new();
    let ca = if ca_cert.exists() && ca_key.exists() {
        DevCa::load(&crate::read_to_string(&ca_cert)?, &crate::read_to_string(&ca_key)?)
            .with_context(|| format!("the CA in {}", out.display()))?
    } else {
        let ca = DevCa::generate("Bookstore development CA")?;
        write_file(&ca_key, ca.key_pem(), true)?;
        write_file(&ca_cert, ca.cert_pem(), false)?;
        written.extend([ca_cert, ca_key]);
        ca
    };
    let mut leaves: Vec<(String, Leaf)> =
        KNOWN_SERVICES.iter().map(|service| ((*service).to_owned(), Leaf::service(service, &[service]))).collect();
    leaves.push(("client".to_owned(), Leaf::client("bookstore developer")));
    for (name, leaf) in leaves {
        let issued = ca.issue(&leaf)?;
        let (cert, key) = (out.join(format!("{name}.pem")), out.join(format!("{name}-key.pem")));
        // The key first: a server reloading in between sees a new key with
        // the old certificate, refuses that pair and keeps the old one.
        write_file(&key, &issued.key_pem, true)?;
        write_file(&cert, &issued.cert_pem, false)?;
        written.extend([cert, key]);
    }
    Ok(written)
}

/// Writes whole or not at all (a temporary file renamed over the old one),
/// private keys readable by their owner only.
fn write_file(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut file =
        tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    std::io::Write::write_all(&mut file, contents.as_bytes())?;
    #[cfg(unix)]
    if !private {
        use std::os::unix::fs::PermissionsExt as _;
        file.as_file().set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
