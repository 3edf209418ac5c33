//! Software MJPEG benchmark: what encoding one raw YUYV camera picture costs (Eyrie's encoder,
//! reading the driver's layout directly, src/capture/v4l2/encode.rs), at 640x360 and 1280x720,
//! against the named baseline of ffmpeg's `mjpeg` encoder (one thread) on the same pictures, in
//! the same run. Both are CPU time per picture; ffmpeg's is its encoding run less the same run
//! with `-c:v rawvideo` (reading and writing the pictures without encoding them).
//!
//! Run: `cargo bench --bench mjpeg` (needs ffmpeg). Results: docs/benchmarks.md.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use eyrie::capture::v4l2::encode::JpegEncoder;
use eyrie::capture::v4l2::{Mode, YUYV};

const FRAMES: usize = 60;
const ROUNDS: usize = 5;
const QUALITY: u8 = 75;
/// ffmpeg's quantiser that gives pictures of about the size quality 75 gives (printed below).
const FFMPEG_Q: &str = "4";

fn thread_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// ffmpeg's user + system CPU seconds for one run over the raw pictures, and its output size.
fn ffmpeg(raw: &Path, w: u32, h: u32, codec: &[&str], out: &Path) -> (f64, u64) {
    let o = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-nostdin",
            "-y",
            "-benchmark",
            "-threads",
            "1",
        ])
        .args(["-stream_loop", &(ROUNDS - 1).to_string()])
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuyv422",
            "-s",
            &format!("{w}x{h}"),
        ])
        .arg("-i")
        .arg(raw)
        .args(codec)
        .args(["-threads", "1", "-f", "rawvideo"])
        .arg(out)
        .output()
        .expect("ffmpeg runs");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let line = err
        .lines()
        .find(|l| l.starts_with("bench: utime="))
        .expect("ffmpeg -benchmark prints its times");
    let secs = |key: &str| -> f64 {
        let v = line.split(key).nth(1).unwrap();
        v[..v.find('s').unwrap()].parse().unwrap()
    };
    (
        secs("utime=") + secs("stime="),
        std::fs::metadata(out).unwrap().len(),
    )
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    println!("software MJPEG, quality {QUALITY}, {FRAMES} testsrc2 pictures x {ROUNDS} rounds");
    println!(
        "{:>9} | {:>12} | {:>12} | {:>14} | {:>11} | {:>11}",
        "size", "eyrie ms/pic", "ffmpeg ms/pic", "eyrie / ffmpeg", "eyrie KiB", "ffmpeg KiB"
    );
    for (w, h) in [(640u32, 360u32), (1280, 720)] {
        let raw = dir.path().join(format!("{w}x{h}.yuv"));
        let st = Command::new("ffmpeg")
            .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
            .arg(format!("testsrc2=size={w}x{h}:rate=30"))
            .args(["-frames:v", &FRAMES.to_string(), "-pix_fmt", "yuyv422"])
            .args(["-f", "rawvideo"])
            .arg(&raw)
            .status()
            .expect("ffmpeg makes the pictures");
        assert!(st.success());
        let data = std::fs::read(&raw).unwrap();
        let size = (w * h * 2) as usize;
        assert_eq!(data.len(), size * FRAMES);

        let mode = Mode {
            fourcc: YUYV,
            width: w,
            height: h,
            fps: 30,
        };
        let enc = JpegEncoder::new(&mode, QUALITY).unwrap();
        let mut out = Vec::with_capacity(size);
        let mut bytes = 0usize;
        enc.encode(&data[..size], &mut out).unwrap(); // warm up
        let t0 = thread_cpu();
        for _ in 0..ROUNDS {
            for pic in data.chunks_exact(size) {
                enc.encode(pic, &mut out).unwrap();
                bytes += out.len();
            }
        }
        let ours = (thread_cpu() - t0).as_secs_f64() / (FRAMES * ROUNDS) as f64;
        let ours_kib = bytes as f64 / (FRAMES * ROUNDS) as f64 / 1024.0;

        let n = (FRAMES * ROUNDS) as f64;
        let (enc_s, enc_bytes) = ffmpeg(
            &raw,
            w,
            h,
            &["-c:v", "mjpeg", "-q:v", FFMPEG_Q, "-f", "mjpeg"],
            &dir.path().join("out.mjpeg"),
        );
        let (copy_s, _) = ffmpeg(
            &raw,
            w,
            h,
            &["-c:v", "rawvideo"],
            &dir.path().join("out.yuv"),
        );
        let theirs = ((enc_s - copy_s) / n).max(1e-9);
        println!(
            "{:>9} | {:>12.2} | {:>12.2} | {:>14.2} | {:>11.1} | {:>11.1}",
            format!("{w}x{h}"),
            ours * 1000.0,
            theirs * 1000.0,
            ours / theirs,
            ours_kib,
            enc_bytes as f64 / n / 1024.0
        );
    }
}
