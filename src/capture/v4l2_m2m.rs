//! The kernel side of V4L2 memory-to-memory encoding (the stateful encoder API, kernel
//! documentation "dev-stateful-encoder"), single- and multi-planar: raw pictures go into the
//! encoder's OUTPUT queue, coded frames come out of its CAPTURE queue with the pictures'
//! timestamps. Generic over the coded format (H.264 on a Raspberry Pi's `bcm2835-codec`; the
//! tests use the kernel's virtual FWHT codec `vicodec`). The buffer bookkeeping and the
//! picture copy are in v4l2/m2m.rs.
//!
//! Threads: the camera's device thread fills free OUTPUT buffers ([`KernelM2m::offer`], never
//! waiting: no free buffer means the picture is dropped and counted); a thread of our own
//! dequeues coded frames and sends them on. Stopping sends `V4L2_ENC_CMD_STOP` and takes the
//! frames still in the encoder until the one marked last.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use v4l::v4l_sys::{
    V4L2_BUF_FLAG_ERROR, V4L2_BUF_FLAG_LAST, V4L2_CAP_DEVICE_CAPS, V4L2_ENC_CMD_STOP, v4l2_buffer,
    v4l2_capability, v4l2_control, v4l2_encoder_cmd, v4l2_format, v4l2_plane, v4l2_requestbuffers,
    v4l2_selection, v4l2_streamparm,
};
use v4l::v4l2::vidioc;

use super::CaptureError;
use super::v4l2::encode::{Counters, Offer, RawEncoder, RawFormat};
use super::v4l2::m2m::{Layout, Slots, copy_picture};
use super::v4l2::{Buffer, FrameSender, H264, HwStarted, Mode, fourcc_str, sequence_gap};

/// Buffers on each queue: pictures that can wait in the encoder, and coded frames in flight.
const OUTPUT_BUFFERS: u32 = 4;
const CAPTURE_BUFFERS: u32 = 4;
/// How long a stopping encoder may take to hand back its last frames.
const DRAIN: Duration = Duration::from_secs(2);

const CAP_M2M: u32 = 0x8000;
const CAP_M2M_MPLANE: u32 = 0x4000;
const MEMORY_MMAP: u32 = 1;
const FIELD_NONE: u32 = 1;
const CID_REPEAT_SEQ_HEADER: u32 = 0x0099_0be2;
const CID_H264_I_PERIOD: u32 = 0x0099_0b66;
const SEL_TGT_CROP: u32 = 0;
/// `_IOWR('V', 95, struct v4l2_selection)`, which the `v4l` crate does not define.
const VIDIOC_S_SELECTION: vidioc::_IOC_TYPE = 0xc040_565f;

fn ioctl<T>(fd: RawFd, request: vidioc::_IOC_TYPE, arg: &mut T) -> io::Result<()> {
    // SAFETY: every call passes the struct its request reads and writes (the bindings' types),
    // borrowed for the call; pointers inside (planes) point at locals that outlive it.
    unsafe { v4l::v4l2::ioctl(fd, request, arg as *mut T as *mut std::os::raw::c_void) }
}

fn zeroed<T: Copy>() -> T {
    // SAFETY: only used for the bindings' plain structs (integers, arrays, unions of them and
    // a plane pointer, for which null is valid), where all zeroes is a valid value.
    unsafe { std::mem::zeroed() }
}

/// One memory-mapped buffer of a queue.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; it moves between threads
// with its owner and is only touched by one thread at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: ptr..ptr+len is mapped while self lives; the driver only writes it while the
        // buffer is queued, and the code touches it only when dequeued.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are what mmap returned for this mapping; nothing refers to it now.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

/// A buffer dequeued: its index, flags, where its data starts and ends, and its timestamp.
struct Done {
    index: u32,
    flags: u32,
    start: usize,
    end: usize,
    timestamp: Duration,
}

/// A queue of the encoder: its buffer type and whether it is multi-planar.
#[derive(Clone, Copy)]
struct Queue {
    ty: u32,
    mplane: bool,
}

impl Queue {
    /// A buffer description for `index`, with `plane` as its one plane when multi-planar.
    fn buffer(self, index: u32, plane: &mut v4l2_plane) -> v4l2_buffer {
        let mut b: v4l2_buffer = zeroed();
        b.type_ = self.ty;
        b.memory = MEMORY_MMAP;
        b.index = index;
        if self.mplane {
            b.m.planes = plane;
            b.length = 1;
        }
        b
    }

    /// Sets this queue's format; the driver's answer as (fourcc, width, height, bytes per
    /// line, size of a buffer).
    fn set_format(
        self,
        fd: RawFd,
        fourcc: [u8; 4],
        width: u32,
        height: u32,
        sizeimage: u32,
    ) -> io::Result<([u8; 4], u32, u32, u32, u32)> {
        let mut f: v4l2_format = zeroed();
        f.type_ = self.ty;
        let fourcc = u32::from_le_bytes(fourcc);
        // SAFETY (unions): the member written and read is the one for this queue's type.
        if self.mplane {
            let p = unsafe { &mut f.fmt.pix_mp };
            p.width = width;
            p.height = height;
            p.pixelformat = fourcc;
            p.field = FIELD_NONE;
            p.num_planes = 1;
            let mut plane = p.plane_fmt[0];
            plane.sizeimage = sizeimage;
            p.plane_fmt[0] = plane;
        } else {
            let p = unsafe { &mut f.fmt.pix };
            p.width = width;
            p.height = height;
            p.pixelformat = fourcc;
            p.field = FIELD_NONE;
            p.sizeimage = sizeimage;
        }
        ioctl(fd, vidioc::VIDIOC_S_FMT, &mut f)?;
        Ok(if self.mplane {
            let p = unsafe { f.fmt.pix_mp };
            let plane = p.plane_fmt[0];
            (
                p.pixelformat.to_le_bytes(),
                p.width,
                p.height,
                plane.bytesperline,
                plane.sizeimage,
            )
        } else {
            let p = unsafe { f.fmt.pix };
            (
                p.pixelformat.to_le_bytes(),
                p.width,
                p.height,
                p.bytesperline,
                p.sizeimage,
            )
        })
    }

    /// Asks for `count` buffers and maps them.
    fn map(self, fd: RawFd, count: u32) -> io::Result<Vec<Mapping>> {
        let mut req: v4l2_requestbuffers = zeroed();
        req.type_ = self.ty;
        req.memory = MEMORY_MMAP;
        req.count = count;
        ioctl(fd, vidioc::VIDIOC_REQBUFS, &mut req)?;
        if req.count == 0 {
            return Err(io::Error::other("the driver gave no buffers"));
        }
        let mut out = Vec::new();
        for index in 0..req.count.min(count) {
            let mut plane: v4l2_plane = zeroed();
            let mut b = self.buffer(index, &mut plane);
            ioctl(fd, vidioc::VIDIOC_QUERYBUF, &mut b)?;
            // SAFETY (unions): the member read is the one for this queue's type.
            let (offset, len) = if self.mplane {
                (unsafe { plane.m.mem_offset }, plane.length)
            } else {
                (unsafe { b.m.offset }, b.length)
            };
            // SAFETY: maps a buffer the driver just described, shared and of its length.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len as usize,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            out.push(Mapping {
                ptr: ptr as *mut u8,
                len: len as usize,
            });
        }
        Ok(out)
    }

    /// Queues buffer `index` holding `used` bytes, stamped with `timestamp`.
    fn queue(self, fd: RawFd, index: u32, used: u32, timestamp: Duration) -> io::Result<()> {
        let mut plane: v4l2_plane = zeroed();
        plane.bytesused = used;
        let mut b = self.buffer(index, &mut plane);
        b.bytesused = used;
        b.field = FIELD_NONE;
        b.timestamp.tv_sec = timestamp.as_secs() as _;
        b.timestamp.tv_usec = timestamp.subsec_micros() as _;
        ioctl(fd, vidioc::VIDIOC_QBUF, &mut b)
    }

    /// A buffer the driver is done with, if one is (the descriptor does not block).
    fn dequeue(self, fd: RawFd) -> io::Result<Option<Done>> {
        let mut plane: v4l2_plane = zeroed();
        let mut b = self.buffer(0, &mut plane);
        match ioctl(fd, vidioc::VIDIOC_DQBUF, &mut b) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            r => r?,
        }
        let (start, end) = if self.mplane {
            (plane.data_offset as usize, plane.bytesused as usize)
        } else {
            (0, b.bytesused as usize)
        };
        let ts = Duration::new(
            b.timestamp.tv_sec.max(0) as u64,
            (b.timestamp.tv_usec.clamp(0, 999_999) * 1000) as u32,
        );
        Ok(Some(Done {
            index: b.index,
            flags: b.flags,
            start,
            end,
            timestamp: ts,
        }))
    }

    fn stream(self, fd: RawFd, on: bool) -> io::Result<()> {
        let mut ty = self.ty as std::os::raw::c_int;
        let req = if on {
            vidioc::VIDIOC_STREAMON
        } else {
            vidioc::VIDIOC_STREAMOFF
        };
        ioctl(fd, req, &mut ty)
    }
}

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

/// An encoder device's driver name, and whether its queues are multi-planar; an error when it
/// is not a memory-to-memory device.
fn m2m_caps(fd: RawFd, path: &Path) -> io::Result<(String, bool)> {
    let mut caps: v4l2_capability = zeroed();
    ioctl(fd, vidioc::VIDIOC_QUERYCAP, &mut caps)?;
    let c = if caps.capabilities & V4L2_CAP_DEVICE_CAPS != 0 {
        caps.device_caps
    } else {
        caps.capabilities
    };
    let driver = String::from_utf8_lossy(&caps.driver)
        .trim_end_matches('\0')
        .chars()
        .take(32)
        .collect();
    if c & CAP_M2M_MPLANE != 0 {
        Ok((driver, true))
    } else if c & CAP_M2M != 0 {
        Ok((driver, false))
    } else {
        Err(io::Error::other(format!(
            "{} is not a memory-to-memory device",
            path.display()
        )))
    }
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
    ) -> Result<(Self, String), String> {
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
    ) -> io::Result<(Self, String)> {
        let format = RawFormat::of(mode.fourcc).ok_or_else(|| {
            io::Error::other(format!("{} is not YUYV or NV12", fourcc_str(&mode.fourcc)))
        })?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let fd: Arc<OwnedFd> = Arc::new(file.into());
        let raw = fd.as_raw_fd();
        let (driver, mplane) = m2m_caps(raw, path)?;
        use v4l::buffer::Type;
        let (output, capture) = if mplane {
            (Type::VideoOutputMplane, Type::VideoCaptureMplane)
        } else {
            (Type::VideoOutput, Type::VideoCapture)
        };
        let queue = |ty: Type| Queue {
            ty: ty as u32,
            mplane,
        };
        let (output, capture) = (queue(output), queue(capture));
        // The coded format first, then the raw one (the stateful encoder's order).
        let (got, ..) = capture.set_format(raw, coded, mode.width, mode.height, 0)?;
        if got != coded {
            return Err(io::Error::other(format!(
                "it does not make {} (it offered {})",
                fourcc_str(&coded),
                fourcc_str(&got)
            )));
        }
        let (got, w, h, stride, size) =
            output.set_format(raw, mode.fourcc, mode.width, mode.height, 0)?;
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
            sel.type_ = v4l::buffer::Type::VideoOutput as u32;
            sel.target = SEL_TGT_CROP;
            sel.r.width = mode.width;
            sel.r.height = mode.height;
            ioctl(raw, VIDIOC_S_SELECTION, &mut sel).map_err(|e| {
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
        let mut parm: v4l2_streamparm = zeroed();
        parm.type_ = output.ty;
        // `output` is the union member for an OUTPUT queue.
        parm.parm.output.timeperframe.numerator = 1;
        parm.parm.output.timeperframe.denominator = mode.fps.max(1);
        let _ = ioctl(raw, vidioc::VIDIOC_S_PARM, &mut parm);
        if coded == H264 {
            for (id, value) in [
                (CID_REPEAT_SEQ_HEADER, 1),
                (CID_H264_I_PERIOD, (mode.fps.max(1) * 2) as i32),
            ] {
                let mut c = v4l2_control { id, value };
                let _ = ioctl(raw, vidioc::VIDIOC_S_CTRL, &mut c);
            }
        }
        // Again, now that the picture size is known: coded buffers sized for it.
        capture.set_format(raw, coded, mode.width, mode.height, 0)?;
        let buffers = output.map(raw, OUTPUT_BUFFERS)?;
        if buffers
            .iter()
            .any(|b| b.len < layout.stride * mode.height as usize)
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
        let name = format!("v4l2-m2m:{driver} ({})", path.display());
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
        let _ = ioctl(fd, vidioc::VIDIOC_ENCODER_CMD, &mut cmd);
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
        let mut pfd = libc::pollfd {
            fd: raw,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd, which lives through the call.
        unsafe { libc::poll(&mut pfd, 1, 200) };
        let Done {
            index,
            flags,
            start,
            end,
            timestamp,
        } = match queue.dequeue(raw) {
            Ok(Some(b)) => b,
            Ok(None) => {
                if out.is_closed() {
                    return;
                }
                // Nothing queued on either side yet: poll answers at once with an error.
                if pfd.revents & libc::POLLERR != 0 {
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

/// The camera's H.264 encoder (for [`super::v4l2::V4l2Source::with_hw`]): the first
/// memory-to-memory device found by capability that takes the mode's raw format to H.264.
pub fn h264_encoder(
    mode: &Mode,
    out: FrameSender,
    dropped: Arc<AtomicU64>,
    counters: Arc<Counters>,
) -> Option<HwStarted> {
    let raw = fourcc_str(&mode.fourcc);
    let found = super::v4l2_kernel::m2m_encoders()
        .into_iter()
        .find(|e| e.takes.contains(&raw))?;
    Some(
        KernelM2m::start(Path::new(&found.path), mode, H264, out, dropped, counters)
            .map(|(m, name)| (Box::new(m) as Box<dyn RawEncoder>, H264, name)),
    )
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
    req: &super::v4l2::Request,
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
    req: &super::v4l2::Request,
    coded: [u8; 4],
    pictures: u32,
    burst: bool,
    out_dir: Option<&Path>,
    t: &mut EncodeTrial,
) -> Result<(), String> {
    let mut dev =
        super::v4l2_kernel::KernelDevice::open(&req.path).map_err(|e| format!("open: {e}"))?;
    let formats = dev.formats().map_err(|e| format!("formats: {e}"))?;
    let mode = dev
        .start(super::v4l2::choose(&formats, req)?)
        .map_err(|e| format!("start: {e}"))?;
    (t.raw, t.width, t.height) = (fourcc_str(&mode.fourcc), mode.width, mode.height);
    let found = super::v4l2_kernel::m2m_encoders_to(&t.coded)
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
    t.encoder = name;
    t.multiplanar = enc.output.mplane;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The request code written out by hand is `_IOWR('V', 95, struct v4l2_selection)`.
    #[test]
    // The request code's type is the platform's unsigned long.
    #[allow(clippy::unnecessary_cast)]
    fn s_selection_request_code() {
        let size = std::mem::size_of::<v4l2_selection>() as u64;
        let code = (3u64 << 30) | (size << 16) | ((b'V' as u64) << 8) | 95;
        assert_eq!(VIDIOC_S_SELECTION as u64, code);
    }
}
