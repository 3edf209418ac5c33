//! The calls a CartaNVR node makes of its peers, answered in its own dialect, so a CartaNVR
//! node can list this node as one of its remote nodes (docs/federation.md):
//!
//! * `GET /api/maintenance/health` → `{"status", "components", "remote_nodes"}`;
//! * `GET /api/playback/cam_{id}?start=&end=` → `[{"file", "timestamp", "duration"}]`;
//! * `GET /api/recordings/{camera}/{segment}-{token}.mp4`: the `file` paths above. CartaNVR's
//!   browser appends `?api_key=<key>` to them; Eyrie never reads keys from URLs, so each path
//!   carries its own short-lived media token instead, and the query is ignored.
//!
//! `GET /api/cameras` needs no dialect of its own: rows carry `id`, `name`, `enabled`,
//! `is_hevc` and `has_audio` as CartaNVR reads them, and ids never contain `_`.

use axum::Json;
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, State, blocking, parse_time};
use crate::federation::tokens::Kind;
use crate::recorder::CameraState;
use crate::storage::{SegmentState, valid_camera_id};
use crate::video::TIMESCALE;

pub async fn health(st: State) -> ApiResult<Json<Value>> {
    let index = st.index.clone();
    let root = st.layout.recordings_dir();
    let (db_ok, cams, dir_ok) = blocking(move || {
        let cams = index.cameras();
        Ok((
            cams.is_ok(),
            cams.unwrap_or_default(),
            root.is_dir() || !root.exists(),
        ))
    })
    .await?;
    let recording_ok = cams
        .iter()
        .filter(|c| c.enabled)
        .all(|c| st.recorder.status(&c.id).state == CameraState::Recording);
    let healthy = db_ok && dir_ok && recording_ok;
    Ok(Json(json!({
        "status": if healthy { "healthy" } else { "degraded" },
        "components": {
            "recordingsDir": if dir_ok { "ok" } else { "missing" },
            // Eyrie records without ffmpeg; this reports its own recording pipeline instead.
            "ffmpeg": if recording_ok { "ok" } else { "error" },
            "database": if db_ok { "ok" } else { "error" },
        },
        // This node's own peers are its business: a peer asking gets none (no loops).
        "remote_nodes": [],
    })))
}

#[derive(Debug, Deserialize)]
pub struct PlaybackQuery {
    start: Option<String>,
    end: Option<String>,
}

/// CartaNVR sends `start`/`end` as epoch milliseconds or a date string.
fn carta_time(name: &str, v: &str) -> ApiResult<i64> {
    parse_time(name, v).or_else(|e| {
        v.parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
            .map(|z| z.timestamp().as_millisecond())
            .filter(|ms| super::TIME_DOMAIN_MS.contains(ms))
            .ok_or(e)
    })
}

pub async fn playback(
    st: State,
    Path(camera): Path<String>,
    Query(q): Query<PlaybackQuery>,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
) -> ApiResult<Json<Value>> {
    let id = camera.strip_prefix("cam_").unwrap_or(&camera).to_string();
    if !valid_camera_id(&id) {
        return Err(ApiError::not_found(format!(
            "no camera '{}'",
            id.escape_debug()
        )));
    }
    let end = match &q.end {
        Some(v) => carta_time("end", v)?,
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let start = match &q.start {
        Some(v) => carta_time("start", v)?,
        None => end.saturating_sub(86_400_000),
    };
    if end
        .checked_sub(start)
        .is_none_or(|span| span <= 0 || span > 31 * 86_400_000)
    {
        return Err(ApiError::bad_request(
            "start must be before end, at most 31 days apart",
        ));
    }
    let index = st.index.clone();
    let cam = id.clone();
    let segs = blocking(move || {
        if index.camera(&cam)?.is_none() && !index.cameras_with_segments()?.contains(&cam) {
            return Err(ApiError::not_found(format!("no camera '{cam}'")));
        }
        Ok(index.segments(&cam, start, end)?)
    })
    .await?;
    let token = st.tokens.issue(&id, Kind::Recording, caller.key_id());
    let files: Vec<Value> = segs
        .into_iter()
        .filter(|s| s.row.state != SegmentState::Open && s.row.end_ms > start)
        .map(|s| {
            json!({
                "file": format!("/api/recordings/{id}/{}-{token}.mp4", s.row.id),
                "timestamp": s.start_ms,
                "duration": s.row.media_ticks as f64 / TIMESCALE as f64,
            })
        })
        .collect();
    Ok(Json(Value::Array(files)))
}

/// `{segment}-{token}.mp4` under its camera: one segment, opened by the token in its path.
pub async fn file(
    st: State,
    Path((camera, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let nope = || ApiError::not_found("no such recording");
    let (id, token) = file
        .strip_suffix(".mp4")
        .and_then(|f| f.split_once('-'))
        .ok_or_else(nope)?;
    let id: u64 = id.parse().map_err(|_| nope())?;
    if !valid_camera_id(&camera) {
        return Err(nope());
    }
    if !st.tokens.check(token, &camera, Kind::Recording) {
        return Err(ApiError(
            axum::http::StatusCode::UNAUTHORIZED,
            "media token expired or forged".into(),
        ));
    }
    let index = st.index.clone();
    let seg = blocking(move || Ok(index.segment_by_id(id)?))
        .await?
        .filter(|s| s.camera == camera)
        .ok_or_else(nope)?;
    let vf = crate::media::view::segment_file(&st.layout, st.recorder.open_segments(), &seg)
        .map_err(|_| nope())?;
    let mut res = super::ranges::serve(&headers, &vf, None);
    super::open_cors(&mut res);
    Ok(res)
}
