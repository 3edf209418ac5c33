//! CORS: which other origins' pages may call this node, and how.
//!
//! - Only origins in `http.cors_origins` (the admin named them in the config) may make
//!   credentialed requests: their `Origin` is echoed with `Access-Control-Allow-Credentials`.
//!   Origins are compared whole (scheme, host, port), never by prefix or substring.
//! - Registered remote nodes' pages get nothing more than strangers: a peer's page needs no
//!   credentials here (its node reads this one with a federation key, and its browser fetches
//!   media with tokens), and with the admin's cookie it could otherwise read what only the admin
//!   may (the CSRF token, keys, camera sources). So a turned peer's page reads nothing.
//! - Token-authenticated media (live, views, segments) may be fetched from any origin without
//!   credentials: those answers carry `Access-Control-Allow-Origin: *` (see `open_cors`), and
//!   their routes answer a preflight the same way ([`token_preflight`]).
//! - Any other cross-origin request gets no CORS headers, and its preflight is refused (403).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::base::names::origin_of_url;

/// Methods and headers a credentialed origin may use.
const ALLOW_METHODS: &str = "GET, HEAD, POST, PUT, DELETE";
const ALLOW_HEADERS: &str =
    "content-type, x-csrf-token, x-nvr-auth, authorization, range, if-range";
/// What an answer lets a page read beyond the always-safe headers.
pub const EXPOSE_HEADERS: &str = "content-length, content-range, accept-ranges, etag, x-codec";
/// How long a browser may cache a preflight answer.
const MAX_AGE: &str = "600";

/// Whether `origin` is this node as the request addressed it (same-origin requests also carry
/// `Origin` on POST; they need no CORS).
fn is_same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    ["http", "https"]
        .iter()
        .any(|s| origin_of_url(&format!("{s}://{host}")).as_deref() == Some(origin))
}

/// Whether pages of `origin` may make credentialed requests here: the configured origins only.
fn credentialed(st: &AppState, origin: &str) -> bool {
    st.cors_origins.iter().any(|o| o == origin)
}

pub async fn cors(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let Some(raw) = req.headers().get(header::ORIGIN) else {
        return next.run(req).await;
    };
    // `null`, or anything that is not an origin, is a stranger.
    let origin = raw.to_str().ok().and_then(origin_of_url);
    if origin
        .as_deref()
        .is_some_and(|o| is_same_origin(o, req.headers()))
    {
        return next.run(req).await;
    }
    let allowed = match &origin {
        Some(o) => credentialed(&st, o),
        None => false,
    };
    let origin = origin.unwrap_or_else(|| "this origin".into());
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut res = if allowed {
            let mut res = StatusCode::NO_CONTENT.into_response();
            allow_credentialed(res.headers_mut(), &origin);
            let h = res.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            res
        } else {
            // Any other origin: only a route that declares a preflight of its own (token
            // media, see `token_preflight`) answers it.
            let res = next.run(req).await;
            if res.status().is_success() {
                res
            } else {
                ApiError(
                    StatusCode::FORBIDDEN,
                    format!("pages of {origin} may not call this node (not in http.cors_origins)"),
                )
                .into_response()
            }
        };
        let h = res.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static(MAX_AGE),
        );
        h.append(header::VARY, HeaderValue::from_static("origin"));
        return res;
    }
    let mut res = next.run(req).await;
    if allowed {
        allow_credentialed(res.headers_mut(), &origin);
    }
    res.headers_mut()
        .append(header::VARY, HeaderValue::from_static("origin"));
    res
}

/// The CORS preflight of a token media request, which pages of any origin may make without
/// credentials: the [`Access::Media`](super::auth::Access::Media) routes declare it beside their
/// GET ([`super::routes`]). Anything but a preflight to read is 405.
pub async fn token_preflight(headers: HeaderMap) -> Response {
    let wants_read = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .is_some_and(|m| m == "GET" || m == "HEAD");
    if !wants_read {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("range, if-range"),
    );
    res
}

fn allow_credentialed(h: &mut HeaderMap, origin: &str) {
    let Ok(v) = HeaderValue::from_str(origin) else {
        return;
    };
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_origin_compares_whole() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "10.0.0.2:8080".parse().unwrap());
        assert!(is_same_origin("http://10.0.0.2:8080", &h));
        assert!(!is_same_origin("http://10.0.0.2:8081", &h));
        assert!(!is_same_origin("http://10.0.0.2:8080.evil.example", &h));
    }
}
