//! The one handle other crates hold on a table of the store, and the two ways they make
//! one: [`create_if_absent`] for kho's own append-only logs, [`write_once`] for a table
//! written whole in its first commit (a dataset release). Appends go through
//! [`crate::writer`] (streams) and [`crate::appender`] (logs), overwrites through
//! [`crate::commit::overwrite`] (views), compaction through [`crate::maintain`]: every commit
//! of every table is made in this crate, and no other crate names a Delta type.

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use deltalake::kernel::StructField;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError, TableProperty};

use crate::error::{Error, Result};
use crate::schema::ColumnType;
use crate::store::{Store, TableStats, read_delta, stats_of};

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
    /// removes them stale (see [`crate::commit::first_gone`]).
    pub fn first_gone<'a>(&self, removed: &'a [String]) -> Result<Option<&'a str>> {
        let state = self.delta.snapshot().map_err(Error::delta(&self.key))?;
        Ok(crate::commit::first_gone(state, removed))
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
fn column_type(key: &str, name: &str, dt: &DataType) -> Result<ColumnType> {
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

/// Creates the table at `key` unless it exists; losing a creation race to another process
/// is success (the table is then there).
pub async fn create_if_absent(store: &Store, key: &str, spec: &NewTable) -> Result<()> {
    let mut table = store.table_handle(key)?;
    match table.load().await {
        Ok(()) => return Ok(()),
        Err(DeltaTableError::NotATable(_)) => {}
        Err(e) => return Err(Error::delta(key)(e)),
    }
    let columns = spec
        .schema
        .fields()
        .iter()
        .map(|f| {
            let ty = column_type(key, f.name(), f.data_type())?;
            Ok(StructField::new(f.name(), ty.delta(), f.is_nullable()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut create = table
        .create()
        .with_save_mode(SaveMode::Ignore)
        .with_table_name(&spec.name)
        .with_columns(columns);
    if spec.append_only {
        create = create.with_configuration_property(TableProperty::AppendOnly, Some("true"));
    }
    if let Some(n) = spec.checkpoint_interval {
        create = create
            .with_configuration_property(TableProperty::CheckpointInterval, Some(n.to_string()));
    }
    if let Err(e) = create.await {
        // Lost a creation race: the table must now exist.
        let mut again = store.table_handle(key)?;
        again.load().await.map_err(|_| Error::delta(key)(e))?;
    }
    Ok(())
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

/// Writes a new table at `key` whole, in one put-if-absent of version 0. A table already
/// there (another process's, racing) is an error, never an append: deltalake's retry would
/// land a racing second write as an append of its rows.
pub async fn write_once(
    store: &Store,
    key: &str,
    name: &str,
    description: &str,
    rows: Rows,
) -> Result<Table> {
    let handle = store.table_handle(key)?;
    let write = match rows {
        Rows::Batches(b) => handle.write(b),
        Rows::Plan(plan) => handle.write(Vec::new()).with_input_plan(plan),
    };
    let delta = write
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_table_name(name)
        .with_description(description)
        .with_commit_properties(CommitProperties::default().with_max_retries(0))
        .await
        .map_err(Error::delta(key))?;
    Ok(Table::new(key, delta))
}
