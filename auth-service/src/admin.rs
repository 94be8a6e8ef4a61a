//! Admin commands: an admin exists only by one of these, never by
//! registration. Shared by the `auth-service` and `bookstore` binaries, so
//! messages name the binary that runs them.

use bookstore_proto::UnixMicros;
use bookstore_proto::prost_types::Timestamp;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use bookstore_tokens::{PublicJwk, SigningKey};

use crate::config::Settings;
use crate::store::UserRecord;

/// Admin commands of `auth-service` (and of `bookstore`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Creates an admin user.
    ///
    /// The password is read from `BOOKSTORE_ADMIN_PASSWORD`, or else from the
    /// first line of stdin (so it stays out of the shell history and `ps`).
    /// It follows the same rules as registration: 8 to 1024 bytes.
    #[command(after_help = "Examples:
  BOOKSTORE_ADMIN_PASSWORD='a long password' bookstore create-admin --name root
  pass show bookstore/root | bookstore create-admin --name root")]
    CreateAdmin {
        /// Name of the new admin (1..=64 characters, no `:`).
        #[arg(long)]
        name: String,
    },
    /// Writes a new Ed25519 token signing key (PKCS#8 PEM) to a file.
    ///
    /// For deployments whose auth-service replicas share one key
    /// (`AUTH_SIGNING_KEY_FILE` with `AUTH_GENERATE_SIGNING_KEY=false`). The
    /// file is written with mode 0600; an existing file is never overwritten.
    /// To replace the key of a running deployment, use `rotate-signing-key`.
    #[command(after_help = "Example:
  bookstore generate-signing-key --out deploy/secrets/auth-signing-key.pem")]
    GenerateSigningKey {
        /// Where to write the key; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
    /// Writes a new service token (the shared secret our services present
    /// for the RPCs only they may call) to a file, readable by its owner only.
    ///
    /// auth-service generates its token file on first start by itself; this
    /// is for deployments that hand one file to every auth-service and
    /// books-service replica (AUTH_SERVICE_TOKEN_FILE, BOOKS_SERVICE_TOKEN_FILE).
    #[command(after_help = "Example:
  bookstore generate-service-token --out /run/secrets/service-token")]
    GenerateServiceToken {
        /// Where to write the token; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
    },
    /// Lists every user: name, admin or not, public id, creation time (UTC).
    ///
    /// Reads the user database directly (no running service or token needed).
    /// `--json` prints a JSON array instead of the table, for scripts.
    #[command(after_help = "Examples:
  bookstore list-users
  bookstore list-users --json | jq -r '.[] | select(.admin) | .name'
  auth-service --database-url postgres://bookstore@db/bookstore_auth list-users")]
    ListUsers {
        /// Print a JSON array of {name, admin, public_id, created_at}.
        #[arg(long)]
        json: bool,
    },
    /// Makes an existing user an admin (or, with --revoke, a user again).
    ///
    /// Takes effect at once: admin rights are checked against the database on
    /// every call that needs them, whatever the user's token says.
    #[command(after_help = "Examples:
  bookstore promote-admin --name alice
  bookstore promote-admin --name alice --revoke")]
    PromoteAdmin {
        /// Name of the existing user (case does not matter).
        #[arg(long)]
        name: String,
        /// Take admin rights away instead.
        #[arg(long)]
        revoke: bool,
    },
    /// Replaces the token signing key with no failed request, in two runs.
    ///
    /// Works on the files next to the signing key file (`AUTH_SIGNING_KEY_FILE`;
    /// for `bookstore`, `auth-signing-key.pem` in the data directory):
    ///
    /// First run: writes the next key to `auth-signing-key.next.pem`. Publish it
    /// (add it to `AUTH_VERIFICATION_KEY_FILES` and restart the auth-service
    /// replicas) and wait until every books-service has fetched the JWKS.
    ///
    /// Second run: keeps the current key's public half in
    /// `auth-signing-key.previous.pub.pem` (its private half is gone) and makes
    /// the next key the signing key. Swap the two files in
    /// `AUTH_VERIFICATION_KEY_FILES`, restart the replicas; after one token
    /// lifetime, remove the previous key from it and delete the file.
    ///
    /// Each run prints exactly what to change and restart. The all-in-one
    /// `bookstore` reads both files from its data directory by itself: restart it
    /// after each run.
    #[command(after_help = "Examples:
  bookstore rotate-signing-key                  # the all-in-one's data/auth-signing-key.pem
  auth-service --signing-key-file /run/secrets/auth-signing-key.pem rotate-signing-key")]
    RotateSigningKey,
    /// Ends every session of a user: their refresh tokens stop working at
    /// once, their access tokens within books-service's revocation refresh
    /// delay.
    RevokeSessions {
        /// Name of the existing user.
        #[arg(long)]
        name: String,
    },
}

impl AdminCommand {
    /// Runs the command against the database and keys `settings` name.
    pub async fn run(&self, settings: &Settings) -> anyhow::Result<()> {
        match self {
            Self::GenerateSigningKey { out } => {
                let key = SigningKey::generate();
                crate::keys::write_private_file(out, &key.to_pkcs8_pem()?, false)?;
                println!("wrote signing key {} (kid {})", out.display(), key.kid());
                Ok(())
            }
            Self::GenerateServiceToken { out } => {
                let token = bookstore_tokens::ServiceToken::generate();
                crate::keys::write_private_file(out, &format!("{}\n", token.expose()), false)?;
                println!("wrote service token {}", out.display());
                Ok(())
            }
            Self::RotateSigningKey => rotate_signing_key(settings),
            Self::ListUsers { json } => {
                let store = crate::store::connect(&settings.database_url).await?;
                let users = all_users(&*store).await;
                store.close().await;
                print!("{}", if *json { users_json(&users?) } else { users_table(&users?) });
                Ok(())
            }
            Self::CreateAdmin { name } => {
                let accounts = crate::accounts(settings).await?;
                let created = accounts.register(name, admin_password()?, true).await;
                accounts.close().await;
                let user = created.map_err(|error| match error {
                    crate::Error::AlreadyExists(_) => anyhow::anyhow!(
                        "a user named {name:?} exists already; make it an admin with `{} promote-admin --name {name}`",
                        bin_name()
                    ),
                    other => other.into(),
                })?;
                println!("created admin {:?} (public_id {})", user.name, user.public_id);
                Ok(())
            }
            Self::PromoteAdmin { name, revoke } => {
                let accounts = crate::accounts(settings).await?;
                let updated = accounts.set_admin(name, !revoke).await;
                accounts.close().await;
                let user = updated.map_err(|error| no_user_named(name, error))?;
                println!("user {:?} admin: {}", user.name, user.admin);
                Ok(())
            }
            Self::RevokeSessions { name } => {
                let accounts = crate::accounts(settings).await?;
                let ended = accounts.revoke_sessions(name).await;
                accounts.close().await;
                let ended = ended.map_err(|error| no_user_named(name, error))?;
                println!("ended {ended} session(s) of {name:?}");
                Ok(())
            }
        }
    }
}

/// `NotFound` from a command naming a user, as a message that tells how to
/// list the users; any other error as it is.
fn no_user_named(name: &str, error: crate::Error) -> anyhow::Error {
    match error {
        crate::Error::NotFound(_) => {
            anyhow::anyhow!("no user named {name:?}; list users with `{} list-users`", bin_name())
        }
        other => other.into(),
    }
}

/// The name the binary was started by (`bookstore` or `auth-service`), for
/// messages that tell the next command to run.
fn bin_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|arg0| Path::new(&arg0).file_name().map(|name| name.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "bookstore".to_owned())
}

async fn all_users(store: &dyn crate::store::UserStore) -> crate::Result<Vec<UserRecord>> {
    let mut users: Vec<UserRecord> = Vec::new();
    loop {
        let page = store.list_users(users.last().map_or(0, |user| user.id), 500).await?;
        if page.is_empty() {
            return Ok(users);
        }
        users.extend(page);
    }
}

/// RFC 3339, whole seconds, UTC.
fn created(user: &UserRecord) -> String {
    let whole_seconds = UnixMicros(user.created_at).secs() * 1_000_000;
    Timestamp::from(UnixMicros(whole_seconds)).to_string()
}

fn users_table(users: &[UserRecord]) -> String {
    let width = users.iter().map(|user| user.name.chars().count()).max().unwrap_or(0).max("NAME".len());
    let mut table = format!("{:<width$}  ADMIN  {:<36}  CREATED\n", "NAME", "PUBLIC_ID");
    for user in users {
        let admin = if user.admin { "yes" } else { "no" };
        table += &format!("{:<width$}  {admin:<5}  {:<36}  {}\n", user.name, user.public_id, created(user));
    }
    table += &format!("{} user{}\n", users.len(), if users.len() == 1 { "" } else { "s" });
    table
}

fn users_json(users: &[UserRecord]) -> String {
    let users: Vec<serde_json::Value> = users
        .iter()
        .map(|user| {
            serde_json::json!({
                "name": user.name,
                "admin": user.admin,
                "public_id": user.public_id,
                "created_at": created(user),
            })
        })
        .collect();
    serde_json::Value::Array(users).to_string() + "\n"
}

/// The files of a rotation, next to the signing key file.
struct RotationFiles {
    signing: PathBuf,
    next: PathBuf,
    previous: PathBuf,
}

impl RotationFiles {
    fn beside(signing: &Path) -> Self {
        let stem = signing.file_stem().map_or_else(|| "auth-signing-key".into(), |stem| stem.to_string_lossy());
        Self {
            signing: signing.to_owned(),
            next: signing.with_file_name(format!("{stem}.next.pem")),
            previous: signing.with_file_name(format!("{stem}.previous.pub.pem")),
        }
    }
}

/// The verification key files a rotation leaves next to `signing_key_file`
/// that exist now: what the all-in-one adds to `AUTH_VERIFICATION_KEY_FILES`.
pub fn rotation_verification_files(signing_key_file: &Path) -> Vec<PathBuf> {
    let files = RotationFiles::beside(signing_key_file);
    [files.next, files.previous].into_iter().filter(|path| path.exists()).collect()
}

fn read_signing_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the signing key {}", path.display()))?;
    SigningKey::from_pkcs8_pem(&pem).with_context(|| format!("signing key {}", path.display()))
}

fn rotate_signing_key(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.signing_key.is_none(),
        "the signing key comes from AUTH_SIGNING_KEY, not a file: rotate it where that value is kept \
         (the steps are in docs/operations.md, \"Key rotation\"), or unset it to rotate {}",
        settings.signing_key_file.display()
    );
    let files = RotationFiles::beside(&settings.signing_key_file);
    let bin = bin_name();
    if !files.signing.exists() {
        anyhow::bail!(
            "no signing key at {}: nothing to rotate (pass the key file with --signing-key-file or \
             AUTH_SIGNING_KEY_FILE; bookstore's is auth-signing-key.pem in its --data-dir)",
            files.signing.display()
        );
    }
    let current = read_signing_key(&files.signing)?;
    if !files.next.exists() {
        if files.previous.exists() {
            anyhow::bail!(
                "the last rotation is not finished: {} still exists. Once a token lifetime \
                 (AUTH_TOKEN_TTL_SECS) has passed since that rotation, remove it from \
                 AUTH_VERIFICATION_KEY_FILES, restart the auth-service replicas, delete the file, \
                 and run `{bin} rotate-signing-key` again",
                files.previous.display()
            );
        }
        let next = SigningKey::generate();
        crate::keys::write_private_file(&files.next, &next.to_pkcs8_pem()?, false)?;
        println!("step 1 of 2 done: wrote the next signing key {} (kid {})", files.next.display(), next.kid());
        println!("{} (kid {}) still signs. Now publish the next key:", files.signing.display(), current.kid());
        println!("  1. add {} to AUTH_VERIFICATION_KEY_FILES of every auth-service replica", files.next.display());
        println!("     and restart them one at a time (JWKS then lists both keys);");
        println!("  2. wait BOOKS_JWKS_REFRESH_SECS (default 300 s) so every books-service has fetched it;");
        println!("  3. run `{bin} rotate-signing-key` again.");
        println!("(The all-in-one `bookstore` reads the file from its data directory: just restart it.)");
        return Ok(());
    }
    let next = read_signing_key(&files.next)?;
    let previous: PublicJwk = current.public_jwk().clone();
    // The previous key's public half first: if the switch below fails, the
    // old key still signs and the next one is still there to retry with.
    write_public_file(&files.previous, &current.to_public_key_pem()?)?;
    std::fs::rename(&files.next, &files.signing)
        .with_context(|| format!("cannot move {} to {}", files.next.display(), files.signing.display()))?;
    println!("step 2 of 2 done: {} now holds the next key (kid {})", files.signing.display(), next.kid());
    println!(
        "the previous key's public half is in {} (kid {}); its private half is gone",
        files.previous.display(),
        previous.kid
    );
    println!("Now:");
    println!("  1. in AUTH_VERIFICATION_KEY_FILES of every auth-service replica, replace");
    println!("     {} with {}", files.next.display(), files.previous.display());
    println!("     and restart them one at a time: they sign with the new key, old tokens stay valid;");
    println!("  2. after one token lifetime (AUTH_TOKEN_TTL_SECS, default 2700 s), remove it from");
    println!("     AUTH_VERIFICATION_KEY_FILES, restart the replicas and delete the file.");
    println!("(The all-in-one `bookstore`: restart it now, and delete the file after a token lifetime.)");
    Ok(())
}

/// A public key: no secret, but written atomically like the keys are.
fn write_public_file(path: &Path, contents: &str) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, contents).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))
}

fn admin_password() -> anyhow::Result<String> {
    if let Ok(password) = std::env::var("BOOKSTORE_ADMIN_PASSWORD") {
        return Ok(password);
    }
    eprintln!("password for the new admin (one line on stdin):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
