//! The audit of every pull: an append-only Delta table, `system/audit`, whose entries are
//! hash-chained. Entry n records who pulled (a token id, or a salted hash of the client's
//! IP), which dataset and release, how many rows, in which format, for which declared
//! purpose, when; its `hash` is SHA-256 over the previous entry's hash and its own fields,
//! so editing or deleting any entry breaks the chain from there on.
//!
//! Appends are group-committed by one task per process. A commit is a put-if-absent of the
//! next log version; losing the race to another process means reading its entries,
//! continuing the chain after them, and trying again.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use chrono::{DateTime, Utc};
use kho_store::{AsOf, Store, rows_added};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::error::{CatalogError, Result};

pub const AUDIT_KEY: &str = "system/audit";

/// What one pull was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pull {
    /// The token id of the caller, if it had one.
    pub principal: Option<String>,
    /// The salted hash of an anonymous caller's IP address.
    pub ip_hash: Option<String>,
    pub dataset: String,
    pub version: u32,
    pub rows: u64,
    pub format: String,
    /// The `X-Purpose` header, when given.
    pub purpose: Option<String>,
}

/// A stored audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub pull: Pull,
    pub prev_hash: String,
    pub hash: String,
}

/// The chain's first `prev_hash`.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 over the previous hash and the entry's fields, in a fixed order.
fn chain_hash(prev: &str, seq: u64, at: DateTime<Utc>, p: &Pull) -> String {
    let mut h = Sha256::new();
    let fields = [
        prev.to_owned(),
        seq.to_string(),
        at.timestamp_micros().to_string(),
        p.principal.clone().unwrap_or_default(),
        p.ip_hash.clone().unwrap_or_default(),
        p.dataset.clone(),
        p.version.to_string(),
        p.rows.to_string(),
        p.format.clone(),
        p.purpose.clone().unwrap_or_default(),
    ];
    for f in fields {
        h.update((f.len() as u64).to_le_bytes());
        h.update(f.as_bytes());
    }
    hex::encode(h.finalize())
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("seq", DataType::Int64, false),
        Field::new(
            "at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("principal", DataType::Utf8, true),
        Field::new("ip_hash", DataType::Utf8, true),
        Field::new("dataset", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("format", DataType::Utf8, false),
        Field::new("purpose", DataType::Utf8, true),
        Field::new("prev_hash", DataType::Utf8, false),
        Field::new("hash", DataType::Utf8, false),
    ]))
}

fn to_batch(entries: &[Entry]) -> Result<RecordBatch> {
    let s = |f: &dyn Fn(&Entry) -> Option<String>| {
        Arc::new(entries.iter().map(f).collect::<StringArray>()) as _
    };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(entries.iter().map(|e| e.seq as i64).collect::<Int64Array>()),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    entries.iter().map(|e| e.at.timestamp_micros()),
                )
                .with_timezone("UTC"),
            ),
            s(&|e| e.pull.principal.clone()),
            s(&|e| e.pull.ip_hash.clone()),
            s(&|e| Some(e.pull.dataset.clone())),
            Arc::new(
                entries
                    .iter()
                    .map(|e| i64::from(e.pull.version))
                    .collect::<Int64Array>(),
            ),
            Arc::new(
                entries
                    .iter()
                    .map(|e| e.pull.rows as i64)
                    .collect::<Int64Array>(),
            ),
            s(&|e| Some(e.pull.format.clone())),
            s(&|e| e.pull.purpose.clone()),
            s(&|e| Some(e.prev_hash.clone())),
            s(&|e| Some(e.hash.clone())),
        ],
    )?)
}

fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let bad = |what: &str| {
        CatalogError::Invalid(format!("the audit table has no readable {what} column"))
    };
    for b in batches {
        let strings = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| bad(name))
        };
        let ints = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .ok_or_else(|| bad(name))
        };
        let (seq, version, rows) = (ints("seq")?, ints("version")?, ints("rows")?);
        let at = b
            .column_by_name("at")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| bad("at"))?;
        let (principal, ip, dataset, format, purpose, prev, hash) = (
            strings("principal")?,
            strings("ip_hash")?,
            strings("dataset")?,
            strings("format")?,
            strings("purpose")?,
            strings("prev_hash")?,
            strings("hash")?,
        );
        let opt = |a: &StringArray, i: usize| (!a.is_null(i)).then(|| a.value(i).to_owned());
        for i in 0..b.num_rows() {
            out.push(Entry {
                seq: u64::try_from(seq.value(i)).unwrap_or(0),
                at: DateTime::from_timestamp_micros(at.value(i)).unwrap_or_default(),
                pull: Pull {
                    principal: opt(principal, i),
                    ip_hash: opt(ip, i),
                    dataset: dataset.value(i).to_owned(),
                    version: u32::try_from(version.value(i)).unwrap_or(0),
                    rows: u64::try_from(rows.value(i)).unwrap_or(0),
                    format: format.value(i).to_owned(),
                    purpose: opt(purpose, i),
                },
                prev_hash: prev.value(i).to_owned(),
                hash: hash.value(i).to_owned(),
            });
        }
    }
    out.sort_by_key(|e| e.seq);
    Ok(out)
}

/// What verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub entries: u64,
    pub valid: bool,
    /// The first entry whose hash, link or sequence number is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_broken: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The last entry's hash when the chain holds: a steward who records it elsewhere can
    /// later tell a cut or rewritten tail from the log they saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head: Option<String>,
}

type Job = (Pull, oneshot::Sender<std::result::Result<u64, String>>);

/// The audit log of a store.
#[derive(Clone)]
pub struct AuditLog {
    store: Arc<Store>,
    tx: mpsc::UnboundedSender<Job>,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditLog")
    }
}

/// The chain's end as this process knows it.
struct Tail {
    version: u64,
    seq: u64,
    hash: String,
    /// The table loaded at `version`, kept between commits.
    table: Option<kho_store::Appender>,
}

impl AuditLog {
    /// Opens (creating on first use) the audit table and starts the append task.
    pub async fn open(store: Arc<Store>) -> Result<Self> {
        store
            .create_table(
                AUDIT_KEY,
                &kho_store::NewTable {
                    name: "system.audit".into(),
                    schema: schema(),
                    append_only: true,
                    checkpoint_interval: Some(10),
                },
            )
            .await?;
        let tail = load_tail(&store).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(store.clone(), tail, rx));
        Ok(Self { store, tx })
    }

    /// Records a pull; returns its sequence number once the entry is durable.
    pub async fn record(&self, pull: Pull) -> Result<u64> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send((pull, reply))
            .map_err(|_| CatalogError::Invalid("the audit log is closed".into()))?;
        answer
            .await
            .map_err(|_| CatalogError::Invalid("the audit log is closed".into()))?
            .map_err(|e| CatalogError::Invalid(format!("the pull could not be audited: {e}")))
    }

    /// Every entry, in order.
    pub async fn entries(&self) -> Result<Vec<Entry>> {
        let table = self.store.table(AUDIT_KEY, AsOf::Latest).await?;
        from_batches(&table.read().await?)
    }

    /// Recomputes the chain and names the first broken entry.
    pub async fn verify(&self) -> Result<Verification> {
        let entries = self.entries().await?;
        let mut prev = GENESIS.to_owned();
        for (i, e) in entries.iter().enumerate() {
            let expected_seq = i as u64 + 1;
            let problem = if e.seq != expected_seq {
                Some(format!(
                    "entry {expected_seq} is missing (found {} next)",
                    e.seq
                ))
            } else if e.prev_hash != prev {
                Some("its link to the previous entry does not match".to_owned())
            } else if chain_hash(&prev, e.seq, e.at, &e.pull) != e.hash {
                Some("its content does not match its hash".to_owned())
            } else {
                None
            };
            if let Some(reason) = problem {
                return Ok(Verification {
                    entries: entries.len() as u64,
                    valid: false,
                    first_broken: Some(expected_seq.min(e.seq)),
                    reason: Some(reason),
                    head: None,
                });
            }
            prev.clone_from(&e.hash);
        }
        Ok(Verification {
            entries: entries.len() as u64,
            valid: true,
            first_broken: None,
            reason: None,
            head: entries.last().map(|e| e.hash.clone()),
        })
    }
}

/// The last entry of the table (largest sequence number).
async fn load_tail(store: &Store) -> Result<Tail> {
    let loaded = store.table(AUDIT_KEY, AsOf::Latest).await?;
    let version = loaded.version();
    let entries = from_batches(&loaded.read().await?)?;
    let table = kho_store::Appender::from_table(loaded)?;
    Ok(match entries.last() {
        Some(e) => Tail {
            version,
            seq: e.seq,
            hash: e.hash.clone(),
            table: Some(table),
        },
        None => Tail {
            version,
            seq: 0,
            hash: GENESIS.to_owned(),
            table: Some(table),
        },
    })
}

/// Group commit: each round takes every pull waiting, chains them after the tail and
/// commits them as one version; a lost race reads the winner's entries and goes again.
async fn run(store: Arc<Store>, mut tail: Tail, mut rx: mpsc::UnboundedReceiver<Job>) {
    let mut commits = 0u64;
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while let Ok(j) = rx.try_recv() {
            jobs.push(j);
        }
        let result = commit(&store, &mut tail, &jobs).await;
        match result {
            Ok(seqs) => {
                for ((_, reply), seq) in jobs.into_iter().zip(seqs) {
                    let _ = reply.send(Ok(seq));
                }
                // One small file per commit: merge them now and then (in the background;
                // the next append catches up with the compaction commit).
                commits += 1;
                if commits.is_multiple_of(100) {
                    let store = store.clone();
                    tokio::spawn(async move {
                        let opts = kho_store::MaintenanceOptions {
                            checkpoint: false,
                            target_file_size: 8 * 1024 * 1024,
                            ..Default::default()
                        };
                        if let Err(e) = kho_store::maintain_table(&store, AUDIT_KEY, &opts).await {
                            tracing::warn!(error = %e, "compacting the audit log failed");
                        }
                    });
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "audit commit failed");
                let msg = e.to_string();
                for (_, reply) in jobs {
                    let _ = reply.send(Err(msg.clone()));
                }
                // Re-read the end of the chain before the next round.
                if let Ok(t) = load_tail(&store).await {
                    tail = t;
                }
            }
        }
    }
}

async fn commit(store: &Store, tail: &mut Tail, jobs: &[Job]) -> Result<Vec<u64>> {
    for _attempt in 0..64 {
        let at = store.now();
        let mut prev = tail.hash.clone();
        let mut entries = Vec::with_capacity(jobs.len());
        for (i, (pull, _)) in jobs.iter().enumerate() {
            let seq = tail.seq + 1 + i as u64;
            let hash = chain_hash(&prev, seq, at, pull);
            entries.push(Entry {
                seq,
                at,
                pull: pull.clone(),
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        let mut table = match tail.table.take() {
            Some(t) if t.version() == tail.version => t,
            _ => kho_store::Appender::open(store, AUDIT_KEY, Some(tail.version)).await?,
        };
        match table.append(to_batch(&entries)?).await? {
            kho_store::Appended::Committed(version) => {
                tail.version = version;
                tail.table = Some(table);
                tail.seq = entries.last().map_or(tail.seq, |e| e.seq);
                tail.hash = prev;
                return Ok(entries.iter().map(|e| e.seq).collect());
            }
            kho_store::Appended::Lost => {
                // Another process appended: continue the chain after its entries.
                let Some(changes) = rows_added(store, AUDIT_KEY, tail.version, None).await? else {
                    *tail = load_tail(store).await?;
                    continue;
                };
                let theirs = from_batches(&changes.batches)?;
                if let Some(last) = theirs.last() {
                    tail.seq = last.seq;
                    tail.hash = last.hash.clone();
                }
                tail.version = changes.version;
                table.advance(changes.version).await?;
                tail.table = Some(table);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    }
    Err(CatalogError::Invalid(
        "the audit log is too contended to append to".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(n: u64) -> Pull {
        Pull {
            principal: None,
            ip_hash: Some("ab12".into()),
            dataset: "d".into(),
            version: 1,
            rows: n,
            format: "csv".into(),
            purpose: None,
        }
    }

    #[tokio::test]
    async fn two_processes_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().to_str().unwrap();
        let a = AuditLog::open(Store::open(spec).unwrap()).await.unwrap();
        let b = AuditLog::open(Store::open(spec).unwrap()).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..40u64 {
            let log = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(
                async move { log.record(pull(i)).await.unwrap() },
            ));
        }
        let mut seqs: Vec<u64> = Vec::new();
        for t in tasks {
            seqs.push(t.await.unwrap());
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=40).collect::<Vec<_>>());
        let v = a.verify().await.unwrap();
        assert_eq!((v.entries, v.valid), (40, true), "{v:?}");
    }

    /// Compaction commits land between appends (every 100 commits, in the background);
    /// the chain goes on across them and the small files are merged.
    #[tokio::test]
    async fn the_chain_survives_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().to_str().unwrap()).unwrap();
        let log = AuditLog::open(store.clone()).await.unwrap();
        for i in 0..230u64 {
            assert_eq!(log.record(pull(i)).await.unwrap(), i + 1);
        }
        let v = log.verify().await.unwrap();
        assert_eq!((v.entries, v.valid), (230, true), "{v:?}");
        let table = store.table(AUDIT_KEY, AsOf::Latest).await.unwrap();
        let stats = table.stats().unwrap();
        assert_eq!(stats.row_count, 230);
        assert!(stats.file_count < 100, "{stats:?}");
    }
}
