//! Building and running books-service; `main` and the tests do it alike.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bookstore_proto::auth::v1::auth_service_client::AuthServiceClient;
use bookstore_proto::books::v1::books_service_server::{BooksServiceServer, SERVICE_NAME};
use bookstore_replicas::Replicas;
use bookstore_runtime::metrics::SweptRows;
use bookstore_runtime::{GrpcServer, HealthReporter, Metrics, ServiceLayers, Transport};
use bookstore_tokens::{TokenFailures, TokenPolicy};
use tonic_health::ServingStatus;
use tower::Layer as _;

use crate::config::Settings;
use crate::deleted_users::DeletedUserBooks;
use crate::grpc::BooksGrpc;
use crate::interceptor::RequireTokenLayer;
use crate::jwks::JwksCache;
use crate::orphans::OrphanReconciler;
use crate::revocations::RevocationList;
use crate::store::BookStore;

/// How soon a failed refresh of the keys or of the revocation list is tried again.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// A ready books-service: database open and migrated, listener bound. The
/// signing keys and the revocation list are fetched once it runs, and on
/// demand.
pub struct App {
    server: GrpcServer,
    store: Arc<dyn BookStore>,
    background: Background,
    /// None when turned off.
    orphans: Option<OrphanSweep>,
    swept: SweptRows,
}

/// The check for books whose owner auth-service no longer has, and how often.
struct OrphanSweep {
    reconciler: OrphanReconciler,
    interval: Duration,
}

/// What the background task keeps up to date, and how often.
struct Background {
    keys: JwksCache,
    revocations: RevocationList,
    health: HealthReporter,
    jwks_refresh: Duration,
    revocation_refresh: Duration,
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let auth_replicas = Replicas::new(
            &settings.auth_url,
            settings.auth_tls()?,
            |endpoint| endpoint.connect_timeout(Duration::from_secs(2)),
            bookstore_proto::idempotency::is_side_effect_free,
        )
        .context("BOOKS_AUTH_URL")?;
        Self::calling_auth(settings, Transport::new(auth_replicas)).await
    }

    /// A books-service reaching auth-service (keys, revocations, users)
    /// through `auth`, whatever `settings` says of its URL: the all-in-one
    /// passes the auth-service it runs.
    pub async fn calling_auth(settings: &Settings, auth: Transport) -> anyhow::Result<Self> {
        let tls = settings.tls()?;
        let service_token = settings.load_service_token()?;
        let store = crate::store::connect(&settings.database_url).await?;
        let policy = TokenPolicy { issuer: settings.issuer.clone(), audience: settings.audience.clone() };
        let auth = AuthServiceClient::new(auth);
        let keys = JwksCache::new(
            policy,
            auth.clone(),
            Duration::from_secs(settings.jwks_min_refetch_secs),
            settings.token_cache_capacity,
        );
        let revocations = RevocationList::new(auth.clone(), &service_token, DeletedUserBooks::new(store.clone()));
        let orphans = (settings.orphan_sweep_interval_secs > 0).then(|| {
            let reconciler = OrphanReconciler::new(auth, &service_token, store.clone());
            OrphanSweep { reconciler, interval: Duration::from_secs(settings.orphan_sweep_interval_secs) }
        });
        let (routes, health) = bookstore_runtime::standard_routes(SERVICE_NAME)?;
        // Not ready until the signing keys and revocations are in: every
        // call would fail.
        // The overall status ("") stays SERVING: the process is alive.
        health.set_service_status(SERVICE_NAME, ServingStatus::NotServing).await;
        let limits = settings.server_limits();
        let books = RequireTokenLayer::new(keys.clone(), revocations.clone()).layer(
            BooksServiceServer::new(BooksGrpc::new(store.clone())).max_decoding_message_size(limits.max_message_bytes),
        );
        let routes = routes.add_service(books);
        let background = Background {
            keys,
            revocations,
            health,
            jwks_refresh: Duration::from_secs(settings.jwks_refresh_secs.max(1)),
            revocation_refresh: Duration::from_secs(settings.revocation_refresh_secs.max(1)),
        };
        let metrics = Metrics::new();
        let layers = ServiceLayers::new(limits, &metrics);
        metrics.register(TokenFailures::NAME, TokenFailures::HELP, background.keys.failures().clone());
        let pool = store.clone();
        metrics.register_pool(move || pool.pool_usage());
        let swept = SweptRows::default();
        swept.register(&metrics);
        let server =
            GrpcServer::bind(settings.listen_addr, settings.metrics_addr, tls, routes, layers, metrics).await?;
        Ok(Self { server, store, background, orphans, swept })
    }

    /// Its gRPC server: where it serves (`local_addr`, `metrics_addr`), and
    /// `in_process()`, the service as the all-in-one's other parts call it.
    pub fn server(&self) -> &GrpcServer {
        &self.server
    }

    /// Serves until `shutdown` resolves, lets in-flight calls finish, then
    /// closes the database.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_refresh, refresh_stopped) = tokio::sync::oneshot::channel::<()>();
        let (stop_orphans, orphans_stopped) = tokio::sync::oneshot::channel::<()>();
        let reconciler = self.orphans.map(|OrphanSweep { reconciler, interval }| {
            let revocations = self.background.revocations.clone();
            tokio::spawn(reconciler.run(revocations, interval, self.swept.clone(), async {
                let _ = orphans_stopped.await;
            }))
        });
        let refresher = tokio::spawn(self.background.run(async {
            let _ = refresh_stopped.await;
        }));
        let served = self.server.serve("books-service", shutdown).await;
        drop(stop_refresh);
        drop(stop_orphans);
        let _ = refresher.await;
        if let Some(reconciler) = reconciler {
            let _ = reconciler.await;
        }
        self.store.close().await;
        tracing::info!("books-service stopped");
        served
    }
}

impl Background {
    /// Polls the revocation feed every `revocation_refresh` and fetches the
    /// signing keys every `jwks_refresh`, each on its own schedule, until
    /// `stop` resolves (both every second until they first succeed), and
    /// reports the books service SERVING once both are in. Failures keep
    /// what was loaded before.
    async fn run(self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let now = tokio::time::Instant::now();
        let (mut keys_next, mut revocations_next) = (now, now);
        loop {
            let now = tokio::time::Instant::now();
            let keys = async { if keys_next <= now { Some(self.keys.refresh().await) } else { None } };
            let revocations =
                async { if revocations_next <= now { Some(self.revocations.refresh().await) } else { None } };
            let (keys, revocations) = tokio::join!(keys, revocations);
            let now = tokio::time::Instant::now();
            match keys {
                Some(Ok(())) => keys_next = now + self.jwks_refresh,
                Some(Err(error)) => {
                    keys_next = now + RETRY_AFTER_FAILURE;
                    tracing::warn!(%error, "signing key refresh failed");
                }
                None => {}
            }
            match revocations {
                Some(Ok(())) => revocations_next = now + self.revocation_refresh,
                Some(Err(error)) => {
                    revocations_next = now + RETRY_AFTER_FAILURE;
                    let stale_for_secs = self.revocations.staleness().map(|stale| stale.as_secs());
                    tracing::warn!(%error, ?stale_for_secs, "revocation list refresh failed: serving with the last one");
                }
                None => {}
            }
            let ready = self.keys.has_keys() && self.revocations.is_loaded();
            let status = if ready { ServingStatus::Serving } else { ServingStatus::NotServing };
            self.health.set_service_status(SERVICE_NAME, status).await;
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep_until(keys_next.min(revocations_next)) => {}
            }
        }
    }
}
