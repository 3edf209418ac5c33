//! Recordings over HTTP, one concern per file:
//!
//! - this file: `GET /api/recordings`, which picks where a listing comes from by the camera id
//!   (`ID` this node's, `r-{node}-{camera}` a peer's, `all` every node's), and the checks every
//!   recordings route shares (a time range, a camera that exists);
//! - [`local`]: this node's segments and runs of one camera, as a listing;
//! - [`federated`]: listings asked of peers (Eyrie and CartaNVR), and the all-nodes merge;
//! - [`events`](mod@events): events (motion, camera events, markers) listed like recordings, their
//!   thumbnails, protecting a clip, marking a moment;
//! - [`files`]: this node's media: one MP4 for any time range, single segments, one recorded
//!   picture; byte ranges are served by [`super::ranges`];
//! - [`replay`](mod@replay): a recorded MJPEG range played back at its pace;
//! - [`slots`]: the bounds on how many views and replays stream at once, per node and caller.
//!
//! Invariants: every time range is checked here (each time within [`crate::http::TIME_DOMAIN_MS`],
//! differences checked, `end` after `start`, at most [`MAX_LIST_MS`]
//! for a listing) before any index read; a camera id is checked with
//! [`crate::storage::valid_camera_id`] before it names a file or a query to the index.

mod events;
pub(crate) mod federated;
mod files;
mod local;
mod replay;
mod slots;

pub use events::{Local, list as events, mark, protect, thumbnail};
pub use files::{frame, segment, view};
pub use replay::replay;

use axum::extract::Query;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Deserialize;

use super::auth::Caller;
use super::{ApiError, ApiResult, State, blocking, parse_time};
use crate::media::view::ViewError;
use crate::storage::valid_camera_id;

/// Longest span one listing covers.
const MAX_LIST_MS: i64 = 31 * 86_400_000;

#[derive(Debug, Deserialize)]
pub struct RangeQuery {
    camera: Option<String>,
    start: Option<String>,
    end: Option<String>,
    /// `segments=0`: runs only (a timeline of days needs no segments: a week of 10 s segments
    /// is 60 000 of them).
    segments: Option<String>,
}

impl RangeQuery {
    fn with_segments(&self) -> bool {
        !matches!(self.segments.as_deref(), Some("0" | "false"))
    }
}

/// `[start, end)` from a query: each within [`crate::http::TIME_DOMAIN_MS`] (so no arithmetic
/// on them overflows), `end` after `start`, at most `max_span` ms apart (`what` names the limit
/// in the error). `end` defaults to now, `start` to `default_span` before `end`.
pub(super) fn time_range(
    start: Option<&str>,
    end: Option<&str>,
    default_span: i64,
    (max_span, what): (i64, &str),
) -> ApiResult<(i64, i64)> {
    let end = match end {
        Some(e) => parse_time("end", e)?,
        None => jiff::Timestamp::now().as_millisecond(),
    };
    let start = match start {
        Some(s) => parse_time("start", s)?,
        None => end.saturating_sub(default_span),
    };
    match end.checked_sub(start) {
        Some(span) if span <= 0 => Err(ApiError::bad_request("end must be after start")),
        Some(span) if span <= max_span => Ok((start, end)),
        _ => Err(ApiError::bad_request(format!(
            "{what} spans at most {}; ask for a shorter range",
            span_words(max_span)
        ))),
    }
}

/// "31 days", "6 hours".
fn span_words(ms: i64) -> String {
    match ms {
        ms if ms % 86_400_000 == 0 => format!("{} days", ms / 86_400_000),
        ms => format!("{} hours", ms / 3_600_000),
    }
}

pub(super) async fn camera_exists(st: &State, camera: &str) -> ApiResult<()> {
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

pub(super) fn view_error(e: ViewError) -> ApiError {
    match e {
        ViewError::Empty => ApiError::not_found(e.to_string()),
        e if e.is_bad_request() => ApiError::bad_request(e.to_string()),
        e => ApiError::internal(e),
    }
}

/// `camera=ID` (this node's), `camera=r-{node}-{camera}` (asked of the node that holds it), or
/// `camera=all` (every node, in parallel, merged in time order).
pub async fn list(
    st: State,
    Query(q): Query<RangeQuery>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let segments = q.with_segments();
    let camera = q
        .camera
        .ok_or_else(|| ApiError::bad_request("camera is required (an id, or all)"))?;
    let (start, end) = time_range(
        q.start.as_deref(),
        q.end.as_deref(),
        86_400_000,
        (MAX_LIST_MS, "a listing"),
    )?;
    let peer = matches!(caller, Caller::Peer { .. });
    if camera == "all" {
        let listing = federated::all_listing(&st, start, end, &caller, &headers).await?;
        return Ok(Json(listing).into_response());
    }
    if let (Some((node, cam)), false) = (federated::parse_remote_id(&camera), peer) {
        let listing =
            federated::remote_listing(&st, node, cam, &camera, start, end, segments).await?;
        return Ok(Json(listing).into_response());
    }
    camera_exists(&st, &camera).await?;
    let mut listing = local::local_listing(&st, camera, start, end, &caller, &headers).await?;
    if !segments {
        listing.segments.clear();
    }
    Ok(Json(listing).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(start: &str, end: &str, limit: i64) -> String {
        let e = time_range(Some(start), Some(end), 0, (limit, "a view")).unwrap_err();
        assert_eq!(e.0, axum::http::StatusCode::BAD_REQUEST, "{start}..{end}");
        e.1
    }

    #[test]
    fn time_ranges_cannot_wrap_past_their_limit() {
        let now = jiff::Timestamp::now().as_millisecond().to_string();
        let six_h = 6 * 3_600_000;
        // i64::MIN - now wraps to a small positive span in a release build.
        assert!(refused(&i64::MIN.to_string(), &now, six_h).contains("start"));
        assert!(refused("0", &i64::MAX.to_string(), six_h).contains("end"));
        assert!(refused("-1", "1000", six_h).contains("1970"));
        assert!(refused("-9999-01-01T00:00:00Z", &now, six_h).contains("start"));
        assert!(refused("0", "999999999999", six_h).contains("6 hours"));
        assert!(refused("1000", "1000", six_h).contains("after start"));
        assert!(refused("0", &(31 * 86_400_001i64).to_string(), MAX_LIST_MS).contains("31 days"));
        assert_eq!(
            time_range(Some("1000"), Some("2000"), 0, (six_h, "a view")).unwrap(),
            (1000, 2000)
        );
        // Defaults: now, and the span before it.
        let (s, e) = time_range(None, None, 3_600_000, (six_h, "a view")).unwrap();
        assert_eq!(e - s, 3_600_000);
    }
}
