//! Group commit: one task per stream owns the stream's writer. Requests that arrive within
//! the commit window share one Delta commit; each waits for the commit to be durable before
//! its answer is sent. Every `compact_every` commits, the task compacts the stream.

use std::sync::Arc;
use std::time::Duration;

use kho_store::{MaintenanceOptions, Outcome, Store, StreamWriter, Submission, WriterConfig};
use tokio::sync::{Mutex, OwnedSemaphorePermit, broadcast, mpsc, oneshot};
use tokio::time::Instant;

use crate::metrics::IngestMetrics;

/// The file size frequent compaction aims for.
const FREQUENT_COMPACTION_TARGET: u64 = 4 * 1024 * 1024;

/// One request waiting for its commit.
pub(crate) struct Job {
    pub submission: Submission,
    pub reply: oneshot::Sender<Result<Outcome, Arc<kho_store::Error>>>,
    /// Holds the request's share of the queue until it is answered.
    pub permit: OwnedSemaphorePermit,
}

#[derive(Debug, Clone)]
pub(crate) struct CommitterConfig {
    pub window: Duration,
    pub max_commit_events: usize,
    pub compact_every: u64,
    pub writer: WriterConfig,
}

/// Runs the commit loop of one stream until every sender is gone.
pub(crate) async fn run(
    store: Arc<Store>,
    stream: String,
    config: CommitterConfig,
    metrics: IngestMetrics,
    notify: broadcast::Sender<String>,
    compacting: Arc<Mutex<()>>,
    mut rx: mpsc::UnboundedReceiver<Job>,
) {
    let mut writer: Option<StreamWriter> = None;
    let mut commits: u64 = 0;
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        let mut events = jobs[0].submission.batch.num_rows();
        let deadline = Instant::now() + config.window;
        while events < config.max_commit_events {
            let next = if config.window.is_zero() {
                rx.try_recv().ok()
            } else {
                tokio::time::timeout_at(deadline, rx.recv())
                    .await
                    .ok()
                    .flatten()
            };
            let Some(job) = next else { break };
            events += job.submission.batch.num_rows();
            jobs.push(job);
        }

        if writer.is_none() {
            match StreamWriter::open(&store, &stream, config.writer.clone()).await {
                Ok(w) => writer = Some(w),
                Err(e) => {
                    tracing::error!(%stream, error = %e, "cannot open the stream writer");
                    answer_all(jobs, &Arc::new(e));
                    continue;
                }
            }
        }
        let w = writer.as_mut().expect("opened above");
        let subs: Vec<Submission> = jobs.iter().map(|j| j.submission.clone()).collect();
        let started = Instant::now();
        match w.commit(&subs).await {
            Ok(outcomes) => {
                let written: u64 = outcomes
                    .iter()
                    .map(|o| match o {
                        Outcome::Committed(r) => r.accepted,
                        _ => 0,
                    })
                    .sum();
                if written > 0 {
                    commits += 1;
                    metrics.committed(&stream, written, started.elapsed());
                    tracing::debug!(%stream, requests = jobs.len(), events = written, version = w.version(), "committed");
                }
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                    drop(job.permit);
                }
                if written > 0 {
                    // Nobody listening is fine.
                    let _ = notify.send(stream.clone());
                }
                if written > 0
                    && config.compact_every > 0
                    && commits.is_multiple_of(config.compact_every)
                {
                    spawn_compaction(store.clone(), stream.clone(), compacting.clone());
                }
            }
            Err(e) => {
                tracing::error!(%stream, error = %e, "commit failed; the writer will be reopened");
                writer = None;
                answer_all(jobs, &Arc::new(e));
            }
        }
    }
}

fn answer_all(jobs: Vec<Job>, err: &Arc<kho_store::Error>) {
    for job in jobs {
        let _ = job.reply.send(Err(err.clone()));
    }
}

/// Compacts the stream in the background, one compaction at a time per stream.
fn spawn_compaction(store: Arc<Store>, stream: String, lock: Arc<Mutex<()>>) {
    tokio::spawn(async move {
        let Ok(_guard) = lock.try_lock() else { return };
        let opts = MaintenanceOptions {
            // Commits write checkpoints every 10 versions. Small files merge into files of
            // a few MiB, which this never rewrites again: cheap, and it keeps the number of
            // live files (what each commit's snapshot update costs) low. The scheduled and
            // `kho maintain` compactions merge those into large files.
            checkpoint: false,
            target_file_size: FREQUENT_COMPACTION_TARGET,
            ..MaintenanceOptions::default()
        };
        match kho_store::maintain_table(&store, &kho_store::stream_key(&stream), &opts).await {
            Ok(r) if r.compaction_dropped => {
                tracing::info!(%stream, "compaction dropped: another rewrite replaced its files first")
            }
            Ok(r) if r.compaction_version.is_some() => {
                tracing::info!(%stream, files_before = r.files_before, files_after = r.files_after, version = r.version_after, "compacted")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%stream, error = %e, "compaction failed; will try again later")
            }
        }
    });
}
