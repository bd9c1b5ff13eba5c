//! `/v1/views` and `/v1/sql`: the operations center's reads.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use kho_catalog::Role;
use kho_query::{Format, Freshness, VIEWS, ViewMeta, ViewQuery, encode};
use kho_store::AsOf;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params};
use crate::state::AppState;

#[derive(Serialize)]
pub struct ViewListing {
    #[serde(flatten)]
    spec: &'static kho_query::ViewSpec,
    #[serde(flatten)]
    freshness: Freshness,
}

/// `GET /v1/views`: every view with what it reflects and how far behind its sources it is.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<Vec<ViewListing>>> {
    caller.require(&[Role::Center, Role::Admin], "listing views")?;
    let mut out = Vec::new();
    for spec in &VIEWS {
        out.push(ViewListing {
            spec,
            freshness: state.views.freshness(spec.name).await?,
        });
    }
    Ok(Json(out))
}

/// `POST /v1/views/{view}/refresh`: refresh now; answers the view's freshness.
pub async fn refresh(
    State(state): State<AppState>,
    caller: Caller,
    Path(view): Path<String>,
) -> ApiResult<Json<Freshness>> {
    caller.require(&[Role::Center, Role::Admin], "refreshing views")?;
    Ok(Json(state.views.refresh(&view).await?))
}

/// `GET /v1/views/{view}`: rows as JSON, CSV, Arrow IPC or Parquet; grain filters,
/// `limit`, `offset`, `as_of`; `ETag` from the view version and the request.
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(view): Path<String>,
    RawQuery(query): RawQuery,
    Params(pairs): Params<Vec<(String, String)>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    caller.require(&[Role::Center], "reading views")?;
    kho_query::spec(&view).ok_or_else(|| ApiError::NotFound(format!("unknown view {view}")))?;
    let mut q = ViewQuery::default();
    let mut format_param = None;
    for (k, v) in &pairs {
        match k.as_str() {
            "format" => format_param = Some(v.clone()),
            "limit" => q.limit = Some(parse_count(k, v)?),
            "offset" => q.offset = parse_count(k, v)?,
            "as_of" => q.as_of = Some(parse_as_of(v)?),
            _ => {
                if q.filters.iter().any(|(c, _)| c == k) {
                    return Err(ApiError::BadRequest(format!("filter {k} given twice")));
                }
                q.filters.push((k.clone(), v.clone()));
            }
        }
    }
    let format = negotiate(format_param.as_deref(), &headers)?;
    let rows = state.views.read(&view, &q).await?;
    let etag = etag(&view, rows.version, format, query.as_deref().unwrap_or(""));
    if if_none_match(&headers, &etag) {
        let mut resp = StatusCode::NOT_MODIFIED.into_response();
        resp.headers_mut().insert(header::ETAG, header_value(&etag));
        return Ok(resp);
    }
    let mut resp = Response::new(Body::from_stream(encode::encode(rows.batches, format)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert(header::ETAG, header_value(&etag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    h.insert("x-kho-view-version", HeaderValue::from(rows.version));
    add_meta_headers(h, rows.meta.as_ref());
    Ok(resp)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    sql: String,
    #[serde(default)]
    format: Option<String>,
}

/// `POST /v1/sql`: one read-only query, within the memory, time and row limits.
pub async fn sql(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    JsonBody(req): JsonBody<SqlRequest>,
) -> ApiResult<Response> {
    caller.require(&[Role::Center], "running SQL")?;
    let format = negotiate(req.format.as_deref(), &headers)?;
    let result = state.sql.run(&req.sql).await?;
    let rows = result.rows;
    let mut resp = Response::new(Body::from_stream(encode::encode_batches(
        result.schema,
        result.batches,
        format,
    )));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    h.insert("x-kho-rows", HeaderValue::from(rows));
    Ok(resp)
}

fn negotiate(param: Option<&str>, headers: &HeaderMap) -> ApiResult<Format> {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    Format::negotiate(param, accept).map_err(|e| {
        if param.is_some() {
            ApiError::BadRequest(e)
        } else {
            ApiError::NotAcceptable(e)
        }
    })
}

fn parse_count(name: &str, v: &str) -> ApiResult<usize> {
    v.parse().map_err(|_| {
        ApiError::BadRequest(format!("{name} takes a non-negative integer, not {v:?}"))
    })
}

/// `as_of` is a view version (`12`) or an RFC 3339 time (`2021-03-01T00:00:00+07:00`).
fn parse_as_of(v: &str) -> ApiResult<AsOf> {
    if let Ok(n) = v.parse::<u64>() {
        return Ok(AsOf::Version(n));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| AsOf::Timestamp(t.to_utc()))
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "as_of takes a version number or an RFC 3339 time with an offset, not {v:?}"
            ))
        })
}

/// The entity tag of one answer: the view version, the format and the query.
fn etag(view: &str, version: u64, format: Format, query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    format!(
        "\"{view}-v{version}-{}-{}\"",
        format.name(),
        hex::encode(&digest[..6])
    )
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// Which source versions the answer reflects, when it was refreshed, its watermark.
fn add_meta_headers(h: &mut HeaderMap, meta: Option<&ViewMeta>) {
    let Some(meta) = meta else { return };
    let sources: Vec<String> = meta
        .sources
        .iter()
        .map(|(s, m)| format!("{s}={}", m.version))
        .collect();
    h.insert("x-kho-source-versions", header_value(&sources.join(", ")));
    h.insert(
        "x-kho-refreshed-at",
        header_value(&meta.refreshed_at.to_rfc3339()),
    );
    if let Some(w) = meta.watermark {
        h.insert("x-kho-watermark", header_value(&w.to_rfc3339()));
    }
}
