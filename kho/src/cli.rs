//! The `kho` command line. Every flag is also an environment variable (`KHO_…`).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kho_ingest::IngestConfig;
use kho_query::SqlLimits;
use kho_store::{MaintenanceOptions, Store, WriterConfig, maintain_table, stream_key};
use rand::RngCore;

use kho_api::server::{AppState, ServerConfig, serve};

#[derive(Debug, Parser)]
#[command(
    name = "kho",
    version,
    about = "kho: the province's shared event store, views and open-data catalog"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Serve the HTTP API.
    Serve(ServeArgs),
    /// Compact, checkpoint and (with --vacuum) vacuum the store's tables, then exit.
    Maintain(MaintainArgs),
    /// The one-command tour: a fresh store, the province's 2021 feeds pushed through the
    /// API, the views refreshed, the report's figures beside kho's; then it serves.
    Demo(DemoArgs),
}

#[derive(Debug, Args, Clone)]
pub(crate) struct StoreArgs {
    /// Where the data lives: a directory, file:///dir, s3://bucket/prefix (AWS_* variables), or memory://.
    #[arg(long, env = "KHO_STORE", default_value = "./kho-data")]
    pub(crate) store: String,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Compact and checkpoint every stream this often, in seconds (0: only by commit count).
    #[arg(long, env = "KHO_MAINTAIN_EVERY_SECS", default_value_t = 3600)]
    pub(crate) maintain_every_secs: u64,
}

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

#[derive(Debug, Args, Clone)]
pub(crate) struct DemoArgs {
    /// Where the demo's data goes. The default directory is the demo's own: each run starts
    /// it over. Another directory must be new or empty.
    #[arg(long, default_value = "./kho-demo")]
    pub(crate) store: String,
    #[command(flatten)]
    pub(crate) server: ServerArgs,
    /// Seed of the generator: the same seed gives the same events.
    #[arg(long, default_value_t = 2021)]
    pub(crate) seed: u64,
    /// Years of data from 2021 on: N times the volume (2021 stays the report's year).
    #[arg(long, default_value_t = 1)]
    pub(crate) scale: u32,
    /// Exit after the summary instead of serving (exit code 1 if a figure does not match).
    #[arg(long)]
    pub(crate) exit: bool,
}

#[derive(Debug, Args, Clone)]
pub(crate) struct MaintainArgs {
    #[command(flatten)]
    pub(crate) store: StoreArgs,
    /// Only these streams (default: every stream, view, the governance log and the audit log).
    #[arg(long = "stream")]
    pub(crate) streams: Vec<String>,
    /// Also delete files no version within the retention needs.
    #[arg(long)]
    pub(crate) vacuum: bool,
    /// Vacuum retention in hours: versions committed within it stay readable (minimum 1).
    #[arg(long, default_value_t = 168)]
    pub(crate) retain_hours: u64,
    /// Skip compaction.
    #[arg(long)]
    pub(crate) no_compact: bool,
}

/// Parses the command line and runs it.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // deltalake logs a lost commit race as an error; kho's writers retry it and
                // log what they cannot recover themselves. The demo prints its own summary.
                let level = if matches!(cli.command, Command::Demo(_)) {
                    "warn"
                } else {
                    "info"
                };
                format!("{level},deltalake=warn,deltalake_core=error,deltalake_core::kernel::transaction=off,buoyant_kernel=off,datafusion=warn").into()
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kho: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => run_serve(args).await,
            Command::Maintain(args) => run_maintain(args).await,
            Command::Demo(args) => crate::demo::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kho: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_serve(args: ServeArgs) -> anyhow::Result<()> {
    let store = Store::open_with_pack(&args.store.store).await?;
    let admin_token = match &args.server.admin_token {
        Some(t) => t.clone(),
        None => {
            let t = random_token();
            eprintln!("KHO_ADMIN_TOKEN is not set; this run's admin token is {t}");
            t
        }
    };
    let state = open_state(
        store,
        &admin_token,
        &args.server,
        Duration::from_secs(args.maintain_every_secs),
    )
    .await?;
    Ok(serve(state, args.server.listen).await?)
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
        governance_refresh: Duration::from_secs(5),
        maintain_every,
        public_url: catalog.public_url.clone(),
        pulls_per_min: (catalog.pulls_per_min_anonymous, catalog.pulls_per_min_token),
    };
    Ok(AppState::open(store, admin_token, ingest.config(), sql.limits(), config).await?)
}

async fn run_maintain(args: MaintainArgs) -> anyhow::Result<()> {
    let store = Store::open_with_pack(&args.store.store).await?;
    let keys: Vec<String> = if args.streams.is_empty() {
        store
            .streams()
            .iter()
            .map(|d| stream_key(&d.name))
            .chain(kho_query::VIEWS.iter().map(kho_query::ViewSpec::key))
            .chain([
                kho_catalog::governance::GOVERNANCE_KEY.to_owned(),
                kho_catalog::audit::AUDIT_KEY.to_owned(),
            ])
            .collect()
    } else {
        for s in &args.streams {
            store.stream(s)?;
        }
        args.streams.iter().map(|s| stream_key(s)).collect()
    };
    let opts = MaintenanceOptions {
        compact: !args.no_compact,
        checkpoint: true,
        vacuum: args.vacuum,
        retention: Duration::from_secs(args.retain_hours * 3600),
        ..MaintenanceOptions::default()
    };
    println!(
        "{:<28} {:>8} {:>8} {:>6} {:>6} {:>10} {:>9}",
        "table", "version", "→", "files", "→", "compacted", "vacuumed"
    );
    for key in keys {
        if kho_store::latest_version(&store, &key).await.is_err() {
            continue; // a view never refreshed has no table yet
        }
        let r = maintain_table(&store, &key, &opts).await?;
        println!(
            "{:<28} {:>8} {:>8} {:>6} {:>6} {:>10} {:>9}",
            r.table,
            r.version_before,
            r.version_after,
            r.files_before,
            r.files_after,
            r.files_compacted,
            r.files_vacuumed
        );
    }
    Ok(())
}

/// A random admin token for a run without `KHO_ADMIN_TOKEN`.
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
