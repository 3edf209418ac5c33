//! V4L2 logic against a fake device: URLs, format choice, H.264 buffers to frames, timestamps,
//! dropped frames, unplug and replug, one camera per device.

use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use futures::StreamExt;

use super::encode::{Offer, RawEncoder};
use super::*;
use crate::base::testing::have;
use crate::capture::{Source, SourceError};

/// Key-frame-only pictures (MJPEG) as one fragment of an fMP4 file, each `duration` long, and
/// what ffprobe reads in it: (codec, frames).
fn probe_pictures(
    params: &crate::video::VideoParams,
    frames: &[crate::capture::Frame],
    duration: u32,
) -> (String, u64) {
    let mut file = crate::media::fmp4::init_segment(params, None).to_vec();
    let metas: Vec<_> = frames
        .iter()
        .map(|f| crate::media::fmp4::SampleMeta {
            duration,
            size: f.data.len() as u32,
            key: true,
        })
        .collect();
    file.extend(crate::media::fmp4::fragment_header(1, 0, &metas));
    for f in frames {
        file.extend_from_slice(&f.data);
    }
    let dir = tempfile::tempdir().unwrap();
    let mp4 = dir.path().join("pictures.mp4");
    std::fs::write(&mp4, &file).unwrap();
    crate::media::fmp4::testing::ffprobe(&mp4)
}

const SPS: &[u8] = &[
    0x67, 0x64, 0x00, 0x1e, 0xac, 0xd9, 0x40, 0xa0, 0x2f, 0xf9, 0x70, 0x11, 0x00, 0x00, 0x03, 0x00,
    0x01, 0x00, 0x00, 0x03, 0x00, 0x1e, 0x0f, 0x16, 0x2d, 0x96,
];
const PPS: &[u8] = &[0x68, 0xeb, 0xe3, 0xcb, 0x22, 0xc0];
const AUD: &[u8] = &[0x09, 0xf0];
const IDR: &[u8] = &[0x65, 0x88, 0x84, 0x00, 0x33, 0xff];
const P: &[u8] = &[0x41, 0x9a, 0x02, 0x04];

fn annexb(nals: &[&[u8]]) -> Vec<u8> {
    let mut v = Vec::new();
    for (i, n) in nals.iter().enumerate() {
        // Both start code lengths, as encoders mix them.
        v.extend_from_slice(if i == 0 { &[0, 0, 0, 1] } else { &[0, 0, 1] });
        v.extend_from_slice(n);
    }
    v
}

fn buf(nals: &[&[u8]], sequence: u32, ms: u64) -> Buffer {
    Buffer {
        data: annexb(nals),
        sequence,
        timestamp: Duration::from_millis(ms),
    }
}

/// x264's Annex B stream of `frames` testsrc pictures at `size` (30 fps, no B-frames, an access
/// unit delimiter before each picture; `extra`: more encoder options), cut into access units as
/// a UVC camera or an M2M encoder delivers them: one buffer per picture, each NAL behind a
/// 4-byte start code.
fn x264_access_units(
    dir: &std::path::Path,
    size: &str,
    frames: u32,
    extra: &[&str],
) -> Vec<Vec<u8>> {
    let es = dir.join("x264.h264");
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size={size}:rate=30"))
        .args([
            "-frames:v",
            &frames.to_string(),
            "-c:v",
            "libx264",
            "-bf",
            "0",
        ])
        .args(extra)
        .args(["-pix_fmt", "yuv420p", "-bsf:v", "h264_metadata=aud=insert"])
        .arg(&es)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = std::fs::read(&es).unwrap();
    let mut units: Vec<Vec<u8>> = Vec::new();
    for nal in annexb_nals(&data) {
        if nal[0] & 0x1f == 9 || units.is_empty() {
            units.push(Vec::new());
        }
        let u = units.last_mut().unwrap();
        u.extend_from_slice(&[0, 0, 0, 1]);
        u.extend_from_slice(nal);
    }
    units
}

fn url(s: &str) -> Result<Request, SourceError> {
    parse(&url::Url::parse(s).unwrap())
}

#[test]
fn parses_urls() {
    let r = url("v4l2:///dev/video2?width=1280&height=720&fps=30&format=h264").unwrap();
    assert_eq!(r.path, Path::new("/dev/video2"));
    assert_eq!(
        (r.width, r.height, r.fps),
        (Some(1280), Some(720), Some(30))
    );
    assert_eq!(r.format, Some(H264));
    assert!(url("v4l2:///dev/v4l/by-id/usb-Cam_123-video-index0").is_ok());
    let r = url("v4l2:///dev/video0?format=yuyv&encode_fps=2&quality=60").unwrap();
    assert_eq!((r.encode_fps, r.quality), (Some(2), Some(60)));
    assert!(url("v4l2:///dev/v4l/by-path/platform-xhci-hcd.0-usb-0:1:1.0-video-index0").is_ok());
    for bad in [
        "v4l2:///dev/video",
        "v4l2:///dev/video0x",
        "v4l2:///dev/v4l/by-id/../../sda",
        "v4l2:///etc/passwd",
        "v4l2://cam/dev/video0",
        "v4l2:///dev/video0?width=10&height=10",
        "v4l2:///dev/video0?width=640",
        "v4l2:///dev/video0?fps=0",
        "v4l2:///dev/video0?format=H26",
        "v4l2:///dev/video0?zoom=2",
        "v4l2:///dev/video0?fps=5&fps=6",
        "v4l2:///dev/video0?encode_fps=0",
        "v4l2:///dev/video0?encode_fps=31",
        "v4l2:///dev/video0?quality=9",
        "v4l2:///dev/video0?quality=96",
        "v4l2:///dev/video0?quality=high",
    ] {
        assert!(url(bad).is_err(), "{bad}");
    }
}

fn size(width: u32, height: u32, fps: &[f64]) -> SizeInfo {
    SizeInfo {
        width,
        height,
        fps: fps.to_vec(),
    }
}

fn webcam() -> Vec<FormatInfo> {
    vec![
        FormatInfo {
            fourcc: "YUYV".into(),
            description: "YUYV 4:2:2".into(),
            sizes: vec![size(640, 480, &[30.0])],
            encoder: None,
        },
        FormatInfo {
            fourcc: "MJPG".into(),
            description: "Motion-JPEG".into(),
            sizes: vec![size(1920, 1080, &[30.0])],
            encoder: None,
        },
        FormatInfo {
            fourcc: "H264".into(),
            description: "H.264".into(),
            sizes: vec![
                size(3840, 2160, &[15.0]),
                size(1920, 1080, &[60.0, 30.0, 15.0]),
                size(640, 360, &[30.0, 15.0]),
            ],
            encoder: None,
        },
    ]
}

#[test]
fn chooses_a_recordable_mode() {
    let any = url("v4l2:///dev/video0").unwrap();
    let m = choose(&webcam(), &any).unwrap();
    assert_eq!(
        m,
        Mode {
            fourcc: H264,
            width: 1920,
            height: 1080,
            fps: 30
        }
    );
    let small = url("v4l2:///dev/video0?width=640&height=360&fps=15").unwrap();
    assert_eq!(
        choose(&webcam(), &small).unwrap(),
        Mode {
            fourcc: H264,
            width: 640,
            height: 360,
            fps: 15
        }
    );
    let e = choose(
        &webcam(),
        &url("v4l2:///dev/video0?width=800&height=600").unwrap(),
    )
    .unwrap_err();
    assert!(e.contains("800x600") && e.contains("640x360"), "{e}");
    let e = choose(&webcam(), &url("v4l2:///dev/video0?format=NV12").unwrap()).unwrap_err();
    assert!(e.contains("YUYV, MJPG, H264"), "{e}");
    let e = choose(&webcam(), &url("v4l2:///dev/video0?fps=25").unwrap()).unwrap_err();
    assert!(e.contains("25 fps"), "{e}");
    // MJPEG is recorded as it comes; raw formats are chosen last and encoded in software.
    let mjpg = choose(&webcam(), &url("v4l2:///dev/video0?format=MJPG").unwrap()).unwrap();
    assert_eq!(recordable(&mjpg), Ok(super::Encoder::CameraMjpeg));
    assert_eq!(
        assess(&webcam()[..2]),
        Assessment {
            recordable: true,
            encoder: Some(super::Encoder::CameraMjpeg),
            note: None
        }
    );
    let Assessment {
        recordable: ok,
        encoder: how,
        note,
    } = assess(&webcam()[..1]);
    assert!(ok && how == Some(super::Encoder::SoftwareMjpeg));
    assert!(
        note.unwrap()
            .contains("uncompressed YUYV: encoded to MJPEG in software")
    );
    assert_eq!(
        assess(&webcam()),
        Assessment {
            recordable: true,
            encoder: Some(super::Encoder::CameraH264),
            note: None
        }
    );
    assert_eq!(format_encoder("NV12"), Some(super::Encoder::SoftwareMjpeg));
    assert_eq!(format_encoder("H264"), Some(super::Encoder::CameraH264));
    assert_eq!(format_encoder("GREY"), None);
    let Assessment {
        recordable: ok,
        encoder: how,
        note,
    } = assess(&[grey()]);
    assert!(!ok && how.is_none());
    assert!(note.unwrap().contains("GREY is not a format Eyrie records"));
    assert!(choose(&[], &any).is_err());
}

#[test]
fn splits_annex_b() {
    let data = annexb(&[SPS, PPS, IDR]);
    assert_eq!(annexb_nals(&data), vec![SPS, PPS, IDR]);
    assert!(annexb_nals(&[0, 0, 0]).is_empty());
    assert!(annexb_nals(&[1, 2, 3]).is_empty());
}

fn mode() -> Mode {
    Mode {
        fourcc: H264,
        width: 640,
        height: 360,
        fps: 30,
    }
}

#[test]
fn turns_buffers_into_frames() {
    let dropped = Arc::new(AtomicU64::new(0));
    let mut f = H264Frames::new(mode(), dropped.clone());
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let mono = Duration::from_secs(1000);
    // Nothing before parameters and a key frame.
    assert!(f.push(&buf(&[P], 1, 0), mono, now).unwrap().is_none());
    assert!(
        f.push(&buf(&[AUD, IDR], 2, 0), mono, now)
            .unwrap()
            .is_none()
    );
    let first = f
        .push(&buf(&[AUD, SPS, PPS, IDR], 3, 999_900), mono, now)
        .unwrap()
        .unwrap();
    assert!(first.key && first.pts == 0 && first.new_params.is_none());
    let mut want = (IDR.len() as u32).to_be_bytes().to_vec();
    want.extend_from_slice(IDR);
    assert_eq!(
        &first.data[..],
        &want[..],
        "parameter sets and AUD left out"
    );
    // Captured 100 ms before "now" on the monotonic clock.
    assert_eq!(
        first.received,
        now.checked_sub(jiff::SignedDuration::from_millis(100))
            .unwrap()
    );
    let p = f.params().unwrap();
    assert_eq!(
        (p.width, p.height, p.rfc6381.as_str()),
        (640, 360, "avc1.64001e")
    );
    assert_eq!(dropped.load(Ordering::Relaxed), 0);

    // 1/30 s later: 3000 ticks. Then two frames lost (sequence 5 and 6).
    let second = f.push(&buf(&[P], 4, 999_933), mono, now).unwrap().unwrap();
    assert!(!second.key);
    assert_eq!(second.pts, 2970); // 33 ms in 90 kHz ticks
    let third = f
        .push(&buf(&[P], 7, 1_000_033), mono, now)
        .unwrap()
        .unwrap();
    assert_eq!(third.pts, 11970);
    assert_eq!(dropped.load(Ordering::Relaxed), 2);
    // A timestamp that goes backwards still gives an increasing time.
    let fourth = f
        .push(&buf(&[P], 8, 1_000_000), mono, now)
        .unwrap()
        .unwrap();
    assert_eq!(fourth.pts, 11971);

    // New parameters arrive with a key frame and are announced on it.
    let mut sps2 = SPS.to_vec();
    sps2[3] = 0x1f; // level 3.1
    let changed = f
        .push(&buf(&[&sps2, PPS, IDR], 9, 1_000_100), mono, now)
        .unwrap()
        .unwrap();
    assert_eq!(changed.new_params.as_ref().unwrap().rfc6381, "avc1.64001f");
    // ... and never without one.
    assert!(
        f.push(&buf(&[SPS, PPS, P], 10, 1_000_200), mono, now)
            .is_err()
    );
}

/// A fake device plugged into a fake port: each open gets a fresh channel the test feeds.
struct Rig {
    plugged: AtomicBool,
    formats: Vec<FormatInfo>,
    feed: Mutex<Option<mpsc::Sender<io::Result<Buffer>>>>,
    started: Mutex<VecDeque<Mode>>,
    /// Buffers given memory to reuse.
    reused: std::sync::atomic::AtomicUsize,
}

struct Fake {
    formats: Vec<FormatInfo>,
    rx: mpsc::Receiver<io::Result<Buffer>>,
    rig: Arc<Rig>,
}

impl Device for Fake {
    fn formats(&mut self) -> io::Result<Vec<FormatInfo>> {
        Ok(self.formats.clone())
    }
    fn start(&mut self, mode: Mode) -> io::Result<Mode> {
        self.rig.started.lock().unwrap().push_back(mode);
        Ok(mode)
    }
    fn next(&mut self, timeout: Duration, mut spare: Vec<u8>) -> io::Result<Buffer> {
        match self.rx.recv_timeout(timeout) {
            // Into the spare memory, as the kernel device copies from its mapped buffer.
            Ok(Ok(mut b)) if spare.capacity() >= b.data.len() => {
                self.rig.reused.fetch_add(1, Ordering::SeqCst);
                spare.clear();
                spare.extend_from_slice(&b.data);
                b.data = spare;
                Ok(b)
            }
            Ok(r) => r,
            Err(mpsc::RecvTimeoutError::Timeout) => Err(io::ErrorKind::TimedOut.into()),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(io::Error::from_raw_os_error(19)),
        }
    }
}

fn rig(formats: Vec<FormatInfo>) -> (Arc<Rig>, Opener) {
    let rig = Arc::new(Rig {
        plugged: AtomicBool::new(true),
        formats,
        feed: Mutex::new(None),
        started: Mutex::new(VecDeque::new()),
        reused: Default::default(),
    });
    let r = rig.clone();
    let open: Opener = Arc::new(move |_path: &Path| -> io::Result<Box<dyn Device>> {
        if !r.plugged.load(Ordering::SeqCst) {
            return Err(io::ErrorKind::NotFound.into());
        }
        let (tx, rx) = mpsc::channel();
        *r.feed.lock().unwrap() = Some(tx);
        Ok(Box::new(Fake {
            formats: r.formats.clone(),
            rx,
            rig: r.clone(),
        }))
    });
    (rig, open)
}

fn feed(rig: &Rig, b: io::Result<Buffer>) {
    rig.feed.lock().unwrap().as_ref().unwrap().send(b).unwrap();
}

#[tokio::test]
async fn streams_counts_gaps_and_resumes_after_unplug() {
    let (rig, open) = rig(webcam());
    let src = V4l2Source::new(url("v4l2:///dev/video41?fps=15").unwrap(), open);
    let opening = tokio::spawn(src.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    feed(&rig, Ok(buf(&[SPS, PPS, IDR], 10, 1000)));
    let mut opened = opening.await.unwrap().unwrap();
    assert_eq!(
        rig.started.lock().unwrap().pop_front().unwrap(),
        Mode {
            fourcc: H264,
            width: 1920,
            height: 1080,
            fps: 15
        }
    );
    assert_eq!(opened.params.width, 1920, "the size the driver took");
    assert!(opened.frames.next().await.unwrap().unwrap().key);
    feed(&rig, Ok(buf(&[P], 14, 1200)));
    let f = opened.frames.next().await.unwrap().unwrap();
    assert_eq!(f.pts, 18000);
    assert_eq!(src.dropped_frames(), 3);

    // Unplugged: the stream ends with an error that says so, and opening fails until it is back.
    rig.plugged.store(false, Ordering::SeqCst);
    feed(&rig, Err(io::Error::from_raw_os_error(19)));
    let e = opened.frames.next().await.unwrap().unwrap_err().to_string();
    assert!(e.contains("/dev/video41 is gone (unplugged?)"), "{e}");
    drop(opened);
    let e = src.open().await.err().unwrap().to_string();
    assert!(e.contains("cannot open /dev/video41"), "{e}");
    rig.plugged.store(true, Ordering::SeqCst);
    let opening = tokio::spawn(src.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    feed(&rig, Ok(buf(&[SPS, PPS, IDR], 0, 5000)));
    let mut opened = opening.await.unwrap().unwrap();
    let f = opened.frames.next().await.unwrap().unwrap();
    assert!(f.key && f.pts == 0, "a new run starts at 0");
    assert_eq!(src.dropped_frames(), 3, "a restarted counter is not a gap");
}

#[tokio::test]
async fn one_device_feeds_one_camera() {
    let (rig_a, open_a) = rig(webcam());
    let a = V4l2Source::new(url("v4l2:///dev/video42").unwrap(), open_a);
    let (rig_b, open_b) = rig(webcam());
    let b = V4l2Source::new(url("v4l2:///dev/video42").unwrap(), open_b);
    let opening = tokio::spawn(a.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    feed(&rig_a, Ok(buf(&[SPS, PPS, IDR], 0, 0)));
    let opened = opening.await.unwrap().unwrap();
    let e = b.open().await.err().unwrap().to_string();
    assert!(e.contains("already used by another camera"), "{e}");
    // Closing the first camera frees the device (within the pump's one-second poll).
    drop(opened);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let opening = tokio::spawn(b.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    feed(&rig_b, Ok(buf(&[SPS, PPS, IDR], 0, 0)));
    assert!(opening.await.unwrap().is_ok());
}

/// Encoders are written on the wire (health, the device listing) as they always were.
#[test]
fn encoders_keep_their_names() {
    for (e, name) in [
        (super::Encoder::CameraH264, "camera-h264"),
        (super::Encoder::CameraMjpeg, "camera-mjpeg"),
        (super::Encoder::SoftwareMjpeg, "software-mjpeg"),
        (
            super::Encoder::M2m {
                driver: "bcm2835-codec".into(),
                path: "/dev/video11".into(),
            },
            "v4l2-m2m:bcm2835-codec (/dev/video11)",
        ),
    ] {
        assert_eq!(e.to_string(), name);
        assert_eq!(serde_json::to_value(&e).unwrap(), serde_json::json!(name));
    }
}

fn grey() -> FormatInfo {
    FormatInfo {
        fourcc: "GREY".into(),
        description: "8-bit Greyscale".into(),
        sizes: vec![size(640, 480, &[30.0])],
        encoder: None,
    }
}

/// Formats Eyrie neither records nor encodes, and encoding settings for a format that is not
/// encoded: a clear error on open, nothing streamed.
#[tokio::test]
async fn unrecordable_formats_get_a_clear_error() {
    let (_rig, open) = rig(vec![grey()]);
    let src = V4l2Source::new(url("v4l2:///dev/video43").unwrap(), open);
    let e = src.open().await.err().unwrap().to_string();
    assert!(e.contains("GREY is not a format Eyrie records"), "{e}");
    let (_rig, open) = rig(webcam());
    let src = V4l2Source::new(url("v4l2:///dev/video43?encode_fps=5").unwrap(), open);
    let e = src.open().await.err().unwrap().to_string();
    assert!(
        e.contains("encode_fps, quality and encoder apply to raw formats"),
        "{e}"
    );
    assert!(e.contains("streams H264"), "{e}");
}

/// A camera's H.264 (x264, one access unit per buffer as UVC cameras deliver it) through a fake
/// device, the frame path and the fMP4 writer recordings use: ffmpeg decodes every frame.
#[tokio::test]
async fn device_h264_makes_a_decodable_mp4() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units = x264_access_units(
        dir.path(),
        "640x360",
        45,
        &["-profile:v", "high", "-g", "15"],
    );
    assert_eq!(units.len(), 45);

    let (rig, open) = rig(webcam());
    let src = V4l2Source::new(
        url("v4l2:///dev/video44?width=640&height=360&fps=30").unwrap(),
        open,
    );
    let opening = tokio::spawn(src.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    for (i, unit) in units.iter().enumerate() {
        // 30 fps as the driver stamps it, with frame 20 lost on the way.
        if i != 20 {
            feed(
                &rig,
                Ok(Buffer {
                    data: unit.clone(),
                    sequence: i as u32,
                    timestamp: Duration::from_millis(1000 + i as u64 * 1000 / 30),
                }),
            );
        }
    }
    let mut opened = opening.await.unwrap().unwrap();
    let mut frames = Vec::new();
    while frames.len() < 44 {
        frames.push(opened.frames.next().await.unwrap().unwrap());
    }
    assert_eq!(src.dropped_frames(), 1);
    assert_eq!(frames.iter().filter(|f| f.key).count(), 3);

    // One fragment per frame, durations from the presentation times, as the recorder does.
    let mut file = crate::media::fmp4::init_segment(&opened.params, None).to_vec();
    let mut decode_time = 0u64;
    for (i, f) in frames.iter().enumerate() {
        let duration = frames
            .get(i + 1)
            .map_or(3000, |next| (next.pts - f.pts) as u32);
        let meta = crate::media::fmp4::SampleMeta {
            duration,
            size: f.data.len() as u32,
            key: f.key,
        };
        file.extend(crate::media::fmp4::fragment_header(
            i as u32 + 1,
            decode_time,
            &[meta],
        ));
        file.extend_from_slice(&f.data);
        decode_time += duration as u64;
    }
    let mp4 = dir.path().join("cam.mp4");
    std::fs::write(&mp4, &file).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&mp4)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && err.trim().is_empty(), "{err}");
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(&mp4)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "640,360,44");
    // 44 frames over 45 frame times (one lost): 1.5 s at 90 kHz, within the millisecond the
    // timestamps above are rounded to.
    assert!((decode_time as i64 - 135_000).abs() < 90, "{decode_time}");
}

/// A camera's MJPEG (real JPEGs from ffmpeg) through a fake device: frames are the pictures
/// as they came, all key frames, timed by the driver; a torn and a garbage buffer are counted
/// and skipped; the recorded file decodes in ffmpeg with every good frame.
#[tokio::test]
async fn device_mjpeg_makes_a_decodable_mp4() {
    if !have("ffmpeg") || !have("ffprobe") {
        return;
    }
    let jpegs = crate::media::fmp4::testing::ffmpeg_jpegs(20, 320, 240);
    let cam = FormatInfo {
        fourcc: "MJPG".into(),
        description: "Motion-JPEG".into(),
        sizes: vec![size(1280, 720, &[30.0]), size(320, 240, &[10.0])],
        encoder: None,
    };
    let (rig, open) = rig(vec![webcam()[0].clone(), cam]);
    let src = V4l2Source::new(
        url("v4l2:///dev/video45?width=320&height=240").unwrap(),
        open,
    );
    let opening = tokio::spawn(src.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Garbage before the first picture, a torn one (cut short) and zero padding later.
    let mut seq = 0;
    let mut send = |data: Vec<u8>| {
        let ms = 1000 + seq as u64 * 100;
        feed(
            &rig,
            Ok(Buffer {
                data,
                sequence: seq,
                timestamp: Duration::from_millis(ms),
            }),
        );
        seq += 1;
    };
    send(vec![0x12; 300]);
    for (i, j) in jpegs.iter().enumerate() {
        match i {
            5 => send(j[..j.len() / 2].to_vec()),
            9 => send([j.as_slice(), &[0u8; 64]].concat()),
            _ => send(j.clone()),
        }
    }
    let mut opened = opening.await.unwrap().unwrap();
    assert_eq!(
        rig.started.lock().unwrap().pop_front().unwrap().fourcc,
        MJPEG
    );
    assert_eq!(opened.params.codec, crate::video::Codec::Mjpeg);
    let mut frames = Vec::new();
    while frames.len() < 19 {
        frames.push(opened.frames.next().await.unwrap().unwrap());
    }
    assert_eq!(src.dropped_frames(), 2, "the garbage and the torn buffer");
    assert!(frames.iter().all(|f| f.key));
    assert_eq!(frames[0].data, jpegs[0]);
    assert_eq!(frames[8].data, jpegs[9], "padding taken off");
    // Driver times: 100 ms apart, the first picture at 0.
    assert_eq!((frames[0].pts, frames[1].pts), (0, 9000));

    assert_eq!(
        probe_pictures(&opened.params, &frames, 9000),
        ("mjpeg".to_string(), 19)
    );
}

/// The rate gate keeps the configured rate by the driver's timestamps, with jitter, and starts
/// again after a gap or a clock that went back.
#[test]
fn rate_gate_keeps_the_rate_by_timestamps() {
    let at = |ms: f64| Duration::from_micros((ms * 1000.0) as u64);
    // 30 fps for 3 s, a millisecond of jitter either way, kept to 5 fps.
    let mut g = encode::RateGate::new(5);
    let kept: Vec<usize> = (0..90)
        .filter(|&i| {
            let jitter = [0.0, 1.0, -1.0][i % 3];
            g.admit(at(1000.0 + i as f64 * 1000.0 / 30.0 + jitter))
        })
        .collect();
    assert_eq!(kept, (0..90).step_by(6).collect::<Vec<_>>());
    // A source slower than the rate: every frame is kept.
    let mut g = encode::RateGate::new(30);
    assert!((0..20).all(|i| g.admit(at(i as f64 * 100.0))));
    // 7 fps kept to 5: never more than 5 in a second, the schedule holds over time.
    let mut g = encode::RateGate::new(5);
    let n = (0..70)
        .filter(|&i| g.admit(at(i as f64 * 1000.0 / 7.0)))
        .count();
    assert!((50..=51).contains(&n), "{n}");
    // A gap (frames lost) and a clock that went back: the next frame is kept.
    let mut g = encode::RateGate::new(5);
    assert!(g.admit(at(0.0)));
    assert!(!g.admit(at(100.0)));
    assert!(g.admit(at(5000.0)));
    assert!(!g.admit(at(5100.0)));
    assert!(g.admit(at(20.0)));
}

/// A YUYV or NV12 picture in video range: Y a horizontal ramp 16..=235, Cb a vertical ramp,
/// Cr constant; lines padded to `stride` bytes.
fn raw_picture(format: [u8; 4], w: usize, h: usize, stride: usize) -> Vec<u8> {
    let luma = |x: usize| (16 + x * 219 / (w - 1)) as u8;
    let cb = |y: usize| (16 + y * 224 / (h - 1)) as u8;
    match format {
        YUYV => {
            let mut v = vec![0x55u8; stride * h];
            for y in 0..h {
                for x in (0..w).step_by(2) {
                    let p = &mut v[y * stride + x * 2..][..4];
                    p.copy_from_slice(&[luma(x), cb(y), luma(x + 1), 200]);
                }
            }
            v
        }
        _ => {
            let mut v = vec![0x55u8; stride * (h + h / 2)];
            for y in 0..h {
                for x in 0..w {
                    v[y * stride + x] = luma(x);
                }
            }
            for y in 0..h / 2 {
                for x in (0..w).step_by(2) {
                    let p = &mut v[(h + y) * stride + x..][..2];
                    p.copy_from_slice(&[cb(2 * y), 200]);
                }
            }
            v
        }
    }
}

/// ffmpeg's decoding of a JPEG as full-range planar 4:4:4 (Y plane, Cb plane, Cr plane).
fn decode_jpeg(jpeg: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.jpg");
    std::fs::write(&path, jpeg).unwrap();
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&path)
        .args(["-f", "rawvideo", "-pix_fmt", "yuvj444p", "-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// YUYV and NV12 (with padded lines) encode to JPEGs ffmpeg decodes to the same picture, in
/// the full range JPEG uses; the output buffer is reused; a short buffer is an error.
#[test]
fn raw_pictures_encode_to_the_same_picture() {
    if !have("ffmpeg") {
        return;
    }
    let (w, h) = (64usize, 48usize);
    let full = |v: usize, lo: f64, span: f64| ((v as f64 - lo) * 255.0 / span).clamp(0.0, 255.0);
    for (fourcc, stride) in [(YUYV, 64 * 2 + 32), (NV12, 64 + 16)] {
        let mode = Mode {
            fourcc,
            width: w as u32,
            height: h as u32,
            fps: 30,
        };
        let enc = encode::JpegEncoder::new(&mode, 95).unwrap();
        let raw = raw_picture(fourcc, w, h, stride);
        let mut jpeg = Vec::with_capacity(64 * 1024);
        let reused = jpeg.as_ptr();
        enc.encode(&raw, &mut jpeg).unwrap();
        assert_eq!(jpeg.as_ptr(), reused, "the output buffer is reused");
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]) && jpeg.ends_with(&[0xFF, 0xD9]));
        let pic = decode_jpeg(&jpeg);
        assert_eq!(pic.len(), w * h * 3, "{}x{}", w, h);
        let (mut err_y, mut err_c) = (0f64, 0f64);
        for y in 0..h {
            for x in 0..w {
                let want_y = full(16 + x * 219 / (w - 1), 16.0, 219.0);
                let want_cb = full(16 + y * 224 / (h - 1), 16.0, 224.0);
                let want_cr = full(200, 16.0, 224.0);
                let i = y * w + x;
                err_y += (pic[i] as f64 - want_y).abs();
                err_c += (pic[w * h + i] as f64 - want_cb).abs();
                err_c += (pic[2 * w * h + i] as f64 - want_cr).abs();
            }
        }
        let (err_y, err_c) = (err_y / (w * h) as f64, err_c / (2 * w * h) as f64);
        assert!(
            err_y < 2.0,
            "{}: mean luma error {err_y}",
            fourcc_str(&fourcc)
        );
        // NV12's chroma covers two lines: the vertical ramp is averaged over them.
        assert!(
            err_c < 4.0,
            "{}: mean chroma error {err_c}",
            fourcc_str(&fourcc)
        );
        let e = enc.encode(&raw[..raw.len() / 2], &mut jpeg).unwrap_err();
        assert!(e.contains("cannot hold a 64x48"), "{e}");
    }
    let odd = Mode {
        fourcc: YUYV,
        width: 63,
        height: 48,
        fps: 30,
    };
    assert!(encode::JpegEncoder::new(&odd, 75).is_err());
    // NV12 of odd sizes: chroma rounded up, buffers exactly that big, nothing read beyond.
    let odd = Mode {
        fourcc: NV12,
        width: 63,
        height: 47,
        fps: 30,
    };
    let enc = encode::JpegEncoder::new(&odd, 75).unwrap();
    let mut jpeg = Vec::new();
    enc.encode(&vec![128; 64 * (47 + 24)], &mut jpeg).unwrap();
    assert_eq!(decode_jpeg(&jpeg).len(), 63 * 47 * 3);
    assert!(
        enc.encode(&vec![128; 64 * (47 + 24) - 1], &mut jpeg)
            .is_err()
    );
}

fn raw_format(fourcc: &str, w: u32, h: u32) -> FormatInfo {
    FormatInfo {
        fourcc: fourcc.into(),
        description: fourcc.into(),
        sizes: vec![size(w, h, &[30.0])],
        encoder: None,
    }
}

/// A raw camera through the fake device: 30 fps YUYV kept to `encode_fps=5` by timestamps,
/// encoded off the device thread, and recorded like a camera's MJPEG (an MP4 ffprobe reads as
/// mjpeg with every frame); sequence gaps, rate skips and a torn buffer are counted apart.
#[tokio::test]
async fn raw_camera_records_as_software_mjpeg() {
    if !have("ffprobe") {
        return;
    }
    let (w, h) = (160u32, 120u32);
    let (rig, open) = rig(vec![raw_format("YUYV", w, h), raw_format("NV12", w, h)]);
    let src = V4l2Source::new(
        url("v4l2:///dev/video46?encode_fps=5&quality=60").unwrap(),
        open,
    );
    assert_eq!(src.encoding().unwrap().encoder, "", "not opened yet");
    let mut opening = Some(tokio::spawn(src.open()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let picture = raw_picture(YUYV, w as usize, h as usize, w as usize * 2);
    let mut fed = 0;
    let mut out = Vec::new();
    let mut opened = None;
    for i in 0u32..60 {
        if i == 20 {
            continue; // lost by the driver: a sequence gap
        }
        let data = if i == 30 {
            picture[..100].to_vec() // torn
        } else {
            picture.clone()
        };
        let ms = 1000 + i as u64 * 1000 / 30;
        feed(
            &rig,
            Ok(Buffer {
                data,
                sequence: i,
                timestamp: Duration::from_millis(ms),
            }),
        );
        fed += 1;
        if i == 0 {
            opened = Some(opening.take().unwrap().await.unwrap().unwrap());
        }
        // One frame time between buffers, as a camera sends them: the encoder keeps up.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut opened = opened.unwrap();
    assert_eq!(
        rig.started.lock().unwrap().pop_front().unwrap().fourcc,
        YUYV
    );
    assert_eq!(opened.params.codec, crate::video::Codec::Mjpeg);
    assert_eq!((opened.params.width, opened.params.height), (160, 120));
    let enc = src.encoding().unwrap();
    assert_eq!(enc.encoder, "software-mjpeg");
    // 59 buffers over 2 s kept to 5 fps: 10 kept (the torn one among them), 49 skipped.
    assert_eq!(fed, 59);
    assert_eq!(enc.rate_skipped_frames, 49, "{enc:?}");
    let kept = 59 - enc.rate_skipped_frames - enc.encoder_dropped_frames;
    while (out.len() as u64) < kept - 1 {
        out.push(opened.frames.next().await.unwrap().unwrap());
    }
    assert_eq!(
        enc.encoder_dropped_frames, 0,
        "one frame time per picture is enough"
    );
    assert_eq!(out.len(), 9);
    assert_eq!(src.dropped_frames(), 2, "the gap and the torn buffer");
    // Pictures' memory goes round: only the first few buffers need new memory.
    assert!(rig.reused.load(Ordering::SeqCst) >= 55, "{:?}", rig.reused);
    // Presentation times from the driver: 200 ms apart (the kept frames 0, 6, 12, ...).
    assert_eq!((out[0].pts, out[1].pts), (0, 18000));
    assert!(
        out.iter()
            .all(|f| f.key && f.data.starts_with(&[0xFF, 0xD8]))
    );

    assert_eq!(
        probe_pictures(&opened.params, &out, 18000),
        ("mjpeg".to_string(), 9)
    );
}

/// When the encoder cannot keep up, pictures are dropped and counted, never queued: a burst
/// of large pictures with no time between them, at a rate that keeps every one.
#[tokio::test]
async fn a_busy_encoder_drops_and_counts() {
    let (w, h) = (1280u32, 720u32);
    let (rig, open) = rig(vec![raw_format("NV12", w, h)]);
    let src = V4l2Source::new(url("v4l2:///dev/video47?encode_fps=30").unwrap(), open);
    let opening = tokio::spawn(src.open());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let picture = raw_picture(NV12, w as usize, h as usize, w as usize);
    for i in 0u32..40 {
        feed(
            &rig,
            Ok(Buffer {
                data: picture.clone(),
                sequence: i,
                timestamp: Duration::from_millis(1000 + i as u64 * 34),
            }),
        );
    }
    let mut opened = opening.await.unwrap().unwrap();
    // Everything the device gave is accounted for once the stream drains.
    let mut frames = 1;
    loop {
        let enc = src.encoding().unwrap();
        if frames + enc.encoder_dropped_frames + enc.rate_skipped_frames == 40 {
            break;
        }
        opened.frames.next().await.unwrap().unwrap();
        frames += 1;
    }
    let enc = src.encoding().unwrap();
    assert_eq!(enc.rate_skipped_frames, 0);
    assert!(enc.encoder_dropped_frames > 0, "{enc:?}");
    assert_eq!(src.dropped_frames(), 0, "encoder drops are counted apart");
}

#[test]
fn finds_m2m_h264_encoders_by_their_formats() {
    let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    // bcm2835-codec's encoder node: raw in, H.264 out.
    assert_eq!(
        m2m_inputs(&v(&["YU12", "YUYV", "NV12", "RGB3"]), &v(&["H264"]), "H264"),
        Some(v(&["YUYV", "NV12"]))
    );
    // Its decoder node (H.264 in, raw out), vicodec (FWHT) and a JPEG encoder are not.
    assert_eq!(
        m2m_inputs(&v(&["H264", "MJPG"]), &v(&["YU12", "NV12"]), "H264"),
        None
    );
    assert_eq!(
        m2m_inputs(&v(&["YUYV", "NV12"]), &v(&["FWHT"]), "H264"),
        None
    );
    assert_eq!(m2m_inputs(&v(&["RGB3"]), &v(&["H264"]), "H264"), None);
    // Other coded formats are asked for by name (the tests' vicodec makes FWHT).
    assert_eq!(
        m2m_inputs(&v(&["YU12", "YUYV", "NV12"]), &v(&["FWHT"]), "FWHT"),
        Some(v(&["YUYV", "NV12"]))
    );
}

/// Which encoder a raw camera takes: an M2M encoder that fails to start leaves it on software
/// MJPEG with the reason in health (`encoder_error`); `encoder=m2m` makes that, or having
/// none, the camera's error; `encoder=software` never asks; and the parameter is for raw
/// formats only.
#[tokio::test]
async fn raw_cameras_fall_back_from_a_failing_m2m_encoder() {
    let (w, h) = (160u32, 120u32);
    let asked = Arc::new(AtomicUsize::new(0));
    let hw = |fails: bool, asked: Arc<AtomicUsize>| -> HwEncoders {
        Arc::new(move |mode: &Mode, _tx, _dropped, _counters| {
            asked.fetch_add(1, Ordering::SeqCst);
            assert_eq!(mode.fourcc, YUYV);
            fails.then(|| Err("/dev/video9 (H264): it does not take YUYV 160x120".to_string()))
        })
    };
    let picture = raw_picture(YUYV, w as usize, h as usize, w as usize * 2);
    for (n, (query, fails, want)) in [
        ("", true, Ok("software-mjpeg")),
        ("&encoder=auto", false, Ok("software-mjpeg")),
        ("&encoder=software", true, Ok("software-mjpeg")),
        (
            "&encoder=m2m",
            true,
            Err("the memory-to-memory encoder failed: /dev/video9"),
        ),
        (
            "&encoder=m2m",
            false,
            Err("no memory-to-memory encoder that takes YUYV to H.264"),
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let (rig, open) = rig(vec![raw_format("YUYV", w, h)]);
        let before = asked.load(Ordering::SeqCst);
        let src = V4l2Source::new(
            url(&format!("v4l2:///dev/video5{n}?fps=30{query}")).unwrap(),
            open,
        )
        .with_hw(hw(fails, asked.clone()));
        let opening = tokio::spawn(src.open());
        tokio::time::sleep(Duration::from_millis(50)).await;
        if want.is_ok() {
            feed(
                &rig,
                Ok(Buffer {
                    data: picture.clone(),
                    sequence: 0,
                    timestamp: Duration::from_secs(1),
                }),
            );
        }
        let r = opening.await.unwrap();
        let enc = src.encoding().unwrap();
        match want {
            Ok(name) => {
                let opened = r.unwrap_or_else(|e| panic!("{query}: {e}"));
                assert_eq!(opened.params.codec, crate::video::Codec::Mjpeg, "{query}");
                assert_eq!(enc.encoder, name, "{query}");
                let why = enc.encoder_error.unwrap_or_default();
                if fails && query != "&encoder=software" {
                    assert!(
                        why.contains("encoding to MJPEG in software: /dev/video9"),
                        "{why}"
                    );
                } else {
                    assert_eq!(why, "", "{query}");
                }
            }
            Err(msg) => {
                let e = r
                    .err()
                    .unwrap_or_else(|| panic!("{query} opened"))
                    .to_string();
                assert!(e.contains(msg), "{query}: {e}");
            }
        }
        let asks = asked.load(Ordering::SeqCst) - before;
        assert_eq!(asks, usize::from(query != "&encoder=software"), "{query}");
    }
    // Not a raw format: recorded as it comes, so choosing an encoder is an error.
    let (_rig, open) = rig(vec![FormatInfo {
        fourcc: "MJPG".into(),
        description: "MJPEG".into(),
        sizes: vec![size(w, h, &[30.0])],
        encoder: None,
    }]);
    let src = V4l2Source::new(url("v4l2:///dev/video59?encoder=m2m").unwrap(), open);
    let e = src.open().await.err().unwrap().to_string();
    assert!(e.contains("apply to raw formats"), "{e}");
    assert!(url("v4l2:///dev/video0?encoder=gpu").is_err());
}

/// A hardware encoder's H.264 for a raw camera goes the camera-H.264 way: this one (the
/// machine has none; it gives x264's access units, one per picture, as an M2M encoder does)
/// numbers its frames and keeps the pictures' timestamps; the camera records H.264 with the
/// encoder's parameter sets, its presentation times from the pictures, and health names it.
#[tokio::test]
async fn a_raw_camera_records_an_m2m_encoders_h264() {
    if !have("ffmpeg") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let units: VecDeque<Vec<u8>> =
        x264_access_units(dir.path(), "160x120", 20, &["-g", "10"]).into();
    assert_eq!(units.len(), 20);

    struct Encoder {
        units: VecDeque<Vec<u8>>,
        tx: FrameSender,
        sequence: u32,
    }
    impl RawEncoder for Encoder {
        fn offer(&mut self, buf: Buffer) -> Offer {
            let Some(unit) = self.units.pop_front() else {
                return Offer::Back(buf.data);
            };
            let coded = Buffer {
                data: unit,
                sequence: self.sequence,
                timestamp: buf.timestamp,
            };
            self.sequence += 1;
            match self.tx.blocking_send(Ok(coded)) {
                Ok(()) => Offer::Back(buf.data),
                Err(_) => Offer::Gone,
            }
        }
        fn spare(&mut self) -> Option<Vec<u8>> {
            None
        }
    }
    let units = Mutex::new(Some(units));
    let hw: HwEncoders = Arc::new(move |mode: &Mode, tx, _dropped, _counters| {
        assert_eq!((mode.fourcc, mode.width, mode.height), (YUYV, 160, 120));
        let units = units.lock().unwrap().take()?;
        let enc = Encoder {
            units,
            tx,
            sequence: 0,
        };
        Some(Ok(HwEncoder {
            encoder: Box::new(enc),
            coded: H264,
            name: super::Encoder::M2m {
                driver: "test".into(),
                path: "/dev/video98".into(),
            },
        }))
    });
    let (rig, open) = rig(vec![raw_format("YUYV", 160, 120)]);
    let src = V4l2Source::new(url("v4l2:///dev/video60").unwrap(), open).with_hw(hw);
    let opening = tokio::spawn(src.open());
    tokio::time::sleep(Duration::from_millis(50)).await;
    let picture = raw_picture(YUYV, 160, 120, 320);
    for i in 0..20u32 {
        feed(
            &rig,
            Ok(Buffer {
                data: picture.clone(),
                sequence: i,
                timestamp: Duration::from_micros(1_000_000 + i as u64 * 33_333),
            }),
        );
    }
    let mut opened = opening.await.unwrap().unwrap();
    assert_eq!(opened.params.codec, crate::video::Codec::H264);
    let enc = src.encoding().unwrap();
    assert_eq!(enc.encoder, "v4l2-m2m:test (/dev/video98)");
    assert_eq!(enc.encoder_error, None);
    let mut frames = vec![];
    while frames.len() < 20 {
        frames.push(opened.frames.next().await.unwrap().unwrap());
    }
    assert_eq!(frames.iter().filter(|f| f.key).count(), 2);
    // The pictures' timestamps, 1/30 s apart, as presentation times (90 kHz).
    assert!(
        frames
            .windows(2)
            .all(|w| (w[1].pts - w[0].pts - 3000).abs() <= 3),
        "{:?}",
        frames.iter().map(|f| f.pts).collect::<Vec<_>>()
    );
    assert_eq!(src.dropped_frames(), 0);
}
