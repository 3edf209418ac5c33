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
        .then(|| download_name(&st.label(), &camera, start));
    let mut res = hold(serve(&headers, &file, name.as_deref()), slot);
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

/// A downloaded view's file name: `{node label}-{camera}-{start, UTC}.mp4`, e.g.
/// `Garage-demo-2026-12-02T213900Z.mp4`, so files from several nodes do not collide. The label
/// is the admin's text: anything but ASCII letters, digits, `-`, `_` and `.` becomes `_`, so
/// the name is safe in a quoted header and on any file system.
fn download_name(label: &str, camera: &str, start: i64) -> String {
    let node: String = label
        .chars()
        .take(40)
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '-' | '_' | '.' => c,
            _ => '_',
        })
        .collect();
    let node = node.trim_matches('.');
    let when = rfc3339(start - start.rem_euclid(1000)).replace(':', "");
    let when = when.replace(".000Z", "Z");
    if node.is_empty() {
        format!("{camera}-{when}.mp4")
    } else {
        format!("{node}-{camera}-{when}.mp4")
    }
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

#[cfg(test)]
mod tests {
    use super::download_name;

    #[test]
    fn downloads_are_named_by_node_camera_and_time() {
        let t = 1_795_492_256_321; // 2026-11-24T03:50:56.321Z
        assert_eq!(
            download_name("Garage", "demo", t),
            "Garage-demo-2026-11-24T035056Z.mp4"
        );
        // The label is the admin's text: quotes, slashes and the like never reach the header.
        assert_eq!(
            download_name("Shed \"east\"/../ü", "demo", t),
            "Shed__east__..__-demo-2026-11-24T035056Z.mp4"
        );
        assert_eq!(
            download_name("..", "demo", t),
            "demo-2026-11-24T035056Z.mp4"
        );
    }
}
