//! Where the token signing key and the service token come from.

use std::io::Write as _;
use std::path::Path;

use anyhow::Context as _;
use bookstore_tokens::{PublicJwk, ServiceToken, SigningKey};

use crate::config::Settings;

/// The signing key: the PEM in `AUTH_SIGNING_KEY` if set, else the key file,
/// generated on first start when allowed (single-instance deployments), so
/// a restart keeps every issued token valid.
pub fn load_signing_key(settings: &Settings) -> anyhow::Result<SigningKey> {
    if let Some(pem) = &settings.signing_key {
        return SigningKey::from_pkcs8_pem(pem).context("AUTH_SIGNING_KEY");
    }
    let path = &settings.signing_key_file;
    match std::fs::read_to_string(path) {
        Ok(pem) => SigningKey::from_pkcs8_pem(&pem).with_context(|| format!("signing key file {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound && settings.generate_signing_key => {
            let key = SigningKey::generate();
            write_private_file(path, &key.to_pkcs8_pem()?, true)?;
            tracing::info!(path = %path.display(), kid = key.kid(), "generated a new signing key");
            Ok(key)
        }
        Err(error) => Err(error).with_context(|| format!("cannot read signing key file {}", path.display())),
    }
}

/// The public keys of the verification key files, for the JWKS. A file holds
/// a public key (SPKI PEM) or a private one (PKCS#8 PEM; only its public half
/// is used).
pub fn load_verification_keys(settings: &Settings) -> anyhow::Result<Vec<PublicJwk>> {
    settings
        .verification_key_files
        .iter()
        .map(|path| {
            let pem = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
            PublicJwk::from_any_pem(&pem).with_context(|| format!("verification key {}", path.display()))
        })
        .collect()
}

/// The service token calls to service-only RPCs must carry:
/// `AUTH_SERVICE_TOKEN`, else the file's, generated on first start when
/// allowed (as the signing key is).
pub fn load_service_token(settings: &Settings) -> anyhow::Result<ServiceToken> {
    if let Some(text) = &settings.service_token {
        return ServiceToken::parse(text).context("AUTH_SERVICE_TOKEN");
    }
    let path = &settings.service_token_file;
    if settings.generate_service_token && !path.exists() {
        let token = ServiceToken::generate();
        write_private_file(path, &format!("{}\n", token.expose()), false)?;
        tracing::info!(path = %path.display(), "generated a new service token");
        return Ok(token);
    }
    ServiceToken::read(path)
        .context("set AUTH_SERVICE_TOKEN_FILE (or AUTH_SERVICE_TOKEN), or allow AUTH_GENERATE_SERVICE_TOKEN")
}

/// Writes a secret readable by the owner only, atomically (temp + rename),
/// so a crash never leaves half a key behind.
pub(crate) fn write_private_file(path: &Path, contents: &str, overwrite: bool) -> anyhow::Result<()> {
    if !overwrite && path.exists() {
        anyhow::bail!("{} exists already; not overwriting a key", path.display());
    }
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let temp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
