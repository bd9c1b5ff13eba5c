//! Atomic, idempotent, exactly-once appends to a stream.
//!
//! A [`StreamWriter`] commits a group of submissions as one Delta commit. Before each
//! attempt it catches up with every commit it has not seen (its own process or another),
//! then decides per submission: replay (idempotency key already committed), reject (a
//! reference rule fails: nothing of that submission is written), or accept (minus the events
//! whose `event_id` is already in the stream). The commit is a put-if-absent of the next log
//! version with no automatic retry, so a lost race is detected, the writer catches up again
//! and decides again: two processes appending at once lose nothing and duplicate nothing.
//!
//! The decisions are made in [`plan`], which does no I/O; this module reads the log,
//! writes the Parquet file and commits.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::{concat_batches, filter_record_batch};
use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::table::state::DeltaTableState;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

mod plan;

use self::plan::{Accepted, Decision, Plan, Planner, Rules, finish};
use crate::clock::Clock;
use crate::commit::MAX_ATTEMPTS;
use crate::error::{Error, Result, RowError};
use crate::index::{CommitMeta, KeyEntry, Receipt, StreamIndex, parse_commit, read_columns};
use crate::schema::{EVENT_ID, EVENT_TYPE, RECORDED_AT, StreamDef, UTC};
use crate::store::{Store, stream_key};

/// An idempotency key, already scoped to its principal and hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Hex SHA-256 of `principal \0 key`.
    pub key_sha256: String,
    /// Hex SHA-256 of the request body.
    pub body_sha256: String,
}

/// One request's events, decoded and validated, waiting to be committed.
#[derive(Debug, Clone)]
pub struct Submission {
    /// Rows in the stream's schema; `recorded_at` is set at commit.
    pub batch: RecordBatch,
    pub idempotency: Option<IdempotencyKey>,
}

/// What became of one submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Committed(Receipt),
    /// The key was committed before: the first answer, nothing written.
    Replayed(Receipt),
    /// A reference rule failed; nothing of the submission was written.
    Rejected(Vec<RowError>),
    /// The key was committed before with a different body.
    KeyReused,
}

/// Settings of a writer.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// How long an idempotency key is remembered after its commit.
    pub idempotency_window: Duration,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            idempotency_window: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The single writer of one stream within a process.
pub struct StreamWriter {
    def: Arc<StreamDef>,
    /// The table's handles (log store, object store, schema); its own state is not kept
    /// current: `state` is.
    table: DeltaTable,
    /// The table state at `indexed_version`, advanced by each commit and catch-up.
    state: DeltaTableState,
    index: StreamIndex,
    /// The table version the index reflects.
    indexed_version: u64,
    config: WriterConfig,
    rules: Rules,
    /// The store's clock: commit times and the idempotency window.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for StreamWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamWriter")
            .field("stream", &self.def.name)
            .field("indexed_version", &self.indexed_version)
            .field("events", &self.index.len())
            .finish()
    }
}

/// Data files written for a plan and not yet committed.
struct Written {
    /// The plan they were written for: reused only for the same accepted rows.
    signature: Vec<(usize, u64)>,
    paths: Vec<Path>,
    adds: Vec<Action>,
}

impl StreamWriter {
    /// Opens the writer of `stream`: loads the table and indexes its events and recent keys.
    pub async fn open(store: &Store, stream: &str, config: WriterConfig) -> Result<Self> {
        let def = store.stream(stream)?;
        let key = stream_key(stream);
        let mut table = store.table_handle(&key)?;
        table.load().await.map_err(Error::delta(&key))?;
        let rules = Rules::of(&def);
        let state = table.snapshot().map_err(Error::delta(&key))?.clone();
        let mut writer = Self {
            def,
            table,
            state,
            index: StreamIndex::default(),
            indexed_version: 0,
            config,
            rules,
            clock: store.clock(),
        };
        writer.rebuild_index().await?;
        Ok(writer)
    }

    pub fn stream(&self) -> &StreamDef {
        &self.def
    }

    /// The newest table version this writer has seen.
    pub fn version(&self) -> u64 {
        self.indexed_version
    }

    /// Number of distinct event ids in the stream.
    pub fn event_count(&self) -> usize {
        self.index.len()
    }

    fn index_columns(&self) -> Vec<String> {
        let mut cols = vec![EVENT_ID.to_owned(), EVENT_TYPE.to_owned()];
        cols.extend(self.def.references.iter().map(|r| r.column.clone()));
        cols
    }

    /// Indexes the whole table at its loaded version, and the keys of recent commits.
    async fn rebuild_index(&mut self) -> Result<()> {
        let version = self.state.version();
        let mut index = StreamIndex::default();
        let store = self.table.object_store();
        let files: Vec<Path> = self
            .state
            .log_data()
            .iter()
            .map(|f| f.object_store_path())
            .collect();
        let columns = self.index_columns();
        let mut reads = futures::stream::iter(files)
            .map(|p| read_columns(store.clone(), p, Some(&columns)))
            .buffer_unordered(8);
        while let Some(batches) = reads.try_next().await? {
            for b in &batches {
                index.add_rows(&self.def, b)?;
            }
        }
        drop(reads);
        // Idempotency keys: newest commit first, until the window closes.
        let cutoff = self.key_cutoff_ms();
        let log_store = self.table.log_store();
        let mut hi = Some(version);
        'outer: while let Some(v) = hi {
            let lo = v.saturating_sub(15);
            let chunk: Vec<_> = futures::stream::iter((lo..=v).rev())
                .map(|ver| {
                    let ls = log_store.clone();
                    async move { (ver, ls.read_commit_entry(ver).await) }
                })
                .buffered(16)
                .collect()
                .await;
            for (ver, bytes) in chunk {
                let Some(bytes) = bytes? else {
                    break 'outer; // cleaned up: older keys are past any window
                };
                let summary = parse_commit(&bytes).map_err(|reason| self.corrupt(ver, reason))?;
                let ts = summary.timestamp_ms.unwrap_or(0);
                if ts < cutoff {
                    break 'outer;
                }
                if let Some(meta) = summary.meta {
                    record_keys(&mut index, &meta, ver, ts);
                }
            }
            hi = lo.checked_sub(1);
        }
        self.index = index;
        self.indexed_version = version;
        Ok(())
    }

    fn key_cutoff_ms(&self) -> i64 {
        let window = i64::try_from(self.config.idempotency_window.as_millis()).unwrap_or(i64::MAX);
        self.clock.now().timestamp_millis().saturating_sub(window)
    }

    fn corrupt(&self, version: u64, reason: String) -> Error {
        Error::CorruptLog {
            table: self.def.name.clone(),
            version,
            reason,
        }
    }

    /// Reads every commit after the indexed version into the index and the table state.
    pub async fn catch_up(&mut self) -> Result<()> {
        let log_store = self.table.log_store();
        let latest = log_store.get_latest_version(self.indexed_version).await?;
        if latest <= self.indexed_version {
            return Ok(());
        }
        let store = self.table.object_store();
        let columns = self.index_columns();
        for v in self.indexed_version + 1..=latest {
            let Some(bytes) = log_store.read_commit_entry(v).await? else {
                // The commits we missed were cleaned up: start over from the table.
                self.table.update_incremental(None).await?;
                self.state = self.table.snapshot()?.clone();
                return self.rebuild_index().await;
            };
            let summary = parse_commit(&bytes).map_err(|reason| self.corrupt(v, reason))?;
            for path in summary.data_files {
                for b in read_columns(store.clone(), path, Some(&columns)).await? {
                    self.index.add_rows(&self.def, &b)?;
                }
            }
            if let Some(meta) = summary.meta {
                record_keys(&mut self.index, &meta, v, summary.timestamp_ms.unwrap_or(0));
            }
        }
        self.state
            .update(log_store.as_ref(), Some(latest))
            .await
            .map_err(Error::delta(&self.def.name))?;
        self.indexed_version = latest;
        Ok(())
    }

    /// Commits a group of submissions as one Delta commit and says what became of each.
    ///
    /// Returns only once the commit is durable. An `Err` means nothing is known to be
    /// acknowledged: a retry is safe (ids and keys are checked again).
    pub async fn commit(&mut self, subs: &[Submission]) -> Result<Vec<Outcome>> {
        let mut written: Option<Written> = None;
        for attempt in 0..MAX_ATTEMPTS {
            self.catch_up().await?;
            let plan = Planner {
                def: &self.def,
                index: &self.index,
                rules: &self.rules,
            }
            .plan(subs);
            if plan.rows == 0 {
                self.discard(written.take()).await;
                let version = self.indexed_version;
                return Ok(finish(plan.decisions, version));
            }
            let files = match written.take() {
                Some(w) if w.signature == plan.signature => w,
                stale => {
                    self.discard(stale).await;
                    self.write_files(subs, &plan).await?
                }
            };
            let meta = plan.commit_meta(subs);
            match self.try_commit(files.adds.clone(), &meta).await {
                Ok((version, state)) => {
                    let now_ms = self.clock.now().timestamp_millis();
                    plan.record(&mut self.index, subs, version, now_ms);
                    if version.is_multiple_of(256) {
                        let cutoff = self.key_cutoff_ms();
                        self.index.expire_keys(cutoff);
                    }
                    self.indexed_version = version;
                    self.state = state;
                    return Ok(finish(plan.decisions, version));
                }
                Err(CommitError::Lost) => {
                    tracing::debug!(stream = %self.def.name, attempt, "lost the race for the next version, retrying");
                    written = Some(files);
                    crate::commit::backoff(attempt).await;
                }
                // The outcome is unknown (the log write may have landed): keep the files,
                // a later catch-up sees the commit if it happened; vacuum removes them if not.
                Err(CommitError::Other(e)) => return Err(e),
            }
        }
        self.discard(written).await;
        Err(Error::CommitContention {
            stream: self.def.name.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }

    /// Writes the accepted rows of a plan to one Parquet file, `recorded_at` set to now.
    async fn write_files(&self, subs: &[Submission], plan: &Plan) -> Result<Written> {
        let schema = self.def.arrow_schema();
        let mut parts = Vec::new();
        for (i, d) in plan.decisions.iter().enumerate() {
            if let Decision::Accept(Accepted { mask, accepted, .. }) = d
                && *accepted > 0
            {
                let b = match mask {
                    Some(m) => filter_record_batch(&subs[i].batch, m)?,
                    None => subs[i].batch.clone(),
                };
                parts.push(b);
            }
        }
        let batch = concat_batches(&schema, &parts)?;
        let now = self.clock.now().timestamp_micros();
        let recorded: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![now; batch.num_rows()]).with_timezone(UTC),
        );
        let idx = schema.index_of(RECORDED_AT)?;
        let mut columns = batch.columns().to_vec();
        columns[idx] = recorded;
        let batch = RecordBatch::try_new(schema, columns)?;
        let mut writer = RecordBatchWriter::for_table(&self.table)?;
        writer.write(batch).await?;
        let adds = writer.flush().await?;
        Ok(Written {
            signature: plan.signature.clone(),
            paths: adds.iter().map(|a| Path::from(a.path.as_str())).collect(),
            adds: adds.into_iter().map(Action::Add).collect(),
        })
    }

    /// Removes files written for a commit that never happened (best effort).
    async fn discard(&self, written: Option<Written>) {
        let Some(Written { paths, .. }) = written else {
            return;
        };
        crate::commit::discard_files(self.table.object_store().as_ref(), &self.def.name, &paths)
            .await;
    }

    async fn try_commit(
        &self,
        adds: Vec<Action>,
        meta: &CommitMeta,
    ) -> std::result::Result<(u64, DeltaTableState), CommitError> {
        let meta = serde_json::to_value(meta).expect("plain data serializes");
        match crate::appender::commit_append(&self.table, &self.state, adds, Some(meta)).await {
            Ok(Some(done)) => Ok(done),
            Ok(None) => Err(CommitError::Lost),
            Err(e) => Err(CommitError::Other(Error::delta(&self.def.name)(e))),
        }
    }
}

enum CommitError {
    /// Another writer took the version: catch up and plan again.
    Lost,
    Other(Error),
}

fn record_keys(index: &mut StreamIndex, meta: &CommitMeta, version: u64, ts: i64) {
    for b in &meta.batches {
        index.insert_key(
            b.idempotency_key.clone(),
            KeyEntry {
                receipt: Receipt {
                    version,
                    accepted: b.accepted,
                    duplicates: b.duplicates,
                },
                body_sha256: b.body_sha256.clone(),
                committed_at_ms: ts,
            },
        );
    }
}
