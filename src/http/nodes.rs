//! `/api/system/nodes`: the remote nodes this node reads. Their keys are write-only.

use axum::Json;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, AppState, State, blocking, rfc3339};
use crate::base::hex::is_hex64;
use crate::base::names;
use crate::base::secret::random_hex;
use crate::federation::peers::{PeerStatus, TestResult};
use crate::storage::{MediaMode, NodeKind, NodeRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInput {
    label: Option<String>,
    url: Option<String>,
    key: Option<String>,
    enabled: Option<bool>,
    kind: Option<NodeKind>,
    media_mode: Option<MediaMode>,
    /// SHA-256 certificate fingerprint (hex, colons allowed); "" clears it.
    tls_pin: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct NodeView {
    id: String,
    label: String,
    url: String,
    kind: NodeKind,
    enabled: bool,
    media_mode: MediaMode,
    tls_pin: Option<String>,
    has_key: bool,
    created: String,
    status: StatusView,
}

#[derive(Debug, Serialize)]
struct StatusView {
    #[serde(flatten)]
    peer: PeerStatus,
    last_seen: Option<String>,
    /// Seconds since the node last answered: its numbers are that old.
    last_seen_age_s: Option<u64>,
    stale: bool,
    cameras: usize,
}

/// Seconds from `ms` (a time this node recorded) to now.
pub fn age_s(ms: i64) -> u64 {
    let now = jiff::Timestamp::now().as_millisecond();
    u64::try_from(now.saturating_sub(ms) / 1000).unwrap_or(0)
}

pub fn view(st: &AppState, n: NodeRecord) -> NodeView {
    let peer = st.peers.status(&n.id);
    NodeView {
        status: StatusView {
            last_seen: peer.last_seen_ms.map(rfc3339),
            last_seen_age_s: peer.last_seen_ms.map(age_s),
            stale: st.peers.is_stale(&peer),
            cameras: peer.cameras.len(),
            peer,
        },
        has_key: n.key.is_some(),
        id: n.id,
        label: n.label,
        url: n.url,
        kind: n.kind,
        enabled: n.enabled,
        media_mode: n.media_mode,
        tls_pin: n.tls_pin,
        created: rfc3339(n.created_ms),
    }
}

/// A node's base URL in its one stored form ([`names::node_url`]).
pub fn check_url(raw: &str) -> ApiResult<String> {
    names::node_url(raw).map_err(|e| ApiError::bad_request(format!("url: {e}")))
}

fn check_pin(p: &str) -> ApiResult<Option<String>> {
    let hex: String = p
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.is_empty() {
        return Ok(None);
    }
    if !is_hex64(&hex) {
        return Err(ApiError::bad_request(
            "tls_pin: a SHA-256 fingerprint, 64 hex digits",
        ));
    }
    Ok(Some(hex))
}

fn apply(n: &mut NodeRecord, input: NodeInput) -> ApiResult<()> {
    if let Some(label) = input.label {
        n.label = names::label(&label).map_err(|e| ApiError::bad_request(format!("label: {e}")))?;
    }
    if let Some(url) = input.url {
        n.url = check_url(&url)?;
    }
    if let Some(key) = input.key {
        let key = key.trim();
        if key.len() > 256 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request("key: up to 256 printable characters"));
        }
        n.key = (!key.is_empty()).then(|| key.to_string());
    }
    if let Some(e) = input.enabled {
        n.enabled = e;
    }
    if let Some(k) = input.kind {
        n.kind = k;
    }
    if let Some(m) = input.media_mode {
        n.media_mode = m;
    }
    if let Some(p) = input.tls_pin {
        n.tls_pin = check_pin(&p)?;
    }
    Ok(())
}

fn new_record(input: NodeInput) -> ApiResult<NodeRecord> {
    if input.url.is_none() {
        return Err(ApiError::bad_request("url is required"));
    }
    let mut n = NodeRecord {
        id: random_hex(6),
        label: String::new(),
        url: String::new(),
        key: None,
        enabled: true,
        kind: NodeKind::Eyrie,
        media_mode: MediaMode::Direct,
        tls_pin: None,
        created_ms: jiff::Timestamp::now().as_millisecond(),
    };
    let label_given = input.label.is_some();
    apply(&mut n, input)?;
    if !label_given {
        n.label = url::Url::parse(&n.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_else(|| n.url.clone());
    }
    Ok(n)
}

fn valid_node_id(id: &str) -> ApiResult<()> {
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::not_found("no such node"))
    }
}

pub async fn list(st: State) -> ApiResult<Json<Vec<NodeView>>> {
    let peers = st.peers.clone();
    let nodes = blocking(move || Ok(peers.nodes()?)).await?;
    Ok(Json(nodes.into_iter().map(|n| view(&st, n)).collect()))
}

async fn find(st: &State, id: &str) -> ApiResult<NodeRecord> {
    valid_node_id(id)?;
    let peers = st.peers.clone();
    let id = id.to_string();
    blocking(move || Ok(peers.nodes()?))
        .await?
        .into_iter()
        .find(|n| n.id == id)
        .ok_or_else(|| ApiError::not_found("no such node"))
}

pub async fn get_one(st: State, Path(id): Path<String>) -> ApiResult<Json<NodeView>> {
    let n = find(&st, &id).await?;
    Ok(Json(view(&st, n)))
}

/// Refuses `n` when it is this node, or a node already in the list: the same URL, or (when it
/// answers) the same node id under another URL.
async fn check_new_peer(st: &State, n: &NodeRecord) -> ApiResult<()> {
    let peers = st.peers.clone();
    let others: Vec<NodeRecord> = blocking(move || Ok(peers.nodes()?))
        .await?
        .into_iter()
        .filter(|o| o.id != n.id)
        .collect();
    if let Some(o) = others.iter().find(|o| o.url == n.url) {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("that URL is already remote node \"{}\"", o.label),
        ));
    }
    let t = st.peers.test(n).await;
    if t.is_self {
        return Err(ApiError::bad_request(
            "that URL is this node itself: a node cannot be its own peer",
        ));
    }
    let same = t.node_id.as_deref().and_then(|id| {
        let known = st.peers.known_as(id, &n.id)?;
        others.iter().find(|o| o.id == known)
    });
    if let Some(o) = same {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!(
                "that is remote node \"{}\" again (the same node id under another URL)",
                o.label
            ),
        ));
    }
    Ok(())
}

pub async fn create(st: State, Json(input): Json<NodeInput>) -> ApiResult<impl IntoResponse> {
    let n = new_record(input)?;
    check_new_peer(&st, &n).await?;
    let index = st.index.clone();
    let saved = n.clone();
    blocking(move || Ok(index.put_node(&saved)?)).await?;
    st.peers.changed(&n.id, true);
    Ok((StatusCode::CREATED, Json(view(&st, n))))
}

pub async fn update(
    st: State,
    Path(id): Path<String>,
    Json(input): Json<NodeInput>,
) -> ApiResult<Json<NodeView>> {
    let mut n = find(&st, &id).await?;
    let url = n.url.clone();
    apply(&mut n, input)?;
    if n.url != url {
        check_new_peer(&st, &n).await?;
    }
    let index = st.index.clone();
    let saved = n.clone();
    blocking(move || Ok(index.put_node(&saved)?)).await?;
    st.peers.changed(&n.id, true);
    Ok(Json(view(&st, n)))
}

pub async fn delete(st: State, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let n = find(&st, &id).await?;
    let index = st.index.clone();
    blocking(move || Ok(index.delete_node(&n.id)?)).await?;
    st.peers.changed(&id, false);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/system/nodes/{id}/check`: polls the node now (whatever its backoff) and answers
/// its fresh status.
pub async fn check(st: State, Path(id): Path<String>) -> ApiResult<Json<NodeView>> {
    let n = find(&st, &id).await?;
    if n.enabled {
        st.peers.poll(n.clone()).await;
    }
    Ok(Json(view(&st, n)))
}

/// Checks a URL and key before saving: reachable? key accepted? not this node itself?
pub async fn test(st: State, Json(input): Json<NodeInput>) -> ApiResult<Json<TestResult>> {
    let n = new_record(input)?;
    Ok(Json(st.peers.test(&n).await))
}
