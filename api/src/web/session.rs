//! Web sessions: a token exchanged once, on the sign-in page, for a signed cookie.
//!
//! The cookie `kho_session` reads `<token id>.<expiry, unix seconds>.<MAC>`: the MAC is an
//! HMAC-SHA256 under a key kept in the store (`system/keys/session`, the same for every
//! process), so any process can check it and nobody can forge or extend one. It holds the
//! token's id, never its secret; each request looks the id up in the governance state (at most
//! [`kho_catalog::FRESH_WITHIN`] old), so revoking the token ends its sessions everywhere.
//! The cookie is `HttpOnly`, `SameSite=Strict`, `Path=/`, expires after
//! [`SESSION_HOURS`], and is `Secure` when kho is served over TLS (`--public-url https://…`).
//!
//! Requests that change something (signing in, signing out) carry a CSRF token in the form:
//! an HMAC of the session cookie (or, before sign-in, of a random pre-session cookie), checked
//! in constant time, and must come from kho's own pages (`Sec-Fetch-Site` or `Origin`).

use axum::extract::FromRequestParts;
use axum::http::header::{COOKIE, HOST, ORIGIN};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use kho_catalog::{Principal, Role};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::state::AppState;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "kho_session";
/// The pre-session cookie the sign-in form's CSRF token is bound to.
pub(crate) const PRE_COOKIE: &str = "kho_pre";
/// How long a session lasts: a working day.
pub(crate) const SESSION_HOURS: i64 = 10;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], parts: &[&str]) -> String {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p.as_bytes());
        m.update(b"\x1f");
    }
    hex::encode(m.finalize().into_bytes())
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A new session cookie's value for a token id.
pub(crate) fn new_session(key: &[u8], token_id: &str) -> String {
    let expires = Utc::now().timestamp() + SESSION_HOURS * 3600;
    let expires = expires.to_string();
    let m = mac(key, &["session", token_id, &expires]);
    format!("{token_id}.{expires}.{m}")
}

/// The token id a session cookie names, if its MAC holds and it has not expired.
pub(crate) fn check_session(key: &[u8], value: &str) -> Option<String> {
    let mut it = value.splitn(3, '.');
    let (id, expires, m) = (it.next()?, it.next()?, it.next()?);
    if !same(&mac(key, &["session", id, expires]), m) {
        return None;
    }
    let expires: i64 = expires.parse().ok()?;
    (expires > Utc::now().timestamp()).then(|| id.to_owned())
}

/// The CSRF token of a form served to the holder of cookie value `bound_to`.
pub(crate) fn csrf_token(key: &[u8], bound_to: &str) -> String {
    mac(key, &["csrf", bound_to])[..32].to_owned()
}

/// Does `token` belong to the holder of `bound_to`?
pub(crate) fn csrf_ok(key: &[u8], bound_to: &str, token: &str) -> bool {
    same(&csrf_token(key, bound_to), token)
}

/// A cookie's value from the request.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Did the request come from one of kho's own pages? Browsers say so in `Sec-Fetch-Site`;
/// older ones send `Origin`, which must name the host the request was sent to.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (
        headers.get(ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        // Neither header: not a browser's cross-site form (those send Origin).
        (None, _) => true,
        (Some(_), None) => false,
    }
}

/// The `Set-Cookie` value of a cookie, with the attributes every kho cookie has.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    ))
    .expect("cookie values are hex and dots")
}

/// Is kho served over TLS (cookies get `Secure`)?
pub(crate) fn secure(state: &AppState) -> bool {
    state
        .config
        .public_url
        .as_deref()
        .is_some_and(|u| u.starts_with("https://"))
}

/// Who is signed in, for a page: a live token's principal behind a valid session cookie.
#[derive(Debug, Clone)]
pub(crate) struct SignedIn {
    pub(crate) principal: Principal,
    /// The cookie's value: what the page's CSRF tokens are bound to.
    pub(crate) session: String,
}

/// Why a page could not be shown to its caller.
#[derive(Debug)]
pub(crate) enum NoSession {
    /// No cookie, a forged or expired one, or one of a revoked token: sign in.
    SignIn,
    /// The governance state could not be checked (the store failed).
    Unavailable(String),
}

impl axum::response::IntoResponse for NoSession {
    /// What a route that needs a session answers without one (the pages handle it
    /// themselves: they send to the sign-in page).
    fn into_response(self) -> axum::response::Response {
        match self {
            NoSession::SignIn => axum::http::StatusCode::UNAUTHORIZED.into_response(),
            NoSession::Unavailable(_) => {
                axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
            }
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = NoSession;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NoSession> {
        let value = cookie(&parts.headers, COOKIE_NAME).ok_or(NoSession::SignIn)?;
        let id = check_session(&state.session_key, value).ok_or(NoSession::SignIn)?;
        match state.governance.principal_by_id(&id).await {
            Ok(principal) if principal.role != Role::Admin => Ok(SignedIn {
                principal,
                session: value.to_owned(),
            }),
            Ok(_) => Err(NoSession::SignIn),
            Err(kho_catalog::CatalogError::Store(e)) => Err(NoSession::Unavailable(e.to_string())),
            Err(_) => Err(NoSession::SignIn),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_cannot_be_forged_extended_or_moved() {
        let key = b"0123456789abcdef0123456789abcdef";
        let s = new_session(key, "abc");
        assert_eq!(check_session(key, &s).as_deref(), Some("abc"));
        assert_eq!(check_session(b"another key", &s), None);
        let (id, rest) = s.split_once('.').unwrap();
        assert_eq!(id, "abc");
        let (expires, m) = rest.split_once('.').unwrap();
        let later = expires.parse::<i64>().unwrap() + 3600;
        assert_eq!(check_session(key, &format!("abc.{later}.{m}")), None);
        assert_eq!(check_session(key, &format!("abd.{expires}.{m}")), None);
        let past = Utc::now().timestamp() - 1;
        let expired = format!(
            "abc.{past}.{}",
            mac(key, &["session", "abc", &past.to_string()])
        );
        assert_eq!(check_session(key, &expired), None);
        assert_eq!(check_session(key, "garbage"), None);
    }

    #[test]
    fn csrf_tokens_are_bound_to_their_cookie() {
        let key = b"k";
        let t = csrf_token(key, "cookie-a");
        assert!(csrf_ok(key, "cookie-a", &t));
        assert!(!csrf_ok(key, "cookie-b", &t));
        assert!(!csrf_ok(key, "cookie-a", ""));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h));
        let mut h = HeaderMap::new();
        h.insert(HOST, HeaderValue::from_static("kho.example"));
        h.insert(ORIGIN, HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&h));
        h.insert(ORIGIN, HeaderValue::from_static("https://kho.example"));
        assert!(same_origin(&h));
    }
}
