//! This node's recorded media: `view.mp4` (one MP4 for any time range, built from the index
//! without copying), single segments, and one recorded MJPEG picture. Each answers users and
//! peers, or a media token for exactly its camera ([`media_access`]); byte ranges and ETags are
//! [`crate::http::ranges::serve`]'s. Views being sent at once are bounded by [`MAX_VIEWS`], per
//! caller by [`MAX_VIEWS_PER_CALLER`].

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::slots::{Slots, hold};
use super::{camera_exists, time_range, view_error};
use crate::federation::tokens::Kind;
use crate::http::auth::Caller;
use crate::http::ranges::serve;
use crate::http::{
    ApiError, ApiResult, State, blocking, media_access, open_cors, parse_time, rfc3339,
};
use crate::media::view;

/// Most `view.mp4` answers being built or sent at once on the node, and for one caller (a
/// user, a peer key, a media token). Each holds a connection, open files and its view's
/// fragment table while it streams.
pub const MAX_VIEWS: usize = 8;
pub const MAX_VIEWS_PER_CALLER: usize = 4;
static VIEWS: Slots = Slots::new("views", MAX_VIEWS, MAX_VIEWS_PER_CALLER);

#[derive(Debug, Deserialize)]
pub struct ViewQuery {
    start: Option<String>,
    end: Option<String>,
    /// `?download=1`: sent as an attachment with a file name.
    download: Option<String>,
}

pub async fn view(
    st: State,
    Path(camera): Path<String>,
    Query(q): Query<ViewQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let cors = media_access(&st, &caller, &camera, Kind::Recording)?;
    let (start, end) = time_range(
        q.start.as_deref(),
        q.end.as_deref(),
        3_600_000,
        (view::MAX_VIEW_MS, "a view"),
    )?;
    camera_exists(&st, &camera).await?;
    // Taken before the view is built, held until its body is sent or dropped.
    let slot = match VIEWS.take(&caller) {
        Ok(slot) => slot,
        Err(refused) => return Ok(refused.into_response()),
    };
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
    let mut res = hold(serve(&headers, &file, name.as_deref()), slot);
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
