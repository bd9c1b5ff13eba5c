//! The DataFusion tables every query sees: each stream under its dotted name
//! (`finance.budget`, `service.dossiers`, …) and each view by name (`service_dossiers`).

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};
use kho_store::{Store, Table, stream_key};
use tokio::sync::Mutex;

use crate::error::Result;
use crate::views::VIEWS;

/// Open tables, kept current.
pub struct Tables {
    store: Arc<Store>,
    open: Mutex<HashMap<String, Table>>,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").finish_non_exhaustive()
    }
}

impl Tables {
    pub fn new(store: Arc<Store>) -> Self {
        Self {
            store,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// The latest version of the table at `key`; `None` if it does not exist yet.
    pub async fn latest(&self, key: &str) -> Result<Option<Table>> {
        let mut open = self.open.lock().await;
        if let Some(t) = open.get_mut(key) {
            t.catch_up().await?;
            return Ok(Some(t.clone()));
        }
        let t = self.store.try_table(key).await?;
        if let Some(t) = &t {
            open.insert(key.to_owned(), t.clone());
        }
        Ok(t)
    }

    /// A session over every stream and view, with the given runtime (memory pool).
    pub async fn session(&self, runtime: Arc<RuntimeEnv>) -> Result<SessionContext> {
        let config = SessionConfig::new()
            // Small batches: a CPU-heavy operator yields (and can be stopped) often, and a
            // constant repeated on every row of a batch stays small (see `guard`).
            .with_batch_size(crate::guard::BATCH_ROWS)
            .with_information_schema(true)
            .with_default_catalog_and_schema("datafusion", "public");
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let catalog = ctx.catalog("datafusion").expect("the default catalog");
        for def in self.store.streams() {
            let Some((schema, table)) = def.name.split_once('.') else {
                continue;
            };
            if catalog.schema(schema).is_none() {
                catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()))?;
            }
            if let Some(t) = self.latest(&stream_key(&def.name)).await? {
                let provider = t.provider(&ctx).await?;
                catalog
                    .schema(schema)
                    .expect("registered above")
                    .register_table(table.to_owned(), provider)?;
            }
        }
        for v in &VIEWS {
            if let Some(t) = self.latest(&v.key()).await? {
                ctx.register_table(v.name, t.provider(&ctx).await?)?;
            }
        }
        Ok(ctx)
    }
}
