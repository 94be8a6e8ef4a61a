//! Building and running auth-service; `main` and the tests do it alike.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use bookstore_proto::auth::v1::auth_service_server::AuthServiceServer;
use bookstore_runtime::metrics::SweptRows;
use bookstore_runtime::{GrpcServer, Metrics, ServiceLayers};
use bookstore_tls::ServerTls;
use bookstore_tokens::{TokenPolicy, TokenSigner, TokenVerifier};

use crate::accounts::{Accounts, SessionPolicy};
use crate::config::Settings;
use crate::grpc::AuthGrpc;
use crate::keys::{load_service_token, load_signing_key, load_verification_keys};
use crate::password::PasswordHasher;
use crate::throttle::ClientRateLimiter;

/// A ready auth-service: database open and migrated, key loaded, listener
/// bound (so it accepts connections as soon as `build` returns).
pub struct App {
    server: GrpcServer,
    accounts: Accounts,
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
        let metrics = Metrics::new();
        let layers = ServiceLayers::new(limits, &metrics);
        accounts.register_metrics(&metrics);
        let swept = SweptRows::default();
        swept.register(&metrics);
        let server =
            GrpcServer::bind(settings.listen_addr, settings.metrics_addr, tls, routes, layers, metrics).await?;
        let sweep_interval = Duration::from_secs(settings.sweep_interval_secs);
        Ok(Self { server, accounts, sweep_interval, swept })
    }

    /// Its gRPC server: where it serves (`local_addr`, `metrics_addr`), and
    /// `in_process()`, the service as the all-in-one's other parts call it.
    pub fn server(&self) -> &GrpcServer {
        &self.server
    }

    /// Serves until `shutdown` resolves, lets in-flight calls finish, then
    /// closes the database. The sweep runs meanwhile (unless its interval
    /// is zero) and stops with the server.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop_sweep, sweep_stopped) = tokio::sync::oneshot::channel::<()>();
        let sweeper = (!self.sweep_interval.is_zero()).then(|| {
            tokio::spawn(crate::sweep::run(self.accounts.clone(), self.sweep_interval, self.swept.clone(), async {
                let _ = sweep_stopped.await;
            }))
        });
        let served = self.server.serve("auth-service", shutdown).await;
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
