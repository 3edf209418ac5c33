//! Recordings: listing segments and runs, one MP4 for any time range, single segments; all
//! with ETag and single-range HTTP Range support (RFC 9110) through one code path.

use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::Caller;
use super::{
    ApiError, ApiResult, State, blocking, media_access, open_cors, origin_of, parse_time, rfc3339,
};
use crate::federation::tokens::Kind;
use crate::media::view::{self, ViewError, VirtualFile};
use crate::storage::{Segment, SegmentState, valid_camera_id};
use crate::video::{Codec, TIMESCALE};

/// Most files read from one CartaNVR playback answer.
const MAX_CARTANVR_FILES: usize = 10_000;

/// Longest span one listing covers.
const MAX_LIST_MS: i64 = 31 * 86_400_000;

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    camera: Option<String>,
    start: Option<String>,
    end: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    start: Option<String>,
    end: Option<String>,
    /// `?download=1`: sent as an attachment with a file name.
    download: Option<String>,
}

#[derive(Debug, Serialize)]
struct SegmentOut {
    id: u64,
    start: String,
    end: String,
    start_ms: i64,
    end_ms: i64,
    duration_s: f64,
    bytes: u64,
    frames: u32,
    key_frames: u32,
    codec: Codec,
    width: u16,
    height: u16,
    state: SegmentState,
    run: u64,
    url: String,
}

#[derive(Debug, Serialize)]
struct RunOut {
    start: String,
    end: String,
    start_ms: i64,
    end_ms: i64,
    segments: usize,
    bytes: u64,
    codec: Codec,
    width: u16,
    height: u16,
    url: String,
}

#[derive(Debug, Serialize)]
pub struct Listing {
    camera: String,
    start: String,
    end: String,
    segments: Vec<SegmentOut>,
    runs: Vec<RunOut>,
}

fn time_range(start: Option<&str>, end: Option<&str>, default_span: i64) -> ApiResult<(i64, i64)> {
    let end = match end {
        Some(e) => parse_time("end", e)?,
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let start = match start {
        Some(s) => parse_time("start", s)?,
        None => end - default_span,
    };
    if end <= start {
        return Err(ApiError::bad_request("end must be after start"));
    }
    Ok((start, end))
}

async fn camera_exists(st: &State, camera: &str) -> ApiResult<()> {
    if !valid_camera_id(camera) {
        return Err(ApiError::not_found(format!(
            "no camera '{}'",
            camera.escape_debug()
        )));
    }
    let index = st.index.clone();
    let cam = camera.to_string();
    let known = blocking(move || {
        Ok(index.camera(&cam)?.is_some() || index.cameras_with_segments()?.contains(&cam))
    })
    .await?;
    if known {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no camera '{camera}'")))
    }
}

/// `camera=ID` (this node's), `camera=r-{node}-{camera}` (asked of the node that holds it), or
/// `camera=all` (every node, in parallel, merged in time order).
pub async fn list(
    st: State,
    Query(q): Query<RangeQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Json<Value>> {
    let camera = q
        .camera
        .ok_or_else(|| ApiError::bad_request("camera is required (an id, or all)"))?;
    let (start, end) = time_range(q.start.as_deref(), q.end.as_deref(), 86_400_000)?;
    if end - start > MAX_LIST_MS {
        return Err(ApiError::bad_request("a listing spans at most 31 days"));
    }
    let peer = matches!(caller, Caller::Peer { .. });
    if camera == "all" {
        return all_listing(&st, start, end, &caller, &headers)
            .await
            .map(Json);
    }
    if let (Some((node, cam)), false) = (parse_remote_id(&camera), peer) {
        return remote_listing(&st, node, cam, &camera, start, end)
            .await
            .map(Json);
    }
    camera_exists(&st, &camera).await?;
    let listing = local_listing(&st, camera, start, end, &caller, &headers).await?;
    Ok(Json(serde_json::to_value(listing).expect("serializes")))
}

/// `r-{12 hex}-{camera}` → (node id, camera id on that node).
fn parse_remote_id(id: &str) -> Option<(&str, &str)> {
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
        let msg = v["error"].as_str().unwrap_or("error").to_string();
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

async fn remote_listing(
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
    if super::relay::relayed(&node) {
        for list in ["segments", "runs"] {
            if let Some(items) = v[list].as_array_mut() {
                for item in items {
                    let url = item["url"].as_str().unwrap_or_default();
                    item["url"] =
                        super::relay::rewrite_url(&node, url).map_or(Value::Null, Value::from);
                }
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

async fn all_listing(
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
                        if super::relay::relayed(n) {
                            let url = r["url"].as_str().unwrap_or_default();
                            r["url"] =
                                super::relay::rewrite_url(n, url).map_or(Value::Null, Value::from);
                        }
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

async fn local_listing(
    st: &State,
    camera: String,
    start: i64,
    end: i64,
    caller: &Caller,
    headers: &HeaderMap,
) -> ApiResult<Listing> {
    let index = st.index.clone();
    let cam = camera.clone();
    let segs = blocking(move || Ok(index.segments(&cam, start, end)?)).await?;
    let open = st.recorder.open_segments().lock().unwrap().clone();
    let mut out = Vec::new();
    for Segment { start_ms, row, .. } in segs {
        let (end_ms, ticks, bytes, frames) = match row.state {
            SegmentState::Open => match open.get(&row.id) {
                Some(o) => (o.end_ms, o.media_ticks, o.committed, o.frames),
                None => continue,
            },
            _ => (row.end_ms, row.media_ticks, row.bytes, row.frames),
        };
        if end_ms <= start || frames == 0 {
            continue;
        }
        out.push(SegmentOut {
            id: row.id,
            start: rfc3339(start_ms),
            end: rfc3339(end_ms),
            start_ms,
            end_ms,
            duration_s: ticks as f64 / TIMESCALE as f64,
            bytes,
            frames,
            key_frames: row.key_frames,
            codec: row.codec,
            width: row.width,
            height: row.height,
            state: row.state,
            run: row.run_id,
            url: format!("/api/segments/{}.mp4", row.id),
        });
    }
    // A run is consecutive segments of one connection with the same stream format.
    let mut runs: Vec<RunOut> = Vec::new();
    let mut prev: Option<&SegmentOut> = None;
    for s in &out {
        let joins = prev.is_some_and(|p| {
            p.run == s.run && p.codec == s.codec && p.width == s.width && p.height == s.height
        });
        match runs.last_mut() {
            Some(r) if joins => {
                r.end_ms = s.end_ms;
                r.end = s.end.clone();
                r.segments += 1;
                r.bytes += s.bytes;
            }
            _ => runs.push(RunOut {
                start: s.start.clone(),
                end: s.end.clone(),
                start_ms: s.start_ms,
                end_ms: s.end_ms,
                segments: 1,
                bytes: s.bytes,
                codec: s.codec,
                width: s.width,
                height: s.height,
                url: String::new(),
            }),
        }
        prev = Some(s);
    }
    for r in &mut runs {
        r.url = format!(
            "/api/recordings/{camera}/view.mp4?start={}&end={}",
            r.start_ms, r.end_ms
        );
    }
    // A peer's browser fetches these from this node directly: absolute, with a media token.
    if matches!(caller, Caller::Peer { .. }) {
        let origin = origin_of(headers).unwrap_or_default();
        let token = st.tokens.issue(&camera, Kind::Recording);
        for s in &mut out {
            s.url = format!("{origin}{}?token={token}", s.url);
        }
        for r in &mut runs {
            r.url = format!("{origin}{}&token={token}", r.url);
        }
    }
    Ok(Listing {
        camera,
        start: rfc3339(start),
        end: rfc3339(end),
        segments: out,
        runs,
    })
}

fn view_error(e: ViewError) -> ApiError {
    match e {
        ViewError::Empty => ApiError::not_found(e.to_string()),
        ViewError::BadRequest(m) => ApiError::bad_request(m),
        ViewError::Internal(m) => ApiError::internal(m),
    }
}

pub async fn view(
    st: State,
    Path(camera): Path<String>,
    Query(q): Query<ViewQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cors = media_access(&st, &caller, &camera, Kind::Recording)?;
    let (start, end) = time_range(q.start.as_deref(), q.end.as_deref(), 3_600_000)?;
    camera_exists(&st, &camera).await?;
    let index = st.index.clone();
    let layout = st.layout.clone();
    let open = st.recorder.open_segments().clone();
    let cam = camera.clone();
    let file = blocking(move || {
        view::build_view(&index, &layout, &open, &cam, start, end).map_err(view_error)
    })
    .await?;
    let name = q
        .download
        .is_some()
        .then(|| format!("{camera}-{}.mp4", rfc3339(start).replace(':', "")));
    let mut res = serve(&headers, &file, name.as_deref());
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameQuery {
    at: String,
    /// A media token: the auth layer reads it, [`media_access`] checks it.
    #[allow(dead_code)]
    token: Option<String>,
}

/// `GET /api/recordings/{camera}/frame.jpg?at=`: the recorded MJPEG picture at that time, as
/// it was stored (browsers cannot play MJPEG from MP4; an `<img>` shows this).
pub async fn frame(
    st: State,
    Path(camera): Path<String>,
    Query(q): Query<FrameQuery>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let cors = media_access(&st, &caller, &camera, Kind::Recording)?;
    let at = parse_time("at", &q.at)?;
    camera_exists(&st, &camera).await?;
    let index = st.index.clone();
    let layout = st.layout.clone();
    let open = st.recorder.open_segments().clone();
    let jpeg = blocking(move || {
        let (path, offset, len) =
            view::mjpeg_frame(&index, &layout, &open, &camera, at).map_err(view_error)?;
        let mut f = std::fs::File::open(&path).map_err(ApiError::internal)?;
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(offset))
            .map_err(ApiError::internal)?;
        let mut buf = vec![0u8; len as usize];
        std::io::Read::read_exact(&mut f, &mut buf).map_err(ApiError::internal)?;
        Ok(buf)
    })
    .await?;
    let mut res = Response::builder()
        .header(header::CONTENT_TYPE, "image/jpeg")
        .header(header::CACHE_CONTROL, "private, max-age=3600")
        .body(Body::from(jpeg))
        .unwrap();
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

#[derive(Debug, Deserialize)]
pub struct ReplayQuery {
    start: Option<String>,
    end: Option<String>,
}

/// Most replays streaming at once (each holds a connection for as long as its range lasts).
pub const MAX_REPLAYS: usize = 8;
/// Longest a single recorded picture is shown for in a replay (a stalled camera's gap).
const MAX_PICTURE_S: u64 = 5;

static REPLAYS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One of the [`MAX_REPLAYS`] replay slots, given back when the stream is dropped: when the
/// range ends or the client goes away (the server drops the body then).
struct ReplaySlot;

impl ReplaySlot {
    fn take() -> Option<ReplaySlot> {
        use std::sync::atomic::Ordering::SeqCst;
        REPLAYS
            .fetch_update(SeqCst, SeqCst, |n| (n < MAX_REPLAYS).then_some(n + 1))
            .ok()
            .map(|_| ReplaySlot)
    }
}

impl Drop for ReplaySlot {
    fn drop(&mut self) {
        REPLAYS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Where a replay stands: the segments still to play, and the pictures left of the current one.
struct Replay {
    layout: crate::storage::Layout,
    open: crate::media::segmenter::OpenSegments,
    segs: std::collections::VecDeque<Segment>,
    init: bytes::Bytes,
    path: std::path::PathBuf,
    file: Option<tokio::fs::File>,
    pics: std::collections::VecDeque<view::Picture>,
    start_ms: i64,
    end_ms: i64,
    due: tokio::time::Instant,
    _slot: ReplaySlot,
}

/// The pictures of `seg` that show during `[start_ms, end_ms)`. Blocking.
fn pictures_in(
    layout: &crate::storage::Layout,
    open: &crate::media::segmenter::OpenSegments,
    seg: &Segment,
    start_ms: i64,
    end_ms: i64,
) -> Result<(std::path::PathBuf, bytes::Bytes, Vec<view::Picture>), ViewError> {
    let (path, init, pics) = view::mjpeg_pictures(layout, open, seg)?;
    let shows = |i: usize, p: &view::Picture| {
        let until = pics
            .get(i + 1)
            .map_or(p.at_ms + (p.ticks * 1000 / TIMESCALE as u64) as i64, |n| {
                n.at_ms
            });
        p.at_ms < end_ms && until > start_ms
    };
    let chosen = pics
        .iter()
        .enumerate()
        .filter(|(i, p)| shows(*i, p))
        .map(|(_, p)| p.clone())
        .collect();
    Ok((path, init, chosen))
}

impl Replay {
    /// Moves on to the next segment that has pictures in the range; false when none is left or
    /// the stream format changed (the replay ends there, as a view does).
    async fn next_segment(&mut self) -> Result<bool, ViewError> {
        while let Some(seg) = self.segs.pop_front() {
            let (layout, open, range) = (
                self.layout.clone(),
                self.open.clone(),
                (self.start_ms, self.end_ms),
            );
            let got = tokio::task::spawn_blocking(move || {
                pictures_in(&layout, &open, &seg, range.0, range.1)
            })
            .await
            .map_err(|e| ViewError::Internal(e.to_string()))?;
            let (path, init, pics) = match got {
                Ok(g) => g,
                // Deleted by retention a moment ago: go on with the next one.
                Err(ViewError::Empty) => continue,
                Err(e) => return Err(e),
            };
            if pics.is_empty() {
                continue;
            }
            if !self.init.is_empty() && init != self.init {
                return Ok(false);
            }
            self.init = init;
            self.path = path;
            self.file = None;
            self.pics = pics.into();
            return Ok(true);
        }
        Ok(false)
    }

    /// The next part, at its time; `None` at the end of the range.
    async fn next_part(&mut self) -> Option<std::io::Result<bytes::Bytes>> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        if self.pics.is_empty() {
            match self.next_segment().await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    tracing::warn!("replay: {e}");
                    return None;
                }
            }
        }
        let pic = self.pics.pop_front()?;
        tokio::time::sleep_until(self.due).await;
        let shown = std::time::Duration::from_micros(pic.ticks * 1_000_000 / TIMESCALE as u64);
        self.due += shown.min(std::time::Duration::from_secs(MAX_PICTURE_S));
        let read = async {
            if self.file.is_none() {
                self.file = Some(tokio::fs::File::open(&self.path).await?);
            }
            let f = self.file.as_mut().expect("opened");
            f.seek(std::io::SeekFrom::Start(pic.offset)).await?;
            let mut jpeg = vec![0u8; pic.len as usize];
            f.read_exact(&mut jpeg).await?;
            Ok::<_, std::io::Error>(jpeg)
        };
        let jpeg = match read.await {
            Ok(j) => j,
            Err(e) => return Some(Err(e)),
        };
        let head = format!(
            "--{}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\nX-Timestamp: {}\r\n\r\n",
            crate::media::live::MJPEG_BOUNDARY,
            jpeg.len(),
            pic.at_ms
        );
        let mut part = Vec::with_capacity(head.len() + jpeg.len() + 2);
        part.extend_from_slice(head.as_bytes());
        part.extend_from_slice(&jpeg);
        part.extend_from_slice(b"\r\n");
        Some(Ok(part.into()))
    }
}

/// `GET /api/recordings/{camera}/replay.mjpeg?start=&end=`: a recorded MJPEG range played as
/// `multipart/x-mixed-replace`, one JPEG per part sent at its recorded pace, for an `<img>`
/// (browsers do not play MJPEG from MP4). Gaps between runs are closed up, as in a view; the
/// stream ends at `end`, at a change of stream format, or when the client goes away.
pub async fn replay(
    st: State,
    Path(camera): Path<String>,
    Query(q): Query<ReplayQuery>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let cors = media_access(&st, &caller, &camera, Kind::Recording)?;
    let (start_ms, end_ms) = match (q.start.as_deref(), q.end.as_deref()) {
        (Some(s), Some(e)) => time_range(Some(s), Some(e), 0)?,
        _ => return Err(ApiError::bad_request("start and end are required")),
    };
    if end_ms - start_ms > view::MAX_VIEW_MS {
        return Err(ApiError::bad_request(format!(
            "a replay spans at most {} hours; ask for a shorter range",
            view::MAX_VIEW_MS / 3_600_000
        )));
    }
    camera_exists(&st, &camera).await?;
    let index = st.index.clone();
    let cam = camera.clone();
    let segs = blocking(move || Ok(index.segments(&cam, start_ms, end_ms)?)).await?;
    let slot = ReplaySlot::take().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_REPLAYS} replays are playing already; try again when one ends"),
        )
    })?;
    let mut replay = Replay {
        layout: st.layout.clone(),
        open: st.recorder.open_segments().clone(),
        segs: segs.into(),
        init: bytes::Bytes::new(),
        path: std::path::PathBuf::new(),
        file: None,
        pics: Default::default(),
        start_ms,
        end_ms,
        due: tokio::time::Instant::now(),
        _slot: slot,
    };
    // The first segment is read before answering, so that a range without pictures, or a
    // camera that does not record MJPEG, is a clear error rather than an empty stream.
    if !replay.next_segment().await.map_err(view_error)? {
        return Err(view_error(ViewError::Empty));
    }
    let body = futures::stream::unfold(replay, |mut r| async move {
        r.next_part().await.map(|part| (part, r))
    });
    let mut res = Response::builder()
        .header(
            header::CONTENT_TYPE,
            format!(
                "multipart/x-mixed-replace; boundary={}",
                crate::media::live::MJPEG_BOUNDARY
            ),
        )
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-codec", "jpeg")
        .body(Body::from_stream(body))
        .unwrap();
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

pub async fn segment(
    st: State,
    Path(file): Path<String>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id: u64 = file
        .strip_suffix(".mp4")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::not_found("segments are addressed as /api/segments/{id}.mp4"))?;
    let index = st.index.clone();
    let seg = blocking(move || Ok(index.segment_by_id(id)?)).await?;
    // A token opens its camera's segments only; whether a segment exists is not its business.
    let camera = seg.as_ref().map_or("", |s| s.camera.as_str());
    let cors = media_access(&st, &caller, camera, Kind::Recording)?;
    let seg = seg.ok_or_else(|| ApiError::not_found(format!("no segment {id}")))?;
    let vf =
        view::segment_file(&st.layout, st.recorder.open_segments(), &seg).map_err(view_error)?;
    let mut res = serve(&headers, &vf, None);
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

/// Serves a virtual file: 304 for a matching `If-None-Match`, 206 for one satisfiable range
/// (unless `If-Range` names another version), 416 for an unsatisfiable one, else 200.
pub fn serve(headers: &HeaderMap, file: &VirtualFile, download: Option<&str>) -> Response {
    let len = file.size();
    let etag = file.etag();
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::ETAG, etag)
        .header(header::CACHE_CONTROL, "private, no-cache");
    if let Some(name) = download {
        builder = builder.header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        );
    }
    let matches = |v: &HeaderValue| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    };
    if headers.get(header::IF_NONE_MATCH).is_some_and(matches) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap();
    }
    let range_applies = headers
        .get(header::IF_RANGE)
        .is_none_or(|v| v.as_bytes() == etag.as_bytes());
    let range = headers
        .get(header::RANGE)
        .filter(|_| range_applies)
        .and_then(|v| v.to_str().ok());
    if let Some(r) = range {
        match http_range_header::parse_range_header(r).map(|p| p.validate(len)) {
            Ok(Ok(ranges)) if ranges.len() == 1 => {
                let (a, b) = (*ranges[0].start(), *ranges[0].end());
                return builder
                    .status(StatusCode::PARTIAL_CONTENT)
                    .header(header::CONTENT_RANGE, format!("bytes {a}-{b}/{len}"))
                    .header(header::CONTENT_LENGTH, b + 1 - a)
                    .body(Body::from_stream(file.body(a, b + 1)))
                    .unwrap();
            }
            Ok(Err(_)) => {
                return (
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                    Json(serde_json::json!({"error": format!("range not satisfiable; the file has {len} bytes")})),
                )
                    .into_response();
            }
            // Malformed, or several ranges: RFC 9110 lets a server ignore Range; send it all.
            _ => {}
        }
    }
    builder
        .status(StatusCode::OK)
        .header(header::CONTENT_LENGTH, len)
        .body(Body::from_stream(file.body(0, len)))
        .unwrap()
}
