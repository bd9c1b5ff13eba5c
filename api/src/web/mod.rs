//! The pages people use, served by the same binary as the API: `/` (the landing page),
//! `/signin`, `/dashboard` (the operations center's dashboard) and the embedded assets.
//!
//! Pages are rendered on the server (`pages.rs`, with `maud`, which escapes every value) from
//! the views (`data.rs`); charts are SVG drawn here (`charts.rs`). The one script,
//! `assets/kho.js`, only keeps the panels live (it asks `/dashboard/panels` again with the
//! entity tag it has, and swaps the panels in when they changed) and prints. Sessions are
//! signed cookies (`session.rs`). Every page carries a Content-Security-Policy that allows
//! nothing but kho's own files.

mod charts;
mod data;
mod format;
mod i18n;
pub(crate) mod names;
mod pages;
pub(crate) mod session;

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::Form;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kho_catalog::Role;
use maud::Markup;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::state::AppState;
use data::{Period, Sees};
use i18n::Lang;
use pages::{Assets, with_lang};
use session::{NoSession, SignedIn};

const CSS: &str = include_str!("../../assets/kho.css");
const JS: &str = include_str!("../../assets/kho.js");
const ICON: &str = include_str!("../../assets/kho.svg");

/// Content hashes of the assets, in their URLs: a new kho serves new URLs, so the files can
/// be cached for a year.
static ASSETS: LazyLock<Assets> = LazyLock::new(|| Assets {
    css: format!("/assets/kho.css?v={}", short_hash(CSS.as_bytes())),
    js: format!("/assets/kho.js?v={}", short_hash(JS.as_bytes())),
    icon: format!("/assets/kho.svg?v={}", short_hash(ICON.as_bytes())),
});

fn short_hash(b: &[u8]) -> String {
    hex::encode(&Sha256::digest(b)[..6])
}

/// Nothing but kho's own files; no inline script or style; no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/dashboard", get(dashboard))
        .route("/dashboard/panels", get(panels))
        .route("/dashboard/agency/{code}", get(agency))
        .route("/dashboard/export/{file}", get(export))
        .route("/assets/{file}", get(asset))
        // Pages, panels, CSV and assets compressed for the browsers that ask (the API's
        // own formats are left as they are).
        .layer(tower_http::compression::CompressionLayer::new())
}

/// An HTML answer with the headers every page has.
fn page(status: StatusCode, markup: Markup, private: bool) -> Response {
    let mut resp = (status, markup.into_string()).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if private {
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("private, no-store"),
        );
    }
    resp
}

fn see_other(to: &str) -> Response {
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(to).unwrap_or_else(|_| HeaderValue::from_static("/")),
    );
    resp
}

/// A path inside kho to go back to after signing in (never another site).
fn local_path(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/dashboard".into(),
    }
}

fn lang_of(q: &HashMap<String, String>) -> Lang {
    Lang::from_param(q.get("lang").map(String::as_str))
}

async fn landing(
    State(_state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang_of(&q);
    let body = pages::landing(lang);
    page(
        StatusCode::OK,
        pages::layout(
            lang,
            lang.pick("Trang chủ", "Home"),
            &ASSETS,
            None,
            "/",
            body,
        ),
        false,
    )
}

/// The pre-session cookie's value (made when absent) and whether it is new.
fn pre_session(headers: &HeaderMap) -> (String, bool) {
    match session::cookie(headers, session::PRE_COOKIE) {
        Some(v) if v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (v.to_owned(), false)
        }
        _ => {
            let mut b = [0u8; 16];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
            (hex::encode(b), true)
        }
    }
}

fn signin_page(
    state: &AppState,
    headers: &HeaderMap,
    lang: Lang,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (pre, new) = pre_session(headers);
    let csrf = session::csrf_token(&state.session_key, &pre);
    let body = pages::signin(lang, &csrf, next, error);
    let mut resp = page(
        status,
        pages::layout(
            lang,
            lang.pick("Đăng nhập", "Sign in"),
            &ASSETS,
            None,
            "/signin",
            body,
        ),
        true,
    );
    if new {
        resp.headers_mut().append(
            header::SET_COOKIE,
            session::set_cookie(session::PRE_COOKIE, &pre, 3600, session::secure(state)),
        );
    }
    resp
}

async fn signin_form(
    State(state): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let next = local_path(q.get("next").map(String::as_str));
    signin_page(&state, &headers, lang_of(&q), &next, None, StatusCode::OK)
}

#[derive(Debug, Deserialize)]
struct SignIn {
    token: String,
    csrf: String,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    lang: Option<String>,
}

async fn signin(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignIn>,
) -> Response {
    let lang = Lang::from_param(f.lang.as_deref());
    let next = local_path(f.next.as_deref());
    let pre = session::cookie(&headers, session::PRE_COOKIE).unwrap_or("");
    if !session::same_origin(&headers)
        || pre.is_empty()
        || !session::csrf_ok(&state.session_key, pre, &f.csrf)
    {
        return signin_page(
            &state,
            &headers,
            lang,
            &next,
            Some(lang.pick(
                "Phiên đăng nhập đã hết hạn hoặc yêu cầu không đến từ trang này. Vui lòng thử lại.",
                "The sign-in form expired or the request did not come from this page. Please try again.",
            )),
            StatusCode::FORBIDDEN,
        );
    }
    let principal = match state.governance.authenticate(f.token.trim()).await {
        Ok(p) if p.role != Role::Admin => p,
        Ok(_) => {
            return signin_page(
                &state,
                &headers,
                lang,
                &next,
                Some(lang.pick(
                    "Mã quản trị chỉ dùng cho API, không dùng để đăng nhập trang.",
                    "The admin token is for the API only, not for signing in to pages.",
                )),
                StatusCode::FORBIDDEN,
            );
        }
        Err(kho_catalog::CatalogError::Store(e)) => {
            tracing::warn!(error = %e, "sign-in could not check the token");
            return unavailable(lang);
        }
        Err(_) => {
            return signin_page(
                &state,
                &headers,
                lang,
                &next,
                Some(lang.pick(
                    "Mã truy cập không đúng hoặc đã bị thu hồi.",
                    "The access token is wrong or has been revoked.",
                )),
                StatusCode::UNAUTHORIZED,
            );
        }
    };
    let value = session::new_session(&state.session_key, &principal.id);
    tracing::info!(token = %principal.id, role = principal.role.as_str(), "signed in to the pages");
    let mut resp = see_other(&next);
    let secure = session::secure(&state);
    let h = resp.headers_mut();
    h.append(
        header::SET_COOKIE,
        session::set_cookie(
            session::COOKIE_NAME,
            &value,
            session::SESSION_HOURS * 3600,
            secure,
        ),
    );
    h.append(
        header::SET_COOKIE,
        session::set_cookie(session::PRE_COOKIE, "", 0, secure),
    );
    resp
}

#[derive(Debug, Deserialize)]
struct SignOut {
    csrf: String,
}

async fn signout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SignOut>,
) -> Response {
    let value = session::cookie(&headers, session::COOKIE_NAME).unwrap_or("");
    if !session::same_origin(&headers)
        || value.is_empty()
        || !session::csrf_ok(&state.session_key, value, &f.csrf)
    {
        return page(
            StatusCode::FORBIDDEN,
            pages::layout(
                Lang::Vi,
                "403",
                &ASSETS,
                None,
                "/",
                pages::notice(
                    "Không thể đăng xuất",
                    "Yêu cầu không đến từ trang của kho. Sign-out refused: the request did not come from kho's pages.",
                ),
            ),
            true,
        );
    }
    let mut resp = see_other("/");
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(session::COOKIE_NAME, "", 0, session::secure(&state)),
    );
    resp
}

fn unavailable(lang: Lang) -> Response {
    let mut resp = page(
        StatusCode::SERVICE_UNAVAILABLE,
        pages::layout(
            lang,
            "503",
            &ASSETS,
            None,
            "/",
            pages::notice(
                lang.pick(
                    "Tạm thời không truy cập được dữ liệu",
                    "The data is unreachable for now",
                ),
                lang.pick(
                    "Kho lưu trữ không phản hồi. Vui lòng thử lại sau ít phút.",
                    "The store does not answer. Please try again in a few minutes.",
                ),
            ),
        ),
        true,
    );
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    resp
}

/// What the dashboard's URL selects.
struct Selection {
    lang: Lang,
    rank: pages::Rank,
    year: Option<i32>,
    period: Period,
    district: Option<String>,
}

impl Selection {
    fn of(q: &HashMap<String, String>) -> Self {
        Selection {
            lang: lang_of(q),
            rank: pages::Rank::from_param(q.get("sort").map(String::as_str)),
            year: q
                .get("year")
                .and_then(|y| y.parse().ok())
                .filter(|y| (1900..=9999).contains(y)),
            period: Period::from_param(q.get("period").map(String::as_str)),
            district: q
                .get("district")
                .filter(|d| !d.is_empty() && d.len() <= 64)
                .cloned(),
        }
    }

    /// The query string that reproduces it (language aside: links add it).
    fn query(&self, year: i32) -> String {
        format!("{}{}", self.base(year), self.rank.param())
    }

    /// The same without the ranking of the league table.
    fn base(&self, year: i32) -> String {
        let mut q = format!("year={year}");
        let p = self.period.param();
        if !p.is_empty() {
            q.push_str(&format!("&period={p}"));
        }
        q
    }
}

/// The signed-in principal and what it may see, or the answer that replaces the page: the
/// sign-in page, 503, or a 403 page.
async fn gate(
    state: &AppState,
    who: Result<SignedIn, NoSession>,
    lang: Lang,
    here: &str,
) -> Result<(SignedIn, Sees), Response> {
    let who = match who {
        Ok(w) => w,
        Err(NoSession::SignIn) => {
            let next = urlencoding(here);
            return Err(see_other(&with_lang(&format!("/signin?next={next}"), lang)));
        }
        Err(NoSession::Unavailable(e)) => {
            tracing::warn!(error = %e, "a page could not check its session");
            return Err(unavailable(lang));
        }
    };
    match Sees::of(&who.principal) {
        Some(sees) => Ok((who, sees)),
        None => Err(forbidden(state, &who, lang, here)),
    }
}

fn forbidden(state: &AppState, who: &SignedIn, lang: Lang, here: &str) -> Response {
    let csrf = session::csrf_token(&state.session_key, &who.session);
    page(
        StatusCode::FORBIDDEN,
        pages::layout(
            lang,
            "403",
            &ASSETS,
            Some((&who.principal, &csrf)),
            here,
            pages::notice(
                lang.pick("Trang này dành cho Trung tâm điều hành và các sở, ngành có dữ liệu", "This page is for the operations center and the departments whose data it shows"),
                lang.pick("Mã truy cập của bạn không có quyền xem trang này.", "Your access token does not give access to this page."),
            ),
        ),
        true,
    )
}

/// The dashboard for a signed-in principal, or the answer that replaces it.
async fn load(
    state: &AppState,
    who: Result<SignedIn, NoSession>,
    sel: &Selection,
    here: &str,
) -> Result<(SignedIn, data::Dashboard), Response> {
    let (who, sees) = gate(state, who, sel.lang, here).await?;
    let loaded = async {
        let names = names::load(state).await?;
        data::load(
            &state.views,
            names,
            sees,
            sel.year,
            sel.period,
            sel.district.as_deref(),
        )
        .await
    };
    match loaded.await {
        Ok(d) => Ok((who, d)),
        Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => Err(unavailable(sel.lang)),
        Err(e) => Err(e.into_response()),
    }
}

/// How many overdue dossiers the agency page lists (the CSV has them all).
const OVERDUE_SHOWN: usize = 500;

/// `/dashboard/agency/{code}`: the drill-down from the league table.
async fn agency(
    State(state): State<AppState>,
    who: Result<SignedIn, NoSession>,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sel = Selection::of(&q);
    let lang = sel.lang;
    let here = format!("/dashboard/agency/{}", pages::enc(&code));
    let (who, sees) = match gate(&state, who, lang, &here).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    if !sees.services {
        return forbidden(&state, &who, lang, &here);
    }
    let csrf = session::csrf_token(&state.session_key, &who.session);
    let no_such_agency = || {
        page(
            StatusCode::NOT_FOUND,
            pages::layout(
                lang,
                "404",
                &ASSETS,
                Some((&who.principal, &csrf)),
                &here,
                pages::notice(
                    lang.pick("Không có cơ quan này", "No such agency"),
                    lang.pick(
                        "Không có hồ sơ nào của cơ quan này trong dữ liệu.",
                        "No dossier of this agency is in the data.",
                    ),
                ),
            ),
            true,
        )
    };
    if code.len() > 64 {
        return no_such_agency();
    }
    let fetched = async {
        // The list first: it brings the view up to date, so the monthly counts read next
        // agree with it.
        let overdue = state.views.overdue_dossiers(&code).await?;
        let months = data::agency_months(&state.views, &code).await?;
        let names = names::load(&state).await?;
        Ok::<_, crate::error::ApiError>((months, overdue, names))
    };
    let (months, overdue, names) = match fetched.await {
        Ok(x) => x,
        Err(e) if e.status() == StatusCode::SERVICE_UNAVAILABLE => return unavailable(lang),
        Err(e) => return e.into_response(),
    };
    if months.is_empty() {
        return no_such_agency();
    }
    let year = sel
        .year
        .unwrap_or_else(|| months.keys().map(|(y, _)| *y).max().unwrap_or_default());
    let in_year: Vec<(u32, data::AgencyRow)> = months
        .iter()
        .filter(|((y, _), _)| *y == year)
        .map(|((_, m), a)| (*m, a.clone()))
        .collect();
    let overdue = in_period(overdue, year, sel.period);
    let query = sel.query(year);
    let name = names.get("organisation", &code, lang);
    let body = pages::agency(
        (&code, name),
        year,
        sel.period,
        &in_year,
        &overdue,
        OVERDUE_SHOWN,
        lang,
        &query,
    );
    let here = with_lang(&format!("{here}?{query}"), lang);
    page(
        StatusCode::OK,
        pages::layout(
            lang,
            name.unwrap_or(&code),
            &ASSETS,
            Some((&who.principal, &csrf)),
            &here,
            body,
        ),
        true,
    )
}

/// The overdue dossiers received in the period of `year`.
fn in_period(
    list: Vec<kho_query::OverdueDossier>,
    year: i32,
    period: Period,
) -> Vec<kho_query::OverdueDossier> {
    list.into_iter()
        .filter(|o| {
            o.month
                .split_once('-')
                .and_then(|(y, m)| Some((y.parse::<i32>().ok()?, m.parse::<u32>().ok()?)))
                .is_some_and(|(y, m)| y == year && period.holds(m))
        })
        .collect()
}

/// Percent-encodes a path for a query parameter.
fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The entity tag of the panels: the views' versions, the selection, the language and what
/// the principal may see.
fn panels_etag(d: &data::Dashboard, sel: &Selection, who: &SignedIn) -> String {
    let key = format!(
        "{}|{}|{}|{:?}|{}|{:?}",
        d.versions(),
        sel.query(d.year),
        sel.lang.code(),
        sel.district,
        who.principal.role.as_str(),
        who.principal.sector
    );
    format!("\"p-{}\"", short_hash(key.as_bytes()))
}

async fn dashboard(
    State(state): State<AppState>,
    who: Result<SignedIn, NoSession>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sel = Selection::of(&q);
    let here = "/dashboard";
    let (who, d) = match load(&state, who, &sel, here).await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let lang = sel.lang;
    let query = sel.query(d.year);
    let mut live = format!("/dashboard/panels?{query}");
    if let Some(dist) = &sel.district {
        live.push_str(&format!("&district={}", urlencoding(dist)));
    }
    let live = with_lang(&live, lang);
    let etag = panels_etag(&d, &sel, &who);
    let csrf = session::csrf_token(&state.session_key, &who.session);
    let base = sel.base(d.year);
    let body = pages::dashboard(&d, lang, (&query, &base, sel.rank), &live, &etag);
    let here = with_lang(&format!("/dashboard?{query}"), lang);
    page(
        StatusCode::OK,
        pages::layout(
            lang,
            lang.pick("Bảng điều hành", "Dashboard"),
            &ASSETS,
            Some((&who.principal, &csrf)),
            &here,
            body,
        ),
        true,
    )
}

/// `/dashboard/panels`: the panels alone, for the page to swap in; 304 while the views have
/// not changed.
async fn panels(
    State(state): State<AppState>,
    who: Result<SignedIn, NoSession>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let sel = Selection::of(&q);
    if matches!(who, Err(NoSession::SignIn)) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let (who, d) = match load(&state, who, &sel, "/dashboard").await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    let etag = panels_etag(&d, &sel, &who);
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        page(
            StatusCode::OK,
            pages::panels(
                &d,
                sel.lang,
                &sel.query(d.year),
                &sel.base(d.year),
                sel.rank,
            ),
            true,
        )
    };
    resp.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex in quotes"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    resp
}

/// A CSV cell: quoted when needed, and a leading `'` on what a spreadsheet would take for a
/// formula.
fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A CSV header row.
fn header(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| (*c).to_owned()).collect()
}

fn rate_cell(num: i64, den: i64) -> String {
    if den > 0 {
        format!("{:.6}", num as f64 / den as f64)
    } else {
        String::new()
    }
}

/// `/dashboard/export/{panel}.csv`: a panel's figures as CSV (UTF-8 with a byte-order mark,
/// so Excel reads the Vietnamese right; machine-readable numbers).
async fn export(
    State(state): State<AppState>,
    who: Result<SignedIn, NoSession>,
    Path(file): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let sel = Selection::of(&q);
    let Some(panel) = file.strip_suffix(".csv") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let (who, d) = match load(&state, who, &sel, "/dashboard").await {
        Ok(x) => x,
        Err(resp) => return resp,
    };
    // Names beside codes, in the page's language (empty while a code has none).
    let name_of = |list: &str, code: &str| -> String {
        d.names
            .get(list, code, sel.lang)
            .unwrap_or_default()
            .to_owned()
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    match panel {
        "agencies" => {
            rows.push(header(&[
                "agency_code",
                "agency_name",
                "received",
                "received_online",
                "online_rate",
                "resolved",
                "resolved_on_time",
                "on_time_rate",
                "pending_overdue",
            ]));
            for a in &d.agencies {
                rows.push(vec![
                    a.code.clone(),
                    name_of("organisation", &a.code),
                    a.received.to_string(),
                    a.online.to_string(),
                    rate_cell(a.online, a.received),
                    a.resolved.to_string(),
                    a.on_time.to_string(),
                    rate_cell(a.on_time, a.resolved),
                    a.pending_overdue.to_string(),
                ]);
            }
        }
        "districts" => {
            rows.push(header(&[
                "district_code",
                "district_name",
                "projects",
                "allocated_vnd",
                "disbursed_vnd",
                "disbursement_rate",
            ]));
            for x in &d.districts {
                rows.push(vec![
                    x.code.clone(),
                    name_of("district", &x.code),
                    x.projects.to_string(),
                    x.allocated.to_string(),
                    x.disbursed.to_string(),
                    rate_cell(x.disbursed, x.allocated),
                ]);
            }
        }
        "projects" => {
            rows.push(header(&[
                "project_code",
                "project_name",
                "district_code",
                "district_name",
                "status",
                "allocated_vnd",
                "disbursed_vnd",
                "disbursement_rate",
            ]));
            for p in &d.projects {
                rows.push(vec![
                    p.code.clone(),
                    p.name.clone().unwrap_or_default(),
                    p.district.clone().unwrap_or_default(),
                    p.district
                        .as_deref()
                        .map(|c| name_of("district", c))
                        .unwrap_or_default(),
                    p.status.clone().unwrap_or_default(),
                    p.allocated.to_string(),
                    p.disbursed.to_string(),
                    rate_cell(p.disbursed, p.allocated),
                ]);
            }
        }
        "overdue" => {
            let Some(agency) = q.get("agency").filter(|a| !a.is_empty() && a.len() <= 64) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            if !Sees::of(&who.principal).is_some_and(|s| s.services) {
                return StatusCode::NOT_FOUND.into_response();
            }
            let list = match state.views.overdue_dossiers(agency).await {
                Ok(list) => in_period(list, d.year, d.period),
                Err(e) => return crate::error::ApiError::from(e).into_response(),
            };
            rows.push(header(&[
                "entity_id",
                "agency_code",
                "procedure_code",
                "month",
                "received_at",
                "due_at",
            ]));
            for o in list {
                rows.push(vec![
                    o.entity_id,
                    o.agency_code,
                    o.procedure_code.unwrap_or_default(),
                    o.month,
                    o.received_at.with_timezone(&format::local()).to_rfc3339(),
                    o.due_at.with_timezone(&format::local()).to_rfc3339(),
                ]);
            }
        }
        id => {
            let Some(t) = d.tiles.iter().find(|t| t.id == id) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            rows.push(header(&["period", "value", "target"]));
            let target = t.target.map(|t| format!("{t:.6}")).unwrap_or_default();
            rows.push(vec![
                format!("{} {}", d.year, d.period.param()).trim().to_owned(),
                t.value
                    .rate()
                    .map(|r| format!("{r:.6}"))
                    .unwrap_or_default(),
                target.clone(),
            ]);
            for (label, v) in &t.trend {
                rows.push(vec![
                    label.clone(),
                    v.map(|r| format!("{r:.6}")).unwrap_or_default(),
                    target.clone(),
                ]);
            }
        }
    }
    let mut body = String::from("\u{feff}");
    for r in rows {
        body.push_str(&r.iter().map(|c| csv_cell(c)).collect::<Vec<_>>().join(","));
        body.push_str("\r\n");
    }
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&format!(
            "attachment; filename=\"kho-{panel}-{}.csv\"",
            d.year
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    resp
}

/// The embedded stylesheet and script.
async fn asset(Path(file): Path<String>) -> Response {
    let (body, ct) = match file.as_str() {
        "kho.css" => (CSS, "text/css; charset=utf-8"),
        "kho.js" => (JS, "text/javascript; charset=utf-8"),
        "kho.svg" => (ICON, "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}
