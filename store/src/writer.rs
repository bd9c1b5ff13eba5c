//! Atomic, idempotent, exactly-once appends to a stream.
//!
//! A [`StreamWriter`] commits a group of submissions as one Delta commit. Before each
//! attempt it catches up with every commit it has not seen (its own process or another),
//! then decides per submission: replay (idempotency key already committed), reject (a
//! reference rule fails: nothing of that submission is written), or accept (minus the events
//! whose `event_id` is already in the stream). The commit is a put-if-absent of the next log
//! version with no automatic retry, so a lost race is detected, the writer catches up again
//! and decides again: two processes appending at once lose nothing and duplicate nothing.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{ArrayRef, AsArray, BooleanArray, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::{concat_batches, filter_record_batch};
use chrono::Utc;
use deltalake::DeltaTable;
use deltalake::kernel::Action;
use deltalake::table::state::DeltaTableState;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use crate::commit::MAX_ATTEMPTS;
use crate::error::{Error, Result, RowError};
use crate::index::{
    BatchRecord, CommitMeta, IdMap, IdSet, KeyEntry, Receipt, StreamIndex, parse_commit, parse_id,
    read_columns, type_index,
};
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
    /// Per reference rule of the definition: its event type's index and its column's.
    refs: Vec<(u8, usize)>,
    /// The index of the retraction event type (never the target of a reference).
    retraction: u8,
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

/// The decision for one submission within a planned group.
enum Decision {
    Done(Outcome),
    /// Same key as an earlier submission of this group: gets its outcome.
    SameAs(usize),
    Accept(Accepted),
}

/// What an accepted submission adds.
struct Accepted {
    /// Rows to write, when some are duplicates.
    mask: Option<BooleanArray>,
    accepted: u64,
    duplicates: u64,
    /// The new events: id and event type index.
    new_ids: Vec<(u128, u8)>,
    /// Events its references name: (rule, target).
    new_refs: Vec<(usize, u128)>,
}

/// Data files written for a plan and not yet committed.
struct Written {
    /// The plan they were written for: reused only for the same accepted rows.
    signature: Vec<(usize, u64)>,
    paths: Vec<Path>,
    adds: Vec<Action>,
}

struct Plan {
    decisions: Vec<Decision>,
    /// (submission, accepted rows) of every accepted submission, in order.
    signature: Vec<(usize, u64)>,
    rows: u64,
}

impl StreamWriter {
    /// Opens the writer of `stream`: loads the table and indexes its events and recent keys.
    pub async fn open(store: &Store, stream: &str, config: WriterConfig) -> Result<Self> {
        let def = store.stream(stream)?;
        let key = stream_key(stream);
        let mut table = store.table_handle(&key)?;
        table.load().await.map_err(Error::delta(&key))?;
        let refs = def
            .references
            .iter()
            .map(|r| {
                let column = def
                    .column_index(&r.column)
                    .expect("the registry checks that reference rules name columns");
                (type_index(&def, &r.event_type), column)
            })
            .collect();
        let retraction = type_index(&def, crate::schema::RETRACTION);
        let state = table.snapshot().map_err(Error::delta(&key))?.clone();
        let mut writer = Self {
            def,
            table,
            state,
            index: StreamIndex::default(),
            indexed_version: 0,
            config,
            refs,
            retraction,
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
        Utc::now().timestamp_millis().saturating_sub(window)
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
            let plan = self.plan(subs);
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
            let meta = commit_meta(subs, &plan);
            match self.try_commit(files.adds.clone(), &meta).await {
                Ok((version, state)) => {
                    self.apply(subs, &plan, version);
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

    /// Decides each submission against the index and the earlier submissions of the group.
    fn plan(&self, subs: &[Submission]) -> Plan {
        let mut decisions = Vec::with_capacity(subs.len());
        let mut group_ids = IdMap::<u8>::default();
        let mut group_refs = HashSet::new();
        let mut group_keys: HashMap<&str, usize> = HashMap::new();
        let mut signature = Vec::new();
        let mut rows = 0u64;
        for (i, sub) in subs.iter().enumerate() {
            if let Some(key) = &sub.idempotency {
                if let Some(entry) = self.index.key(&key.key_sha256) {
                    decisions.push(Decision::Done(if entry.body_sha256 == key.body_sha256 {
                        Outcome::Replayed(entry.receipt)
                    } else {
                        Outcome::KeyReused
                    }));
                    continue;
                }
                if let Some(&first) = group_keys.get(key.key_sha256.as_str()) {
                    let same_body = subs[first]
                        .idempotency
                        .as_ref()
                        .is_some_and(|k| k.body_sha256 == key.body_sha256);
                    decisions.push(if same_body {
                        Decision::SameAs(first)
                    } else {
                        Decision::Done(Outcome::KeyReused)
                    });
                    continue;
                }
                group_keys.insert(&key.key_sha256, i);
            }
            match self.check(sub, &group_ids, &group_refs) {
                Err(errors) => decisions.push(Decision::Done(Outcome::Rejected(errors))),
                Ok(a) => {
                    group_ids.extend(a.new_ids.iter().copied());
                    group_refs.extend(a.new_refs.iter().copied());
                    if a.accepted > 0 {
                        signature.push((i, a.accepted));
                        rows += a.accepted;
                    }
                    decisions.push(Decision::Accept(a));
                }
            }
        }
        Plan {
            decisions,
            signature,
            rows,
        }
    }

    /// Checks one submission: which rows are new, and whether its references hold.
    fn check(
        &self,
        sub: &Submission,
        group_ids: &IdMap<u8>,
        group_refs: &HashSet<(usize, u128)>,
    ) -> std::result::Result<Accepted, Vec<RowError>> {
        let batch = &sub.batch;
        let ids = batch.column(0).as_string::<i32>();
        let types = batch.column(1).as_string::<i32>();
        let n = batch.num_rows();
        let mut keep = Vec::with_capacity(n);
        let mut new_ids = Vec::with_capacity(n);
        let mut errors = Vec::new();
        for (row, id) in ids.iter().enumerate() {
            let Some(id) = id.and_then(parse_id) else {
                errors.push(RowError::new(
                    row + 1,
                    Some(EVENT_ID.into()),
                    "event_id must be a UUID",
                ));
                keep.push(false);
                continue;
            };
            let new = self.index.event_type(id).is_none() && !group_ids.contains_key(&id);
            keep.push(new);
            if new {
                new_ids.push((id, type_index(&self.def, types.value(row))));
            }
        }
        let mut new_refs = Vec::new();
        let own: IdMap<u8> = new_ids.iter().copied().collect();
        for (rule_index, (rule, &(ref_type, col))) in
            self.def.references.iter().zip(&self.refs).enumerate()
        {
            let mut named = IdSet::default();
            let refs = batch.column(col).as_string::<i32>();
            for (row, target) in refs.iter().enumerate() {
                // Only new events of the rule's type; a missing target is reported at decode.
                let Some(text) = target else { continue };
                if !keep[row] || type_index(&self.def, types.value(row)) != ref_type {
                    continue;
                }
                let error =
                    |message: String| RowError::new(row + 1, Some(rule.column.clone()), message);
                let Some(target) = parse_id(text) else {
                    errors.push(error(format!("{text:?} is not a UUID")));
                    continue;
                };
                let target_type = self
                    .index
                    .event_type(target)
                    .or_else(|| group_ids.get(&target).copied())
                    .or_else(|| own.get(&target).copied());
                match target_type {
                    None => errors.push(error(format!(
                        "names event {text}, which is not in stream {}",
                        self.def.name
                    ))),
                    Some(t) if t == ref_type || t == self.retraction => {
                        let name = self
                            .def
                            .event_types
                            .get(usize::from(t))
                            .map_or("event", |e| e.name.as_str());
                        errors.push(error(format!(
                            "names event {text}, which is itself an {name}: it cannot be {}",
                            rule.verb
                        )));
                    }
                    Some(_)
                        if self.index.is_referenced(rule_index, target)
                            || group_refs.contains(&(rule_index, target))
                            || !named.insert(target) =>
                    {
                        errors.push(error(format!("event {text} is already {}", rule.verb)));
                    }
                    Some(_) => new_refs.push((rule_index, target)),
                }
                if errors.len() >= 100 {
                    break;
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let accepted = new_ids.len() as u64;
        let duplicates = n as u64 - accepted;
        Ok(Accepted {
            mask: (duplicates > 0).then(|| BooleanArray::from(keep)),
            accepted,
            duplicates,
            new_ids,
            new_refs,
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
        let now = Utc::now().timestamp_micros();
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

    /// Records a successful commit in the index.
    fn apply(&mut self, subs: &[Submission], plan: &Plan, version: u64) {
        let now = Utc::now().timestamp_millis();
        for (i, d) in plan.decisions.iter().enumerate() {
            let Decision::Accept(a) = d else { continue };
            for &(id, ty) in &a.new_ids {
                self.index.insert_event(id, ty);
            }
            for &(rule, target) in &a.new_refs {
                self.index.insert_reference(rule, target);
            }
            if let Some(key) = &subs[i].idempotency {
                self.index.insert_key(
                    key.key_sha256.clone(),
                    KeyEntry {
                        receipt: Receipt {
                            version,
                            accepted: a.accepted,
                            duplicates: a.duplicates,
                        },
                        body_sha256: key.body_sha256.clone(),
                        committed_at_ms: now,
                    },
                );
            }
        }
        if version.is_multiple_of(256) {
            let cutoff = self.key_cutoff_ms();
            self.index.expire_keys(cutoff);
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

fn commit_meta(subs: &[Submission], plan: &Plan) -> CommitMeta {
    let mut meta = CommitMeta {
        batches: Vec::new(),
        events: plan.rows,
    };
    for (i, d) in plan.decisions.iter().enumerate() {
        if let (Decision::Accept(a), Some(key)) = (d, &subs[i].idempotency) {
            meta.batches.push(BatchRecord {
                idempotency_key: key.key_sha256.clone(),
                body_sha256: key.body_sha256.clone(),
                accepted: a.accepted,
                duplicates: a.duplicates,
            });
        }
    }
    meta
}

/// Turns decisions into outcomes once the version is known.
fn finish(decisions: Vec<Decision>, version: u64) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(decisions.len());
    for d in decisions {
        let o = match d {
            Decision::Done(o) => o,
            Decision::SameAs(first) => match &out[first] {
                Outcome::Committed(r) | Outcome::Replayed(r) => Outcome::Replayed(*r),
                other => other.clone(),
            },
            Decision::Accept(a) => Outcome::Committed(Receipt {
                version,
                accepted: a.accepted,
                duplicates: a.duplicates,
            }),
        };
        out.push(o);
    }
    out
}
