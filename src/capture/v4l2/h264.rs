//! H.264 from a device: Annex B buffers split into NAL units, parameter sets moved out of the
//! samples into the sample entry (a change is announced on the frame, and must come with a key
//! frame), length-prefixed samples, and nothing before the first IDR frame.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::{BufMut, BytesMut};

use super::device::{Buffer, Mode};
use super::frames::{Clock, wall_clock};
use crate::capture::CaptureError;
use crate::video::{Frame, VideoParams};

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
