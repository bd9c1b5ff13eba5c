/// Why a query or a view operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    #[error("unknown view {0}")]
    UnknownView(String),

    #[error("{0}")]
    BadRequest(String),

    /// A statement the SQL endpoint does not run.
    #[error(
        "{kind} statements are not allowed: the SQL endpoint is read-only (SELECT, WITH, EXPLAIN)"
    )]
    Refused { kind: String },

    /// A query went past one of its limits.
    #[error("{0}")]
    Limit(String),

    #[error("{0}")]
    Store(Box<kho_store::Error>),

    #[error("query: {0}")]
    DataFusion(Box<datafusion::error::DataFusionError>),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    /// The process is stopping: the query was dropped.
    #[error("the server is shutting down; try again on another instance or in a moment")]
    ShuttingDown,

    /// A view's sum does not fit its 64-bit column (implausible events got in).
    #[error("{0}")]
    SumOverflow(String),

    #[error("{0}")]
    Internal(String),
}

impl From<kho_store::Error> for QueryError {
    fn from(e: kho_store::Error) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for QueryError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::DataFusion(Box::new(e))
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
