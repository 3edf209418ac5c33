//! Diagnostics against real hardware, for checking a device, a driver, or this code: a short
//! trial capture (`eyrie devices --capture N`) and a trial encode through a memory-to-memory
//! encoder (`eyrie m2m-trial`). Nothing here runs while recording.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::camera::KernelDevice;
use super::encode::{Counters, Offer, RawEncoder};
use super::list::m2m_encoders_to;
use super::m2m::KernelM2m;
use super::{Buffer, Request, choose, fourcc_str, monotonic_now, sequence_gap};

/// What a short trial capture from a device showed (`eyrie devices --capture N`): for checking
/// a device, a driver, or this code against real hardware.
#[derive(Debug, Default, serde::Serialize)]
pub struct Trial {
    pub path: String,
    pub fourcc: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u32,
    pub min_bytes: usize,
    pub max_bytes: usize,
    /// Frames lost, from gaps in the driver's sequence numbers.
    pub dropped: u64,
    /// Every timestamp later than the one before.
    pub timestamps_increasing: bool,
    /// Every timestamp set (non-zero).
    pub timestamps_set: bool,
    /// Furthest a buffer's timestamp was after CLOCK_MONOTONIC's now when it was dequeued, in
    /// microseconds (negative: all in the past). Near zero or below means the driver stamps on
    /// the monotonic clock, as the wall-clock mapping assumes.
    pub max_ahead_us: i64,
    pub error: Option<String>,
}

/// Streams `frames` buffers in the mode a camera with source `req` would get.
pub fn trial(req: &Request, frames: u32) -> Trial {
    let mut t = Trial {
        path: req.path.display().to_string(),
        timestamps_increasing: true,
        timestamps_set: true,
        max_ahead_us: i64::MIN,
        ..Default::default()
    };
    if let Err(e) = trial_into(req, frames, &mut t) {
        t.error = Some(e);
    }
    t
}

fn trial_into(req: &Request, frames: u32, t: &mut Trial) -> Result<(), String> {
    let mut dev = KernelDevice::open(&req.path).map_err(|e| format!("open: {e}"))?;
    let formats = dev.formats().map_err(|e| format!("formats: {e}"))?;
    let mode = dev
        .start(choose(&formats, req)?)
        .map_err(|e| format!("start: {e}"))?;
    (t.fourcc, t.width, t.height, t.fps) =
        (fourcc_str(&mode.fourcc), mode.width, mode.height, mode.fps);
    let mut last: Option<Buffer> = None;
    for _ in 0..frames {
        let b = dev
            .next(Duration::from_secs(10), Vec::new())
            .map_err(|e| format!("frame {}: {e}", t.frames))?;
        t.frames += 1;
        t.min_bytes = if t.frames == 1 {
            b.data.len()
        } else {
            t.min_bytes.min(b.data.len())
        };
        t.max_bytes = t.max_bytes.max(b.data.len());
        t.timestamps_set &= !b.timestamp.is_zero();
        let ahead = b.timestamp.as_micros() as i64 - monotonic_now().as_micros() as i64;
        t.max_ahead_us = t.max_ahead_us.max(ahead);
        if let Some(prev) = &last {
            t.dropped += sequence_gap(prev.sequence, b.sequence);
            t.timestamps_increasing &= b.timestamp > prev.timestamp;
        }
        last = Some(b);
    }
    Ok(())
}

/// What encoding a camera's pictures through an M2M encoder showed (`eyrie m2m-trial`): for
/// checking an encoder, a driver, or this code against real hardware.
#[derive(Debug, Default, serde::Serialize)]
pub struct EncodeTrial {
    pub camera: String,
    /// `v4l2-m2m:<driver> (<path>)`, the encoder found by capability.
    pub encoder: String,
    /// Whether its queues are multi-planar (`V4L2_CAP_VIDEO_M2M_MPLANE`).
    pub multiplanar: bool,
    pub raw: String,
    pub coded: String,
    pub width: u32,
    pub height: u32,
    /// Pictures offered to the encoder.
    pub pictures: u32,
    /// Timestamps (µs, the driver's) of the pictures queued, in order.
    pub queued_us: Vec<u64>,
    /// Pictures dropped because the encoder had no free buffer.
    pub encoder_dropped: u64,
    /// Pictures lost before the encoder (sequence gaps, buffers that were not a picture).
    pub dropped: u64,
    /// Coded frames that came back (after the stop, all of them), and their timestamps.
    pub frames: u32,
    pub frame_us: Vec<u64>,
    pub frame_bytes: Vec<usize>,
    pub error: Option<String>,
}

/// Streams `pictures` pictures from the camera of `req` (a raw format) into the first M2M
/// encoder found that makes `coded` from it, stops the encoder and takes every frame; with
/// `out_dir`, the frames are written there as `frame-NNNN.<coded>`. With `burst`, all pictures
/// are taken from the camera first and then offered at once, and the coded frames are taken
/// only after that: once the encoder's buffers are full, pictures are dropped and counted.
pub fn encode_trial(
    req: &Request,
    coded: [u8; 4],
    pictures: u32,
    burst: bool,
    out_dir: Option<&Path>,
) -> EncodeTrial {
    let mut t = EncodeTrial {
        camera: req.path.display().to_string(),
        coded: fourcc_str(&coded),
        ..Default::default()
    };
    if let Err(e) = encode_trial_into(req, coded, pictures, burst, out_dir, &mut t) {
        t.error = Some(e);
    }
    t
}

fn encode_trial_into(
    req: &Request,
    coded: [u8; 4],
    pictures: u32,
    burst: bool,
    out_dir: Option<&Path>,
    t: &mut EncodeTrial,
) -> Result<(), String> {
    let mut dev = KernelDevice::open(&req.path).map_err(|e| format!("open: {e}"))?;
    let formats = dev.formats().map_err(|e| format!("formats: {e}"))?;
    let mode = dev
        .start(choose(&formats, req)?)
        .map_err(|e| format!("start: {e}"))?;
    (t.raw, t.width, t.height) = (fourcc_str(&mode.fourcc), mode.width, mode.height);
    let found = m2m_encoders_to(&t.coded)
        .into_iter()
        .find(|e| e.takes.contains(&t.raw))
        .ok_or_else(|| format!("no M2M encoder takes {} to {}", t.raw, t.coded))?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let dropped = Arc::new(AtomicU64::new(0));
    let counters = Arc::new(Counters::default());
    let (mut enc, name) = KernelM2m::start(
        Path::new(&found.path),
        &mode,
        coded,
        tx,
        dropped.clone(),
        counters.clone(),
    )?;
    t.encoder = name.to_string();
    t.multiplanar = enc.multiplanar();
    // Frames are taken as they come, as a camera's are, so the encoder is never held up; in a
    // burst, only once all pictures were offered, like a recorder that fell behind.
    let ext = t.coded.to_ascii_lowercase();
    let dir = out_dir.map(Path::to_path_buf);
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let collector = std::thread::spawn(move || {
        let _ = wait.recv();
        let mut got = Vec::new();
        while let Some(r) = rx.blocking_recv() {
            let b = r.map_err(|e| e.to_string())?;
            if let Some(d) = &dir {
                let f = d.join(format!("frame-{:04}.{ext}", got.len()));
                std::fs::write(&f, &b.data).map_err(|e| format!("{}: {e}", f.display()))?;
            }
            got.push((b.timestamp.as_micros() as u64, b.data.len()));
        }
        Ok::<_, String>(got)
    });
    let mut offer = |b: Buffer, t: &mut EncodeTrial| {
        t.pictures += 1;
        let ts = b.timestamp.as_micros() as u64;
        match enc.offer(b) {
            Offer::Failed(e) => Err(e),
            Offer::Gone => Err("the encoder is gone".to_string()),
            Offer::Taken => {
                t.queued_us.push(ts);
                Ok(())
            }
            Offer::Back(_) => Ok(()),
        }
    };
    let mut held = Vec::new();
    for i in 0..pictures {
        let b = dev
            .next(Duration::from_secs(10), Vec::new())
            .map_err(|e| format!("picture {i}: {e}"))?;
        if burst {
            held.push(b);
        } else {
            offer(b, t)?;
        }
    }
    if !burst {
        let _ = go.send(());
    }
    for b in held {
        offer(b, t)?;
    }
    drop(go);
    // Stop and drain: every picture queued comes back as a frame.
    drop(enc);
    let got = collector
        .join()
        .map_err(|_| "the frame collector panicked".to_string())??;
    t.frames = got.len() as u32;
    t.frame_us = got.iter().map(|g| g.0).collect();
    t.frame_bytes = got.iter().map(|g| g.1).collect();
    t.encoder_dropped = counters.encoder_dropped.load(Ordering::Relaxed);
    t.dropped = dropped.load(Ordering::Relaxed);
    Ok(())
}
