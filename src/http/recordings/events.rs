//! Events over HTTP: `GET /api/recordings/events` (this node's, one peer camera's asked of its
//! node, or `camera=all`: every node's, asked in parallel, merged in start order), an event's
//! thumbnail, protecting its clip, marking a moment, and the JSON an event is sent as (also on
//! `GET /api/events`). A peer asking gets this node's events only, with absolute URLs carrying
//! a media token, as recordings listings do.
//!
//! Invariants: times and spans are checked by [`super::time_range`] before any read; a peer's
//! answer is bounded like a recordings answer ([`super::federated`]: size, deadline, items kept
//! while parsed) and each of its events is checked field by field ([`PeerEvent::clean`]) —
//! an event that does not pass is left out, its URLs pass only through
//! [`crate::http::relay::peer_media_url`]; a listing holds at most [`MAX_EVENTS`] events.

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::federated::{Capped, ask_peer, find_node, parse_remote_id};
use super::{MAX_LIST_MS, camera_exists, time_range};
use crate::events::{EventError, EventId, EventRecord, Origin, valid_kind};
use crate::federation::tokens::Kind;
use crate::http::auth::Caller;
use crate::http::{
    ApiError, ApiResult, AppState, State, blocking, media_access, open_cors, origin_of, parse_time,
    rfc3339,
};
use crate::media::view::MAX_VIEW_MS;
use crate::storage::{CameraRecord, NodeKind, NodeRecord, clip_span, valid_camera_id};

/// Most events in one listing; the earliest are kept and `truncated` says so.
pub const MAX_EVENTS: usize = 5_000;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    camera: Option<String>,
    start: Option<String>,
    end: Option<String>,
    kind: Option<String>,
}

/// An event as the API sends it.
#[derive(Debug, Clone, Serialize)]
pub struct EventOut {
    id: String,
    camera: String,
    node: String,
    node_name: String,
    camera_name: String,
    kind: String,
    source: Origin,
    start: String,
    start_ms: i64,
    end: Option<String>,
    end_ms: Option<i64>,
    score: Option<f32>,
    zone: Option<String>,
    protected: bool,
    thumbnail_url: Option<String>,
    clip_url: Option<String>,
}

/// How a node did in a listing.
#[derive(Debug, Serialize)]
struct NodeOut {
    node: String,
    name: String,
    ok: bool,
    error: Option<String>,
    events: usize,
}

#[derive(Debug, Serialize)]
pub struct EventsListing {
    camera: String,
    start: String,
    end: String,
    events: Vec<EventOut>,
    nodes: Vec<NodeOut>,
    truncated: bool,
}

/// What this node reads of a peer's listing.
#[derive(Debug, Default, Deserialize)]
struct PeerListing {
    #[serde(default)]
    events: Capped<PeerEvent>,
    #[serde(default)]
    truncated: bool,
}

/// An event as a peer sent it: every field optional, checked by [`PeerEvent::clean`].
#[derive(Debug, Default, Deserialize)]
struct PeerEvent {
    id: Option<String>,
    camera: Option<String>,
    camera_name: Option<String>,
    kind: Option<String>,
    source: Option<Origin>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    score: Option<f32>,
    zone: Option<String>,
    protected: Option<bool>,
    thumbnail_url: Option<String>,
    clip_url: Option<String>,
}

impl PeerEvent {
    /// The event as this node lists it, or None when a field is missing or out of bounds.
    fn clean(self, node: &NodeRecord) -> Option<EventOut> {
        let id = self
            .id
            .filter(|i| (1..=20).contains(&i.len()) && i.bytes().all(|b| b.is_ascii_digit()))?;
        let camera = self.camera.filter(|c| valid_camera_id(c))?;
        let kind = self.kind.filter(|k| valid_kind(k))?;
        let times = &crate::http::TIME_DOMAIN_MS;
        let start_ms = self.start_ms.filter(|t| times.contains(t))?;
        let end_ms = match self.end_ms {
            Some(e) if times.contains(&e) && e >= start_ms => Some(e),
            Some(_) => return None,
            None => None,
        };
        let url = |u: Option<String>| {
            u.as_deref()
                .filter(|u| u.len() <= 2048)
                .and_then(|u| crate::http::relay::peer_media_url(node, u))
        };
        Some(EventOut {
            id,
            camera: format!("r-{}-{camera}", node.id),
            node: node.id.clone(),
            node_name: node.label.clone(),
            camera_name: crate::base::text::clean(
                self.camera_name.as_deref().unwrap_or(&camera),
                64,
            ),
            kind,
            source: self.source.unwrap_or(Origin::Camera),
            start: rfc3339(start_ms),
            start_ms,
            end: end_ms.map(rfc3339),
            end_ms,
            score: self
                .score
                .filter(|s| s.is_finite())
                .map(|s| s.clamp(0.0, 1.0)),
            zone: self
                .zone
                .map(|z| crate::base::text::clean(&z, crate::events::MAX_ZONE)),
            protected: self.protected.unwrap_or(false),
            thumbnail_url: url(self.thumbnail_url),
            clip_url: url(self.clip_url),
        })
    }
}

/// This node's facts an event's JSON needs: its id and name, and its cameras.
pub struct Local {
    node: String,
    name: String,
    cameras: HashMap<String, CameraRecord>,
}

impl Local {
    pub async fn load(st: &AppState) -> ApiResult<Self> {
        let index = st.index.clone();
        let cameras = blocking(move || Ok(index.cameras()?)).await?;
        Ok(Self {
            node: st.index.node_id().to_string(),
            name: st.label(),
            cameras: cameras.into_iter().map(|c| (c.id.clone(), c)).collect(),
        })
    }

    /// `e` as the API sends it, with URLs relative to this node (for its own pages).
    pub fn event(&self, e: EventRecord) -> EventOut {
        let cam = self.cameras.get(&e.camera);
        let now = jiff::Timestamp::now().as_millisecond();
        let (from, to) = clip_span(
            e.start_ms,
            e.end_ms.unwrap_or(now),
            cam.map(|c| (c.pre_roll_s, c.post_roll_s)),
        );
        // A view has a longest span: a longer clip plays its beginning.
        let to = to.min(from.saturating_add(MAX_VIEW_MS)).max(from + 1);
        EventOut {
            id: e.id.to_string(),
            node: self.node.clone(),
            node_name: self.name.clone(),
            camera_name: cam.map_or_else(|| e.camera.clone(), |c| c.name.clone()),
            kind: e.kind,
            source: e.origin,
            start: rfc3339(e.start_ms),
            start_ms: e.start_ms,
            end: e.end_ms.map(rfc3339),
            end_ms: e.end_ms,
            score: e.score,
            zone: e.zone,
            protected: e.protected,
            thumbnail_url: e
                .thumbnail
                .then(|| format!("/api/recordings/events/{}/thumbnail.jpg", e.id)),
            clip_url: Some(format!(
                "/api/recordings/{}/view.mp4?start={from}&end={to}",
                e.camera
            )),
            camera: e.camera,
        }
    }
}

/// This node's events of `cameras` in `[start, end)` (of `kind`), at most [`MAX_EVENTS`] + 1
/// (so a caller can tell there were more), as the API sends them; for a peer with absolute
/// URLs carrying a media token of the event's camera.
async fn local_events(
    st: &AppState,
    cameras: Vec<String>,
    (start, end): (i64, i64),
    kind: Option<&str>,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<Vec<EventOut>> {
    let log = st.events.clone();
    let kind = kind.map(str::to_string);
    let found = blocking(move || {
        let mut all = Vec::new();
        for cam in cameras {
            // Filtering by kind after the cap could hide events: read all of the range then.
            let limit = if kind.is_some() {
                usize::MAX
            } else {
                MAX_EVENTS + 1
            };
            let mut evs = log.list(&cam, start, end, limit).map_err(event_error)?;
            if let Some(k) = &kind {
                evs.retain(|e| &e.kind == k);
            }
            all.extend(evs);
        }
        all.sort_by_key(|e| (e.start_ms, e.id));
        all.truncate(MAX_EVENTS + 1);
        Ok(all)
    })
    .await?;
    let local = Local::load(st).await?;
    let mut out: Vec<EventOut> = found.into_iter().map(|e| local.event(e)).collect();
    if matches!(caller, Caller::Peer { .. }) {
        let origin = origin_of(headers).unwrap_or_default();
        let mut tokens: HashMap<String, String> = HashMap::new();
        for e in &mut out {
            let token = tokens
                .entry(e.camera.clone())
                .or_insert_with(|| st.tokens.issue(&e.camera, Kind::Recording, caller.key_id()));
            e.thumbnail_url = e
                .thumbnail_url
                .take()
                .map(|u| format!("{origin}{u}?token={token}"));
            e.clip_url = e
                .clip_url
                .take()
                .map(|u| format!("{origin}{u}&token={token}"));
        }
    }
    Ok(out)
}

/// `GET /api/recordings/events?camera=ID|r-{node}-{camera}|all&start=&end=[&kind=]`.
pub async fn list(
    st: State,
    Query(q): Query<EventsQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Json<EventsListing>> {
    let camera = q
        .camera
        .ok_or_else(|| ApiError::bad_request("camera is required (an id, or all)"))?;
    let range = time_range(
        q.start.as_deref(),
        q.end.as_deref(),
        86_400_000,
        (MAX_LIST_MS, "a listing"),
    )?;
    if let Some(k) = &q.kind {
        if !valid_kind(k) {
            return Err(ApiError::bad_request(format!(
                "kind '{}' is not a kind (lower-case letters, digits, '_' and '-')",
                crate::base::text::clean(k, 40)
            )));
        }
    }
    let kind = q.kind.as_deref();
    let peer = matches!(caller, Caller::Peer { .. });
    let me = NodeOut {
        node: st.index.node_id().to_string(),
        name: st.label(),
        ok: true,
        error: None,
        events: 0,
    };
    let mut listing = EventsListing {
        camera: camera.clone(),
        start: rfc3339(range.0),
        end: rfc3339(range.1),
        events: Vec::new(),
        nodes: Vec::new(),
        truncated: false,
    };
    if camera == "all" {
        let index = st.index.clone();
        let log = st.events.clone();
        let cams = blocking(move || {
            let mut ids: Vec<String> = index.cameras()?.into_iter().map(|c| c.id).collect();
            for c in log.cameras().map_err(event_error)? {
                if !ids.contains(&c) {
                    ids.push(c);
                }
            }
            Ok(ids)
        })
        .await?;
        let mine = local_events(&st, cams, range, kind, &caller, &headers).await?;
        listing.nodes.push(NodeOut {
            events: mine.len(),
            ..me
        });
        listing.events = mine;
        if !peer {
            let peers = st.peers.clone();
            let nodes: Vec<NodeRecord> = blocking(move || Ok(peers.nodes()?))
                .await?
                .into_iter()
                .filter(|n| n.enabled)
                .collect();
            let answers = futures::future::join_all(
                nodes
                    .iter()
                    .map(|n| peer_events(&st, n, "all", range, kind)),
            )
            .await;
            for (n, answer) in nodes.iter().zip(answers) {
                listing.nodes.push(node_out(n, &answer));
                if let Ok((events, cut)) = answer {
                    listing.truncated |= cut;
                    listing.events.extend(events);
                }
            }
        }
    } else if let (Some((node_id, cam)), false) = (parse_remote_id(&camera), peer) {
        let node = find_node(&st, node_id).await?;
        let (events, cut) = peer_events(&st, &node, cam, range, kind)
            .await
            .map_err(|e| ApiError(StatusCode::BAD_GATEWAY, format!("node {}: {e}", node.label)))?;
        listing
            .nodes
            .push(node_out(&node, &Ok((Vec::new(), false))));
        listing.nodes[0].events = events.len();
        listing.truncated = cut;
        listing.events = events;
    } else {
        let known = camera_exists(&st, &camera).await;
        if known.is_err() {
            // A deleted camera's events are still listed while they are kept.
            let log = st.events.clone();
            let has = blocking(move || log.cameras().map_err(event_error)).await?;
            if !has.contains(&camera) {
                known?;
            }
        }
        let mine = local_events(&st, vec![camera.clone()], range, kind, &caller, &headers).await?;
        listing.nodes.push(NodeOut {
            events: mine.len(),
            ..me
        });
        listing.events = mine;
    }
    // Stable: equal starts keep each node's order.
    listing.events.sort_by_key(|e| e.start_ms);
    if listing.events.len() > MAX_EVENTS {
        listing.events.truncate(MAX_EVENTS);
        listing.truncated = true;
    }
    Ok(Json(listing))
}

fn node_out(n: &NodeRecord, answer: &Result<(Vec<EventOut>, bool), String>) -> NodeOut {
    NodeOut {
        node: n.id.clone(),
        name: n.label.clone(),
        ok: answer.is_ok(),
        error: answer.as_ref().err().cloned(),
        events: answer.as_ref().map_or(0, |(e, _)| e.len()),
    }
}

/// A peer's events of `camera` (its own id, or `all`), checked; CartaNVR nodes have none.
async fn peer_events(
    st: &AppState,
    node: &NodeRecord,
    camera: &str,
    (start, end): (i64, i64),
    kind: Option<&str>,
) -> Result<(Vec<EventOut>, bool), String> {
    if node.kind == NodeKind::Cartanvr {
        return Ok((Vec::new(), false));
    }
    let query = {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("camera", camera)
            .append_pair("start", &start.to_string())
            .append_pair("end", &end.to_string());
        if let Some(k) = kind {
            q.append_pair("kind", k);
        }
        q.finish()
    };
    let path = format!("/api/recordings/events?{query}");
    let answer: PeerListing = ask_peer(st, node, &path).await?;
    let events: Vec<EventOut> = answer
        .events
        .items
        .into_iter()
        .filter_map(|e| e.clean(node))
        .filter(|e| kind.is_none_or(|k| e.kind == k))
        .collect();
    Ok((events, answer.events.cut || answer.truncated))
}

fn event_error(e: EventError) -> ApiError {
    match e {
        EventError::Invalid(m) => ApiError::bad_request(m),
        EventError::NotFound(id) => ApiError::not_found(format!("no event {id}")),
        EventError::ProtectedFull(m) => ApiError(StatusCode::CONFLICT, m),
        e => ApiError::internal(e),
    }
}

/// An event id from a path: this node's ids are decimal numbers.
fn event_id(raw: &str) -> ApiResult<EventId> {
    raw.parse::<u64>()
        .ok()
        .filter(|_| raw.len() <= 20 && raw.bytes().all(|b| b.is_ascii_digit()))
        .map(EventId)
        .ok_or_else(|| ApiError::not_found(format!("no event '{}'", raw.escape_debug())))
}

/// `GET /api/recordings/events/{id}/thumbnail.jpg`: users, peers, or a media token of the
/// event's camera (the one its clip plays with).
pub async fn thumbnail(
    st: State,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let id = event_id(&id)?;
    let log = st.events.clone();
    let found = blocking(move || log.get(id).map_err(event_error)).await?;
    let Some(e) = found else {
        return Err(ApiError::not_found(format!("no event {}", id.0)));
    };
    let cors = media_access(&st, &caller, &e.camera, Kind::Recording)?;
    let log = st.events.clone();
    let jpeg = blocking(move || {
        let Some((_, path)) = log.thumbnail(id).map_err(event_error)? else {
            return Ok(None);
        };
        match std::fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ApiError::internal(e)),
        }
    })
    .await?
    .ok_or_else(|| ApiError::not_found(format!("event {} has no thumbnail", id.0)))?;
    let mut res = (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "private, max-age=3600"),
        ],
        jpeg,
    )
        .into_response();
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtectInput {
    protected: bool,
}

/// `POST /api/recordings/events/{id}/protect` `{"protected": true|false}`: keep the clip (409
/// with the reason when kept clips would pass their share of the disk).
pub async fn protect(
    st: State,
    Path(id): Path<String>,
    Json(input): Json<ProtectInput>,
) -> ApiResult<Json<EventOut>> {
    let id = event_id(&id)?;
    let log = st.events.clone();
    let e = blocking(move || log.set_protected(id, input.protected).map_err(event_error)).await?;
    Ok(Json(Local::load(&st).await?.event(e)))
}

/// A time in a JSON body: epoch milliseconds or RFC 3339.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    Ms(i64),
    Text(String),
}

impl TimeArg {
    fn ms(&self, name: &str) -> ApiResult<i64> {
        match self {
            TimeArg::Ms(ms) => parse_time(name, &ms.to_string()),
            TimeArg::Text(t) => parse_time(name, t),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkInput {
    camera: String,
    /// Default: now.
    start: Option<TimeArg>,
    /// Default: the start.
    end: Option<TimeArg>,
    /// A short note, shown as the event's zone.
    note: Option<String>,
}

/// Longest marked moment.
const MAX_MARK_MS: i64 = MAX_VIEW_MS;

/// `POST /api/recordings/events`: a user marks a moment of one of this node's cameras (an event
/// of kind `marker`, already ended).
pub async fn mark(st: State, Json(input): Json<MarkInput>) -> ApiResult<Response> {
    camera_exists(&st, &input.camera).await?;
    let start = match &input.start {
        Some(t) => t.ms("start")?,
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let end = match &input.end {
        Some(t) => t.ms("end")?,
        None => start,
    };
    if end < start {
        return Err(ApiError::bad_request("end must not be before start"));
    }
    if end - start > MAX_MARK_MS {
        return Err(ApiError::bad_request(format!(
            "a marked moment lasts at most {} hours",
            MAX_MARK_MS / 3_600_000
        )));
    }
    let log = st.events.clone();
    let (index, layout) = (st.index.clone(), st.layout.clone());
    let open = st.recorder.open_segments().clone();
    let e = blocking(move || {
        let id = log
            .begin(
                &input.camera,
                "marker",
                Origin::Eyrie,
                start,
                None,
                input.note,
            )
            .map_err(event_error)?;
        log.end(id, end).map_err(event_error)?;
        // Its thumbnail: the recorded picture at its start, where the camera records MJPEG.
        if let Some(jpeg) = recorded_picture(&index, &layout, &open, &input.camera, start) {
            if let Err(e) = log.set_thumbnail(id, &jpeg) {
                tracing::warn!(event = id.0, "marker thumbnail: {e}");
            }
        }
        log.get(id)
            .map_err(event_error)?
            .ok_or_else(|| ApiError::internal("the marked event vanished"))
    })
    .await?;
    let out = Local::load(&st).await?.event(e);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// The recorded MJPEG picture of `camera` at `at_ms`, if it records MJPEG there and the
/// picture is small enough for a thumbnail. Blocking.
fn recorded_picture(
    index: &crate::storage::Index,
    layout: &crate::storage::Layout,
    open: &crate::media::segmenter::OpenSegments,
    camera: &str,
    at_ms: i64,
) -> Option<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let (path, offset, len) =
        crate::media::view::mjpeg_frame(index, layout, open, camera, at_ms).ok()?;
    if len > crate::events::MAX_THUMBNAIL as u64 {
        return None;
    }
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact(&mut buf).ok()?;
    Some(buf)
}
