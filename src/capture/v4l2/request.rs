//! The `v4l2:///dev/videoN?width=&height=&fps=&format=&encode_fps=&quality=&encoder=` source
//! URL, parsed into a [`Request`]. Invariants: the path is `/dev/videoN` or a udev stable name
//! (never anything else under /dev), every parameter is given at most once and within its
//! bounds, and width and height come together.

use std::collections::HashSet;
use std::path::PathBuf;

use super::encode;
use crate::capture::SourceError;

/// What a `v4l2://` URL asks for; unset fields are chosen from what the device offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub path: PathBuf,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<u32>,
    pub format: Option<[u8; 4]>,
    /// Raw formats only: pictures encoded per second and JPEG quality (software MJPEG).
    pub encode_fps: Option<u32>,
    pub quality: Option<u8>,
    /// Raw formats only: which encoder (`encoder=auto|m2m|software`).
    pub encoder: EncoderChoice,
}

/// Which encoder a raw camera uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncoderChoice {
    /// A memory-to-memory H.264 encoder when the machine has one for the camera's format
    /// (software MJPEG when it has none, or when it fails to start), else software MJPEG.
    #[default]
    Auto,
    /// Only a memory-to-memory encoder: none, or one failing, is the camera's error.
    M2m,
    /// Software MJPEG, even when the machine has an encoder.
    Software,
}

impl Request {
    /// The device at `path` in whatever mode suits it best.
    pub fn any(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            width: None,
            height: None,
            fps: None,
            format: None,
            encode_fps: None,
            quality: None,
            encoder: EncoderChoice::Auto,
        }
    }
}

fn bad(msg: impl Into<String>) -> SourceError {
    SourceError(msg.into())
}

/// Device paths accepted: `/dev/videoN`, and the stable names udev makes for a device, which
/// stay the same when it is unplugged and plugged in again (`/dev/v4l/by-id/...` from the
/// serial, `/dev/v4l/by-path/...` from the USB port).
pub fn valid_path(p: &str) -> bool {
    if let Some(n) = p.strip_prefix("/dev/video") {
        return !n.is_empty() && n.len() <= 3 && n.bytes().all(|b| b.is_ascii_digit());
    }
    let name = p
        .strip_prefix("/dev/v4l/by-id/")
        .or_else(|| p.strip_prefix("/dev/v4l/by-path/"));
    name.is_some_and(|n| {
        !n.is_empty()
            && n.len() <= 200
            && !n.starts_with('.')
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
    })
}

/// Parses and checks a `v4l2://` URL.
pub fn parse(url: &url::Url) -> Result<Request, SourceError> {
    if url.host_str().is_some_and(|h| !h.is_empty()) {
        return Err(bad(
            "v4l2 source: no host; write v4l2:///dev/video0 (three slashes)",
        ));
    }
    let path = url.path();
    if !valid_path(path) {
        return Err(bad(format!(
            "v4l2 source: '{path}' is not /dev/videoN, /dev/v4l/by-id/NAME or /dev/v4l/by-path/NAME"
        )));
    }
    let mut req = Request::any(path);
    let mut seen = HashSet::new();
    for (k, v) in url.query_pairs() {
        if !seen.insert(k.to_string()) {
            return Err(bad(format!("v4l2 source: '{k}' is given twice")));
        }
        let num = |lo: u32, hi: u32| -> Result<Option<u32>, SourceError> {
            match v.parse::<u32>() {
                Ok(n) if (lo..=hi).contains(&n) => Ok(Some(n)),
                _ => Err(bad(format!(
                    "v4l2 source: {k} must be a number from {lo} to {hi}, not '{v}'"
                ))),
            }
        };
        match &*k {
            "width" => req.width = num(16, 8192)?,
            "height" => req.height = num(16, 8192)?,
            "fps" => req.fps = num(1, 240)?,
            "encode_fps" => {
                req.encode_fps = num(*encode::ENCODE_FPS.start(), *encode::ENCODE_FPS.end())?
            }
            "quality" => {
                req.quality =
                    num(*encode::QUALITY.start(), *encode::QUALITY.end())?.map(|q| q as u8)
            }
            "encoder" => {
                req.encoder = match &*v {
                    "auto" => EncoderChoice::Auto,
                    "m2m" => EncoderChoice::M2m,
                    "software" => EncoderChoice::Software,
                    _ => {
                        return Err(bad(format!(
                            "v4l2 source: encoder is auto, m2m or software, not '{v}'"
                        )));
                    }
                }
            }
            "format" => {
                let f: [u8; 4] = v
                    .to_ascii_uppercase()
                    .as_bytes()
                    .try_into()
                    .ok()
                    .filter(|f: &[u8; 4]| f.iter().all(u8::is_ascii_alphanumeric))
                    .ok_or_else(|| {
                        bad(format!(
                            "v4l2 source: format is a four-character code like H264, MJPG or YUYV, not '{v}'"
                        ))
                    })?;
                req.format = Some(f);
            }
            other => {
                return Err(bad(format!(
                    "v4l2 source: unknown parameter '{other}' (width, height, fps, format, encode_fps, quality, encoder)"
                )));
            }
        }
    }
    if req.width.is_some() != req.height.is_some() {
        return Err(bad("v4l2 source: give width and height together"));
    }
    Ok(req)
}
