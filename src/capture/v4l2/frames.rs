//! A device's buffers into frames, for what every coded format shares: presentation times
//! from the driver's timestamps (CLOCK_MONOTONIC; the clock now when it gives none), never
//! backwards; wall-clock receive times mapped from them; gaps in the driver's sequence numbers
//! counted as dropped frames. MJPEG buffers are recorded as they come ([`MjpegFrames`]); H.264
//! is in h264.rs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;

use super::device::Buffer;
use super::device::Mode;
use super::h264::H264Frames;
use crate::capture::CaptureError;
use crate::video::{Frame, TIMESCALE, VideoParams};

/// The wall-clock time of a driver timestamp: now, less how long ago (on the monotonic clock)
/// the driver took the frame. Buffers without a timestamp are taken as arriving now.
pub(super) fn wall_clock(
    ts: Duration,
    mono_now: Duration,
    now: jiff::Timestamp,
) -> jiff::Timestamp {
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

/// Frames lost between two buffers, from the driver's sequence numbers. A counter that went
/// backwards (the driver restarted it) is not a gap.
pub fn sequence_gap(last: u32, next: u32) -> u64 {
    let gap = next.wrapping_sub(last).wrapping_sub(1);
    if gap < 1 << 24 { gap as u64 } else { 0 }
}

/// What every format shares: presentation times from the driver's timestamps (the monotonic
/// clock when it gives none), never backwards, and gaps in its sequence numbers counted.
pub(super) struct Clock {
    first_ts: Option<Duration>,
    last_pts: i64,
    last_seq: Option<u32>,
    dropped: Arc<AtomicU64>,
}

impl Clock {
    pub(super) fn new(dropped: Arc<AtomicU64>) -> Self {
        Self {
            first_ts: None,
            last_pts: -1,
            last_seq: None,
            dropped,
        }
    }

    pub(super) fn sequence(&mut self, seq: u32) {
        if let Some(last) = self.last_seq {
            self.dropped
                .fetch_add(sequence_gap(last, seq), Ordering::Relaxed);
        }
        self.last_seq = Some(seq);
    }

    pub(super) fn pts(&mut self, buf: &Buffer, mono_now: Duration) -> i64 {
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
pub(super) enum Frames {
    H264(H264Frames),
    Mjpeg(MjpegFrames),
}

impl Frames {
    pub(super) fn push(
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

    pub(super) fn params(&self) -> Option<Arc<VideoParams>> {
        match self {
            Frames::H264(f) => f.params(),
            Frames::Mjpeg(f) => Some(f.params.clone()),
        }
    }
}
