//! The pages' security in process: sessions that cannot be forged or outlive their token,
//! CSRF and same-origin checks on every form, no open redirect, the headers every page
//! carries, live panels that answer 304 while nothing changed, CSV exports that Excel reads
//! and that carry no formulas.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, header};
use http_body_util::BodyExt;
use kho_catalog::{Principal, Role};
use kho_store::Store;
use tower::ServiceExt;

use crate::routes::{ADMIN, state, token};

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// The value a `Set-Cookie` gives `name`.
    fn cookie(&self, name: &str) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix(&format!("{name}=")))
            .map(|c| c.split(';').next().unwrap().to_owned())
    }

    /// The value of the form's hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .expect("a CSRF field")
            + 19;
        self.body[at..at + 32].to_owned()
    }
}

async fn call(
    app: &Router,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    form: Option<&str>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let body = match form {
        Some(f) => {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(f.to_owned())
        }
        None => Body::empty(),
    };
    let mut req = req.body(body).unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A page or file as the holder of the session cookie `cookie` (`kho_session=…`) asks for it.
async fn get(app: &Router, path: &str, cookie: &str) -> Answer {
    call(app, Method::GET, path, &[("cookie", cookie)], None).await
}

/// Posts NDJSON lines to a stream through the API, as a sector system does: (status, body).
async fn post_events(
    app: &Router,
    token: &str,
    stream: &str,
    ndjson: String,
) -> (u16, serde_json::Value) {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(format!("/v1/streams/{stream}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from(ndjson))
        .unwrap();
    req.extensions_mut()
        .insert(ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40000,
        ))));
    let r = app.clone().oneshot(req).await.unwrap();
    let status = r.status().as_u16();
    let bytes = r.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

/// Appends NDJSON lines to a stream; 201 expected.
async fn push(app: &Router, token: &str, stream: &str, ndjson: String) {
    let (status, body) = post_events(app, token, stream, ndjson).await;
    assert_eq!(status, 201, "{body}");
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs in through the form as a browser would; returns the session cookie's value.
async fn sign_in(app: &Router, token: &str) -> Answer {
    let form = call(app, Method::GET, "/signin", &[], None).await;
    let pre = form.cookie("kho_pre").expect("a pre-session cookie");
    let cookie = format!("kho_pre={pre}");
    call(
        app,
        Method::POST,
        "/signin",
        &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
        Some(&format!(
            "token={}&csrf={}&next=%2Fdashboard",
            enc(token),
            form.csrf()
        )),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_forms_and_headers() {
    let store = Store::open_with_pack("memory://").await.unwrap();
    let state = state(store).await;
    let app = kho_api::routes::router(state.clone());
    let center = token(&state, Role::Center, None, "ioc").await;

    // Pages carry a strict policy: nothing but kho's own files, no inline script.
    let landing = call(&app, Method::GET, "/", &[], None).await;
    assert_eq!(landing.status, 200);
    let csp = landing.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(landing.header("x-content-type-options"), "nosniff");
    assert!(!landing.body.contains("<script>"), "no inline script");
    assert!(landing.body.contains("lang=\"vi\""));

    // No session: the dashboard sends to sign-in, keeping where it was going.
    let r = call(&app, Method::GET, "/dashboard?year=2021", &[], None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), "/signin?next=%2Fdashboard");
    let r = call(&app, Method::GET, "/dashboard/panels", &[], None).await;
    assert_eq!(r.status, 401, "the live panels answer 401, not a page");

    // A good sign-in: a session cookie with every attribute, and no token anywhere.
    let signed = sign_in(&app, &center).await;
    assert_eq!(signed.status, 303, "{}", signed.body);
    assert_eq!(signed.header("location"), "/dashboard");
    let set: Vec<_> = signed
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session_header = set.iter().find(|c| c.starts_with("kho_session=")).unwrap();
    // Secure: these tests' public URL is https://kho.example.
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=36000",
        "Secure",
    ] {
        assert!(session_header.contains(attr), "{session_header}");
    }
    let session = signed.cookie("kho_session").unwrap();
    let secret = center.rsplit('_').next().unwrap();
    assert!(
        !session.contains(secret),
        "the cookie holds the token's id, never its secret"
    );
    let cookie = format!("kho_session={session}");
    let page = get(&app, "/dashboard", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(!page.body.contains(secret), "the token is not in the page");
    assert_eq!(page.header("cache-control"), "private, no-store");

    // A forged, a tampered and an expired-looking cookie are refused like none.
    let (id, rest) = session.split_once('.').unwrap();
    let (expires, mac) = rest.split_once('.').unwrap();
    let later: i64 = expires.parse::<i64>().unwrap() + 86_400;
    for bad in [
        format!("kho_session={id}.{later}.{mac}"),
        format!("kho_session={id}.{expires}.{}", "0".repeat(64)),
        "kho_session=admin.99999999999.00".to_owned(),
        "kho_session=garbage".to_owned(),
    ] {
        let r = call(&app, Method::GET, "/dashboard", &[("cookie", &bad)], None).await;
        assert_eq!(r.status, 303, "{bad}");
    }

    // The sign-in form refuses a post without its pre-session cookie, with a CSRF token of
    // another, or from another site.
    let form = call(&app, Method::GET, "/signin", &[], None).await;
    let pre = form.cookie("kho_pre").unwrap();
    let body = format!("token={}&csrf={}", enc(&center), form.csrf());
    let r = call(
        &app,
        Method::POST,
        "/signin",
        &[("sec-fetch-site", "same-origin")],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 403);
    let other = format!("kho_pre={}", "a".repeat(32));
    let r = call(
        &app,
        Method::POST,
        "/signin",
        &[("cookie", &other), ("sec-fetch-site", "same-origin")],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 403);
    let mine = format!("kho_pre={pre}");
    let r = call(
        &app,
        Method::POST,
        "/signin",
        &[("cookie", &mine), ("sec-fetch-site", "cross-site")],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &app,
        Method::POST,
        "/signin",
        &[
            ("cookie", &mine),
            ("origin", "https://evil.example"),
            ("host", "kho.example"),
        ],
        Some(&body),
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.cookie("kho_session").is_none());

    // No open redirect: `next` stays inside kho.
    for next in [
        "//evil.example/x",
        "https://evil.example",
        "/\\evil.example",
    ] {
        let form = call(&app, Method::GET, "/signin", &[], None).await;
        let pre = format!("kho_pre={}", form.cookie("kho_pre").unwrap());
        let r = call(
            &app,
            Method::POST,
            "/signin",
            &[("cookie", &pre), ("sec-fetch-site", "same-origin")],
            Some(&format!(
                "token={}&csrf={}&next={}",
                enc(&center),
                form.csrf(),
                enc(next)
            )),
        )
        .await;
        assert_eq!(r.header("location"), "/dashboard", "{next}");
    }

    // The admin token is for the API: no page session.
    let r = sign_in(&app, ADMIN).await;
    assert_eq!(r.status, 403);
    assert!(r.cookie("kho_session").is_none());
    // A consumer signs in but gets no dashboard.
    let consumer = token(&state, Role::Consumer, None, "business").await;
    let s = sign_in(&app, &consumer)
        .await
        .cookie("kho_session")
        .unwrap();
    let r = call(
        &app,
        Method::GET,
        "/dashboard",
        &[("cookie", &format!("kho_session={s}"))],
        None,
    )
    .await;
    assert_eq!(r.status, 403);

    // Signing out needs the page's CSRF token.
    let r = call(
        &app,
        Method::POST,
        "/signout",
        &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
        Some("csrf=00"),
    )
    .await;
    assert_eq!(r.status, 403);
    let csrf = page.csrf();
    let r = call(
        &app,
        Method::POST,
        "/signout",
        &[("cookie", &cookie), ("sec-fetch-site", "same-origin")],
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(r.cookie("kho_session").as_deref(), Some(""));

    // Revoking the token ends its sessions.
    let id = center.split('_').nth(1).unwrap();
    state
        .governance
        .revoke(&Principal::admin(), id, None)
        .await
        .unwrap();
    let r = get(&app, "/dashboard", &cookie).await;
    assert_eq!(r.status, 303, "a revoked token's session is over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_panels_and_exports() {
    let store = Store::open_with_pack("memory://").await.unwrap();
    let state = state(store.clone()).await;
    let app = kho_api::routes::router(state.clone());
    let services = token(&state, Role::Sector, Some("services"), "portal").await;
    let append = |lines: String| push(&app, &services, "service.dossiers", lines);
    let dossier = |i: usize, agency: &str, channel: &str| {
        format!(
            "{{\"event_type\":\"dossier_received\",\"entity_id\":\"HS-{i}\",\"occurred_at\":\"2021-03-10T08:00:00+07:00\",\"procedure_code\":\"TTHC-1\",\"agency_code\":\"{agency}\",\"level\":4,\"channel\":\"{channel}\",\"due_at\":\"2021-03-20T17:00:00+07:00\"}}\n"
        )
    };
    // An agency code a spreadsheet would take for a formula.
    append(dossier(1, "=HYPERLINK(1)", "online") + &dossier(2, "STP", "counter")).await;
    state.views.refresh("service_dossiers").await.unwrap();
    let s = sign_in(&app, &services)
        .await
        .cookie("kho_session")
        .unwrap();
    let cookie = format!("kho_session={s}");

    let first = get(&app, "/dashboard/panels?year=2021", &cookie).await;
    assert_eq!(first.status, 200);
    assert!(first.body.contains("id=\"tile-online_rate\""));
    assert!(first.body.contains("50,00 %"), "1 of 2 online");
    assert!(
        !first.body.contains("tile-budget_revenue"),
        "services see no budget panels"
    );
    let etag = first.header("etag").to_owned();
    let again = call(
        &app,
        Method::GET,
        "/dashboard/panels?year=2021",
        &[("cookie", &cookie), ("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(again.status, 304);
    // Another selection or language is another tag.
    let en = call(
        &app,
        Method::GET,
        "/dashboard/panels?year=2021&lang=en",
        &[("cookie", &cookie), ("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(en.status, 200);
    assert!(en.body.contains("50.00%"));

    append(dossier(3, "STP", "online") + &dossier(4, "STP", "online")).await;
    state.views.refresh("service_dossiers").await.unwrap();
    let changed = call(
        &app,
        Method::GET,
        "/dashboard/panels?year=2021",
        &[("cookie", &cookie), ("if-none-match", &etag)],
        None,
    )
    .await;
    assert_eq!(changed.status, 200, "new events, new panels");
    assert!(changed.body.contains("75,00 %"), "3 of 4 online");
    assert_ne!(changed.header("etag"), etag);

    // CSV: a byte-order mark for Excel, machine-readable numbers, no formula.
    let csv = get(&app, "/dashboard/export/agencies.csv?year=2021", &cookie).await;
    assert_eq!(csv.status, 200);
    assert!(csv.header("content-type").starts_with("text/csv"));
    assert!(csv.body.starts_with('\u{feff}'));
    let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "agency_code,agency_name,received,received_online,online_rate,resolved,resolved_on_time,on_time_rate,pending_overdue"
    );
    assert!(
        lines.contains(&"'=HYPERLINK(1),,1,1,1.000000,0,0,,0"),
        "{lines:?}"
    );
    assert!(lines.contains(&"STP,,3,2,0.666667,0,0,,0"), "{lines:?}");
    let tile = get(&app, "/dashboard/export/online_rate.csv?year=2021", &cookie).await;
    assert!(tile.body.contains("2021,0.750000,"), "{}", tile.body);
    let nope = get(
        &app,
        "/dashboard/export/budget_revenue.csv?year=2021",
        &cookie,
    )
    .await;
    assert_eq!(
        nope.status, 404,
        "no export of a panel the sector does not see"
    );
    let anon = call(
        &app,
        Method::GET,
        "/dashboard/export/agencies.csv",
        &[],
        None,
    )
    .await;
    assert_eq!(anon.status, 303);

    // The drill-down: a later event moves the watermark past the March dossiers' due date,
    // and the agency page lists the ones still pending, as many as the view counts.
    let may = dossier(5, "SXD", "counter").replace("2021-03-10T08:00:00", "2021-05-02T08:00:00");
    append(may).await;
    state.views.refresh("service_dossiers").await.unwrap();
    let overdue_in_view: i64 = {
        use futures::TryStreamExt;
        let q = kho_query::ViewQuery {
            filters: vec![("agency_code".into(), "STP".into())],
            ..Default::default()
        };
        let rows = state.views.read("service_dossiers", &q).await.unwrap();
        let batches: Vec<arrow::array::RecordBatch> = rows.batches.try_collect().await.unwrap();
        batches
            .iter()
            .map(|b| {
                arrow::compute::sum(
                    b.column_by_name("pending_overdue")
                        .unwrap()
                        .as_any()
                        .downcast_ref::<arrow::array::Int64Array>()
                        .unwrap(),
                )
                .unwrap_or(0)
            })
            .sum()
    };
    assert_eq!(overdue_in_view, 3);
    let page = get(&app, "/dashboard/agency/STP?year=2021", &cookie).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("data-count=\"3\""), "{}", page.body);
    for id in ["HS-2", "HS-3", "HS-4"] {
        assert!(page.body.contains(&format!(">{id}<")), "{id}");
    }
    let csv = get(
        &app,
        "/dashboard/export/overdue.csv?year=2021&agency=STP",
        &cookie,
    )
    .await;
    let lines: Vec<&str> = csv.body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(
        lines[1].starts_with(
            "HS-2,STP,TTHC-1,2021-03,2021-03-10T08:00:00+07:00,2021-03-20T17:00:00+07:00"
        ),
        "{lines:?}"
    );
    let other_period = get(&app, "/dashboard/agency/STP?year=2021&period=q2", &cookie).await;
    assert!(
        other_period.body.contains("data-count=\"0\""),
        "none received in Q2"
    );
    // The league table ranks by online rate, or by overdue dossiers on request.
    let at = |body: &str, code: &str| body.find(&format!("data-agency=\"{code}\"")).unwrap();
    let by_rate = get(&app, "/dashboard/panels?year=2021", &cookie).await;
    assert!(
        at(&by_rate.body, "=HYPERLINK(1)") < at(&by_rate.body, "STP"),
        "1/1 online before 2/3"
    );
    let by_overdue = get(&app, "/dashboard/panels?year=2021&sort=overdue", &cookie).await;
    assert!(
        at(&by_overdue.body, "STP") < at(&by_overdue.body, "=HYPERLINK(1)"),
        "3 overdue before 1"
    );
    assert_eq!(
        by_overdue.body.matches("aria-sort=\"descending\"").count(),
        1
    );
    assert_ne!(by_overdue.header("etag"), by_rate.header("etag"));
    let unknown = get(&app, "/dashboard/agency/NOPE", &cookie).await;
    assert_eq!(unknown.status, 404);

    // Names beside codes, from reference.codes; a correction shows at the next poll.
    let planning = token(&state, Role::Sector, Some("planning"), "plan").await;
    let name = |event: &str, vi: &str, en: &str, at: &str| {
        format!(
            "{{\"event_type\":\"{event}\",\"entity_id\":\"STP\",\"occurred_at\":\"{at}\",\"list\":\"organisation\",\"name_vi\":\"{vi}\",\"name_en\":\"{en}\"}}\n"
        )
    };
    let post_names = |body: String| push(&app, &planning, "reference.codes", body);
    let before = get(&app, "/dashboard/panels?year=2021", &cookie).await;
    assert!(!before.body.contains("Sở Tư pháp"));
    post_names(name(
        "code_registered",
        "Sở Tư pháp",
        "Department of Justice",
        "2021-01-01T07:00:00+07:00",
    ))
    .await;
    let named = call(
        &app,
        Method::GET,
        "/dashboard/panels?year=2021",
        &[
            ("cookie", &cookie),
            ("if-none-match", before.header("etag")),
        ],
        None,
    )
    .await;
    assert_eq!(named.status, 200, "a new name is a new page");
    assert!(
        named
            .body
            .contains("Sở Tư pháp<br><small class=\"code\">STP</small>"),
        "{}",
        named.body
    );
    let en = get(&app, "/dashboard/panels?year=2021&lang=en", &cookie).await;
    assert!(en.body.contains("Department of Justice"));
    post_names(name(
        "code_renamed",
        "Sở Tư pháp tỉnh Tây Ninh",
        "Tây Ninh Department of Justice",
        "2021-06-01T07:00:00+07:00",
    ))
    .await;
    let renamed = get(&app, "/dashboard/agency/STP?year=2021", &cookie).await;
    assert!(
        renamed.body.contains("<h1>Sở Tư pháp tỉnh Tây Ninh"),
        "{}",
        renamed.body
    );
    let csv = get(
        &app,
        "/dashboard/export/agencies.csv?year=2021&lang=en",
        &cookie,
    )
    .await;
    assert!(
        csv.body.contains("\nSTP,Tây Ninh Department of Justice,"),
        "the CSV names the agency in the page's language: {}",
        csv.body
    );

    // Assets: embedded, cached for a year, typed.
    let js = call(&app, Method::GET, "/assets/kho.js", &[], None).await;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").starts_with("text/javascript"));
    assert!(js.header("cache-control").contains("immutable"));
    assert_eq!(
        call(&app, Method::GET, "/assets/nope.js", &[], None)
            .await
            .status,
        404
    );
}

/// Once a code list has entries in `reference.codes`, an event naming a code it lacks is
/// refused with the row, the field and the nearest known codes, and nothing is written; a
/// list with no entries checks nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_codes_are_refused_once_a_list_has_entries() {
    let store = Store::open_with_pack("memory://").await.unwrap();
    let state = state(store.clone()).await;
    let app = kho_api::routes::router(state.clone());
    let services = token(&state, Role::Sector, Some("services"), "portal").await;
    let planning = token(&state, Role::Sector, Some("planning"), "plan").await;
    let dossier = |id: &str, agency: &str| {
        format!(
            "{{\"event_type\":\"dossier_received\",\"entity_id\":\"{id}\",\"occurred_at\":\"2021-03-10T08:00:00+07:00\",\"procedure_code\":\"TTHC-1\",\"agency_code\":\"{agency}\",\"level\":4,\"channel\":\"online\",\"due_at\":\"2021-03-20T17:00:00+07:00\"}}\n"
        )
    };
    // No organisation registered yet: any code goes.
    push(&app, &services, "service.dossiers", dossier("HS-1", "ANY")).await;
    let codes: String = ["STP", "STC", "SXD"]
        .iter()
        .map(|c| {
            format!(
                "{{\"event_type\":\"code_registered\",\"entity_id\":\"{c}\",\"occurred_at\":\"2021-01-01T07:00:00+07:00\",\"list\":\"organisation\",\"name_vi\":\"Sở {c}\"}}\n"
            )
        })
        .collect();
    push(&app, &planning, "reference.codes", codes).await;
    let rows = || async {
        store
            .read_stream("service.dossiers", kho_store::AsOf::Latest)
            .await
            .unwrap()
            .iter()
            .map(|b| b.num_rows())
            .sum::<usize>()
    };
    assert_eq!(rows().await, 1);
    // Registered just now on this process: refused at once, nothing written.
    let body = dossier("HS-2", "STP") + &dossier("HS-3", "stp-x");
    let (status, err) = post_events(&app, &services, "service.dossiers", body).await;
    assert_eq!(status, 400);
    let e = &err["error"]["details"]["errors"][0];
    assert_eq!(e["row"], 2, "{err}");
    assert_eq!(e["field"], "agency_code", "{err}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains("unknown organisation code \"stp-x\"")
            && message.contains("nearest known: STP"),
        "{message}"
    );
    assert_eq!(err["error"]["details"]["total"], 1);
    assert_eq!(rows().await, 1, "a refused batch writes nothing");
    push(&app, &services, "service.dossiers", dossier("HS-2", "STP")).await;
    assert_eq!(rows().await, 2);
}
