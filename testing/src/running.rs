//! A service running in the test's own process, stopped gracefully.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The future a service's `run_until_stopped` waits on: it resolves when
/// [`Running::stop`] is called or the [`Running`] is dropped.
pub type Stopped = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A running service and the means to stop it.
#[derive(Debug)]
pub struct Running {
    /// Where it serves.
    pub addr: SocketAddr,
    /// Where it serves `/metrics`, if anywhere.
    pub metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// Spawns `run(stopped)`, typically `|stopped| app.run_until_stopped(stopped)`,
    /// for a service listening on `addr`.
    pub fn spawn<F>(addr: SocketAddr, run: impl FnOnce(Stopped) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async {
            let _ = stopped.await;
        })));
        Self { addr, metrics: None, stop: Some(stop), task: Some(task) }
    }

    /// The same, serving `/metrics` on `metrics`.
    #[must_use]
    pub fn with_metrics(self, metrics: Option<SocketAddr>) -> Self {
        Self { metrics, ..self }
    }

    /// Shuts the service down gracefully and waits until it has stopped
    /// (and so has closed its listener).
    ///
    /// # Panics
    /// When the service panicked or returned an error.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            #[allow(clippy::expect_used)]
            task.await.expect("the service task panicked").expect("the service stopped with an error");
        }
    }
}
