//! `/v1/catalog`: the native face of the catalog — datasets, the workflow, grants,
//! downloads (rate-limited and audited) and the audit log.

use std::net::SocketAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use kho_catalog::{
    Dataset, DatasetSpec, Governance, NewGrant, Pull, ReleaseStep, Role, Viewer, release,
};
use kho_query::{Format, encode};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::auth::{Caller, MaybeCaller};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, Params};
use crate::state::AppState;

/// The base URL links are made from: the configured public URL, else this request's host.
pub(crate) fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(u) = &state.config.public_url {
        return u.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// A dataset as a caller sees it: grants only for stewards and the owner.
pub(crate) fn dataset_json(gov: &Governance, d: &Dataset, viewer: Viewer<'_>, base: &str) -> Value {
    let mut v = serde_json::to_value(d).expect("plain data");
    if !viewer.sees_actor_ids() {
        let actor = |id: &str| serde_json::to_value(gov.public_actor(id)).expect("plain data");
        if let Some(steps) = v["history"].as_array_mut() {
            for (step, s) in steps.iter_mut().zip(&d.history) {
                let o = step.as_object_mut().expect("an object");
                o.remove("by");
                o.remove("by_name");
                o.insert("actor".into(), actor(&s.by));
            }
        }
        if let Some(releases) = v["releases"].as_array_mut() {
            for (rel, r) in releases.iter_mut().zip(&d.releases) {
                let o = rel.as_object_mut().expect("an object");
                o.remove("by");
                o.insert("actor".into(), actor(&r.by));
            }
        }
    }
    if !d.grants_visible_to(viewer) {
        v.as_object_mut().expect("an object").remove("grants");
    }
    let (slug, name) = d.publisher();
    v["publisher"] = json!({"id": slug, "name": name});
    v["links"] = json!({
        "self": format!("{base}/v1/catalog/datasets/{}", d.spec.id),
        "data": format!("{base}/v1/catalog/datasets/{}/data", d.spec.id),
    });
    v
}

/// `GET /v1/catalog/datasets`: what the caller may see.
pub async fn list(
    State(state): State<AppState>,
    caller: MaybeCaller,
    headers: HeaderMap,
) -> Json<Vec<Value>> {
    let base = base_url(&state, &headers);
    let viewer = caller.viewer();
    Json(
        state
            .governance
            .datasets_for(viewer)
            .iter()
            .map(|d| dataset_json(&state.governance, d, viewer, &base))
            .collect(),
    )
}

/// `GET /v1/catalog/datasets/{id}`.
pub async fn get(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let viewer = caller.viewer();
    let d = state.governance.dataset_for(viewer, &id)?;
    Ok(Json(dataset_json(
        &state.governance,
        &d,
        viewer,
        &base_url(&state, &headers),
    )))
}

/// `POST /v1/catalog/datasets`: a draft (or a new version of one's own draft).
pub async fn create(
    State(state): State<AppState>,
    Caller(by): Caller,
    headers: HeaderMap,
    JsonBody(spec): JsonBody<DatasetSpec>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = state.governance.draft(&by, spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(dataset_json(
            &state.governance,
            &d,
            Viewer::Principal(&by),
            &base_url(&state, &headers),
        )),
    ))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Why {
    #[serde(default)]
    why: Option<String>,
    /// For `approve`: the revision the steward reviewed (the dataset's `revision`); the
    /// approval is refused if the dataset changed since.
    #[serde(default)]
    revision: Option<String>,
}

/// `POST /v1/catalog/datasets/{id}/{step}`: propose, approve, publish, revoke, releases.
pub async fn step(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((id, step)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<JsonBody<Why>>,
) -> ApiResult<Json<Value>> {
    let g = &state.governance;
    let Why { why, revision } = body.map(|JsonBody(w)| w).unwrap_or_default();
    if revision.is_some() && step != "approve" {
        return Err(ApiError::BadRequest(
            "revision: only an approval names the revision it applies to".into(),
        ));
    }
    let d = match step.as_str() {
        "propose" => g.propose(&by, &id, why).await?,
        "approve" => {
            g.approve_revision(&by, &id, revision.as_deref(), why)
                .await?
        }
        "revoke" => g.revoke_dataset(&by, &id, why).await?,
        "publish" | "releases" => {
            let step = if step == "publish" {
                ReleaseStep::Publish
            } else {
                ReleaseStep::NewRelease
            };
            g.release_fresh(&state.views, &by, &id, step).await?
        }
        other => {
            return Err(ApiError::NotFound(format!(
                "no step {other}: propose, approve, publish, releases or revoke"
            )));
        }
    };
    tracing::info!(dataset = %id, step, by = %by.name, state = d.state.as_str(), "dataset workflow");
    Ok(Json(dataset_json(
        &state.governance,
        &d,
        Viewer::Principal(&by),
        &base_url(&state, &headers),
    )))
}

/// `POST /v1/catalog/datasets/{id}/grants`.
pub async fn grant(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(g): JsonBody<NewGrant>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let d = state.governance.grant(&by, &id, g).await?;
    Ok((
        StatusCode::CREATED,
        Json(dataset_json(
            &state.governance,
            &d,
            Viewer::Principal(&by),
            &base_url(&state, &headers),
        )),
    ))
}

/// `DELETE /v1/catalog/datasets/{id}/grants/{principal}`.
pub async fn ungrant(
    State(state): State<AppState>,
    Caller(by): Caller,
    Path((id, principal)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let d = state.governance.revoke_grant(&by, &id, &principal).await?;
    Ok(Json(dataset_json(
        &state.governance,
        &d,
        Viewer::Principal(&by),
        &base_url(&state, &headers),
    )))
}

/// Who a pull is from, for the rate limit and the audit.
pub(crate) struct Puller {
    principal: Option<String>,
    ip_hash: Option<String>,
}

impl Puller {
    pub(crate) fn new(state: &AppState, caller: &MaybeCaller, addr: SocketAddr) -> Self {
        match &caller.0 {
            Some(p) => Self {
                principal: Some(p.id.clone()),
                ip_hash: None,
            },
            None => {
                let mut h = Sha256::new();
                h.update(state.ip_salt.as_slice());
                h.update(addr.ip().to_string().as_bytes());
                Self {
                    principal: None,
                    ip_hash: Some(hex::encode(&h.finalize()[..16])),
                }
            }
        }
    }

    /// Takes one pull from the caller's quota.
    pub(crate) fn admit(&self, state: &AppState) -> ApiResult<()> {
        let (key, with_token) = match (&self.principal, &self.ip_hash) {
            (Some(p), _) => (p.as_str(), true),
            (None, Some(h)) => (h.as_str(), false),
            (None, None) => ("unknown", false),
        };
        state
            .limiter
            .take(key, with_token)
            .map_err(|retry_after_secs| ApiError::TooManyRequests {
                message: format!(
                    "too many pulls; retry after {retry_after_secs}s{}",
                    if with_token {
                        ""
                    } else {
                        " (a consumer token has a higher quota)"
                    }
                ),
                retry_after_secs,
            })
    }

    /// Records the pull; the answer goes out only once the entry is durable.
    pub(crate) async fn audit(
        &self,
        state: &AppState,
        d: &Dataset,
        version: u32,
        rows: u64,
        format: &str,
        headers: &HeaderMap,
    ) -> ApiResult<u64> {
        let purpose = headers
            .get("x-purpose")
            .and_then(|v| std::str::from_utf8(v.as_bytes()).ok())
            .map(|s| s.trim().chars().take(500).collect::<String>())
            .filter(|s| !s.is_empty());
        state
            .audit
            .record(Pull {
                principal: self.principal.clone(),
                ip_hash: self.ip_hash.clone(),
                dataset: d.spec.id.clone(),
                version,
                rows,
                format: format.to_owned(),
                purpose,
            })
            .await
            .map_err(|e| {
                ApiError::Unavailable(format!(
                    "the pull could not be audited, so it is not served: {e}"
                ))
            })
    }
}

/// The dataset if the caller may pull its data: 404 when it may not even see it, 403 when
/// it sees it but may not pull (a draft, a revoked dataset, a shared one without a grant).
/// Decided on a state at most [`kho_catalog::FRESH_WITHIN`] old, so that a revocation made
/// on another process is obeyed here too.
pub(crate) async fn readable(
    state: &AppState,
    caller: &MaybeCaller,
    id: &str,
) -> ApiResult<Dataset> {
    state.governance.ensure_fresh().await?;
    let viewer = caller.viewer();
    let d = state.governance.dataset_for(viewer, id)?;
    d.check_readable(viewer)?;
    Ok(d)
}

/// The query string of a pull: `format`, `limit`, `offset`, `version` (of the release).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataParams {
    format: Option<String>,
    limit: Option<usize>,
    #[serde(default)]
    offset: usize,
    version: Option<u32>,
}

/// `GET /v1/catalog/datasets/{id}/data`: a release as CSV, JSON, Parquet or Arrow.
pub async fn data(
    State(state): State<AppState>,
    caller: MaybeCaller,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    Params(DataParams {
        format,
        limit,
        offset,
        version,
    }): Params<DataParams>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let d = readable(&state, &caller, &id).await?;
    let puller = Puller::new(&state, &caller, addr);
    puller.admit(&state)?;
    let release = match version {
        Some(v) => d
            .release(v)
            .ok_or_else(|| ApiError::NotFound(format!("dataset {id} has no release {v}")))?,
        None => d
            .latest_release()
            .ok_or_else(|| ApiError::NotFound(format!("dataset {id} has no release")))?,
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let format = Format::negotiate(format.as_deref(), accept).map_err(ApiError::BadRequest)?;
    let rows = release
        .rows
        .saturating_sub(offset as u64)
        .min(limit.map_or(u64::MAX, |l| l as u64));
    // The entry is durable before a byte leaves; opening the release meanwhile saves a
    // round of object-store reads per pull.
    let (seq, stream) = tokio::try_join!(
        async {
            puller
                .audit(&state, &d, release.version, rows, format.name(), &headers)
                .await
        },
        async {
            release::read_release(&state.store, &d, release.version, &[], offset, limit)
                .await
                .map_err(ApiError::from)
        },
    )?;
    let mut resp = Response::new(Body::from_stream(encode::encode(stream, format)));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    let ext = match format {
        Format::Json => "json",
        Format::Csv => "csv",
        Format::Arrow => "arrow",
        Format::Parquet => "parquet",
    };
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{id}-v{}.{ext}\"",
        release.version
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-kho-release-version", HeaderValue::from(release.version));
    h.insert("x-kho-audit-seq", HeaderValue::from(seq));
    Ok(resp)
}

/// The query string of the audit log: `limit` (1,000 unless given) and `offset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    #[serde(default = "AuditParams::page")]
    limit: usize,
    #[serde(default)]
    offset: usize,
}

impl AuditParams {
    fn page() -> usize {
        1000
    }
}

/// `GET /v1/catalog/audit?limit&offset`: the audit log, for stewards.
pub async fn audit(
    State(state): State<AppState>,
    caller: Caller,
    Params(AuditParams { limit, offset }): Params<AuditParams>,
) -> ApiResult<Json<Value>> {
    caller.require(&[Role::Steward], "reading the audit log")?;
    let entries = state.audit.entries().await?;
    let total = entries.len();
    let page: Vec<_> = entries.into_iter().skip(offset).take(limit).collect();
    Ok(Json(
        json!({"total": total, "offset": offset, "entries": page}),
    ))
}

/// `GET /v1/catalog/refused`: entries of the governance log that the replay did not apply,
/// because they were not valid in the state before them (written by an older or faulty
/// program; kho itself checks every decision before it records it). Empty on a healthy store.
pub async fn refused(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require(
        &[Role::Steward, Role::Admin],
        "reading the refused governance entries",
    )?;
    state.governance.ensure_fresh().await?;
    let entries = state.governance.refused();
    Ok(Json(json!({"total": entries.len(), "entries": entries})))
}

/// `GET /v1/catalog/audit/verify`: recomputes the chain and names the first broken entry.
pub async fn verify(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<kho_catalog::Verification>> {
    caller.require(&[Role::Steward], "verifying the audit log")?;
    Ok(Json(state.audit.verify().await?))
}
