//! Who is calling, decided in this order:
//!
//! 1. A federation key (`X-NVR-Auth: <key>` or `Authorization: Bearer <key>`) makes a peer: a
//!    valid key reaches only the read-only federation routes (403 elsewhere), a wrong or revoked
//!    one is 401 whatever else the request carries, and an address that keeps failing is
//!    refused (429) for a while.
//! 2. A `?token=` media token opens one camera's media (the handler checks it) and nothing
//!    else; the token alone decides, whatever session comes along.
//! 3. A session cookie makes a user; changes (anything but GET/HEAD/OPTIONS) must also carry
//!    the session's CSRF token in `X-CSRF-Token` and come from this node's own origin (403
//!    otherwise).
//! 4. `Authorization: Basic` (scripts, `curl -u`) makes a user; the argon2 check is cached by
//!    the header's hash. Never challenged with `WWW-Authenticate`, so browsers never keep Basic
//!    credentials around for a forged cross-site request; changes sent with an `Origin` other
//!    than this host are refused all the same.
//! 5. Anything else is anonymous and reaches only [`public_route`]s (401 elsewhere).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::accounts::Login;
use crate::federation::keys::Verdict;
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A person logged in with a session cookie or Basic credentials: reaches everything.
    User {
        name: String,
    },
    /// No credentials: public routes only.
    Anonymous,
    Peer {
        key_id: String,
    },
    /// A media request carrying `?token=`: the handler checks it against its camera.
    Token(String),
}

/// The address a request came from (for throttling), put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Routes a media token may open (the handler decides which camera and kind), matched
/// segment by segment: `/api/cameras/live` is a camera called "live", not its live video.
pub(super) fn media_route(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(
        parts.as_slice(),
        ["", "api", "cameras", id, "live"]
            | ["", "api", "recordings", id, "view.mp4" | "frame.jpg" | "replay.mjpeg"]
            | ["", "api", "segments", id]
            if !id.is_empty()
    )
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

/// What a request without credentials may reach: logging in, the first-start setup, the web
/// UI's own files, media opened by tokens (checked by their handlers, like CartaNVR's segment
/// paths that carry their token), and pairing, which a remote node calls before it holds a key.
/// `/api/health` is not public: it names cameras, peers and the disk's contents.
pub fn public_route(method: &Method, path: &str) -> bool {
    let read = method == Method::GET || method == Method::HEAD;
    match path {
        "/api/session" => read || method == Method::POST,
        "/api/setup" => method == Method::POST,
        // Pairing: a remote node asks to pair and collects its key before it has any
        // credentials here; those handlers do their own checks (throttle, code, secret). The
        // admin's pairing routes share the prefix, so the collect path is matched whole.
        "/api/federation/pair" => method == Method::POST,
        p if pair_collect(p) => method == Method::POST,
        "/" => read,
        p if p.starts_with("/assets/") => read,
        p => read && cartanvr_file(p),
    }
}

/// `/api/federation/pair/{id}/collect`, and nothing longer or shorter.
fn pair_collect(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(parts.as_slice(), ["", "api", "federation", "pair", id, "collect"] if !id.is_empty() && *id != "requests")
}

/// `/api/recordings/{camera}/{segment}-{token}.mp4`: opened by the token in its own path.
fn cartanvr_file(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    matches!(parts.as_slice(), ["", "api", "recordings", _, f] if *f != "view.mp4")
}

/// Logging in and the first-start setup prove themselves with a password or the link's secret;
/// a leftover session cookie does not make them need a CSRF token.
fn credential_route(method: &Method, path: &str) -> bool {
    method == Method::POST && matches!(path, "/api/session" | "/api/setup")
}

fn is_change(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a browser sent this from a page of another origin (its `Origin` is not this host).
fn cross_origin(h: &HeaderMap) -> bool {
    let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    origin_host.is_none() || origin_host != host
}

fn unauthorized(msg: &str) -> Response {
    ApiError(StatusCode::UNAUTHORIZED, msg.into()).into_response()
}

fn forbidden(msg: &str) -> Response {
    ApiError(StatusCode::FORBIDDEN, msg.into()).into_response()
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
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    req.extensions_mut().insert(ClientIp(from));
    let Some(secret) = presented_key(req.headers()) else {
        let caller = match who(&st, req.method(), req.uri(), req.headers(), from).await {
            Ok(c) => c,
            Err(res) => return res,
        };
        if caller == Caller::Anonymous && !public_route(req.method(), req.uri().path()) {
            return unauthorized("log in first (a session, or HTTP Basic credentials)");
        }
        req.extensions_mut().insert(caller);
        return next.run(req).await;
    };
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

/// The caller of a request without a federation key (steps 2 to 5 above), or the refusal.
async fn who(
    st: &Arc<AppState>,
    method: &Method,
    uri: &axum::http::Uri,
    h: &HeaderMap,
    from: IpAddr,
) -> Result<Caller, Response> {
    if let Some(t) = query_token(uri) {
        let read = method == Method::GET || method == Method::HEAD;
        if !read || !media_route(uri.path()) {
            return Err(unauthorized(
                "media tokens open live video and recordings only, to read",
            ));
        }
        return Ok(Caller::Token(t));
    }
    if let Some(id) = super::cookie::session_cookie(h, &st.session_cookie) {
        if let Some(s) = st.accounts.sessions.get(&id) {
            if is_change(method) && !credential_route(method, uri.path()) {
                let sent = h.get("x-csrf-token").map(|v| v.as_bytes()).unwrap_or(b"");
                if !bool::from(sent.ct_eq(s.csrf.as_bytes())) {
                    return Err(forbidden("missing or wrong X-CSRF-Token (reload the page)"));
                }
                // Browsers share cookies between the ports of a host, and CORS may let a
                // peer's page read the token: changes come from this node's own page only.
                if cross_origin(h) {
                    return Err(forbidden("changes come from this node's own page"));
                }
            }
            return Ok(Caller::User { name: s.user });
        }
        // An ended or expired session: anonymous (the login page still loads).
    }
    if let Some(v) = h.get(header::AUTHORIZATION) {
        let v = v.to_str().unwrap_or("");
        return match st.accounts.basic(v, from).await {
            Login::Valid(name) if is_change(method) && cross_origin(h) => {
                tracing::warn!(%name, %from, "refused a cross-origin change with Basic credentials");
                Err(forbidden(
                    "changes with Basic credentials come from this node's own origin",
                ))
            }
            Login::Valid(name) => Ok(Caller::User { name }),
            Login::Throttled => Err(ApiError(
                StatusCode::TOO_MANY_REQUESTS,
                "too many wrong passwords from this address; try again in a minute".into(),
            )
            .into_response()),
            Login::Invalid => Err(unauthorized("wrong user name or password")),
        };
    }
    Ok(Caller::Anonymous)
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
        assert!(media_route("/api/recordings/x/frame.jpg"));
        assert!(media_route("/api/recordings/x/replay.mjpeg"));
        assert!(media_route("/api/segments/3.mp4"));
        assert!(!media_route("/api/cameras/x"));
        assert!(!media_route("/api/recordings"));
        // A camera whose id is "live" or "view.mp4" is not media.
        assert!(!media_route("/api/cameras/live"));
        assert!(!media_route("/api/recordings/view.mp4"));
        assert!(!media_route("/api/recordings/x/y.mp4"));
        assert!(!media_route("/api/segments/"));
        assert!(!media_route("/api/cameras/x/y/live"));
        let uri: axum::http::Uri = "/a?b=1&token=5.ab%2B".parse().unwrap();
        assert_eq!(query_token(&uri).as_deref(), Some("5.ab+"));
    }

    #[test]
    fn only_login_setup_ui_pairing_and_token_media_are_public() {
        let (get, post, put) = (Method::GET, Method::POST, Method::PUT);
        for (m, p) in [
            (&get, "/"),
            (&get, "/assets/0123abcd/app.js"),
            (&get, "/api/session"),
            (&post, "/api/session"),
            (&post, "/api/setup"),
            (&post, "/api/federation/pair"),
            (&post, "/api/federation/pair/ab12/collect"),
            (&get, "/api/recordings/demo/12-5.abc.mp4"),
        ] {
            assert!(public_route(m, p), "{m} {p}");
        }
        for (m, p) in [
            (&get, "/api/health"),
            (&get, "/api/cameras"),
            (&post, "/api/cameras"),
            (&get, "/api/recordings"),
            (&get, "/api/recordings/demo/view.mp4"),
            (&get, "/api/federation/keys"),
            (&get, "/api/system/nodes/x/media/segments/1.mp4"),
            (&put, "/api/account/password"),
            (&put, "/api/session"),
            (&get, "/api/federation/pair/ab12/collect"),
            (&post, "/api/federation/pair/requests/ab12/approve"),
            (&post, "/api/federation/pair/requests/ab12/collect"),
            (&post, "/api/federation/pair/x/y/collect"),
            (&post, "/api/federation/pair//collect"),
            (&post, "/"),
        ] {
            assert!(!public_route(m, p), "{m} {p}");
        }
    }

    #[test]
    fn cross_origin_is_judged_by_origin_against_host() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "10.0.0.2:8080".parse().unwrap());
        assert!(!cross_origin(&h), "no Origin: not a browser page");
        h.insert(header::ORIGIN, "http://10.0.0.2:8080".parse().unwrap());
        assert!(!cross_origin(&h));
        h.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(cross_origin(&h));
        h.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(cross_origin(&h));
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
