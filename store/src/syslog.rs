//! System logs: append-only Delta tables of JSON events that kho itself writes (the
//! governance log: tokens, datasets, workflow steps, grants, releases). Their state is
//! rebuilt at start by replaying every entry in order, and kept current by reading what
//! other processes appended since ([`SystemLog::read_since`]).
//!
//! An append names the version its writer decided on ([`SystemLog::append_at`]): it commits
//! only as the version right after it (put-if-absent), so a decision made on a state another
//! process has since changed never lands; the writer catches up and decides again.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::appender::{Appended, Appender};
use crate::error::{Error, Result};
use crate::schema::{ColumnType, UTC};
use crate::store::{AsOf, Store};

/// One entry of a system log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogEntry {
    /// UUIDv7: time-ordered, so entries sort in the order they were made.
    pub event_id: String,
    pub event_type: String,
    pub recorded_at: DateTime<Utc>,
    /// Who did it (a token id, or `admin`).
    pub actor: String,
    pub payload: serde_json::Value,
}

impl LogEntry {
    /// An entry recorded `at` (the store's [`now`](crate::Store::now)).
    pub fn new(
        event_type: &str,
        actor: &str,
        payload: serde_json::Value,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            event_id: uuid::Uuid::now_v7().to_string(),
            event_type: event_type.to_owned(),
            // Stored to the microsecond: keep no more, so an entry reads back equal.
            recorded_at: DateTime::from_timestamp_micros(at.timestamp_micros()).unwrap_or(at),
            actor: actor.to_owned(),
            payload,
        }
    }
}

const COLUMNS: [(&str, ColumnType); 5] = [
    ("event_id", ColumnType::String),
    ("event_type", ColumnType::String),
    ("recorded_at", ColumnType::Timestamp),
    ("actor", ColumnType::String),
    ("payload", ColumnType::String),
];

fn arrow_schema() -> SchemaRef {
    Arc::new(Schema::new(
        COLUMNS
            .iter()
            .map(|(n, t)| Field::new(*n, t.arrow(), false))
            .collect::<Vec<_>>(),
    ))
}

/// A system log table at a key such as `system/governance`.
#[derive(Debug, Clone)]
pub struct SystemLog {
    store: Arc<Store>,
    key: String,
    /// The table state of the last append, kept so that the next one need not reload it.
    appender: Arc<tokio::sync::Mutex<Option<Appender>>>,
}

impl SystemLog {
    /// Opens the log, creating its table on first use.
    pub async fn open(store: Arc<Store>, key: &str) -> Result<Self> {
        store
            .create_table(
                key,
                &crate::table::NewTable {
                    name: key.replace('/', "."),
                    schema: arrow_schema(),
                    append_only: true,
                    checkpoint_interval: None,
                },
            )
            .await?;
        Ok(Self {
            store,
            key: key.to_owned(),
            appender: Arc::new(tokio::sync::Mutex::new(None)),
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends entries in one atomic commit as the version right after `after`, the version
    /// the writer's decision was made on. `Ok(None)`: another writer committed that version
    /// first and nothing was written; read what it wrote ([`Self::read_since`]) and decide
    /// again.
    pub async fn append_at(&self, after: u64, entries: &[LogEntry]) -> Result<Option<u64>> {
        let batch = to_batch(entries)?;
        let mut cached = self.appender.lock().await;
        let mut appender = match cached.take() {
            Some(a) if a.version() == after => a,
            Some(mut a) if a.version() < after => {
                a.advance(after).await?;
                a
            }
            _ => Appender::open(&self.store, &self.key, Some(after)).await?,
        };
        let done = appender.append(batch).await?;
        *cached = Some(appender);
        Ok(match done {
            Appended::Committed(v) => Some(v),
            Appended::Lost => None,
        })
    }

    /// The entries appended after version `after`, in commit order, with the newest version
    /// read. `Ok(None)` when a commit in between is no longer in the log (cleaned up after the
    /// log retention): read everything again ([`Self::read_all`]).
    pub async fn read_since(&self, after: u64) -> Result<Option<(u64, Vec<LogEntry>)>> {
        let Some(changes) = crate::changes::rows_added(&self.store, &self.key, after, None).await?
        else {
            return Ok(None);
        };
        let mut out = Vec::new();
        for b in &changes.batches {
            self.entries_of(b, &mut out)?;
        }
        Ok(Some((changes.version, out)))
    }

    /// Is there a commit after `version`? One existence check of the next log entry: the
    /// cheap test a reader makes before catching up.
    pub async fn has_after(&self, version: u64) -> Result<bool> {
        let table = self.store.table_handle(&self.key)?;
        let next = object_store::path::Path::from(format!("_delta_log/{:020}.json", version + 1));
        match object_store::ObjectStoreExt::head(table.object_store().as_ref(), &next).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Every entry, in the order made, with the version read. Entries are ordered by
    /// `recorded_at` (then id): a writer stamps each entry later than every entry of the state
    /// it decided on, so this is the commit order even across hosts whose clocks differ.
    pub async fn read_all(&self) -> Result<(u64, Vec<LogEntry>)> {
        let table = self.store.table(&self.key, AsOf::Latest).await?;
        let version = table.version();
        let mut out = Vec::new();
        for b in table.read().await? {
            self.entries_of(&b, &mut out)?;
        }
        out.sort_by(|a, b| (a.recorded_at, &a.event_id).cmp(&(b.recorded_at, &b.event_id)));
        Ok((version, out))
    }

    fn entries_of(&self, b: &RecordBatch, out: &mut Vec<LogEntry>) -> Result<()> {
        let col = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
        };
        let (Some(ids), Some(types), Some(actors), Some(payloads)) = (
            col("event_id"),
            col("event_type"),
            col("actor"),
            col("payload"),
        ) else {
            return Err(self.corrupt("missing a column"));
        };
        let times = b
            .column_by_name("recorded_at")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>())
            .ok_or_else(|| self.corrupt("recorded_at is not a timestamp"))?;
        for row in 0..b.num_rows() {
            let payload = serde_json::from_str(payloads.value(row))
                .map_err(|e| self.corrupt(&format!("payload of {}: {e}", ids.value(row))))?;
            out.push(LogEntry {
                event_id: ids.value(row).to_owned(),
                event_type: types.value(row).to_owned(),
                recorded_at: DateTime::from_timestamp_micros(times.value(row)).unwrap_or_default(),
                actor: actors.value(row).to_owned(),
                payload,
            });
        }
        Ok(())
    }

    fn corrupt(&self, reason: &str) -> Error {
        Error::CorruptLog {
            table: self.key.clone(),
            version: 0,
            reason: reason.to_owned(),
        }
    }
}

fn to_batch(entries: &[LogEntry]) -> Result<RecordBatch> {
    Ok(RecordBatch::try_new(
        arrow_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| &e.event_id),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| &e.event_type),
            )),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    entries.iter().map(|e| e.recorded_at.timestamp_micros()),
                )
                .with_timezone(UTC),
            ),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| &e.actor),
            )),
            Arc::new(StringArray::from_iter_values(
                entries.iter().map(|e| e.payload.to_string()),
            )),
        ],
    )?)
}
