//! The recorder end to end: a real GStreamer RTSP server, real eyrie processes, and ffmpeg
//! decoding what Eyrie wrote.

mod support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const TEN_SECOND_SEGMENTS: &str = "[recording]\nsegment_seconds = 10\n";
/// One frame at the test server's 15 fps.
const FRAME_S: f64 = 1.0 / 15.0;

fn ms(v: &Value) -> i64 {
    v.as_i64().unwrap()
}

/// Checks one closed segment: it decodes, and ffprobe agrees with the index on duration and
/// frame count.
fn check_segment(e: &Eyrie, seg: &Value, name: &str) {
    let file = e.download(seg["url"].as_str().unwrap(), name);
    assert_decodes(&file);
    let (dur, frames) = probe(&file);
    let want = seg["duration_s"].as_f64().unwrap();
    assert!(
        (dur - want).abs() <= FRAME_S,
        "{name}: ffprobe {dur} s, index {want} s"
    );
    assert_eq!(
        frames,
        seg["frames"].as_u64().unwrap(),
        "{name}: frame count"
    );
}

/// Records from `mount` until two segments are closed, then checks every closed segment and a
/// view spanning all of them.
fn record_and_check(codec: &str) {
    if !rtsp::available() {
        return;
    }
    let rtsp = RtspServer::start(free_port(), &[]);
    let (e, segs) = record_and_check_from(codec, &rtsp.url(codec));
    // Still frames are for MJPEG recordings only.
    let at = ms(&segs[0]["start_ms"]) + 1000;
    let (status, v) = e.request(
        "GET",
        &format!("/api/recordings/cam-{codec}/frame.jpg?at={at}"),
        None,
    );
    assert_eq!(status, 400, "{v}");
    let (status, v) = e.request(
        "GET",
        &format!(
            "/api/recordings/cam-{codec}/replay.mjpeg?start={at}&end={}",
            at + 1000
        ),
        None,
    );
    assert_eq!(status, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("MJPEG"), "{v}");
}

fn record_and_check_from(codec: &str, source: &str) -> (Eyrie, Vec<Value>) {
    let e = Eyrie::start(TEN_SECOND_SEGMENTS, &[]);
    let cam = e.add_camera(&format!(
        r#"{{"id": "cam-{codec}", "name": "Test {codec}", "source": "{source}"}}"#
    ));
    let id = cam["id"].as_str().unwrap();
    e.wait_until("has closed two segments", Duration::from_secs(60), || {
        e.closed_segments(id).len() >= 2
    });
    let segs = e.closed_segments(id);
    for (i, seg) in segs.iter().enumerate() {
        assert_eq!(seg["codec"], codec);
        assert_eq!(
            (seg["width"].as_u64(), seg["height"].as_u64()),
            (Some(640), Some(360))
        );
        assert!(seg["key_frames"].as_u64().unwrap() >= 1);
        check_segment(&e, seg, &format!("{codec}-{i}.mp4"));
    }
    // One file for the whole closed span, assembled from the segments on the fly.
    let (start, end) = (
        ms(&segs[0]["start_ms"]),
        ms(&segs.last().unwrap()["end_ms"]),
    );
    let view = e.download(
        &format!("/api/recordings/{id}/view.mp4?start={start}&end={end}"),
        &format!("{codec}-view.mp4"),
    );
    assert_decodes(&view);
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=codec_name", "-of", "csv=p=0"])
        .arg(&view)
        .output()
        .unwrap();
    let ffmpeg_name = if codec == "h265" { "hevc" } else { codec };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), ffmpeg_name);
    let (dur, frames) = probe(&view);
    let want: f64 = segs.iter().map(|s| s["duration_s"].as_f64().unwrap()).sum();
    let want_frames: u64 = segs.iter().map(|s| s["frames"].as_u64().unwrap()).sum();
    assert!(
        (dur - want).abs() <= FRAME_S,
        "view: ffprobe {dur} s, segments {want} s"
    );
    assert_eq!(frames, want_frames, "view frame count");
    // Health reports the camera recording with a bitrate.
    let status = e.camera_status(id);
    assert_eq!(status["state"], "recording", "{status}");
    assert!(status["bitrate_bps"].as_u64().unwrap() > 0);
    (e, segs)
}

#[test]
fn records_h264_from_rtsp() {
    record_and_check("h264");
}

/// MJPEG is kept as it comes (no re-encoding): recorded and played back.
#[test]
fn records_mjpeg_without_re_encoding() {
    let dir = tempfile::tempdir().unwrap();
    let Some(source) = mjpeg_clip(dir.path()) else {
        return;
    };
    let (e, segs) = record_and_check_from("mjpeg", &source);
    // A recorded picture, as stored, for an <img>.
    let at = ms(&segs[1]["start_ms"]) + 2500;
    let jpeg = e.download(
        &format!("/api/recordings/cam-mjpeg/frame.jpg?at={at}"),
        "frame.jpg",
    );
    assert_decodes(&jpeg);
    assert!(std::fs::read(&jpeg).unwrap().starts_with(&[0xFF, 0xD8]));
    let get = |q: &str| {
        e.request(
            "GET",
            &format!("/api/recordings/cam-mjpeg/frame.jpg{q}"),
            None,
        )
        .0
    };
    assert_eq!(get("?at=yesterday-ish"), 400);
    assert_eq!(get(""), 400);
    assert_eq!(get("?at=2001-01-01T00:00:00Z"), 404);
    check_replay(&e, &segs, dir.path());
}

/// The parts of a `multipart/x-mixed-replace` MJPEG response (live or replay), read one at a
/// time: every line ends in CRLF, every part is an `image/jpeg` with its `Content-Length`.
struct MjpegParts {
    r: std::io::BufReader<Box<dyn std::io::Read + Send + Sync>>,
    boundary: String,
}

impl MjpegParts {
    fn new(resp: ureq::Response) -> Self {
        let ct = resp.header("content-type").unwrap().to_string();
        let boundary = ct
            .strip_prefix("multipart/x-mixed-replace; boundary=")
            .unwrap_or_else(|| panic!("content type {ct}"))
            .to_string();
        MjpegParts {
            r: std::io::BufReader::new(resp.into_reader()),
            boundary,
        }
    }

    /// A line without its CRLF; None at the end of the response.
    fn line(&mut self) -> Option<String> {
        let mut l = String::new();
        let n = std::io::BufRead::read_line(&mut self.r, &mut l).unwrap();
        assert!(n == 0 || l.ends_with("\r\n"), "line {l:?}");
        (n > 0).then(|| l.trim_end().to_string())
    }

    /// The next part's `X-Timestamp` (when it has one) and JPEG; None at the end.
    fn next_part(&mut self) -> Option<(Option<i64>, Vec<u8>)> {
        let first = self.line()?;
        assert_eq!(first, format!("--{}", self.boundary));
        let (mut kind, mut len, mut ts) = (None, None, None);
        loop {
            let h = self.line().expect("part headers");
            if h.is_empty() {
                break;
            }
            let (k, v) = h.split_once(": ").unwrap();
            match k.to_ascii_lowercase().as_str() {
                "content-type" => kind = Some(v.to_string()),
                "content-length" => len = Some(v.parse::<usize>().unwrap()),
                "x-timestamp" => ts = Some(v.parse::<i64>().unwrap()),
                _ => {}
            }
        }
        assert_eq!(kind.as_deref(), Some("image/jpeg"));
        let mut jpeg = vec![0u8; len.expect("Content-Length")];
        std::io::Read::read_exact(&mut self.r, &mut jpeg).unwrap();
        assert_eq!(self.line().as_deref(), Some(""));
        Some((ts, jpeg))
    }
}

/// The parts of a replay, read to its end: each part's `X-Timestamp`, its JPEG, and when it
/// arrived.
fn replay_parts(resp: ureq::Response) -> Vec<(i64, Vec<u8>, Instant)> {
    assert_eq!(resp.header("x-codec"), Some("jpeg"));
    let mut parts = MjpegParts::new(resp);
    let mut out = Vec::new();
    while let Some((ts, jpeg)) = parts.next_part() {
        out.push((ts.expect("X-Timestamp"), jpeg, Instant::now()));
    }
    out
}

/// Recorded MJPEG replayed for an `<img>`: one decodable JPEG per part, each with its recorded
/// time, sent at the recorded pace, ending at the range's end (also across a segment cut); a
/// client that goes away gives its replay slot back; bad ranges are clear errors.
fn check_replay(e: &Eyrie, segs: &[Value], dir: &std::path::Path) {
    let replay = |start: i64, end: i64| {
        ureq::get(&e.url(&format!(
            "/api/recordings/cam-mjpeg/replay.mjpeg?start={start}&end={end}"
        )))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap()
    };
    // Two seconds in the middle of a segment, then two across the cut between the first two.
    let mid = ms(&segs[0]["start_ms"]) + 3000;
    let cut = ms(&segs[0]["end_ms"]);
    for (name, start, end) in [("middle", mid, mid + 2000), ("cut", cut - 1000, cut + 1000)] {
        let asked = Instant::now();
        let parts = replay_parts(replay(start, end));
        assert!(
            (25..=35).contains(&parts.len()),
            "{name}: {} pictures in 2 s of 15 fps",
            parts.len()
        );
        let times: Vec<i64> = parts.iter().map(|p| p.0).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{name}: {times:?}");
        assert!(
            times[0] <= start && times[0] > start - 200 && *times.last().unwrap() < end,
            "{name}: {start}..{end} gave {times:?}"
        );
        // Paced by the recorded times: the last picture comes no sooner than it was recorded
        // after the first (a slow machine only makes it later).
        let recorded = Duration::from_millis((times.last().unwrap() - times[0]) as u64);
        let sent = parts.last().unwrap().2 - parts[0].2;
        assert!(
            sent + Duration::from_millis(100) >= recorded,
            "{name}: sent within {sent:?}, recorded over {recorded:?}"
        );
        assert!(asked.elapsed() >= recorded);
        for (i, p) in [(0, &parts[0]), (parts.len() - 1, parts.last().unwrap())] {
            let file = dir.join(format!("replay-{name}-{i}.jpg"));
            std::fs::write(&file, &p.1).unwrap();
            assert_decodes(&file);
        }
    }

    // At most 8 replays at once; one whose client goes away frees its place.
    let (first, last) = (
        ms(&segs[0]["start_ms"]),
        ms(&segs.last().unwrap()["end_ms"]),
    );
    let open: Vec<ureq::Response> = (0..8).map(|_| replay(first, last)).collect();
    let status = |path: &str| e.request("GET", path, None);
    let whole = format!("/api/recordings/cam-mjpeg/replay.mjpeg?start={first}&end={last}");
    let (s, v) = status(&whole);
    assert_eq!(s, 503, "{v}");
    assert!(v["error"].as_str().unwrap().contains("replays"), "{v}");
    drop(open);
    e.wait_until(
        "frees the replays of clients that left",
        Duration::from_secs(10),
        || {
            ureq::get(&e.url(&whole))
                .timeout(Duration::from_secs(30))
                .call()
                .is_ok()
        },
    );

    let q = |query: &str| status(&format!("/api/recordings/cam-mjpeg/replay.mjpeg{query}"));
    for (query, want, says) in [
        ("", 400, "start and end"),
        (&format!("?start={first}") as &str, 400, "start and end"),
        (&format!("?start=yesterday-ish&end={last}"), 400, "start"),
        (&format!("?start={last}&end={first}"), 400, "after start"),
        (
            &format!("?start={first}&end={}", first + 7 * 3_600_000),
            400,
            "6 hours",
        ),
        (
            "?start=2001-01-01T00:00:00Z&end=2001-01-01T00:01:00Z",
            404,
            "no recordings",
        ),
    ] {
        let (s, v) = q(query);
        assert_eq!(s, want, "{query}: {v}");
        assert!(v["error"].as_str().unwrap().contains(says), "{query}: {v}");
    }
    let (s, _) = status(&format!(
        "/api/recordings/nope/replay.mjpeg?start={first}&end={last}"
    ));
    assert_eq!(s, 404);
    // Like every recording: for logged-in users, peers and media tokens only.
    let anon = json_request("GET", &e.anon_url(&whole), None).unwrap();
    assert_eq!(anon.0, 401, "{}", anon.1);
}

/// An MJPEG camera's live view is `multipart/x-mixed-replace`, one decodable JPEG per part.
#[test]
fn mjpeg_live_is_one_jpeg_per_part() {
    let dir = tempfile::tempdir().unwrap();
    let Some(source) = mjpeg_clip(dir.path()) else {
        return;
    };
    let e = Eyrie::start(TEN_SECOND_SEGMENTS, &[]);
    e.add_camera(&format!(
        r#"{{"id": "mj", "name": "MJPEG", "source": "{source}"}}"#
    ));
    e.wait_until("streams", Duration::from_secs(20), || {
        e.camera_status("mj")["frames"].as_u64().unwrap_or(0) > 5
    });
    let resp = ureq::get(&e.url("/api/cameras/mj/live"))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap();
    let mut parts = MjpegParts::new(resp);
    for i in 0..20 {
        let (_, jpeg) = parts.next_part().expect("the live stream goes on");
        let file = dir.path().join(format!("part{i}.jpg"));
        std::fs::write(&file, &jpeg).unwrap();
        assert_decodes(&file);
    }
    assert_eq!(e.camera_status("mj")["viewers"], 1);
}

#[test]
fn records_h265_from_rtsp() {
    record_and_check("h265");
}

/// The RTSP test server on a free port and a node recording its `/h264` as camera `cam`.
fn recording_cam_from_rtsp() -> (u16, RtspServer, Eyrie) {
    let port = free_port();
    let rtsp = RtspServer::start(port, &[]);
    let e = Eyrie::start(TEN_SECOND_SEGMENTS, &[]);
    e.add_camera(&format!(
        r#"{{"id": "cam", "name": "Cam", "source": "{}"}}"#,
        rtsp.url("h264")
    ));
    (port, rtsp, e)
}

#[test]
fn reconnects_after_the_camera_restarts_and_shows_the_gap() {
    if !rtsp::available() {
        return;
    }
    let (port, mut rtsp, e) = recording_cam_from_rtsp();
    e.wait_until("records", Duration::from_secs(30), || {
        e.camera_status("cam")["frames"].as_u64().unwrap_or(0) > 45
    });
    rtsp.stop();
    e.wait_until(
        "notices the camera is gone",
        Duration::from_secs(30),
        || e.camera_status("cam")["state"] == "error",
    );
    std::thread::sleep(Duration::from_secs(2));
    let _rtsp = RtspServer::start(port, &[]);
    e.wait_until("records a second run", Duration::from_secs(60), || {
        let runs = e.recordings("cam")["runs"].as_array().unwrap().len();
        runs >= 2 && e.camera_status("cam")["state"] == "recording"
    });
    let rec = e.recordings("cam");
    let runs = rec["runs"].as_array().unwrap();
    assert!(
        ms(&runs[1]["start_ms"]) - ms(&runs[0]["end_ms"]) >= 2000,
        "the outage shows as a gap: {runs:?}"
    );
    assert!(e.camera_status("cam")["reconnects"].as_u64().unwrap() >= 1);
}

/// A camera that drops out for 2 s, twenty times: each time frames flow again within 2 s of
/// its RTSP server being back (the recorder probes a camera that is down and reconnects as
/// soon as it answers, and a run that delivered frames does not grow the backoff).
#[test]
fn a_flapping_camera_is_back_within_two_seconds_every_time() {
    if !rtsp::available() {
        return;
    }
    let (port, mut rtsp, e) = recording_cam_from_rtsp();
    let frames = || e.camera_status("cam")["frames"].as_u64().unwrap_or(0);
    e.wait_until("records", Duration::from_secs(30), || frames() > 15);
    let mut took = Vec::new();
    for _ in 0..20 {
        rtsp.stop();
        std::thread::sleep(Duration::from_secs(2));
        let before = frames();
        rtsp = RtspServer::start(port, &[]);
        let back = Instant::now();
        e.wait_until("records again", Duration::from_secs(30), || {
            std::thread::sleep(Duration::from_millis(50));
            frames() > before
        });
        took.push(back.elapsed());
    }
    let worst = took.iter().max().unwrap();
    let mean = took.iter().sum::<Duration>() / took.len() as u32;
    eprintln!("frames back after a restart: mean {mean:?}, worst {worst:?}");
    assert!(
        *worst <= Duration::from_secs(2),
        "frames came back after {took:?}"
    );
}

#[test]
fn kill_9_loses_at_most_two_seconds() {
    if !rtsp::available() {
        return;
    }
    let rtsp = RtspServer::start(free_port(), &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut e = Eyrie::start_in(dir.path(), TEN_SECOND_SEGMENTS, &[]);
    e.add_camera(&format!(
        r#"{{"id": "cam", "name": "Cam", "source": "{}"}}"#,
        rtsp.url("h264")
    ));
    // Kill mid-segment: after one segment closed and ~5 s into the next.
    e.wait_until("closes a segment", Duration::from_secs(40), || {
        !e.closed_segments("cam").is_empty()
    });
    std::thread::sleep(Duration::from_secs(5));
    let before = e.recordings("cam");
    let last_seen = before["segments"].as_array().unwrap().last().unwrap()["end_ms"].clone();
    e.kill9();
    let killed_at = jiff_now_ms();

    let e = Eyrie::start_in(dir.path(), TEN_SECOND_SEGMENTS, &[]);
    assert!(e.log().contains("recovered: 1"), "log:\n{}", e.log());
    let rec = e.recordings("cam");
    let segs: Vec<&Value> = rec["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| ms(&s["end_ms"]) <= killed_at)
        .collect();
    let recovered: Vec<&&Value> = segs.iter().filter(|s| s["state"] == "recovered").collect();
    assert_eq!(recovered.len(), 1, "{segs:?}");
    let lost = killed_at - ms(&recovered[0]["end_ms"]);
    assert!(
        lost <= 2000,
        "lost {lost} ms of video (kill at {killed_at}, index had {last_seen})"
    );
    for (i, seg) in segs.iter().enumerate() {
        check_segment(&e, seg, &format!("after-kill-{i}.mp4"));
    }
}

fn jiff_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
fn retention_keeps_recordings_within_a_tiny_budget() {
    // The demo camera writes about 32 kB/s; a 10 s segment is ~0.32 MB.
    let budget = 700_000u64;
    let e = Eyrie::start(
        &format!("[recording]\nsegment_seconds = 10\n[storage]\nbudget = {budget}\nmin_free = 0\n"),
        &["--demo"],
    );
    e.wait_until(
        "has deleted its first segments",
        Duration::from_secs(90),
        || {
            let rec = e.recordings("demo");
            let segs = rec["segments"].as_array().unwrap();
            segs.first().is_some_and(|s| s["id"].as_u64() != Some(1))
                && segs.iter().filter(|s| s["state"] == "closed").count() >= 1
        },
    );
    let health = e.get("/api/health");
    let used = health["disk"]["recordings_bytes"].as_u64().unwrap();
    let largest = e.recordings("demo")["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["bytes"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        used <= budget + largest,
        "{used} bytes used, budget {budget}"
    );
    let on_disk: u64 = walk(&e.dir.join("data/recordings"));
    assert!(on_disk <= budget + largest, "{on_disk} bytes on disk");
    // Recording goes on.
    let frames = health["cameras"][0]["frames"].as_u64().unwrap();
    e.wait_until("keeps recording", Duration::from_secs(10), || {
        e.get("/api/health")["cameras"][0]["frames"]
            .as_u64()
            .unwrap()
            > frames + 15
    });
}

fn walk(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let m = entry.metadata().unwrap();
        total += if m.is_dir() {
            walk(&entry.path())
        } else {
            m.len()
        };
    }
    total
}

#[test]
fn live_stream_starts_at_a_key_frame_and_decodes() {
    if !tools::require(&["ffmpeg"]) {
        return;
    }
    let e = Eyrie::start(TEN_SECOND_SEGMENTS, &["--demo"]);
    e.wait_until("streams", Duration::from_secs(20), || {
        e.camera_status("demo")["frames"].as_u64().unwrap_or(0) > 20
    });
    let resp = ureq::get(&e.url("/api/cameras/demo/live"))
        .timeout(Duration::from_secs(30))
        .call()
        .unwrap();
    assert_eq!(resp.content_type(), "video/mp4");
    assert!(resp.header("x-codec").unwrap().starts_with("avc1."));
    let mut reader = resp.into_reader();
    let mut got = Vec::new();
    let start = Instant::now();
    let mut buf = [0u8; 16384];
    while start.elapsed() < Duration::from_secs(3) {
        let n = std::io::Read::read(&mut reader, &mut buf).unwrap();
        assert!(n > 0, "live stream ended early");
        got.extend_from_slice(&buf[..n]);
    }
    drop(reader);
    let file = e.dir.join("live.mp4");
    std::fs::write(&file, &got).unwrap();
    // The capture may end mid-fragment; ffmpeg must decode everything complete without error.
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let bad: Vec<&str> = err
        .lines()
        .filter(|l| {
            !l.contains("stream 0, offset") && !l.contains("Invalid data") && !l.contains("trun")
        })
        .collect();
    assert!(
        out.status.success() || bad.is_empty(),
        "live decode errors:\n{err}"
    );
    let (_, frames) = probe(&file);
    assert!(frames >= 30, "only {frames} frames in 3 s of live video");
    assert!(e.camera_status("demo")["viewers"].as_u64().is_some());
}

#[test]
fn authenticates_and_records_over_udp_too() {
    if !rtsp::available() {
        return;
    }
    let rtsp = RtspServer::start(
        free_port(),
        &["--user", "viewer", "--password", "pa:ss w@rd"],
    );
    let e = Eyrie::start(TEN_SECOND_SEGMENTS, &[]);
    let url = rtsp.url("h264");
    let good = url.replace("rtsp://", "rtsp://viewer:pa%3Ass%20w%40rd@");
    e.add_camera(&format!(
        r#"{{"id": "in-url", "name": "a", "source": "{good}"}}"#
    ));
    // gst-rtsp-server 1.22 can abort (gst_rtsp_media_get_rates assertion) when a second client
    // PLAYs shared media that is still being prepared: the others connect once it streams.
    e.wait_until("records the first camera", Duration::from_secs(20), || {
        e.camera_status("in-url")["frames"].as_u64().unwrap_or(0) > 0
    });
    e.add_camera(&format!(
        r#"{{"id": "fields", "name": "b", "source": "{url}", "username": "viewer", "password": "pa:ss w@rd", "transport": "udp"}}"#
    ));
    e.add_camera(&format!(
        r#"{{"id": "wrong", "name": "c", "source": "{url}", "username": "viewer", "password": "nope"}}"#
    ));
    e.wait_until(
        "records both authenticated cameras",
        Duration::from_secs(40),
        || {
            ["in-url", "fields"]
                .iter()
                .all(|id| e.camera_status(id)["frames"].as_u64().unwrap_or(0) > 30)
        },
    );
    let st = e.camera_status("wrong");
    assert_eq!(st["state"], "error", "{st}");
    assert!(
        st["last_error"].as_str().unwrap().contains("Unauthorized"),
        "{st}"
    );
    assert_eq!(e.get("/api/cameras/fields")["transport"], "udp");
}

/// A small tmpfs mounted for one test (needs root), unmounted when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    /// Mounts `bytes` of tmpfs at `at`; None (with the reason printed) when not root outside CI.
    fn mount(at: &std::path::Path, bytes: u64) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "eyrie-test"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            tools::unmet("mounting a small tmpfs needs root");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn a_full_disk_frees_the_oldest_and_recording_goes_on() {
    if !rtsp::available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    // Nothing but the disk's size limits recordings: the writer hits ENOSPC.
    let Some(_fs) = Tmpfs::mount(&tmp.path().join("data"), 8 << 20) else {
        return;
    };
    let server = RtspServer::start(free_port(), &["--pattern", "snow"]);
    let mut e = Eyrie::start_in(
        tmp.path(),
        "[recording]\nsegment_seconds = 10\n[storage]\nmin_free = 0\n",
        &[],
    );
    e.add_camera(&format!(
        r#"{{"id": "cam", "name": "Cam", "source": "{}"}}"#,
        server.url("h264")
    ));
    e.wait_until(
        "fills the disk and deletes its oldest segments",
        Duration::from_secs(240),
        || {
            let segs = e.recordings("cam")["segments"].as_array().unwrap().clone();
            segs.first().is_some_and(|s| s["id"].as_u64() != Some(1))
        },
    );
    assert!(
        e.log().contains("disk full"),
        "the log says why: {}",
        e.log()
    );
    let frames = e.camera_status("cam")["frames"].as_u64().unwrap();
    e.wait_until("keeps recording", Duration::from_secs(20), || {
        e.camera_status("cam")["frames"].as_u64().unwrap() > frames + 30
    });
    assert!(e.alive());
    // What is indexed is there and plays.
    let segs = e.closed_segments("cam");
    assert!(!segs.is_empty());
    for (i, seg) in segs.iter().enumerate() {
        let file = e.download(seg["url"].as_str().unwrap(), &format!("../full-{i}.mp4"));
        assert_decodes(&file);
    }
}
