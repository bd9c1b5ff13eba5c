/// Why a governance request was refused or failed.
#[derive(Debug, thiserror::Error)]
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

    #[error(transparent)]
    Store(Box<kho_store::Error>),
}

impl From<kho_store::Error> for CatalogError {
    fn from(e: kho_store::Error) -> Self {
        Self::Store(Box::new(e))
    }
}

pub type Result<T, E = CatalogError> = std::result::Result<T, E>;
