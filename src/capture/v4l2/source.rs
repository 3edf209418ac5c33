//! The V4L2 camera as a capture [`Source`]: opening claims the device, chooses and starts a
//! mode, picks the encoder for raw pictures (memory-to-memory when allowed and found, else
//! software MJPEG), and runs the device's pump thread (V4L2 calls block), whose buffers become
//! frames on the async side. Unplug is an error the recorder retries until the device is back.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;

use super::claim::Claim;
use super::device::{
    Buffer, Device, Encoder, H264, MJPEG, Mode, Opener, choose, encode_config, fourcc_str,
    recordable,
};
use super::encode::{self, Counters, EncodeConfig, Offer, RawEncoder};
use super::frames::{Frames, MjpegFrames, monotonic_now};
use super::h264::H264Frames;
use super::luma::LumaTap;
use super::request::{EncoderChoice, Request};
use crate::capture::{CaptureError, Encoding, FRAME_TIMEOUT, Opened, Source};

/// Buffers from a device on its own thread (V4L2 calls block), ended by an error, nothing
/// within the frame timeout, or the receiver going away (noticed within a second, which then
/// frees the device for the next open).
/// With an `encoder`, raw pictures are offered to it and its frames come on `tx` instead; with
/// a `tap` too (motion detection on), they are first looked at for motion (luma.rs).
fn pump(
    mut dev: Box<dyn Device>,
    claim: Claim,
    path: PathBuf,
    mut encoder: Option<Box<dyn RawEncoder>>,
    mut tap: Option<LumaTap>,
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
                        if let Some(t) = &mut tap {
                            t.look(&buf);
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

/// Starts a memory-to-memory encoder for a raw mode (the kernel's: m2m.rs), its frames
/// going to the sender: `None` when the machine has none for the mode's format; else the
/// encoder, what it codes to and its name for health, or why it did not start.
pub type HwEncoders = Arc<
    dyn Fn(&Mode, FrameSender, Arc<AtomicU64>, Arc<Counters>) -> Option<HwStarted> + Send + Sync,
>;

/// A started hardware encoder; or why it failed.
pub type HwStarted = Result<HwEncoder, String>;

/// A started hardware encoder: the encoder, what it codes to, and what it is for health.
pub struct HwEncoder {
    pub encoder: Box<dyn RawEncoder>,
    pub coded: [u8; 4],
    pub name: Encoder,
}

/// The encoder a raw camera got: what it codes to, its name for health and why a hardware
/// encoder was not used.
struct ChosenEncoder {
    encoder: Box<dyn RawEncoder>,
    coded: [u8; 4],
    name: Encoder,
    why_not: Option<String>,
}

/// What records a device's pictures, once opened, and why a hardware encoder was not used.
#[derive(Debug, Clone, Default)]
struct Used {
    encoder: Option<Encoder>,
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
            Some(Ok(HwEncoder {
                encoder,
                coded,
                name,
            })) => {
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
        name: Encoder::SoftwareMjpeg,
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
    /// What records the device's pictures, once opened (see [`recordable`]), and why an
    /// encoder was not used.
    encoder: Arc<Mutex<Used>>,
    counters: Arc<encode::Counters>,
    hw: Option<HwEncoders>,
    /// Motion detection's tap, when it is on: raw pictures are reduced to its grid.
    tap: Arc<Mutex<Option<crate::motion::Tap>>>,
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
            tap: Arc::default(),
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

    fn encoding(&self) -> Option<Encoding> {
        let Used { encoder, why_not } = self.encoder.lock().unwrap().clone();
        Some(Encoding {
            encoder: encoder.map(|e| e.to_string()).unwrap_or_default(),
            encoder_error: why_not,
            rate_skipped_frames: self.counters.rate_skipped.load(Ordering::Relaxed),
            encoder_dropped_frames: self.counters.encoder_dropped.load(Ordering::Relaxed),
        })
    }

    fn tap_motion(&self, tap: crate::motion::Tap) {
        *self.tap.lock().unwrap() = Some(tap);
    }

    fn open(&self) -> BoxFuture<'static, Result<Opened, CaptureError>> {
        let tap = self.tap.lock().unwrap().clone();
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
                        *encoder.lock().unwrap() = Used {
                            encoder: Some(how),
                            why_not: None,
                        };
                        (None, got.fourcc)
                    }
                    Some(cfg) => {
                        let e =
                            raw_encoder(&req, &got, cfg, hw.as_ref(), &tx, &dropped, &counters)?;
                        *encoder.lock().unwrap() = Used {
                            encoder: Some(e.name),
                            why_not: e.why_not,
                        };
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
                // Raw pictures only: a camera's own MJPEG or H.264 is read as recorded.
                let tap = tap
                    .filter(|_| raw_encoder.is_some())
                    .and_then(|t| LumaTap::new(t, &got));
                pump(dev, claim, path, raw_encoder, tap, tx)?;
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
