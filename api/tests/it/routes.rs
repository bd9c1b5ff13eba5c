//! Route-level checks in process: the router is called with `tower::ServiceExt::oneshot`
//! on a memory store, no binary, no socket. What the answers are is pinned by an `insta`
//! snapshot (`snapshots/it__routes__error_statuses.snap`): every route's refusals, with their
//! status, code and message. A store whose object store fails on demand shows that every
//! route that reads or writes the store answers 503 with `Retry-After`, never 500 or 400.
//!
//! The end-to-end suite (`tests/tests/it/`) keeps what needs the real process: the accept loop,
//! signals, several processes, crashes.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, header};
use bytes::Bytes;
use futures::stream::BoxStream;
use http_body_util::BodyExt;
use kho_api::listen::ConnLimits;
use kho_api::server::{AppState, ServerConfig};
use kho_catalog::{NewToken, Principal, Role};
use kho_ingest::IngestConfig;
use kho_query::SqlLimits;
use kho_store::Store;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) const ADMIN: &str = "route-tests-admin-token";

pub(crate) async fn state(store: Arc<Store>) -> AppState {
    let config = ServerConfig {
        body_limit: 1024 * 1024,
        conn: ConnLimits::default(),
        view_debounce: Duration::from_millis(10),
        view_poll: Duration::from_secs(3600),
        governance_refresh: Duration::from_secs(3600),
        maintain_every: Duration::ZERO,
        public_url: Some("https://kho.example".into()),
        pulls_per_min: (1000, 1000),
    };
    AppState::open(
        store,
        ADMIN,
        IngestConfig::default(),
        SqlLimits::default(),
        config,
    )
    .await
    .unwrap()
}

pub(crate) async fn token(
    state: &AppState,
    role: Role,
    sector: Option<&str>,
    name: &str,
) -> String {
    state
        .governance
        .issue(
            &Principal::admin(),
            NewToken {
                role,
                sector: sector.map(str::to_owned),
                name: name.into(),
            },
        )
        .await
        .unwrap()
        .token
}

/// One request through the router: (status, body as JSON or text, Retry-After).
async fn call(
    app: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, &str)>,
) -> (u16, Value, Option<String>) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let body = match body {
        Some((content_type, text)) => {
            req = req.header(header::CONTENT_TYPE, content_type);
            Body::from(text.to_owned())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body, retry)
}

const DOSSIER: &str = r#"{"event_type":"dossier_received","entity_id":"HS-1","occurred_at":"2021-03-10T08:00:00+07:00","procedure_code":"TTHC-1","agency_code":"STP","level":4,"channel":"online","due_at":"2021-03-20T17:00:00+07:00"}"#;

fn dataset(id: &str) -> String {
    json!({
        "id": id,
        "source": {"kind": "view", "name": "service_dossiers"},
        "columns": [{"name": "month"}, {"name": "agency_code"}, {"name": "received"}],
        "sharing": "open",
        "importance": "other",
        "metadata": {"title": {"vi": "Hồ sơ", "en": "Dossiers"}, "description": {"vi": "Hồ sơ", "en": "Dossiers"},
            "theme": "GOVE", "keywords": ["hồ sơ"], "license": "cc-by-4.0", "accrual_periodicity": "monthly",
            "temporal": {"start": "2021-01-01", "end": "2021-12-31"}, "spatial": "Tỉnh Tây Ninh",
            "contact_point": {"name": "IOC", "email": "ioc@tayninh.gov.vn"}},
    })
    .to_string()
}

/// One pinned case: its name, the method, the path, the token and the body (type, text).
type Case<'a> = (
    &'a str,
    Method,
    String,
    Option<&'a str>,
    Option<(&'a str, String)>,
);

/// A request: the method, the path, the token and the body (type, text).
type Sent<'a> = (Method, &'a str, Option<&'a str>, Option<(&'a str, &'a str)>);

/// Every route's refusals, pinned: a change in a status, a code or a message shows in the
/// snapshot's diff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_statuses_are_pinned() {
    let store = Store::open_with_pack("memory://").await.unwrap();
    let state = state(store).await;
    let finance = token(&state, Role::Sector, Some("finance"), "treasury").await;
    let services = token(&state, Role::Sector, Some("services"), "portal").await;
    let center = token(&state, Role::Center, None, "ioc").await;
    let steward = token(&state, Role::Steward, None, "steward").await;
    let consumer = token(&state, Role::Consumer, None, "business").await;
    let app = kho_api::routes::router(state);
    let json_ct = "application/json";
    let ndjson = "application/x-ndjson";
    let cases: Vec<Case<'_>> = vec![
        ("no such route", Method::GET, "/nope".into(), None, None),
        (
            "streams without a token",
            Method::GET,
            "/v1/streams".into(),
            None,
            None,
        ),
        (
            "a forged token",
            Method::GET,
            "/v1/streams".into(),
            Some("kho_forged"),
            None,
        ),
        (
            "an unknown stream",
            Method::GET,
            "/v1/streams/finance.nope".into(),
            Some(&center),
            None,
        ),
        (
            "append without a token",
            Method::POST,
            "/v1/streams/service.dossiers/events".into(),
            None,
            Some((ndjson, DOSSIER.into())),
        ),
        (
            "append by the center",
            Method::POST,
            "/v1/streams/service.dossiers/events".into(),
            Some(&center),
            Some((ndjson, DOSSIER.into())),
        ),
        (
            "append to another sector's stream",
            Method::POST,
            "/v1/streams/service.dossiers/events".into(),
            Some(&finance),
            Some((ndjson, DOSSIER.into())),
        ),
        (
            "append to an unknown stream",
            Method::POST,
            "/v1/streams/service.nope/events".into(),
            Some(&services),
            Some((ndjson, DOSSIER.into())),
        ),
        (
            "append as text/plain",
            Method::POST,
            "/v1/streams/service.dossiers/events".into(),
            Some(&services),
            Some(("text/plain", DOSSIER.into())),
        ),
        (
            "append an empty batch",
            Method::POST,
            "/v1/streams/service.dossiers/events".into(),
            Some(&services),
            Some((ndjson, String::new())),
        ),
        (
            "append a bad field",
            Method::POST,
            "/v1/streams/service.dossiers/events".into(),
            Some(&services),
            Some((ndjson, DOSSIER.replace("\"level\":4", "\"level\":9"))),
        ),
        (
            "an unknown view",
            Method::GET,
            "/v1/views/nope".into(),
            Some(&center),
            None,
        ),
        (
            "a view for a consumer",
            Method::GET,
            "/v1/views/service_dossiers".into(),
            Some(&consumer),
            None,
        ),
        (
            "a view filtered off its grain",
            Method::GET,
            "/v1/views/service_dossiers?received=1".into(),
            Some(&center),
            None,
        ),
        (
            "refresh an unknown view",
            Method::POST,
            "/v1/views/nope/refresh".into(),
            Some(&center),
            None,
        ),
        (
            "SQL without a token",
            Method::POST,
            "/v1/sql".into(),
            None,
            Some((json_ct, r#"{"sql":"select 1"}"#.into())),
        ),
        (
            "SQL by a consumer",
            Method::POST,
            "/v1/sql".into(),
            Some(&consumer),
            Some((json_ct, r#"{"sql":"select 1"}"#.into())),
        ),
        (
            "SQL that writes",
            Method::POST,
            "/v1/sql".into(),
            Some(&center),
            Some((json_ct, r#"{"sql":"drop table service.dossiers"}"#.into())),
        ),
        (
            "SQL on an unknown table",
            Method::POST,
            "/v1/sql".into(),
            Some(&center),
            Some((json_ct, r#"{"sql":"select * from service.nope"}"#.into())),
        ),
        (
            "SQL that does not parse",
            Method::POST,
            "/v1/sql".into(),
            Some(&center),
            Some((json_ct, r#"{"sql":"selec 1 frm"}"#.into())),
        ),
        (
            "SQL whose sum overflows",
            Method::POST,
            "/v1/sql".into(),
            Some(&center),
            Some((
                json_ct,
                r#"{"sql":"select sum(x) from (values (9223372036854775807), (1)) t(x)"}"#.into(),
            )),
        ),
        (
            "SQL as GET",
            Method::GET,
            "/v1/sql".into(),
            Some(&center),
            None,
        ),
        (
            "issue a token as the center",
            Method::POST,
            "/v1/admin/tokens".into(),
            Some(&center),
            Some((json_ct, r#"{"role":"center","name":"x"}"#.into())),
        ),
        (
            "issue a token with a bad role",
            Method::POST,
            "/v1/admin/tokens".into(),
            Some(ADMIN),
            Some((json_ct, r#"{"role":"king","name":"x"}"#.into())),
        ),
        (
            "revoke an unknown token",
            Method::DELETE,
            "/v1/admin/tokens/nope".into(),
            Some(ADMIN),
            None,
        ),
        (
            "an unknown dataset",
            Method::GET,
            "/v1/catalog/datasets/nope".into(),
            None,
            None,
        ),
        (
            "data of an unknown dataset",
            Method::GET,
            "/v1/catalog/datasets/nope/data".into(),
            None,
            None,
        ),
        (
            "draft a dataset as a consumer",
            Method::POST,
            "/v1/catalog/datasets".into(),
            Some(&consumer),
            Some((json_ct, dataset("ds-consumer"))),
        ),
        (
            "draft a dataset with a bad body",
            Method::POST,
            "/v1/catalog/datasets".into(),
            Some(&center),
            Some((json_ct, r#"{"id": 5}"#.into())),
        ),
        (
            "an unknown workflow step",
            Method::POST,
            "/v1/catalog/datasets/nope/dance".into(),
            Some(&steward),
            None,
        ),
        (
            "approve an unknown dataset",
            Method::POST,
            "/v1/catalog/datasets/nope/approve".into(),
            Some(&steward),
            None,
        ),
        (
            "grant on an unknown dataset",
            Method::POST,
            "/v1/catalog/datasets/nope/grants".into(),
            Some(&steward),
            Some((
                json_ct,
                r#"{"principal":"x","purpose":"p","legal_basis":"l"}"#.into(),
            )),
        ),
        (
            "the audit without a token",
            Method::GET,
            "/v1/catalog/audit".into(),
            None,
            None,
        ),
        (
            "the audit for a sector",
            Method::GET,
            "/v1/catalog/audit".into(),
            Some(&finance),
            None,
        ),
        (
            "the audit with an unknown parameter",
            Method::GET,
            "/v1/catalog/audit?page=2".into(),
            Some(&steward),
            None,
        ),
        (
            "the audit with a limit that is not a number",
            Method::GET,
            "/v1/catalog/audit?limit=ten".into(),
            Some(&steward),
            None,
        ),
        (
            "a pull with a negative offset",
            Method::GET,
            "/v1/catalog/datasets/nope/data?offset=-1".into(),
            None,
            None,
        ),
        (
            "revoke a token with a body that does not parse",
            Method::DELETE,
            "/v1/admin/tokens/nope".into(),
            Some(ADMIN),
            Some((json_ct, "{\"reason\": ".into())),
        ),
        (
            "the view list for a consumer",
            Method::GET,
            "/v1/views".into(),
            Some(&consumer),
            None,
        ),
        (
            "list tokens as a steward",
            Method::GET,
            "/v1/admin/tokens".into(),
            Some(&steward),
            None,
        ),
        (
            "the catalog with a forged token",
            Method::GET,
            "/v1/catalog/datasets".into(),
            Some("kho_forged"),
            None,
        ),
        (
            "withdraw a grant on an unknown dataset",
            Method::DELETE,
            "/v1/catalog/datasets/nope/grants/someone".into(),
            Some(&steward),
            None,
        ),
        (
            "verify the audit as a sector",
            Method::GET,
            "/v1/catalog/audit/verify".into(),
            Some(&finance),
            None,
        ),
        (
            "DCAT with a forged token",
            Method::GET,
            "/catalog.jsonld".into(),
            Some("kho_forged"),
            None,
        ),
        (
            "metrics as POST",
            Method::POST,
            "/metrics".into(),
            None,
            None,
        ),
        (
            "CKAN without the version: an unknown action",
            Method::GET,
            "/api/action/package_dance".into(),
            None,
            None,
        ),
        (
            "refused governance entries without a token",
            Method::GET,
            "/v1/catalog/refused".into(),
            None,
            None,
        ),
        (
            "refused governance entries for the center",
            Method::GET,
            "/v1/catalog/refused".into(),
            Some(&center),
            None,
        ),
        (
            "CKAN: an unknown action",
            Method::GET,
            "/api/3/action/package_dance".into(),
            None,
            None,
        ),
        (
            "CKAN: an unknown package",
            Method::GET,
            "/api/3/action/package_show?id=nope".into(),
            None,
            None,
        ),
        (
            "CKAN: a forged token",
            Method::GET,
            "/api/3/action/package_list".into(),
            Some("kho_forged"),
            None,
        ),
    ];
    let mut answers = Vec::new();
    for (what, method, path, token, body) in cases {
        let (status, body, _) = call(
            &app,
            method.clone(),
            &path,
            token,
            body.as_ref().map(|(c, b)| (*c, b.as_str())),
        )
        .await;
        assert!(status >= 400, "{what}: {status} {body}");
        answers.push(json!({"case": what, "request": format!("{method} {path}"), "status": status, "body": body}));
    }
    insta::assert_json_snapshot!("error_statuses", answers);
}

/// An object store that fails every request while `down` is set, as S3 does when the
/// network to it is cut.
#[derive(Debug)]
struct Faulty {
    inner: InMemory,
    down: Arc<AtomicBool>,
}

impl std::fmt::Display for Faulty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Faulty({})", self.inner)
    }
}

impl Faulty {
    fn check(&self) -> object_store::Result<()> {
        if self.down.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "S3",
                source: Box::new(std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "error sending request: connection refused",
                )),
            });
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check()?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check()?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.check()?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.check()?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if let Err(e) = self.check() {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Err(e) = self.check() {
            return Box::pin(futures::stream::once(async move { Err(e) }));
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check()?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.check()?;
        self.inner.copy_opts(from, to, options).await
    }
}

/// With the object store down, every route that reads or writes the store answers 503 with
/// `Retry-After` (the caller may retry; nothing was acknowledged). Routes served from the
/// state the process holds (the catalog's metadata, `/metrics`) keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_answers_503_on_every_route() {
    let down = Arc::new(AtomicBool::new(false));
    let store = Store::open_provided(
        Arc::new(Faulty {
            inner: InMemory::new(),
            down: down.clone(),
        }),
        Arc::new(kho_store::SystemClock),
    )
    .await
    .unwrap();
    let state = state(store).await;
    let services = token(&state, Role::Sector, Some("services"), "portal").await;
    let center = token(&state, Role::Center, None, "ioc").await;
    let steward = token(&state, Role::Steward, None, "steward").await;
    let app = kho_api::routes::router(state.clone());
    let ndjson = "application/x-ndjson";
    let json_ct = "application/json";
    let (st, body, _) = call(
        &app,
        Method::POST,
        "/v1/streams/service.dossiers/events",
        Some(&services),
        Some((ndjson, DOSSIER)),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let (st, body, _) = call(
        &app,
        Method::POST,
        "/v1/views/service_dossiers/refresh",
        Some(&center),
        None,
    )
    .await;
    assert_eq!(st, 200, "{body}");

    down.store(true, Ordering::SeqCst);
    let other = DOSSIER.replace("HS-1", "HS-2");
    let draft = dataset("ds-down");
    let through_the_store: Vec<Sent<'_>> = vec![
        (Method::GET, "/healthz", None, None),
        (Method::GET, "/v1/streams", Some(&center), None),
        (
            Method::GET,
            "/v1/streams/service.dossiers",
            Some(&center),
            None,
        ),
        (
            Method::POST,
            "/v1/streams/service.dossiers/events",
            Some(&services),
            Some((ndjson, &other)),
        ),
        (Method::GET, "/v1/views", Some(&center), None),
        (
            Method::GET,
            "/v1/views/service_dossiers",
            Some(&center),
            None,
        ),
        (
            Method::GET,
            "/v1/views/service_dossiers?as_of=1",
            Some(&center),
            None,
        ),
        (
            Method::POST,
            "/v1/views/service_dossiers/refresh",
            Some(&center),
            None,
        ),
        (
            Method::POST,
            "/v1/sql",
            Some(&center),
            Some((
                json_ct,
                r#"{"sql":"select count(*) from service.dossiers"}"#,
            )),
        ),
        (
            Method::POST,
            "/v1/admin/tokens",
            Some(ADMIN),
            Some((json_ct, r#"{"role":"center","name":"late"}"#)),
        ),
        (
            Method::POST,
            "/v1/catalog/datasets",
            Some(&center),
            Some((json_ct, &draft)),
        ),
        (Method::GET, "/v1/catalog/audit", Some(&steward), None),
        (
            Method::GET,
            "/v1/catalog/audit/verify",
            Some(&steward),
            None,
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, token, body) in through_the_store {
        let (status, body, retry) = call(&app, method.clone(), path, token, body).await;
        if status != 503 || retry.is_none() || body["error"]["code"] != "unavailable" {
            wrong.push(format!(
                "{method} {path}: {status} {body} (Retry-After {retry:?})"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "routes that did not answer 503 with the store down:\n{}",
        wrong.join("\n")
    );
    for path in ["/metrics", "/v1/catalog/datasets", "/catalog.jsonld"] {
        let (status, body, _) = call(&app, Method::GET, path, None, None).await;
        assert_eq!(status, 200, "{path} is served from memory: {body}");
    }
    // Back up: the same requests work again, and nothing was half-written.
    down.store(false, Ordering::SeqCst);
    let (st, body, _) = call(
        &app,
        Method::POST,
        "/v1/streams/service.dossiers/events",
        Some(&services),
        Some((ndjson, &other)),
    )
    .await;
    assert_eq!(st, 201, "{body}");
    let rows = state
        .store
        .read_stream("service.dossiers", kho_store::AsOf::Latest)
        .await
        .unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}

/// An entry a faulty program wrote to the governance log (an approval of a dataset nobody
/// drafted) is not applied, and stewards and the admin can read why; nobody else can.
#[tokio::test]
async fn refused_governance_entries_are_listed_for_stewards() {
    let store = Store::open_with_pack("memory://").await.unwrap();
    let state = state(store.clone()).await;
    let app = kho_api::routes::router(state.clone());
    let steward = token(&state, Role::Steward, None, "steward").await;
    let center = token(&state, Role::Center, None, "ioc").await;
    let (st, body, _) = call(
        &app,
        Method::GET,
        "/v1/catalog/refused",
        Some(&steward),
        None,
    )
    .await;
    assert_eq!((st, body["total"].clone()), (200, json!(0)), "{body}");

    let log = kho_store::SystemLog::open(store.clone(), "system/governance")
        .await
        .unwrap();
    let (v, _) = log.read_all().await.unwrap();
    let rogue = kho_store::LogEntry::new(
        "dataset_approved",
        "rogue-token",
        json!({"id": "never-drafted", "by_name": "rogue"}),
        store.now() + chrono::TimeDelta::seconds(1),
    );
    log.append_at(v, std::slice::from_ref(&rogue))
        .await
        .unwrap()
        .expect("nothing else writes");
    state.governance.refresh().await.unwrap();

    for who in [steward.as_str(), ADMIN] {
        let (st, body, _) = call(&app, Method::GET, "/v1/catalog/refused", Some(who), None).await;
        assert_eq!((st, body["total"].clone()), (200, json!(1)), "{body}");
        let e = &body["entries"][0];
        assert_eq!(e["event_id"], json!(rogue.event_id));
        assert_eq!(e["event_type"], "dataset_approved");
        assert_eq!(e["actor"], "rogue-token");
        assert!(
            e["reason"].as_str().unwrap().contains("never-drafted"),
            "{e}"
        );
    }
    let (st, _, _) = call(
        &app,
        Method::GET,
        "/v1/catalog/refused",
        Some(&center),
        None,
    )
    .await;
    assert_eq!(st, 403);
    // Operators see the count without a token, to alert on.
    let (_, metrics, _) = call(&app, Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .lines()
            .any(|l| l == "kho_governance_refused_entries 1"),
        "{metrics}"
    );
    assert!(
        state
            .governance
            .datasets_for(kho_catalog::Viewer::Principal(&Principal::admin()))
            .iter()
            .all(|d| d.spec.id != "never-drafted")
    );
}
