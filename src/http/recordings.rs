//! Recordings: listing segments and runs, one MP4 for any time range, single segments; all
//! with ETag and single-range HTTP Range support (RFC 9110) through one code path.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiResult, State, blocking, parse_time, rfc3339};
use crate::media::view::{self, ViewError, VirtualFile};
use crate::storage::{Segment, SegmentState, valid_camera_id};
use crate::video::{Codec, TIMESCALE};

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

pub async fn list(st: State, Query(q): Query<RangeQuery>) -> ApiResult<Json<Listing>> {
    let camera = q
        .camera
        .ok_or_else(|| ApiError::bad_request("camera is required"))?;
    let (start, end) = time_range(q.start.as_deref(), q.end.as_deref(), 86_400_000)?;
    if end - start > MAX_LIST_MS {
        return Err(ApiError::bad_request("a listing spans at most 31 days"));
    }
    camera_exists(&st, &camera).await?;
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
    Ok(Json(Listing {
        camera,
        start: rfc3339(start),
        end: rfc3339(end),
        segments: out,
        runs,
    }))
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
    headers: HeaderMap,
) -> ApiResult<Response> {
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
    Ok(serve(&headers, &file, name.as_deref()))
}

pub async fn segment(
    st: State,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id: u64 = file
        .strip_suffix(".mp4")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::not_found("segments are addressed as /api/segments/{id}.mp4"))?;
    let index = st.index.clone();
    let seg = blocking(move || Ok(index.segment_by_id(id)?))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no segment {id}")))?;
    let vf =
        view::segment_file(&st.layout, st.recorder.open_segments(), &seg).map_err(view_error)?;
    Ok(serve(&headers, &vf, None))
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
