//! Capture owns getting frames out of cameras: the [`Source`] trait, its RTSP (retina), V4L2
//! (local devices) and looped file implementations, and parsing a camera's source URL into one
//! of them. A source yields
//! [`Frame`]s from the first key frame on; reconnecting and pacing belong to the recorder.

mod file;
mod rtsp;
pub mod v4l2;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::storage::{CameraRecord, Transport};
use crate::video::{Frame, VideoParams};

pub use file::FileSource;
pub use rtsp::RtspSource;

/// Longest wait for DESCRIBE/SETUP/PLAY, and for any frame once playing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, thiserror::Error)]
pub enum CaptureError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Stream(String),
    #[error("no frame for {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Unsupported(String),
}

/// An open stream: its parameters as of the first key frame, and the frames from it on.
pub struct Opened {
    pub params: Arc<VideoParams>,
    pub frames: BoxStream<'static, Result<Frame, CaptureError>>,
}

/// Something that can be opened, again and again, into a stream of frames.
pub trait Source: Send + Sync {
    /// A description for logs, without credentials.
    fn describe(&self) -> String;
    fn open(&self) -> BoxFuture<'static, Result<Opened, CaptureError>>;
    /// Frames the source itself lost (a local device's sequence gaps), counted since it was made.
    fn dropped_frames(&self) -> u64 {
        0
    }
    /// Which encoder makes the recorded video and what it left out, for sources that know
    /// (local devices); `None` for network and file sources.
    fn encoding(&self) -> Option<Encoding> {
        None
    }
}

/// Which encoder makes a local camera's video, and the frames it left out (`/api/health`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Encoding {
    /// `camera-h264` or `camera-mjpeg` (recorded as the camera makes it), `software-mjpeg`
    /// (raw pictures encoded by Eyrie), `v4l2-m2m:<driver> (/dev/videoN)` (raw pictures
    /// encoded to H.264 by the kernel's memory-to-memory encoder); empty until the device was
    /// first opened.
    pub encoder: String,
    /// Why a memory-to-memory encoder found for the camera's format is not used (it failed
    /// to start: the camera then encodes to MJPEG in software).
    pub encoder_error: Option<String>,
    /// Frames left out on purpose to keep to the configured encoding rate.
    pub rate_skipped_frames: u64,
    /// Frames dropped because the encoder was still busy (not counted in `dropped_frames`).
    pub encoder_dropped_frames: u64,
}

/// Why a source URL is not accepted; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Splits credentials out of a source URL: returns the URL without them and the user/password.
pub fn split_credentials(
    source: &str,
) -> Result<(String, Option<String>, Option<String>), SourceError> {
    let mut url =
        url::Url::parse(source).map_err(|e| SourceError(format!("source is not a URL ({e})")))?;
    let user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
    let pass = url.password().map(percent_decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok((url.to_string(), user, pass))
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Checks a source URL (already without credentials) and returns its canonical form.
/// `rtsp://` and `rtsps://` are cameras; `file://` loops a local MP4 file in real time.
/// `v4l2:///dev/videoN?width=&height=&fps=&format=` is a local device (see v4l2.rs).
pub fn validate_source(source: &str) -> Result<String, SourceError> {
    if source.len() > 1024 {
        return Err(SourceError("source URL is longer than 1024 bytes".into()));
    }
    let url =
        url::Url::parse(source).map_err(|e| SourceError(format!("source is not a URL ({e})")))?;
    match url.scheme() {
        "rtsp" | "rtsps" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(SourceError("rtsp source needs a host".into()));
            }
        }
        "file" => {
            let path = url
                .to_file_path()
                .map_err(|_| SourceError("file source needs an absolute local path".into()))?;
            if path.extension().and_then(|e| e.to_str()) != Some("mp4") {
                return Err(SourceError("file source must be an .mp4 file".into()));
            }
        }
        "v4l2" => {
            v4l2::parse(&url)?;
        }
        other => {
            return Err(SourceError(format!(
                "unsupported source scheme '{other}': use rtsp://, rtsps://, v4l2:// or file://"
            )));
        }
    }
    Ok(url.to_string())
}

/// The source a camera records from.
pub fn source_for(cam: &CameraRecord) -> Result<Arc<dyn Source>, SourceError> {
    let url = url::Url::parse(&validate_source(&cam.source)?).expect("validated");
    Ok(match url.scheme() {
        "file" => Arc::new(FileSource::new(url.to_file_path().expect("validated"))),
        "v4l2" => Arc::new(
            v4l2::V4l2Source::new(v4l2::parse(&url)?, Arc::new(v4l2::KernelDevice::open))
                .with_hw(Arc::new(v4l2::m2m::h264_encoder)),
        ),
        _ => Arc::new(RtspSource::new(
            url,
            cam.username.clone(),
            cam.password.clone(),
            cam.transport == Transport::Udp,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_out() {
        let (url, u, p) = split_credentials("rtsp://ad%40min:p%3Ass@cam.local:554/s1").unwrap();
        assert_eq!(url, "rtsp://cam.local:554/s1");
        assert_eq!(u.as_deref(), Some("ad@min"));
        assert_eq!(p.as_deref(), Some("p:ss"));
        let (url, u, p) = split_credentials("rtsp://cam/x").unwrap();
        assert_eq!((url.as_str(), u, p), ("rtsp://cam/x", None, None));
    }

    #[test]
    fn sources_are_validated() {
        assert!(validate_source("rtsp://10.0.0.2/stream").is_ok());
        assert!(validate_source("rtsps://cam:322/stream").is_ok());
        assert!(validate_source("file:///var/demo.mp4").is_ok());
        assert!(validate_source("v4l2:///dev/video0?width=1280&height=720&fps=30").is_ok());
        for bad in [
            "http://x/y",
            "rtsp:///nohost",
            "file://relative.mp4",
            "file:///etc/passwd",
            "not a url",
            "v4l2://host/dev/video0",
            "v4l2:///dev/sda",
            "v4l2:///dev/video0?width=640",
        ] {
            assert!(validate_source(bad).is_err(), "{bad}");
        }
    }
}
