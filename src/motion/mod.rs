//! Eyrie's own motion detection, for cameras that report none: a camera's pictures, a few a
//! second, reduced to a small luma grid ([`GRID_W`] x [`GRID_H`] cells) and compared with a
//! background model (detector.rs); what starts and ends becomes a `motion` event with the
//! picture at its start as thumbnail.
//!
//! - jpeg.rs: MJPEG pictures at 1/8 scale from their DC coefficients, never decoded whole;
//! - h264.rs: H.264 key frames only, each decoded on its own (OpenH264), sizes bounded first;
//!   the other frames are never decoded, so a camera is sampled once per GOP at most. H.265 is
//!   not read (no crate vendors a decoder): such cameras rely on their own ONVIF events;
//! - detector.rs: background, thresholds, lighting rejection, ignore zones, hysteresis;
//! - raw pictures (a local V4L2 camera's YUYV or NV12, before Eyrie encodes them) come as
//!   grids already, through a [`Tap`] the source holds (capture/v4l2/luma.rs): one path into
//!   the detector for every source, the grid, of which the JPEG and H.264 readers and the tap
//!   are three makers ([`grid`], any stride and pixel pitch, bounded reads);
//! - this file: the per-camera [`Settings`], the grid, and the [`Watcher`] thread the recorder
//!   hands pictures to without ever waiting for it (a one-picture queue that drops).
//!
//! Events go to an [`EventSink`] (the node's event log) from the watcher's own thread.

mod detector;
pub mod h264;
pub mod jpeg;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::events::{EventId, EventSink, Origin};
use crate::video::{Codec, Frame, VideoParams};
use serde::{Deserialize, Serialize};

pub use detector::{Change, Detector};

/// Cells across and down the grid pictures are compared on, and their number.
pub const GRID_W: usize = 32;
pub const GRID_H: usize = 18;
pub const CELLS: usize = GRID_W * GRID_H;
/// Pictures looked at: at most one per this many milliseconds (4 a second); for H.264 this
/// bounds how many key frames are decoded.
pub const SAMPLE_MS: i64 = 250;
/// Largest thumbnail kept: a bigger picture at the event's start gives an event without one.
pub const MAX_THUMBNAIL: usize = 256 << 10;
/// Unreadable pictures are counted; one is logged at most once per this many milliseconds.
const WARN_EVERY_MS: i64 = 60_000;
/// Bounds of the settings.
pub const SENSITIVITY: std::ops::RangeInclusive<u8> = 1..=100;
pub const MIN_DURATION_MS: std::ops::RangeInclusive<u32> = 0..=60_000;

/// A camera's motion settings (`motion` in the camera's JSON, docs/api.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Off unless asked for.
    pub enabled: bool,
    /// 1 (only strong changes) to 100 (the faintest): the difference a cell must show.
    pub sensitivity: u8,
    /// Motion must go on this long before an event starts.
    pub min_duration_ms: u32,
    /// Cells to ignore: empty (watch all), or [`GRID_H`] rows of [`GRID_W`] characters, `x`
    /// ignored, `.` watched, top row first.
    pub ignore: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: false,
            sensitivity: 50,
            min_duration_ms: 1000,
            ignore: Vec::new(),
        }
    }
}

impl Settings {
    /// Checks every value; the error names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !SENSITIVITY.contains(&self.sensitivity) {
            return Err(format!(
                "motion.sensitivity: {} is outside 1 to 100",
                self.sensitivity
            ));
        }
        if !MIN_DURATION_MS.contains(&self.min_duration_ms) {
            return Err(format!(
                "motion.min_duration_ms: {} is outside 0 to 60000",
                self.min_duration_ms
            ));
        }
        let rows_ok = self.ignore.is_empty()
            || (self.ignore.len() == GRID_H
                && self
                    .ignore
                    .iter()
                    .all(|r| r.len() == GRID_W && r.bytes().all(|c| c == b'.' || c == b'x')));
        if !rows_ok {
            return Err(format!(
                "motion.ignore: empty, or {GRID_H} rows of {GRID_W} characters, 'x' ignored and \
                 '.' watched"
            ));
        }
        Ok(())
    }

    /// Which cells are watched, row by row.
    pub fn watched(&self) -> [bool; CELLS] {
        let mut w = [true; CELLS];
        for (y, row) in self.ignore.iter().take(GRID_H).enumerate() {
            for (x, c) in row.bytes().take(GRID_W).enumerate() {
                w[y * GRID_W + x] = c != b'x';
            }
        }
        w
    }
}

/// A grey picture, one byte a pixel, row by row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Luma {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Luma {
    /// The picture reduced to the grid: each cell the mean of the pixels it covers (at least
    /// one, so a picture smaller than the grid still fills it).
    pub fn grid(&self) -> Option<[u8; CELLS]> {
        grid(&self.data, self.width, self.height, self.width, 1)
    }
}

/// Most pixels read across and down a cell: a cell of a bigger picture is averaged over this
/// many evenly spread rows and columns of it, so a picture costs at most
/// `CELLS * SAMPLES * SAMPLES` reads whatever its size.
const SAMPLES: usize = 8;

/// A `w`x`h` grey picture reduced to the grid: its rows start `stride` bytes apart and its
/// pixels `pitch` bytes apart within a row (1 for a plane of luma, 2 for YUYV's packed Y).
/// `None` when the sizes are zero, do not fit in memory or `data` is too short for them.
pub fn grid(data: &[u8], w: usize, h: usize, stride: usize, pitch: usize) -> Option<[u8; CELLS]> {
    if w == 0 || h == 0 || pitch == 0 {
        return None;
    }
    // The last byte read is that of the last pixel of the last row.
    let row_bytes = (w - 1).checked_mul(pitch)?.checked_add(1)?;
    let needed = (h - 1).checked_mul(stride)?.checked_add(row_bytes)?;
    if stride < row_bytes || data.len() < needed {
        return None;
    }
    // Evenly spread samples of [a, b): all of it when it is short.
    let spread = |a: usize, b: usize| {
        let n = (b - a).min(SAMPLES);
        (0..n).map(move |i| a + i * (b - a) / n)
    };
    // Where part `i` of `n` of `len` starts (wide, so that no size overflows).
    let at = |i: usize, n: usize, len: usize| (i as u128 * len as u128 / n as u128) as usize;
    let mut out = [0u8; CELLS];
    for cy in 0..GRID_H {
        let y0 = at(cy, GRID_H, h);
        let y1 = at(cy + 1, GRID_H, h).max(y0 + 1);
        for cx in 0..GRID_W {
            let x0 = at(cx, GRID_W, w);
            let x1 = at(cx + 1, GRID_W, w).max(x0 + 1);
            let (mut sum, mut n) = (0u64, 0u64);
            for y in spread(y0, y1) {
                let row = &data[y * stride..];
                for x in spread(x0, x1) {
                    sum += u64::from(row[x * pitch]);
                    n += 1;
                }
            }
            out[cy * GRID_W + cx] = (sum / n.max(1)) as u8;
        }
    }
    Some(out)
}

/// A picture handed to the watcher: as recorded, or already reduced to the grid by a [`Tap`].
#[derive(Clone)]
enum Picture {
    Jpeg(Bytes),
    /// An H.264 key frame (length-prefixed NAL units) and its stream's parameters.
    H264 {
        params: Arc<VideoParams>,
        frame: Bytes,
    },
    Grid(Box<[u8; CELLS]>),
}

/// A picture and when it arrived.
struct Sample {
    picture: Picture,
    at_ms: i64,
}

/// What a watcher counted, for health.
#[derive(Debug, Default)]
pub struct Counters {
    /// Pictures compared.
    pub checked: std::sync::atomic::AtomicU64,
    /// Pictures the watcher was too busy for.
    pub dropped: std::sync::atomic::AtomicU64,
    /// Pictures that could not be read.
    pub unreadable: std::sync::atomic::AtomicU64,
}

/// [`Counters`] as read at one moment (`motion` in a camera's health).
#[derive(Debug, Clone, Serialize)]
pub struct MotionStatus {
    pub checked: u64,
    pub dropped: u64,
    pub unreadable: u64,
}

impl Counters {
    pub fn status(&self) -> MotionStatus {
        use std::sync::atomic::Ordering::Relaxed;
        MotionStatus {
            checked: self.checked.load(Relaxed),
            dropped: self.dropped.load(Relaxed),
            unreadable: self.unreadable.load(Relaxed),
        }
    }
}

/// Watches one camera's pictures (MJPEG, or H.264 key frames) on a thread of its own. Offering a
/// picture never waits:
/// one at most is queued, and one offered while the thread is busy is dropped (counted).
/// Dropping the watcher ends its thread, which first closes an open event.
///
/// A source that holds its pictures before encoding them (a raw V4L2 camera) is given a
/// [`Tap`] instead and hands the grid straight from them. Once a tap has, the recorded frames
/// offered here are only kept (the latest one) for the event's thumbnail, never decoded to be
/// compared.
pub struct Watcher {
    tx: SyncSender<Sample>,
    last_ms: Option<i64>,
    counters: Arc<Counters>,
    tapped: Arc<AtomicBool>,
    /// The latest recorded picture (MJPEG, or H.264 key frame), once a tap gives the grids.
    latest: Arc<Mutex<Option<Picture>>>,
}

/// Where a source that holds raw pictures hands motion detection their grid (see
/// [`Watcher::tap`]): at most one every [`SAMPLE_MS`] ([`Tap::due`] says when, so that the
/// source reduces only those), never waiting, like [`Watcher::offer_frame`].
#[derive(Clone)]
pub struct Tap {
    tx: SyncSender<Sample>,
    last_ms: Option<i64>,
    counters: Arc<Counters>,
    tapped: Arc<AtomicBool>,
}

impl Tap {
    /// Whether a picture that arrived at `at_ms` is to be reduced and offered.
    pub fn due(&self, at_ms: i64) -> bool {
        due(self.last_ms, at_ms)
    }

    /// Offers the grid of a picture that arrived at `at_ms` (see [`grid`]); `None`, a picture
    /// that could not be reduced (too short for its format), is counted unreadable.
    pub fn offer(&mut self, grid: Option<[u8; CELLS]>, at_ms: i64) {
        self.tapped.store(true, Ordering::Relaxed);
        let Some(grid) = grid else {
            self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
            self.last_ms = Some(at_ms);
            return;
        };
        if send(
            &self.tx,
            &self.counters,
            Picture::Grid(Box::new(grid)),
            at_ms,
        ) {
            self.last_ms = Some(at_ms);
        }
    }
}

fn due(last_ms: Option<i64>, at_ms: i64) -> bool {
    !last_ms.is_some_and(|l| at_ms - l < SAMPLE_MS && at_ms >= l)
}

/// Queues a picture for the watcher's thread, or counts it dropped; whether it was queued.
fn send(tx: &SyncSender<Sample>, counters: &Counters, picture: Picture, at_ms: i64) -> bool {
    match tx.try_send(Sample { picture, at_ms }) {
        Ok(()) => true,
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

impl Watcher {
    pub fn start(
        camera: String,
        settings: &Settings,
        sink: Arc<dyn EventSink>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let counters = Arc::new(Counters::default());
        let detector = Detector::new(settings);
        let c = counters.clone();
        let latest = Arc::new(Mutex::new(None));
        let l = latest.clone();
        std::thread::Builder::new()
            .name(format!("motion-{camera}"))
            .spawn(move || watch(camera, detector, rx, sink, c, l))?;
        Ok(Self {
            tx,
            last_ms: None,
            counters,
            tapped: Arc::default(),
            latest,
        })
    }

    /// A tap for a source that can reduce its own pictures to the grid (see [`Tap`]).
    pub fn tap(&self) -> Tap {
        Tap {
            tx: self.tx.clone(),
            last_ms: None,
            counters: self.counters.clone(),
            tapped: self.tapped.clone(),
        }
    }

    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// Whether the watcher reads pictures of `codec` (H.265 is not read).
    pub fn reads(codec: Codec) -> bool {
        matches!(codec, Codec::Mjpeg | Codec::H264)
    }

    /// Offers a recorded frame of a stream of `params`: an MJPEG picture, or an H.264 key frame
    /// (other frames are not looked at), at its arrival time.
    pub fn offer_frame(&mut self, params: &Arc<VideoParams>, frame: &Frame) {
        let at_ms = frame.received.as_millisecond();
        if self.tapped.load(Ordering::Relaxed) {
            let picture = match params.codec {
                Codec::Mjpeg => Picture::Jpeg(frame.data.clone()),
                Codec::H264 if frame.key => Picture::H264 {
                    params: params.clone(),
                    frame: frame.data.clone(),
                },
                Codec::H264 | Codec::H265 => return,
            };
            *self.latest.lock().unwrap() = Some(picture);
            return;
        }
        match params.codec {
            Codec::Mjpeg => self.offer(&frame.data, at_ms),
            Codec::H264 if frame.key && self.due(at_ms) => self.send(
                Picture::H264 {
                    params: params.clone(),
                    frame: frame.data.clone(),
                },
                at_ms,
            ),
            Codec::H264 | Codec::H265 => {}
        }
    }

    /// Offers a JPEG picture that arrived at `at_ms`; taken only if [`SAMPLE_MS`] passed since
    /// the last one taken.
    pub fn offer(&mut self, jpeg: &Bytes, at_ms: i64) {
        if self.due(at_ms) {
            self.send(Picture::Jpeg(jpeg.clone()), at_ms);
        }
    }

    fn due(&self, at_ms: i64) -> bool {
        due(self.last_ms, at_ms)
    }

    fn send(&mut self, picture: Picture, at_ms: i64) {
        if send(&self.tx, &self.counters, picture, at_ms) {
            self.last_ms = Some(at_ms);
        }
    }
}

fn watch(
    camera: String,
    mut detector: Detector,
    rx: Receiver<Sample>,
    sink: Arc<dyn EventSink>,
    counters: Arc<Counters>,
    latest: Arc<Mutex<Option<Picture>>>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut open: Option<EventId> = None;
    // The picture at the first moving one, kept for the thumbnail until the event starts.
    let mut first: Option<Bytes> = None;
    let mut key_frames = h264::KeyFrames::default();
    let handle = |change: Change, first: Option<Bytes>, open: &mut Option<EventId>| match change {
        Change::Started { at_ms, score } => {
            match sink.begin(&camera, "motion", Origin::Eyrie, at_ms, Some(score), None) {
                Ok(id) => {
                    *open = Some(id);
                    if let Some(j) = first.filter(|j| j.len() <= MAX_THUMBNAIL) {
                        if let Err(e) = sink.set_thumbnail(id, &j) {
                            tracing::warn!(%camera, "motion thumbnail: {e}");
                        }
                    }
                }
                Err(e) => tracing::warn!(%camera, "motion event: {e}"),
            }
        }
        Change::Ended { at_ms } => {
            if let Some(id) = open.take() {
                if let Err(e) = sink.end(id, at_ms) {
                    tracing::warn!(%camera, "motion event end: {e}");
                }
            }
        }
    };
    // When an unreadable picture was last logged: at most one warning a minute.
    let mut warned_ms: Option<i64> = None;
    while let Ok(Sample { picture, at_ms }) = rx.recv() {
        let read = match &picture {
            Picture::Jpeg(j) => jpeg::luma_dc(j)
                .map_err(|e| e.to_string())
                .and_then(|l| l.grid().ok_or_else(|| "an empty picture".to_string()))
                .map(|g| (g, None)),
            Picture::H264 { params, frame } => key_frames
                .decode(params, frame)
                .map(|k| (k.grid, Some(k)))
                .map_err(|e| format!("an H.264 key frame: {e}")),
            Picture::Grid(g) => Ok((**g, None)),
        };
        let (grid, key) = match read {
            Ok(r) => r,
            Err(e) => {
                counters.unreadable.fetch_add(1, Relaxed);
                if warned_ms.is_none_or(|w| !(0..WARN_EVERY_MS).contains(&(at_ms - w))) {
                    warned_ms = Some(at_ms);
                    tracing::warn!(
                        %camera,
                        "motion detection cannot read a picture (recording goes on): {e}"
                    );
                }
                continue;
            }
        };
        counters.checked.fetch_add(1, Relaxed);
        // The thumbnail: the JPEG as recorded, or the decoded key frame made one; for a grid
        // from a tap, the latest recorded picture (a key frame decoded only now).
        let mut thumbnail = || match (&picture, &key) {
            (Picture::Jpeg(j), _) => Some(j.clone()),
            (_, Some(k)) => k.thumbnail(),
            (Picture::Grid(_), None) => match latest.lock().unwrap().clone() {
                Some(Picture::Jpeg(j)) => Some(j),
                Some(Picture::H264 { params, frame }) => key_frames
                    .decode(&params, &frame)
                    .ok()
                    .and_then(|k| k.thumbnail()),
                _ => None,
            },
            _ => None,
        };
        let change = detector.feed(&grid, at_ms);
        if detector.pending() && first.is_none() {
            first = thumbnail();
        }
        match change {
            Some(c @ Change::Started { .. }) => {
                let t = first.take().or_else(thumbnail);
                handle(c, t, &mut open)
            }
            Some(c) => handle(c, None, &mut open),
            None if !detector.pending() => first = None,
            None => {}
        }
    }
    if let Some(c) = detector.finish() {
        handle(c, None, &mut open);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventError;

    #[test]
    fn settings_are_checked() {
        assert!(Settings::default().validate().is_ok());
        let bad = |f: &dyn Fn(&mut Settings)| {
            let mut s = Settings::default();
            f(&mut s);
            s.validate().unwrap_err()
        };
        assert!(bad(&|s| s.sensitivity = 0).contains("motion.sensitivity"));
        assert!(bad(&|s| s.sensitivity = 101).contains("motion.sensitivity"));
        assert!(bad(&|s| s.min_duration_ms = 60_001).contains("motion.min_duration_ms"));
        assert!(bad(&|s| s.ignore = vec![".".repeat(GRID_W)]).contains("motion.ignore"));
        assert!(bad(&|s| s.ignore = vec!["o".repeat(GRID_W); GRID_H]).contains("motion.ignore"));
        let mut s = Settings {
            ignore: vec![".".repeat(GRID_W); GRID_H],
            ..Settings::default()
        };
        s.ignore[2] = "x".to_string() + &".".repeat(GRID_W - 1);
        assert!(s.validate().is_ok());
        let w = s.watched();
        assert!(!w[2 * GRID_W] && w[2 * GRID_W + 1] && w[0]);
        let json: Settings = serde_json::from_str(r#"{"enabled": true}"#).unwrap();
        assert_eq!((json.sensitivity, json.min_duration_ms), (50, 1000));
        assert!(serde_json::from_str::<Settings>(r#"{"sensitivty": 3}"#).is_err());
    }

    /// Keeps what the watcher reported.
    #[derive(Default)]
    struct Kept(std::sync::Mutex<Vec<String>>);

    impl EventSink for Kept {
        fn begin(
            &self,
            camera: &str,
            kind: &str,
            origin: Origin,
            start_ms: i64,
            score: Option<f32>,
            _zone: Option<String>,
        ) -> Result<EventId, EventError> {
            let mut k = self.0.lock().unwrap();
            assert!(score.is_some_and(|s| s > 0.0));
            assert_eq!(origin, Origin::Eyrie);
            k.push(format!("begin {camera} {kind} {start_ms}"));
            Ok(EventId(k.len() as u64))
        }
        fn end(&self, id: EventId, end_ms: i64) -> Result<(), EventError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("end {} {end_ms}", id.0));
            Ok(())
        }
        fn set_thumbnail(&self, id: EventId, jpeg: &[u8]) -> Result<(), EventError> {
            // The thumbnail is the picture at the start: the box at its first place.
            let l = jpeg::luma_dc(jpeg).map_err(|e| EventError::Invalid(e.0))?;
            let id = id.0;
            let bright = l.data.iter().position(|&v| v > 200);
            self.0
                .lock()
                .unwrap()
                .push(format!("thumbnail {id} {bright:?}"));
            Ok(())
        }
    }

    fn picture(box_at: Option<usize>) -> Bytes {
        let (w, h) = (320usize, 180usize);
        let mut px = vec![90u8; w * h];
        if let Some(x0) = box_at {
            for y in 40..100 {
                for x in x0..x0 + 60 {
                    px[y * w + x] = 250;
                }
            }
        }
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, 80)
            .encode(&px, w as u16, h as u16, jpeg_encoder::ColorType::Luma)
            .unwrap();
        out.into()
    }

    /// A watcher of camera `cam` with motion on and a minimum duration of 500 ms.
    fn watching(kept: &Arc<Kept>) -> Watcher {
        let s = Settings {
            enabled: true,
            min_duration_ms: 500,
            ..Settings::default()
        };
        Watcher::start("cam".into(), &s, kept.clone()).unwrap()
    }

    #[test]
    fn a_watcher_reports_events_and_never_waits() {
        use std::sync::atomic::Ordering::Relaxed;
        let kept = Arc::new(Kept::default());
        let mut w = watching(&kept);
        let counters = w.counters().clone();
        // Offered faster than sampled: of one picture every 100 ms, one every 300 ms is taken.
        let mut t = 1_000_000;
        let mut taken = Vec::new();
        let mut offer = |w: &mut Watcher, p: &Bytes, t: i64| {
            let before = counters.checked.load(Relaxed);
            w.offer(p, t);
            // Wait until a taken picture is compared, so that none is dropped here.
            if w.last_ms == Some(t) {
                taken.push(t);
                while counters.checked.load(Relaxed) == before {
                    std::thread::yield_now();
                }
            }
        };
        let still = picture(None);
        for _ in 0..20 {
            offer(&mut w, &still, t);
            t += 100;
        }
        let start = t;
        for i in 0..20 {
            offer(&mut w, &picture(Some(20 + i * 10)), t);
            t += 100;
        }
        for _ in 0..50 {
            offer(&mut w, &still, t);
            t += 100;
        }
        assert_eq!(taken.len(), 30);
        assert_eq!(counters.checked.load(Relaxed), 30);
        // A picture that cannot be read is counted, not fatal.
        w.offer(&Bytes::from_static(b"not a jpeg"), t + 1000);
        let waited = std::time::Instant::now();
        while counters.unreadable.load(Relaxed) == 0 || kept.0.lock().unwrap().len() < 3 {
            assert!(
                waited.elapsed().as_secs() < 60,
                "{:?}",
                kept.0.lock().unwrap()
            );
            std::thread::yield_now();
        }
        drop(w);
        let k = kept.0.lock().unwrap().clone();
        assert_eq!(k.len(), 3, "{k:?}");
        let first = taken.iter().find(|&&x| x >= start).unwrap();
        assert_eq!(k[0], format!("begin cam motion {first}"));
        assert!(k[1].starts_with("thumbnail 1 Some("), "{k:?}");
        assert!(k[2].starts_with("end 1 "), "{k:?}");
        // Offering into a full queue returns at once and counts the picture as dropped.
        let (tx, _rx) = std::sync::mpsc::sync_channel(0);
        let mut full = Watcher {
            tx,
            last_ms: None,
            counters: Arc::default(),
            tapped: Arc::default(),
            latest: Arc::default(),
        };
        full.offer(&still, 0);
        assert_eq!(full.counters.dropped.load(Relaxed), 1);
    }

    /// H.264: only key frames are looked at; a damaged one is counted and skipped, and the
    /// event still starts, gets the decoded key frame as thumbnail, and ends.
    #[test]
    fn a_watcher_reads_h264_key_frames_and_skips_damaged_ones() {
        use std::sync::atomic::Ordering::Relaxed;
        let (width, height) = (320, 176);
        let mut cam = h264::testing::Camera::new(width, height);
        let kept = Arc::new(Kept::default());
        let mut w = watching(&kept);
        let counters = w.counters().clone();
        let frame = |data: Bytes, key: bool, t: i64| Frame {
            data,
            pts: t * 90,
            key,
            received: jiff::Timestamp::from_millisecond(t).unwrap(),
            new_params: None,
        };
        let offer = |w: &mut Watcher, f: Frame, params: &Arc<VideoParams>| {
            let seen = |c: &Counters| c.checked.load(Relaxed) + c.unreadable.load(Relaxed);
            let before = seen(&counters);
            let taken = f.key;
            w.offer_frame(params, &f);
            while taken && seen(&counters) == before {
                std::thread::yield_now();
            }
        };
        let mut t = 1_000_000;
        for i in 0..20 {
            let boxed = (6..12).contains(&i).then(|| 20 + (i - 6) * 40);
            let data = cam.key_frame(&h264::testing::picture(width, height, boxed));
            let params = cam.params.clone().unwrap();
            if i == 8 {
                // A key frame damaged past its first bytes: unreadable, nothing else lost.
                let mut bad = data.to_vec();
                let n = bad.len();
                bad[8..n].fill(0xff);
                offer(&mut w, frame(bad.into(), true, t), &params);
            } else {
                offer(&mut w, frame(data.clone(), true, t), &params);
            }
            // The frames between key frames are never looked at, whatever they hold.
            offer(
                &mut w,
                frame(Bytes::from_static(b"\0\0\0\x01\x41"), false, t + 100),
                &params,
            );
            t += 1000;
        }
        drop(w);
        let k = kept.0.lock().unwrap().clone();
        assert_eq!(counters.unreadable.load(Relaxed), 1, "{k:?}");
        assert_eq!(counters.checked.load(Relaxed), 19, "{k:?}");
        assert_eq!(k.len(), 3, "{k:?}");
        assert_eq!(k[0], "begin cam motion 1006000");
        assert!(k[1].starts_with("thumbnail 1 Some("), "{k:?}");
        assert_eq!(k[2], "end 1 1011000");
    }

    /// Grids from a tap take the place of the recorded pictures: those offered after are only
    /// kept for the thumbnail (the latest one), a grid that could not be made is counted, and
    /// the tap keeps the watcher's rate.
    #[test]
    fn a_tap_gives_the_grids_and_frames_give_the_thumbnail() {
        use std::sync::atomic::Ordering::Relaxed;
        let kept = Arc::new(Kept::default());
        let mut w = watching(&kept);
        let counters = w.counters().clone();
        let mut tap = w.tap();
        let params = Arc::new(VideoParams {
            codec: Codec::Mjpeg,
            ..crate::video::testing::h264_params()
        });
        let frame = |data: Bytes, t: i64| Frame {
            data,
            pts: t * 90,
            key: true,
            received: jiff::Timestamp::from_millisecond(t).unwrap(),
            new_params: None,
        };
        // The grid of a still scene, and of one with a bright box at column `x`.
        let grid_of = |x: Option<usize>| {
            let mut g = [90u8; CELLS];
            if let Some(x) = x {
                for y in 4..10 {
                    g[y * GRID_W + x..y * GRID_W + x + 6].fill(250);
                }
            }
            g
        };
        let mut t = 1_000_000;
        let mut taken = 0;
        let mut give = |tap: &mut Tap, g: [u8; CELLS], t: i64| {
            if tap.due(t) {
                let before = counters.checked.load(Relaxed);
                tap.offer(Some(g), t);
                taken += 1;
                while counters.checked.load(Relaxed) == before {
                    std::thread::yield_now();
                }
            }
        };
        // From the first grid on, recorded pictures are no longer compared.
        give(&mut tap, grid_of(None), t - 300);
        for i in 0..40 {
            let boxed = (10..20).contains(&i).then(|| i - 8);
            // The recorded picture (here just before its grid): kept for the thumbnail, never
            // read otherwise (a damaged one would be counted unreadable if it were).
            let jpeg = if i == 30 {
                Bytes::from_static(b"not a jpeg")
            } else {
                picture(boxed.map(|x| x * 10))
            };
            w.offer_frame(&params, &frame(jpeg, t - 50));
            give(&mut tap, grid_of(boxed), t);
            t += 150;
        }
        // One grid every 300 ms: the watcher's rate (250 ms) on pictures 150 ms apart.
        assert_eq!(taken, 21);
        tap.offer(None, t + 1000);
        drop(tap);
        drop(w);
        let k = kept.0.lock().unwrap().clone();
        assert_eq!(counters.checked.load(Relaxed), taken, "{k:?}");
        assert_eq!(counters.unreadable.load(Relaxed), 1, "{k:?}");
        assert_eq!(k.len(), 3, "{k:?}");
        assert!(k[0].starts_with("begin cam motion "), "{k:?}");
        // The thumbnail is a recorded picture with the box in it.
        assert!(k[1].starts_with("thumbnail 1 Some("), "{k:?}");
        assert!(k[2].starts_with("end 1 "), "{k:?}");
    }

    #[test]
    fn grids_of_any_size() {
        for (w, h) in [(80, 45), (160, 90), (10, 5), (33, 19)] {
            let data: Vec<u8> = (0..w * h)
                .map(|i| if i % w < w / 2 { 10 } else { 200 })
                .collect();
            let g = Luma {
                width: w,
                height: h,
                data,
            }
            .grid()
            .unwrap();
            assert_eq!(g[0], 10, "{w}x{h}");
            assert_eq!(g[GRID_W - 1], 200, "{w}x{h}");
            assert_eq!(g[CELLS - 1], 200, "{w}x{h}");
        }
        let empty = Luma {
            width: 0,
            height: 0,
            data: Vec::new(),
        };
        assert_eq!(empty.grid(), None);
    }
}
