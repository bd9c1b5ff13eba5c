//! The one handle other crates hold on a table of the store ([`Table`]), and what the
//! store makes tables from: [`NewTable`] for kho's own append-only logs
//! ([`crate::Store::create_table`]), [`Rows`] for a table written whole in its first commit
//! (a dataset release, [`crate::Store::write_table_once`]). Appends go through
//! [`crate::writer`] (streams) and [`crate::appender`] (logs), overwrites through
//! [`crate::commit::overwrite`] (views), compaction through [`crate::maintain`]: every commit
//! of every table is made in this crate, and no other crate names a Delta type.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use deltalake::DeltaTable;

use chrono::{DateTime, Utc};
use deltalake::table::state::DeltaTableState;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::schema::{ColumnType, SINCE_VERSION_KEY};

/// A table of the store, loaded at one version.
#[derive(Debug, Clone)]
pub struct Table {
    key: String,
    delta: DeltaTable,
}

impl Table {
    pub(crate) fn new(key: &str, delta: DeltaTable) -> Self {
        Self {
            key: key.to_owned(),
            delta,
        }
    }

    pub(crate) fn into_delta(self) -> DeltaTable {
        self.delta
    }

    /// The table's key under the store root.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The version loaded (0 is the creation commit).
    pub fn version(&self) -> u64 {
        self.delta.version().unwrap_or(0)
    }

    /// Every row of this version, in no particular order.
    pub async fn read(&self) -> Result<Vec<RecordBatch>> {
        read_delta(&self.delta).await
    }

    /// The paths of the data files live in this version.
    pub fn files(&self) -> Result<Vec<String>> {
        Ok(self
            .delta
            .snapshot()
            .map_err(Error::delta(&self.key))?
            .log_data()
            .iter()
            .map(|f| f.path().into_owned())
            .collect())
    }

    /// The first of `removed` no longer live in this version: what makes a rewrite that
    /// removes them stale (see [`first_gone`]).
    pub fn first_gone<'a>(&self, removed: &'a [String]) -> Result<Option<&'a str>> {
        let state = self.delta.snapshot().map_err(Error::delta(&self.key))?;
        Ok(first_gone(state, removed))
    }

    /// The Arrow schema of this version.
    pub fn schema(&self) -> Result<SchemaRef> {
        Ok(self
            .delta
            .snapshot()
            .map_err(Error::delta(&self.key))?
            .snapshot()
            .arrow_schema())
    }

    /// Version, row count, size and last commit time, from the log alone.
    pub fn stats(&self) -> Result<TableStats> {
        stats_of(&self.delta)
    }

    /// This version as a DataFusion table of `ctx`, whose runtime learns the store's object
    /// store (so scans read through it).
    pub async fn provider(&self, ctx: &SessionContext) -> Result<Arc<dyn TableProvider>> {
        self.delta
            .update_datafusion_session(&ctx.state())
            .map_err(Error::delta(&self.key))?;
        Ok(self.delta.table_provider().await?)
    }

    /// Moves to the latest version, reading only the commits since the loaded one.
    pub async fn catch_up(&mut self) -> Result<()> {
        self.delta
            .update_incremental(None)
            .await
            .map_err(Error::delta(&self.key))
    }
}

/// What a table made by [`create_if_absent`] is.
#[derive(Debug, Clone)]
pub struct NewTable {
    /// The table's name in its metadata, e.g. `system.audit`.
    pub name: String,
    /// Columns, in order; each of a type a stream column may have ([`ColumnType`]).
    pub schema: SchemaRef,
    /// `delta.appendOnly`: readers and maintenance may rely on no row ever going away.
    pub append_only: bool,
    /// `delta.checkpointInterval`, when not Delta's default of 100.
    pub checkpoint_interval: Option<u32>,
}

/// The stream column type of an Arrow type, for tables described by an Arrow schema.
pub(crate) fn column_type(key: &str, name: &str, dt: &DataType) -> Result<ColumnType> {
    Ok(match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
        DataType::Int32 => ColumnType::Integer,
        DataType::Int64 => ColumnType::Long,
        DataType::Float64 => ColumnType::Double,
        DataType::Boolean => ColumnType::Boolean,
        DataType::Timestamp(..) => ColumnType::Timestamp,
        other => {
            return Err(Error::SchemaConflict {
                stream: key.to_owned(),
                reason: format!("column {name} has type {other}, which kho tables do not hold"),
            });
        }
    })
}

/// The rows of a table written whole.
pub enum Rows {
    Batches(Vec<RecordBatch>),
    /// A DataFusion plan, streamed into the table's files as it runs.
    Plan(LogicalPlan),
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Batches(b) => write!(f, "Batches({})", b.len()),
            Self::Plan(_) => f.write_str("Plan"),
        }
    }
}

/// Size and freshness of a stream's table.
#[derive(Debug, Clone, Serialize)]
pub struct TableStats {
    /// Delta table version (0 is the creation commit).
    pub version: u64,
    pub row_count: u64,
    pub file_count: usize,
    pub size_bytes: u64,
    /// When the latest version was committed.
    pub last_commit_at: Option<DateTime<Utc>>,
    /// The schema version recorded in the table.
    pub schema_version: u32,
}

/// The schema version recorded in a table: the newest `kho.since_version` of its columns.
pub(crate) fn schema_version_of(table: &DeltaTable) -> u32 {
    let Ok(snapshot) = table.snapshot() else {
        return 0;
    };
    snapshot
        .schema()
        .fields()
        .filter_map(|f| match f.metadata().get(SINCE_VERSION_KEY) {
            Some(deltalake::kernel::MetadataValue::Number(n)) => u32::try_from(*n).ok(),
            _ => None,
        })
        .max()
        .unwrap_or(1)
}

/// Reads every row of a loaded table through DataFusion.
pub(crate) async fn read_delta(table: &DeltaTable) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    table.update_datafusion_session(&ctx.state())?;
    let provider = table.table_provider().await?;
    let df = ctx.read_table(provider)?;
    df.collect()
        .await?
        .iter()
        .map(crate::index::plain_strings)
        .collect()
}

/// Version, row count, size and last commit time of a loaded table, from the log alone.
pub(crate) fn stats_of(table: &DeltaTable) -> Result<TableStats> {
    let snapshot = table.snapshot()?;
    let mut row_count = 0u64;
    let mut size_bytes = 0u64;
    let mut file_count = 0usize;
    for file in snapshot.log_data().iter() {
        file_count += 1;
        row_count += file.num_records().unwrap_or(0) as u64;
        size_bytes += u64::try_from(file.size()).unwrap_or(0);
    }
    let version = snapshot.version();
    let last_commit_at = snapshot
        .version_timestamp(version)
        .and_then(DateTime::from_timestamp_millis);
    Ok(TableStats {
        version,
        row_count,
        file_count,
        size_bytes,
        last_commit_at,
        schema_version: schema_version_of(table),
    })
}

/// The first of `removed` (paths relative to the table root, as the log records them) that
/// is no longer a live file of the table at `state`: a rewrite planned on an older version
/// must not land on this one, or the rows of that file would be in the table twice (or a
/// file another rewrite already replaced would come back).
pub(crate) fn first_gone<'a>(state: &DeltaTableState, removed: &'a [String]) -> Option<&'a str> {
    let live: HashSet<String> = state
        .log_data()
        .iter()
        .map(|f| f.path().into_owned())
        .collect();
    removed
        .iter()
        .find(|p| !live.contains(p.as_str()))
        .map(String::as_str)
}
