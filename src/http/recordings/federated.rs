//! Recordings of other nodes: one peer camera's listing asked of the node that holds it
//! (Eyrie's `/api/recordings`, or CartaNVR's `/api/playback` turned into a listing of ours), and
//! `camera=all`, every node's runs merged in time order. Peers' answers are bounded
//! ([`search_limits`], [`MAX_CARTANVR_FILES`], 100 000 runs per node); media URLs of relayed
//! nodes are rewritten to this node's relay. A peer asking never gets other peers' recordings
//! (no loops, and only this node's own data goes to a key).

use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::local::local_listing;
use crate::http::auth::Caller;
use crate::http::{ApiError, ApiResult, State, blocking, rfc3339};

/// Most files read from one CartaNVR playback answer.
const MAX_CARTANVR_FILES: usize = 10_000;

/// `r-{12 hex}-{camera}` → (node id, camera id on that node).
pub(super) fn parse_remote_id(id: &str) -> Option<(&str, &str)> {
    let rest = id.strip_prefix("r-")?;
    let (node, cam) = (rest.get(..12)?, rest.get(13..)?);
    (rest.as_bytes().get(12) == Some(&b'-')
        && node.bytes().all(|b| b.is_ascii_hexdigit())
        && !cam.is_empty())
    .then_some((node, cam))
}

/// Limits for asking a peer for recordings (a listing can be long).
fn search_limits(st: &crate::http::AppState) -> crate::base::client::Limits {
    crate::base::client::Limits {
        connect: st.peers.config().timeout,
        total: st.peers.config().timeout * 2,
        max_body: 8 << 20,
    }
}

async fn ask_peer(
    st: &crate::http::AppState,
    node: &crate::storage::NodeRecord,
    path_and_query: &str,
) -> Result<Value, String> {
    let url: url::Url = format!("{}{path_and_query}", node.url)
        .parse()
        .map_err(|e| format!("bad URL: {e}"))?;
    let key = node.key.clone().unwrap_or_default();
    let got = crate::base::client::get(
        &url,
        &[("x-nvr-auth", &key)],
        search_limits(st),
        node.tls_pin.as_deref(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_slice(&got.body).map_err(|e| format!("invalid JSON: {e}"))?;
    if got.status != 200 {
        let msg = crate::base::text::clean(v["error"].as_str().unwrap_or("error"), 200);
        return Err(format!("HTTP {}: {msg}", got.status));
    }
    Ok(v)
}

async fn find_node(st: &State, id: &str) -> ApiResult<crate::storage::NodeRecord> {
    let peers = st.peers.clone();
    let id = id.to_string();
    blocking(move || Ok(peers.nodes()?))
        .await?
        .into_iter()
        .find(|n| n.id == id && n.enabled)
        .ok_or_else(|| ApiError::not_found("no such remote node"))
}

pub(super) async fn remote_listing(
    st: &State,
    node_id: &str,
    cam: &str,
    full_id: &str,
    start: i64,
    end: i64,
) -> ApiResult<Value> {
    let node = find_node(st, node_id).await?;
    let mut v = match node.kind {
        crate::storage::NodeKind::Eyrie => {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("camera", cam)
                .append_pair("start", &start.to_string())
                .append_pair("end", &end.to_string())
                .finish();
            ask_peer(st, &node, &format!("/api/recordings?{q}")).await
        }
        crate::storage::NodeKind::Cartanvr => cartanvr_listing(st, &node, cam, start, end).await,
    }
    .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("node {}: {e}", node.label)))?;
    if !v.is_object() {
        return Err(ApiError(
            StatusCode::BAD_GATEWAY,
            format!("node {}: not a listing", node.label),
        ));
    }
    for list in ["segments", "runs"] {
        if let Some(items) = v[list].as_array_mut() {
            for item in items {
                let url = item["url"].as_str().unwrap_or_default();
                item["url"] =
                    crate::http::relay::peer_media_url(&node, url).map_or(Value::Null, Value::from);
            }
        }
    }
    v["camera"] = full_id.into();
    v["node_id"] = node.id.clone().into();
    v["node_label"] = node.label.clone().into();
    v["remote"] = true.into();
    Ok(v)
}

/// A CartaNVR node's recordings of `cam` as a listing of ours: its
/// `GET /api/playback/cam_{cam}` gives one entry per file; each file is a segment and a run of
/// its own (CartaNVR keeps no runs), with the file's absolute URL on the node (the relay carries
/// it, since fetching it needs the federation key).
async fn cartanvr_listing(
    st: &crate::http::AppState,
    node: &crate::storage::NodeRecord,
    cam: &str,
    start: i64,
    end: i64,
) -> Result<Value, String> {
    let got = ask_peer(
        st,
        node,
        &format!("/api/playback/cam_{cam}?start={start}&end={end}"),
    )
    .await?;
    let files = got.as_array().ok_or("playback: not a JSON array")?;
    let base = node.url.trim_end_matches('/');
    let mut segments = Vec::new();
    for f in files.iter().take(MAX_CARTANVR_FILES) {
        let (Some(file), Some(ts)) = (f["file"].as_str(), f["timestamp"].as_i64()) else {
            continue;
        };
        if !file.starts_with("/api/recordings/") || file.contains('?') {
            continue;
        }
        let duration_s = f["duration"].as_f64().filter(|d| *d >= 0.0).unwrap_or(0.0);
        let end_ms = ts + (duration_s * 1000.0) as i64;
        segments.push(serde_json::json!({
            "start": rfc3339(ts),
            "end": rfc3339(end_ms),
            "start_ms": ts,
            "end_ms": end_ms,
            "duration_s": duration_s,
            "url": format!("{base}{file}"),
        }));
    }
    segments.sort_by_key(|s| s["start_ms"].as_i64());
    let runs = segments.clone();
    Ok(serde_json::json!({
        "start": rfc3339(start),
        "end": rfc3339(end),
        "segments": segments,
        "runs": runs,
    }))
}

pub(super) async fn all_listing(
    st: &State,
    start: i64,
    end: i64,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<Value> {
    let index = st.index.clone();
    let cams = blocking(move || {
        let mut ids: Vec<String> = index.cameras()?.into_iter().map(|c| c.id).collect();
        for c in index.cameras_with_segments()? {
            if !ids.contains(&c) {
                ids.push(c);
            }
        }
        Ok(ids)
    })
    .await?;
    let mut runs: Vec<Value> = Vec::new();
    let mut errors: Vec<Value> = Vec::new();
    let me = st.index.node_id().to_string();
    for cam in cams {
        let listing = local_listing(st, cam.clone(), start, end, caller, headers).await?;
        for r in listing.runs {
            let mut v = serde_json::to_value(r).expect("serializes");
            v["camera"] = cam.clone().into();
            v["node_id"] = me.clone().into();
            v["node_label"] = st.label().into();
            v["remote"] = false.into();
            runs.push(v);
        }
    }
    if !matches!(caller, Caller::Peer { .. }) {
        let peers = st.peers.clone();
        let nodes: Vec<_> = blocking(move || Ok(peers.nodes()?))
            .await?
            .into_iter()
            .filter(|n| n.enabled)
            .collect();
        let path = format!("/api/recordings?camera=all&start={start}&end={end}");
        let answers = futures::future::join_all(nodes.iter().map(|n| async {
            match n.kind {
                crate::storage::NodeKind::Eyrie => ask_peer(st, n, &path).await.and_then(|v| {
                    v["runs"]
                        .as_array()
                        .cloned()
                        .ok_or_else(|| "no runs in the answer".to_string())
                }),
                crate::storage::NodeKind::Cartanvr => {
                    // CartaNVR answers per camera: ask for each camera it listed.
                    let cams: Vec<String> = st
                        .peers
                        .status(&n.id)
                        .cameras
                        .into_iter()
                        .map(|c| c.id)
                        .collect();
                    let per_cam = futures::future::join_all(
                        cams.iter().map(|c| cartanvr_listing(st, n, c, start, end)),
                    )
                    .await;
                    let mut runs = Vec::new();
                    for (cam, listing) in cams.iter().zip(per_cam) {
                        for mut r in listing?["runs"].as_array().cloned().unwrap_or_default() {
                            r["camera"] = cam.clone().into();
                            runs.push(r);
                        }
                    }
                    Ok(runs)
                }
            }
        }))
        .await;
        for (n, answer) in nodes.iter().zip(answers) {
            match answer {
                Ok(list) => {
                    for mut r in list.into_iter().take(100_000) {
                        let Some(cam) = r["camera"].as_str().map(str::to_string) else {
                            continue;
                        };
                        r["camera"] = format!("r-{}-{cam}", n.id).into();
                        r["node_id"] = n.id.clone().into();
                        r["node_label"] = n.label.clone().into();
                        r["remote"] = true.into();
                        let url = r["url"].as_str().unwrap_or_default();
                        r["url"] = crate::http::relay::peer_media_url(n, url)
                            .map_or(Value::Null, Value::from);
                        runs.push(r);
                    }
                }
                Err(e) => errors.push(serde_json::json!({
                    "node_id": n.id, "node_label": n.label, "error": e,
                })),
            }
        }
    }
    runs.sort_by_key(|r| r["start_ms"].as_i64().unwrap_or(0));
    Ok(serde_json::json!({
        "camera": "all",
        "start": rfc3339(start),
        "end": rfc3339(end),
        "runs": runs,
        "errors": errors,
    }))
}
