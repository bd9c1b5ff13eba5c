//! What every handler can reach ([`AppState`]), the settings of the HTTP layer, and
//! opening both on a store.

use std::sync::Arc;
use std::time::Duration;

use kho_catalog::{AuditLog, Governance};
use kho_ingest::{Ingest, IngestConfig, IngestMetrics};
use kho_query::{SqlEngine, SqlLimits, ViewEngine};
use kho_store::Store;

use crate::listen::ConnLimits;
use crate::metrics::Metrics;
use crate::ratelimit::Limiter;

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
    /// Key of the web session cookies' MACs (the same on every process of the store).
    pub session_key: Arc<Vec<u8>>,
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
        let session_key = {
            let mut fresh = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut fresh);
            store
                .create_object("system/keys/session", bytes::Bytes::copy_from_slice(&fresh))
                .await?
                .to_vec()
        };
        let limiter = Arc::new(Limiter::new(config.pulls_per_min.0, config.pulls_per_min.1));
        Ok(Self {
            audit,
            ip_salt: Arc::new(ip_salt),
            session_key: Arc::new(session_key),
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
