//! Starting a server: the flags `serve` and `demo` share ([`ServerArgs`]) and the server
//! state opened from them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use kho_api::server::{AppState, ServerConfig};
use kho_ingest::IngestConfig;
use kho_query::SqlLimits;
use kho_store::{Store, WriterConfig};
use rand::RngCore;

/// What `serve` and `demo` share: where the server listens, its admin token, and how it
/// admits, refreshes, queries and shares.
#[derive(Debug, Args, Clone)]
pub(crate) struct ServerArgs {
    /// Address to listen on (port 0 picks a free port; the address is printed).
    #[arg(long, env = "KHO_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// The bootstrap admin token (at least 16 characters). Generated and printed when unset.
    #[arg(long, env = "KHO_ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) admin_token: Option<String>,
    #[command(flatten)]
    pub(crate) ingest: IngestArgs,
    #[command(flatten)]
    pub(crate) views: ViewArgs,
    #[command(flatten)]
    pub(crate) sql: SqlArgs,
    #[command(flatten)]
    pub(crate) catalog: CatalogArgs,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct CatalogArgs {
    /// The public URL of this server, for the links in the catalog (default: the request's host).
    #[arg(long, env = "KHO_PUBLIC_URL")]
    pub(crate) public_url: Option<String>,
    /// Data pulls a minute per anonymous client (counted by salted IP hash).
    #[arg(long, env = "KHO_PULLS_PER_MIN_ANONYMOUS", default_value_t = 60)]
    pub(crate) pulls_per_min_anonymous: u32,
    /// Data pulls a minute per token.
    #[arg(long, env = "KHO_PULLS_PER_MIN_TOKEN", default_value_t = 600)]
    pub(crate) pulls_per_min_token: u32,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct IngestArgs {
    /// The largest request body, in bytes.
    #[arg(long, env = "KHO_BODY_LIMIT", default_value_t = 64 * 1024 * 1024)]
    pub(crate) body_limit: usize,
    /// Seconds a connection may take to send a request's headers (idle connections too).
    #[arg(long, env = "KHO_HEADER_TIMEOUT_SECS", default_value_t = 10)]
    pub(crate) header_timeout_secs: u64,
    /// Seconds a request body may pause between two chunks.
    #[arg(long, env = "KHO_BODY_TIMEOUT_SECS", default_value_t = 30)]
    pub(crate) body_timeout_secs: u64,
    /// MiB of request bodies all clients together may be sending; past it, 503.
    #[arg(long, env = "KHO_BODIES_IN_FLIGHT_MB", default_value_t = 512)]
    pub(crate) bodies_in_flight_mb: usize,
    /// How long a commit waits for more requests to share it, in milliseconds.
    #[arg(long, env = "KHO_COMMIT_WINDOW_MS", default_value_t = 0)]
    pub(crate) commit_window_ms: u64,
    /// The most events one request may carry.
    #[arg(long, env = "KHO_MAX_BATCH_EVENTS", default_value_t = 100_000)]
    pub(crate) max_batch_events: usize,
    /// The most events waiting for a commit; beyond it requests get 429.
    #[arg(long, env = "KHO_MAX_QUEUED_EVENTS", default_value_t = 1_000_000)]
    pub(crate) max_queued_events: usize,
    /// Compact a stream after this many commits (0: never automatically).
    #[arg(long, env = "KHO_COMPACT_EVERY", default_value_t = 20)]
    pub(crate) compact_every: u64,
    /// How long an Idempotency-Key is remembered, in hours.
    #[arg(long, env = "KHO_IDEMPOTENCY_HOURS", default_value_t = 168)]
    pub(crate) idempotency_hours: u64,
    /// The earliest `occurred_at` accepted (RFC 3339); older events are refused.
    #[arg(long, env = "KHO_OCCURRED_AFTER", default_value = "1975-01-01T00:00:00Z", value_parser = parse_instant)]
    pub(crate) occurred_after: chrono::DateTime<chrono::Utc>,
    /// How far ahead of the server's clock an `occurred_at` may be, in hours.
    #[arg(long, env = "KHO_OCCURRED_AHEAD_HOURS", default_value_t = 24)]
    pub(crate) occurred_ahead_hours: u64,
}

fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.to_utc())
        .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))
}

impl IngestArgs {
    pub(crate) fn config(&self) -> IngestConfig {
        IngestConfig {
            commit_window: Duration::from_millis(self.commit_window_ms),
            max_batch_events: self.max_batch_events,
            max_queued_events: self.max_queued_events.max(self.max_batch_events),
            max_commit_events: self.max_queued_events.max(self.max_batch_events),
            compact_every: self.compact_every,
            writer: WriterConfig {
                idempotency_window: Duration::from_secs(self.idempotency_hours * 3600),
            },
            occurred_after: self.occurred_after,
            occurred_ahead: Duration::from_secs(self.occurred_ahead_hours * 3600),
        }
    }
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ViewArgs {
    /// After a commit, wait this long for more before refreshing the views it touches (ms).
    #[arg(long, env = "KHO_VIEW_DEBOUNCE_MS", default_value_t = 200)]
    pub(crate) view_debounce_ms: u64,
    /// Check every view against its sources this often (s), for other processes' commits.
    #[arg(long, env = "KHO_VIEW_POLL_SECS", default_value_t = 10)]
    pub(crate) view_poll_secs: u64,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct SqlArgs {
    /// Memory one SQL query may use, in MiB; past it the query fails.
    #[arg(long, env = "KHO_SQL_MEMORY_MB", default_value_t = 512)]
    pub(crate) sql_memory_mb: usize,
    /// Time one SQL query may run, in milliseconds.
    #[arg(long, env = "KHO_SQL_TIMEOUT_MS", default_value_t = 30_000)]
    pub(crate) sql_timeout_ms: u64,
    /// Most rows one SQL result may have.
    #[arg(long, env = "KHO_SQL_MAX_ROWS", default_value_t = 100_000)]
    pub(crate) sql_max_rows: usize,
    /// SQL queries running at once; more wait.
    #[arg(long, env = "KHO_SQL_CONCURRENCY", default_value_t = 2)]
    pub(crate) sql_concurrency: usize,
}

impl SqlArgs {
    pub(crate) fn limits(&self) -> SqlLimits {
        SqlLimits {
            memory_bytes: self.sql_memory_mb.max(1) * 1024 * 1024,
            timeout: Duration::from_millis(self.sql_timeout_ms.max(1)),
            max_rows: self.sql_max_rows.max(1),
            concurrency: self.sql_concurrency.max(1),
        }
    }
}

/// The server's state from the flags `serve` and `demo` share.
pub(crate) async fn open_state(
    store: Arc<Store>,
    admin_token: &str,
    server: &ServerArgs,
    maintain_every: Duration,
) -> anyhow::Result<AppState> {
    let ServerArgs {
        ingest,
        views,
        sql,
        catalog,
        ..
    } = server;
    let config = ServerConfig {
        body_limit: ingest.body_limit,
        conn: kho_api::listen::ConnLimits {
            header_timeout: Duration::from_secs(ingest.header_timeout_secs.max(1)),
            body_chunk_timeout: Duration::from_secs(ingest.body_timeout_secs.max(1)),
            bodies_in_flight: ingest.bodies_in_flight_mb.max(1) * 1024 * 1024,
            body_limit: ingest.body_limit,
            ..kho_api::listen::ConnLimits::default()
        },
        view_debounce: Duration::from_millis(views.view_debounce_ms),
        view_poll: Duration::from_secs(views.view_poll_secs.max(1)),
        governance_refresh: Duration::from_secs(1),
        maintain_every,
        public_url: catalog.public_url.clone(),
        pulls_per_min: (catalog.pulls_per_min_anonymous, catalog.pulls_per_min_token),
    };
    Ok(AppState::open(store, admin_token, ingest.config(), sql.limits(), config).await?)
}

/// A random admin token for a run without `KHO_ADMIN_TOKEN`.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
