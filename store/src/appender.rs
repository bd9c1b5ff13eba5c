//! A lean appender for kho's own append-only tables (the audit log): one Parquet file and
//! one put-if-absent commit per append, the table state kept between appends, no automatic
//! retry — a lost race is the caller's to resolve.

use deltalake::DeltaTable;
use deltalake::DeltaTableError;
use deltalake::kernel::Action;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};

use arrow::array::RecordBatch;

use crate::error::{Error, Result};
use crate::store::{AsOf, Store};
use crate::table::Table;

/// What an append came to.
#[derive(Debug)]
pub enum Appended {
    /// Committed as this version.
    Committed(u64),
    /// Another writer took the next version first; nothing was committed.
    Lost,
}

/// Appends to the table at a key, at a known version.
pub struct Appender {
    key: String,
    table: DeltaTable,
    state: DeltaTableState,
}

impl std::fmt::Debug for Appender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appender")
            .field("key", &self.key)
            .field("version", &self.state.version())
            .finish()
    }
}

impl Appender {
    /// Opens the table at `key` as of `version` (latest when `None`).
    pub async fn open(store: &Store, key: &str, version: Option<u64>) -> Result<Self> {
        let as_of = version.map_or(AsOf::Latest, AsOf::Version);
        Self::from_table(store.table(key, as_of).await?)
    }

    /// Appends after the version `table` is loaded at.
    pub fn from_table(table: Table) -> Result<Self> {
        let key = table.key().to_owned();
        let key = key.as_str();
        let table = table.into_delta();
        let state = table.snapshot().map_err(Error::delta(key))?.clone();
        Ok(Self {
            key: key.to_owned(),
            table,
            state,
        })
    }

    pub fn version(&self) -> u64 {
        self.state.version()
    }

    /// Appends one batch as the next version, or reports that another writer got there
    /// first (the written file is then removed).
    pub async fn append(&mut self, batch: RecordBatch) -> Result<Appended> {
        let mut writer =
            RecordBatchWriter::for_table(&self.table).map_err(Error::delta(&self.key))?;
        writer.write(batch).await.map_err(Error::delta(&self.key))?;
        let adds = writer.flush().await.map_err(Error::delta(&self.key))?;
        let paths: Vec<_> = adds
            .iter()
            .map(|a| object_store::path::Path::from(a.path.as_str()))
            .collect();
        match commit_append(
            &self.table,
            &self.state,
            adds.into_iter().map(Action::Add).collect(),
            None,
        )
        .await
        .map_err(Error::delta(&self.key))?
        {
            Some((version, state)) => {
                self.state = state;
                Ok(Appended::Committed(version))
            }
            None => {
                crate::commit::discard_files(self.table.object_store().as_ref(), &self.key, &paths)
                    .await;
                Ok(Appended::Lost)
            }
        }
    }

    /// Moves the state forward to `version` (after reading what others appended).
    pub async fn advance(&mut self, version: u64) -> Result<()> {
        self.state
            .update(self.table.log_store().as_ref(), Some(version))
            .await
            .map_err(Error::delta(&self.key))
    }
}

/// One append commit of `actions` right after `state`'s version (see
/// [`crate::commit::commit_next`]); `kho` is recorded in the commitInfo when given.
pub(crate) async fn commit_append(
    table: &DeltaTable,
    state: &DeltaTableState,
    actions: Vec<Action>,
    kho: Option<serde_json::Value>,
) -> std::result::Result<Option<(u64, DeltaTableState)>, DeltaTableError> {
    let mut props = CommitProperties::default();
    if let Some(meta) = kho {
        props = props.with_metadata([("kho".to_owned(), meta)]);
    }
    let op = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: None,
        predicate: None,
    };
    crate::commit::commit_next(table, state, actions, op, props).await
}
