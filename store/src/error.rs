use serde::Serialize;

/// A problem with one row of a batch: which row (1-based), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowError {
    pub row: usize,
    /// The field at fault; `None` when the row as a whole is at fault (malformed JSON).
    pub field: Option<String>,
    pub message: String,
}

impl RowError {
    pub fn new(row: usize, field: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            row,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Whose fault an error is, and so what a caller can do about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The caller named something that is not there (a stream, a version, a time).
    NotFound,
    /// The caller asked for something malformed (a store location).
    Invalid,
    /// The request contradicts what is stored (a stream definition that removes a column).
    Conflict,
    /// The store failed to answer, or writers kept colliding: retry; nothing was acknowledged.
    Unavailable,
    /// kho's own fault (a corrupt log, a bug): not the caller's to fix.
    Internal,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid store location {location}: {reason}")]
    InvalidLocation { location: String, reason: String },

    #[error("unknown stream {0}")]
    UnknownStream(String),

    #[error("stream {stream}: {reason}")]
    SchemaConflict { stream: String, reason: String },

    #[error("stream {stream} has no version {version}")]
    NoSuchVersion { stream: String, version: u64 },

    #[error("stream {stream} has no version at or before {timestamp}")]
    NoVersionAtTime { stream: String, timestamp: String },

    #[error(
        "stream {stream}: could not commit after {attempts} attempts against concurrent writers"
    )]
    CommitContention { stream: String, attempts: u32 },

    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },

    #[error("delta table {table}: {source}")]
    Delta {
        table: String,
        #[source]
        source: deltalake::DeltaTableError,
    },

    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("datafusion: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error("corrupt commit log of {table} at version {version}: {reason}")]
    CorruptLog {
        table: String,
        version: u64,
        reason: String,
    },
}

impl From<deltalake::DeltaTableError> for Error {
    fn from(source: deltalake::DeltaTableError) -> Self {
        Self::Delta {
            table: String::new(),
            source,
        }
    }
}

impl Error {
    pub(crate) fn delta(table: &str) -> impl FnOnce(deltalake::DeltaTableError) -> Self + '_ {
        move |source| Self::Delta {
            table: table.to_owned(),
            source,
        }
    }

    /// Whose fault the error is, by its variant (and, for the Delta kernel's errors, which
    /// keep the object store's failures as text only, by what failed).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::UnknownStream(_) | Self::NoSuchVersion { .. } | Self::NoVersionAtTime { .. } => {
                ErrorKind::NotFound
            }
            Self::InvalidLocation { .. } => ErrorKind::Invalid,
            Self::SchemaConflict { .. } => ErrorKind::Conflict,
            Self::CommitContention { .. } => ErrorKind::Unavailable,
            _ if is_storage_fault(self) => ErrorKind::Unavailable,
            _ => ErrorKind::Internal,
        }
    }
}

impl Error {
    /// True when the store itself failed to answer (a connection cut, a timeout, a 5xx from
    /// S3, a disk error), or writers kept colliding: the request may succeed if retried, and
    /// nothing it did was acknowledged.
    pub fn is_unavailable(&self) -> bool {
        self.kind() == ErrorKind::Unavailable
    }
}

/// True if the error, or any error it was caused by, is the object store or the disk
/// failing, as opposed to a missing object or a refused write.
pub fn is_storage_fault(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(os) = err.downcast_ref::<object_store::Error>() {
            return !matches!(
                os,
                object_store::Error::NotFound { .. }
                    | object_store::Error::AlreadyExists { .. }
                    | object_store::Error::Precondition { .. }
                    | object_store::Error::NotModified { .. }
                    | object_store::Error::InvalidPath { .. }
                    | object_store::Error::NotSupported { .. }
                    | object_store::Error::NotImplemented { .. }
                    | object_store::Error::UnknownConfigurationKey { .. }
            );
        }
        if err.downcast_ref::<std::io::Error>().is_some() {
            return true;
        }
        if let Some(d) = err.downcast_ref::<deltalake::DeltaTableError>()
            && let deltalake::DeltaTableError::ObjectStore { source } = d
        {
            return is_storage_fault(source);
        }
        if let Some(df) = err.downcast_ref::<datafusion::error::DataFusionError>() {
            match df {
                datafusion::error::DataFusionError::ObjectStore(os) => {
                    return is_storage_fault(os.as_ref());
                }
                datafusion::error::DataFusionError::External(inner) => {
                    return is_storage_fault(inner.as_ref());
                }
                datafusion::error::DataFusionError::Context(_, inner) => {
                    return is_storage_fault(inner.as_ref());
                }
                _ => {}
            }
        }
        // The Delta kernel keeps an object-store error as its message only (no `source()`):
        // recognise object_store's own wording of a failed request.
        if let Some(d) = err.downcast_ref::<deltalake::DeltaTableError>()
            && failed_request(&d.to_string())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

/// True for the texts object_store gives a request that failed (not a missing object).
fn failed_request(text: &str) -> bool {
    [
        "Generic S3 error",
        "Generic LocalFileSystem error",
        "Generic HTTP error",
        "error sending request",
        "operation timed out",
        "connection reset",
        "connection closed",
    ]
    .iter()
    .any(|p| text.contains(p))
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Kernel(String);
    impl std::fmt::Display for Kernel {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Kernel {}

    fn delta(kernel_text: &str) -> Error {
        Error::Delta {
            table: "streams/x".into(),
            source: deltalake::DeltaTableError::GenericError {
                source: Box::new(Kernel(kernel_text.into())),
            },
        }
    }

    #[test]
    fn storage_faults_are_told_from_refusals() {
        assert!(
            delta("Error interacting with object store: Generic S3 error: Error performing GET http://x in 1ms - HTTP error: error sending request").is_unavailable()
        );
        assert!(!delta("Invalid table version: 7").is_unavailable());
        // As deltalake passes a kernel error on: its text only.
        let text = Error::Delta {
            table: "streams/x".into(),
            source: deltalake::DeltaTableError::Generic(
                "Error interacting with object store: Generic S3 error: Error performing list request".into(),
            ),
        };
        assert!(text.is_unavailable());
        let os = Error::ObjectStore(object_store::Error::Generic {
            store: "S3",
            source: Box::new(Kernel("connection reset".into())),
        });
        assert!(os.is_unavailable());
        let missing = Error::ObjectStore(object_store::Error::NotFound {
            path: "a".into(),
            source: Box::new(Kernel("gone".into())),
        });
        assert!(!missing.is_unavailable());
        assert!(!Error::UnknownStream("a.b".into()).is_unavailable());
    }
}
