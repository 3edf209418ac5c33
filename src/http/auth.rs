//! Who is calling, and whether they may call this route.
//!
//! A route's access is declared once, by the sub-router that holds it ([`super::routes`]), as
//! an [`Access`] level; its [`Gate`] is that sub-router's layer. Nothing here looks at the path.
//! The caller is decided in this order:
//!
//! 1. A federation key (`X-NVR-Auth: <key>` or `Authorization: Bearer <key>`) makes a peer: a
//!    valid key reads only routes whose level admits peers (403 elsewhere, and for any
//!    change), a wrong or revoked one is 401 whatever else the request carries, and an address
//!    that keeps failing is refused (429) for a while.
//! 2. A `?token=` media token makes a token caller, on [`Access::Media`] routes and to read
//!    only (401 elsewhere); the handler checks it is for its camera and kind, and the token
//!    alone decides, whatever session comes along.
//! 3. A session cookie makes a user; changes (anything but GET/HEAD/OPTIONS) must also carry
//!    the session's CSRF token in `X-CSRF-Token` and come from this node's own origin (403
//!    otherwise), except on [`Access::Login`] routes, whose password or secret is the proof.
//! 4. `Authorization: Basic` (scripts, `curl -u`) makes a user; the argon2 check is cached by
//!    the header's hash. Never challenged with `WWW-Authenticate`, so browsers never keep Basic
//!    credentials around for a forged cross-site request; changes sent with an `Origin` other
//!    than this host are refused all the same.
//! 5. Anything else is anonymous and reaches only levels that admit anyone (401 elsewhere).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::RequestExt;
use axum::extract::{ConnectInfo, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

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
    /// No credentials: only routes whose [`Access`] admits anyone.
    Anonymous,
    Peer {
        key_id: String,
    },
    /// A media request carrying `?token=`: the handler checks it against its camera.
    Token(String),
}

impl Caller {
    /// The federation key this caller's request stands on: a peer's, or the one a media token
    /// was issued under. Revoking it ends the request's stream; tokens issued for this caller
    /// carry it.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            Caller::Peer { key_id } => Some(key_id),
            Caller::Token(t) => crate::federation::tokens::MediaTokens::key_of(t),
            Caller::User { .. } | Caller::Anonymous => None,
        }
    }
}

/// The address a request came from (for throttling), put in every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// Who may call a route. Each sub-router of [`super::routes`] declares its routes at one level
/// and checks it with its [`Gate`]; unknown paths and methods are at [`Access::User`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone, without credentials: the web UI, who-am-I, and pairing, which a remote node
    /// calls before it holds a key (its handlers do their own checks: throttle, code, secret).
    Public,
    /// Anyone: logging in and the first-start setup, whose handlers check a password or the
    /// setup link's secret, so a leftover session cookie needs no CSRF token here.
    Login,
    /// Anyone, peers included, to read: CartaNVR's segment files, each opened by the media
    /// token in its own path (its handler checks it).
    PathToken,
    /// Users, and peers to read: cameras, health and recordings listings.
    PeerRead,
    /// Users, peers to read, and `?token=` media tokens to read (the handler checks the token
    /// against its camera and kind): live video and recorded media.
    Media,
    /// Logged-in users only: everything that changes or administers the node.
    User,
}

impl Access {
    fn admits_anonymous(self) -> bool {
        matches!(self, Access::Public | Access::Login | Access::PathToken)
    }

    fn admits_peers(self) -> bool {
        matches!(self, Access::PathToken | Access::PeerRead | Access::Media)
    }

    pub(super) fn admits_tokens(self) -> bool {
        self == Access::Media
    }

    /// Whether a session's changes need the CSRF token.
    fn needs_csrf(self) -> bool {
        self != Access::Login
    }
}

/// A sub-router's access check: the state and the level its routes are declared at.
#[derive(Clone)]
pub struct Gate {
    st: Arc<AppState>,
    access: Access,
}

impl Gate {
    /// The check of routes declared at `access`; its layer is
    /// `middleware::from_fn_with_state(gate, authenticate)`.
    pub fn new(st: &Arc<AppState>, access: Access) -> Self {
        Self {
            st: st.clone(),
            access,
        }
    }
}

/// Refusal messages, one per rule above.
const LOG_IN_FIRST: &str = "log in first (a session, or HTTP Basic credentials)";
const PEERS_ONLY_READ: &str = "a federation key only reads cameras, health and recordings";
const TOKENS_ONLY_MEDIA: &str = "media tokens open live video and recordings only, to read";
/// A login refused by the budgets shared by all addresses ([`crate::accounts::users`]).
pub(super) const BUSY: &str = "too many wrong passwords lately; try again in a few seconds (an address with no failures is let through)";

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

fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
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

/// Decides who calls (steps 1 to 5 above) and whether routes declared at the gate's level
/// admit them; the admitted request goes on with its [`Caller`] and [`ClientIp`] in its
/// extensions.
///
/// A route matched with an empty parameter (`/api/federation/pair//collect`) is no route: it
/// is answered as an unknown path is, at the [`Access::User`] level.
pub async fn authenticate(
    State(Gate { st, access }): State<Gate>,
    mut req: Request,
    next: Next,
) -> Response {
    let from = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    req.extensions_mut().insert(ClientIp(from));
    let unrouted = req
        .extract_parts::<RawPathParams>()
        .await
        .is_ok_and(|p| p.iter().any(|(_, v)| v.is_empty()));
    let access = if unrouted { Access::User } else { access };
    let caller = match presented_key(req.headers()) {
        Some(secret) => peer(&st, access, req.method(), secret, from).await,
        None => who(&st, access, req.method(), req.uri(), req.headers(), from).await,
    };
    match caller {
        Err(refused) => refused,
        Ok(Caller::Anonymous) if !access.admits_anonymous() => unauthorized(LOG_IN_FIRST),
        Ok(_) if unrouted => ApiError::not_found("no such endpoint").into_response(),
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
    }
}

/// The peer presenting federation key `secret` (step 1 above), or the refusal.
async fn peer(
    st: &Arc<AppState>,
    access: Access,
    method: &Method,
    secret: String,
    from: IpAddr,
) -> Result<Caller, Response> {
    let keys = st.keys.clone();
    let verdict = tokio::task::spawn_blocking(move || keys.verify(&secret, from))
        .await
        .unwrap_or(Verdict::Invalid);
    match verdict {
        Verdict::Throttled => Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed federation keys from this address; try again in a minute".into(),
        )
        .into_response()),
        Verdict::Invalid => Err(unauthorized("unknown or revoked federation key")),
        Verdict::Valid { .. } if !(access.admits_peers() && is_read(method)) => {
            Err(forbidden(PEERS_ONLY_READ))
        }
        Verdict::Valid { key_id } => Ok(Caller::Peer { key_id }),
    }
}

/// The caller of a request without a federation key (steps 2 to 5 above), or the refusal.
async fn who(
    st: &Arc<AppState>,
    access: Access,
    method: &Method,
    uri: &axum::http::Uri,
    h: &HeaderMap,
    from: IpAddr,
) -> Result<Caller, Response> {
    if let Some(t) = query_token(uri) {
        if !(access.admits_tokens() && is_read(method)) {
            return Err(unauthorized(TOKENS_ONLY_MEDIA));
        }
        return Ok(Caller::Token(t));
    }
    if let Some(id) = super::cookie::session_cookie(h, &st.session_cookie) {
        if let Some(s) = st.accounts.sessions.get(&id) {
            if is_change(method) && access.needs_csrf() {
                let sent = h.get("x-csrf-token").map(|v| v.as_bytes()).unwrap_or(b"");
                if !crate::base::secret::same(sent, s.csrf.as_bytes()) {
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
            Login::Busy => {
                Err(ApiError(StatusCode::TOO_MANY_REQUESTS, BUSY.into()).into_response())
            }
            Login::Invalid => Err(unauthorized("wrong user name or password")),
        };
    }
    Ok(Caller::Anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    use axum::body::Body;
    use tower::ServiceExt;

    /// A node as `eyrie run` builds it (no cameras, no peers, nothing started), in `dir`.
    fn node(dir: &std::path::Path) -> Arc<AppState> {
        use crate::storage::{Index, Layout, retention};
        let layout = Layout::new(dir);
        let index = Arc::new(Index::open(&layout.db_path()).unwrap());
        let retention = retention::Retention::new(
            index.clone(),
            layout.clone(),
            retention::RetentionConfig {
                budget: None,
                min_free: 0,
                protected_share: 0.25,
            },
        )
        .unwrap();
        let events =
            crate::events::EventLog::open(index.clone(), layout.clone(), retention.clone())
                .unwrap();
        let recorder = crate::recorder::Recorder::new(
            index.clone(),
            layout.clone(),
            crate::media::segmenter::SegmenterConfig {
                segment_target: crate::media::segmenter::SegmentTarget::new(Duration::from_secs(
                    60,
                )),
                fragment_max: Duration::from_secs(1),
                sync_interval: Duration::from_secs(1),
            },
            retention.clone(),
            Arc::new(events.clone()),
        );
        let peers = crate::federation::peers::Peers::new(
            index.clone(),
            crate::federation::peers::PollConfig {
                interval: Duration::from_secs(60),
                timeout: Duration::from_secs(1),
            },
        );
        let keys = crate::federation::keys::KeyStore::load(index.clone()).unwrap();
        let notices = Arc::new(crate::discovery::events::Hub::default());
        let link = crate::discovery::link::Linker::new(
            keys.clone(),
            index.clone(),
            peers.clone(),
            notices.clone(),
            crate::discovery::link::Me {
                node_id: index.node_id().to_string(),
                label: "test".into(),
                https: false,
                port: 8080,
                tls_fingerprint: None,
            },
            Duration::from_secs(1),
            Duration::from_secs(60),
        );
        let system = crate::system::System::load(crate::config::SystemConfig {
            boot_env: dir.join("no-boot.env"),
            ab_file: dir.join("no-ab"),
            state: dir.join("no-state"),
            ..Default::default()
        });
        Arc::new(AppState {
            accounts: crate::accounts::Accounts::load(index.clone(), Default::default()).unwrap(),
            session_cookie: super::super::cookie::cookie_name(&index.node_id()),
            tokens: Arc::new(crate::federation::tokens::MediaTokens::new(
                &index.node_secret("media-tokens").unwrap(),
                Duration::from_secs(600),
                keys.clone(),
            )),
            index,
            layout,
            recorder,
            retention,
            keys,
            peers,
            label: std::sync::RwLock::new("test".into()),
            cors_origins: Vec::new(),
            tls_fingerprint: None,
            started: Instant::now(),
            cpu: Default::default(),
            onvif: Default::default(),
            discovery: None,
            link,
            notices,
            events,
            system,
        })
    }

    /// Sends `method path` with `headers` through the whole app; returns the status and the
    /// JSON error message (empty when the answer is not an error).
    async fn send(
        app: &axum::Router,
        method: &Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req
            .header(header::HOST, "127.0.0.1:8080")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        let res = app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .unwrap();
        let error = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_default();
        (status, error)
    }

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

    #[tokio::test]
    async fn tokens_only_open_media_routes() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::router(node(dir.path()));
        // A token that is no token: a media route lets it through to its handler, which
        // refuses it for its camera; every other route refuses it at the gate.
        let get = Method::GET;
        for p in [
            "/api/cameras/x/live",
            "/api/recordings/x/view.mp4",
            "/api/recordings/x/frame.jpg",
            "/api/recordings/x/replay.mjpeg",
            "/api/segments/3.mp4",
        ] {
            let (s, e) = send(&app, &get, &format!("{p}?token=1.ab"), &[]).await;
            assert_ne!(e, TOKENS_ONLY_MEDIA, "{p}: {s}");
            assert_ne!(e, LOG_IN_FIRST, "{p}: {s}");
        }
        for p in [
            "/api/cameras/x",
            "/api/recordings",
            // A camera whose id is "live" or "view.mp4" is not media.
            "/api/cameras/live",
            "/api/recordings/view.mp4",
            "/api/recordings/x/y.mp4",
            "/api/segments/",
            "/api/cameras/x/y/live",
        ] {
            let (s, e) = send(&app, &get, &format!("{p}?token=1.ab"), &[]).await;
            assert_eq!(
                (s, e.as_str()),
                (StatusCode::UNAUTHORIZED, TOKENS_ONLY_MEDIA),
                "{p}"
            );
        }
        // To read only.
        let (s, e) = send(&app, &Method::POST, "/api/cameras/x/live?token=1.ab", &[]).await;
        assert_eq!(
            (s, e.as_str()),
            (StatusCode::UNAUTHORIZED, TOKENS_ONLY_MEDIA)
        );
        let uri: axum::http::Uri = "/a?b=1&token=5.ab%2B".parse().unwrap();
        assert_eq!(query_token(&uri).as_deref(), Some("5.ab+"));
    }

    #[tokio::test]
    async fn only_login_setup_ui_pairing_camera_notify_and_token_media_are_public() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::router(node(dir.path()));
        let (get, post, put) = (Method::GET, Method::POST, Method::PUT);
        for (m, p) in [
            (&get, "/"),
            (&get, "/assets/0123abcd/app.js"),
            (&get, "/api/session"),
            (&post, "/api/session"),
            (&post, "/api/setup"),
            (&post, "/api/federation/pair"),
            (&post, "/api/federation/pair/ab12/collect"),
            (&post, "/api/onvif/notify/ab12"),
            (&get, "/api/recordings/demo/12-5.abc.mp4"),
        ] {
            let (s, e) = send(&app, m, p, &[]).await;
            assert_ne!(e, LOG_IN_FIRST, "{m} {p}: {s}");
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
            (&get, "/api/onvif/notify/ab12"),
            (&post, "/api/onvif/notify/ab12/x"),
            (&post, "/api/onvif/notify/"),
            (&post, "/"),
        ] {
            let (s, e) = send(&app, m, p, &[]).await;
            assert_eq!(
                (s, e.as_str()),
                (StatusCode::UNAUTHORIZED, LOG_IN_FIRST),
                "{m} {p}"
            );
        }
    }

    #[tokio::test]
    async fn sessions_need_csrf_for_changes_but_not_to_log_in() {
        let dir = tempfile::tempdir().unwrap();
        let st = node(dir.path());
        let app = super::super::router(st.clone());
        let (id, csrf) = st.accounts.sessions.start("admin");
        let cookie = format!("{}={id}", st.session_cookie);
        let ck = ("cookie", cookie.as_str());
        let (s, _) = send(&app, &Method::GET, "/api/federation/keys", &[ck]).await;
        assert_eq!(s, StatusCode::OK);
        let (s, e) = send(&app, &Method::DELETE, "/api/session", &[ck]).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{e}");
        assert!(e.contains("X-CSRF-Token"), "{e}");
        // Logging in is proved by the password: a leftover cookie needs no token (the empty
        // body is refused by the handler, not the gate).
        let (s, e) = send(&app, &Method::POST, "/api/session", &[ck]).await;
        assert_ne!(s, StatusCode::FORBIDDEN, "{e}");
        let (s, _) = send(
            &app,
            &Method::DELETE,
            "/api/session",
            &[
                ck,
                ("x-csrf-token", &csrf),
                ("origin", "http://evil.example"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "cross-origin change");
        let (s, _) = send(
            &app,
            &Method::DELETE,
            "/api/session",
            &[ck, ("x-csrf-token", &csrf)],
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
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

    #[tokio::test]
    async fn peers_only_read() {
        let dir = tempfile::tempdir().unwrap();
        let st = node(dir.path());
        let app = super::super::router(st.clone());
        let key = st.keys.create("peer").unwrap().key;
        let auth = [("x-nvr-auth", key.as_str())];
        let (s, e) = send(&app, &Method::GET, "/api/cameras", &auth).await;
        assert_eq!(s, StatusCode::OK, "{e}");
        let (s, e) = send(&app, &Method::GET, "/api/recordings/x/view.mp4", &auth).await;
        assert_ne!(e, PEERS_ONLY_READ, "{s}");
        for (m, p) in [
            (Method::POST, "/api/cameras"),
            (Method::DELETE, "/api/cameras/x"),
            // Keeping a clip is a user's change: a peer cannot keep (or let go) this node's.
            (Method::POST, "/api/recordings/events/1/protect"),
            (Method::GET, "/api/federation/keys"),
            (Method::GET, "/api/camerasx"),
        ] {
            let (s, e) = send(&app, &m, p, &auth).await;
            assert_eq!(
                (s, e.as_str()),
                (StatusCode::FORBIDDEN, PEERS_ONLY_READ),
                "{m} {p}"
            );
        }
        let (s, _) = send(
            &app,
            &Method::GET,
            "/api/cameras",
            &[("x-nvr-auth", "wrong")],
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn token_media_preflights_are_open_others_refused() {
        let dir = tempfile::tempdir().unwrap();
        let app = super::super::router(node(dir.path()));
        let preflight = |method: &'static str| {
            [
                ("origin", "http://elsewhere.example"),
                ("access-control-request-method", method),
            ]
        };
        let (s, _) = send(
            &app,
            &Method::OPTIONS,
            "/api/segments/3.mp4?token=1.ab",
            &preflight("GET"),
        )
        .await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        for (p, m) in [
            ("/api/segments/3.mp4", "DELETE"),
            ("/api/cameras", "GET"),
            ("/api/cameras/live", "GET"),
            ("/api/nothing", "GET"),
        ] {
            let (s, _) = send(&app, &Method::OPTIONS, p, &preflight(m)).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{m} {p}");
        }
    }
}
