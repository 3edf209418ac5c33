//! The kernel side of V4L2 capture, through the `v4l` crate: opening a device node, listing its
//! formats, sizes and rates, setting a mode and dequeuing memory-mapped buffers. Everything
//! else about V4L2 cameras is in v4l2.rs, written against its [`Device`] trait.

use std::io;
use std::path::Path;
use std::time::Duration;

use v4l::buffer::{Flags, Type};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;

use super::v4l2::{
    Buffer, Device, DeviceInfo, FormatInfo, M2mEncoder, Mode, Request, SizeInfo, assess, choose,
    format_encoder, fourcc_str, m2m_inputs, monotonic_now, sequence_gap, stable_name,
};

/// Most sizes listed per format, and rates per size (stepwise ranges can be long).
const MAX_SIZES: usize = 32;
const MAX_RATES: usize = 16;

pub struct KernelDevice {
    dev: v4l::Device,
    stream: Option<v4l::io::mmap::Stream<'static>>,
}

impl KernelDevice {
    pub fn open(path: &Path) -> io::Result<Box<dyn Device>> {
        let dev = v4l::Device::with_path(path)?;
        let caps = dev.query_caps()?;
        if !caps
            .capabilities
            .contains(v4l::capability::Flags::VIDEO_CAPTURE)
        {
            return Err(io::Error::other(format!(
                "{} ({}) is not a video capture device",
                path.display(),
                caps.card
            )));
        }
        Ok(Box::new(KernelDevice { dev, stream: None }))
    }
}

fn rates(dev: &v4l::Device, fourcc: v4l::FourCC, w: u32, h: u32) -> Vec<f64> {
    let fps = |f: v4l::Fraction| {
        (f.numerator > 0)
            .then(|| (f.denominator as f64 / f.numerator as f64 * 100.0).round() / 100.0)
    };
    let mut out: Vec<f64> = Vec::new();
    for i in dev.enum_frameintervals(fourcc, w, h).unwrap_or_default() {
        match i.interval {
            FrameIntervalEnum::Discrete(f) => out.extend(fps(f)),
            FrameIntervalEnum::Stepwise(s) => {
                out.extend(fps(s.min));
                out.extend(fps(s.max));
            }
        }
    }
    out.sort_by(|a, b| b.total_cmp(a));
    out.dedup();
    out.truncate(MAX_RATES);
    out
}

impl Device for KernelDevice {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>> {
        let mut out = Vec::new();
        for f in self.dev.enum_formats()? {
            let mut sizes = Vec::new();
            for s in self.dev.enum_framesizes(f.fourcc).unwrap_or_default() {
                let list: Vec<(u32, u32)> = match s.size {
                    FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                    // Ranges (vivid, some CSI drivers): the smallest, the largest, and common
                    // sizes in between.
                    FrameSizeEnum::Stepwise(st) => {
                        let mut v = vec![(st.max_width, st.max_height)];
                        for (w, h) in [(1920, 1080), (1280, 720), (640, 480), (640, 360)] {
                            if (st.min_width..=st.max_width).contains(&w)
                                && (st.min_height..=st.max_height).contains(&h)
                            {
                                v.push((w, h));
                            }
                        }
                        v.push((st.min_width, st.min_height));
                        v
                    }
                };
                for (w, h) in list {
                    if sizes.len() < MAX_SIZES
                        && !sizes
                            .iter()
                            .any(|s: &SizeInfo| s.width == w && s.height == h)
                    {
                        sizes.push(SizeInfo {
                            width: w,
                            height: h,
                            fps: rates(&self.dev, f.fourcc, w, h),
                        });
                    }
                }
            }
            out.push(FormatInfo {
                fourcc: String::from_utf8_lossy(&f.fourcc.repr)
                    .trim_end()
                    .to_string(),
                description: f.description.chars().take(64).collect(),
                encoder: format_encoder(&fourcc_str(&f.fourcc.repr)),
                sizes,
            });
        }
        Ok(out)
    }

    fn start(&mut self, mode: Mode) -> io::Result<Mode> {
        let want = v4l::Format::new(mode.width, mode.height, v4l::FourCC::new(&mode.fourcc));
        let got = self.dev.set_format(&want)?;
        let params = self
            .dev
            .set_params(&v4l::video::capture::Parameters::with_fps(mode.fps))?;
        let fps = params
            .interval
            .denominator
            .checked_div(params.interval.numerator)
            .map_or(mode.fps, |f| f.max(1));
        let mut stream = v4l::io::mmap::Stream::with_buffers(&self.dev, Type::VideoCapture, 4)?;
        stream.set_timeout(Duration::from_secs(1));
        self.stream = Some(stream);
        Ok(Mode {
            fourcc: got.fourcc.repr,
            width: got.width,
            height: got.height,
            fps,
        })
    }

    fn next(&mut self, timeout: Duration, spare: Vec<u8>) -> io::Result<Buffer> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| io::Error::other("not streaming"))?;
        stream.set_timeout(timeout);
        loop {
            let (data, meta) = stream.next()?;
            // A buffer the driver marks corrupt is skipped: its sequence number is used up, so
            // it counts as dropped.
            if meta.flags.contains(Flags::ERROR) {
                continue;
            }
            let used = (meta.bytesused as usize).min(data.len());
            let mut copy = spare;
            copy.clear();
            copy.extend_from_slice(&data[..used]);
            return Ok(Buffer {
                data: copy,
                sequence: meta.sequence,
                timestamp: Duration::new(
                    meta.timestamp.sec.max(0) as u64,
                    (meta.timestamp.usec.clamp(0, 999_999) * 1000) as u32,
                ),
            });
        }
    }
}

/// The /dev/videoN nodes, in order (at most 64).
fn video_nodes() -> Vec<std::path::PathBuf> {
    let mut nodes: Vec<_> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_prefix("video"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
        .collect();
    nodes.sort();
    nodes.truncate(64);
    nodes
}

/// The /dev/videoN nodes that open and answer VIDIOC_QUERYCAP, with their capabilities.
fn opened_nodes() -> impl Iterator<
    Item = (
        std::path::PathBuf,
        v4l::Device,
        v4l::capability::Capabilities,
    ),
> {
    video_nodes().into_iter().filter_map(|path| {
        let dev = v4l::Device::with_path(&path).ok()?;
        let caps = dev.query_caps().ok()?;
        Some((path, dev, caps))
    })
}

/// The pixel formats one queue of a device offers (`VIDIOC_ENUM_FMT` with its buffer type; the
/// `v4l` crate enumerates single-planar capture and output queues only).
fn queue_formats(dev: &v4l::Device, queue: Type) -> Vec<String> {
    let mut out = Vec::new();
    for index in 0..64 {
        // SAFETY: v4l2_fmtdesc is plain old data (integers and byte arrays); all zeroes is a
        // valid value.
        let mut desc: v4l::v4l_sys::v4l2_fmtdesc = unsafe { std::mem::zeroed() };
        desc.index = index;
        desc.type_ = queue as u32;
        // SAFETY: VIDIOC_ENUM_FMT reads and writes one v4l2_fmtdesc, which `desc` is and
        // outlives the call; the descriptor is open while `dev` lives.
        let r = unsafe {
            v4l::v4l2::ioctl(
                dev.handle().fd(),
                v4l::v4l2::vidioc::VIDIOC_ENUM_FMT,
                &mut desc as *mut _ as *mut std::os::raw::c_void,
            )
        };
        if r.is_err() {
            break;
        }
        out.push(fourcc_str(&desc.pixelformat.to_le_bytes()));
    }
    out
}

/// Memory-to-memory devices on this machine that encode raw pictures to H.264, found by
/// capability: `V4L2_CAP_VIDEO_M2M` or `_M2M_MPLANE`, YUYV or NV12 on the OUTPUT queue and H.264
/// on the CAPTURE queue.
pub fn m2m_encoders() -> Vec<M2mEncoder> {
    m2m_encoders_to("H264")
}

/// Memory-to-memory devices that encode raw pictures to `coded` (found as [`m2m_encoders`]).
pub fn m2m_encoders_to(coded: &str) -> Vec<M2mEncoder> {
    use v4l::capability::Flags as Caps;
    let mut out = Vec::new();
    for (path, dev, caps) in opened_nodes() {
        let (output, capture) = if caps.capabilities.contains(Caps::VIDEO_M2M_MPLANE) {
            (Type::VideoOutputMplane, Type::VideoCaptureMplane)
        } else if caps.capabilities.contains(Caps::VIDEO_M2M) {
            (Type::VideoOutput, Type::VideoCapture)
        } else {
            continue;
        };
        let ins = queue_formats(&dev, output);
        let outs = queue_formats(&dev, capture);
        if let Some(takes) = m2m_inputs(&ins, &outs, coded) {
            out.push(M2mEncoder {
                path: path.display().to_string(),
                name: caps.card.chars().take(64).collect(),
                driver: caps.driver.chars().take(32).collect(),
                takes,
                makes: coded.into(),
                used: true,
            });
        }
    }
    out
}

/// Every V4L2 capture device on this machine (video nodes that are not capture devices, such as
/// metadata nodes and memory-to-memory codecs, are left out).
pub fn list() -> Vec<DeviceInfo> {
    let mut out = Vec::new();
    for (path, dev, caps) in opened_nodes() {
        let f = caps.capabilities;
        if !f.contains(v4l::capability::Flags::VIDEO_CAPTURE)
            || f.intersects(
                v4l::capability::Flags::VIDEO_M2M | v4l::capability::Flags::VIDEO_M2M_MPLANE,
            )
        {
            continue;
        }
        let mut kd = KernelDevice { dev, stream: None };
        let formats = kd.formats().unwrap_or_default();
        let (recordable, encoder, note) = assess(&formats);
        out.push(DeviceInfo {
            stable_path: stable_name(&path),
            path: path.display().to_string(),
            name: caps.card.chars().take(64).collect(),
            driver: caps.driver.chars().take(32).collect(),
            bus: caps.bus.chars().take(64).collect(),
            formats,
            recordable,
            encoder,
            note,
        });
    }
    out
}

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
