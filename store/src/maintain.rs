//! Table maintenance: compaction of small files, checkpoints, vacuum.
//!
//! Every commit of a busy stream adds one small Parquet file. Compaction (Delta's
//! `optimize`) rewrites them into large files in a commit whose adds carry
//! `dataChange = false`, so readers and writers see the same rows. Checkpoints are written
//! every 100 commits by the commit itself and on demand here. Vacuum deletes only files
//! that no version within the retention period needs: time travel to any version committed
//! within the retention keeps working.

use std::num::NonZeroU64;
use std::time::Duration;

use deltalake::checkpoints::{cleanup_metadata, create_checkpoint};
use deltalake::operations::vacuum::VacuumMode;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::{AsOf, Store};

/// What to do and how.
#[derive(Debug, Clone)]
pub struct MaintenanceOptions {
    pub compact: bool,
    pub checkpoint: bool,
    pub vacuum: bool,
    /// Files removed from the table more recently than this are kept.
    pub retention: Duration,
    /// Size compaction aims for.
    pub target_file_size: u64,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            compact: true,
            checkpoint: true,
            vacuum: false,
            retention: Duration::from_secs(7 * 24 * 3600),
            target_file_size: 128 * 1024 * 1024,
        }
    }
}

/// What maintenance did to one table.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MaintenanceReport {
    pub table: String,
    pub version_before: u64,
    pub version_after: u64,
    pub files_before: usize,
    pub files_after: usize,
    pub files_compacted: u64,
    pub checkpoint_version: Option<u64>,
    /// Commit files older than the log retention removed after the checkpoint.
    pub logs_cleaned: usize,
    pub files_vacuumed: usize,
}

/// The shortest retention vacuum accepts: files of a commit in flight are younger than this.
pub const MIN_RETENTION: Duration = Duration::from_secs(3600);

/// Maintains the table at `key` (e.g. `streams/finance.budget`).
pub async fn maintain_table(
    store: &Store,
    key: &str,
    opts: &MaintenanceOptions,
) -> Result<MaintenanceReport> {
    let mut table = store.table(key, AsOf::Latest).await?;
    let before = crate::store::table_stats(&table)?;
    let mut report = MaintenanceReport {
        table: key.to_owned(),
        version_before: before.version,
        files_before: before.file_count,
        ..Default::default()
    };
    if opts.compact && before.file_count > 1 {
        let target = NonZeroU64::new(opts.target_file_size).unwrap_or(NonZeroU64::MIN);
        let (t, metrics) = table
            .optimize()
            .with_target_size(target)
            .await
            .map_err(Error::delta(key))?;
        table = t;
        report.files_compacted = metrics.num_files_removed;
    }
    if opts.checkpoint {
        table
            .update_incremental(None)
            .await
            .map_err(Error::delta(key))?;
        create_checkpoint(&table, None)
            .await
            .map_err(Error::delta(key))?;
        report.checkpoint_version = table.version();
        // Commits skip expired-log cleanup (it lists the whole log); it runs here, keeping
        // the table's log retention (delta.logRetentionDuration, 30 days by default).
        report.logs_cleaned = cleanup_metadata(&table, None)
            .await
            .map_err(Error::delta(key))?;
    }
    if opts.vacuum {
        if opts.retention < MIN_RETENTION {
            return Err(Error::Delta {
                table: key.to_owned(),
                source: deltalake::DeltaTableError::Generic(format!(
                    "vacuum retention {}s is below the minimum of {}s",
                    opts.retention.as_secs(),
                    MIN_RETENTION.as_secs()
                )),
            });
        }
        let retention = chrono::Duration::from_std(opts.retention)
            .map_err(|e| Error::delta(key)(deltalake::DeltaTableError::Generic(e.to_string())))?;
        let (t, metrics) = table
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .with_mode(VacuumMode::Full)
            .await
            .map_err(Error::delta(key))?;
        table = t;
        report.files_vacuumed = metrics.files_deleted.len();
    }
    table
        .update_incremental(None)
        .await
        .map_err(Error::delta(key))?;
    let after = crate::store::table_stats(&table)?;
    report.version_after = after.version;
    report.files_after = after.file_count;
    Ok(report)
}
