//! HTTP owns the API and how it is served: routes and who may call them (`routes.rs`, checked
//! by `auth.rs`), request limits, JSON errors, byte ranges (`ranges.rs`). Every endpoint is
//! described in docs/api.md; keep the two in step.

mod auth;
mod cameras;
mod cartanvr;
pub mod cookie;
mod cors;
mod devices;
mod discover;
mod federation;
mod health;
mod live;
mod nodes;
mod notify;
mod pair;
pub(crate) mod ranges;
pub(crate) mod recordings;
pub(crate) mod relay;
mod routes;
mod serve;
pub mod session;
mod settings;
mod system;
mod ui;

pub use routes::router;
pub use serve::serve;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::recorder::Recorder;
use crate::storage::{Index, Layout, retention::Retention};

/// Largest request body the API reads.
pub const MAX_BODY: usize = 64 * 1024;

pub struct AppState {
    pub index: Arc<Index>,
    pub layout: Layout,
    pub recorder: Arc<Recorder>,
    pub retention: Arc<Retention>,
    pub keys: Arc<crate::federation::keys::KeyStore>,
    pub peers: Arc<crate::federation::peers::Peers>,
    pub tokens: Arc<crate::federation::tokens::MediaTokens>,
    /// People who may log in, and their sessions.
    pub accounts: Arc<crate::accounts::Accounts>,
    /// Name of this node's session cookie ([`cookie::cookie_name`]).
    pub session_cookie: String,
    /// This node's name for people and peers.
    /// Changed by the admin at run time (`PUT /api/system/settings`): read it with
    /// [`AppState::label`].
    pub label: std::sync::RwLock<String>,
    /// Origins (besides the registered nodes') whose pages may make credentialed requests.
    pub cors_origins: Vec<String>,
    /// SHA-256 fingerprint of the certificate served over HTTPS, when HTTPS is on.
    pub tls_fingerprint: Option<String>,
    pub started: Instant,
    /// Previous CPU-time reading, for the process CPU share between two health calls.
    pub cpu: Mutex<Option<health::CpuSample>>,
    /// How ONVIF scans probe the LAN.
    pub onvif: crate::onvif::ScanConfig,
    // Discovery and pairing (src/discovery).
    /// mDNS advertising and browsing; None when `[discovery] enabled = false`.
    pub discovery: Option<Arc<crate::discovery::Discovery>>,
    pub link: Arc<crate::discovery::link::Linker>,
    /// Discovery's and pairing's change notices (`GET /api/events`).
    pub notices: Arc<crate::discovery::events::Hub>,
    /// The node's events (motion, camera events, markers).
    pub events: crate::events::EventLog,
    /// The appliance's slots, updates and reboots (src/system).
    pub system: Arc<crate::system::System>,
}

impl AppState {
    /// This node's name for people and peers, as it is now.
    pub fn label(&self) -> String {
        self.label.read().unwrap().clone()
    }
}

pub type State = axum::extract::State<Arc<AppState>>;

/// An API error: a status and a message for people, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self(StatusCode::BAD_REQUEST, msg.into())
    }
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self(StatusCode::NOT_FOUND, msg.into())
    }
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        tracing::error!("internal error: {msg}");
        Self(StatusCode::INTERNAL_SERVER_ERROR, msg.to_string())
    }
}

impl From<crate::storage::StorageError> for ApiError {
    fn from(e: crate::storage::StorageError) -> Self {
        Self::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, axum::Json(json!({ "error": self.1 }))).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs blocking index or file work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)?
}

/// Turns every error that is not JSON yet (extractor rejections, body limits, unknown methods)
/// into `{"error": "..."}` with the same status, so clients see one error shape.
async fn json_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_string();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut out = (status, axum::Json(json!({ "error": message }))).into_response();
    for (k, v) in parts.headers.iter() {
        if k != header::CONTENT_TYPE && k != header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}

/// Whether the caller may fetch `camera`'s media of `kind`: users and peers may; a media token
/// must be valid for exactly this camera and kind, else 401.
/// Returns whether the answer should carry open CORS headers (token requests, which carry no
/// credentials, may come from any origin).
pub fn media_access(
    st: &AppState,
    caller: &auth::Caller,
    camera: &str,
    kind: crate::federation::tokens::Kind,
) -> ApiResult<bool> {
    match caller {
        auth::Caller::Token(t) if st.tokens.check(t, camera, kind) => Ok(true),
        auth::Caller::Token(_) => Err(ApiError(
            StatusCode::UNAUTHORIZED,
            "media token expired, forged, or for another camera".into(),
        )),
        auth::Caller::Anonymous => Err(ApiError(StatusCode::UNAUTHORIZED, "log in first".into())),
        auth::Caller::User { .. } | auth::Caller::Peer { .. } => Ok(false),
    }
}

/// Adds the CORS headers of a token-authenticated media answer.
pub fn open_cors(res: &mut Response) {
    let h = res.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static(cors::EXPOSE_HEADERS),
    );
}

/// `http://host[:port]` as the caller addressed this node, for absolute URLs in answers to
/// peers (their browsers fetch media from here directly).
pub fn origin_of(headers: &axum::http::HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    let authority: axum::http::uri::Authority = host.parse().ok()?;
    Some(format!("http://{authority}"))
}

/// Times a request may name, in epoch ms: 1970 (a board without a clock records there until
/// it has one) up to, not including, 2200. Differences of two such times never overflow.
pub const TIME_DOMAIN_MS: std::ops::Range<i64> = 0..7_258_118_400_000;

/// Parses a time given as RFC 3339 or as epoch milliseconds, within [`TIME_DOMAIN_MS`].
pub fn parse_time(name: &str, v: &str) -> ApiResult<i64> {
    let ms = match v.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => v
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_millisecond())
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "{name}: '{v}' is neither RFC 3339 (2024-05-01T12:00:00Z) nor epoch milliseconds"
                ))
            })?,
    };
    if !TIME_DOMAIN_MS.contains(&ms) {
        return Err(ApiError::bad_request(format!(
            "{name}: '{v}' is outside 1970-01-01..2200-01-01"
        )));
    }
    Ok(ms)
}

pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_default()
}
