//! The one place where errors become HTTP statuses and JSON bodies.
//!
//! Every error body reads `{"error": {"code", "message", "details"}}`. 4xx bodies say what
//! was wrong; 5xx bodies are generic and the cause is logged.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kho_catalog::CatalogError;
use kho_ingest::IngestError;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    InvalidBatch { message: String, details: Value },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after_secs: u64,
    },
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0}")]
    StatementNotAllowed(String),
    #[error("{0}")]
    QueryLimit(String),
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    SumOverflow(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) | Self::InvalidBatch { .. } | Self::StatementNotAllowed(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::QueryLimit(_) | Self::Policy(_) | Self::SumOverflow(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "unauthenticated",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::BadRequest(_) => "bad_request",
            Self::InvalidBatch { .. } => "invalid_batch",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::Unprocessable(_) => "idempotency_key_reused",
            Self::NotAcceptable(_) => "not_acceptable",
            Self::StatementNotAllowed(_) => "statement_not_allowed",
            Self::QueryLimit(_) => "query_limit_exceeded",
            Self::Policy(_) => "policy_violation",
            Self::Conflict(_) => "conflict",
            Self::SumOverflow(_) => "sum_overflow",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let (message, details) = match &self {
            Self::Internal(cause) => {
                tracing::error!(%cause, "internal error");
                (
                    "internal error; the cause is in the server log".to_owned(),
                    Value::Null,
                )
            }
            Self::Unavailable(cause) => {
                tracing::warn!(%cause, "unavailable");
                (self.to_string(), Value::Null)
            }
            Self::InvalidBatch { message, details } => (message.clone(), details.clone()),
            other => (other.to_string(), Value::Null),
        };
        let mut body = json!({"error": {"code": code, "message": message}});
        if !details.is_null() {
            body["error"]["details"] = details;
        }
        let mut resp = (status, Json(body)).into_response();
        match &self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::Unavailable(_) => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Unauthenticated(_) => {
                resp.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"kho\""),
                );
            }
            _ => {}
        }
        resp
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        let msg = e.to_string();
        match e {
            IngestError::UnknownStream(_) => Self::NotFound(msg),
            IngestError::UnsupportedMediaType(_) => Self::UnsupportedMediaType(msg),
            IngestError::Invalid { errors, total, .. } => Self::InvalidBatch {
                message: msg,
                details: json!({"errors": errors, "total": total}),
            },
            IngestError::Empty | IngestError::BadIdempotencyKey(_) => Self::BadRequest(msg),
            IngestError::TooManyEvents { .. } => Self::PayloadTooLarge(msg),
            IngestError::QueueFull {
                retry_after_secs, ..
            } => Self::TooManyRequests {
                message: msg,
                retry_after_secs,
            },
            IngestError::IdempotencyKeyReused => Self::Unprocessable(msg),
            IngestError::ShuttingDown => Self::Unavailable(msg),
            IngestError::Store(inner) if inner.is_unavailable() => Self::Unavailable(msg),
            _ => Self::Internal(msg),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let msg = e.to_string();
        match e {
            CatalogError::Unauthenticated(_) | CatalogError::Revoked(_) => {
                Self::Unauthenticated(msg)
            }
            CatalogError::Forbidden(_) => Self::Forbidden(msg),
            CatalogError::Invalid(_) => Self::BadRequest(msg),
            CatalogError::NoSuchToken(_)
            | CatalogError::NoSuchDataset(_)
            | CatalogError::NoSuchRelease { .. } => Self::NotFound(msg),
            CatalogError::Policy(_) => Self::Policy(msg),
            CatalogError::Conflict(_) => Self::Conflict(msg),
            CatalogError::Store(s) => (*s).into(),
            CatalogError::Query(q) => (*q).into(),
            _ => Self::Internal(msg),
        }
    }
}

impl From<kho_store::Error> for ApiError {
    fn from(e: kho_store::Error) -> Self {
        use kho_store::ErrorKind as K;
        let msg = e.to_string();
        match e.kind() {
            K::NotFound => Self::NotFound(msg),
            K::Invalid => Self::BadRequest(msg),
            K::Conflict => Self::Conflict(msg),
            K::Unavailable => Self::Unavailable(msg),
            _ => Self::Internal(msg),
        }
    }
}

impl From<kho_query::QueryError> for ApiError {
    fn from(e: kho_query::QueryError) -> Self {
        use kho_query::QueryError as Q;
        let msg = e.to_string();
        match e {
            Q::UnknownView(_) => Self::NotFound(msg),
            Q::BadRequest(_) => Self::BadRequest(msg),
            Q::Refused { .. } => Self::StatementNotAllowed(msg),
            Q::Limit(_) => Self::QueryLimit(msg),
            Q::SumOverflow(_) => Self::SumOverflow(msg),
            Q::ShuttingDown => Self::Unavailable(msg),
            Q::Store(s) => (*s).into(),
            Q::DataFusion(ref d) if kho_store::error::is_storage_fault(d.as_ref()) => {
                Self::Unavailable(msg)
            }
            _ => Self::Internal(msg),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
