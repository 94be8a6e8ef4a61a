//! `bookstore backup` and `bookstore restore`: a consistent copy of the
//! embedded deployment (the two SQLite databases, the signing and
//! verification keys, the service token), taken while the stack serves
//! writes, and a data directory made from one.
//!
//! Each database is copied with SQLite's `VACUUM INTO`, inside one read
//! transaction: in WAL mode a reader never blocks the writer, so writes go on
//! while the copy is made, and the copy is the database as of the moment the
//! read began (never a torn file, as copying the files would give). The two
//! databases are copied one after the other, each consistent in itself, as
//! the services are: books-service learns of deleted users from the
//! revocation feed and deletes their books when it starts on the restored
//! data.
//!
//! PostgreSQL deployments back up with `pg_dump` (docs/operations.md, "Backup and
//! restore"); these commands refuse PostgreSQL URLs.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sqlx::Connection as _;

use crate::migrate::{migrate_book_database, migrate_user_database};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "manifest.json";
/// The manifest format this version writes and reads.
const FORMAT: u32 = 1;

/// Where the backup goes; the sources are the data directory's files (or
/// the SQLite URLs in `AUTH_DATABASE_URL` / `BOOKS_DATABASE_URL`).
#[derive(Debug, Clone, clap::Args)]
pub struct Backup {
    /// Directory to write the backup to; created if missing, must be empty.
    #[arg(long)]
    pub to: PathBuf,
    /// The user database, if not the data directory's auth.db (SQLite only).
    #[arg(long, env = "AUTH_DATABASE_URL", hide_env_values = true)]
    pub auth_database_url: Option<String>,
    /// The book database, if not the data directory's books.db (SQLite only).
    #[arg(long, env = "BOOKS_DATABASE_URL", hide_env_values = true)]
    pub books_database_url: Option<String>,
}

/// Which backup to restore; the target is `--data-dir`.
#[derive(Debug, Clone, clap::Args)]
pub struct Restore {
    /// A directory `bookstore backup` wrote.
    #[arg(long)]
    pub from: PathBuf,
    /// Restore into a data directory that is not empty, replacing the files
    /// the backup holds (stop the stack first).
    #[arg(long)]
    pub force: bool,
}

/// What a backup holds, written last: a directory without it is not a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// The `bookstore` version that wrote it.
    pub bookstore_version: String,
    /// Unix seconds when the backup began.
    pub created_at: u64,
    /// The newest migration applied to each database.
    pub schema_versions: SchemaVersions,
    pub files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct SchemaVersions {
    pub auth: i64,
    pub books: i64,
}

/// One file of a backup, by its name in the backup and in a data directory.
#[derive(Debug, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub bytes: u64,
    /// SHA-256, hex.
    pub sha256: String,
    /// A secret (key or token): restored readable by its owner only.
    pub secret: bool,
}

/// The files of the embedded deployment, as the all-in-one names them.
pub struct Sources {
    pub auth_database_url: String,
    pub books_database_url: String,
    pub signing_key_file: PathBuf,
    /// Verification keys (a rotation's next and previous), by path.
    pub verification_key_files: Vec<PathBuf>,
    pub service_token_file: PathBuf,
}

const AUTH_DB: &str = "auth.db";
const BOOKS_DB: &str = "books.db";

impl Backup {
    pub async fn run(&self, sources: &Sources) -> anyhow::Result<()> {
        let started = Instant::now();
        let created_at = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
        prepare_empty_dir(&self.to, false)?;
        let auth_url = self.auth_database_url.as_deref().unwrap_or(&sources.auth_database_url);
        let books_url = self.books_database_url.as_deref().unwrap_or(&sources.books_database_url);
        let auth = copy_database(auth_url, &self.to.join(AUTH_DB)).await.context("the user database")?;
        let books = copy_database(books_url, &self.to.join(BOOKS_DB)).await.context("the book database")?;
        let mut files = vec![entry(&self.to, AUTH_DB, false)?, entry(&self.to, BOOKS_DB, false)?];
        let mut secrets = vec![(&sources.signing_key_file, true)];
        secrets.extend(sources.verification_key_files.iter().map(|path| (path, true)));
        secrets.push((&sources.service_token_file, false));
        for (path, required) in secrets {
            if !path.exists() && !required {
                continue;
            }
            let name = file_name(path)?;
            anyhow::ensure!(
                files.iter().all(|file| file.name != name),
                "two files to back up are named {name}: {}",
                path.display()
            );
            let contents = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            write_durably(&self.to.join(&name), &contents, true)?;
            files.push(entry(&self.to, &name, true)?);
        }
        let manifest = Manifest {
            format: FORMAT,
            bookstore_version: env!("CARGO_PKG_VERSION").to_owned(),
            created_at,
            schema_versions: SchemaVersions { auth, books },
            files,
        };
        write_durably(&self.to.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?, false)?;
        println!(
            "backed up {} files to {} in {:.2} s (schema versions: auth {auth}, books {books})",
            manifest.files.len(),
            self.to.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

impl Restore {
    /// Checks the backup in full, then writes its files into `data_dir` and
    /// opens both databases once (which migrates an older schema, and fails
    /// on one newer than this version knows).
    pub async fn run(&self, data_dir: &Path) -> anyhow::Result<()> {
        let manifest = read_manifest(&self.from)?;
        for file in &manifest.files {
            verify(&self.from, file)?;
        }
        for name in [AUTH_DB, BOOKS_DB] {
            anyhow::ensure!(manifest.files.iter().any(|file| file.name == name), "the backup has no {name}");
        }
        prepare_empty_dir(data_dir, self.force)?;
        for file in &manifest.files {
            let contents = std::fs::read(self.from.join(&file.name))?;
            write_durably(&data_dir.join(&file.name), &contents, file.secret)?;
            if file.name == AUTH_DB || file.name == BOOKS_DB {
                // Stale WAL files of a database this replaces must not be
                // replayed over it.
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(data_dir.join(format!("{}{suffix}", file.name)));
                }
            }
        }
        let newer = "its schema is newer than this bookstore knows: restore with the version that wrote it";
        migrate_user_database(&sqlite_url(&data_dir.join(AUTH_DB)))
            .await
            .with_context(|| format!("restored {AUTH_DB}: {newer}"))?;
        migrate_book_database(&sqlite_url(&data_dir.join(BOOKS_DB)))
            .await
            .with_context(|| format!("restored {BOOKS_DB}: {newer}"))?;
        println!(
            "restored {} files from {} (made {} by bookstore {}) into {}",
            manifest.files.len(),
            self.from.display(),
            manifest.created_at,
            manifest.bookstore_version,
            data_dir.display()
        );
        Ok(())
    }
}

/// Copies a live SQLite database to `to` with `VACUUM INTO` (one read
/// transaction: writers go on); the copy's newest migration.
async fn copy_database(url: &str, to: &Path) -> anyhow::Result<i64> {
    let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
        anyhow::bail!(
            "{} is not a SQLite database: back PostgreSQL up with pg_dump (docs/operations.md, \"Backup and restore\")",
            bookstore_database::redact_password(url)
        );
    };
    let path = path.split('?').next().unwrap_or(path);
    anyhow::ensure!(
        Path::new(path).exists(),
        "{path} does not exist: point --data-dir at the directory the stack runs in"
    );
    let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{path}"))
        .await
        .with_context(|| format!("cannot open {path}"))?;
    let target = to.to_str().context("the backup directory's path is not UTF-8")?;
    sqlx::query("vacuum into $1")
        .bind(target)
        .execute(&mut connection)
        .await
        .with_context(|| format!("cannot copy {path} to {}", to.display()))?;
    connection.close().await?;
    // VACUUM INTO writes without syncing: make the copy durable.
    std::fs::File::open(to)?.sync_all()?;
    schema_version(to).await
}

async fn schema_version(database: &Path) -> anyhow::Result<i64> {
    let mut connection = sqlx::SqliteConnection::connect(&sqlite_url(database)).await?;
    let version: Option<i64> = sqlx::query_scalar("select max(version) from _sqlx_migrations where success")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    version.context("the database has no migrations applied")
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn file_name(path: &Path) -> anyhow::Result<String> {
    path.file_name()
        .and_then(|name| name.to_str())
        .map(str::to_owned)
        .with_context(|| format!("{} has no file name", path.display()))
}

fn entry(dir: &Path, name: &str, secret: bool) -> anyhow::Result<FileEntry> {
    let contents = std::fs::read(dir.join(name))?;
    Ok(FileEntry { name: name.to_owned(), bytes: contents.len() as u64, sha256: sha256_hex(&contents), secret })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn read_manifest(dir: &Path) -> anyhow::Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read(&path)
        .with_context(|| format!("{} is not a backup: cannot read {}", dir.display(), path.display()))?;
    let manifest: Manifest =
        serde_json::from_slice(&text).with_context(|| format!("{} is malformed", path.display()))?;
    anyhow::ensure!(
        manifest.format == FORMAT,
        "{} has format {}; this bookstore reads format {FORMAT}",
        path.display(),
        manifest.format
    );
    for file in &manifest.files {
        anyhow::ensure!(
            !file.name.is_empty() && file.name != MANIFEST && !file.name.contains(['/', '\\']) && file.name != "..",
            "{} names a file outside the backup: {:?}",
            path.display(),
            file.name
        );
    }
    Ok(manifest)
}

/// Checks a backup file's size and checksum against the manifest.
fn verify(dir: &Path, file: &FileEntry) -> anyhow::Result<()> {
    let path = dir.join(&file.name);
    let contents = std::fs::read(&path).with_context(|| format!("the backup lacks {}", path.display()))?;
    anyhow::ensure!(
        contents.len() as u64 == file.bytes && sha256_hex(&contents) == file.sha256,
        "{} does not match the manifest (size or SHA-256 differs): the backup is damaged",
        path.display()
    );
    Ok(())
}

/// Creates `dir` if missing; refuses a non-empty one unless `force`.
fn prepare_empty_dir(dir: &Path, force: bool) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let non_empty = std::fs::read_dir(dir)?.next().is_some();
    anyhow::ensure!(
        !non_empty || force,
        "{} is not empty: choose an empty directory{}",
        dir.display(),
        if force { "" } else { " (restore --force replaces the files a backup holds)" }
    );
    Ok(())
}

/// Writes a file so that it is whole on disk before this returns (temp
/// file, fsync, rename, fsync of the directory); secrets get mode 0600.
fn write_durably(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    use std::io::Write as _;
    let temp = path.with_extension("partial");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, if secret { 0o600 } else { 0o644 });
    let mut file = options.open(&temp).with_context(|| format!("cannot create {}", temp.display()))?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temp, path).with_context(|| format!("cannot write {}", path.display()))?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
