//! `/healthz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// `GET /healthz`: the store answers, and the queue is not full.
pub async fn healthz(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let version = state
        .governance
        .refresh()
        .await
        .map_err(|e| ApiError::Unavailable(format!("the store does not answer: {e}")))?;
    let _ = version;
    Ok(Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "streams": state.store.streams().len(),
        "queued_events": state.ingest.queued_events(),
    })))
}

/// `GET /metrics`: Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    state.metrics.set_refused(state.governance.refused().len());
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}
