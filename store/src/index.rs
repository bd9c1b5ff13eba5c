//! What a writer must know about a stream's past to keep it clean: every event id (so an id
//! never appears twice), which events a reference rule has already named (an entry is
//! reversed once), and the recent idempotency keys with the answer they got.
//!
//! The index is rebuilt from the table when a writer opens a stream, then kept current by
//! reading each new commit of the log, including commits of other processes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
#[allow(deprecated)]
use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{Error, Result};
use crate::schema::{EVENT_ID, EVENT_TYPE, StreamDef};

/// Marks an event type the definition doesn't know (written by a newer or older schema).
const UNKNOWN_TYPE: u8 = u8::MAX;

/// The result a batch got when it was committed; a retry with the same key gets it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The table version of the commit that holds the batch (or the version the batch was
    /// checked against, when every event was already there).
    pub version: u64,
    /// Events written by this batch.
    pub accepted: u64,
    /// Events of the batch whose `event_id` was already in the stream, not written again.
    pub duplicates: u64,
}

/// One idempotent batch as recorded in a commit's `commitInfo` under `kho.batches`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BatchRecord {
    /// Hex SHA-256 of principal and key: the raw key is never stored.
    pub(crate) idempotency_key: String,
    /// Hex SHA-256 of the request body, to tell a true retry from a reused key.
    pub(crate) body_sha256: String,
    pub(crate) accepted: u64,
    pub(crate) duplicates: u64,
}

/// The `kho` object of a commit's `commitInfo`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct CommitMeta {
    #[serde(default)]
    pub(crate) batches: Vec<BatchRecord>,
    #[serde(default)]
    pub(crate) events: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct KeyEntry {
    pub(crate) receipt: Receipt,
    pub(crate) body_sha256: String,
    /// Commit time in milliseconds, for expiring keys.
    pub(crate) committed_at_ms: i64,
}

/// Maps keyed by event id (a UUID as `u128`), with a fast hasher: ids come from clients,
/// but a collision flood only slows one stream's writer, it cannot corrupt it.
pub(crate) type IdMap<V> = HashMap<u128, V, foldhash::fast::RandomState>;
pub(crate) type IdSet = HashSet<u128, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub(crate) struct StreamIndex {
    /// Event id → index of its event type in the definition.
    types: IdMap<u8>,
    /// Per reference rule of the definition: ids already named by one of its events.
    referenced: Vec<IdSet>,
    /// Idempotency key hash → what it got.
    keys: HashMap<String, KeyEntry>,
}

impl StreamIndex {
    pub(crate) fn len(&self) -> usize {
        self.types.len()
    }

    pub(crate) fn event_type(&self, id: u128) -> Option<u8> {
        self.types.get(&id).copied()
    }

    pub(crate) fn is_referenced(&self, rule: usize, id: u128) -> bool {
        self.referenced.get(rule).is_some_and(|s| s.contains(&id))
    }

    pub(crate) fn key(&self, hash: &str) -> Option<&KeyEntry> {
        self.keys.get(hash)
    }

    pub(crate) fn insert_event(&mut self, id: u128, ty: u8) {
        self.types.insert(id, ty);
    }

    pub(crate) fn insert_reference(&mut self, rule: usize, id: u128) {
        if self.referenced.len() <= rule {
            self.referenced.resize_with(rule + 1, IdSet::default);
        }
        self.referenced[rule].insert(id);
    }

    pub(crate) fn insert_key(&mut self, hash: String, entry: KeyEntry) {
        self.keys.insert(hash, entry);
    }

    /// Forgets keys committed before `cutoff_ms`.
    pub(crate) fn expire_keys(&mut self, cutoff_ms: i64) {
        self.keys.retain(|_, e| e.committed_at_ms >= cutoff_ms);
    }

    /// Adds the events of one batch of stored rows.
    pub(crate) fn add_rows(&mut self, def: &StreamDef, batch: &RecordBatch) -> Result<()> {
        let Some(ids) = batch
            .column_by_name(EVENT_ID)
            .and_then(|c| c.as_string_opt::<i32>())
        else {
            return Err(Error::CorruptLog {
                table: def.name.clone(),
                version: 0,
                reason: "a data file has no readable event_id column".into(),
            });
        };
        let types = batch
            .column_by_name(EVENT_TYPE)
            .and_then(|c| c.as_string_opt::<i32>());
        // Each rule's column and event type (a file older than the rule lacks the column).
        let refs: Vec<(usize, u8, &arrow::array::StringArray)> = def
            .references
            .iter()
            .enumerate()
            .filter_map(|(rule, r)| {
                let column = batch
                    .column_by_name(&r.column)
                    .and_then(|c| c.as_string_opt::<i32>())?;
                Some((rule, type_index(def, &r.event_type), column))
            })
            .collect();
        for row in 0..batch.num_rows() {
            let Some(id) = parse_id(ids.value(row)) else {
                tracing::warn!(stream = %def.name, id = ids.value(row), "stored event id is not a uuid");
                continue;
            };
            let ty = types.map_or(UNKNOWN_TYPE, |t| type_index(def, t.value(row)));
            self.types.insert(id, ty);
            for &(rule, rule_type, column) in &refs {
                if ty == rule_type
                    && !column.is_null(row)
                    && let Some(target) = parse_id(column.value(row))
                {
                    self.insert_reference(rule, target);
                }
            }
        }
        Ok(())
    }
}

/// The index of an event type in the definition, or [`UNKNOWN_TYPE`].
pub(crate) fn type_index(def: &StreamDef, name: &str) -> u8 {
    def.event_types
        .iter()
        .position(|e| e.name == name)
        .and_then(|i| u8::try_from(i).ok())
        .unwrap_or(UNKNOWN_TYPE)
}

pub(crate) fn parse_id(s: &str) -> Option<u128> {
    Uuid::try_parse(s).ok().map(|u| u.as_u128())
}

/// Reads the named top-level columns of one Parquet file; a column the file lacks is skipped.
// `ParquetObjectReader` is deprecated in parquet 59.2 in favour of hand-written readers; it
// remains the maintained range-reading adapter for object_store, so we keep using it.
#[allow(deprecated)]
pub(crate) async fn read_columns(
    store: Arc<dyn ObjectStore>,
    path: Path,
    columns: Option<&[String]>,
) -> Result<Vec<RecordBatch>> {
    let reader = ParquetObjectReader::new(store, path);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let mask = match columns {
        None => ProjectionMask::all(),
        Some(columns) => {
            let indices: Vec<usize> = builder
                .schema()
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| columns.contains(f.name()))
                .map(|(i, _)| i)
                .collect();
            ProjectionMask::roots(builder.parquet_schema(), indices)
        }
    };
    let stream = builder
        .with_projection(mask)
        .with_batch_size(64 * 1024)
        .build()?;
    let batches: Vec<RecordBatch> = stream.try_collect().await?;
    batches.iter().map(plain_strings).collect()
}

/// Files written by other engines (compaction goes through DataFusion) and DataFusion scans
/// hold strings as `Utf8View` or `LargeUtf8`; callers of the store get the declared `Utf8`.
pub(crate) fn plain_strings(batch: &RecordBatch) -> Result<RecordBatch> {
    use arrow::datatypes::{DataType, Field, Schema};
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if matches!(f.data_type(), DataType::Utf8View | DataType::LargeUtf8) {
            columns.push(arrow::compute::cast(c, &DataType::Utf8)?);
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
        } else {
            columns.push(c.clone());
            fields.push(f.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        columns,
    )?)
}

/// The parts of a commit file a writer needs.
#[derive(Debug, Default)]
pub(crate) struct CommitSummary {
    /// Paths (relative to the table root) of files added with `dataChange = true`.
    pub(crate) data_files: Vec<Path>,
    pub(crate) timestamp_ms: Option<i64>,
    pub(crate) meta: Option<CommitMeta>,
}

#[derive(Deserialize)]
struct LogLine {
    add: Option<AddLine>,
    #[serde(rename = "commitInfo")]
    commit_info: Option<CommitInfoLine>,
}

#[derive(Deserialize)]
struct AddLine {
    path: String,
    #[serde(rename = "dataChange")]
    data_change: bool,
}

#[derive(Deserialize)]
struct CommitInfoLine {
    timestamp: Option<i64>,
    kho: Option<CommitMeta>,
}

/// Parses one `_delta_log/NNN.json` commit file.
pub(crate) fn parse_commit(bytes: &[u8]) -> std::result::Result<CommitSummary, String> {
    let mut out = CommitSummary::default();
    for line in bytes.split(|b| *b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let parsed: LogLine = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        if let Some(add) = parsed.add
            && add.data_change
        {
            let path = Path::from_url_path(&add.path).map_err(|e| e.to_string())?;
            out.data_files.push(path);
        }
        if let Some(info) = parsed.commit_info {
            out.timestamp_ms = info.timestamp;
            out.meta = info.kho;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_adds_and_kho_metadata() {
        let commit = br#"{"commitInfo":{"timestamp":1700000000000,"operation":"WRITE","kho":{"batches":[{"idempotency_key":"ab","body_sha256":"cd","accepted":3,"duplicates":1}],"events":3}}}
{"add":{"path":"part-0001%20x.parquet","partitionValues":{},"size":10,"modificationTime":1,"dataChange":true}}
{"add":{"path":"compacted.parquet","partitionValues":{},"size":10,"modificationTime":1,"dataChange":false}}
"#;
        let s = parse_commit(commit).unwrap();
        assert_eq!(s.data_files, vec![Path::from("part-0001 x.parquet")]);
        assert_eq!(s.timestamp_ms, Some(1_700_000_000_000));
        let meta = s.meta.unwrap();
        assert_eq!(meta.batches[0].accepted, 3);
        assert_eq!(meta.batches[0].idempotency_key, "ab");
    }

    #[test]
    fn corrupt_line_is_an_error() {
        assert!(parse_commit(b"{\"add\": nope}\n").is_err());
    }
}
