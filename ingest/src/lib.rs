//! kho-ingest: from a request body to a durable commit.
//!
//! [`decode`] turns NDJSON, JSON arrays and CSV into one Arrow batch of the stream's schema,
//! validating every row (types, required fields per event type, enums, positive amounts,
//! cross-field rules, unknown fields); a batch with any problem is rejected whole.
//! [`Ingest::append`] then queues the batch for the stream's group-commit task
//! ([`committer`]), which shares one Delta commit among the requests of a short window and
//! answers each once its commit is durable. A bounded queue (counted in events) refuses
//! work it cannot hold instead of growing without limit.
//!
//! Idempotency keys are scoped to the principal and stored hashed in the commit
//! (see `kho_store::writer`); a retried key gets the first answer and writes nothing.

mod codes;
mod committer;
pub mod decode;
pub mod error;
pub mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kho_store::{IdempotencyKey, Outcome, Store, Submission, WriterConfig};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot};

pub use codes::{CodeLists, CodeName};
pub use decode::{Format, Rejection};
pub use error::{IngestError, Result};
pub use metrics::IngestMetrics;

use committer::{CommitterConfig, Job};

/// Limits and timing of the ingest path.
#[derive(Debug, Clone)]
pub struct IngestConfig {
    /// How long the commit task waits for more requests to share a commit.
    pub commit_window: Duration,
    /// The most events one request may carry.
    pub max_batch_events: usize,
    /// The most events waiting for a commit, across streams; beyond it requests get 429.
    pub max_queued_events: usize,
    /// The most events one commit takes.
    pub max_commit_events: usize,
    /// Compact a stream after this many commits (0: never automatically).
    pub compact_every: u64,
    pub writer: WriterConfig,
    /// The earliest `occurred_at` accepted.
    pub occurred_after: chrono::DateTime<chrono::Utc>,
    /// How far past now an `occurred_at` may be (clocks differ; nothing happens later).
    pub occurred_ahead: Duration,
}

/// 1975-01-01T00:00:00Z: older than any record the province's systems hold.
pub const DEFAULT_OCCURRED_AFTER: i64 = 157_766_400;

impl IngestConfig {
    /// The window `occurred_at` must fall in at `now`, in µs since the epoch:
    /// `[after, now + ahead)`.
    pub fn occurred_window(&self, now: chrono::DateTime<chrono::Utc>) -> (i64, i64) {
        let ahead =
            chrono::Duration::from_std(self.occurred_ahead).unwrap_or(chrono::Duration::days(1));
        (
            self.occurred_after.timestamp_micros(),
            (now + ahead).timestamp_micros(),
        )
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            commit_window: Duration::ZERO,
            max_batch_events: 100_000,
            max_queued_events: 1_000_000,
            max_commit_events: 500_000,
            compact_every: 20,
            writer: WriterConfig::default(),
            occurred_after: chrono::DateTime::from_timestamp(DEFAULT_OCCURRED_AFTER, 0)
                .expect("a valid instant"),
            occurred_ahead: Duration::from_secs(24 * 3600),
        }
    }
}

/// One append request, as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct AppendRequest<'a> {
    pub stream: &'a str,
    pub content_type: Option<&'a str>,
    pub body: Bytes,
    /// The principal's stable id: idempotency keys are scoped to it.
    pub principal_id: &'a str,
    /// What the `source` column records.
    pub source: &'a str,
    pub idempotency_key: Option<&'a str>,
}

/// The answer to an accepted append.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Appended {
    pub stream: String,
    /// The table version holding the events.
    pub version: u64,
    /// Events written.
    pub accepted: u64,
    /// Events whose `event_id` was already in the stream (not written again).
    pub duplicates: u64,
    /// True when this is the recorded answer to an earlier request with the same key.
    #[serde(skip)]
    pub replayed: bool,
}

/// The ingest service: decoding, queueing and the per-stream commit tasks.
pub struct Ingest {
    store: Arc<Store>,
    config: IngestConfig,
    queue: Arc<Semaphore>,
    committers: std::sync::Mutex<HashMap<String, mpsc::UnboundedSender<Job>>>,
    metrics: IngestMetrics,
    /// The name of a stream, each time a commit added events to it.
    commits: broadcast::Sender<String>,
    /// Per stream: held by whoever compacts it in this process (the commit task's frequent
    /// compaction, the scheduled maintenance), so they do not redo each other's work.
    maintenance: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The code lists events are checked against (`reference.codes`).
    codes: codes::KnownCodes,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest")
            .field("config", &self.config)
            .finish()
    }
}

/// The longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

impl Ingest {
    pub fn new(store: Arc<Store>, config: IngestConfig, metrics: IngestMetrics) -> Arc<Self> {
        let permits = config.max_queued_events.min(Semaphore::MAX_PERMITS);
        Arc::new(Self {
            store,
            queue: Arc::new(Semaphore::new(permits)),
            config,
            committers: std::sync::Mutex::new(HashMap::new()),
            metrics,
            commits: broadcast::channel(1024).0,
            maintenance: std::sync::Mutex::new(HashMap::new()),
            codes: codes::KnownCodes::default(),
        })
    }

    /// The lock that whoever compacts `stream` in this process holds. Correctness does not
    /// depend on it (a compaction that lost its files to another one is dropped at commit,
    /// whichever process ran it); it saves rewriting the same files twice.
    pub fn maintenance_lock(&self, stream: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.maintenance
            .lock()
            .expect("poisoned")
            .entry(stream.to_owned())
            .or_default()
            .clone()
    }

    /// The province's code lists (`reference.codes`) as this process last read them: at most
    /// a second old, or fresh after this process appended to them.
    pub async fn code_lists(&self) -> kho_store::Result<Arc<CodeLists>> {
        self.codes.lists(&self.store).await
    }

    /// Tells of every commit that adds events (the stream's name), e.g. to refresh views.
    pub fn subscribe(&self) -> broadcast::Receiver<String> {
        self.commits.subscribe()
    }

    pub fn config(&self) -> &IngestConfig {
        &self.config
    }

    /// Events currently waiting for a commit.
    pub fn queued_events(&self) -> usize {
        self.config
            .max_queued_events
            .min(Semaphore::MAX_PERMITS)
            .saturating_sub(self.queue.available_permits())
    }

    /// Decodes, validates and commits one request; returns once the commit is durable.
    pub async fn append(&self, req: AppendRequest<'_>) -> Result<Appended> {
        let def = self
            .store
            .stream(req.stream)
            .map_err(|_| IngestError::UnknownStream(req.stream.to_owned()))?;
        let format = Format::from_content_type(req.content_type)
            .map_err(IngestError::UnsupportedMediaType)?;
        let idempotency = req
            .idempotency_key
            .map(|k| idempotency_key(req.principal_id, k, &req.body))
            .transpose()?;

        let max = self.config.max_batch_events;
        let body = req.body.clone();
        let source = req.source.to_owned();
        let def2 = def.clone();
        let window = self.config.occurred_window(self.store.now());
        let batch = tokio::task::spawn_blocking(move || {
            decode::decode(&def2, format, &body, &source, max, window)
        })
        .await
        .map_err(|_| IngestError::ShuttingDown)?
        .map_err(|r| match r {
            Rejection::Invalid { errors, total } => IngestError::Invalid {
                stream: def.name.clone(),
                errors,
                total,
            },
            Rejection::Empty => IngestError::Empty,
            Rejection::TooManyEvents { max } => IngestError::TooManyEvents { max },
        })?;

        // Codes the event names must be in their list, once the list has entries.
        let (errors, total) = self
            .codes
            .check(&self.store, &def, &batch)
            .await
            .map_err(|e| IngestError::Store(Arc::new(e)))?;
        if total > 0 {
            return Err(IngestError::Invalid {
                stream: def.name.clone(),
                errors,
                total,
            });
        }

        let rows = u32::try_from(batch.num_rows()).unwrap_or(u32::MAX);
        let permit = self
            .queue
            .clone()
            .try_acquire_many_owned(rows)
            .map_err(|_| IngestError::QueueFull {
                queued: self.queued_events(),
                retry_after_secs: 1,
            })?;
        let (reply, answer) = oneshot::channel();
        let job = Job {
            submission: Submission { batch, idempotency },
            reply,
            permit,
        };
        self.committer(&def.name)
            .send(job)
            .map_err(|_| IngestError::ShuttingDown)?;
        let outcome = answer
            .await
            .map_err(|_| IngestError::ShuttingDown)?
            .map_err(IngestError::Store)?;
        let stream = def.name.clone();
        if stream == kho_store::pack::CODES_STREAM {
            self.codes.stale(); // what was registered counts from the next request on
        }
        match outcome {
            Outcome::Committed(r) => Ok(Appended {
                stream,
                version: r.version,
                accepted: r.accepted,
                duplicates: r.duplicates,
                replayed: false,
            }),
            Outcome::Replayed(r) => Ok(Appended {
                stream,
                version: r.version,
                accepted: r.accepted,
                duplicates: r.duplicates,
                replayed: true,
            }),
            Outcome::Rejected(errors) => Err(IngestError::Invalid {
                stream,
                total: errors.len(),
                errors,
            }),
            Outcome::KeyReused => Err(IngestError::IdempotencyKeyReused),
        }
    }

    /// The sender of a stream's commit task, started on first use.
    fn committer(&self, stream: &str) -> mpsc::UnboundedSender<Job> {
        let mut map = self.committers.lock().expect("poisoned");
        if let Some(tx) = map.get(stream)
            && !tx.is_closed()
        {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let config = CommitterConfig {
            window: self.config.commit_window,
            max_commit_events: self.config.max_commit_events,
            compact_every: self.config.compact_every,
            writer: self.config.writer.clone(),
        };
        tokio::spawn(committer::run(
            self.store.clone(),
            stream.to_owned(),
            config,
            self.metrics.clone(),
            self.commits.clone(),
            self.maintenance_lock(stream),
            rx,
        ));
        map.insert(stream.to_owned(), tx.clone());
        tx
    }
}

/// Scopes a client key to its principal and hashes it with the body.
fn idempotency_key(principal: &str, key: &str, body: &[u8]) -> Result<IdempotencyKey> {
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(IngestError::BadIdempotencyKey(format!(
            "must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        )));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IngestError::BadIdempotencyKey(
            "must be printable ASCII without spaces".into(),
        ));
    }
    let mut h = Sha256::new();
    h.update(principal.as_bytes());
    h.update([0]);
    h.update(key.as_bytes());
    Ok(IdempotencyKey {
        key_sha256: hex::encode(h.finalize()),
        body_sha256: hex::encode(Sha256::digest(body)),
    })
}
