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

#[derive(Debug, thiserror::Error)]
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

    /// True for errors caused by the caller (bad input or a missing thing), not by the store.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::UnknownStream(_) | Self::NoSuchVersion { .. } | Self::NoVersionAtTime { .. }
        )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
