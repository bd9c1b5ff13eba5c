//! Every commit kho makes to a Delta table: a put-if-absent of the log entry right after
//! a known version, with no automatic retry and no conflict checker.
//!
//! deltalake's own retry loop resolves a lost race with its conflict checker, which since
//! delta-rs #3982 lets two rewrites that remove the same files with `dataChange = false`
//! both land: two compactions loaded at one version then both commit, and every row they
//! compacted is in the table twice. kho does not rely on it. A caller that loses the race
//! (`Ok(None)`) catches up and decides again itself; a rewrite (compaction, overwrite)
//! commits only if every file it removes is still live in the version it lands on
//! ([`first_gone`]).

use arrow::array::RecordBatch;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, Add, Transaction};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::table::state::DeltaTableState;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use crate::error::{Error, Result};
use crate::store::Store;
pub(crate) use crate::table::first_gone;

/// How many times a writer tries again after losing the race for the next version.
pub const MAX_ATTEMPTS: u32 = 64;

/// Commits `actions` as the version right after `state`'s, or reports (`Ok(None)`) that
/// another writer took that version first. `props` carries the commit metadata and
/// application transactions; retries and expired-log cleanup are turned off here (cleanup
/// lists the whole log and runs with maintenance instead). Returns the new version and the
/// table state after it.
pub(crate) async fn commit_next(
    table: &DeltaTable,
    state: &DeltaTableState,
    actions: Vec<Action>,
    op: DeltaOperation,
    props: CommitProperties,
) -> std::result::Result<Option<(u64, DeltaTableState)>, DeltaTableError> {
    let props = props
        .with_max_retries(0)
        .with_cleanup_expired_logs(Some(false));
    let res = CommitBuilder::from(props)
        .with_actions(actions)
        .build(Some(state), table.log_store(), op)
        .await;
    match res {
        Ok(done) => Ok(Some((done.version(), done.snapshot()))),
        Err(DeltaTableError::VersionAlreadyExists(_))
        | Err(DeltaTableError::Transaction {
            source:
                TransactionError::MaxCommitAttempts(_) | TransactionError::VersionAlreadyExists(_),
        }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes data files written for a commit that never happened (best effort: what is left
/// is untracked, and vacuum removes it).
pub(crate) async fn discard_files(
    store: &dyn object_store::ObjectStore,
    table: &str,
    paths: &[Path],
) {
    for p in paths {
        if let Err(e) = store.delete(p).await {
            tracing::warn!(table, path = %p, error = %e, "could not delete an uncommitted file; vacuum will");
        }
    }
}

/// A short pause before trying again, growing with the attempt, with jitter so that
/// writers that lost to each other do not meet again at once.
pub async fn backoff(attempt: u32) {
    let base = u64::from(attempt.min(10)) * 5;
    let jitter = rand::random::<u64>() % (base + 10);
    tokio::time::sleep(std::time::Duration::from_millis(base + jitter)).await;
}

/// What an overwrite records beside its rows.
#[derive(Debug, Clone, Default)]
pub struct OverwriteMeta {
    /// Name and description of the table, used when the overwrite creates it.
    pub name: String,
    pub description: String,
    /// Application transactions (`txn` actions): app id → version, e.g. the source versions
    /// a view reflects.
    pub transactions: Vec<(String, u64)>,
    /// Recorded as `kho` in the commitInfo.
    pub kho: Option<serde_json::Value>,
}

impl OverwriteMeta {
    fn props(&self) -> CommitProperties {
        let txns = self
            .transactions
            .iter()
            .map(|(app, v)| Transaction::new(app, i64::try_from(*v).unwrap_or(i64::MAX)))
            .collect();
        let mut props = CommitProperties::default().with_application_transactions(txns);
        if let Some(kho) = &self.kho {
            props = props.with_metadata([("kho".to_owned(), kho.clone())]);
        }
        props
    }
}

/// Replaces every row of the table at `key` with `batch` (creating the table on first use)
/// and returns the version written. The new file is written once; the commit removes
/// exactly the files live in the version it lands on, so a race with another overwrite or
/// a compaction is lost and planned again on the newer version, never committed over it.
pub async fn overwrite(
    store: &Store,
    key: &str,
    batch: RecordBatch,
    meta: &OverwriteMeta,
) -> Result<u64> {
    let mut written: Option<(Vec<Add>, Vec<Path>)> = None;
    for attempt in 0..MAX_ATTEMPTS {
        let mut table = store.table_handle(key)?;
        match table.load().await {
            Ok(()) => {}
            Err(DeltaTableError::NotATable(_)) => {
                let props = meta.props().with_max_retries(0);
                match table
                    .write(vec![batch.clone()])
                    .with_save_mode(SaveMode::ErrorIfExists)
                    .with_table_name(&meta.name)
                    .with_description(&meta.description)
                    .with_commit_properties(props)
                    .await
                {
                    Ok(t) => return Ok(t.version().unwrap_or(0)),
                    Err(e) => {
                        // Most likely another process created it first: load it and go on.
                        tracing::debug!(table = key, error = %e, "creating the table raced");
                        backoff(attempt).await;
                        continue;
                    }
                }
            }
            Err(e) => return Err(Error::delta(key)(e)),
        }
        let state = table.snapshot().map_err(Error::delta(key))?.clone();
        let (adds, paths) = match written.take() {
            Some(w) => w,
            None => {
                let mut writer = RecordBatchWriter::for_table(&table).map_err(Error::delta(key))?;
                writer
                    .write(batch.clone())
                    .await
                    .map_err(Error::delta(key))?;
                let adds = writer.flush().await.map_err(Error::delta(key))?;
                let paths = adds.iter().map(|a| Path::from(a.path.as_str())).collect();
                (adds, paths)
            }
        };
        let mut actions: Vec<Action> = state
            .log_data()
            .iter()
            .map(|f| Action::Remove(f.remove_action(true)))
            .collect();
        actions.extend(adds.iter().cloned().map(Action::Add));
        let op = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: None,
            predicate: None,
        };
        match commit_next(&table, &state, actions, op, meta.props()).await {
            Ok(Some((version, _))) => return Ok(version),
            Ok(None) => {
                tracing::debug!(
                    table = key,
                    attempt,
                    "lost the race for the next version; planning the overwrite again"
                );
                written = Some((adds, paths));
                backoff(attempt).await;
            }
            Err(e) => return Err(Error::delta(key)(e)),
        }
    }
    if let Some((_, paths)) = written {
        discard_files(
            store.table_handle(key)?.object_store().as_ref(),
            key,
            &paths,
        )
        .await;
    }
    Err(Error::CommitContention {
        stream: key.to_owned(),
        attempts: MAX_ATTEMPTS,
    })
}
