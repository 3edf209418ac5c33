//! Pairing over HTTP (protocol in docs/federation.md).
//!
//! Open to any caller (the node asking has no key yet), throttled per address and size-limited:
//! `POST /api/federation/pair` and `POST /api/federation/pair/{id}/collect`.
//! For this node's admin: `GET /api/federation/pair/requests`,
//! `POST /api/federation/pair/requests/{id}/approve|reject` (requests made to this node), and
//! `GET/POST /api/system/pairings`, `GET /api/system/pairings/{id}` (pairings it started).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, Path};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::nodes::check_url;
use super::{ApiError, ApiResult, State, blocking};
use crate::discovery::link::Target;
use crate::discovery::pairing::{PairError, PairRequest, Pairing, RequestView, is_code, is_secret};

/// Largest pairing request body.
pub const MAX_PAIR_BODY: usize = 4096;

/// The caller's address (the server puts it in every request's extensions).
type Conn = Option<axum::Extension<ConnectInfo<SocketAddr>>>;

fn from_addr(c: Conn) -> IpAddr {
    c.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.0.ip())
}

/// Why a pairing call is refused: a plain API error, or a pairing error answered as
/// `{"status", "error"}` with a fitting HTTP status.
pub enum Refusal {
    Api(ApiError),
    Pair(PairError),
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Refusal::Api(e)
    }
}

impl From<PairError> for Refusal {
    fn from(e: PairError) -> Self {
        Refusal::Pair(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let e = match self {
            Refusal::Api(e) => return e.into_response(),
            Refusal::Pair(e) => e,
        };
        let code = match e {
            PairError::Throttled => StatusCode::TOO_MANY_REQUESTS,
            PairError::Full => StatusCode::SERVICE_UNAVAILABLE,
            PairError::NotFound => StatusCode::NOT_FOUND,
            PairError::Expired | PairError::AlreadyCollected => StatusCode::GONE,
            PairError::Rejected | PairError::TooManyWrongCodes => StatusCode::FORBIDDEN,
            PairError::Decided(_) | PairError::Running => StatusCode::CONFLICT,
            PairError::WrongCode => StatusCode::BAD_REQUEST,
            PairError::WrongSecret => StatusCode::UNAUTHORIZED,
            PairError::Pending => StatusCode::ACCEPTED,
        };
        (
            code,
            Json(json!({ "status": e.status(), "error": e.to_string() })),
        )
            .into_response()
    }
}

type PairResult<T> = Result<T, Refusal>;

fn valid_id(id: &str) -> PairResult<()> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(PairError::NotFound.into())
    }
}

#[derive(Debug, Deserialize)]
pub struct PairBody {
    node_id: String,
    label: String,
    url: String,
    code: String,
    secret: String,
    #[serde(default)]
    tls_fingerprint: Option<String>,
}

fn check_pair(b: PairBody) -> ApiResult<PairRequest> {
    if uuid::Uuid::try_parse(&b.node_id).is_err() || b.node_id.len() != 36 {
        return Err(ApiError::bad_request("node_id: a UUID"));
    }
    let label = crate::base::names::label(&b.label)
        .map_err(|e| ApiError::bad_request(format!("label: {e}")))?;
    if !is_code(&b.code) {
        return Err(ApiError::bad_request("code: 6 digits"));
    }
    if !is_secret(&b.secret) {
        return Err(ApiError::bad_request("secret: 64 lowercase hex digits"));
    }
    let tls_fingerprint = match b.tls_fingerprint {
        Some(f) if f.len() == 64 && f.bytes().all(|c| c.is_ascii_hexdigit()) => {
            Some(f.to_ascii_lowercase())
        }
        Some(_) => return Err(ApiError::bad_request("tls_fingerprint: 64 hex digits")),
        None => None,
    };
    Ok(PairRequest {
        node_id: b.node_id.to_ascii_lowercase(),
        label,
        url: crate::discovery::link::advertised_url(&b.url).ok_or_else(|| {
            ApiError::bad_request("url: http(s)://host[:port] of the asking node, nothing after it")
        })?,
        code: b.code,
        secret: b.secret,
        tls_fingerprint,
    })
}

/// `POST /api/federation/pair`: another node asks to pair. 202 with the request id and who
/// this node is; the admin here decides.
pub async fn ask(st: State, conn: Conn, Json(body): Json<PairBody>) -> PairResult<Response> {
    let req = check_pair(body)?;
    if req.node_id == st.link.me().node_id {
        return Err(ApiError(StatusCode::CONFLICT, "that is this node itself".into()).into());
    }
    let v = st.link.submit(req, from_addr(conn))?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "id": v.id,
            "status": "pending",
            "expires_in_s": v.expires_in_s,
            "node_id": st.link.me().node_id,
            "label": st.link.me().label,
            "message": "ask the admin of this node to approve the code",
        })),
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
pub struct CollectBody {
    secret: String,
}

/// `POST /api/federation/pair/{id}/collect`: the asking node collects its key with its secret,
/// once.
pub async fn collect(
    st: State,
    conn: Conn,
    Path(id): Path<String>,
    Json(body): Json<CollectBody>,
) -> PairResult<Response> {
    valid_id(&id)?;
    if body.secret.len() > 128 {
        return Err(PairError::WrongSecret.into());
    }
    let from = from_addr(conn);
    let link = st.link.clone();
    let r = tokio::task::spawn_blocking(move || link.collect(&id, &body.secret, from))
        .await
        .map_err(ApiError::internal)?;
    match r {
        Ok(Ok((key, _))) => Ok(Json(json!({
            "status": "approved",
            "key": key,
            "node_id": st.link.me().node_id,
            "label": st.link.me().label,
        }))
        .into_response()),
        Ok(Err(e)) => Err(ApiError::internal(e).into()),
        Err(PairError::Pending) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "status": "pending", "message": PairError::Pending.to_string() })),
        )
            .into_response()),
        Err(e) => Err(e.into()),
    }
}

pub async fn requests(st: State) -> Json<Vec<RequestView>> {
    Json(st.link.requests())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    code: String,
    /// Also pair the other way: this node asks the requester for a key the same way.
    #[serde(default)]
    link_back: bool,
}

/// `POST /api/federation/pair/requests/{id}/approve` with the code the other node shows.
pub async fn approve(
    st: State,
    Path(id): Path<String>,
    Json(body): Json<ApproveBody>,
) -> PairResult<Response> {
    valid_id(&id)?;
    let v = st.link.approve(&id, body.code.trim())?;
    // The approval stands whatever happens to the link back: its failure is said beside it.
    let (back, back_error) = if body.link_back {
        let target = Target {
            url: v.url.clone(),
            node_id: Some(v.node_id.clone()),
            label: Some(v.label.clone()),
            tls_pin: v.tls_fingerprint.clone(),
        };
        match st.link.start(target) {
            Ok(p) => (Some(p), None),
            Err(e) => (None, Some(e.to_string())),
        }
    } else {
        (None, None)
    };
    Ok(
        Json(json!({ "request": v, "link_back": back, "link_back_error": back_error }))
            .into_response(),
    )
}

/// `POST /api/federation/pair/requests/{id}/reject`.
pub async fn reject(st: State, Path(id): Path<String>) -> PairResult<Json<RequestView>> {
    valid_id(&id)?;
    Ok(Json(st.link.reject(&id)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartBody {
    /// A node from `GET /api/system/discover`, by its node id.
    node_id: Option<String>,
    /// Or any Eyrie's URL.
    url: Option<String>,
}

/// `POST /api/system/pairings`: starts pairing with a discovered node or a URL; answers at once
/// with the code to compare on the other node.
pub async fn start(st: State, Json(body): Json<StartBody>) -> PairResult<Response> {
    let target = match (body.node_id, body.url) {
        (Some(id), None) => {
            let seen = st
                .discovery
                .as_ref()
                .and_then(|d| d.find(&id.to_ascii_lowercase()))
                .ok_or_else(|| {
                    ApiError::not_found("no node with that id is seen on the network now")
                })?;
            let url = seen.url.clone().ok_or_else(|| {
                ApiError::bad_request("that node advertises no address usable in a URL")
            })?;
            Target {
                url,
                node_id: seen.node_id,
                label: Some(seen.label),
                tls_pin: seen.tls_fingerprint,
            }
        }
        (None, Some(url)) => Target {
            url: check_url(&url)?,
            node_id: None,
            label: None,
            tls_pin: None,
        },
        _ => {
            return Err(
                ApiError::bad_request("give either node_id (a discovered node) or url").into(),
            );
        }
    };
    let url = target.url.clone();
    let peers = st.peers.clone();
    let nodes = blocking(move || Ok(peers.nodes()?)).await?;
    if nodes.iter().any(|n| n.url == url && n.key.is_some()) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "that node is already a remote node here".into(),
        )
        .into());
    }
    let p = st.link.start(target)?;
    Ok((StatusCode::ACCEPTED, Json(p)).into_response())
}

pub async fn list(st: State) -> Json<Vec<Pairing>> {
    Json(st.link.pairings())
}

pub async fn get_one(st: State, Path(id): Path<String>) -> PairResult<Json<Pairing>> {
    valid_id(&id)?;
    st.link
        .pairing(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such pairing").into())
}
