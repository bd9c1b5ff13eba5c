//! The server: state, router, background work, graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::{delete, get, post};
use kho_catalog::{AuditLog, Governance};
use kho_ingest::{Ingest, IngestConfig, IngestMetrics};
use kho_query::{SqlEngine, SqlLimits, ViewEngine};
use kho_store::{MaintenanceOptions, NodeInfo, Store, maintain_table, stream_key};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::listen::{BodyBudget, ConnLimits};
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;
use crate::routes;

/// Why a server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] kho_store::Error),
    #[error(transparent)]
    Catalog(#[from] kho_catalog::CatalogError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Settings of the HTTP layer.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub body_limit: usize,
    /// Connection deadlines and the budget of bodies in flight.
    pub conn: ConnLimits,
    /// How long the view refresher waits for a burst of commits to end.
    pub view_debounce: Duration,
    /// How often views are checked against sources other processes may have written.
    pub view_poll: Duration,
    /// How often the governance log is re-read for other processes' changes.
    pub governance_refresh: Duration,
    /// How often every stream is compacted and checkpointed (zero: never on schedule).
    pub maintain_every: Duration,
    /// The URL the catalog's links start with; the request's host when unset.
    pub public_url: Option<String>,
    /// Pulls a minute per anonymous client (by salted IP hash) and per token.
    pub pulls_per_min: (u32, u32),
}

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    pub store: Arc<Store>,
    pub ingest: Arc<Ingest>,
    pub governance: Arc<Governance>,
    pub views: Arc<ViewEngine>,
    pub sql: Arc<SqlEngine>,
    pub audit: AuditLog,
    /// Salt of the hashes that stand for anonymous clients' IP addresses.
    pub ip_salt: Arc<Vec<u8>>,
    pub limiter: Arc<Limiter>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ServerConfig>,
}

impl AppState {
    /// Opens everything a server needs on `store`.
    pub async fn open(
        store: Arc<Store>,
        admin_token: &str,
        ingest: IngestConfig,
        sql: SqlLimits,
        config: ServerConfig,
    ) -> Result<Self, StartError> {
        let governance = Governance::open(store.clone(), admin_token).await?;
        let ingest_metrics = IngestMetrics::default();
        let metrics = Arc::new(Metrics::new(&ingest_metrics));
        let ingest = Ingest::new(store.clone(), ingest, ingest_metrics);
        let audit = AuditLog::open(store.clone()).await?;
        let ip_salt = {
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            store
                .create_object("system/keys/ip-salt", bytes::Bytes::copy_from_slice(&fresh))
                .await?
                .to_vec()
        };
        let limiter = Arc::new(Limiter::new(config.pulls_per_min.0, config.pulls_per_min.1));
        Ok(Self {
            audit,
            ip_salt: Arc::new(ip_salt),
            limiter,
            views: ViewEngine::new(store.clone()),
            sql: Arc::new(SqlEngine::new(store.clone(), sql)),
            store,
            ingest,
            governance,
            metrics,
            config: Arc::new(config),
        })
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(routes::health::healthz))
        .route("/metrics", get(routes::health::metrics))
        .route(
            "/v1/admin/tokens",
            post(routes::admin::issue).get(routes::admin::list),
        )
        .route("/v1/admin/tokens/{id}", delete(routes::admin::revoke))
        .route("/v1/streams", get(routes::streams::list))
        .route("/v1/streams/{stream}", get(routes::streams::get))
        .route("/v1/streams/{stream}/events", post(routes::streams::append))
        .route("/v1/views", get(routes::views::list))
        .route("/v1/views/{view}", get(routes::views::get))
        .route("/v1/views/{view}/refresh", post(routes::views::refresh))
        .route("/v1/sql", post(routes::views::sql))
        .route(
            "/v1/catalog/datasets",
            get(routes::catalog::list).post(routes::catalog::create),
        )
        .route("/v1/catalog/datasets/{id}", get(routes::catalog::get))
        .route("/v1/catalog/datasets/{id}/data", get(routes::catalog::data))
        .route(
            "/v1/catalog/datasets/{id}/grants",
            post(routes::catalog::grant),
        )
        .route(
            "/v1/catalog/datasets/{id}/grants/{principal}",
            delete(routes::catalog::ungrant),
        )
        .route(
            "/v1/catalog/datasets/{id}/{step}",
            post(routes::catalog::step),
        )
        .route("/v1/catalog/audit", get(routes::catalog::audit))
        .route("/v1/catalog/audit/verify", get(routes::catalog::verify))
        .route("/catalog.jsonld", get(routes::dcat::catalog))
        .route(
            "/api/3/action/{action}",
            get(routes::ckan::action).post(routes::ckan::action),
        )
        .route(
            "/api/action/{action}",
            get(routes::ckan::action).post(routes::ckan::action),
        )
        .fallback(|| async { crate::error::ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            BodyBudget::new(&conn_limits(&state)),
            crate::listen::body_budget,
        ))
        // A body that stalls between chunks is cut (408), not waited for.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            conn_limits(&state).body_chunk_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

fn conn_limits(state: &AppState) -> ConnLimits {
    state.config.conn.clone()
}

/// Serves until Ctrl-C or SIGTERM. Prints the bound address on stdout first.
pub async fn serve(state: AppState, listen: SocketAddr) -> Result<(), StartError> {
    let listener = TcpListener::bind(listen).await?;
    serve_on(state, listener, shutdown_signal()).await
}

/// Serves on a bound listener until `shutdown` completes. Prints the address on stdout.
pub async fn serve_on(
    state: AppState,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let addr = listener.local_addr()?;
    // The heartbeat tells other tools this store is in use (`kho demo` refuses it).
    let mut node = NodeInfo::this_process(&format!("http://{addr}"));
    if let Err(e) = state.store.heartbeat(&mut node).await {
        tracing::warn!(error = %e, "could not write this node's heartbeat");
    }
    let heartbeat = {
        let store = state.store.clone();
        let mut node = node.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(kho_store::nodes::HEARTBEAT_EVERY);
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = store.heartbeat(&mut node).await {
                    tracing::warn!(error = %e, "could not write this node's heartbeat");
                }
            }
        })
    };
    spawn_background(&state);
    println!("kho listening on http://{addr}");
    tracing::info!(%addr, store = %state.store.location().root(), "serving");
    let store = state.store.clone();
    let limits = conn_limits(&state);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        // Running queries are dropped (their callers get 503) so the stop takes seconds.
        kho_query::compute::shutdown();
        let _ = stop_tx.send(true);
    });
    crate::listen::serve(listener, router(state), limits, stop_rx).await;
    heartbeat.abort();
    if let Err(e) = store.leave(&node).await {
        tracing::warn!(error = %e, "could not remove this node's heartbeat");
    }
    Ok(())
}

fn spawn_background(state: &AppState) {
    // Datasets released on their periodicity.
    let gov = state.governance.clone();
    let views = state.views.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(600));
        loop {
            tick.tick().await;
            for id in gov.due_releases() {
                let scheduler = crate::routes::catalog::scheduler();
                if let Ok(d) = gov.dataset_for(kho_catalog::Viewer::Principal(&scheduler), &id)
                    && d.spec.source.kind == kho_catalog::dataset::SourceKind::View
                {
                    let _ = views.refresh(&d.spec.source.name).await;
                }
                match gov.new_release(&scheduler, &id).await {
                    Ok(d) => {
                        tracing::info!(dataset = %id, version = d.releases.last().map_or(0, |r| r.version), "scheduled release")
                    }
                    Err(e) => tracing::warn!(dataset = %id, error = %e, "scheduled release failed"),
                }
            }
        }
    });
    // Views: bring them up to date now, then after each burst of commits.
    let views = state.views.clone();
    let commits = state.ingest.subscribe();
    let (debounce, poll) = (state.config.view_debounce, state.config.view_poll);
    tokio::spawn(async move {
        if let Err(e) = views.refresh_all().await {
            tracing::warn!(error = %e, "initial view refresh failed");
        }
        views.run(commits, debounce, poll).await;
    });
    let gov = state.governance.clone();
    let every = state.config.governance_refresh;
    if !every.is_zero() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = gov.refresh().await {
                    tracing::warn!(error = %e, "could not re-read the governance log");
                }
            }
        });
    }
    let store = state.store.clone();
    let ingest = state.ingest.clone();
    let every = state.config.maintain_every;
    if !every.is_zero() {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await; // not at start
            loop {
                tick.tick().await;
                for def in store.streams() {
                    let key = stream_key(&def.name);
                    let lock = ingest.maintenance_lock(&def.name);
                    let _guard = lock.lock().await;
                    match maintain_table(&store, &key, &MaintenanceOptions::default()).await {
                        Ok(r) => {
                            tracing::info!(stream = %def.name, files_before = r.files_before, files_after = r.files_after, "scheduled maintenance")
                        }
                        Err(e) => {
                            tracing::warn!(stream = %def.name, error = %e, "scheduled maintenance failed")
                        }
                    }
                }
            }
        });
    }
}

/// Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}
