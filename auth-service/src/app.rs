//! Building and running auth-service; `main` and the tests do it alike.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use bookstore_proto::auth::v1::auth_service_server::AuthServiceServer;
use bookstore_runtime::metrics::SweptRows;
use bookstore_runtime::{Metrics, ServiceLayers, Transport};
use bookstore_tls::ServerTls;
use bookstore_tokens::{TokenPolicy, TokenSigner, TokenVerifier};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::accounts::{Accounts, SessionPolicy};
use crate::config::Settings;
use crate::grpc::AuthGrpc;
use crate::keys::{load_service_token, load_signing_key, load_verification_keys};
use crate::password::PasswordHasher;
use crate::throttle::ClientRateLimiter;

/// A ready auth-service: database open and migrated, key loaded, listener
/// bound (so it accepts connections as soon as `build` returns).
pub struct App {
    listener: TcpListener,
    /// None: plaintext.
    tls: Option<ServerTls>,
    routes: Routes,
    accounts: Accounts,
    /// Around the routes, for the listener and in-process callers alike.
    layers: ServiceLayers,
    metrics: Metrics,
    metrics_listener: Option<TcpListener>,
    /// Zero: no sweep.
    sweep_interval: Duration,
    swept: SweptRows,
}

impl App {
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let tls = settings.tls()?;
        let accounts = accounts(settings).await?;
        let service_token = load_service_token(settings)?;
        let (routes, health) =
            bookstore_runtime::standard_routes(bookstore_proto::auth::v1::auth_service_server::SERVICE_NAME)?;
        health.set_serving::<AuthServiceServer<AuthGrpc>>().await;
        let limiter = ClientRateLimiter::new(settings.client_rate_per_minute, settings.client_burst);
        let grpc = AuthGrpc::new(accounts.clone(), service_token)
            .requiring_service_certificates(tls.as_ref().is_some_and(ServerTls::verifies_clients))
            .with_client_limit(limiter, settings.trusted_proxies.clone());
        let limits = settings.server_limits();
        let routes =
            routes.add_service(AuthServiceServer::new(grpc).max_decoding_message_size(limits.max_message_bytes));
        let listener = TcpListener::bind(settings.listen_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen_addr))?;
        let metrics = Metrics::new();
        let layers = ServiceLayers::new(limits, &metrics);
        accounts.register_metrics(&metrics);
        let swept = SweptRows::default();
        swept.register(&metrics);
        let metrics_listener = bookstore_runtime::metrics::bind_metrics(settings.metrics_addr).await?;
        let sweep_interval = Duration::from_secs(settings.sweep_interval_secs);
        Ok(Self { listener, tls, routes, accounts, layers, metrics, metrics_listener, sweep_interval, swept })
    }

    /// This service as the all-in-one's gateway calls it: no socket, the
    /// same layers as a call over the network.
    pub fn in_process(&self) -> Transport {
        self.layers.in_process(self.routes.clone())
    }

    /// The address `/metrics` is served on, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|listener| listener.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until `shutdown` resolves, lets in-flight calls finish, then
    /// closes the database. The sweep runs meanwhile (unless its interval
    /// is zero) and stops with the server.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), tls = self.tls.is_some(), "auth-service listening");
        let (stop_sweep, sweep_stopped) = tokio::sync::oneshot::channel::<()>();
        let sweeper = (!self.sweep_interval.is_zero()).then(|| {
            tokio::spawn(crate::sweep::run(self.accounts.clone(), self.sweep_interval, self.swept.clone(), async {
                let _ = sweep_stopped.await;
            }))
        });
        let served = bookstore_runtime::serve(
            self.listener,
            self.tls.as_ref(),
            self.routes,
            &self.layers,
            &self.metrics,
            self.metrics_listener,
            shutdown,
        )
        .await;
        drop(stop_sweep);
        if let Some(sweeper) = sweeper {
            let _ = sweeper.await;
        }
        self.accounts.close().await;
        tracing::info!("auth-service stopped");
        served
    }
}

/// The logic without the server: also what the admin commands use.
pub async fn accounts(settings: &Settings) -> anyhow::Result<Accounts> {
    let store = crate::store::connect(&settings.database_url).await?;
    let key = load_signing_key(settings)?;
    let policy = TokenPolicy { issuer: settings.issuer.clone(), audience: settings.audience.clone() };
    let signer = TokenSigner::new(&key, policy.clone(), Duration::from_secs(settings.token_ttl_secs))?;
    let mut jwks = vec![key.public_jwk().clone()];
    for jwk in load_verification_keys(settings)? {
        if !jwks.iter().any(|known| known.kid == jwk.kid) {
            jwks.push(jwk);
        }
    }
    tracing::info!(signing_kid = key.kid(), published = jwks.len(), "token keys loaded");
    let verifier = TokenVerifier::new(&policy, &jwks)?;
    let hasher = PasswordHasher::new(settings.max_concurrent_hashes).await?;
    let sessions = SessionPolicy {
        refresh_ttl: Duration::from_secs(settings.refresh_token_ttl_secs),
        reuse_grace: Duration::from_secs(settings.refresh_reuse_grace_secs),
    };
    let accounts =
        Accounts::new(store, hasher, signer, verifier, jwks, sessions).with_login_throttle(settings.login_throttle());
    accounts.migrate_name_keys().await.context("cannot recompute the user name keys")?;
    Ok(accounts)
}
