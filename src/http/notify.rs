//! `POST /api/onvif/notify/{token}`: ONVIF cameras without a PullPoint push their event
//! notifications here (WS-BaseNotification Notify, [`crate::onvif::push`]). Cameras cannot log
//! in, so the route is public and the token in the path is the credential: one random token per
//! subscription, known only to Eyrie and that camera, gone when the subscription ends.
//!
//! Invariants: the body is at most [`MAX_NOTIFY_BODY`] (413 beyond); an unknown or expired
//! token is 404 and is not logged (an attacker decides how often that happens); a known token
//! over its rate is 429; a body that is not a SOAP Notify is 400. Nothing else is reachable
//! from here: the notices only go to the token's own watch.

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;

use super::{ApiError, ApiResult, State};
use crate::onvif::push::{MAX_NOTIFY_BODY, Refused};

pub const MAX_BODY: usize = MAX_NOTIFY_BODY;

pub async fn notify(st: State, Path(token): Path<String>, body: Bytes) -> ApiResult<StatusCode> {
    let inbox = st.recorder.onvif_events().inbox().clone();
    match inbox.deliver(&token, &body) {
        Ok(_) => Ok(StatusCode::OK),
        Err(Refused::Unknown) => Err(ApiError::not_found("no such subscription")),
        Err(Refused::TooMany) => Err(ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many notifications".into(),
        )),
        Err(Refused::Malformed(why)) => {
            Err(ApiError::bad_request(format!("not an ONVIF Notify: {why}")))
        }
    }
}
