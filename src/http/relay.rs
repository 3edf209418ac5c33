//! Relay: streams a peer's live video and recordings through this node, for remote nodes in
//! `relay` media mode (browsers that cannot reach the peer) and for CartaNVR peers (whose media
//! needs the federation key, which never goes to a browser). The peer's answer is passed on as
//! it arrives, with its status and byte-range headers; nothing is buffered beyond one chunk, and
//! a peer that stalls is cut off.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, RawQuery};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use super::{ApiError, ApiResult, State, blocking};
use crate::base::client;
use crate::storage::{MediaMode, NodeKind, NodeRecord};

/// A relayed stream ends when the peer sends nothing for this long (live video sends a
/// fragment about every second).
const IDLE: Duration = Duration::from_secs(20);

/// Largest error answer of a peer passed on.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Headers of the peer's answer that are passed on (`X-Codec`: live video's codec, which a
/// browser needs to set up Media Source Extensions).
const PASSED_ON: [header::HeaderName; 7] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
    header::LAST_MODIFIED,
    header::HeaderName::from_static("x-codec"),
];

/// Query parameters passed on to the peer (a time range, a frame's time); anything else (a
/// media token, a key) is dropped.
const QUERY_PASSED_ON: [&str; 3] = ["start", "end", "at"];

/// The local path that relays `path_and_query` (a media path on the peer, `/api/...`) of
/// `node`, or `None` when it is not a media path the relay carries.
pub fn local_path(node_id: &str, path_and_query: &str) -> Option<String> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let rest = path.strip_prefix("/api/")?;
    media_path(rest)?;
    let q = filtered_query(query);
    Some(format!(
        "/api/system/nodes/{node_id}/media/{rest}{}",
        if q.is_empty() {
            String::new()
        } else {
            format!("?{q}")
        }
    ))
}

/// The relay path for a peer's absolute media URL (as a peer hands them out: its own origin,
/// with a media token), or `None` when it is not on `node`'s origin or not a media path.
pub fn rewrite_url(node: &NodeRecord, absolute: &str) -> Option<String> {
    if !crate::federation::peers::same_origin(absolute, &node.url) {
        return None;
    }
    let u: url::Url = absolute.parse().ok()?;
    let pq = match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    };
    local_path(&node.id, &pq)
}

/// The URL browsers get for a media URL `node` handed out (a recording, a segment, a view):
/// this node's relay path when the node is relayed, else the peer's own absolute URL; `None`
/// (no link) unless it is a media path on the node's own origin — never another host, this
/// node's origin, a `javascript:` URL or a path outside the media routes.
pub fn peer_media_url(node: &NodeRecord, absolute: &str) -> Option<String> {
    let relay = rewrite_url(node, absolute)?;
    if relayed(node) {
        return Some(relay);
    }
    let u: url::Url = absolute.parse().ok()?;
    (u.password().is_none() && u.fragment().is_none()).then(|| u.to_string())
}

/// Whether media of `node` reaches browsers through this node.
pub fn relayed(node: &NodeRecord) -> bool {
    node.media_mode == MediaMode::Relay || node.kind == NodeKind::Cartanvr
}

/// Whether a peer's `Content-Type` may pass: media (MJPEG pictures and picture streams
/// included), or JSON (its error answers).
fn media_type(t: &[u8]) -> bool {
    let t = t.to_ascii_lowercase();
    [
        "video/",
        "audio/",
        "image/jpeg",
        "multipart/x-mixed-replace",
        "application/octet-stream",
        "application/json",
    ]
    .iter()
    .any(|p| t.starts_with(p.as_bytes()))
}

/// Checks `rest` (below `/api/`) is one of the media paths, made only of safe characters.
fn media_path(rest: &str) -> Option<()> {
    let parts: Vec<&str> = rest.split('/').collect();
    let safe = |p: &str| {
        !p.is_empty()
            && p.len() <= 128
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    };
    if !parts.iter().all(|p| safe(p)) {
        return None;
    }
    match parts.as_slice() {
        ["cameras", _, "live"]
        | ["recordings", _, _]
        | ["recordings", "events", _, "thumbnail.jpg"]
        | ["segments", _] => Some(()),
        _ => None,
    }
}

fn filtered_query(query: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if QUERY_PASSED_ON.contains(&k.as_ref()) {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// `GET /api/system/nodes/{id}/media/{*path}`: the peer's `/api/{path}`, streamed through.
/// For this node's own users only: the route is declared at [`Access::User`](super::auth::Access).
pub async fn media(
    st: State,
    Path((node_id, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    req_headers: HeaderMap,
) -> ApiResult<Response> {
    if media_path(&rest).is_none() {
        return Err(ApiError::bad_request(
            "the relay carries live video (cameras/ID/live), recordings and segments only",
        ));
    }
    let peers = st.peers.clone();
    let node = blocking(move || Ok(peers.nodes()?))
        .await?
        .into_iter()
        .find(|n| n.id == node_id && n.enabled)
        .ok_or_else(|| ApiError::not_found("no such remote node, or it is disabled"))?;
    let q = filtered_query(query.as_deref().unwrap_or(""));
    let target = format!(
        "{}/api/{rest}{}",
        node.url.trim_end_matches('/'),
        if q.is_empty() {
            String::new()
        } else {
            format!("?{q}")
        }
    );
    let url: url::Url = target
        .parse()
        .map_err(|e| ApiError::internal(format!("relay URL {target}: {e}")))?;
    let key = node.key.clone().unwrap_or_default();
    let mut headers: Vec<(&str, &str)> = vec![("x-nvr-auth", &key)];
    for name in ["range", "if-range"] {
        if let Some(v) = req_headers.get(name).and_then(|v| v.to_str().ok()) {
            headers.push((name, v));
        }
    }
    let cfg = st.peers.config();
    let limits = client::Limits {
        connect: cfg.timeout,
        total: cfg.timeout * 3,
        max_body: 0, // unused: the body streams
    };
    let got = client::stream(&url, &headers, limits, node.tls_pin.as_deref(), IDLE)
        .await
        .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("node {}: {e}", node.label)))?;
    if got.status == StatusCode::UNAUTHORIZED || got.status == StatusCode::FORBIDDEN {
        return Err(ApiError(
            StatusCode::BAD_GATEWAY,
            format!(
                "node {} refused this node's federation key (HTTP {})",
                node.label,
                got.status.as_u16()
            ),
        ));
    }
    // An error answer is short: read it whole within the peer deadline, or give up on it (a
    // peer dribbling an error body must not hold the caller's request open).
    let body = if got.status.is_client_error() || got.status.is_server_error() {
        let read = axum::body::to_bytes(got.body, MAX_ERROR_BODY);
        match tokio::time::timeout(cfg.timeout, read).await {
            Ok(Ok(bytes)) => Body::from(bytes),
            Ok(Err(e)) => {
                return Err(ApiError(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "node {}: HTTP {}, then {e}",
                        node.label,
                        got.status.as_u16()
                    ),
                ));
            }
            Err(_) => {
                return Err(ApiError(
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "node {}: HTTP {} whose body did not arrive within {:?}",
                        node.label,
                        got.status.as_u16(),
                        cfg.timeout
                    ),
                ));
            }
        }
    } else {
        got.body
    };
    let mut res = Response::new(Body::empty());
    *res.status_mut() = got.status;
    for name in PASSED_ON {
        if let Some(v) = got.headers.get(&name) {
            res.headers_mut().insert(name, v.clone());
        }
    }
    // What the peer sends is served from this node's origin: never as a page or a script.
    if let Some(t) = res.headers().get(header::CONTENT_TYPE) {
        if !media_type(t.as_bytes()) {
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/octet-stream"),
            );
        }
    }
    res.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    *res.body_mut() = body;
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_media_types_pass() {
        assert!(media_type(b"video/mp4"));
        assert!(media_type(b"Video/MP4; codecs=avc1"));
        assert!(media_type(b"application/json"));
        assert!(media_type(b"image/jpeg"));
        assert!(media_type(b"multipart/x-mixed-replace; boundary=x"));
        assert!(!media_type(b"text/html"));
        assert!(!media_type(b"application/javascript"));
        assert!(!media_type(b"image/svg+xml"));
    }

    #[test]
    fn only_media_paths_are_relayed() {
        assert!(media_path("cameras/front/live").is_some());
        assert!(media_path("recordings/front/view.mp4").is_some());
        assert!(media_path("recordings/cam_3/2024-05-01.mp4").is_some());
        assert!(media_path("segments/12.mp4").is_some());
        assert!(media_path("recordings/events/17/thumbnail.jpg").is_some());
        assert!(media_path("recordings/events/17/protect").is_none());
        assert!(media_path("recordings/front/17/thumbnail.jpg").is_none());
        assert!(media_path("cameras").is_none());
        assert!(media_path("cameras/front").is_none());
        assert!(media_path("federation/keys").is_none());
        assert!(media_path("recordings/../keys").is_none());
        assert!(media_path("segments/a%2fb").is_none());
        assert!(media_path("segments//x").is_none());
        assert!(media_path("system/nodes/x/media/segments/1.mp4").is_none());
    }

    #[test]
    fn urls_are_rewritten_without_tokens() {
        let node = NodeRecord {
            id: "0123456789ab".into(),
            label: "garage".into(),
            url: "http://10.0.0.2:8080".into(),
            key: None,
            enabled: true,
            kind: NodeKind::Eyrie,
            media_mode: MediaMode::Relay,
            tls_pin: None,
            created_ms: 0,
        };
        assert_eq!(
            rewrite_url(
                &node,
                "http://10.0.0.2:8080/api/recordings/front/view.mp4?start=1&end=2&token=abc"
            )
            .as_deref(),
            Some("/api/system/nodes/0123456789ab/media/recordings/front/view.mp4?start=1&end=2")
        );
        assert_eq!(
            rewrite_url(&node, "http://10.0.0.2:8080/api/segments/7.mp4?token=abc").as_deref(),
            Some("/api/system/nodes/0123456789ab/media/segments/7.mp4")
        );
        assert_eq!(
            rewrite_url(&node, "http://evil.example/api/segments/7.mp4"),
            None
        );
        assert_eq!(
            rewrite_url(&node, "http://10.0.0.2:8080/api/federation/keys"),
            None
        );
        let direct = NodeRecord {
            media_mode: MediaMode::Direct,
            ..node.clone()
        };
        let view = "http://10.0.0.2:8080/api/recordings/front/view.mp4?start=1&end=2&token=abc";
        assert_eq!(peer_media_url(&direct, view).as_deref(), Some(view));
        assert_eq!(
            peer_media_url(&node, view).as_deref(),
            Some("/api/system/nodes/0123456789ab/media/recordings/front/view.mp4?start=1&end=2")
        );
        for bad in [
            "javascript:alert(1)",
            "http://evil.example/api/segments/7.mp4",
            "http://10.0.0.2:8081/api/segments/7.mp4",
            "http://u:p@10.0.0.2:8080/api/segments/7.mp4",
            "http://10.0.0.2:8080/api/federation/keys",
            "/api/segments/7.mp4",
        ] {
            assert_eq!(peer_media_url(&direct, bad), None, "{bad}");
        }
    }
}
