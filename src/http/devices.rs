//! `/api/system/devices`, `/api/system/onvif/scan` and `/api/system/onvif/device`: cameras this
//! node can record without anyone typing a URL: local V4L2 devices, and IP cameras found with
//! ONVIF. A scan sends no credentials unless told to send them to every device that answers
//! (`authenticate_all`); the device read sends them to the one device picked. Credentials are
//! used for that request only and never stored or returned.

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
    /// Sign every call to every device that answers with the credentials (any device on the
    /// LAN can answer, and then holds a digest of the password to guess at).
    #[serde(default)]
    authenticate_all: bool,
    /// How long to wait for answers (default from `onvif.scan_seconds`).
    seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceInput {
    /// The device service address, as a scan gave it (`xaddr`).
    xaddr: String,
    username: Option<String>,
    password: Option<String>,
}

/// One scan at a time: a second one waits for nothing and is told so.
static SCANNING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Devices read at once through `/api/system/onvif/device`.
static READING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

fn body_of<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("body: {e}")))
}

/// The credentials of a request, checked; `None` without a user name.
fn credentials(
    username: Option<String>,
    password: Option<String>,
) -> ApiResult<Option<Credentials>> {
    for (what, v) in [("username", &username), ("password", &password)] {
        if v.as_ref()
            .is_some_and(|v| v.len() > 256 || v.chars().any(char::is_control))
        {
            return Err(ApiError::bad_request(format!(
                "{what}: at most 256 characters, no control characters"
            )));
        }
    }
    match (username, password) {
        (Some(u), p) if !u.is_empty() => Ok(Some(Credentials {
            username: u,
            password: p.unwrap_or_default(),
            clock_offset: jiff::SignedDuration::ZERO,
        })),
        (_, Some(p)) if !p.is_empty() => {
            Err(ApiError::bad_request("password given without a username"))
        }
        _ => Ok(None),
    }
}

pub async fn onvif_scan(st: State, body: Bytes) -> ApiResult<Json<ScanResult>> {
    let input: ScanInput = body_of(&body)?;
    let mut cfg = st.onvif.clone();
    if let Some(s) = input.seconds {
        if !onvif::SCAN_SECONDS.contains(&s) {
            return Err(ApiError::bad_request(format!(
                "seconds: {s} is outside {:?}",
                onvif::SCAN_SECONDS
            )));
        }
        cfg.wait = std::time::Duration::from_secs(s);
    }
    let creds = credentials(input.username, input.password)?;
    if creds.is_some() && !input.authenticate_all {
        return Err(ApiError::bad_request(
            "credentials go only to the device you pick (POST /api/system/onvif/device); \
             to send them to every device that answers the scan, set authenticate_all",
        ));
    }
    let Ok(_guard) = SCANNING.try_lock() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "a scan is running already; try again when it is done".into(),
        ));
    };
    let result = onvif::scan(cfg.clone(), creds).await.map_err(|e| {
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

/// `POST /api/system/onvif/device`: reads the one device the user picked, with its credentials.
pub async fn onvif_device(body: Bytes) -> ApiResult<Json<onvif::Device>> {
    let input: DeviceInput =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("body: {e}")))?;
    let xaddr = onvif::device_address(&input.xaddr)
        .map_err(|e| ApiError::bad_request(format!("xaddr: {e}")))?;
    let creds = credentials(input.username, input.password)?;
    let Ok(_permit) = READING.try_acquire() else {
        return Err(ApiError(
            StatusCode::CONFLICT,
            "4 cameras are being read already; try again when one is done".into(),
        ));
    };
    Ok(Json(onvif::read(&xaddr, creds).await))
}
