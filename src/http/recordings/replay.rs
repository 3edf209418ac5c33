//! `replay.mjpeg`: a recorded MJPEG range played as `multipart/x-mixed-replace` at its recorded
//! pace. Each replay holds a connection and a file for as long as its range lasts, so at most
//! [`MAX_REPLAYS`] play at once on the whole node: a [`Slot`] of [`REPLAYS`], taken before the
//! stream starts and given back when it drops (range over, or the client gone). A picture is shown for at most [`MAX_PICTURE_S`], so a gap never stalls a
//! stream.

use axum::Extension;
use axum::extract::{Path, Query};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::slots::{Slot, Slots};
use super::{camera_exists, time_range, view_error};
use crate::federation::tokens::Kind;
use crate::http::auth::Caller;
use crate::http::{ApiError, ApiResult, State, blocking, media_access, open_cors};
use crate::media::view::{self, ViewError};
use crate::storage::Segment;
use crate::video::TIMESCALE;

#[derive(Debug, Deserialize)]
pub struct ReplayQuery {
    start: Option<String>,
    end: Option<String>,
}

/// Most replays streaming at once (each holds a connection for as long as its range lasts).
pub const MAX_REPLAYS: usize = 8;
/// Longest a single recorded picture is shown for in a replay (a stalled camera's gap).
const MAX_PICTURE_S: u64 = 5;

static REPLAYS: Slots = Slots::new("replays", MAX_REPLAYS, MAX_REPLAYS);

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
    _slot: Slot,
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
            .await?;
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
        (Some(s), Some(e)) => time_range(Some(s), Some(e), 0, (view::MAX_VIEW_MS, "a replay"))?,
        _ => return Err(ApiError::bad_request("start and end are required")),
    };
    camera_exists(&st, &camera).await?;
    let index = st.index.clone();
    let cam = camera.clone();
    let segs = blocking(move || Ok(index.segments(&cam, start_ms, end_ms)?)).await?;
    let slot = match REPLAYS.take(&caller) {
        Ok(slot) => slot,
        Err(refused) => return Ok(refused.into_response()),
    };
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
        .body(crate::http::live::until_revoked(&st, &caller, body))
        .unwrap();
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}
