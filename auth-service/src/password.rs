//! argon2id password hashing on a small pool of dedicated threads, off the
//! async executor, with a bounded queue in front of it.
//!
//! Each thread owns one argon2 work area (19 MiB at the OWASP parameters)
//! and reuses it for every hash, so memory stays at `max_concurrent` x
//! 19 MiB however many logins arrive: `spawn_blocking` with a fresh buffer
//! per hash left hundreds of MiB with the allocator after a burst of logins
//! (measured: bench/run.sh).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use bookstore_runtime::Metrics;
use bookstore_runtime::metrics::Gauge;
use tokio::sync::{mpsc, oneshot};

use crate::domain::Password;
use crate::error::{Error, Result};

/// How long a request may wait for a place in the queue before it is
/// refused with `ResourceExhausted`: well inside the gateway's default
/// 10 s deadline, so REST callers see 429 rather than 504.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);
/// Hashes waiting for a thread, per thread.
const QUEUE_PER_THREAD: usize = 64;
/// Bytes of hash output.
const OUTPUT_LEN: usize = 32;

/// Work for a hashing thread, given that thread's argon2 work area.
type Job = Box<dyn FnOnce(&mut [Block]) + Send>;

/// Hashes and verifies passwords with argon2id at OWASP's parameters
/// (m = 19456 KiB, t = 2, p = 1).
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    jobs: mpsc::Sender<Job>,
    /// A hash of a random password: verified against when the user does not
    /// exist, so an unknown name costs what a wrong password costs.
    dummy_hash: Arc<str>,
    /// Hashes waiting for a thread (in the queue or for a place in it).
    waiting: Gauge,
    /// Hashes being computed.
    in_flight: Gauge,
}

impl PasswordHasher {
    pub async fn new(max_concurrent: usize) -> anyhow::Result<Self> {
        let params =
            Params::new(19_456, 2, 1, Some(OUTPUT_LEN)).map_err(|error| anyhow::anyhow!("argon2 params: {error}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let threads = max_concurrent.max(1);
        let (jobs, queue) = mpsc::channel::<Job>(threads * QUEUE_PER_THREAD);
        let queue = Arc::new(Mutex::new(queue));
        for index in 0..threads {
            let queue = Arc::clone(&queue);
            let block_count = argon2.params().block_count();
            std::thread::Builder::new()
                .name(format!("argon2-{index}"))
                .spawn(move || {
                    lower_this_threads_priority();
                    let mut memory = vec![Block::new(); block_count];
                    // Taking the next job holds the lock; idle threads wait on it.
                    // The loop ends when the hasher (every sender) is dropped.
                    while let Some(job) = queue.lock().ok().and_then(|mut queue| queue.blocking_recv()) {
                        job(&mut memory);
                    }
                })
                .context("cannot start a password hashing thread")?;
        }
        let mut hasher =
            Self { argon2, jobs, dummy_hash: Arc::from(""), waiting: Gauge::default(), in_flight: Gauge::default() };
        let dummy =
            Password::parse_attempt(uuid::Uuid::new_v4().to_string()).map_err(|error| anyhow::anyhow!("{error}"))?;
        hasher.dummy_hash = hasher.hash(dummy).await.map_err(|error| anyhow::anyhow!("dummy hash: {error}"))?.into();
        Ok(hasher)
    }

    /// Exposes `auth_password_hash_queue_depth` and
    /// `auth_password_hashes_in_flight` in `metrics`.
    pub fn register_metrics(&self, metrics: &Metrics) {
        metrics.register(
            "auth_password_hash_queue_depth",
            "Password hashes waiting for a hashing thread",
            self.waiting.clone(),
        );
        metrics.register("auth_password_hashes_in_flight", "Password hashes being computed", self.in_flight.clone());
    }

    /// The PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) of a new password.
    pub async fn hash(&self, password: Password) -> Result<String> {
        let argon2 = self.argon2.clone();
        self.run(move |memory| hash_with(&argon2, password.expose(), memory)).await?.map_err(Error::Internal)
    }

    /// Whether `password` matches `stored`; `None` (no such user) does the
    /// same work against a dummy hash and answers `false`.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<bool> {
        let user_exists = stored.is_some();
        let phc = stored.unwrap_or_else(|| self.dummy_hash.to_string());
        let matches = self.run(move |memory| verify_with(&phc, password.expose(), memory)).await?;
        Ok(matches && user_exists)
    }

    /// Whether a stored PHC string was made with other than today's
    /// algorithm, version, parameters or output length (or cannot be read),
    /// so that it should be replaced at the next successful login.
    pub fn needs_rehash(&self, phc: &str) -> bool {
        let Ok(stored) = PasswordHash::new(phc) else { return true };
        let Ok(params) = Params::try_from(&stored) else { return true };
        let current = self.argon2.params();
        stored.algorithm != Algorithm::Argon2id.ident()
            || stored.version != Some(Version::V0x13.into())
            || (params.m_cost(), params.t_cost(), params.p_cost())
                != (current.m_cost(), current.t_cost(), current.p_cost())
            || stored.hash.map(|hash| hash.len()) != Some(OUTPUT_LEN)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce(&mut [Block]) -> T + Send + 'static) -> Result<T> {
        let (done, result) = oneshot::channel();
        let span = tracing::Span::current();
        let (waiting, in_flight) = (self.waiting.clone(), self.in_flight.clone());
        let job: Job = Box::new(move |memory| {
            waiting.dec();
            in_flight.inc();
            let outcome = span.in_scope(|| work(memory));
            in_flight.dec();
            // The caller may have gone (request cancelled): nothing to tell.
            let _ = done.send(outcome);
        });
        self.waiting.inc();
        self.jobs
            .send_timeout(job, QUEUE_TIMEOUT)
            .await
            // The job never reached a thread.
            .inspect_err(|_| {
                self.waiting.dec();
            })
            .map_err(|error| match error {
                mpsc::error::SendTimeoutError::Timeout(_) => {
                    Error::ResourceExhausted("too many password checks in progress, retry later".into())
                }
                mpsc::error::SendTimeoutError::Closed(_) => {
                    Error::Internal(anyhow::anyhow!("password hashing threads are gone"))
                }
            })?;
        result.await.map_err(|_| Error::Internal(anyhow::anyhow!("a password hashing thread panicked")))
    }
}

/// How much lower than the rest of the process hashing threads run (added
/// to the nice value; 19 is the lowest priority).
const HASHING_NICENESS: i32 = 10;

/// Makes the calling (hashing) thread yield the CPU to the threads that
/// serve requests: a login storm saturates every core with argon2, and at
/// the same priority the executor and the other services on the host would
/// queue behind it (`GET /books` p99 rose 7.9x under a storm of 16 logins;
/// BENCHMARKS.md). With no other work, hashing still gets every idle cycle,
/// so login throughput is unchanged. Linux gives each thread its own nice
/// value; elsewhere this does nothing.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        let thread = rustix::thread::gettid();
        let lowered = rustix::process::getpriority_process(Some(thread))
            .and_then(|nice| rustix::process::setpriority_process(Some(thread), (nice + HASHING_NICENESS).min(19)));
        if let Err(error) = lowered {
            tracing::warn!(%error, "cannot lower the priority of a password hashing thread");
        }
    }
}

fn hash_with(argon2: &Argon2<'_>, password: &[u8], memory: &mut [Block]) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0; 64];
    let salt_bytes = salt.as_salt().decode_b64(&mut salt_bytes).map_err(|error| anyhow::anyhow!("salt: {error}"))?;
    let mut output = [0; OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(password, salt_bytes, &mut output, &mut memory[..argon2.params().block_count()])
        .map_err(|error| anyhow::anyhow!("argon2 hash: {error}"))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon2.params()).map_err(|error| anyhow::anyhow!("params: {error}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&output).map_err(|error| anyhow::anyhow!("output: {error}"))?),
    };
    Ok(phc.to_string())
}

/// Recomputes the stored hash's argon2 with its own parameters (in the
/// thread's work area when they fit, as ours always do) and compares in
/// constant time. A malformed stored hash never matches.
fn verify_with(phc: &str, password: &[u8], memory: &mut [Block]) -> bool {
    let Ok(stored) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (stored.salt, stored.hash) else { return false };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(stored.algorithm), Params::try_from(&stored)) else {
        return false;
    };
    let version = stored.version.map_or(Ok(Version::V0x13), Version::try_from);
    let Ok(version) = version else { return false };
    let mut salt_bytes = [0; 64];
    let Ok(salt_bytes) = salt.decode_b64(&mut salt_bytes) else { return false };
    let argon2 = Argon2::new(algorithm, version, params);
    let mut output = vec![0; expected.len()];
    let block_count = argon2.params().block_count();
    let computed = if block_count <= memory.len() {
        argon2.hash_password_into_with_memory(password, salt_bytes, &mut output, &mut memory[..block_count])
    } else {
        argon2.hash_password_into(password, salt_bytes, &mut output)
    };
    // `Output`'s equality is constant-time.
    computed.is_ok() && Output::new(&output).is_ok_and(|output| output == expected)
}

#[cfg(test)]
mod tests {
    use argon2::PasswordHasher as _;

    use super::*;

    fn password(text: &str) -> Password {
        Password::parse_attempt(text.to_owned()).unwrap()
    }

    #[tokio::test]
    async fn hashes_are_argon2id_phc_strings_that_verify() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        let phc = hasher.hash(password("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(hasher.verify(password("correct horse"), Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify(password("wrong horse"), Some(phc)).await.unwrap());
    }

    /// The nice value of a thread of this process, from `/proc`.
    #[cfg(target_os = "linux")]
    fn nice_of(stat_path: &str) -> i32 {
        let stat = std::fs::read_to_string(stat_path).unwrap();
        // After "pid (comm) ": state is field 3, nice field 19.
        let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
        fields[16].parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_a_lower_priority_than_the_rest_of_the_process() {
        let hasher = PasswordHasher::new(2).await.unwrap();
        hasher.hash(password("correct horse")).await.unwrap();
        let own = nice_of("/proc/thread-self/stat");
        let hashing: Vec<i32> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .map(|task| task.unwrap().path())
            .filter(|task| std::fs::read_to_string(task.join("comm")).unwrap().starts_with("argon2-"))
            .map(|task| nice_of(task.join("stat").to_str().unwrap()))
            .collect();
        assert!(hashing.len() >= 2, "hashing threads: {hashing:?}");
        assert!(hashing.iter().all(|&nice| nice == (own + HASHING_NICENESS).min(19)), "own {own}, hashing {hashing:?}");
    }

    #[tokio::test]
    async fn hashes_made_elsewhere_with_other_parameters_verify() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let other = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 3, 1, None).unwrap());
        let phc = other.hash_password(b"legacy", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(hasher.verify(password("legacy"), Some(phc.clone())).await.unwrap());
        assert!(!hasher.verify(password("other"), Some(phc)).await.unwrap());
        assert!(!hasher.verify(password("legacy"), Some("not a phc string".into())).await.unwrap());
    }

    #[tokio::test]
    async fn only_hashes_with_other_parameters_need_a_rehash() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        let current = hasher.hash(password("current")).await.unwrap();
        assert!(!hasher.needs_rehash(&current));
        let weaker = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8192, 1, 1, None).unwrap());
        let old = weaker.hash_password(b"legacy", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(hasher.needs_rehash(&old));
        let argon2i = Argon2::new(Algorithm::Argon2i, Version::V0x13, Params::new(19_456, 2, 1, None).unwrap());
        let other = argon2i.hash_password(b"legacy", &SaltString::generate(&mut OsRng)).unwrap().to_string();
        assert!(hasher.needs_rehash(&other));
    }

    #[tokio::test]
    async fn unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(1).await.unwrap();
        assert!(!hasher.verify(password("anything"), None).await.unwrap());
    }
}
