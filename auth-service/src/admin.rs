//! Admin commands: an admin exists only by one of these, never by
//! registration.

use std::io::BufRead as _;

use anyhow::Context as _;

use crate::config::Settings;

/// Admin commands of `auth-service` (and of `bookstore`).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Creates an admin user. The password is read from
    /// `BOOKSTORE_ADMIN_PASSWORD` or else from the first line of stdin.
    CreateAdmin {
        /// Name of the new admin.
        #[arg(long)]
        name: String,
    },
    /// Writes a new Ed25519 token signing key (PKCS#8 PEM) to a file, for
    /// deployments that share one key between replicas (or rotate keys).
    GenerateSigningKey {
        /// Where to write the key; refuses to overwrite.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Makes an existing user an admin (or, with --revoke, a user again).
    PromoteAdmin {
        /// Name of the existing user.
        #[arg(long)]
        name: String,
        /// Take admin rights away instead.
        #[arg(long)]
        revoke: bool,
    },
}

impl AdminCommand {
    /// Runs the command against the database and keys `settings` name.
    pub async fn run(&self, settings: &Settings) -> anyhow::Result<()> {
        if let Self::GenerateSigningKey { out } = self {
            let key = bookstore_tokens::SigningKey::generate();
            crate::keys::write_private_file(out, &key.to_pkcs8_pem()?, false)?;
            println!("wrote signing key {} (kid {})", out.display(), key.kid());
            return Ok(());
        }
        let accounts = crate::accounts(settings).await?;
        let outcome = match self {
            Self::CreateAdmin { name } => {
                let password = admin_password()?;
                let user = accounts.register(name, password, true).await?;
                println!("created admin {:?} (public_id {})", user.name, user.public_id);
                Ok(())
            }
            Self::PromoteAdmin { name, revoke } => {
                let user = accounts.set_admin(name, !revoke).await?;
                println!("user {:?} admin: {}", user.name, user.admin);
                Ok(())
            }
            Self::GenerateSigningKey { .. } => Ok(()),
        };
        accounts.close().await;
        outcome
    }
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
