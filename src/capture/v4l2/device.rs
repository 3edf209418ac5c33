//! The [`Device`] trait a camera is written against (the kernel's in camera.rs, a fake one in
//! the tests), what a device offers, and choosing from it: the format, size and rate to stream
//! ([`choose`]), how that is recorded ([`recordable`], as an [`Encoder`]), and how raw
//! pictures are encoded ([`encode_config`]).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::encode::{self, EncodeConfig};
use super::request::{EncoderChoice, Request};

pub const H264: [u8; 4] = *b"H264";

pub const MJPEG: [u8; 4] = *b"MJPG";

pub const YUYV: [u8; 4] = *b"YUYV";

pub const NV12: [u8; 4] = *b"NV12";

pub fn fourcc_str(f: &[u8; 4]) -> String {
    String::from_utf8_lossy(f).trim_end().to_string()
}

/// One picture size a device offers in one format, with its frame rates.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SizeInfo {
    pub width: u32,
    pub height: u32,
    pub fps: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    pub sizes: Vec<SizeInfo>,
    /// How a camera streaming this format is recorded (`camera-h264`, `camera-mjpeg`,
    /// `software-mjpeg`), or `None` when it cannot be; set by the listing.
    pub encoder: Option<Encoder>,
}

impl FormatInfo {
    /// A format as a device lists it, with how a camera streaming it is recorded.
    pub fn new(fourcc: String, description: String, sizes: Vec<SizeInfo>) -> Self {
        Self {
            encoder: format_encoder(&fourcc),
            fourcc,
            description,
            sizes,
        }
    }
}

/// The format, size and rate a device streams in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// One filled buffer from the driver.
#[derive(Debug, Clone)]
pub struct Buffer {
    pub data: Vec<u8>,
    /// The driver's frame counter: a jump means frames were dropped.
    pub sequence: u32,
    /// When the driver captured it, on CLOCK_MONOTONIC; zero when the driver does not say.
    pub timestamp: Duration,
}

/// A capture device: the kernel's, or a test's.
pub trait Device: Send {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>>;
    /// Sets `mode` and starts streaming; returns the mode the driver actually took.
    fn start(&mut self, mode: Mode) -> io::Result<Mode>;
    /// The next buffer; `ErrorKind::TimedOut` when none came within `timeout`. Its data may
    /// be copied into `spare` (cleared first), so that a picture's memory is reused.
    fn next(&mut self, timeout: Duration, spare: Vec<u8>) -> io::Result<Buffer>;
}

/// Opens the device at a path.
pub type Opener = Arc<dyn Fn(&Path) -> io::Result<Box<dyn Device>> + Send + Sync>;

/// Which format, size and rate to stream, from what the device offers: the requested ones
/// when given (a clear error naming what is offered otherwise); else H.264 first, the largest
/// size up to 1920x1080, and the highest rate up to 30.
pub fn choose(formats: &[FormatInfo], req: &Request) -> Result<Mode, String> {
    let offered = || {
        formats
            .iter()
            .map(|f| f.fourcc.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let rank = |f: &FormatInfo| match f.fourcc.as_bytes() {
        b"H264" => 0,
        b"MJPG" => 1,
        b"YUYV" | b"NV12" => 2,
        _ => 3,
    };
    let format = match req.format {
        Some(want) => formats
            .iter()
            .find(|f| f.fourcc == fourcc_str(&want))
            .ok_or_else(|| {
                format!(
                    "the device does not offer {}; it offers {}",
                    fourcc_str(&want),
                    offered()
                )
            })?,
        None => formats
            .iter()
            .min_by_key(|f| rank(f))
            .ok_or("the device offers no capture formats")?,
    };
    let size = match (req.width, req.height) {
        (Some(w), Some(h)) => format
            .sizes
            .iter()
            .find(|s| s.width == w && s.height == h)
            .ok_or_else(|| {
                let sizes: Vec<String> = format
                    .sizes
                    .iter()
                    .take(16)
                    .map(|s| format!("{}x{}", s.width, s.height))
                    .collect();
                format!(
                    "{} is not offered at {w}x{h}; sizes: {}",
                    format.fourcc,
                    sizes.join(", ")
                )
            })?,
        _ => {
            let area = |s: &&SizeInfo| s.width as u64 * s.height as u64;
            format
                .sizes
                .iter()
                .filter(|s| area(s) <= 1920 * 1080)
                .max_by_key(area)
                .or_else(|| format.sizes.iter().min_by_key(area))
                .ok_or_else(|| format!("the device lists no sizes for {}", format.fourcc))?
        }
    };
    let fps = match req.fps {
        Some(want) => {
            if !size.fps.is_empty() && !size.fps.iter().any(|f| (f - want as f64).abs() < 0.5) {
                return Err(format!(
                    "{} {}x{} is not offered at {want} fps; rates: {:?}",
                    format.fourcc, size.width, size.height, size.fps
                ));
            }
            want
        }
        None => size
            .fps
            .iter()
            .copied()
            .filter(|f| *f <= 30.5)
            .fold(None, |m: Option<f64>, f| Some(m.map_or(f, |m| m.max(f))))
            .or_else(|| size.fps.iter().copied().reduce(f64::min))
            .map_or(30, |f| f.round().max(1.0) as u32),
    };
    let fourcc: [u8; 4] = format
        .fourcc
        .as_bytes()
        .try_into()
        .map_err(|_| format!("odd format code '{}'", format.fourcc))?;
    Ok(Mode {
        fourcc,
        width: size.width,
        height: size.height,
        fps,
    })
}

/// How a mode is recorded (the `encoder` health and the device listing show), or why it
/// cannot be, for people.
pub fn recordable(mode: &Mode) -> Result<Encoder, String> {
    match mode.fourcc {
        H264 => Ok(Encoder::CameraH264),
        MJPEG => Ok(Encoder::CameraMjpeg),
        YUYV | NV12 => Ok(Encoder::SoftwareMjpeg),
        f => Err(format!(
            "{} is not a format Eyrie records: it records H.264 and MJPEG as the camera makes \
             them, and encodes raw YUYV and NV12 to MJPEG",
            fourcc_str(&f)
        )),
    }
}

/// How raw pictures of a request are encoded; an error when encoding settings are given for a
/// mode that is not encoded.
pub fn encode_config(req: &Request, mode: &Mode) -> Result<Option<EncodeConfig>, String> {
    if encode::RawFormat::of(mode.fourcc).is_none() {
        if req.encode_fps.is_some() || req.quality.is_some() || req.encoder != EncoderChoice::Auto {
            return Err(format!(
                "encode_fps, quality and encoder apply to raw formats (YUYV, NV12), which are \
                 encoded; this device streams {}, which is recorded as it comes",
                fourcc_str(&mode.fourcc)
            ));
        }
        return Ok(None);
    }
    let d = EncodeConfig::default();
    Ok(Some(EncodeConfig {
        fps: req.encode_fps.unwrap_or(d.fps),
        quality: req.quality.unwrap_or(d.quality),
    }))
}

/// How a camera streaming `fourcc` is recorded, for the listing.
pub fn format_encoder(fourcc: &str) -> Option<Encoder> {
    let fourcc: [u8; 4] = format!("{fourcc:<4}").as_bytes().try_into().ok()?;
    recordable(&Mode {
        fourcc,
        width: 0,
        height: 0,
        fps: 0,
    })
    .ok()
}

/// What makes a camera's recorded video (`encoder` in `/api/health` and the device listing,
/// written as the strings of [`Encoder::fmt`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encoder {
    /// `camera-h264`: H.264 recorded as the camera makes it.
    CameraH264,
    /// `camera-mjpeg`: MJPEG recorded as the camera makes it.
    CameraMjpeg,
    /// `software-mjpeg`: raw pictures encoded to MJPEG by Eyrie.
    SoftwareMjpeg,
    /// `v4l2-m2m:<driver> (<path>)`: raw pictures encoded by the kernel's memory-to-memory
    /// encoder of that driver at that device node.
    M2m { driver: String, path: String },
}

impl fmt::Display for Encoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Encoder::CameraH264 => f.write_str("camera-h264"),
            Encoder::CameraMjpeg => f.write_str("camera-mjpeg"),
            Encoder::SoftwareMjpeg => f.write_str("software-mjpeg"),
            Encoder::M2m { driver, path } => write!(f, "v4l2-m2m:{driver} ({path})"),
        }
    }
}

impl Serialize for Encoder {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
