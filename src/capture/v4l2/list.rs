//! What this machine has (`eyrie devices`, `GET /api/system/devices`): its V4L2 cameras with
//! what they offer and whether and how Eyrie records them, and its memory-to-memory encoders,
//! found by capability. One walk over the /dev/videoN nodes (at most 64) serves both.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::camera::KernelDevice;
use super::device::{Device, Encoder, FormatInfo, choose, fourcc_str, recordable};
use super::encode;
use super::kernel::{Node, Queue};
use super::request::Request;

/// Capture devices on this machine and what they offer (`GET /api/system/devices`).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    pub path: String,
    /// A name for the same device that survives unplugging (`/dev/v4l/by-id/...`), if udev
    /// made one; use it as the camera source.
    pub stable_path: Option<String>,
    pub name: String,
    pub driver: String,
    pub bus: String,
    pub formats: Vec<FormatInfo>,
    /// Whether Eyrie can record it (H.264 or MJPEG as they come, YUYV or NV12 encoded to
    /// MJPEG), how (`encoder`, as in health, for the mode chosen when the source names none),
    /// and a note for people.
    pub recordable: bool,
    pub encoder: Option<Encoder>,
    pub note: Option<String>,
}

/// A V4L2 memory-to-memory device that encodes raw pictures to H.264 (`GET
/// /api/system/devices`), found by what it does, not by its path: raw pictures in on its
/// OUTPUT queue, H.264 out of its CAPTURE queue (Raspberry Pi's `bcm2835-codec`).
#[derive(Debug, Clone, Serialize)]
pub struct M2mEncoder {
    pub path: String,
    pub name: String,
    pub driver: String,
    /// The raw formats Eyrie's cameras stream that it takes (YUYV, NV12).
    pub takes: Vec<String>,
    pub makes: String,
    /// Whether cameras use it: always (a camera streaming a raw format it takes encodes
    /// through it unless its source says `encoder=software`).
    pub used: bool,
}

/// Whether a memory-to-memory device with these OUTPUT (raw in) and CAPTURE (coded out)
/// formats is an encoder to `coded` (H264 for cameras) for the raw formats cameras stream; the
/// ones it takes.
pub fn m2m_inputs(output: &[String], capture: &[String], coded: &str) -> Option<Vec<String>> {
    if !capture.iter().any(|f| f == coded) {
        return None;
    }
    let takes: Vec<String> = output
        .iter()
        .filter(|f| matches!(f.as_str(), "YUYV" | "NV12"))
        .cloned()
        .collect();
    (!takes.is_empty()).then_some(takes)
}

/// The stable name udev gave `dev`, if any.
pub fn stable_name(dev: &Path) -> Option<String> {
    let real = std::fs::canonicalize(dev).ok()?;
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten().take(256) {
            if std::fs::canonicalize(e.path()).ok().as_ref() == Some(&real) {
                return Some(e.path().display().to_string());
            }
        }
    }
    None
}

/// What the listing says about a device's formats: whether a camera on it records (with the
/// mode chosen when the source names none), how, and a note for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub recordable: bool,
    pub encoder: Option<Encoder>,
    pub note: Option<String>,
}

/// The [`Assessment`] of a device offering `formats`.
pub fn assess(formats: &[FormatInfo]) -> Assessment {
    let no = |note: String| Assessment {
        recordable: false,
        encoder: None,
        note: Some(note),
    };
    let mode = match choose(formats, &Request::any("")) {
        Ok(mode) => mode,
        Err(e) => return no(e),
    };
    match recordable(&mode) {
        Ok(encoder) => Assessment {
            recordable: true,
            note: (encoder == Encoder::SoftwareMjpeg).then(|| {
                format!(
                    "uncompressed {}: encoded to MJPEG in software, {} pictures a second at \
                     quality {} unless the source sets encode_fps and quality",
                    fourcc_str(&mode.fourcc),
                    encode::DEFAULT_ENCODE_FPS,
                    encode::DEFAULT_QUALITY
                )
            }),
            encoder: Some(encoder),
        },
        Err(e) => no(e),
    }
}

/// The /dev/videoN nodes, in order (at most 64).
fn video_nodes() -> Vec<PathBuf> {
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

/// The /dev/videoN nodes that open and answer VIDIOC_QUERYCAP.
fn opened_nodes() -> impl Iterator<Item = (PathBuf, Node)> {
    video_nodes()
        .into_iter()
        .filter_map(|path| Node::open(&path).ok().map(|node| (path, node)))
}

/// The pixel formats one queue of a device offers.
fn queue_formats(node: &Node, queue: Queue) -> Vec<String> {
    queue
        .formats(node.raw())
        .unwrap_or_default()
        .iter()
        .map(|(fourcc, _)| fourcc_str(fourcc))
        .collect()
}

/// Memory-to-memory devices on this machine that encode raw pictures to H.264, found by
/// capability: `V4L2_CAP_VIDEO_M2M` or `_M2M_MPLANE`, YUYV or NV12 on the OUTPUT queue and H.264
/// on the CAPTURE queue.
pub fn m2m_encoders() -> Vec<M2mEncoder> {
    m2m_encoders_to("H264")
}

/// Memory-to-memory devices that encode raw pictures to `coded` (found as [`m2m_encoders`]).
pub fn m2m_encoders_to(coded: &str) -> Vec<M2mEncoder> {
    let mut out = Vec::new();
    for (path, node) in opened_nodes() {
        let Some((output, capture)) = node.caps.m2m_queues() else {
            continue;
        };
        let ins = queue_formats(&node, output);
        let outs = queue_formats(&node, capture);
        if let Some(takes) = m2m_inputs(&ins, &outs, coded) {
            out.push(M2mEncoder {
                path: path.display().to_string(),
                name: node.caps.card.clone(),
                driver: node.caps.driver.clone(),
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
    for (path, node) in opened_nodes() {
        if !node.caps.is_camera() {
            continue;
        }
        let caps = node.caps.clone();
        let formats = KernelDevice::from_node(node).formats().unwrap_or_default();
        let Assessment {
            recordable,
            encoder,
            note,
        } = assess(&formats);
        out.push(DeviceInfo {
            stable_path: stable_name(&path),
            path: path.display().to_string(),
            name: caps.card,
            driver: caps.driver,
            bus: caps.bus,
            formats,
            recordable,
            encoder,
            note,
        });
    }
    out
}
