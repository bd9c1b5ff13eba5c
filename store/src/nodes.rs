//! Which processes serve a store: each `kho serve` writes a heartbeat object under
//! `system/nodes/<node>.json` every few seconds and deletes it when it stops, so a tool
//! that would destroy a store (`kho demo` starting over) can refuse one that is in use.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::store::Store;

const PREFIX: &str = "system/nodes";

/// How often a serving node writes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// A node whose heartbeat is older than this is taken for gone (killed without a goodbye).
pub const NODE_EXPIRY: Duration = Duration::from_secs(30);

/// One serving process, as its heartbeat tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// A fresh UUID per process start.
    pub node: String,
    pub pid: u32,
    pub host: String,
    /// Where it listens, as it printed it.
    pub listen: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
}

impl NodeInfo {
    /// This process, about to serve on `listen`, starting `now`.
    pub fn this_process(listen: &str, now: DateTime<Utc>) -> Self {
        Self {
            node: uuid::Uuid::new_v4().to_string(),
            pid: std::process::id(),
            host: std::env::var("HOSTNAME").unwrap_or_default(),
            listen: listen.to_owned(),
            started_at: now,
            heartbeat_at: now,
        }
    }

    fn key(&self) -> Path {
        Path::from(format!("{PREFIX}/{}.json", self.node))
    }

    /// True if the heartbeat is younger than [`NODE_EXPIRY`].
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        now.signed_duration_since(self.heartbeat_at)
            .to_std()
            .map_or(true, |age| age < NODE_EXPIRY)
    }
}

impl Store {
    /// Writes (or refreshes) the heartbeat of `node`, stamped now.
    pub async fn heartbeat(&self, node: &mut NodeInfo) -> Result<()> {
        node.heartbeat_at = self.now();
        let bytes = serde_json::to_vec(node).expect("plain data");
        self.location()
            .root_store()?
            .put(&node.key(), bytes.into())
            .await?;
        Ok(())
    }

    /// Removes the heartbeat of a node that stops.
    pub async fn leave(&self, node: &NodeInfo) -> Result<()> {
        match self.location().root_store()?.delete(&node.key()).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The nodes whose heartbeat is recent: the processes serving this store now.
    pub async fn live_nodes(&self) -> Result<Vec<NodeInfo>> {
        let store = self.location().root_store()?;
        let prefix = Path::from(PREFIX);
        let metas: Vec<_> = store.list(Some(&prefix)).try_collect().await?;
        let now = self.now();
        let mut nodes = Vec::new();
        for meta in metas {
            let bytes = match store.get(&meta.location).await {
                Ok(r) => r.bytes().await?,
                Err(object_store::Error::NotFound { .. }) => continue, // left meanwhile
                Err(e) => return Err(e.into()),
            };
            if let Ok(node) = serde_json::from_slice::<NodeInfo>(&bytes)
                && node.is_live(now)
            {
                nodes.push(node);
            }
        }
        nodes.sort_by_key(|n| n.started_at);
        Ok(nodes)
    }
}
