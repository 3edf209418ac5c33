//! Capture owns getting frames out of cameras: the [`Source`] trait, its RTSP (retina), V4L2
//! (local devices) and looped file implementations, and a camera's source URL parsed once into
//! a [`SourceSpec`] that [`open`] makes one of them. A source yields
//! [`Frame`]s from the first key frame on; reconnecting and pacing belong to the recorder.

mod file;
mod rtsp;
mod spec;
pub mod v4l2;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

use crate::video::{Frame, VideoParams};

pub use file::FileSource;
pub use rtsp::{RtspSource, h265_has_irap};
pub use spec::{Login, SourceError, SourceKind, SourceSpec, Split, open, split_credentials};

/// Longest wait for DESCRIBE/SETUP/PLAY, and for any frame once playing.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a camera that is down is probed, and how long a probe may take.
pub const PROBE_EVERY: Duration = Duration::from_millis(500);
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

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
    /// A cheap check that the camera answers at all (a TCP connect), for sources that have one:
    /// the recorder probes a camera that is down every [`PROBE_EVERY`] and reconnects as soon as
    /// it answers, rather than waiting out its backoff.
    fn probe(&self) -> Option<BoxFuture<'static, bool>> {
        None
    }
    /// Frames the source itself lost (a local device's sequence gaps), counted since it was made.
    fn dropped_frames(&self) -> u64 {
        0
    }
    /// Which encoder makes the recorded video and what it left out, for sources that know
    /// (local devices); `None` for network and file sources.
    fn encoding(&self) -> Option<Encoding> {
        None
    }
    /// Motion detection is on: a source that holds its pictures before encoding them (a raw
    /// V4L2 camera) reduces them to the motion grid itself, from its next open on, and hands
    /// them to `tap`; the others ignore it and motion reads their recorded frames.
    fn tap_motion(&self, _tap: crate::motion::Tap) {}
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
