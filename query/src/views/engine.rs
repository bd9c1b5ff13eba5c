//! Refreshing views: reading the commits of their sources since the versions they last
//! consumed, folding them in, and writing the view as a Delta table whose commit records
//! those versions (as Delta application transactions, `kho.source.<stream>`, and in
//! `commitInfo.kho`). A restarted process restores each fold by reading the sources as of
//! the recorded versions, then goes on from there: nothing is counted twice or missed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arrow::array::AsArray;
use arrow::array::RecordBatch;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, Utc};
use kho_store::{
    AsOf, OverwriteMeta, Store, commit_metadata, latest_version, rows_added, stream_key,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Fold, OverdueDossier, VIEWS, ViewSpec, retracted, spec};
use crate::error::{QueryError, Result};

/// How far a view has read one source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceMark {
    /// The source table version folded in.
    pub version: u64,
    /// The newest `occurred_at` among the source's events folded in.
    pub newest_occurred_at: Option<DateTime<Utc>>,
}

/// What a view's commit records in `commitInfo.kho`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewMeta {
    pub view: String,
    pub sources: BTreeMap<String, SourceMark>,
    pub refreshed_at: DateTime<Utc>,
    #[serde(default)]
    pub watermark: Option<DateTime<Utc>>,
    #[serde(default)]
    pub rows: u64,
}

/// A view's freshness, as `GET /v1/views` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Freshness {
    pub view: &'static str,
    /// The view table's version; `None` before its first refresh.
    pub version: Option<u64>,
    pub refreshed_at: Option<DateTime<Utc>>,
    /// For views measured against event time (pending_overdue): the newest `occurred_at` seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<DateTime<Utc>>,
    pub rows: u64,
    pub sources: Vec<SourceFreshness>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceFreshness {
    pub stream: &'static str,
    /// The source version the view reflects (0: nothing yet).
    pub version: u64,
    pub latest_version: u64,
    /// Commits of the source not yet in the view.
    pub lag_commits: u64,
    pub newest_occurred_at: Option<DateTime<Utc>>,
}

struct State {
    fold: Option<Box<dyn Fold>>,
    meta: Option<ViewMeta>,
    version: Option<u64>,
}

/// The views of one store and their folds.
pub struct ViewEngine {
    store: Arc<Store>,
    states: HashMap<&'static str, Mutex<State>>,
}

impl std::fmt::Debug for ViewEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewEngine").finish_non_exhaustive()
    }
}

impl ViewEngine {
    pub fn new(store: Arc<Store>) -> Arc<Self> {
        let states = VIEWS
            .iter()
            .map(|v| {
                (
                    v.name,
                    Mutex::new(State {
                        fold: None,
                        meta: None,
                        version: None,
                    }),
                )
            })
            .collect();
        Arc::new(Self { store, states })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn spec(name: &str) -> Result<&'static ViewSpec> {
        spec(name).ok_or_else(|| QueryError::UnknownView(name.to_owned()))
    }

    /// Brings a view up to date with its sources and writes it if anything changed.
    pub async fn refresh(&self, name: &str) -> Result<Freshness> {
        let spec = Self::spec(name)?;
        let mut state = self.states[spec.name].lock().await;
        if let Err(e) = self.refresh_locked(spec, &mut state).await {
            // The fold may be half-applied: start over from the view table next time.
            state.fold = None;
            return Err(e);
        }
        self.freshness_of(spec, &state).await
    }

    /// Refreshes every view; returns the first error after trying them all.
    pub async fn refresh_all(&self) -> Result<()> {
        let mut first = None;
        for v in &VIEWS {
            if let Err(e) = self.refresh(v.name).await {
                tracing::warn!(view = v.name, error = %e, "refresh failed");
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn refresh_locked(&self, spec: &'static ViewSpec, state: &mut State) -> Result<()> {
        if state.fold.is_none() {
            self.restore(spec, state).await?;
        }
        let mut meta = state.meta.clone().unwrap_or_else(|| ViewMeta {
            view: spec.name.to_owned(),
            sources: BTreeMap::new(),
            refreshed_at: self.store.now(),
            watermark: None,
            rows: 0,
        });
        let mut changed = false;
        let mut rebuild = None;
        for source in spec.sources {
            let after = meta.sources.get(*source).map_or(0, |m| m.version);
            let fold = state.fold.as_mut().expect("restored above");
            match rows_added(&self.store, &stream_key(source), after, None).await? {
                Some(changes) if retracted::has_retraction(&changes.batches) => {
                    rebuild = Some("a retraction takes events out");
                    break;
                }
                Some(changes) if changes.version > after => {
                    fold.apply(source, &changes.batches)?;
                    let newest = newest_occurred(&changes.batches);
                    let old = meta.sources.get(*source).and_then(|m| m.newest_occurred_at);
                    meta.sources.insert(
                        (*source).to_owned(),
                        SourceMark {
                            version: changes.version,
                            newest_occurred_at: old.max(newest),
                        },
                    );
                    changed = true;
                }
                Some(_) => {}
                None => {
                    rebuild = Some("source commits are gone from the log");
                    break;
                }
            }
        }
        if let Some(why) = rebuild {
            tracing::info!(
                view = spec.name,
                why,
                "rebuilding the view from its sources"
            );
            let (fold, sources) = self.fold_sources(spec, None).await?;
            state.fold = Some(fold);
            meta.sources = sources;
            changed = true;
        }
        if !changed && state.version.is_some() {
            return Ok(());
        }
        let fold = state.fold.as_ref().expect("restored above");
        let batch = fold.rows()?;
        meta.refreshed_at = self.store.now();
        meta.watermark = fold.watermark().and_then(DateTime::from_timestamp_micros);
        meta.rows = batch.num_rows() as u64;
        if let Some(ahead) = self.written_ahead(spec, &meta).await? {
            // Another process wrote a newer refresh: keep ours in memory, write next time.
            tracing::debug!(
                view = spec.name,
                version = ahead,
                "another process is ahead"
            );
            state.meta = Some(meta);
            return Ok(());
        }
        let version = self.write(spec, batch, &meta).await?;
        tracing::debug!(view = spec.name, version, "view refreshed");
        state.version = Some(version);
        state.meta = Some(meta);
        Ok(())
    }

    /// Rebuilds the fold as the view table records it (or empty, before its first write).
    async fn restore(&self, spec: &'static ViewSpec, state: &mut State) -> Result<()> {
        let key = spec.key();
        let recorded = match latest_version(&self.store, &key).await {
            Ok(v) => commit_metadata(&self.store, &key, v)
                .await?
                .and_then(|m| serde_json::from_value::<ViewMeta>(m).ok())
                .map(|m| (v, m)),
            Err(_) => None, // no view table yet
        };
        let Some((version, meta)) = recorded else {
            state.fold = Some(spec.fold());
            state.meta = None;
            state.version = None;
            return Ok(());
        };
        let at: BTreeMap<String, u64> = meta
            .sources
            .iter()
            .map(|(s, m)| (s.clone(), m.version))
            .collect();
        match self.fold_sources(spec, Some(&at)).await {
            Ok((fold, _)) => {
                state.fold = Some(fold);
                state.meta = Some(meta);
                state.version = Some(version);
            }
            Err(e) => {
                // A recorded version can no longer be read: fold the sources from scratch.
                tracing::warn!(view = spec.name, error = %e, "cannot restore at the recorded versions; rebuilding");
                state.fold = Some(spec.fold());
                state.meta = None;
                state.version = Some(version);
            }
        }
        Ok(())
    }

    /// Folds every source whole, as of `at` (a version per source; latest when `None`).
    async fn fold_sources(
        &self,
        spec: &'static ViewSpec,
        at: Option<&BTreeMap<String, u64>>,
    ) -> Result<(Box<dyn Fold>, BTreeMap<String, SourceMark>)> {
        let mut fold = spec.fold();
        let mut marks = BTreeMap::new();
        for source in spec.sources {
            let as_of = match at {
                None => AsOf::Latest,
                // A source the view has not read yet: version 0, the empty creation commit.
                Some(at) => AsOf::Version(at.get(*source).copied().unwrap_or(0)),
            };
            let table = self.store.table(&stream_key(source), as_of).await?;
            let batches = retracted::without_retracted(table.read().await?)?;
            fold.apply(source, &batches)?;
            marks.insert(
                (*source).to_owned(),
                SourceMark {
                    version: table.version(),
                    newest_occurred_at: newest_occurred(&batches),
                },
            );
        }
        Ok((fold, marks))
    }

    /// Some version if the view table already reflects a newer source version than `meta`.
    async fn written_ahead(&self, spec: &ViewSpec, meta: &ViewMeta) -> Result<Option<u64>> {
        let key = spec.key();
        let Ok(v) = latest_version(&self.store, &key).await else {
            return Ok(None);
        };
        let Some(theirs) = commit_metadata(&self.store, &key, v)
            .await?
            .and_then(|m| serde_json::from_value::<ViewMeta>(m).ok())
        else {
            return Ok(None);
        };
        let ahead = theirs.sources.iter().any(|(s, m)| {
            meta.sources
                .get(s)
                .is_none_or(|ours| m.version > ours.version)
        });
        Ok(ahead.then_some(v))
    }

    /// Writes the view's rows as the new version of its table, recording what it reflects.
    async fn write(&self, spec: &ViewSpec, batch: RecordBatch, meta: &ViewMeta) -> Result<u64> {
        let overwrite = OverwriteMeta {
            name: spec.name.to_owned(),
            description: spec.description.to_owned(),
            transactions: meta
                .sources
                .iter()
                .map(|(s, m)| (format!("kho.source.{s}"), m.version))
                .collect(),
            kho: Some(serde_json::to_value(meta).expect("plain data")),
        };
        Ok(kho_store::overwrite(&self.store, &spec.key(), batch, &overwrite).await?)
    }

    /// The view's rows folded from scratch over the latest version of every source, without
    /// touching the engine's state: what an incremental refresh must equal.
    pub async fn rebuild_rows(&self, name: &str) -> Result<RecordBatch> {
        let spec = Self::spec(name)?;
        let (fold, _) = self.fold_sources(spec, None).await?;
        fold.rows()
    }

    /// The dossiers of `agency` pending past their due date, from the dossiers view brought
    /// up to date first: the rows behind its `pending_overdue` (oldest due first).
    pub async fn overdue_dossiers(&self, agency: &str) -> Result<Vec<OverdueDossier>> {
        let spec = Self::spec("service_dossiers")?;
        let mut state = self.states[spec.name].lock().await;
        if let Err(e) = self.refresh_locked(spec, &mut state).await {
            state.fold = None;
            return Err(e);
        }
        Ok(state
            .fold
            .as_ref()
            .map(|f| f.overdue(agency))
            .unwrap_or_default())
    }

    /// The freshness of a view, with each source's lag.
    pub async fn freshness(&self, name: &str) -> Result<Freshness> {
        let spec = Self::spec(name)?;
        let mut state = self.states[spec.name].lock().await;
        if state.fold.is_none() && state.meta.is_none() {
            // Not restored yet in this process: read what the view table records.
            let key = spec.key();
            if let Ok(v) = latest_version(&self.store, &key).await {
                state.version = Some(v);
                state.meta = commit_metadata(&self.store, &key, v)
                    .await?
                    .and_then(|m| serde_json::from_value(m).ok());
            }
        }
        self.freshness_of(spec, &state).await
    }

    async fn freshness_of(&self, spec: &'static ViewSpec, state: &State) -> Result<Freshness> {
        let mut sources = Vec::new();
        for source in spec.sources {
            let latest = latest_version(&self.store, &stream_key(source)).await?;
            let mark = state.meta.as_ref().and_then(|m| m.sources.get(*source));
            let version = mark.map_or(0, |m| m.version);
            sources.push(SourceFreshness {
                stream: source,
                version,
                latest_version: latest,
                lag_commits: latest.saturating_sub(version),
                newest_occurred_at: mark.and_then(|m| m.newest_occurred_at),
            });
        }
        Ok(Freshness {
            view: spec.name,
            version: state.version,
            refreshed_at: state.meta.as_ref().map(|m| m.refreshed_at),
            watermark: state.meta.as_ref().and_then(|m| m.watermark),
            rows: state.meta.as_ref().map_or(0, |m| m.rows),
            sources,
        })
    }

    /// Refreshes, after each burst of commits, the views whose sources they touched; and
    /// every `poll` the views of streams that other processes may have written.
    pub async fn run(
        self: Arc<Self>,
        mut commits: tokio::sync::broadcast::Receiver<String>,
        debounce: Duration,
        poll: Duration,
    ) {
        let mut tick = tokio::time::interval(poll.max(Duration::from_millis(100)));
        tick.tick().await;
        loop {
            let mut dirty: HashSet<&'static str> = HashSet::new();
            tokio::select! {
                msg = commits.recv() => match msg {
                    Ok(stream) => mark(&mut dirty, &stream),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => dirty.extend(VIEWS.iter().map(|v| v.name)),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => dirty.extend(VIEWS.iter().map(|v| v.name)),
            }
            // Let the burst finish: gather what else commits meanwhile.
            let deadline = tokio::time::Instant::now() + debounce;
            while let Ok(Ok(stream)) = tokio::time::timeout_at(deadline, commits.recv()).await {
                mark(&mut dirty, &stream);
            }
            for name in dirty {
                if let Err(e) = self.refresh(name).await {
                    tracing::warn!(view = name, error = %e, "background refresh failed");
                }
            }
        }
    }
}

fn mark(dirty: &mut HashSet<&'static str>, stream: &str) {
    for v in &VIEWS {
        if v.sources.contains(&stream) {
            dirty.insert(v.name);
        }
    }
}

/// The newest `occurred_at` among rows.
fn newest_occurred(batches: &[RecordBatch]) -> Option<DateTime<Utc>> {
    batches
        .iter()
        .filter_map(|b| {
            b.column_by_name("occurred_at")
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                .and_then(arrow::compute::max)
        })
        .max()
        .and_then(DateTime::from_timestamp_micros)
}
