//! Authentication: `Authorization: Bearer <token>` to a [`Principal`], and role checks.

use axum::extract::FromRequestParts;
use axum::http::HeaderValue;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use kho_catalog::{Principal, Role, Viewer};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a route.
#[derive(Debug, Clone)]
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthenticated("missing Authorization: Bearer <token>".into())
        })?;
        authenticate(header, state).await.map(Caller)
    }
}

/// The caller when a token is given; anyone otherwise. A token that is given but wrong is
/// refused, never taken as anonymous.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Principal>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match parts.headers.get(AUTHORIZATION) {
            None => Ok(MaybeCaller(None)),
            Some(header) => authenticate(header, state)
                .await
                .map(|p| MaybeCaller(Some(p))),
        }
    }
}

impl MaybeCaller {
    pub fn viewer(&self) -> Viewer<'_> {
        match &self.0 {
            Some(p) => Viewer::Principal(p),
            None => Viewer::Anonymous,
        }
    }
}

async fn authenticate(header: &HeaderValue, state: &AppState) -> Result<Principal, ApiError> {
    let value = header
        .to_str()
        .map_err(|_| ApiError::Unauthenticated("the Authorization header is not ASCII".into()))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthenticated("the Authorization header must read Bearer <token>".into())
        })?;
    Ok(state.governance.authenticate(token).await?)
}

/// "a" or "an" before a role's name, as it is said.
fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

impl Caller {
    /// Refuses unless the caller holds one of `roles`.
    pub fn require(&self, roles: &[Role], what: &str) -> Result<&Principal, ApiError> {
        if roles.contains(&self.0.role) {
            Ok(&self.0)
        } else {
            let names: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            let wanted = names.join(" or ");
            let held = self.0.role.as_str();
            Err(ApiError::Forbidden(format!(
                "{what} needs {} {wanted} token; this is {} {held} token",
                article(&wanted),
                article(held)
            )))
        }
    }
}
