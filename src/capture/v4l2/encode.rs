//! Software MJPEG for devices that stream raw pictures (YUYV, NV12): frames kept to the
//! configured rate by their driver timestamps, then encoded to JPEG (the `jpeg-encoder` crate)
//! on a thread of their own behind a one-picture queue, so neither the device thread nor the
//! async runtime waits for the encoder. What comes out is recorded exactly like a camera's
//! MJPEG. Frames left out to keep the rate and frames the encoder could not keep up with are
//! counted apart from the frames the driver lost.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::Duration;

use jpeg_encoder::{Encoder, ImageBuffer, JpegColorType, SamplingFactor};

use super::{Buffer, Mode, NV12, YUYV, monotonic_now, sequence_gap};
use crate::capture::CaptureError;

/// Pictures encoded per second unless the source says (`encode_fps=`), and the bounds.
pub const DEFAULT_ENCODE_FPS: u32 = 5;
pub const ENCODE_FPS: RangeInclusive<u32> = 1..=30;
/// JPEG quality unless the source says (`quality=`), and the bounds.
pub const DEFAULT_QUALITY: u8 = 75;
pub const QUALITY: RangeInclusive<u32> = 10..=95;

/// How raw pictures are encoded: the source's `encode_fps` and `quality`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncodeConfig {
    pub fps: u32,
    pub quality: u8,
}

impl Default for EncodeConfig {
    fn default() -> Self {
        Self {
            fps: DEFAULT_ENCODE_FPS,
            quality: DEFAULT_QUALITY,
        }
    }
}

/// The raw layouts this encodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawFormat {
    /// Packed 4:2:2: Y0 Cb Y1 Cr for every two pixels.
    Yuyv,
    /// 4:2:0: the Y plane, then one plane of interleaved Cb Cr for every 2x2 pixels.
    Nv12,
}

impl RawFormat {
    pub fn of(fourcc: [u8; 4]) -> Option<Self> {
        match fourcc {
            YUYV => Some(Self::Yuyv),
            NV12 => Some(Self::Nv12),
            _ => None,
        }
    }

    /// The bytes per line of a `len`-byte buffer holding a `width`x`height` picture, if it can
    /// hold one. Drivers pad lines (bytesperline) but fill the buffer line for line, so the
    /// stride is the buffer's size over its lines.
    pub(crate) fn stride(self, len: usize, width: usize, height: usize) -> Option<usize> {
        // Sizes come from the driver: checked, and no picture without lines.
        let (lines, min) = match self {
            Self::Yuyv => (Some(height), width.checked_mul(2)),
            // Y lines, then half as many chroma lines (rounded up) of the same stride, each
            // with a Cb Cr pair for every two pixels (rounded up).
            Self::Nv12 => (
                height.checked_add(height.div_ceil(2)),
                width.checked_next_multiple_of(2),
            ),
        };
        let (lines, min) = (lines.filter(|&l| l > 0)?, min?);
        let stride = len / lines;
        (stride >= min).then_some(stride)
    }
}

/// Video-range (what V4L2 YUV formats carry by default: Y 16–235, Cb/Cr 16–240) to the full
/// range JPEG (JFIF) uses.
struct FullRange {
    y: [u8; 256],
    c: [u8; 256],
}

impl FullRange {
    fn new() -> Self {
        let mut t = Self {
            y: [0; 256],
            c: [0; 256],
        };
        for v in 0..256i32 {
            t.y[v as usize] = ((v - 16) * 255 + 109).div_euclid(219).clamp(0, 255) as u8;
            t.c[v as usize] = (((v - 128) * 255 + 112).div_euclid(224) + 128).clamp(0, 255) as u8;
        }
        t
    }
}

/// One raw picture as the JPEG encoder reads it, row by row, straight from the driver's
/// buffer (no converted copy): chroma repeated for each pixel it covers, which the encoder's
/// subsampling (4:2:2 for YUYV, 4:2:0 for NV12) averages back to the same values.
struct RawPicture<'a> {
    format: RawFormat,
    data: &'a [u8],
    width: usize,
    height: usize,
    stride: usize,
    range: &'a FullRange,
}

impl ImageBuffer for RawPicture<'_> {
    fn get_jpeg_color_type(&self) -> JpegColorType {
        JpegColorType::Ycbcr
    }

    fn width(&self) -> u16 {
        self.width as u16
    }

    fn height(&self) -> u16 {
        self.height as u16
    }

    fn fill_buffers(&self, y: u16, buffers: &mut [Vec<u8>; 4]) {
        let y = y as usize;
        let (r, w) = (self.range, self.width);
        let [luma, cb, cr, _] = buffers;
        match self.format {
            RawFormat::Yuyv => {
                let row = &self.data[y * self.stride..][..w * 2];
                for p in row.chunks_exact(4) {
                    let (u, v) = (r.c[p[1] as usize], r.c[p[3] as usize]);
                    luma.extend_from_slice(&[r.y[p[0] as usize], r.y[p[2] as usize]]);
                    cb.extend_from_slice(&[u, u]);
                    cr.extend_from_slice(&[v, v]);
                }
            }
            RawFormat::Nv12 => {
                let row = &self.data[y * self.stride..][..w];
                luma.extend(row.iter().map(|&v| r.y[v as usize]));
                let chroma = self.height * self.stride + (y / 2) * self.stride;
                let uv = &self.data[chroma..][..w.next_multiple_of(2)];
                for (x, p) in uv.chunks_exact(2).enumerate() {
                    let (u, v) = (r.c[p[0] as usize], r.c[p[1] as usize]);
                    let n = if 2 * x + 1 < w { 2 } else { 1 };
                    cb.extend_from_slice(&[u, u][..n]);
                    cr.extend_from_slice(&[v, v][..n]);
                }
            }
        }
    }
}

/// Raw pictures of one mode to JPEG.
pub struct JpegEncoder {
    format: RawFormat,
    width: usize,
    height: usize,
    quality: u8,
    range: FullRange,
}

impl JpegEncoder {
    pub fn new(mode: &Mode, quality: u8) -> Result<Self, String> {
        let format = RawFormat::of(mode.fourcc).ok_or_else(|| {
            format!(
                "{} is not a raw format this encodes (YUYV, NV12)",
                super::fourcc_str(&mode.fourcc)
            )
        })?;
        if mode.width == 0 || mode.height == 0 || mode.width > 8192 || mode.height > 8192 {
            return Err(format!("cannot encode {}x{}", mode.width, mode.height));
        }
        if format == RawFormat::Yuyv && mode.width % 2 != 0 {
            return Err(format!("YUYV needs an even width, not {}", mode.width));
        }
        Ok(Self {
            format,
            width: mode.width as usize,
            height: mode.height as usize,
            quality: quality.clamp(1, 100),
            range: FullRange::new(),
        })
    }

    /// Encodes one driver buffer into `out` (cleared first, its memory reused).
    pub fn encode(&self, data: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        let stride = self
            .format
            .stride(data.len(), self.width, self.height)
            .ok_or_else(|| {
                format!(
                    "a {}-byte buffer cannot hold a {}x{} {:?} picture",
                    data.len(),
                    self.width,
                    self.height,
                    self.format
                )
            })?;
        out.clear();
        let mut enc = Encoder::new(&mut *out, self.quality);
        enc.set_sampling_factor(match self.format {
            RawFormat::Yuyv => SamplingFactor::R_4_2_2,
            RawFormat::Nv12 => SamplingFactor::R_4_2_0,
        });
        enc.encode_image(RawPicture {
            format: self.format,
            data,
            width: self.width,
            height: self.height,
            stride,
            range: &self.range,
        })
        .map_err(|e| format!("JPEG encoder: {e}"))
    }
}

/// Keeps frames to a rate by their timestamps: a frame is taken when it is due on a fixed
/// schedule of `1/fps` steps (with an eighth of a step of slack for jitter); the schedule
/// restarts after a gap longer than a step or a timestamp that went backwards.
#[derive(Debug)]
pub struct RateGate {
    step: Duration,
    next: Option<Duration>,
}

impl RateGate {
    pub fn new(fps: u32) -> Self {
        Self {
            step: Duration::from_secs(1) / fps.max(1),
            next: None,
        }
    }

    /// Whether the frame taken at `ts` is to be kept.
    pub fn admit(&mut self, ts: Duration) -> bool {
        let slack = self.step / 8;
        match self.next {
            Some(next) if ts + slack < next && ts + self.step >= next => false,
            Some(next) if ts + slack >= next && ts < next + self.step => {
                self.next = Some(next + self.step);
                true
            }
            // The first frame, a jump forward or a clock that went back: start again here.
            _ => {
                self.next = Some(ts + self.step);
                true
            }
        }
    }
}

/// What the software encoder counts, for health.
#[derive(Debug, Default)]
pub struct Counters {
    /// Frames left out on purpose to keep to `encode_fps`.
    pub rate_skipped: AtomicU64,
    /// Frames dropped because the encoder was still busy with an earlier one.
    pub encoder_dropped: AtomicU64,
}

/// The device-thread side of software MJPEG: counts sequence gaps, keeps the rate, and hands
/// pictures to the encoder thread without waiting (a busy encoder means the frame is dropped and
/// counted; memory never grows beyond one queued and one encoding picture). Pictures' memory
/// is reused: what the encoder is done with comes back for the device's next buffer.
pub struct SoftwareMjpeg {
    gate: RateGate,
    last_seq: Option<u32>,
    dropped: Arc<AtomicU64>,
    counters: Arc<Counters>,
    queue: SyncSender<Buffer>,
    done: Receiver<Vec<u8>>,
}

/// What became of a buffer offered to the encoder.
pub enum Offer {
    Taken,
    /// Not encoded (kept out by the rate, or the encoder was busy): its memory, for reuse.
    Back(Vec<u8>),
    /// The encoder thread is gone (the stream's reader went away).
    Gone,
    /// The encoder failed; the camera stops with this error.
    Failed(String),
}

/// What encodes a raw camera's pictures: software MJPEG, or a kernel memory-to-memory encoder
/// (m2m.rs). Offered every picture by the device thread, it never makes it wait.
pub trait RawEncoder: Send {
    fn offer(&mut self, buf: Buffer) -> Offer;
    /// The memory of a picture the encoder is done with, if there is one.
    fn spare(&mut self) -> Option<Vec<u8>>;
}

impl SoftwareMjpeg {
    /// Starts the encoder thread; its JPEG buffers go to `out` (numbered one after another,
    /// timestamps as the driver gave them).
    pub fn start(
        mode: &Mode,
        cfg: EncodeConfig,
        out: tokio::sync::mpsc::Sender<Result<Buffer, CaptureError>>,
        dropped: Arc<AtomicU64>,
        counters: Arc<Counters>,
    ) -> Result<Self, String> {
        let encoder = JpegEncoder::new(mode, cfg.quality)?;
        let (queue, pictures) = std::sync::mpsc::sync_channel::<Buffer>(1);
        let (give_back, done) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let lost = dropped.clone();
        std::thread::Builder::new()
            .name("mjpeg-encoder".into())
            .spawn(move || {
                let mut sequence = 0u32;
                let mut last_size = 0;
                // Ends when the device thread drops its side, or the stream's reader is gone.
                while let Ok(raw) = pictures.recv() {
                    let mut jpeg = Vec::with_capacity(last_size + last_size / 4);
                    let r = encoder.encode(&raw.data, &mut jpeg);
                    let _ = give_back.try_send(raw.data);
                    if let Err(e) = r {
                        tracing::debug!("v4l2: skipped a picture: {e}");
                        lost.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    last_size = jpeg.len();
                    let buf = Buffer {
                        data: jpeg,
                        sequence,
                        timestamp: raw.timestamp,
                    };
                    sequence = sequence.wrapping_add(1);
                    if out.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
            })
            .map_err(|e| format!("starting the encoder thread: {e}"))?;
        Ok(Self {
            gate: RateGate::new(cfg.fps),
            last_seq: None,
            dropped,
            counters,
            queue,
            done,
        })
    }
}

impl RawEncoder for SoftwareMjpeg {
    fn spare(&mut self) -> Option<Vec<u8>> {
        self.done.try_recv().ok()
    }

    /// Takes one buffer from the device.
    fn offer(&mut self, buf: Buffer) -> Offer {
        if let Some(last) = self.last_seq {
            self.dropped
                .fetch_add(sequence_gap(last, buf.sequence), Ordering::Relaxed);
        }
        self.last_seq = Some(buf.sequence);
        let ts = if buf.timestamp.is_zero() {
            monotonic_now()
        } else {
            buf.timestamp
        };
        if !self.gate.admit(ts) {
            self.counters.rate_skipped.fetch_add(1, Ordering::Relaxed);
            return Offer::Back(buf.data);
        }
        match self.queue.try_send(buf) {
            Ok(()) => Offer::Taken,
            Err(TrySendError::Full(buf)) => {
                self.counters
                    .encoder_dropped
                    .fetch_add(1, Ordering::Relaxed);
                Offer::Back(buf.data)
            }
            Err(TrySendError::Disconnected(_)) => Offer::Gone,
        }
    }
}
