//! One camera's recordings on this node as a listing: its segments in a time range (open ones
//! as far as they are committed), grouped into runs — consecutive segments of one connection
//! with the same stream format, each playable as one view. A peer asking gets absolute URLs with
//! a media token, since its browser fetches them from this node directly.

use axum::http::HeaderMap;
use serde::Serialize;

use crate::federation::tokens::Kind;
use crate::http::auth::Caller;
use crate::http::{ApiResult, State, blocking, origin_of, rfc3339};
use crate::storage::{Segment, SegmentState};
use crate::video::{Codec, TIMESCALE};

#[derive(Debug, Serialize)]
pub(super) struct SegmentOut {
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
pub(super) struct RunOut {
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
pub(super) struct Listing {
    camera: String,
    start: String,
    end: String,
    pub(super) segments: Vec<SegmentOut>,
    pub(super) runs: Vec<RunOut>,
}

pub(super) async fn local_listing(
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
        let token = st.tokens.issue(&camera, Kind::Recording, caller.key_id());
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

impl From<RunOut> for super::federated::Item {
    fn from(r: RunOut) -> Self {
        super::federated::Item {
            start: Some(r.start),
            end: Some(r.end),
            start_ms: Some(r.start_ms),
            end_ms: Some(r.end_ms),
            segments: Some(r.segments as u64),
            bytes: Some(r.bytes),
            // As the listing spells it (serde's lowercase name).
            codec: serde_json::to_value(r.codec)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string)),
            width: Some(r.width.into()),
            height: Some(r.height.into()),
            url: Some(r.url),
            ..Default::default()
        }
    }
}
