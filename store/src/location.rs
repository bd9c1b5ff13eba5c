//! Where a store lives: a local directory, an S3 bucket prefix, or process memory.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use deltalake::DeltaTableBuilder;
use object_store::ObjectStore;
use object_store::memory::InMemory;
use url::Url;

use crate::error::{Error, Result};

/// The root of a store and how to reach it.
#[derive(Clone)]
pub struct Location {
    root: Url,
    /// Set for `memory://`: one in-memory object store shared by every table of the store.
    memory: Option<Arc<dyn ObjectStore>>,
}

impl std::fmt::Debug for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Location")
            .field("root", &self.root.as_str())
            .finish()
    }
}

impl Location {
    /// Parses `file:///abs/dir`, a plain path (created if missing), `s3://bucket/prefix`
    /// or `memory://`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidLocation {
            location: spec.to_owned(),
            reason: why.to_owned(),
        };
        if spec.trim().is_empty() {
            return Err(bad("empty store location"));
        }
        if let Some(rest) = spec.strip_prefix("memory://") {
            let rest = rest.trim_matches('/');
            let root = if rest.is_empty() {
                "memory:///".to_owned()
            } else {
                format!("memory:///{rest}/")
            };
            let root = Url::parse(&root).map_err(|e| bad(&e.to_string()))?;
            return Ok(Self {
                root,
                memory: Some(Arc::new(InMemory::new())),
            });
        }
        if spec.starts_with("s3://") || spec.starts_with("s3a://") {
            let url = Url::parse(spec).map_err(|e| bad(&e.to_string()))?;
            if url.host_str().unwrap_or_default().is_empty() {
                return Err(bad("an s3 location needs a bucket: s3://bucket/prefix"));
            }
            return Ok(Self {
                root: with_trailing_slash(url),
                memory: None,
            });
        }
        let path = match spec.strip_prefix("file://") {
            Some(p) => Path::new(p).to_path_buf(),
            None if spec.contains("://") => {
                return Err(bad(
                    "unsupported scheme: use a path, file://, s3:// or memory://",
                ));
            }
            None => Path::new(spec).to_path_buf(),
        };
        std::fs::create_dir_all(&path).map_err(|e| Error::Io {
            what: format!("creating store directory {}", path.display()),
            source: e,
        })?;
        let abs = std::fs::canonicalize(&path).map_err(|e| Error::Io {
            what: format!("resolving store directory {}", path.display()),
            source: e,
        })?;
        let url = Url::from_directory_path(&abs).map_err(|()| bad("not an absolute path"))?;
        Ok(Self {
            root: url,
            memory: None,
        })
    }

    /// A store held in an object store the caller provides, addressed as `memory:///`: what
    /// tests use to put a store on an object store that fails on demand.
    pub fn provided(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            root: Url::parse("memory:///").expect("static url"),
            memory: Some(store),
        }
    }

    /// The root URL, ending with `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    pub fn is_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// The URL of a table under the root, e.g. `streams/finance.budget`.
    pub fn table_url(&self, key: &str) -> Url {
        self.root
            .join(&format!("{}/", key.trim_matches('/')))
            .expect("table keys are relative paths")
    }

    /// A builder for the table at `key`, wired to this location's object store.
    pub(crate) fn builder(&self, key: &str) -> Result<DeltaTableBuilder> {
        let url = self.table_url(key);
        let mut builder = DeltaTableBuilder::from_url(url.clone())?;
        if let Some(store) = &self.memory {
            let root = Url::parse("memory:///").expect("static url");
            builder = builder.with_storage_backend(store.clone(), root);
        } else if url.scheme() == "file" {
            // The Delta kernel refuses a local table path that does not exist yet.
            if let Ok(path) = url.to_file_path() {
                std::fs::create_dir_all(&path).map_err(|e| Error::Io {
                    what: format!("creating table directory {}", path.display()),
                    source: e,
                })?;
            }
        } else if url.scheme() == "s3" || url.scheme() == "s3a" {
            builder = builder.with_storage_options(s3_options_from_env());
        }
        Ok(builder)
    }
}

impl Location {
    /// An object store rooted at the store root, for kho's own small objects (key material).
    pub(crate) fn root_store(&self) -> Result<Arc<dyn ObjectStore>> {
        use object_store::prefix::PrefixStore;
        if let Some(m) = &self.memory {
            let prefix = self.root.path().trim_matches('/').to_owned();
            return Ok(Arc::new(PrefixStore::new(m.clone(), prefix)));
        }
        match self.root.scheme() {
            "file" => {
                let path = self
                    .root
                    .to_file_path()
                    .map_err(|()| Error::InvalidLocation {
                        location: self.root.to_string(),
                        reason: "not a local path".into(),
                    })?;
                Ok(Arc::new(
                    object_store::local::LocalFileSystem::new_with_prefix(path)?,
                ))
            }
            _ => {
                let mut builder = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(self.root.host_str().unwrap_or_default());
                if let Ok(ep) =
                    std::env::var("AWS_ENDPOINT").or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
                {
                    builder = builder.with_endpoint(ep);
                }
                let retry = S3Retry::from_env();
                builder = builder
                    .with_retry(object_store::RetryConfig {
                        max_retries: retry.max_retries,
                        retry_timeout: retry.retry_timeout,
                        ..Default::default()
                    })
                    .with_config(
                        object_store::aws::AmazonS3ConfigKey::Client(
                            object_store::ClientConfigKey::Timeout,
                        ),
                        format!("{}s", retry.request_timeout.as_secs()),
                    );
                let s3 = builder.build()?;
                let prefix = self.root.path().trim_matches('/').to_owned();
                Ok(Arc::new(PrefixStore::new(s3, prefix)))
            }
        }
    }
}

fn with_trailing_slash(mut url: Url) -> Url {
    if !url.path().ends_with('/') {
        let p = format!("{}/", url.path());
        url.set_path(&p);
    }
    url
}

/// The standard `AWS_*` variables, passed to the S3 object store.
///
/// `AWS_ENDPOINT` (or `AWS_ENDPOINT_URL`), `AWS_ALLOW_HTTP`, `AWS_REGION`, credentials.
/// Conditional put (`If-None-Match`) on the commit log is object_store's default for S3,
/// so several kho processes can append to one bucket without a lock service.
fn s3_options_from_env() -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in std::env::vars() {
        if k.starts_with("AWS_") {
            out.insert(k, v);
        }
    }
    if let Some(ep) = out.get("AWS_ENDPOINT").cloned() {
        out.entry("AWS_ENDPOINT_URL".into()).or_insert(ep);
    }
    let retry = S3Retry::from_env();
    out.insert("max_retries".into(), retry.max_retries.to_string());
    out.insert(
        "retry_timeout".into(),
        format!("{}s", retry.retry_timeout.as_secs()),
    );
    out.insert(
        "timeout".into(),
        format!("{}s", retry.request_timeout.as_secs()),
    );
    out
}

/// How long an S3 request is retried before kho gives up on it (and the HTTP request that
/// needed it gets 503 with Retry-After): object_store's own defaults (10 retries over up to
/// 3 minutes) would hold a client that long during an outage.
struct S3Retry {
    max_retries: usize,
    retry_timeout: std::time::Duration,
    request_timeout: std::time::Duration,
}

impl S3Retry {
    /// `KHO_S3_MAX_RETRIES` (default 5), `KHO_S3_RETRY_TIMEOUT_SECS` (20) and
    /// `KHO_S3_REQUEST_TIMEOUT_SECS` (30).
    fn from_env() -> Self {
        let var = |k: &str, default: u64| {
            std::env::var(k)
                .ok()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(default)
        };
        Self {
            max_retries: usize::try_from(var("KHO_S3_MAX_RETRIES", 5)).unwrap_or(5),
            retry_timeout: std::time::Duration::from_secs(var("KHO_S3_RETRY_TIMEOUT_SECS", 20)),
            request_timeout: std::time::Duration::from_secs(
                var("KHO_S3_REQUEST_TIMEOUT_SECS", 30).max(1),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        let m = Location::parse("memory://").unwrap();
        assert!(m.is_memory());
        assert_eq!(
            m.table_url("streams/finance.budget").as_str(),
            "memory:///streams/finance.budget/"
        );
        let s = Location::parse("s3://bucket/pre/fix").unwrap();
        assert_eq!(
            s.table_url("streams/a.b").as_str(),
            "s3://bucket/pre/fix/streams/a.b/"
        );
        let dir = tempfile::tempdir().unwrap();
        let f = Location::parse(dir.path().join("x").to_str().unwrap()).unwrap();
        assert!(f.root().as_str().starts_with("file:///"));
        assert!(f.root().as_str().ends_with("/x/"));
    }

    #[test]
    fn refuses_unknown_schemes_and_bucketless_s3() {
        assert!(
            Location::parse("gs://b")
                .unwrap_err()
                .to_string()
                .contains("unsupported scheme")
        );
        assert!(Location::parse("s3:///p").is_err());
        assert!(Location::parse("").is_err());
    }
}
