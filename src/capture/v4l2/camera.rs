//! A camera as the kernel has it: [`KernelDevice`] is the [`Device`] a `v4l2://` source opens,
//! over kernel.rs: what it offers (formats, sizes and rates, bounded), setting a mode, and
//! dequeuing its memory-mapped buffers within a deadline. A buffer is copied out and queued
//! again at once, so the driver always has all but none of them to fill.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use super::kernel::{self, Mapping, Node, Queue};
use super::sys::*;
use super::{Buffer, Device, FormatInfo, Mode, SizeInfo, fourcc_str};

/// Most sizes listed per format, and rates per size (stepwise ranges can be long).
const MAX_SIZES: usize = 32;
const MAX_RATES: usize = 16;
/// Buffers the driver fills in turn.
const BUFFERS: u32 = 4;

/// A camera node and, once streaming, its mapped buffers (unmapped before the node closes).
pub struct KernelDevice {
    buffers: Vec<Mapping>,
    node: Node,
}

impl KernelDevice {
    pub fn open(path: &Path) -> io::Result<Box<dyn Device>> {
        Ok(Box::new(Self::open_camera(path)?))
    }

    /// The camera at `path`; an error when it is no capture device.
    pub fn open_camera(path: &Path) -> io::Result<KernelDevice> {
        let node = Node::open(path)?;
        if !node.caps.has(V4L2_CAP_VIDEO_CAPTURE) {
            return Err(io::Error::other(format!(
                "{} ({}) is not a video capture device",
                path.display(),
                node.caps.card
            )));
        }
        Ok(Self::from_node(node))
    }

    pub fn from_node(node: Node) -> KernelDevice {
        KernelDevice {
            node,
            buffers: Vec::new(),
        }
    }

    /// The frame rates offered at one size, highest first.
    fn rates(&self, fourcc: u32, width: u32, height: u32) -> Vec<f64> {
        let fps = |f: v4l2_fract| {
            (f.numerator > 0)
                .then(|| (f.denominator as f64 / f.numerator as f64 * 100.0).round() / 100.0)
        };
        let intervals = kernel::enumerate(
            self.node.raw(),
            kernel::VIDIOC_ENUM_FRAMEINTERVALS,
            64,
            |index| {
                let mut i: v4l2_frmivalenum = kernel::zeroed();
                i.index = index;
                i.pixel_format = fourcc;
                i.width = width;
                i.height = height;
                i
            },
        )
        .unwrap_or_default();
        let mut out: Vec<f64> = Vec::new();
        for i in intervals {
            // SAFETY (union): the member read is the one the driver's type says it filled.
            if i.type_ == V4L2_FRMIVAL_TYPE_DISCRETE {
                out.extend(fps(unsafe { i.__bindgen_anon_1.discrete }));
            } else {
                let s = unsafe { i.__bindgen_anon_1.stepwise };
                out.extend(fps(s.min));
                out.extend(fps(s.max));
            }
        }
        out.sort_by(|a, b| b.total_cmp(a));
        out.dedup();
        out.truncate(MAX_RATES);
        out
    }

    /// The sizes offered in one format: discrete ones as listed; for ranges (vivid, some CSI
    /// drivers) the largest, common sizes in between, and the smallest.
    fn sizes(&self, fourcc: u32) -> Vec<SizeInfo> {
        let enums = kernel::enumerate(
            self.node.raw(),
            kernel::VIDIOC_ENUM_FRAMESIZES,
            64,
            |index| {
                let mut s: v4l2_frmsizeenum = kernel::zeroed();
                s.index = index;
                s.pixel_format = fourcc;
                s
            },
        )
        .unwrap_or_default();
        let mut sizes: Vec<SizeInfo> = Vec::new();
        for s in enums {
            // SAFETY (union): the member read is the one the driver's type says it filled.
            let list: Vec<(u32, u32)> = if s.type_ == V4L2_FRMSIZE_TYPE_DISCRETE {
                let d = unsafe { s.__bindgen_anon_1.discrete };
                vec![(d.width, d.height)]
            } else {
                let st = unsafe { s.__bindgen_anon_1.stepwise };
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
            };
            for (w, h) in list {
                if sizes.len() < MAX_SIZES && !sizes.iter().any(|s| s.width == w && s.height == h) {
                    sizes.push(SizeInfo {
                        width: w,
                        height: h,
                        fps: self.rates(fourcc, w, h),
                    });
                }
            }
        }
        sizes
    }
}

impl Device for KernelDevice {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>> {
        let mut out = Vec::new();
        for (fourcc, description) in Queue::CAPTURE.formats(self.node.raw())? {
            out.push(FormatInfo::new(
                fourcc_str(&fourcc),
                description,
                self.sizes(u32::from_le_bytes(fourcc)),
            ));
        }
        Ok(out)
    }

    fn start(&mut self, mode: Mode) -> io::Result<Mode> {
        let fd = self.node.raw();
        let q = Queue::CAPTURE;
        let got = q.set_format(fd, mode.fourcc, mode.width, mode.height, V4L2_FIELD_ANY)?;
        let fps = q.set_fps(fd, mode.fps)?.unwrap_or(mode.fps);
        self.buffers = q.map(fd, BUFFERS)?;
        for i in 0..self.buffers.len() as u32 {
            q.queue(fd, i, 0, Duration::ZERO)?;
        }
        q.stream(fd, true)?;
        Ok(Mode {
            fourcc: got.fourcc,
            width: got.width,
            height: got.height,
            fps,
        })
    }

    fn next(&mut self, timeout: Duration, spare: Vec<u8>) -> io::Result<Buffer> {
        if self.buffers.is_empty() {
            return Err(io::Error::other("not streaming"));
        }
        let fd = self.node.raw();
        let mut spare = spare;
        let deadline = Instant::now() + timeout;
        loop {
            let Some(done) = Queue::CAPTURE.dequeue(fd)? else {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "VIDIOC_DQBUF"));
                }
                let (_, pollerr) = kernel::wait(fd, left)?;
                if pollerr {
                    // Nothing to dequeue and the driver flags the stream: it stopped.
                    return Err(io::Error::other("the driver stopped the stream (POLLERR)"));
                }
                continue;
            };
            let mapping = self.buffers.get_mut(done.index as usize).ok_or_else(|| {
                io::Error::other(format!("the driver returned buffer {}", done.index))
            })?;
            // A buffer the driver marks corrupt is skipped: its sequence number is used up, so
            // it counts as dropped.
            let data = (done.flags & V4L2_BUF_FLAG_ERROR == 0).then(|| {
                let bytes = mapping.bytes();
                let end = done.end.min(bytes.len());
                let mut copy = std::mem::take(&mut spare);
                copy.clear();
                copy.extend_from_slice(&bytes[done.start.min(end)..end]);
                copy
            });
            Queue::CAPTURE.queue(fd, done.index, 0, Duration::ZERO)?;
            if let Some(data) = data {
                return Ok(Buffer {
                    data,
                    sequence: done.sequence,
                    timestamp: done.timestamp,
                });
            }
        }
    }
}

impl Drop for KernelDevice {
    fn drop(&mut self) {
        if !self.buffers.is_empty() {
            let _ = Queue::CAPTURE.stream(self.node.raw(), false);
        }
    }
}
