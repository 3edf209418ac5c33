//! `/api/system/devices` and `/api/system/onvif/scan`: cameras this node can record without
//! anyone typing a URL: local V4L2 devices, and IP cameras found with ONVIF. Credentials given
//! to a scan are used for that scan only and never stored or returned.

use axum::Json;
use axum::body::Bytes;
use axum::http::StatusCode;
use serde::Deserialize;

use super::{ApiError, ApiResult, State};
use crate::capture::v4l2::{DeviceInfo, M2mEncoder};
use crate::onvif::{self, Credentials, ScanResult};

#[derive(Debug, serde::Serialize)]
pub struct DeviceList {
    devices: Vec<DeviceInfo>,
    /// Hardware H.264 encoders (V4L2 memory-to-memory) found on this machine.
    encoders: Vec<M2mEncoder>,
}

/// Longest a device listing may take (a wedged driver must not hang the request).
const LIST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub async fn list() -> ApiResult<Json<DeviceList>> {
    let listing = tokio::task::spawn_blocking(|| {
        (
            crate::capture::v4l2::list::list(),
            crate::capture::v4l2::list::m2m_encoders(),
        )
    });
    match tokio::time::timeout(LIST_TIMEOUT, listing).await {
        Ok(Ok((devices, encoders))) => Ok(Json(DeviceList { devices, encoders })),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(_) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("listing V4L2 devices took longer than {LIST_TIMEOUT:?}"),
        )),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScanInput {
    username: Option<String>,
    password: Option<String>,
    /// How long to wait for answers (default from `onvif.scan_seconds`).
    seconds: Option<u64>,
}

/// One scan at a time: a second one waits for nothing and is told so.
static SCANNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn onvif_scan(st: State, body: Bytes) -> ApiResult<Json<ScanResult>> {
    let input: ScanInput = if body.iter().all(u8::is_ascii_whitespace) {
        ScanInput::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
    };
    let mut cfg = st.onvif;
    if let Some(s) = input.seconds {
        if !onvif::SCAN_SECONDS.contains(&s) {
            return Err(ApiError::bad_request(format!(
                "seconds: {s} is outside {:?}",
                onvif::SCAN_SECONDS
            )));
        }
        cfg.wait = std::time::Duration::from_secs(s);
    }
    for (what, v) in [("username", &input.username), ("password", &input.password)] {
        if v.as_ref()
            .is_some_and(|v| v.len() > 256 || v.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(format!(
                "{what}: at most 256 characters, no control characters"
            )));
        }
    }
    let creds = match (input.username, input.password) {
        (Some(u), p) if !u.is_empty() => Some(Credentials {
            username: u,
            password: p.unwrap_or_default(),
            clock_offset: jiff::SignedDuration::ZERO,
        }),
        (_, Some(p)) if !p.is_empty() => {
            return Err(ApiError::bad_request("password given without a username"));
        }
        _ => None,
    };
    let Ok(_guard) = SCANNING.try_lock() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "a scan is running already; try again when it is done".into(),
        ));
    };
    let result = onvif::scan(cfg, creds).await.map_err(|e| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "cannot send the discovery probe{}: {e}",
                cfg.interface
                    .map(|i| format!(" from {i} (onvif.interface)"))
                    .unwrap_or_default()
            ),
        )
    })?;
    tracing::info!(
        "ONVIF scan: {} devices, {} other datagrams",
        result.devices.len(),
        result.ignored
    );
    Ok(Json(result))
}
