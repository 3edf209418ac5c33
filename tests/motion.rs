//! Eyrie's own motion detection against ground truth: clips made by ffmpeg with motion only in
//! known intervals (and one with noise and lighting changes but no motion), served as MJPEG and
//! as H.264 (a key frame a second, the only pictures Eyrie decodes) by the GStreamer RTSP server,
//! recorded by a real eyrie with motion detection on. Every motion interval must be overlapped
//! by an event listed by the events API, and no event may fall outside them.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::*;

/// The clip's length and where it moves (seconds from its start).
const CLIP_S: u32 = 30;
const MOVING: [(f64, f64); 2] = [(6.0, 11.0), (18.0, 23.0)];
/// Slack for where an event may begin or end around an interval: the RTSP start's latency,
/// one sampled picture (250 ms, or the H.264 GOP below), a frame of the clip.
const SLACK_S: f64 = 1.0;
/// The H.264 clips' GOP in frames: a key frame a second at the clips' 10 fps.
const H264_GOP: &str = "10";

/// One motion event as the node lists it: start and end, milliseconds since the epoch.
#[derive(Debug, Clone)]
struct Event {
    start_ms: i64,
    end_ms: Option<i64>,
    source: String,
    thumbnail_url: Option<String>,
}

/// The motion events of `camera` in the last hour, from the events API.
fn events(e: &Eyrie, camera: &str) -> Vec<Event> {
    let v = e.get(&format!(
        "/api/recordings/events?camera={camera}&kind=motion"
    ));
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|ev| Event {
            start_ms: ev["start_ms"].as_i64().unwrap(),
            end_ms: ev["end_ms"].as_i64(),
            source: ev["source"].as_str().unwrap().to_string(),
            thumbnail_url: ev["thumbnail_url"].as_str().map(String::from),
        })
        .collect()
}

/// When the camera's recording began: its first segment's start.
fn recording_start(e: &Eyrie, camera: &str) -> Option<i64> {
    e.recordings(camera)["segments"]
        .as_array()?
        .iter()
        .filter_map(|s| s["start_ms"].as_i64())
        .min()
}

fn add_camera(e: &Eyrie, id: &str, url: &str) {
    let body = json!({
        "id": id, "name": id, "source": url,
        "motion": { "enabled": true, "sensitivity": 50, "min_duration_ms": 1000 },
    });
    let cam = e.add_camera(&body.to_string());
    assert_eq!(cam["motion"]["enabled"], true, "{cam}");
}

/// Precision and recall of `events` against `moving`, both relative to `origin_ms`: an event is
/// right when it overlaps a motion interval (widened by [`SLACK_S`]), an interval is found when
/// an event overlaps it.
fn score(events: &[Event], origin_ms: i64, moving: &[(f64, f64)]) -> (usize, usize, usize) {
    let s = |ms: i64| (ms - origin_ms) as f64 / 1000.0;
    let overlaps = |ev: &Event, (a, b): (f64, f64)| {
        let end = ev.end_ms.map_or(f64::MAX, s);
        s(ev.start_ms) <= b + SLACK_S && end >= a - SLACK_S
    };
    let right = events
        .iter()
        .filter(|ev| moving.iter().any(|m| overlaps(ev, *m)))
        .count();
    let found = moving
        .iter()
        .filter(|m| events.iter().any(|ev| overlaps(ev, **m)))
        .count();
    (right, found, events.len())
}

#[test]
fn motion_events_match_the_ground_truth() {
    ground_truth(false);
}

/// The same clips encoded to H.264 as they play: only the key frames are decoded.
#[test]
fn h264_motion_events_match_the_ground_truth() {
    ground_truth(true);
}

fn ground_truth(h264: bool) {
    if !rtsp::available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let moving = media::motion_clip(dir.path(), "moving", CLIP_S, &MOVING, false);
    let still = media::motion_clip(dir.path(), "still", CLIP_S, &[], true);
    let (clip, codec) = if h264 {
        ("--h264-clip", "h264")
    } else {
        ("--clip", "mjpeg")
    };
    let server = RtspServer::start(
        free_port(),
        &[
            "--gop",
            H264_GOP,
            clip,
            &format!("moving={}", moving.display()),
            clip,
            &format!("still={}", still.display()),
        ],
    );
    let e = Eyrie::start("", &[]);
    // Bad settings are refused with the key named, and nothing is added.
    let (s, v) = e.request(
        "POST",
        "/api/cameras",
        Some(
            &json!({"name": "x", "source": server.url("moving"),
                    "motion": {"enabled": true, "sensitivity": 0}})
            .to_string(),
        ),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("motion.sensitivity"), "{v}");
    let (s, v) = e.request(
        "POST",
        "/api/cameras",
        Some(
            &json!({"name": "x", "source": server.url("moving"),
                    "motion": {"enabled": true, "ignore": ["x"]}})
            .to_string(),
        ),
    );
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("motion.ignore"), "{v}");
    assert_eq!(e.get("/api/cameras").as_array().unwrap().len(), 0);

    add_camera(&e, "moving", &server.url("moving"));
    add_camera(&e, "still", &server.url("still"));
    let started = Instant::now();
    let mut origins = [None, None];
    e.wait_until("records both clips", Duration::from_secs(20), || {
        origins = [recording_start(&e, "moving"), recording_start(&e, "still")];
        origins.iter().all(Option::is_some)
    });
    let [Some(moving_0), Some(still_0)] = origins else {
        unreachable!()
    };
    // The clips play once (the server's stream then ends); events end 3 s after the last motion.
    let rest = Duration::from_secs(CLIP_S as u64 - 1).saturating_sub(started.elapsed());
    std::thread::sleep(rest);

    let before = |t0: i64| move |ev: &Event| ev.start_ms < t0 + CLIP_S as i64 * 1000;
    let found: Vec<Event> = events(&e, "moving")
        .into_iter()
        .filter(before(moving_0))
        .collect();
    let (right, hit, n) = score(&found, moving_0, &MOVING);
    let rel = |ms: i64| (ms - moving_0) as f64 / 1000.0;
    for ev in &found {
        eprintln!(
            "{codec} moving: event {:.2} s to {:?} s",
            rel(ev.start_ms),
            ev.end_ms.map(rel),
        );
    }
    eprintln!(
        "{codec} motion ground truth: precision {right}/{n}, recall {hit}/{}",
        MOVING.len()
    );
    assert_eq!(hit, MOVING.len(), "every interval found: {found:?}");
    assert_eq!(right, n, "no event outside the intervals: {found:?}");
    assert!(n <= 2 * MOVING.len(), "intervals not split up: {found:?}");
    assert!(
        found.iter().all(|ev| ev.end_ms.is_some()),
        "every event ended: {found:?}"
    );
    // Each is Eyrie's own, with the picture at its start as thumbnail.
    for ev in &found {
        assert_eq!(ev.source, "eyrie", "{ev:?}");
        let url = ev.thumbnail_url.as_deref().expect("a thumbnail");
        let jpeg = std::fs::read(e.download(url, "thumbnail.jpg")).unwrap();
        assert!(jpeg.starts_with(&[0xFF, 0xD8, 0xFF]), "{ev:?}");
    }

    let false_alarms: Vec<Event> = events(&e, "still")
        .into_iter()
        .filter(before(still_0))
        .collect();
    eprintln!(
        "{codec} still scene with noise and lighting: {} events",
        false_alarms.len()
    );
    assert!(false_alarms.is_empty(), "{false_alarms:?}");
    for camera in ["moving", "still"] {
        let status: Value = e.camera_status(camera);
        assert_eq!(status["codec"], codec, "{status}");
        assert_eq!(status["state"], "recording", "{status}");
        // Every picture looked at was read: a key frame each second for H.264.
        let m = &status["motion"];
        assert!(m["checked"].as_u64().unwrap() >= 20, "{status}");
        assert_eq!(m["unreadable"], 0, "{status}");
    }
}
