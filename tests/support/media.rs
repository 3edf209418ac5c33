//! Checks of what Eyrie wrote with ffmpeg/ffprobe, and clips made by ffmpeg for file sources.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use super::tools;

/// Decodes every frame of `file` with ffmpeg; panics on any error output.
pub fn assert_decodes(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "ffmpeg could not decode {} cleanly:\n{err}",
        file.display()
    );
}

/// `(duration in seconds, decoded frame count)` as ffprobe reports them.
pub fn probe(file: &Path) -> (f64, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "format=duration:stream=nb_read_frames",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dur = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    let frames = v["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (dur, frames)
}

/// A 640x360 15 fps MJPEG clip from ffmpeg, in the QuickTime `jpeg` sample entry, for a file
/// source to loop; `None` (skip) without ffmpeg.
pub fn mjpeg_clip(dir: &std::path::Path) -> Option<String> {
    if !tools::require(&["ffmpeg", "ffprobe"]) {
        return None;
    }
    let clip = dir.join("mjpeg.mp4");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=15",
        ])
        .args(["-frames:v", "60", "-c:v", "mjpeg", "-q:v", "5", "-f", "mov"])
        .arg(&clip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(format!("file://{}", clip.display()))
}
