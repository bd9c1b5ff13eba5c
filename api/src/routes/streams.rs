//! `/v1/streams`: what streams exist, and appending events to them.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kho_catalog::Role;
use kho_ingest::AppendRequest;
use kho_store::{StreamDef, TableStats};
use serde::Serialize;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Serialize)]
pub struct StreamSummary {
    name: String,
    owner: String,
    description: String,
    schema_version: u32,
    #[serde(flatten)]
    stats: TableStats,
}

#[derive(Serialize)]
struct StreamDetail<'a> {
    #[serde(flatten)]
    def: &'a StreamDef,
    envelope: Vec<EnvelopeColumn>,
    stats: TableStats,
}

#[derive(Serialize)]
struct EnvelopeColumn {
    name: &'static str,
    #[serde(rename = "type")]
    ty: &'static str,
    set_by: &'static str,
}

/// `GET /v1/streams`: every stream with its version, row count and last commit.
pub async fn list(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<Vec<StreamSummary>>> {
    let mut out = Vec::new();
    for def in state.store.streams() {
        let stats = state.store.stream_stats(&def.name).await?;
        out.push(StreamSummary {
            name: def.name.clone(),
            owner: def.owner.clone(),
            description: def.description.clone(),
            schema_version: def.schema_version,
            stats,
        });
    }
    Ok(Json(out))
}

/// `GET /v1/streams/{stream}`: the schema, its version and rules, and the table's state.
pub async fn get(
    State(state): State<AppState>,
    _caller: Caller,
    Path(stream): Path<String>,
) -> ApiResult<Response> {
    let def = state
        .store
        .stream(&stream)
        .map_err(|_| ApiError::NotFound(format!("unknown stream {stream}")))?;
    let stats = state.store.stream_stats(&stream).await?;
    let envelope = kho_store::schema::ENVELOPE
        .iter()
        .map(|(name, ty, server)| EnvelopeColumn {
            name,
            ty: ty.name(),
            set_by: if *server {
                "server"
            } else if *name == kho_store::schema::EVENT_ID {
                "client, or the server (UUIDv7) when absent"
            } else {
                "client"
            },
        })
        .collect();
    Ok(Json(StreamDetail {
        def: &def,
        envelope,
        stats,
    })
    .into_response())
}

/// `POST /v1/streams/{stream}/events`: appends a batch; answers once it is durable.
pub async fn append(
    State(state): State<AppState>,
    caller: Caller,
    Path(stream): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match append_inner(&state, &caller, &stream, &headers, body).await {
        Ok(resp) => resp,
        Err(e) => {
            // Only a registered stream's name becomes a label: the URL is the caller's.
            let label = if state.store.stream(&stream).is_ok() {
                stream.as_str()
            } else {
                crate::metrics::OTHER
            };
            state.metrics.rejected(label, e.code());
            e.into_response()
        }
    }
}

async fn append_inner(
    state: &AppState,
    caller: &Caller,
    stream: &str,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let principal = caller.require(&[Role::Sector], "appending events")?;
    let def = state
        .store
        .stream(stream)
        .map_err(|_| ApiError::NotFound(format!("unknown stream {stream}")))?;
    if principal.sector.as_deref() != Some(def.owner.as_str()) {
        return Err(ApiError::Forbidden(format!(
            "stream {stream} belongs to sector {}; this token is for sector {}",
            def.owner,
            principal.sector.as_deref().unwrap_or("none")
        )));
    }
    let limit = state.config.body_limit;
    let too_large =
        || ApiError::PayloadTooLarge(format!("the body exceeds the limit of {limit} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("invalid"));
    // Refuse an unsupported type before reading the body.
    kho_ingest::Format::from_content_type(content_type).map_err(ApiError::UnsupportedMediaType)?;
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str().map_err(|_| {
                ApiError::BadRequest("invalid Idempotency-Key: must be printable ASCII".into())
            })
        })
        .transpose()?;
    let bytes = read_body(body, limit, declared.unwrap_or(0))
        .await?
        .ok_or_else(too_large)?;
    let source = principal.source();
    let appended = state
        .ingest
        .append(AppendRequest {
            stream,
            content_type,
            body: bytes,
            principal_id: &principal.id,
            source: &source,
            idempotency_key,
        })
        .await?;
    let mut resp = (StatusCode::CREATED, Json(&appended)).into_response();
    if appended.replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// Reads a body of at most `limit` bytes into one buffer sized from `Content-Length`;
/// `None` when it is longer than the limit.
async fn read_body(body: Body, limit: usize, declared: usize) -> ApiResult<Option<bytes::Bytes>> {
    use http_body_util::BodyExt;
    let mut body = body;
    let mut buf = bytes::BytesMut::with_capacity(declared.min(limit));
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::BadRequest(format!("could not read the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Ok(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Some(buf.freeze()))
}
