//! A read-only subset of CKAN's Action API (`/api/3/action/{action}` and
//! `/api/action/{action}`, GET with query parameters or POST with a JSON body), answering in
//! CKAN's `{help, success, result}` envelope, so portals and harvesters read the catalog
//! unchanged. Only what the caller may pull appears. `datastore_search` is a pull:
//! rate-limited and audited like a download.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use kho_catalog::dataset::LICENSES;
use kho_catalog::{Dataset, Sharing, release};
use serde_json::{Map, Value, json};

use crate::auth::MaybeCaller;
use crate::error::ApiError;
use crate::extract::Params;
use crate::routes::catalog::{Puller, base_url, readable};
use crate::state::AppState;

const ACTIONS: [&str; 9] = [
    "status_show",
    "package_list",
    "package_show",
    "package_search",
    "organization_list",
    "organization_show",
    "license_list",
    "datastore_search",
    "help_show",
];

struct Ckan {
    help: String,
}

impl Ckan {
    fn ok(&self, result: Value) -> Response {
        Json(json!({"help": self.help, "success": true, "result": result})).into_response()
    }

    fn err(&self, status: StatusCode, kind: &str, message: &str) -> Response {
        (status, Json(json!({"help": self.help, "success": false, "error": {"__type": kind, "message": message}}))).into_response()
    }

    fn not_found(&self, what: &str) -> Response {
        self.err(
            StatusCode::NOT_FOUND,
            "Not Found Error",
            &format!("Not found: {what}"),
        )
    }

    fn invalid(&self, message: &str) -> Response {
        self.err(StatusCode::CONFLICT, "Validation Error", message)
    }

    /// Any of the API's own errors (a bad token, a rate limit, a store fault), told in
    /// CKAN's envelope with the same status and headers.
    fn api_error(&self, e: ApiError) -> Response {
        let status = e.status();
        let kind = match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "Authorization Error",
            StatusCode::NOT_FOUND => "Not Found Error",
            s if s.is_client_error() => "Validation Error",
            _ => "Internal Error",
        };
        let message = match &e {
            ApiError::Internal(_) => "internal error; the cause is in the server log".to_owned(),
            other => other.to_string(),
        };
        // The native response logs the cause and carries the headers (Retry-After, …).
        let native = e.into_response();
        let mut resp = self.err(status, kind, &message);
        for h in [
            axum::http::header::RETRY_AFTER,
            axum::http::header::WWW_AUTHENTICATE,
        ] {
            if let Some(v) = native.headers().get(&h) {
                resp.headers_mut().insert(h, v.clone());
            }
        }
        resp
    }
}

/// `GET|POST /api/3/action/{action}`.
pub async fn action(
    State(state): State<AppState>,
    caller: Result<MaybeCaller, ApiError>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Path(action): Path<String>,
    query: Result<Params<Map<String, Value>>, ApiError>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Response {
    let base = base_url(&state, &headers);
    let ckan = Ckan {
        help: format!("{base}/api/3/action/help_show?name={action}"),
    };
    let caller = match caller {
        Ok(c) => c,
        Err(e) => return ckan.api_error(e),
    };
    let body = match body {
        Ok(b) => b,
        Err(r) => return ckan.err(r.status(), "Validation Error", &r.body_text()),
    };
    // Parameters: the query string (every value a string), then a JSON object body.
    let mut params = match query {
        Ok(Params(p)) => p,
        Err(e) => return ckan.api_error(e),
    };
    if !body.is_empty() {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => params.extend(o),
            _ => return ckan.invalid("the body must be a JSON object"),
        }
    }
    let viewer = caller.viewer();
    let pullable: Vec<Dataset> = state
        .governance
        .datasets_for(viewer)
        .into_iter()
        .filter(|d| d.readable_by(viewer))
        .collect();
    match action.as_str() {
        "status_show" => ckan.ok(json!({
            "site_title": "kho — Tây Ninh",
            "site_description": "Danh mục dữ liệu dùng chung tỉnh Tây Ninh / Tây Ninh province shared data catalogue",
            "site_url": base,
            "ckan_version": "2.10.4",
            "locale_default": "vi",
            "extensions": ["datastore"],
        })),
        "help_show" => ckan.ok(json!(format!("kho answers a read-only subset of CKAN's Action API: {}", ACTIONS.join(", ")))),
        "package_list" => ckan.ok(json!(pullable.iter().map(|d| d.spec.id.clone()).collect::<Vec<_>>())),
        "package_show" => {
            let Some(id) = str_param(&params, "id") else { return ckan.invalid("id: Missing value") };
            match pullable.iter().find(|d| d.spec.id == id) {
                Some(d) => ckan.ok(package(d, &base)),
                None => ckan.not_found("Dataset"),
            }
        }
        "package_search" => {
            let rows = usize_param(&params, "rows").unwrap_or(10).min(1000);
            let start = usize_param(&params, "start").unwrap_or(0);
            let q = str_param(&params, "q").unwrap_or_default().to_lowercase();
            let fq = str_param(&params, "fq").unwrap_or_default();
            let mut org_filter = None;
            for clause in fq.split_whitespace() {
                match clause.split_once(':') {
                    Some(("organization" | "owner_org", v)) => org_filter = Some(v.trim_matches('"').to_owned()),
                    _ => return ckan.err(StatusCode::BAD_REQUEST, "Search Query Error", &format!("fq supports organization:<name>, not {clause}")),
                }
            }
            let hits: Vec<&Dataset> = pullable
                .iter()
                .filter(|d| org_filter.as_ref().is_none_or(|o| d.publisher().0 == *o))
                .filter(|d| q.is_empty() || q == "*:*" || matches_query(d, &q))
                .collect();
            ckan.ok(json!({
                "count": hits.len(),
                "sort": "score desc, metadata_modified desc",
                "facets": {},
                "search_facets": {},
                "results": hits.iter().skip(start).take(rows).map(|d| package(d, &base)).collect::<Vec<_>>(),
            }))
        }
        "organization_list" => {
            let all_fields = bool_param(&params, "all_fields");
            let orgs = organizations(&pullable);
            ckan.ok(if all_fields {
                json!(orgs.iter().map(|(slug, (name, n))| organization(slug, name, *n)).collect::<Vec<_>>())
            } else {
                json!(orgs.keys().collect::<Vec<_>>())
            })
        }
        "organization_show" => {
            let Some(id) = str_param(&params, "id") else { return ckan.invalid("id: Missing value") };
            match organizations(&pullable).get(&id) {
                Some((name, n)) => ckan.ok(organization(&id, name, *n)),
                None => ckan.not_found("Organization"),
            }
        }
        "license_list" => ckan.ok(json!(LICENSES.iter().map(|(id, title, url)| json!({
            "id": id, "title": title, "url": url, "status": "active",
            "od_conformance": if *id == "other-closed" { "not reviewed" } else { "approved" },
            "domain_data": true, "domain_content": false, "domain_software": false,
        })).collect::<Vec<_>>())),
        "datastore_search" => match datastore_search(&state, &caller, addr, &headers, &params).await {
            Ok(v) => ckan.ok(v),
            Err(DsError::NotFound) => ckan.not_found("Resource"),
            Err(DsError::Invalid(m)) => ckan.invalid(&m),
            Err(DsError::Api(e)) => ckan.api_error(e),
        },
        other => ckan.err(StatusCode::BAD_REQUEST, "Bad request", &format!("Action name not known: {other}")),
    }
}

fn str_param(p: &Map<String, Value>, k: &str) -> Option<String> {
    match p.get(k)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        v => Some(v.to_string()),
    }
}

fn usize_param(p: &Map<String, Value>, k: &str) -> Option<usize> {
    match p.get(k)? {
        Value::Number(n) => n.as_u64().map(|n| n as usize),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn bool_param(p: &Map<String, Value>, k: &str) -> bool {
    matches!(p.get(k), Some(Value::Bool(true)))
        || matches!(p.get(k), Some(Value::String(s)) if s == "true" || s == "True")
}

fn matches_query(d: &Dataset, q: &str) -> bool {
    let m = &d.spec.metadata;
    let text = format!(
        "{} {} {} {} {} {} {}",
        d.spec.id,
        m.title.vi,
        m.title.en,
        m.description.vi,
        m.description.en,
        m.keywords.join(" "),
        m.theme
    )
    .to_lowercase();
    q.split_whitespace().all(|w| text.contains(w))
}

/// Publishing bodies of the datasets: slug -> (name, dataset count).
fn organizations(ds: &[Dataset]) -> std::collections::BTreeMap<String, (String, usize)> {
    let mut out = std::collections::BTreeMap::new();
    for d in ds {
        let (slug, name) = d.publisher();
        out.entry(slug).or_insert((name, 0)).1 += 1;
    }
    out
}

fn organization(slug: &str, name: &str, n: usize) -> Value {
    json!({"id": slug, "name": slug, "title": name, "display_name": name, "type": "organization",
           "is_organization": true, "state": "active", "approval_status": "approved", "package_count": n})
}

/// A dataset as a CKAN package.
fn package(d: &Dataset, base: &str) -> Value {
    let m = &d.spec.metadata;
    let (slug, name) = d.publisher();
    let license = LICENSES.iter().find(|l| l.0 == m.license);
    let created = d.history.first().map(|s| s.at.to_rfc3339());
    let modified = d
        .releases
        .last()
        .map(|r| r.created_at.to_rfc3339())
        .or_else(|| created.clone());
    let url = format!("{base}/v1/catalog/datasets/{}", d.spec.id);
    let resources: Vec<Value> = [
        ("csv", "CSV", "text/csv"),
        ("json", "JSON", "application/json"),
        ("parquet", "Parquet", "application/vnd.apache.parquet"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (f, label, media))| {
        json!({
            "id": format!("{}-{f}", d.spec.id),
            "package_id": d.spec.id,
            "name": format!("{} ({label})", m.title.vi),
            "format": label,
            "mimetype": media,
            "url": format!("{url}/data?format={f}"),
            "position": i,
            "datastore_active": *f == "csv",
            "state": "active",
            "created": created,
            "last_modified": modified,
        })
    })
    .collect();
    let extras = [
        (
            "sharing",
            match d.spec.sharing {
                Sharing::Open => "open",
                Sharing::Shared => "shared",
                Sharing::Private => "private",
            }
            .to_owned(),
        ),
        (
            "importance",
            format!("{:?}", d.spec.importance).to_lowercase(),
        ),
        ("theme", m.theme.clone()),
        (
            "accrual_periodicity",
            m.accrual_periodicity.eu_frequency().to_owned(),
        ),
        ("spatial", m.spatial.clone()),
        ("title_en", m.title.en.clone()),
        (
            "release_version",
            d.releases
                .last()
                .map_or(String::new(), |r| r.version.to_string()),
        ),
    ];
    let mut extras: Vec<Value> = extras
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    if let Some(t) = &m.temporal {
        extras.push(json!({"key": "temporal_start", "value": t.start}));
        extras.push(json!({"key": "temporal_end", "value": t.end}));
    }
    json!({
        "id": d.spec.id,
        "name": d.spec.id,
        "title": m.title.vi,
        "title_translated": {"vi": m.title.vi, "en": m.title.en},
        "notes": m.description.vi,
        "notes_translated": {"vi": m.description.vi, "en": m.description.en},
        "type": "dataset",
        "state": "active",
        "private": d.spec.sharing != Sharing::Open,
        "license_id": m.license,
        "license_title": license.map(|l| l.1),
        "license_url": license.map(|l| l.2),
        "author": name,
        "maintainer": m.contact_point.name,
        "maintainer_email": m.contact_point.email,
        "url": url,
        "version": d.releases.last().map(|r| r.version.to_string()),
        "metadata_created": created,
        "metadata_modified": modified,
        "owner_org": slug,
        "organization": {"id": slug, "name": slug, "title": name, "type": "organization", "is_organization": true, "state": "active"},
        "tags": m.keywords.iter().map(|k| json!({"name": k, "display_name": k, "state": "active"})).collect::<Vec<_>>(),
        "num_tags": m.keywords.len(),
        "groups": [],
        "extras": extras,
        "resources": resources,
        "num_resources": 3,
    })
}

enum DsError {
    NotFound,
    Invalid(String),
    Api(ApiError),
}

impl From<ApiError> for DsError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::NotFound(_) => DsError::NotFound,
            other => DsError::Api(other),
        }
    }
}

/// `datastore_search`: records of a dataset's latest release, with equality `filters`,
/// `limit` (100 by default, at most 32,000) and `offset`.
async fn datastore_search(
    state: &AppState,
    caller: &MaybeCaller,
    addr: SocketAddr,
    headers: &HeaderMap,
    params: &Map<String, Value>,
) -> Result<Value, DsError> {
    let resource = str_param(params, "resource_id")
        .ok_or_else(|| DsError::Invalid("resource_id: Missing value".into()))?;
    let id = ["-csv", "-json", "-parquet"]
        .iter()
        .find_map(|s| resource.strip_suffix(s))
        .unwrap_or(&resource)
        .to_owned();
    // A dataset the caller may not pull is a resource it cannot see; a store that does not
    // answer stays a 503.
    let d = readable(state, caller, &id).await.map_err(|e| match e {
        ApiError::NotFound(_) | ApiError::Forbidden(_) => DsError::NotFound,
        other => DsError::Api(other),
    })?;
    let puller = Puller::new(state, caller, addr);
    puller.admit(state)?;
    let limit = usize_param(params, "limit").unwrap_or(100).min(32_000);
    let offset = usize_param(params, "offset").unwrap_or(0);
    let filters: HashMap<String, Value> = match params.get("filters") {
        None | Some(Value::Null) => HashMap::new(),
        Some(Value::Object(o)) => o.clone().into_iter().collect(),
        Some(Value::String(s)) => serde_json::from_str(s)
            .map_err(|_| DsError::Invalid("filters: must be a JSON object".into()))?,
        Some(_) => return Err(DsError::Invalid("filters: must be a JSON object".into())),
    };
    let filters: Vec<(String, String)> = filters
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                },
            )
        })
        .collect();
    let release = d.latest_release().ok_or(DsError::NotFound)?;
    let schema = release::release_schema(&state.store, &d, release.version)
        .await
        .map_err(|e| DsError::Api(e.into()))?;
    for (k, _) in &filters {
        if schema.field_with_name(k).is_err() {
            return Err(DsError::Invalid(format!(
                "filters: {k} is not a field of {resource}"
            )));
        }
    }
    // Count what matches (for `total`), then read the page.
    let all = release::read_release(&state.store, &d, release.version, &filters, 0, None)
        .await
        .map_err(|e| DsError::Api(e.into()))?;
    let total: usize = all
        .try_fold(0usize, |n, b| async move { Ok(n + b.num_rows()) })
        .await
        .map_err(|e| DsError::Api(ApiError::Internal(e.to_string())))?;
    let page = release::read_release(
        &state.store,
        &d,
        release.version,
        &filters,
        offset,
        Some(limit),
    )
    .await
    .map_err(|e| DsError::Api(e.into()))?;
    let batches: Vec<_> = page
        .try_collect()
        .await
        .map_err(|e| DsError::Api(ApiError::Internal(e.to_string())))?;
    let mut writer = arrow::json::WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, arrow::json::writer::JsonArray>(Vec::new());
    for b in &batches {
        writer
            .write(b)
            .map_err(|e| DsError::Api(ApiError::Internal(e.to_string())))?;
    }
    writer
        .finish()
        .map_err(|e| DsError::Api(ApiError::Internal(e.to_string())))?;
    let bytes = writer.into_inner();
    let records: Value = if bytes.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| DsError::Api(ApiError::Internal(e.to_string())))?
    };
    let rows = records.as_array().map_or(0, Vec::len) as u64;
    puller
        .audit(state, &d, release.version, rows, "ckan-datastore", headers)
        .await?;
    let fields: Vec<Value> = schema
        .fields()
        .iter()
        .map(|f| {
            let t = match f.data_type() {
                t if t.is_integer() => "int",
                t if t.is_floating() => "numeric",
                arrow::datatypes::DataType::Boolean => "bool",
                arrow::datatypes::DataType::Timestamp(..) => "timestamp",
                _ => "text",
            };
            json!({"id": f.name(), "type": t})
        })
        .collect();
    Ok(json!({
        "resource_id": resource,
        "fields": fields,
        "records": records,
        "total": total,
        "limit": limit,
        "offset": offset,
        "_links": {
            "start": format!("/api/3/action/datastore_search?resource_id={resource}"),
            "next": format!("/api/3/action/datastore_search?resource_id={resource}&offset={}", offset + limit),
        },
    }))
}
