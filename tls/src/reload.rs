//! A configuration built from files and built again when they change.

use std::sync::{Arc, RwLock, Weak};

use crate::{Files, RELOAD_INTERVAL};

type Build<T> = dyn Fn(&[Vec<u8>]) -> anyhow::Result<T> + Send + Sync;

/// The current configuration, and how to build it from its files' contents.
pub(crate) struct Reloading<T> {
    what: &'static str,
    files: Files,
    build: Box<Build<T>>,
    state: RwLock<State<T>>,
}

struct State<T> {
    current: Arc<T>,
    /// The contents `current` was built from, or that last failed to build
    /// (so that one bad version is reported once, not every interval).
    seen: Vec<Vec<u8>>,
}

impl<T: Send + Sync + 'static> Reloading<T> {
    /// Builds the configuration once (failing if the files do not load) and
    /// watches its files: every [`RELOAD_INTERVAL`], and on SIGHUP.
    pub(crate) fn start(
        what: &'static str,
        files: Files,
        build: impl Fn(&[Vec<u8>]) -> anyhow::Result<T> + Send + Sync + 'static,
    ) -> anyhow::Result<Arc<Self>> {
        let seen = files.read()?;
        let current = Arc::new(build(&seen)?);
        let this = Arc::new(Self { what, files, build: Box::new(build), state: RwLock::new(State { current, seen }) });
        tokio::spawn(watch(Arc::downgrade(&this)));
        Ok(this)
    }

    pub(crate) fn current(&self) -> Arc<T> {
        self.state.read().unwrap_or_else(std::sync::PoisonError::into_inner).current.clone()
    }

    /// Reads the files and, if they changed, builds from them.
    pub(crate) fn check(&self) {
        let contents = match self.files.read() {
            Ok(contents) => contents,
            Err(error) => {
                tracing::warn!(
                    what = self.what,
                    error = format!("{error:#}"),
                    "cannot read the TLS files; keeping the current ones"
                );
                return;
            }
        };
        let mut state = self.state.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.seen == contents {
            return;
        }
        match (self.build)(&contents) {
            Ok(config) => {
                state.current = Arc::new(config);
                tracing::info!(what = self.what, "TLS certificates reloaded");
            }
            Err(error) => tracing::warn!(
                what = self.what,
                error = format!("{error:#}"),
                "the changed TLS files do not load; keeping the current ones"
            ),
        }
        state.seen = contents;
    }
}

/// Checks the files until the configuration is dropped.
async fn watch<T: Send + Sync + 'static>(reloading: Weak<Reloading<T>>) {
    let mut interval = tokio::time::interval(RELOAD_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|error| tracing::warn!(%error, "cannot listen for SIGHUP; TLS files are still checked every interval"))
        .ok();
    loop {
        #[cfg(unix)]
        let hangup_received = async {
            match hangup.as_mut() {
                Some(signal) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let hangup_received = std::future::pending::<Option<()>>();
        tokio::select! {
            _ = interval.tick() => {}
            _ = hangup_received => {}
        }
        let Some(reloading) = reloading.upgrade() else { return };
        // Reading a few small files: not worth a blocking thread.
        reloading.check();
    }
}
