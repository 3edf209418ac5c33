//! `GET/POST /api/system/update` and `POST /api/system/reboot`: the HTTP side of appliance
//! updates (src/system does the work; docs/update.md describes the wire). Every route here is
//! declared at `Access::User` in routes.rs, so only a logged-in user reaches these handlers.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::Query;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiResult, State, blocking, settings};
use crate::system::update::{UpdateError, parse_sha256};

/// How long a reboot waits after its answer, so that the answer reaches the caller.
const REBOOT_DELAY: Duration = Duration::from_secs(1);

fn not_appliance(st: &super::AppState) -> ApiError {
    ApiError(
        StatusCode::CONFLICT,
        UpdateError::NotAppliance(st.system.cfg.boot_env.display().to_string()).to_string(),
    )
}

/// `GET /api/system/update`: which slot runs and the slot state.
pub async fn status(st: State) -> ApiResult<Json<Value>> {
    let sys = st.system.clone();
    let status = blocking(move || sys.status().map_err(ApiError::internal)).await?;
    let version = env!("CARGO_PKG_VERSION");
    Ok(Json(match status {
        Some(s) => json!({
            "appliance": true,
            "version": version,
            "slot": s.slot,
            "active": s.ab.active,
            "next": s.ab.next,
            "trial": s.ab.trial,
            "failed": s.ab.failed,
            "updating": st.system.updating.try_lock().is_err(),
        }),
        None => json!({ "appliance": false, "version": version }),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    #[serde(default)]
    reboot: bool,
}

/// `POST /api/system/update[?reboot=true]`: the body is the new root squashfs image.
pub async fn update(
    st: State,
    Query(q): Query<UpdateQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<Value>> {
    if st.system.boot.is_none() {
        return Err(not_appliance(&st));
    }
    let sha256 = headers
        .get("x-eyrie-sha256")
        .map(|v| parse_sha256(v.to_str().unwrap_or("")))
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let trust = {
        let st = st.0.clone();
        blocking(move || {
            let keys = settings::update_keys(&st)?;
            st.system.trust(&keys).map_err(refused)
        })
        .await?
    };
    let written = st
        .system
        .write_image(body.into_data_stream(), length, sha256, &trust)
        .await
        .map_err(refused)?;
    if q.reboot {
        reboot_soon(&st);
    }
    Ok(Json(json!({
        "slot": written.slot,
        "next": written.slot,
        "bytes": written.bytes,
        "sha256": written.sha256,
        "signed_by": written.signed_by,
        "rebooting": q.reboot,
        "message": format!(
            "slot {} holds the new image; {}",
            written.slot,
            if q.reboot { "rebooting into it now" } else { "a reboot applies it (POST /api/system/reboot)" }
        ),
    })))
}

/// The answer to an update refused.
fn refused(e: UpdateError) -> ApiError {
    let status = match &e {
        UpdateError::NotAppliance(_) | UpdateError::Busy | UpdateError::Keys(_) => {
            StatusCode::CONFLICT
        }
        UpdateError::TooLarge(..) => StatusCode::PAYLOAD_TOO_LARGE,
        UpdateError::BadImage(_)
        | UpdateError::Mismatch { .. }
        | UpdateError::Signature(_)
        | UpdateError::Body(_) => StatusCode::BAD_REQUEST,
        UpdateError::Io(_) => return ApiError::internal(&e),
    };
    tracing::warn!("update refused: {e}");
    ApiError(status, e.to_string())
}

/// `POST /api/system/reboot`: answers, then runs the reboot command.
pub async fn reboot(st: State) -> ApiResult<(StatusCode, Json<Value>)> {
    if st.system.boot.is_none() {
        return Err(not_appliance(&st));
    }
    if st.system.updating.try_lock().is_err() {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "an update is being written; reboot when it is done".into(),
        ));
    }
    reboot_soon(&st);
    Ok((StatusCode::ACCEPTED, Json(json!({ "rebooting": true }))))
}

fn reboot_soon(st: &Arc<super::AppState>) {
    let cmd = st.system.cfg.reboot_command.clone();
    tracing::warn!(?cmd, "rebooting at the admin's request");
    tokio::spawn(async move {
        tokio::time::sleep(REBOOT_DELAY).await;
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(&cmd[0])
                .args(&cmd[1..])
                .stdin(std::process::Stdio::null())
                .status()
        })
        .await;
        match out {
            Ok(Ok(s)) if s.success() => {}
            Ok(Ok(s)) => tracing::error!("the reboot command failed: {s}"),
            Ok(Err(e)) => tracing::error!("the reboot command did not run: {e}"),
            Err(e) => tracing::error!("the reboot command did not run: {e}"),
        }
    });
}
