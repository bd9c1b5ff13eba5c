//! HTTP routes, one module per resource, and the router that mounts them.

pub mod admin;
pub mod catalog;
pub mod ckan;
pub mod dcat;
pub mod health;
pub mod streams;
pub mod views;

use axum::Router;
use axum::routing::{delete, get, post};
use tower_http::trace::TraceLayer;

use crate::listen::{BodyBudget, ConnLimits};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/v1/admin/tokens", post(admin::issue).get(admin::list))
        .route("/v1/admin/tokens/{id}", delete(admin::revoke))
        .route("/v1/streams", get(streams::list))
        .route("/v1/streams/{stream}", get(streams::get))
        .route("/v1/streams/{stream}/events", post(streams::append))
        .route("/v1/views", get(views::list))
        .route("/v1/views/{view}", get(views::get))
        .route("/v1/views/{view}/refresh", post(views::refresh))
        .route("/v1/sql", post(views::sql))
        .route(
            "/v1/catalog/datasets",
            get(catalog::list).post(catalog::create),
        )
        .route("/v1/catalog/datasets/{id}", get(catalog::get))
        .route("/v1/catalog/datasets/{id}/data", get(catalog::data))
        .route("/v1/catalog/datasets/{id}/grants", post(catalog::grant))
        .route(
            "/v1/catalog/datasets/{id}/grants/{principal}",
            delete(catalog::ungrant),
        )
        .route("/v1/catalog/datasets/{id}/{step}", post(catalog::step))
        .route("/v1/catalog/audit", get(catalog::audit))
        .route("/v1/catalog/audit/verify", get(catalog::verify))
        .route("/v1/catalog/refused", get(catalog::refused))
        .route("/catalog.jsonld", get(dcat::catalog))
        .route(
            "/api/3/action/{action}",
            get(ckan::action).post(ckan::action),
        )
        .route("/api/action/{action}", get(ckan::action).post(ckan::action))
        .merge(crate::web::router())
        .fallback(|| async { crate::error::ApiError::NotFound("no such route".into()) })
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            crate::metrics::track,
        ))
        .layer(axum::middleware::from_fn_with_state(
            BodyBudget::new(&conn_limits(&state)),
            crate::listen::body_budget,
        ))
        // A body that stalls between chunks is cut (408), not waited for.
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            conn_limits(&state).body_chunk_timeout,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

pub(crate) fn conn_limits(state: &AppState) -> ConnLimits {
    state.config.conn.clone()
}
