//! Raw pictures encoded by a V4L2 memory-to-memory encoder (the stateful encoder API, kernel
//! documentation "dev-stateful-encoder"), single- and multi-planar: raw pictures go into the
//! encoder's OUTPUT queue, coded frames come out of its CAPTURE queue with the pictures'
//! timestamps. Generic over the coded format (H.264 on a Raspberry Pi's `bcm2835-codec`; the
//! tests use the kernel's virtual FWHT codec `vicodec`). Also the bookkeeping that needs no
//! kernel: which OUTPUT buffers are free ([`Slots`]: a fixed set, a picture that finds none is
//! dropped and counted, nothing grows) and copying a picture into a buffer whose line stride or
//! plane height differs from the camera's ([`copy_picture`]).
//!
//! Threads: the camera's device thread fills free OUTPUT buffers ([`KernelM2m::offer`], never
//! waiting: no free buffer means the picture is dropped and counted); a thread of our own
//! dequeues coded frames and sends them on. Stopping sends `V4L2_ENC_CMD_STOP` and takes the
//! frames still in the encoder until the one marked last.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::encode::{Counters, Offer, RawEncoder, RawFormat};
use super::kernel::{self, Done, Mapping, Node, Queue, ioctl, zeroed};
use super::sys::*;
use super::{
    Buffer, Encoder, FrameSender, H264, HwEncoder, HwStarted, Mode, fourcc_str, sequence_gap,
};
use crate::capture::CaptureError;

/// Buffers on each queue: pictures that can wait in the encoder, and coded frames in flight.
const OUTPUT_BUFFERS: u32 = 4;
const CAPTURE_BUFFERS: u32 = 4;
/// How long a stopping encoder may take to hand back its last frames.
const DRAIN: Duration = Duration::from_secs(2);

/// An M2M encoder that takes a camera's raw pictures (see the module comment).
pub struct KernelM2m {
    fd: Arc<OwnedFd>,
    output: Queue,
    capture: Queue,
    buffers: Vec<Mapping>,
    slots: Slots,
    format: RawFormat,
    width: usize,
    height: usize,
    layout: Layout,
    last_seq: Option<u32>,
    spare: Option<Vec<u8>>,
    dropped: Arc<AtomicU64>,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    coded: Option<JoinHandle<()>>,
}

impl KernelM2m {
    /// Opens the encoder at `path` for `mode`'s raw pictures, coding them to `coded`; its
    /// frames go to `out`, numbered one after another, with the pictures' timestamps. Also
    /// says what it is for health: `v4l2-m2m:<driver> (<path>)`.
    pub fn start(
        path: &Path,
        mode: &Mode,
        coded: [u8; 4],
        out: tokio::sync::mpsc::Sender<Result<Buffer, CaptureError>>,
        dropped: Arc<AtomicU64>,
        counters: Arc<Counters>,
    ) -> Result<(Self, Encoder), String> {
        Self::start_io(path, mode, coded, out, dropped, counters)
            .map_err(|e| format!("{} ({}): {e}", path.display(), fourcc_str(&coded)))
    }

    fn start_io(
        path: &Path,
        mode: &Mode,
        coded: [u8; 4],
        out: tokio::sync::mpsc::Sender<Result<Buffer, CaptureError>>,
        dropped: Arc<AtomicU64>,
        counters: Arc<Counters>,
    ) -> io::Result<(Self, Encoder)> {
        let format = RawFormat::of(mode.fourcc).ok_or_else(|| {
            io::Error::other(format!("{} is not YUYV or NV12", fourcc_str(&mode.fourcc)))
        })?;
        let node = Node::open(path)?;
        let (output, capture) = node.caps.m2m_queues().ok_or_else(|| {
            io::Error::other(format!(
                "{} is not a memory-to-memory device",
                path.display()
            ))
        })?;
        let driver = node.caps.driver.clone();
        let fd: Arc<OwnedFd> = Arc::new(node.fd);
        let raw = fd.as_raw_fd();
        // The coded format first, then the raw one (the stateful encoder's order).
        let got = capture
            .set_format(raw, coded, mode.width, mode.height, V4L2_FIELD_NONE)?
            .fourcc;
        if got != coded {
            return Err(io::Error::other(format!(
                "it does not make {} (it offered {})",
                fourcc_str(&coded),
                fourcc_str(&got)
            )));
        }
        let kernel::PixFormat {
            fourcc: got,
            width: w,
            height: h,
            stride,
            size,
        } = output.set_format(raw, mode.fourcc, mode.width, mode.height, V4L2_FIELD_NONE)?;
        if got != mode.fourcc || w < mode.width || h < mode.height {
            return Err(io::Error::other(format!(
                "it does not take {} {}x{} (it offered {} {w}x{h})",
                fourcc_str(&mode.fourcc),
                mode.width,
                mode.height,
                fourcc_str(&got)
            )));
        }
        if (w, h) != (mode.width, mode.height) {
            // The encoder codes whole blocks (vicodec 8 lines of chroma, bcm2835-codec 16
            // lines: 1080 becomes 1088): the picture fills the top left of its buffer and the
            // crop rectangle tells the encoder which part is the picture.
            let mut sel: v4l2_selection = zeroed();
            // The single-planar type for either kind of queue, as the API asks.
            sel.type_ = V4L2_BUF_TYPE_VIDEO_OUTPUT;
            sel.target = V4L2_SEL_TGT_CROP;
            sel.r.width = mode.width;
            sel.r.height = mode.height;
            ioctl(raw, kernel::VIDIOC_S_SELECTION, &mut sel).map_err(|e| {
                io::Error::other(format!(
                    "it codes {w}x{h} and does not take a {}x{} crop: {e}",
                    mode.width, mode.height
                ))
            })?;
            if (sel.r.width, sel.r.height) != (mode.width, mode.height) {
                return Err(io::Error::other(format!(
                    "it codes {w}x{h} and cropped to {}x{}, not {}x{}",
                    sel.r.width, sel.r.height, mode.width, mode.height
                )));
            }
        }
        let stride = stride as usize;
        let layout = Layout {
            stride,
            plane_lines: match format {
                RawFormat::Yuyv => h as usize,
                // The chroma plane follows the luma plane, which the driver may pad: its
                // lines are two thirds of the buffer's.
                RawFormat::Nv12 => (size as usize / stride.max(1)) * 2 / 3,
            },
        };
        // The picture rate and, for H.264, a key frame with parameter sets every two seconds:
        // best effort, encoders differ in what they accept.
        let _ = output.set_fps(raw, mode.fps);
        if coded == H264 {
            for (id, value) in [
                (V4L2_CID_MPEG_VIDEO_REPEAT_SEQ_HEADER, 1),
                (
                    V4L2_CID_MPEG_VIDEO_H264_I_PERIOD,
                    (mode.fps.max(1) * 2) as i32,
                ),
            ] {
                let mut c = v4l2_control { id, value };
                let _ = ioctl(raw, kernel::VIDIOC_S_CTRL, &mut c);
            }
        }
        // Again, now that the picture size is known: coded buffers sized for it.
        capture.set_format(raw, coded, mode.width, mode.height, V4L2_FIELD_NONE)?;
        let buffers = output.map(raw, OUTPUT_BUFFERS)?;
        if buffers
            .iter()
            .any(|b| b.len() < layout.stride * mode.height as usize)
        {
            return Err(io::Error::other("its picture buffers are too small"));
        }
        let coded_buffers = capture.map(raw, CAPTURE_BUFFERS)?;
        for i in 0..coded_buffers.len() as u32 {
            capture.queue(raw, i, 0, Duration::ZERO)?;
        }
        output.stream(raw, true)?;
        capture.stream(raw, true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let coded_thread = {
            let (fd, stop) = (fd.clone(), stop.clone());
            std::thread::Builder::new()
                .name("m2m-coded".into())
                .spawn(move || coded_frames(fd, capture, coded_buffers, out, stop))?
        };
        let name = Encoder::M2m {
            driver,
            path: path.display().to_string(),
        };
        Ok((
            Self {
                slots: Slots::new(buffers.len() as u32),
                fd,
                output,
                capture,
                buffers,
                format,
                width: mode.width as usize,
                height: mode.height as usize,
                layout,
                last_seq: None,
                spare: None,
                dropped,
                counters,
                stop,
                coded: Some(coded_thread),
            },
            name,
        ))
    }

    /// Whether its queues are multi-planar (`V4L2_CAP_VIDEO_M2M_MPLANE`).
    pub fn multiplanar(&self) -> bool {
        self.output.mplane
    }

    /// Takes back the OUTPUT buffers the encoder is done with.
    fn reclaim(&mut self) -> io::Result<()> {
        while let Some(done) = self.output.dequeue(self.fd.as_raw_fd())? {
            self.slots.give(done.index);
        }
        Ok(())
    }
}

impl RawEncoder for KernelM2m {
    fn offer(&mut self, buf: Buffer) -> Offer {
        if let Some(last) = self.last_seq {
            self.dropped
                .fetch_add(sequence_gap(last, buf.sequence), Ordering::Relaxed);
        }
        self.last_seq = Some(buf.sequence);
        if let Err(e) = self.reclaim() {
            return Offer::Failed(format!("encoder: taking back a picture buffer: {e}"));
        }
        let Some(index) = self.slots.take() else {
            self.counters
                .encoder_dropped
                .fetch_add(1, Ordering::Relaxed);
            return Offer::Back(buf.data);
        };
        let Some(stride) = self.format.stride(buf.data.len(), self.width, self.height) else {
            self.slots.give(index);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return Offer::Back(buf.data);
        };
        let from = Layout {
            stride,
            plane_lines: self.height,
        };
        let copied = copy_picture(
            self.format,
            self.width,
            self.height,
            &buf.data,
            from,
            self.buffers[index as usize].bytes(),
            self.layout,
        );
        let used = match copied {
            Ok(n) => n as u32,
            Err(e) => return Offer::Failed(format!("encoder: {e}")),
        };
        if let Err(e) = self
            .output
            .queue(self.fd.as_raw_fd(), index, used, buf.timestamp)
        {
            return Offer::Failed(format!("encoder: queueing a picture: {e}"));
        }
        // Copied: the memory is free for the device's next picture.
        self.spare = Some(buf.data);
        Offer::Taken
    }

    fn spare(&mut self) -> Option<Vec<u8>> {
        self.spare.take()
    }
}

impl Drop for KernelM2m {
    fn drop(&mut self) {
        let fd = self.fd.as_raw_fd();
        // Drain: the encoder finishes the pictures it has and marks its last frame.
        let mut cmd: v4l2_encoder_cmd = zeroed();
        cmd.cmd = V4L2_ENC_CMD_STOP;
        let _ = ioctl(fd, kernel::VIDIOC_ENCODER_CMD, &mut cmd);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.coded.take() {
            let _ = t.join();
        }
        let _ = self.output.stream(fd, false);
        let _ = self.capture.stream(fd, false);
    }
}

/// Sends on, waiting while the receiver is behind (the encoder then runs out of frame
/// buffers and pictures are dropped before it), but no longer than [`DRAIN`] once stopping;
/// false when the receiver is gone or that time is up.
fn send(out: &FrameSender, stop: &AtomicBool, mut item: Result<Buffer, CaptureError>) -> bool {
    let mut stopping: Option<Instant> = None;
    loop {
        match out.try_send(item) {
            Ok(()) => return true,
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return false,
            Err(tokio::sync::mpsc::error::TrySendError::Full(back)) => item = back,
        }
        if stop.load(Ordering::Relaxed)
            && stopping.get_or_insert_with(Instant::now).elapsed() > DRAIN
        {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The coded-frame thread: dequeues frames, sends them on and gives their buffers back, until
/// the last frame after a stop (or [`DRAIN`] after it), an error (sent on), or the receiver
/// going away.
fn coded_frames(
    fd: Arc<OwnedFd>,
    queue: Queue,
    mut buffers: Vec<Mapping>,
    out: FrameSender,
    stop: Arc<AtomicBool>,
) {
    let raw = fd.as_raw_fd();
    let mut sequence = 0u32;
    let mut stopping: Option<Instant> = None;
    // The camera's error, sent once; the thread then ends.
    let fail = |what: String| {
        let _ = send(
            &out,
            &stop,
            Err(CaptureError::Stream(format!("encoder: {what}"))),
        );
    };
    loop {
        if stop.load(Ordering::Relaxed)
            && stopping.get_or_insert_with(Instant::now).elapsed() > DRAIN
        {
            return;
        }
        let pollerr = match kernel::wait(raw, Duration::from_millis(200)) {
            Ok((_, err)) => err,
            Err(e) => return fail(format!("waiting for a frame: {e}")),
        };
        let Done {
            index,
            flags,
            start,
            end,
            timestamp,
            ..
        } = match queue.dequeue(raw) {
            Ok(Some(b)) => b,
            Ok(None) => {
                if out.is_closed() {
                    return;
                }
                // Nothing queued on either side yet: poll answers at once with an error.
                if pollerr {
                    std::thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            // EPIPE: the last frame was taken already.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => return,
            Err(e) => return fail(format!("taking a frame: {e}")),
        };
        let Some(mapping) = buffers.get_mut(index as usize) else {
            return fail(format!(
                "the driver returned buffer {index}, which it never had"
            ));
        };
        let data = mapping.bytes();
        let end = end.min(data.len());
        if start < end && flags & V4L2_BUF_FLAG_ERROR == 0 {
            let buf = Buffer {
                data: data[start..end].to_vec(),
                sequence,
                timestamp,
            };
            sequence = sequence.wrapping_add(1);
            if !send(&out, &stop, Ok(buf)) {
                return;
            }
        }
        if flags & V4L2_BUF_FLAG_LAST != 0 {
            return;
        }
        if let Err(e) = queue.queue(raw, index, 0, Duration::ZERO) {
            return fail(format!("giving back a frame buffer: {e}"));
        }
    }
}

/// The camera's H.264 encoder (for [`super::V4l2Source::with_hw`]): the first
/// memory-to-memory device found by capability that takes the mode's raw format to H.264.
pub fn h264_encoder(
    mode: &Mode,
    out: FrameSender,
    dropped: Arc<AtomicU64>,
    counters: Arc<Counters>,
) -> Option<HwStarted> {
    let raw = fourcc_str(&mode.fourcc);
    let found = super::list::m2m_encoders()
        .into_iter()
        .find(|e| e.takes.contains(&raw))?;
    Some(
        KernelM2m::start(Path::new(&found.path), mode, H264, out, dropped, counters).map(
            |(m, name)| HwEncoder {
                encoder: Box::new(m),
                coded: H264,
                name,
            },
        ),
    )
}

/// The OUTPUT (raw picture) buffers of an encoder that are ours to fill: all of them at the
/// start, one fewer for each queued picture until the driver hands it back.
#[derive(Debug)]
pub struct Slots {
    free: Vec<u32>,
    count: u32,
}

impl Slots {
    pub fn new(count: u32) -> Self {
        Self {
            free: (0..count).rev().collect(),
            count,
        }
    }

    /// A free buffer, if any.
    pub fn take(&mut self) -> Option<u32> {
        self.free.pop()
    }

    /// A buffer the driver is done with (an index it never had, or one already free, is
    /// ignored: the set never grows beyond its buffers).
    pub fn give(&mut self, index: u32) {
        if index < self.count && !self.free.contains(&index) {
            self.free.push(index);
        }
    }

    pub fn free(&self) -> usize {
        self.free.len()
    }
}

/// How a raw picture lies in memory: bytes per line, and lines per plane (the chroma plane of
/// NV12 starts after `plane_lines` luma lines; a driver may pad the height).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub stride: usize,
    pub plane_lines: usize,
}

/// Copies a `width`x`height` picture from `src` (laid out as `from`) into `dst` (laid out as
/// `to`), line by line when the layouts differ; the bytes of `dst` used.
pub fn copy_picture(
    format: RawFormat,
    width: usize,
    height: usize,
    src: &[u8],
    from: Layout,
    dst: &mut [u8],
    to: Layout,
) -> Result<usize, String> {
    let (row, planes) = match format {
        RawFormat::Yuyv => (width * 2, 1),
        RawFormat::Nv12 => (width.next_multiple_of(2), 2),
    };
    let need = |l: Layout| match format {
        RawFormat::Yuyv => l.stride * height,
        RawFormat::Nv12 => l.stride * (l.plane_lines + height.div_ceil(2)),
    };
    if from.stride < row || to.stride < row || src.len() < need(from) || dst.len() < need(to) {
        return Err(format!(
            "a {}x{height} {format:?} picture does not fit: {} bytes in (stride {}), {} out \
             (stride {})",
            width,
            src.len(),
            from.stride,
            dst.len(),
            to.stride
        ));
    }
    if from == to {
        let n = need(from);
        dst[..n].copy_from_slice(&src[..n]);
        return Ok(n);
    }
    for plane in 0..planes {
        let lines = if plane == 0 {
            height
        } else {
            height.div_ceil(2)
        };
        let (s0, d0) = (
            plane * from.plane_lines * from.stride,
            plane * to.plane_lines * to.stride,
        );
        for l in 0..lines {
            let s = s0 + l * from.stride;
            let d = d0 + l * to.stride;
            dst[d..d + row].copy_from_slice(&src[s..s + row]);
        }
    }
    Ok(need(to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_come_back() {
        let mut s = Slots::new(2);
        let a = s.take().unwrap();
        let b = s.take().unwrap();
        assert_ne!(a, b);
        assert_eq!(s.take(), None, "two buffers, two pictures in flight");
        s.give(a);
        s.give(a);
        s.give(7);
        assert_eq!(
            s.free(),
            1,
            "a buffer given twice or never owned does not add one"
        );
        assert_eq!(s.take(), Some(a));
        assert_eq!(s.take(), None);
    }

    #[test]
    fn pictures_are_copied_between_strides() {
        // A 4x3 NV12 picture with 6-byte lines into 8-byte lines and a plane padded to 4 lines.
        let (w, h) = (4, 3);
        let from = Layout {
            stride: 6,
            plane_lines: 3,
        };
        let src: Vec<u8> = (0..6 * (3 + 2)).map(|i| i as u8).collect();
        let to = Layout {
            stride: 8,
            plane_lines: 4,
        };
        let mut dst = vec![0xEE; 8 * (4 + 2)];
        let n = copy_picture(RawFormat::Nv12, w, h, &src, from, &mut dst, to).unwrap();
        assert_eq!(n, 48);
        for l in 0..3 {
            assert_eq!(
                &dst[l * 8..l * 8 + 4],
                &src[l * 6..l * 6 + 4],
                "luma line {l}"
            );
        }
        for l in 0..2 {
            assert_eq!(
                &dst[(4 + l) * 8..(4 + l) * 8 + 4],
                &src[(3 + l) * 6..(3 + l) * 6 + 4],
                "chroma line {l}"
            );
        }
        // The same layout is one copy; a picture too large for the buffer is an error.
        let mut same = vec![0; src.len()];
        assert_eq!(
            copy_picture(RawFormat::Nv12, w, h, &src, from, &mut same, from),
            Ok(30)
        );
        assert_eq!(same, src);
        let yuyv = Layout {
            stride: 8,
            plane_lines: 3,
        };
        assert!(copy_picture(RawFormat::Yuyv, 4, 3, &src[..24], yuyv, &mut [0; 23], yuyv).is_err());
    }
}
