//! System logs: append-only Delta tables of JSON events that kho itself writes
//! (governance: tokens now, datasets and grants later). Their state is rebuilt at start
//! by replaying every entry in order.

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Field, Schema, SchemaRef};
use chrono::{DateTime, Utc};
use deltalake::protocol::SaveMode;
use serde::Serialize;

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
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// Appends entries in one atomic commit; returns its version.
    pub async fn append(&self, entries: &[LogEntry]) -> Result<u64> {
        let batch = RecordBatch::try_new(
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
        )?;
        let table = self.store.delta_table(&self.key, AsOf::Latest).await?;
        let table = table
            .write(vec![batch])
            .with_save_mode(SaveMode::Append)
            .await
            .map_err(Error::delta(&self.key))?;
        Ok(table.version().unwrap_or(0))
    }

    /// The latest version of the log table, cheaply (a listing of the log, no replay).
    pub async fn latest_version(&self) -> Result<u64> {
        let table = self.store.table_handle(&self.key)?;
        table
            .log_store()
            .get_latest_version(0)
            .await
            .map_err(Error::delta(&self.key))
    }

    /// Every entry, in the order made, with the version read.
    pub async fn read_all(&self) -> Result<(u64, Vec<LogEntry>)> {
        let table = self.store.table(&self.key, AsOf::Latest).await?;
        let version = table.version();
        let mut out = Vec::new();
        for b in table.read().await? {
            let col = |name: &str| b.column_by_name(name).map(|c| c.as_string::<i32>());
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
                    recorded_at: DateTime::from_timestamp_micros(times.value(row))
                        .unwrap_or_default(),
                    actor: actors.value(row).to_owned(),
                    payload,
                });
            }
        }
        out.sort_by(|a, b| (a.recorded_at, &a.event_id).cmp(&(b.recorded_at, &b.event_id)));
        Ok((version, out))
    }

    fn corrupt(&self, reason: &str) -> Error {
        Error::CorruptLog {
            table: self.key.clone(),
            version: 0,
            reason: reason.to_owned(),
        }
    }
}
