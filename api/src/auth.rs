//! Authentication: `Authorization: Bearer <token>` to a [`Principal`], and role checks.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kho_catalog::{Principal, Role};

use crate::error::ApiError;
use crate::server::AppState;

/// The authenticated caller of a route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("missing Authorization: Bearer <token>".into())
        })?;
        let value = header.to_str().map_err(|_| {
            ApiError::Unauthenticated("the Authorization header is not ASCII".into())
        })?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::Unauthenticated(
                    "the Authorization header must read Bearer <token>".into(),
                )
            })?;
        let principal = state.governance.authenticate(token).await?;
        Ok(Caller(principal))
    }
}

impl Caller {
    /// Refuses unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<&Principal, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            Err(ApiError::Forbidden(format!(
                "{what} needs a {} token; this is a {} token",
                names.join(" or "),
                self.0.role.as_str()
            )))
        }
    }
}
