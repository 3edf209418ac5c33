//! Who is calling. A request presenting a federation key (`X-NVR-Auth: <key>` or
//! `Authorization: Bearer <key>`) is a peer: a valid key reaches only the read-only federation
//! routes (403 elsewhere), a wrong or revoked one is 401 whatever else the request carries, and
//! an address that keeps failing is refused (429) for a while. A request without a key is a
//! local caller; until accounts exist (the web UI issue) it reaches everything, as before.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::federation::keys::Verdict;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Local,
    Peer {
        key_id: String,
    },
    /// A media request carrying `?token=`: the handler checks it against its camera.
    Token(String),
}

/// Routes a media token may open (the handler decides which camera and kind).
pub(super) fn media_route(path: &str) -> bool {
    (path.starts_with("/api/cameras/") && path.ends_with("/live"))
        || (path.starts_with("/api/recordings/") && path.ends_with("/view.mp4"))
        || path.starts_with("/api/segments/")
}

fn query_token(uri: &axum::http::Uri) -> Option<String> {
    url::form_urlencoded::parse(uri.query()?.as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
}

/// The federation key a request presents, if any.
fn presented_key(h: &HeaderMap) -> Option<String> {
    if let Some(v) = h.get("x-nvr-auth") {
        return Some(v.to_str().unwrap_or("").trim().to_string());
    }
    let auth = h.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = auth.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim().to_string())
}

/// What a federation key may reach: reading cameras, health and recordings.
fn peer_may(method: &Method, path: &str) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    let route = matches!(
        path,
        "/api/cameras" | "/api/health" | "/api/recordings" | "/api/maintenance/health"
    ) || path.starts_with("/api/cameras/")
        || path.starts_with("/api/playback/")
        || path.starts_with("/api/recordings/")
        || path.starts_with("/api/segments/");
    read && route
}

pub async fn authenticate(
    State(st): State<Arc<AppState>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(secret) = presented_key(req.headers()) else {
        let caller = match query_token(req.uri()) {
            Some(t) if media_route(req.uri().path()) => Caller::Token(t),
            Some(_) => {
                return ApiError(
                    StatusCode::UNAUTHORIZED,
                    "media tokens open live video and recordings only".into(),
                )
                .into_response();
            }
            None => Caller::Local,
        };
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    };
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let keys = st.keys.clone();
    let verdict = tokio::task::spawn_blocking(move || keys.verify(&secret, from))
        .await
        .unwrap_or(Verdict::Invalid);
    match verdict {
        Verdict::Throttled => ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed federation keys from this address; try again in a minute".into(),
        )
        .into_response(),
        Verdict::Invalid => ApiError(
            StatusCode::UNAUTHORIZED,
            "unknown or revoked federation key".into(),
        )
        .into_response(),
        Verdict::Valid { key_id } => {
            if !peer_may(req.method(), req.uri().path()) {
                return ApiError(
                    StatusCode::FORBIDDEN,
                    "a federation key only reads cameras, health and recordings".into(),
                )
                .into_response();
            }
            req.extensions_mut().insert(Caller::Peer { key_id });
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_from_either_header() {
        let mut h = HeaderMap::new();
        assert_eq!(presented_key(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc ".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(presented_key(&h), None);
        h.insert("x-nvr-auth", "k1".parse().unwrap());
        assert_eq!(presented_key(&h).as_deref(), Some("k1"));
    }

    #[test]
    fn tokens_only_open_media_routes() {
        assert!(media_route("/api/cameras/x/live"));
        assert!(media_route("/api/recordings/x/view.mp4"));
        assert!(media_route("/api/segments/3.mp4"));
        assert!(!media_route("/api/cameras/x"));
        assert!(!media_route("/api/recordings"));
        let uri: axum::http::Uri = "/a?b=1&token=5.ab%2B".parse().unwrap();
        assert_eq!(query_token(&uri).as_deref(), Some("5.ab+"));
    }

    #[test]
    fn peers_only_read() {
        assert!(peer_may(&Method::GET, "/api/cameras"));
        assert!(peer_may(&Method::GET, "/api/recordings/x/view.mp4"));
        assert!(!peer_may(&Method::POST, "/api/cameras"));
        assert!(!peer_may(&Method::DELETE, "/api/cameras/x"));
        assert!(!peer_may(&Method::GET, "/api/federation/keys"));
        assert!(!peer_may(&Method::GET, "/api/camerasx"));
    }
}
