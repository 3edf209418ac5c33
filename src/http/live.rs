//! `GET /api/cameras/{id}/live`: live fMP4 over one chunked HTTP response (init segment, the
//! frames since the last key frame, then each frame as it arrives), for Media Source Extensions
//! via `fetch()` streaming. The codec string is in the `X-Codec` header. An MJPEG camera's is
//! `multipart/x-mixed-replace` instead, one JPEG per part, for an `<img>`.
//!
//! A stream opened with a federation key, or with a token issued under one, ends as soon as
//! that key is revoked ([`until_revoked`]).

use axum::Extension;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;

use super::auth::Caller;
use super::{ApiError, ApiResult, State, media_access, open_cors};
use crate::federation::tokens::Kind;
use crate::media::live::LiveMsg;
use crate::storage::valid_camera_id;

pub async fn live(
    st: State,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    if !valid_camera_id(&id) {
        return Err(ApiError::not_found(format!(
            "no camera '{}'",
            id.escape_debug()
        )));
    }
    let cors = media_access(&st, &caller, &id, Kind::Live)?;
    let hub = st
        .recorder
        .live(&id)
        .ok_or_else(|| ApiError::not_found(format!("camera '{id}' is not recording")))?;
    let sub = hub.subscribe().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("camera '{id}' is not streaming right now"),
        )
    })?;
    let backlog_empty = sub.backlog.is_empty();
    let head = futures::stream::iter(
        std::iter::once(sub.init)
            .filter(|b| !b.is_empty())
            .chain(sub.backlog)
            .map(Ok::<_, std::io::Error>),
    );
    // Starts on a key frame when there was no backlog; stops at the end of the stream, and
    // drops a viewer that fell too far behind: the error makes hyper close the connection at
    // once, with what the socket still held for it, rather than try to finish the response.
    let started = !backlog_empty;
    let tail = futures::stream::unfold(Some((sub.rx, started)), |state| async move {
        let (mut rx, mut started) = state?;
        loop {
            match rx.recv().await {
                Ok(LiveMsg::Fragment(b, key)) => {
                    started |= key;
                    if started {
                        return Some((Ok(b), Some((rx, started))));
                    }
                }
                Ok(LiveMsg::End) | Err(RecvError::Closed) => return None,
                Err(RecvError::Lagged(n)) => {
                    let e = std::io::Error::other(format!("viewer fell {n} frames behind"));
                    return Some((Err(e), None));
                }
            }
        }
    });
    let body = until_revoked(&st, &caller, head.chain(tail));
    let mut res = Response::builder()
        .header(header::CONTENT_TYPE, sub.content_type)
        .header(header::CACHE_CONTROL, "no-store")
        .header("x-codec", sub.codec)
        .body(body)
        .unwrap();
    if cors {
        open_cors(&mut res);
    }
    Ok(res)
}

/// The body of a long response to `caller`: `stream`, cut off with an error (so the connection
/// closes at once, nothing queued flushed) when the federation key the caller stands on is
/// revoked.
pub(super) fn until_revoked<S>(st: &super::AppState, caller: &Caller, stream: S) -> Body
where
    S: Stream<Item = std::io::Result<bytes::Bytes>> + Send + 'static,
{
    let Some(key) = caller.key_id() else {
        return Body::from_stream(stream);
    };
    let revoked = st.keys.revoked(key);
    let cut = futures::stream::once(revoked)
        .map(|()| Err(std::io::Error::other("the federation key was revoked")));
    // Whichever comes first: the stream's end, or the revocation's error.
    let mut done = false;
    let body = futures::stream::select(
        stream
            .map(Some)
            .chain(futures::stream::once(async { None })),
        cut.map(Some),
    )
    .take_while(move |item| {
        let go = !done && item.is_some();
        done |= matches!(item, None | Some(Err(_)));
        std::future::ready(go)
    })
    .filter_map(std::future::ready);
    Body::from_stream(body)
}
