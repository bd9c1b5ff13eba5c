//! The store: a location, the registered streams, and table access with time travel.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use deltalake::kernel::StructField;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::protocol::SaveMode;
use deltalake::{DeltaTable, DeltaTableError, TableProperty};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::location::Location;
use crate::schema::{ColumnType, StreamDef, payload_field};
use crate::table::{NewTable, Rows, Table, TableStats, column_type, schema_version_of};

/// Which version of a table to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Latest,
    Version(u64),
    /// The newest version committed at or before this instant.
    Timestamp(DateTime<Utc>),
}

/// What registering a stream definition did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Registration {
    Created {
        schema_version: u32,
    },
    Unchanged {
        schema_version: u32,
    },
    Evolved {
        from: u32,
        to: u32,
        added: Vec<String>,
    },
}

/// The table key (path under the store root) of a stream.
pub fn stream_key(stream: &str) -> String {
    format!("streams/{stream}")
}

/// An open store: where it lives and which streams it has.
#[derive(Debug)]
pub struct Store {
    location: Location,
    streams: RwLock<BTreeMap<String, Arc<StreamDef>>>,
    clock: Arc<dyn Clock>,
}

impl Store {
    /// Opens the store at `spec` (see [`Location::parse`]). Registers no stream.
    pub fn open(spec: &str) -> Result<Arc<Self>> {
        // deltalake registers its S3 handlers from a constructor; saying so here keeps
        // `s3://` stores working should that constructor ever be dropped or not linked.
        static S3_HANDLERS: std::sync::Once = std::sync::Once::new();
        S3_HANDLERS.call_once(|| deltalake::aws::register_handlers(None));
        Ok(Arc::new(Self {
            location: Location::parse(spec)?,
            streams: RwLock::new(BTreeMap::new()),
            clock: Arc::new(SystemClock),
        }))
    }

    /// The time by this store's clock: the system's, or the one a test gave
    /// [`Store::open_provided`].
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The clock itself, for a handle that outlives a borrow of the store.
    pub fn clock(&self) -> Arc<dyn Clock> {
        self.clock.clone()
    }

    /// Opens a store on an object store and a clock the caller provides
    /// ([`Location::provided`]) and registers the province stream pack: for tests that
    /// inject faults or move time.
    pub async fn open_provided(
        object_store: Arc<dyn object_store::ObjectStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>> {
        let store = Arc::new(Self {
            location: Location::provided(object_store),
            streams: RwLock::new(BTreeMap::new()),
            clock,
        });
        for def in crate::pack::province_pack() {
            store.register(def).await?;
        }
        Ok(store)
    }

    /// Opens the store and registers the province stream pack.
    pub async fn open_with_pack(spec: &str) -> Result<Arc<Self>> {
        let store = Self::open(spec)?;
        for def in crate::pack::province_pack() {
            store.register(def).await?;
        }
        Ok(store)
    }

    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The registered streams, by name.
    pub fn streams(&self) -> Vec<Arc<StreamDef>> {
        self.streams
            .read()
            .expect("poisoned")
            .values()
            .cloned()
            .collect()
    }

    pub fn stream(&self, name: &str) -> Result<Arc<StreamDef>> {
        self.streams
            .read()
            .expect("poisoned")
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownStream(name.to_owned()))
    }

    /// A small object of kho's own under the store root (e.g. `system/keys/…`), if present.
    pub async fn read_object(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        use object_store::ObjectStoreExt;
        let store = self.location.root_store()?;
        match store.get(&object_store::path::Path::from(key)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a small object unless one is already there; returns the one that is there
    /// afterwards (ours, or the one another process wrote first).
    pub async fn create_object(&self, key: &str, bytes: bytes::Bytes) -> Result<bytes::Bytes> {
        use object_store::{ObjectStoreExt, PutMode, PutOptions};
        let store = self.location.root_store()?;
        let path = object_store::path::Path::from(key);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match store.put_opts(&path, bytes.clone().into(), opts).await {
            Ok(_) => Ok(bytes),
            Err(object_store::Error::AlreadyExists { .. }) => {
                Ok(store.get(&path).await?.bytes().await?)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A table handle at `key`, not loaded.
    pub(crate) fn table_handle(&self, key: &str) -> Result<DeltaTable> {
        Ok(self.location.builder(key)?.build()?)
    }

    /// The table at `key`, loaded as of `as_of`.
    pub async fn table(&self, key: &str, as_of: AsOf) -> Result<Table> {
        Ok(Table::new(key, self.delta_table(key, as_of).await?))
    }

    /// The latest version of the table at `key`, or `None` if there is no table there yet.
    pub async fn try_table(&self, key: &str) -> Result<Option<Table>> {
        let mut table = self.table_handle(key)?;
        match table.load().await {
            Ok(()) => Ok(Some(Table::new(key, table))),
            Err(DeltaTableError::NotATable(_)) => Ok(None),
            Err(e) => Err(Error::delta(key)(e)),
        }
    }

    /// The Delta table at `key`, loaded as of `as_of`.
    pub(crate) async fn delta_table(&self, key: &str, as_of: AsOf) -> Result<DeltaTable> {
        let mut table = self.table_handle(key)?;
        if let AsOf::Version(v) = as_of {
            let latest = table
                .log_store()
                .get_latest_version(0)
                .await
                .map_err(Error::delta(key))?;
            if v > latest {
                return Err(Error::NoSuchVersion {
                    stream: key.to_owned(),
                    version: v,
                });
            }
        }
        let res = match as_of {
            AsOf::Latest => table.load().await,
            AsOf::Version(v) => table.load_version(v).await,
            AsOf::Timestamp(ts) => table.load_with_datetime(ts).await,
        };
        match res {
            Ok(()) => {
                // deltalake answers a time before the first commit with version 0;
                // the stream did not exist then.
                if let AsOf::Timestamp(ts) = as_of {
                    let snapshot = table.snapshot().map_err(Error::delta(key))?;
                    let committed = snapshot.version_timestamp(snapshot.version());
                    if committed.is_some_and(|ms| ms > ts.timestamp_millis()) {
                        return Err(Error::NoVersionAtTime {
                            stream: key.to_owned(),
                            timestamp: ts.to_rfc3339(),
                        });
                    }
                }
                Ok(table)
            }
            Err(DeltaTableError::InvalidVersion(v)) => Err(Error::NoSuchVersion {
                stream: key.to_owned(),
                version: v,
            }),
            Err(e @ DeltaTableError::NotATable(_)) => Err(Error::delta(key)(e)),
            Err(e) => {
                // A timestamp before the first commit, or a version that was never written,
                // is reported by deltalake in several shapes; name it for the caller.
                match as_of {
                    AsOf::Timestamp(ts) if is_missing_version(&e) => Err(Error::NoVersionAtTime {
                        stream: key.to_owned(),
                        timestamp: ts.to_rfc3339(),
                    }),
                    AsOf::Version(v) if is_missing_version(&e) => Err(Error::NoSuchVersion {
                        stream: key.to_owned(),
                        version: v,
                    }),
                    _ => Err(Error::delta(key)(e)),
                }
            }
        }
    }

    /// Creates the table at `key` unless it exists; losing a creation race to another process
    /// is success (the table is then there).
    pub async fn create_table(&self, key: &str, spec: &NewTable) -> Result<()> {
        let mut table = self.table_handle(key)?;
        match table.load().await {
            Ok(()) => return Ok(()),
            Err(DeltaTableError::NotATable(_)) => {}
            Err(e) => return Err(Error::delta(key)(e)),
        }
        let columns = spec
            .schema
            .fields()
            .iter()
            .map(|f| {
                let ty = column_type(key, f.name(), f.data_type())?;
                Ok(StructField::new(f.name(), ty.delta(), f.is_nullable()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut create = table
            .create()
            .with_save_mode(SaveMode::Ignore)
            .with_table_name(&spec.name)
            .with_columns(columns);
        if spec.append_only {
            create = create.with_configuration_property(TableProperty::AppendOnly, Some("true"));
        }
        if let Some(n) = spec.checkpoint_interval {
            create = create.with_configuration_property(
                TableProperty::CheckpointInterval,
                Some(n.to_string()),
            );
        }
        if let Err(e) = create.await {
            // Lost a creation race: the table must now exist.
            let mut again = self.table_handle(key)?;
            again.load().await.map_err(|_| Error::delta(key)(e))?;
        }
        Ok(())
    }

    /// Writes a new table at `key` whole, in one put-if-absent of version 0. A table already
    /// there (another process's, racing) is an error, never an append: deltalake's retry would
    /// land a racing second write as an append of its rows.
    pub async fn write_table_once(
        &self,
        key: &str,
        name: &str,
        description: &str,
        rows: Rows,
    ) -> Result<Table> {
        let handle = self.table_handle(key)?;
        let write = match rows {
            Rows::Batches(b) => handle.write(b),
            Rows::Plan(plan) => handle.write(Vec::new()).with_input_plan(plan),
        };
        let delta = write
            .with_save_mode(SaveMode::ErrorIfExists)
            .with_table_name(name)
            .with_description(description)
            .with_commit_properties(CommitProperties::default().with_max_retries(0))
            .await
            .map_err(Error::delta(key))?;
        Ok(Table::new(key, delta))
    }

    /// Deletes a table that [`Self::write_table_once`] wrote but that kho decided not to
    /// keep (a release whose dataset was revoked while it was materialized): its first commit
    /// first, so that a reader finds no table rather than one with files missing, then its
    /// files. Best effort: what a failure leaves is never referenced.
    pub async fn discard_table(&self, key: &str) {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let root = match self.location().root_store() {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(table = key, error = %e, "could not discard a table");
                return;
            }
        };
        let prefix = object_store::path::Path::from(key);
        let first = object_store::path::Path::from(format!("{key}/_delta_log/{:020}.json", 0));
        if let Err(e) = root.delete(&first).await
            && !matches!(e, object_store::Error::NotFound { .. })
        {
            tracing::warn!(table = key, error = %e, "could not discard a table's first commit");
            return;
        }
        let files: Vec<_> = match root.list(Some(&prefix)).try_collect().await {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(table = key, error = %e, "could not list a discarded table");
                return;
            }
        };
        for f in files {
            if let Err(e) = root.delete(&f.location).await {
                tracing::warn!(table = key, path = %f.location, error = %e, "could not delete a discarded table's file");
            }
        }
    }

    /// The folders `depth` levels below `prefix` that hold objects, each with the time its
    /// newest object was written (`releases`, 2: `releases/<dataset>/<table>`). What a sweep
    /// of tables nothing refers to looks at: a folder written to recently may be a table
    /// another process is making now.
    pub async fn folders_under(
        &self,
        prefix: &str,
        depth: usize,
    ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>> {
        use futures::TryStreamExt;
        let root = self.location().root_store()?;
        let base = object_store::path::Path::from(prefix);
        let files: Vec<_> = root.list(Some(&base)).try_collect().await?;
        let mut folders = std::collections::BTreeMap::new();
        for f in files {
            let parts: Vec<_> = f.location.parts().collect();
            let skip = base.parts().count();
            if parts.len() <= skip + depth {
                continue; // an object at the folder level itself, not inside one
            }
            let key = parts[..skip + depth]
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join("/");
            let newest = folders.entry(key).or_insert(f.last_modified);
            *newest = (*newest).max(f.last_modified);
        }
        Ok(folders.into_iter().collect())
    }

    /// The table of a registered stream.
    pub async fn stream_table(&self, stream: &str, as_of: AsOf) -> Result<Table> {
        self.stream(stream)?;
        self.table(&stream_key(stream), as_of).await
    }

    /// Every row of a stream as of a version or time, in no particular order.
    pub async fn read_stream(&self, stream: &str, as_of: AsOf) -> Result<Vec<RecordBatch>> {
        self.stream_table(stream, as_of).await?.read().await
    }

    /// Version, row count and last commit time of a stream.
    pub async fn stream_stats(&self, stream: &str) -> Result<TableStats> {
        self.stream_table(stream, AsOf::Latest).await?.stats()
    }

    /// Registers a stream definition: creates its table on first start, adds the new optional
    /// columns of a newer schema version, and refuses a removed or retyped column.
    /// Idempotent, and safe when several processes start at once.
    pub async fn register(&self, def: StreamDef) -> Result<Registration> {
        let conflict = |reason: String| Error::SchemaConflict {
            stream: def.name.clone(),
            reason,
        };
        def.check()
            .map_err(|e| conflict(format!("invalid definition: {e}")))?;
        let key = stream_key(&def.name);
        let mut outcome = None;
        for _attempt in 0..3 {
            let mut table = self.table_handle(&key)?;
            match table.load().await {
                Ok(()) => {}
                Err(DeltaTableError::NotATable(_)) => {
                    match create_table(&table, &def).await {
                        Ok(()) => {
                            outcome = Some(Registration::Created {
                                schema_version: def.schema_version,
                            });
                        }
                        // Another process created it first: fall through to the comparison.
                        Err(e) => tracing::debug!(stream = %def.name, error = %e, "create raced"),
                    }
                    continue;
                }
                Err(e) => return Err(Error::delta(&key)(e)),
            }
            let plan = plan_evolution(&table, &def).map_err(conflict)?;
            if plan.added.is_empty() {
                let out = outcome.unwrap_or(Registration::Unchanged {
                    schema_version: plan.from,
                });
                self.streams
                    .write()
                    .expect("poisoned")
                    .insert(def.name.clone(), Arc::new(def));
                return Ok(out);
            }
            let fields: Vec<StructField> = plan
                .added
                .iter()
                .map(|name| payload_field(def.column(name).expect("planned from def")))
                .collect();
            match table.add_columns().with_fields(fields).await {
                Ok(_) => {
                    tracing::info!(stream = %def.name, from = plan.from, to = def.schema_version, added = ?plan.added, "schema evolved");
                    outcome = Some(Registration::Evolved {
                        from: plan.from,
                        to: def.schema_version,
                        added: plan.added,
                    });
                }
                Err(e) => tracing::debug!(stream = %def.name, error = %e, "evolution raced"),
            }
        }
        Err(conflict(
            "could not register after 3 attempts against concurrent writers".into(),
        ))
    }
}

struct EvolutionPlan {
    from: u32,
    added: Vec<String>,
}

/// Compares a stored table with a definition: what must be added, or why it can't be.
fn plan_evolution(
    table: &DeltaTable,
    def: &StreamDef,
) -> std::result::Result<EvolutionPlan, String> {
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    let schema = snapshot.schema();
    let wanted = def.delta_fields();
    let from = schema_version_of(table);
    for field in schema.fields() {
        let Some(w) = wanted.iter().find(|w| w.name() == field.name()) else {
            return Err(format!(
                "column {} exists in the table but not in schema version {}: removing a column is refused",
                field.name(),
                def.schema_version
            ));
        };
        if w.data_type() != field.data_type() {
            let name = |dt| {
                ColumnType::from_delta(dt)
                    .map_or_else(|| format!("{dt:?}"), |t| t.name().to_owned())
            };
            return Err(format!(
                "column {} is {} in the table but {} in schema version {}: retyping a column is refused",
                field.name(),
                name(field.data_type()),
                name(w.data_type()),
                def.schema_version
            ));
        }
    }
    let mut added = Vec::new();
    for w in &wanted {
        if schema.field(w.name()).is_none() {
            let col = def
                .column(w.name())
                .ok_or_else(|| format!("envelope column {} is missing from the table", w.name()))?;
            if col.since_version <= from {
                return Err(format!(
                    "column {} belongs to schema version {} but the table at version {from} lacks it",
                    col.name, col.since_version
                ));
            }
            added.push(col.name.clone());
        }
    }
    if added.is_empty() && def.schema_version < from {
        return Err(format!(
            "the table has schema version {from}, newer than this definition's {}",
            def.schema_version
        ));
    }
    Ok(EvolutionPlan { from, added })
}

async fn create_table(table: &DeltaTable, def: &StreamDef) -> Result<()> {
    table
        .create()
        .with_save_mode(SaveMode::ErrorIfExists)
        .with_table_name(&def.name)
        .with_comment(&def.description)
        .with_columns(def.delta_fields())
        .with_configuration_property(TableProperty::AppendOnly, Some("true"))
        // Each commit's snapshot update replays the log since the last checkpoint.
        .with_configuration_property(TableProperty::CheckpointInterval, Some("10"))
        .with_configuration([
            ("kho.stream", Some(def.name.as_str())),
            ("kho.owner", Some(def.owner.as_str())),
        ])
        .with_raise_if_key_not_exists(false)
        .await
        .map_err(Error::delta(&def.name))?;
    Ok(())
}

fn is_missing_version(e: &DeltaTableError) -> bool {
    let s = e.to_string().to_lowercase();
    s.contains("version") && (s.contains("not found") || s.contains("invalid") || s.contains("no "))
        || s.contains("before")
}
