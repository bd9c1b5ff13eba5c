//! `/v1/admin/tokens`: issuing, listing and revoking tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use kho_catalog::{IssuedToken, NewToken, Role, TokenInfo};
use serde::Deserialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::JsonBody;
use crate::state::AppState;

/// `POST /v1/admin/tokens`: `{role, sector?, name}` → the token, shown once.
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(req): JsonBody<NewToken>,
) -> ApiResult<(StatusCode, Json<IssuedToken>)> {
    let admin = caller.require(&[Role::Admin], "issuing tokens")?;
    let issued = state.governance.issue(admin, req).await?;
    tracing::info!(id = %issued.info.id, role = issued.info.role.as_str(), "token issued");
    Ok((StatusCode::CREATED, Json(issued)))
}

/// `GET /v1/admin/tokens`: every token, without secrets.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<TokenInfo>>> {
    caller.require(&[Role::Admin], "listing tokens")?;
    Ok(Json(state.governance.tokens()))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    reason: Option<String>,
}

/// `DELETE /v1/admin/tokens/{id}`: revokes at once; an optional `{reason}` body.
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Option<JsonBody<Revoke>>,
) -> ApiResult<Json<TokenInfo>> {
    let admin = caller.require(&[Role::Admin], "revoking tokens")?;
    let reason = body.and_then(|JsonBody(r)| r.reason);
    let info = state
        .governance
        .revoke(admin, &id, reason)
        .await
        .map_err(ApiError::from)?;
    tracing::info!(%id, "token revoked");
    Ok(Json(info))
}
