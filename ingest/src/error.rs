use std::sync::Arc;

use kho_store::RowError;

/// Why an append was refused or failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("unknown stream {0}")]
    UnknownStream(String),

    #[error("{0}")]
    UnsupportedMediaType(String),

    #[error("{total} problem(s) in the batch for {stream}; nothing was written")]
    Invalid {
        stream: String,
        errors: Vec<RowError>,
        total: usize,
    },

    #[error("the batch has no events")]
    Empty,

    #[error("the batch has more than {max} events")]
    TooManyEvents { max: usize },

    #[error("the ingest queue is full ({queued} events waiting); retry after {retry_after_secs}s")]
    QueueFull {
        queued: usize,
        retry_after_secs: u64,
    },

    #[error("invalid Idempotency-Key: {0}")]
    BadIdempotencyKey(String),

    #[error("this Idempotency-Key was used for a different body")]
    IdempotencyKeyReused,

    #[error("the server is shutting down")]
    ShuttingDown,

    #[error("storage failure: {0}")]
    Store(Arc<kho_store::Error>),
}

pub type Result<T, E = IngestError> = std::result::Result<T, E>;
