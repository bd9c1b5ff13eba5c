/// Why a governance request was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error("missing or malformed credentials: {0}")]
    Unauthenticated(&'static str),

    #[error("token {0} has been revoked")]
    Revoked(String),

    #[error("{0}")]
    Forbidden(String),

    #[error("{0}")]
    Invalid(String),

    #[error("no token {0}")]
    NoSuchToken(String),

    /// A dataset policy rule refuses the request.
    #[error("{0}")]
    Policy(String),

    /// The dataset is not in the state the step needs.
    #[error("{0}")]
    Conflict(String),

    /// No such dataset (or none the caller may see).
    #[error("no dataset {0}")]
    NoSuchDataset(String),

    #[error("no release {version} of dataset {dataset}")]
    NoSuchRelease { dataset: String, version: u32 },

    #[error(transparent)]
    Query(Box<kho_query::QueryError>),

    #[error(transparent)]
    Store(Box<kho_store::Error>),
}

impl From<kho_store::Error> for CatalogError {
    fn from(e: kho_store::Error) -> Self {
        Self::Store(Box::new(e))
    }
}

impl From<kho_query::QueryError> for CatalogError {
    fn from(e: kho_query::QueryError) -> Self {
        Self::Query(Box::new(e))
    }
}

impl From<datafusion::error::DataFusionError> for CatalogError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        Self::Query(Box::new(e.into()))
    }
}

impl From<arrow::error::ArrowError> for CatalogError {
    fn from(e: arrow::error::ArrowError) -> Self {
        Self::Query(Box::new(e.into()))
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
