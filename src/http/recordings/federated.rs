//! Recordings of other nodes: one peer camera's listing asked of the node that holds it
//! (Eyrie's `/api/recordings`, or CartaNVR's `/api/playback` turned into a listing of ours), and
//! `camera=all`, every node's runs merged in time order. Media URLs a peer hands out are checked (its own origin, a media path) and those of relayed nodes are
//! rewritten to this node's relay. A peer asking never gets other peers' recordings (no loops,
//! and only this node's own data goes to a key).
//!
//! Invariants (a hostile peer's answer costs a bounded amount of memory): an answer is at most
//! [`search_limits`]' bytes, read in one block (given back to the system when freed); it is
//! parsed straight into [`Item`]s, never into a `serde_json::Value` tree, so a field this node
//! does not know is skipped without being built, and a list keeps at most [`MAX_PEER_ITEMS`]
//! items (the rest is skipped as it is parsed, and the answer says `truncated`). A merged
//! listing keeps at most [`MAX_MERGED_RUNS`] runs.

use std::marker::PhantomData;

use axum::http::{HeaderMap, StatusCode};
use serde::de::{DeserializeOwned, IgnoredAny, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::local::local_listing;
use crate::http::auth::Caller;
use crate::http::{ApiError, ApiResult, State, blocking, rfc3339};

/// Most items (segments, or runs) read from one list of one peer's answer.
pub(crate) const MAX_PEER_ITEMS: usize = 20_000;
/// Most runs in a `camera=all` listing; the earliest are kept.
pub(super) const MAX_MERGED_RUNS: usize = 20_000;

/// A segment or a run as nodes list them (one type for both: each field is present when the
/// peer sent it). Only these fields are read from a peer, and passed on.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub(crate) struct Item {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) camera: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) start_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) end_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) duration_s: Option<f64>,
    /// A run's segment count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) segments: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) frames: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) key_frames: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) codec: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) run: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    /// Set by this node in a merged or relayed listing, never read from a peer.
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub(crate) node_id: Option<String>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub(crate) node_label: Option<String>,
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub(crate) remote: Option<bool>,
}

/// A JSON array read with at most [`MAX_PEER_ITEMS`] items kept: the rest are skipped as they
/// are parsed (nothing of them is built), and `cut` says so.
#[derive(Debug)]
pub(crate) struct Capped<T> {
    pub(crate) items: Vec<T>,
    pub(crate) cut: bool,
}

impl<T> Default for Capped<T> {
    fn default() -> Self {
        Capped {
            items: Vec::new(),
            cut: false,
        }
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Capped<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Seq<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Seq<T> {
            type Value = Capped<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Capped<T>, A::Error> {
                let mut out = Capped::default();
                while out.items.len() < MAX_PEER_ITEMS {
                    match seq.next_element()? {
                        Some(item) => out.items.push(item),
                        None => return Ok(out),
                    }
                }
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    out.cut = true;
                }
                Ok(out)
            }
        }
        d.deserialize_seq(Seq(PhantomData))
    }
}

/// A peer's `/api/recordings` answer, as far as this node reads it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PeerListing {
    #[serde(default)]
    pub(crate) segments: Capped<Item>,
    #[serde(default)]
    pub(crate) runs: Capped<Item>,
}

/// A listing of a peer's camera as this node answers it.
#[derive(Debug, Serialize)]
pub(super) struct RemoteListing {
    camera: String,
    start: String,
    end: String,
    segments: Vec<Item>,
    runs: Vec<Item>,
    node_id: String,
    node_label: String,
    remote: bool,
    /// The peer listed more than [`MAX_PEER_ITEMS`]: the rest is left out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// Every node's runs, as `camera=all` answers.
#[derive(Debug, Serialize)]
pub(super) struct AllListing {
    camera: &'static str,
    start: String,
    end: String,
    runs: Vec<Item>,
    errors: Vec<serde_json::Value>,
    /// More runs than [`MAX_MERGED_RUNS`], or a peer listed more than [`MAX_PEER_ITEMS`].
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    truncated: bool,
}

/// One file of a CartaNVR playback answer.
#[derive(Debug, Deserialize)]
pub(crate) struct CartaFile {
    file: Option<String>,
    timestamp: Option<i64>,
    duration: Option<f64>,
}

/// A peer's error answer.
#[derive(Debug, Deserialize)]
struct PeerError {
    error: Option<String>,
}

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

/// Asks a peer and reads its answer as a `T` (an error answer as its message), within
/// [`search_limits`].
pub(super) async fn ask_peer<T: DeserializeOwned>(
    st: &crate::http::AppState,
    node: &crate::storage::NodeRecord,
    path_and_query: &str,
) -> Result<T, String> {
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
    read_peer_answer(got.status, &got.body)
}

/// A peer's answer as a `T`, or its error answer as a message for people.
pub(crate) fn read_peer_answer<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, String> {
    if status != 200 {
        let msg = serde_json::from_slice::<PeerError>(body)
            .ok()
            .and_then(|e| e.error)
            .unwrap_or_else(|| "error".into());
        let msg = crate::base::text::clean(&msg, 200);
        return Err(format!("HTTP {status}: {msg}"));
    }
    serde_json::from_slice(body).map_err(|e| format!("invalid answer: {e}"))
}

pub(super) async fn find_node(st: &State, id: &str) -> ApiResult<crate::storage::NodeRecord> {
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
    with_segments: bool,
) -> ApiResult<RemoteListing> {
    let node = find_node(st, node_id).await?;
    let listing = match node.kind {
        crate::storage::NodeKind::Eyrie => {
            // Built in a block: the serializer is not Send, and must not live across the await.
            let q = {
                let mut q = url::form_urlencoded::Serializer::new(String::new());
                q.append_pair("camera", cam)
                    .append_pair("start", &start.to_string())
                    .append_pair("end", &end.to_string());
                if !with_segments {
                    q.append_pair("segments", "0");
                }
                q.finish()
            };
            ask_peer::<PeerListing>(st, &node, &format!("/api/recordings?{q}")).await
        }
        crate::storage::NodeKind::Cartanvr => cartanvr_listing(st, &node, cam, start, end).await,
    }
    .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("node {}: {e}", node.label)))?;
    let PeerListing {
        mut segments,
        mut runs,
    } = listing;
    if !with_segments {
        segments = Capped::default();
    }
    for item in segments.items.iter_mut().chain(runs.items.iter_mut()) {
        item.url = item
            .url
            .as_deref()
            .and_then(|u| crate::http::relay::peer_media_url(&node, u));
    }
    Ok(RemoteListing {
        camera: full_id.to_string(),
        start: rfc3339(start),
        end: rfc3339(end),
        truncated: segments.cut || runs.cut,
        segments: segments.items,
        runs: runs.items,
        node_id: node.id.clone(),
        node_label: node.label.clone(),
        remote: true,
    })
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
) -> Result<PeerListing, String> {
    let files: Capped<CartaFile> = ask_peer(
        st,
        node,
        &format!("/api/playback/cam_{cam}?start={start}&end={end}"),
    )
    .await?;
    Ok(carta_listing(node.url.trim_end_matches('/'), files))
}

/// A CartaNVR playback answer (its files, on the node at `base`) as a listing of ours: files
/// under `/api/recordings/` only, times saturating, in time order.
pub(crate) fn carta_listing(base: &str, files: Capped<CartaFile>) -> PeerListing {
    let item = |f: &CartaFile| {
        let (Some(file), Some(ts)) = (f.file.as_deref(), f.timestamp) else {
            return None;
        };
        if !file.starts_with("/api/recordings/") || file.contains('?') {
            return None;
        }
        let duration_s = f.duration.filter(|d| *d >= 0.0).unwrap_or(0.0);
        // Saturating: a peer's numbers are not trusted to stay in range.
        let end_ms = ts.saturating_add((duration_s * 1000.0) as i64);
        Some(Item {
            start: Some(rfc3339(ts)),
            end: Some(rfc3339(end_ms)),
            start_ms: Some(ts),
            end_ms: Some(end_ms),
            duration_s: Some(duration_s),
            url: Some(format!("{base}{file}")),
            ..Item::default()
        })
    };
    let mut segments: Vec<Item> = files.items.iter().filter_map(item).collect();
    segments.sort_by_key(|s| s.start_ms);
    let runs = segments.clone();
    PeerListing {
        segments: Capped {
            items: segments,
            cut: files.cut,
        },
        runs: Capped {
            items: runs,
            cut: files.cut,
        },
    }
}

/// Every camera of every node: this node's runs, and each enabled peer's (asked in parallel),
/// merged in time order, at most [`MAX_MERGED_RUNS`] of them (the earliest; `truncated` says
/// when there were more); a node that could not be read is listed in `errors`.
pub(super) async fn all_listing(
    st: &State,
    start: i64,
    end: i64,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<AllListing> {
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
    let mut runs: Vec<Item> = Vec::new();
    let mut errors: Vec<serde_json::Value> = Vec::new();
    let mut truncated = false;
    let me = st.index.node_id().to_string();
    for cam in cams {
        let listing = local_listing(st, cam.clone(), start, end, caller, headers).await?;
        for r in listing.runs {
            let mut r = Item::from(r);
            r.camera = Some(cam.clone());
            r.node_id = Some(me.clone());
            r.node_label = Some(st.label().to_string());
            r.remote = Some(false);
            runs.push(r);
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
                crate::storage::NodeKind::Eyrie => {
                    ask_peer::<PeerListing>(st, n, &path).await.map(|l| l.runs)
                }
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
                    let mut runs = Capped::default();
                    for (cam, listing) in cams.iter().zip(per_cam) {
                        let listing = listing?;
                        runs.cut |= listing.runs.cut;
                        for mut r in listing.runs.items {
                            if runs.items.len() == MAX_PEER_ITEMS {
                                runs.cut = true;
                                break;
                            }
                            r.camera = Some(cam.clone());
                            runs.items.push(r);
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
                    truncated |= list.cut;
                    for mut r in list.items {
                        let Some(cam) = r.camera.take() else {
                            continue;
                        };
                        r.camera = Some(format!("r-{}-{cam}", n.id));
                        r.node_id = Some(n.id.clone());
                        r.node_label = Some(n.label.clone());
                        r.remote = Some(true);
                        r.url = r
                            .url
                            .as_deref()
                            .and_then(|u| crate::http::relay::peer_media_url(n, u));
                        runs.push(r);
                    }
                }
                Err(e) => errors.push(serde_json::json!({
                    "node_id": n.id, "node_label": n.label, "error": e,
                })),
            }
        }
    }
    runs.sort_by_key(|r| r.start_ms.unwrap_or(0));
    if runs.len() > MAX_MERGED_RUNS {
        runs.truncate(MAX_MERGED_RUNS);
        truncated = true;
    }
    Ok(AllListing {
        camera: "all",
        start: rfc3339(start),
        end: rfc3339(end),
        runs,
        errors,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_lists_are_cut_while_parsed_and_unknown_fields_skipped() {
        let mut json = String::from(r#"{"junk": [[1, 2], {"deep": [3]}], "runs": ["#);
        for i in 0..MAX_PEER_ITEMS + 5 {
            json.push_str(&format!(
                r#"{{"camera": "c", "start_ms": {i}, "x": [1, 2]}},"#
            ));
        }
        json.push_str(r#"{"camera": "c"}], "segments": [{"id": 1, "url": "/u"}]}"#);
        let l: PeerListing = serde_json::from_str(&json).unwrap();
        assert_eq!(l.runs.items.len(), MAX_PEER_ITEMS);
        assert!(l.runs.cut);
        assert_eq!(l.runs.items[7].start_ms, Some(7));
        assert_eq!(l.segments.items.len(), 1);
        assert!(!l.segments.cut);
        // Only the fields this node knows go on, as they came.
        let out = serde_json::to_value(&l.segments.items[0]).unwrap();
        assert_eq!(out, serde_json::json!({"id": 1, "url": "/u"}));
        // A wrong type is an error for the whole answer, not a guess.
        assert!(serde_json::from_str::<PeerListing>(r#"{"runs": [{"start_ms": "x"}]}"#).is_err());
        assert!(
            serde_json::from_str::<PeerListing>("{}")
                .unwrap()
                .runs
                .items
                .is_empty()
        );
    }
}
