//! Local cameras through V4L2 (USB and CSI): the `v4l2:///dev/videoN?width=&height=&fps=&format=`
//! source, and everything about it that does not need a kernel, written against the [`Device`]
//! trait that the kernel (v4l2_kernel.rs, through the `v4l` crate) and tests implement:
//! choosing a format, H.264 Annex B buffers into MP4 samples and parameters, MJPEG as it comes,
//! raw YUYV/NV12 encoded to MJPEG in software (encode.rs), driver timestamps
//! (monotonic) mapped to wall-clock time, sequence gaps counted as dropped frames, one camera
//! per device, and unplug as an error the recorder retries until the device is back.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use serde::Serialize;

use super::{CaptureError, FRAME_TIMEOUT, Opened, Source, SourceError};
use crate::video::{Frame, TIMESCALE, VideoParams};

mod camera;
pub mod encode;
mod kernel;
pub mod list;
pub mod m2m;
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    clippy::all
)]
mod sys;
pub mod trial;

pub use camera::KernelDevice;
pub use encode::EncodeConfig;
use encode::{Counters, Offer, RawEncoder};
pub use list::{DeviceInfo, M2mEncoder, assess, format_encoder, m2m_inputs, stable_name};

pub const H264: [u8; 4] = *b"H264";
pub const MJPEG: [u8; 4] = *b"MJPG";
pub const YUYV: [u8; 4] = *b"YUYV";
pub const NV12: [u8; 4] = *b"NV12";

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

pub fn fourcc_str(f: &[u8; 4]) -> String {
    String::from_utf8_lossy(f).trim_end().to_string()
}

/// One picture size a device offers in one format, with its frame rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeInfo {
    pub width: u32,
    pub height: u32,
    pub fps: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    pub sizes: Vec<SizeInfo>,
    /// How a camera streaming this format is recorded (`camera-h264`, `camera-mjpeg`,
    /// `software-mjpeg`), or `None` when it cannot be; set by the listing.
    pub encoder: Option<&'static str>,
}

impl FormatInfo {
    /// A format as a device lists it, with how a camera streaming it is recorded.
    pub fn new(fourcc: String, description: String, sizes: Vec<SizeInfo>) -> Self {
        Self {
            encoder: format_encoder(&fourcc),
            fourcc,
            description,
            sizes,
        }
    }
}

/// The format, size and rate a device streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One filled buffer from the driver.
#[derive(Debug, Clone)]
pub struct Buffer {
    pub data: Vec<u8>,
    /// The driver's frame counter: a jump means frames were dropped.
    pub sequence: u32,
    /// When the driver captured it, on CLOCK_MONOTONIC; zero when the driver does not say.
    pub timestamp: Duration,
}

/// A capture device: the kernel's, or a test's.
pub trait Device: Send {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>>;
    /// Sets `mode` and starts streaming; returns the mode the driver actually took.
    fn start(&mut self, mode: Mode) -> io::Result<Mode>;
    /// The next buffer; `ErrorKind::TimedOut` when none came within `timeout`. Its data may
    /// be copied into `spare` (cleared first), so that a picture's memory is reused.
    fn next(&mut self, timeout: Duration, spare: Vec<u8>) -> io::Result<Buffer>;
}

/// Opens the device at a path.
pub type Opener = Arc<dyn Fn(&Path) -> io::Result<Box<dyn Device>> + Send + Sync>;

/// Which format, size and rate to stream, from what the device offers: the requested ones
/// when given (a clear error naming what is offered otherwise); else H.264 first, the largest
/// size up to 1920x1080, and the highest rate up to 30.
pub fn choose(formats: &[FormatInfo], req: &Request) -> Result<Mode, String> {
    let offered = || {
        formats
            .iter()
            .map(|f| f.fourcc.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rank = |f: &FormatInfo| match f.fourcc.as_bytes() {
        b"H264" => 0,
        b"MJPG" => 1,
        b"YUYV" | b"NV12" => 2,
        _ => 3,
    };
    let format = match req.format {
        Some(want) => formats
            .iter()
            .find(|f| f.fourcc == fourcc_str(&want))
            .ok_or_else(|| {
                format!(
                    "the device does not offer {}; it offers {}",
                    fourcc_str(&want),
                    offered()
                )
            })?,
        None => formats
            .iter()
            .min_by_key(|f| rank(f))
            .ok_or("the device offers no capture formats")?,
    };
    let size = match (req.width, req.height) {
        (Some(w), Some(h)) => format
            .sizes
            .iter()
            .find(|s| s.width == w && s.height == h)
            .ok_or_else(|| {
                let sizes: Vec<String> = format
                    .sizes
                    .iter()
                    .take(16)
                    .map(|s| format!("{}x{}", s.width, s.height))
                    .collect();
                format!(
                    "{} is not offered at {w}x{h}; sizes: {}",
                    format.fourcc,
                    sizes.join(", ")
                )
            })?,
        _ => {
            let area = |s: &&SizeInfo| s.width as u64 * s.height as u64;
            format
                .sizes
                .iter()
                .filter(|s| area(s) <= 1920 * 1080)
                .max_by_key(area)
                .or_else(|| format.sizes.iter().min_by_key(area))
                .ok_or_else(|| format!("the device lists no sizes for {}", format.fourcc))?
        }
    };
    let fps = match req.fps {
        Some(want) => {
            if !size.fps.is_empty() && !size.fps.iter().any(|f| (f - want as f64).abs() < 0.5) {
                return Err(format!(
                    "{} {}x{} is not offered at {want} fps; rates: {:?}",
                    format.fourcc, size.width, size.height, size.fps
                ));
            }
            want
        }
        None => size
            .fps
            .iter()
            .copied()
            .filter(|f| *f <= 30.5)
            .fold(None, |m: Option<f64>, f| Some(m.map_or(f, |m| m.max(f))))
            .or_else(|| size.fps.iter().copied().reduce(f64::min))
            .map_or(30, |f| f.round().max(1.0) as u32),
    };
    let fourcc: [u8; 4] = format
        .fourcc
        .as_bytes()
        .try_into()
        .map_err(|_| format!("odd format code '{}'", format.fourcc))?;
    Ok(Mode {
        fourcc,
        width: size.width,
        height: size.height,
        fps,
    })
}

/// How a mode is recorded (the `encoder` health and the device listing show), or why it
/// cannot be, for people.
pub fn recordable(mode: &Mode) -> Result<&'static str, String> {
    match mode.fourcc {
        H264 => Ok("camera-h264"),
        MJPEG => Ok("camera-mjpeg"),
        YUYV | NV12 => Ok("software-mjpeg"),
        f => Err(format!(
            "{} is not a format Eyrie records: it records H.264 and MJPEG as the camera makes \
             them, and encodes raw YUYV and NV12 to MJPEG",
            fourcc_str(&f)
        )),
    }
}

/// How raw pictures of a request are encoded; an error when encoding settings are given for a
/// mode that is not encoded.
fn encode_config(req: &Request, mode: &Mode) -> Result<Option<EncodeConfig>, String> {
    if encode::RawFormat::of(mode.fourcc).is_none() {
        if req.encode_fps.is_some() || req.quality.is_some() || req.encoder != EncoderChoice::Auto {
            return Err(format!(
                "encode_fps, quality and encoder apply to raw formats (YUYV, NV12), which are \
                 encoded; this device streams {}, which is recorded as it comes",
                fourcc_str(&mode.fourcc)
            ));
        }
        return Ok(None);
    }
    let d = EncodeConfig::default();
    Ok(Some(EncodeConfig {
        fps: req.encode_fps.unwrap_or(d.fps),
        quality: req.quality.unwrap_or(d.quality),
    }))
}

/// The device a camera source records from, by its real path, if it is a `v4l2://` source.
pub fn device_of(source: &str) -> Option<PathBuf> {
    let url = url::Url::parse(source).ok()?;
    if url.scheme() != "v4l2" {
        return None;
    }
    let path = parse(&url).ok()?.path;
    Some(std::fs::canonicalize(&path).unwrap_or(path))
}

/// Devices in use by a camera of this process, by their real path (so a by-id name and the
/// /dev/videoN it points to are the same device).
static CLAIMED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

/// A device held by one camera until dropped.
pub struct Claim(PathBuf);

impl Claim {
    pub fn take(path: &Path) -> Result<Claim, CaptureError> {
        let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let mut g = CLAIMED.lock().unwrap();
        if !g.get_or_insert_with(HashSet::new).insert(real.clone()) {
            return Err(CaptureError::Unsupported(format!(
                "{} is already used by another camera of this node; a device feeds one camera",
                real.display()
            )));
        }
        Ok(Claim(real))
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(set) = CLAIMED.lock().unwrap().as_mut() {
            set.remove(&self.0);
        }
    }
}

/// The wall-clock time of a driver timestamp: now, less how long ago (on the monotonic clock)
/// the driver took the frame. Buffers without a timestamp are taken as arriving now.
fn wall_clock(ts: Duration, mono_now: Duration, now: jiff::Timestamp) -> jiff::Timestamp {
    if ts.is_zero() || ts > mono_now {
        return now;
    }
    let age = mono_now - ts;
    now.checked_sub(jiff::SignedDuration::try_from(age).unwrap_or_default())
        .unwrap_or(now)
}

pub(crate) fn monotonic_now() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Splits an H.264 Annex B byte stream into NAL units (without start codes).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut out = Vec::with_capacity(starts.len());
    for (n, &s) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |&next| next - 3);
        // A four-byte start code leaves a zero before the next three-byte one; so may trailing
        // zero bytes.
        while end > s && data[end - 1] == 0 {
            end -= 1;
        }
        if end > s {
            out.push(&data[s..end]);
        }
    }
    out
}

/// The sample entry for these parameter sets, at the size the driver streams (its format is
/// the picture size; an SPS may code a larger, cropped one).
fn h264_params(sps: &[u8], pps: &[u8], mode: &Mode) -> Result<VideoParams, CaptureError> {
    let avcc = mp4_atom::Avcc::new(sps, pps)
        .map_err(|e| CaptureError::Unsupported(format!("H.264 parameters from the device: {e}")))?;
    let entry = mp4_atom::Codec::Avc1(mp4_atom::Avc1 {
        visual: mp4_atom::Visual {
            width: mode.width.min(u16::MAX as u32) as u16,
            height: mode.height.min(u16::MAX as u32) as u16,
            ..Default::default()
        },
        avcc,
        ..Default::default()
    });
    VideoParams::from_entry(entry).map_err(|e| CaptureError::Unsupported(e.0))
}

/// Frames lost between two buffers, from the driver's sequence numbers. A counter that went
/// backwards (the driver restarted it) is not a gap.
pub fn sequence_gap(last: u32, next: u32) -> u64 {
    let gap = next.wrapping_sub(last).wrapping_sub(1);
    if gap < 1 << 24 { gap as u64 } else { 0 }
}

/// Turns a device's H.264 buffers into frames: parameter sets out of the samples and into the
/// sample entry (a change is announced on the frame), nothing before the first IDR frame,
/// presentation times from the driver's timestamps, gaps in its sequence numbers counted.
pub struct H264Frames {
    mode: Mode,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    params: Option<Arc<VideoParams>>,
    started: bool,
    clock: Clock,
}

/// What every format shares: presentation times from the driver's timestamps (the monotonic
/// clock when it gives none), never backwards, and gaps in its sequence numbers counted.
struct Clock {
    first_ts: Option<Duration>,
    last_pts: i64,
    last_seq: Option<u32>,
    dropped: Arc<AtomicU64>,
}

impl Clock {
    fn new(dropped: Arc<AtomicU64>) -> Self {
        Self {
            first_ts: None,
            last_pts: -1,
            last_seq: None,
            dropped,
        }
    }

    fn sequence(&mut self, seq: u32) {
        if let Some(last) = self.last_seq {
            self.dropped
                .fetch_add(sequence_gap(last, seq), Ordering::Relaxed);
        }
        self.last_seq = Some(seq);
    }

    fn pts(&mut self, buf: &Buffer, mono_now: Duration) -> i64 {
        let ts = if buf.timestamp.is_zero() {
            mono_now
        } else {
            buf.timestamp
        };
        let first = *self.first_ts.get_or_insert(ts);
        let pts = (ts.saturating_sub(first).as_nanos() * TIMESCALE as u128 / 1_000_000_000) as i64;
        // Never backwards or standing still: the recorder needs increasing times.
        let pts = pts.max(self.last_pts + 1);
        self.last_pts = pts;
        pts
    }
}

impl H264Frames {
    pub fn new(mode: Mode, dropped: Arc<AtomicU64>) -> Self {
        Self {
            mode,
            sps: None,
            pps: None,
            params: None,
            started: false,
            clock: Clock::new(dropped),
        }
    }

    pub fn params(&self) -> Option<Arc<VideoParams>> {
        self.params.clone()
    }

    /// The frame in `buf`, if it is one to record; `mono_now` and `now` are the two clocks at
    /// the time it is handled.
    pub fn push(
        &mut self,
        buf: &Buffer,
        mono_now: Duration,
        now: jiff::Timestamp,
    ) -> Result<Option<Frame>, CaptureError> {
        self.clock.sequence(buf.sequence);
        let mut sample = BytesMut::with_capacity(buf.data.len() + 16);
        let (mut key, mut sps, mut pps) = (false, None, None);
        for nal in annexb_nals(&buf.data) {
            match nal[0] & 0x1f {
                7 => sps = Some(nal),
                8 => pps = Some(nal),
                9 => {} // access unit delimiter
                t => {
                    key |= t == 5;
                    sample.put_u32(nal.len() as u32);
                    sample.put_slice(nal);
                }
            }
        }
        let mut new_params = None;
        if sps.is_some_and(|s| self.sps.as_deref() != Some(s))
            || pps.is_some_and(|p| self.pps.as_deref() != Some(p))
        {
            if let Some(s) = sps {
                self.sps = Some(s.to_vec());
            }
            if let Some(p) = pps {
                self.pps = Some(p.to_vec());
            }
            if let (Some(s), Some(p)) = (&self.sps, &self.pps) {
                let p = Arc::new(h264_params(s, p, &self.mode)?);
                if self.started {
                    new_params = Some(p.clone());
                }
                self.params = Some(p);
            }
        }
        if sample.is_empty() {
            return Ok(None);
        }
        if !self.started {
            if !(key && self.params.is_some()) {
                return Ok(None);
            }
            self.started = true;
        }
        if new_params.is_some() && !key {
            return Err(CaptureError::Stream(
                "the device changed its H.264 parameters without a key frame".into(),
            ));
        }
        Ok(Some(Frame {
            data: sample.freeze(),
            pts: self.clock.pts(buf, mono_now),
            key,
            received: wall_clock(buf.timestamp, mono_now, now),
            new_params,
        }))
    }
}

/// Turns a device's MJPEG buffers into frames as they are: every one a whole JPEG picture (a
/// key frame). A buffer that is not one (no start or end marker: a torn or corrupt transfer)
/// is skipped and counted with the dropped frames.
pub struct MjpegFrames {
    params: Arc<VideoParams>,
    clock: Clock,
}

impl MjpegFrames {
    pub fn new(mode: Mode, dropped: Arc<AtomicU64>) -> Self {
        let dim = |v: u32| v.min(u16::MAX as u32) as u16;
        Self {
            params: Arc::new(VideoParams::mjpeg(dim(mode.width), dim(mode.height))),
            clock: Clock::new(dropped),
        }
    }

    pub fn push(
        &mut self,
        buf: &Buffer,
        mono_now: Duration,
        now: jiff::Timestamp,
    ) -> Option<Frame> {
        self.clock.sequence(buf.sequence);
        // Some cameras pad the picture with zero bytes to the end of the buffer.
        let end = buf.data.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        let jpeg = &buf.data[..end];
        if !(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9])) {
            self.clock.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                len = buf.data.len(),
                "v4l2: skipped a buffer that is not a whole JPEG"
            );
            return None;
        }
        Some(Frame {
            data: Bytes::copy_from_slice(jpeg),
            pts: self.clock.pts(buf, mono_now),
            key: true,
            received: wall_clock(buf.timestamp, mono_now, now),
            new_params: None,
        })
    }
}

/// A device's buffers to frames, by the format it streams.
enum Frames {
    H264(H264Frames),
    Mjpeg(MjpegFrames),
}

impl Frames {
    fn push(
        &mut self,
        buf: &Buffer,
        mono_now: Duration,
        now: jiff::Timestamp,
    ) -> Result<Option<Frame>, CaptureError> {
        match self {
            Frames::H264(f) => f.push(buf, mono_now, now),
            Frames::Mjpeg(f) => Ok(f.push(buf, mono_now, now)),
        }
    }

    fn params(&self) -> Option<Arc<VideoParams>> {
        match self {
            Frames::H264(f) => f.params(),
            Frames::Mjpeg(f) => Some(f.params.clone()),
        }
    }
}

/// Buffers from a device on its own thread (V4L2 calls block), ended by an error, nothing
/// within the frame timeout, or the receiver going away (noticed within a second, which then
/// frees the device for the next open).
/// With an `encoder`, raw pictures are offered to it and its frames come on `tx` instead.
fn pump(
    mut dev: Box<dyn Device>,
    claim: Claim,
    path: PathBuf,
    mut encoder: Option<Box<dyn RawEncoder>>,
    tx: FrameSender,
) -> Result<(), CaptureError> {
    const POLL: Duration = Duration::from_secs(1);
    std::thread::Builder::new()
        .name("v4l2".into())
        .spawn(move || {
            let _claim = claim;
            let mut waited = Duration::ZERO;
            // Raw pictures' memory goes round: skipped ones at once, encoded ones back from
            // the encoder thread.
            let mut spare = Vec::new();
            loop {
                if spare.capacity() == 0 {
                    spare = encoder.as_mut().and_then(|e| e.spare()).unwrap_or_default();
                }
                let r = match dev.next(POLL, std::mem::take(&mut spare)) {
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        waited += POLL;
                        if tx.is_closed() {
                            return;
                        }
                        if waited < FRAME_TIMEOUT {
                            continue;
                        }
                        Err(CaptureError::Timeout(FRAME_TIMEOUT))
                    }
                    r => r.map_err(|e| device_error(&path, e)),
                };
                waited = Duration::ZERO;
                let r = match (r, &mut encoder) {
                    (Ok(buf), Some(enc)) => {
                        // Most pictures never reach the encoder: notice a closed stream here.
                        if tx.is_closed() {
                            return;
                        }
                        match enc.offer(buf) {
                            Offer::Taken => {}
                            Offer::Back(data) => spare = data,
                            Offer::Gone => return,
                            Offer::Failed(e) => {
                                let _ = tx.blocking_send(Err(CaptureError::Stream(e)));
                                return;
                            }
                        }
                        continue;
                    }
                    (r, _) => r,
                };
                let end = r.is_err();
                // A full channel blocks here; the driver then drops frames, which show up as
                // sequence gaps.
                if tx.blocking_send(r).is_err() || end {
                    return;
                }
            }
        })
        .map_err(|e| CaptureError::Connect(format!("starting the device thread: {e}")))?;
    Ok(())
}

/// Where a device's buffers, or an encoder's frames, go.
pub type FrameSender = tokio::sync::mpsc::Sender<Result<Buffer, CaptureError>>;

/// Starts a memory-to-memory encoder for a raw mode (the kernel's: v4l2_m2m.rs), its frames
/// going to the sender: `None` when the machine has none for the mode's format; else the
/// encoder, what it codes to and its name for health, or why it did not start.
pub type HwEncoders = Arc<
    dyn Fn(&Mode, FrameSender, Arc<AtomicU64>, Arc<Counters>) -> Option<HwStarted> + Send + Sync,
>;

/// A started hardware encoder, what it codes to and its name for health; or why it failed.
pub type HwStarted = Result<(Box<dyn RawEncoder>, [u8; 4], String), String>;

/// The encoder a raw camera got: what it codes to, its name for health and why a hardware
/// encoder was not used.
struct ChosenEncoder {
    encoder: Box<dyn RawEncoder>,
    coded: [u8; 4],
    name: String,
    why_not: Option<String>,
}

/// A memory-to-memory encoder when the request allows one and the machine has one for the
/// mode, else software MJPEG (see [`EncoderChoice`]).
fn raw_encoder(
    req: &Request,
    mode: &Mode,
    cfg: EncodeConfig,
    hw: Option<&HwEncoders>,
    tx: &FrameSender,
    dropped: &Arc<AtomicU64>,
    counters: &Arc<Counters>,
) -> Result<ChosenEncoder, CaptureError> {
    let mut why_not = None;
    if req.encoder != EncoderChoice::Software {
        match hw.and_then(|hw| hw(mode, tx.clone(), dropped.clone(), counters.clone())) {
            Some(Ok((encoder, coded, name))) => {
                return Ok(ChosenEncoder {
                    encoder,
                    coded,
                    name,
                    why_not: None,
                });
            }
            Some(Err(e)) if req.encoder == EncoderChoice::M2m => {
                return Err(CaptureError::Unsupported(format!(
                    "the memory-to-memory encoder failed: {e}"
                )));
            }
            Some(Err(e)) => {
                tracing::warn!(device = %req.path.display(), "{e}; encoding to MJPEG in software");
                why_not = Some(format!(
                    "memory-to-memory encoder not used, encoding to MJPEG in software: {e}"
                ));
            }
            None if req.encoder == EncoderChoice::M2m => {
                return Err(CaptureError::Unsupported(format!(
                    "encoder=m2m, but this machine has no memory-to-memory encoder that takes {} \
                     to H.264",
                    fourcc_str(&mode.fourcc)
                )));
            }
            None => {}
        }
    }
    let sw = encode::SoftwareMjpeg::start(mode, cfg, tx.clone(), dropped.clone(), counters.clone())
        .map_err(CaptureError::Unsupported)?;
    Ok(ChosenEncoder {
        encoder: Box::new(sw),
        coded: MJPEG,
        name: "software-mjpeg".into(),
        why_not,
    })
}

fn device_error(path: &Path, e: io::Error) -> CaptureError {
    match (e.kind(), e.raw_os_error()) {
        // ENODEV: unplugged. The recorder retries; the device resumes when it is back.
        (_, Some(19)) | (io::ErrorKind::NotFound, _) => {
            CaptureError::Stream(format!("{} is gone (unplugged?): {e}", path.display()))
        }
        _ => CaptureError::Stream(format!("{}: {e}", path.display())),
    }
}

pub struct V4l2Source {
    req: Request,
    open: Opener,
    dropped: Arc<AtomicU64>,
    /// What records the device's pictures, once opened (see [`recordable`]; an M2M encoder
    /// is `v4l2-m2m:<driver> (<path>)`), and why an encoder was not used.
    encoder: Arc<Mutex<(String, Option<String>)>>,
    counters: Arc<encode::Counters>,
    hw: Option<HwEncoders>,
}

impl V4l2Source {
    pub fn new(req: Request, open: Opener) -> Self {
        Self {
            req,
            open,
            dropped: Arc::default(),
            encoder: Arc::default(),
            counters: Arc::default(),
            hw: None,
        }
    }

    /// Raw pictures may go to these hardware encoders (see [`EncoderChoice`]).
    pub fn with_hw(mut self, hw: HwEncoders) -> Self {
        self.hw = Some(hw);
        self
    }
}

impl Source for V4l2Source {
    fn describe(&self) -> String {
        format!("v4l2://{}", self.req.path.display())
    }

    fn dropped_frames(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn encoding(&self) -> Option<super::Encoding> {
        let (encoder, encoder_error) = self.encoder.lock().unwrap().clone();
        Some(super::Encoding {
            encoder,
            encoder_error,
            rate_skipped_frames: self.counters.rate_skipped.load(Ordering::Relaxed),
            encoder_dropped_frames: self.counters.encoder_dropped.load(Ordering::Relaxed),
        })
    }

    fn open(&self) -> BoxFuture<'static, Result<Opened, CaptureError>> {
        let req = self.req.clone();
        let open = self.open.clone();
        let dropped = self.dropped.clone();
        let encoder = self.encoder.clone();
        let counters = self.counters.clone();
        let hw = self.hw.clone();
        Box::pin(async move {
            let path = req.path.clone();
            let (tx, mut rx) = tokio::sync::mpsc::channel(8);
            let started = tokio::task::spawn_blocking(move || {
                let claim = Claim::take(&req.path)?;
                let mut dev = open(&req.path).map_err(|e| {
                    CaptureError::Connect(format!("cannot open {}: {e}", req.path.display()))
                })?;
                let formats = dev
                    .formats()
                    .map_err(|e| CaptureError::Connect(format!("listing formats: {e}")))?;
                let mode = choose(&formats, &req).map_err(CaptureError::Unsupported)?;
                let how = recordable(&mode).map_err(CaptureError::Unsupported)?;
                encode_config(&req, &mode).map_err(CaptureError::Unsupported)?;
                let got = dev.start(mode).map_err(|e| {
                    CaptureError::Connect(format!("starting {}: {e}", req.path.display()))
                })?;
                if got.fourcc != mode.fourcc {
                    return Err(CaptureError::Unsupported(format!(
                        "asked for {}, the driver gave {}",
                        fourcc_str(&mode.fourcc),
                        fourcc_str(&got.fourcc)
                    )));
                }
                let (raw_encoder, coded) = match encode_config(&req, &got)
                    .map_err(CaptureError::Unsupported)?
                {
                    None => {
                        *encoder.lock().unwrap() = (how.to_string(), None);
                        (None, got.fourcc)
                    }
                    Some(cfg) => {
                        let e =
                            raw_encoder(&req, &got, cfg, hw.as_ref(), &tx, &dropped, &counters)?;
                        *encoder.lock().unwrap() = (e.name, e.why_not);
                        (Some(e.encoder), e.coded)
                    }
                };
                // Encoded pictures arrive numbered one after another: gaps are counted before.
                let frames = match coded {
                    MJPEG => Frames::Mjpeg(MjpegFrames::new(got, dropped.clone())),
                    H264 => Frames::H264(H264Frames::new(got, dropped.clone())),
                    f => {
                        return Err(CaptureError::Unsupported(format!(
                            "the encoder makes {}, which is not recorded",
                            fourcc_str(&f)
                        )));
                    }
                };
                pump(dev, claim, path, raw_encoder, tx)?;
                Ok(frames)
            })
            .await
            .map_err(|e| CaptureError::Connect(e.to_string()))??;
            let mut frames = started;
            // Wait for the first key frame with parameters, within the frame timeout.
            let first = tokio::time::timeout(FRAME_TIMEOUT, async {
                loop {
                    let buf = rx.recv().await.ok_or_else(|| {
                        CaptureError::Stream("the device stopped before a key frame".into())
                    })??;
                    if let Some(f) = frames.push(&buf, monotonic_now(), jiff::Timestamp::now())? {
                        return Ok::<_, CaptureError>(f);
                    }
                }
            })
            .await
            .map_err(|_| CaptureError::Timeout(FRAME_TIMEOUT))??;
            let params = frames.params().expect("a first frame has parameters");
            let rest = futures::stream::unfold((rx, frames), |(mut rx, mut frames)| async move {
                loop {
                    let buf = match rx.recv().await? {
                        Ok(b) => b,
                        Err(e) => return Some((Err(e), (rx, frames))),
                    };
                    match frames.push(&buf, monotonic_now(), jiff::Timestamp::now()) {
                        Ok(Some(f)) => return Some((Ok(f), (rx, frames))),
                        Ok(None) => continue,
                        Err(e) => return Some((Err(e), (rx, frames))),
                    }
                }
            });
            let frames = futures::stream::once(async move { Ok(first) })
                .chain(rest)
                .boxed();
            Ok(Opened { params, frames })
        })
    }
}

#[cfg(test)]
mod tests;
