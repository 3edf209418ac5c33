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

/// A ground-truth clip for motion detection: `seconds` of a still 640x360 scene at 10 fps with
/// sensor noise, MJPEG (baseline, standard Huffman tables, as RTP/JPEG carries) in MOV. A white
/// 80x80 box crosses it during each of `moving` (start, end) seconds and at no other time; with
/// `lighting`, the light steps up at 10 s and fades from 18 s to 26 s (which is not motion).
pub fn motion_clip(
    dir: &Path,
    name: &str,
    seconds: u32,
    moving: &[(f64, f64)],
    lighting: bool,
) -> std::path::PathBuf {
    let clip = dir.join(format!("{name}.mov"));
    let enable: Vec<String> = moving
        .iter()
        .map(|(a, b)| format!("between(t,{a},{b})"))
        .collect();
    let enable = if enable.is_empty() {
        "0".to_string()
    } else {
        enable.join("+")
    };
    let light = if lighting {
        ",eq=eval=frame:brightness='if(lt(t,10),0,if(lt(t,18),0.2,0.2-min(t-18,8)*0.04))'"
    } else {
        ""
    };
    let graph = format!(
        "[0]drawbox=x=40:y=40:w=160:h=100:c=0x303030:t=fill,\
         drawbox=x=400:y=200:w=180:h=120:c=0xa0a0a0:t=fill,noise=alls=6:allf=t{light}[bg];\
         [bg][1]overlay=x='mod(t*120\\,560)':y=140:enable='{enable}'[v]"
    );
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!("color=c=0x606060:s=640x360:r=10:d={seconds}"))
        .args(["-f", "lavfi", "-i"])
        .arg(format!("color=c=white:s=80x80:r=10:d={seconds}"))
        .args(["-filter_complex", &graph, "-map", "[v]"])
        .args(["-c:v", "mjpeg", "-q:v", "5", "-huffman", "default"])
        .args(["-pix_fmt", "yuvj420p", "-f", "mov"])
        .arg(&clip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    clip
}
