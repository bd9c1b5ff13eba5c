//! Reading what a table gained since a version, commit by commit: the input of every
//! incremental consumer (the view refresh). Only files added with `dataChange = true` count,
//! so compaction commits add nothing.

use arrow::array::RecordBatch;
use futures::{StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::index::{CommitSummary, parse_commit, read_columns};
use crate::store::Store;

/// The rows added to a table by the commits after one version up to another.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The newest version read.
    pub version: u64,
    pub batches: Vec<RecordBatch>,
    /// Commits read (including compactions, which add no rows).
    pub commits: u64,
}

/// The latest version of the table at `key`, from a listing of its log.
pub async fn latest_version(store: &Store, key: &str) -> Result<u64> {
    let table = store.table_handle(key)?;
    table
        .log_store()
        .get_latest_version(0)
        .await
        .map_err(Error::delta(key))
}

/// Rows added to the table at `key` by the commits in `(after, up_to]` (up to the latest
/// when `None`), in commit order. `Ok(None)` when a commit in that range is no longer in the
/// log (cleaned up after the log retention): the caller must start from a full read.
pub async fn rows_added(
    store: &Store,
    key: &str,
    after: u64,
    up_to: Option<u64>,
) -> Result<Option<Changes>> {
    let table = store.table_handle(key)?;
    let log_store = table.log_store();
    let latest = match up_to {
        Some(v) => v,
        None => log_store
            .get_latest_version(after)
            .await
            .map_err(Error::delta(key))?,
    };
    let mut commits: Vec<CommitSummary> = Vec::new();
    let mut entries = futures::stream::iter(after + 1..=latest)
        .map(|v| {
            let ls = log_store.clone();
            async move { (v, ls.read_commit_entry(v).await) }
        })
        .buffered(16);
    while let Some((v, bytes)) = entries.next().await {
        let Some(bytes) = bytes.map_err(Error::delta(key))? else {
            return Ok(None);
        };
        commits.push(parse_commit(&bytes).map_err(|reason| Error::CorruptLog {
            table: key.to_owned(),
            version: v,
            reason,
        })?);
    }
    let object_store = table.object_store();
    let files: Vec<_> = commits.iter().flat_map(|c| c.data_files.clone()).collect();
    let batches: Vec<Vec<RecordBatch>> = futures::stream::iter(files)
        .map(|path| read_columns(object_store.clone(), path, None))
        .buffered(8)
        .try_collect()
        .await?;
    Ok(Some(Changes {
        version: latest,
        batches: batches.into_iter().flatten().collect(),
        commits: latest - after,
    }))
}

/// The `kho` object a commit recorded in its `commitInfo`, if any.
pub async fn commit_metadata(
    store: &Store,
    key: &str,
    version: u64,
) -> Result<Option<serde_json::Value>> {
    let table = store.table_handle(key)?;
    let Some(bytes) = table
        .log_store()
        .read_commit_entry(version)
        .await
        .map_err(Error::delta(key))?
    else {
        return Ok(None);
    };
    for line in bytes.split(|b| *b == b'\n') {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if let Some(kho) = value.get("commitInfo").and_then(|c| c.get("kho")) {
            return Ok(Some(kho.clone()));
        }
    }
    Ok(None)
}
