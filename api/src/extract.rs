//! Extractors whose rejection is the API's own error: a body or a query string that does
//! not parse answers with kho's JSON error (which field, why), never axum's plain text.
//!
//! Handlers take [`JsonBody`] for JSON bodies (`Option<JsonBody<T>>` when the body may be
//! left out) and [`Params`] for query strings instead of axum's `Json` and `Query`; no
//! rejection is unwrapped by hand.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body; a wrong content type is 415, a body that does not parse 400 naming the field.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = <axum::Json<T> as FromRequest<S>>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// No body (no `Content-Type`) is `None`; a body that is there must parse.
impl<S, T> OptionalFromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        let value = <axum::Json<T> as OptionalFromRequest<S>>::from_request(req, state).await?;
        Ok(value.map(|axum::Json(v)| Self(v)))
    }
}

/// A query string as `T` (a struct with `deny_unknown_fields`, or the raw pairs as
/// `Vec<(String, String)>`); a value that does not parse is 400 naming the parameter.
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(b)
                if b.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::PayloadTooLarge(b.body_text())
            }
            other => Self::BadRequest(other.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        // "Failed to deserialize query string: limit: invalid digit found in string".
        let text = r.body_text();
        let why = text
            .strip_prefix("Failed to deserialize query string: ")
            .unwrap_or(&text);
        Self::BadRequest(format!("bad query parameter: {why}"))
    }
}
