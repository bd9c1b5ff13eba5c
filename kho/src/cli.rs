//! The `kho` command line. Every flag is also an environment variable (`KHO_…`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use kho_api::server::serve;
use kho_store::{MaintenanceOptions, Store, maintain_table, stream_key};

use crate::demo::DemoArgs;
use crate::start::{ServerArgs, open_state, random_token};

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
