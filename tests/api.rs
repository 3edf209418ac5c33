//! The API's contract: camera management, credentials never returned, and bad input answered
//! with a clear JSON 4xx while nothing is written and the process stays up.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn cameras_crud_and_credentials_are_write_only() {
    let e = Eyrie::start("", &[]);
    let cam = e.add_camera(
        r#"{"name": "Front Door", "source": "rtsp://admin:s3cret@127.0.0.1:9/stream", "enabled": false}"#,
    );
    assert_eq!(cam["id"], "front-door");
    assert_eq!(cam["source"], "rtsp://127.0.0.1:9/stream");
    assert_eq!(cam["has_credentials"], true);
    assert_eq!(cam["status"]["state"], "disabled");
    let again = e.add_camera(r#"{"name": "Front door", "source": "rtsp://127.0.0.1:9/b"}"#);
    assert_eq!(again["id"], "front-door-2");
    for path in ["/api/cameras", "/api/cameras/front-door", "/api/health"] {
        let (_, body) = e.request("GET", path, None);
        let text = body.to_string();
        assert!(
            !text.contains("s3cret") && !text.contains("admin"),
            "{path} leaks: {text}"
        );
    }
    let (s, v) = e.request(
        "PUT",
        "/api/cameras/front-door",
        Some(r#"{"name": "Porch", "retention_days": 7}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["name"], "Porch");
    assert_eq!(v["retention_days"], 7);
    assert_eq!(v["has_credentials"], true);
    // The camera's ONVIF service for its events: stored, its credentials write-only.
    let (s, v) = e.request(
        "PUT",
        "/api/cameras/front-door",
        Some(
            r#"{"onvif": {"xaddr": "http://127.0.0.1:9/onvif/device_service", "events": true,
                "username": "onvif-user", "password": "onvif-s3cret"}}"#,
        ),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["onvif"],
        serde_json::json!({"xaddr": "http://127.0.0.1:9/onvif/device_service", "events": true,
            "quiet_seconds": 30, "has_credentials": true})
    );
    assert!(!v.to_string().contains("onvif-"), "{v}");
    let (s, v) = e.request(
        "PUT",
        "/api/cameras/front-door",
        Some(r#"{"onvif": {"quiet_seconds": 120, "username": "", "password": ""}}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["onvif"]["quiet_seconds"], 120);
    assert_eq!(v["onvif"]["has_credentials"], false);
    assert_eq!(v["onvif"]["events"], true);
    let (s, v) = e.request(
        "PUT",
        "/api/cameras/front-door",
        Some(r#"{"onvif": {"xaddr": ""}}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert!(v.get("onvif").is_none(), "{v}");
    // Enabling starts capture: the address has nothing listening, so it ends in an error state.
    let (s, _) = e.request(
        "PUT",
        "/api/cameras/front-door-2",
        Some(r#"{"enabled": true}"#),
    );
    assert_eq!(s, 200);
    e.wait_until(
        "reports the connection error",
        Duration::from_secs(20),
        || {
            let st = e.camera_status("front-door-2");
            st["state"] == "error" && st["last_error"].as_str().is_some_and(|m| !m.is_empty())
        },
    );
    let (s, v) = e.request("DELETE", "/api/cameras/front-door", None);
    assert_eq!(s, 400, "deleting must say what happens to recordings: {v}");
    let (s, _) = e.request(
        "DELETE",
        "/api/cameras/front-door?keep_recordings=false",
        None,
    );
    assert_eq!(s, 204);
    let (s, _) = e.request("GET", "/api/cameras/front-door", None);
    assert_eq!(s, 404);
    assert_eq!(e.get("/api/cameras").as_array().unwrap().len(), 1);
}

#[test]
fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let mut e = Eyrie::start("", &["--demo"]);
    let before = e.get("/api/cameras");
    for (method, path, body, want) in bad_requests() {
        let (status, v) = e.request(method, &path, body.as_deref());
        assert_eq!(status, want, "{method} {path}: {v}");
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no error message: {v}"));
        assert!(!msg.is_empty());
    }
    assert!(e.alive(), "eyrie died; log:\n{}", e.log());
    assert_eq!(
        e.get("/api/cameras").as_array().unwrap().len(),
        before.as_array().unwrap().len()
    );
    let recordings = std::fs::read_dir(e.dir.join("data/recordings")).map_or(0, |d| d.count());
    assert!(recordings <= 1, "only the demo camera records");
}

/// The requests of [`bad_input_gets_a_clear_4xx_and_changes_nothing`] against a `--demo` node:
/// `(method, path, body, status it must get)`.
fn bad_requests() -> Vec<(&'static str, String, Option<String>, u16)> {
    let huge = format!(
        r#"{{"name": "x", "source": "rtsp://h/{}"}}"#,
        "a".repeat(200_000)
    );
    let onvif = |block: &str| Some(format!(r#"{{"onvif": {block}}}"#));
    vec![
        ("GET", "/api/cameras/nope".into(), None, 404),
        (
            "PUT",
            "/api/cameras/demo".into(),
            onvif(r#"{"events": true}"#),
            400,
        ),
        (
            "PUT",
            "/api/cameras/demo".into(),
            onvif(r#"{"xaddr": "https://10.0.0.1/onvif"}"#),
            400,
        ),
        (
            "PUT",
            "/api/cameras/demo".into(),
            onvif(r#"{"xaddr": "http://u:p@10.0.0.1/onvif"}"#),
            400,
        ),
        (
            "PUT",
            "/api/cameras/demo".into(),
            onvif(r#"{"xaddr": "http://10.0.0.1/onvif", "quiet_seconds": 1}"#),
            400,
        ),
        (
            "PUT",
            "/api/cameras/demo".into(),
            onvif(r#"{"xaddr": "http://10.0.0.1/onvif", "nope": 1}"#),
            422,
        ),
        (
            "GET",
            "/api/cameras/..%2F..%2Fetc%2Fpasswd".into(),
            None,
            404,
        ),
        ("GET", "/api/cameras/%2e%2e".into(), None, 404),
        (
            "PUT",
            "/api/cameras/nope".into(),
            Some(r#"{"name": "x"}"#.into()),
            404,
        ),
        (
            "DELETE",
            "/api/cameras/nope?keep_recordings=true".into(),
            None,
            404,
        ),
        ("GET", "/api/recordings?camera=nope".into(), None, 404),
        ("GET", "/api/recordings?camera=..%2Fdemo".into(), None, 404),
        ("GET", "/api/recordings".into(), None, 400),
        (
            "GET",
            "/api/recordings?camera=demo&start=2024-01-02T00:00:00Z&end=2024-01-01T00:00:00Z"
                .into(),
            None,
            400,
        ),
        (
            "GET",
            "/api/recordings?camera=demo&start=yesterday".into(),
            None,
            400,
        ),
        (
            "GET",
            "/api/recordings/demo/view.mp4?start=200&end=100".into(),
            None,
            400,
        ),
        (
            "GET",
            "/api/recordings/demo/view.mp4?start=0&end=999999999999".into(),
            None,
            400,
        ),
        (
            "GET",
            "/api/recordings/..%2F..%2Fetc/view.mp4".into(),
            None,
            404,
        ),
        (
            "GET",
            "/api/segments/..%2F..%2Fetc%2Fpasswd".into(),
            None,
            404,
        ),
        ("GET", "/api/segments/999999.mp4".into(), None, 404),
        ("GET", "/api/cameras/nope/live".into(), None, 404),
        ("POST", "/api/cameras".into(), Some("{not json".into()), 400),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"name": "x"}"#.into()),
            400,
        ),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"name": "x", "source": "http://x/"}"#.into()),
            400,
        ),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"name": "x", "source": "file:///etc/passwd"}"#.into()),
            400,
        ),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"id": "../x", "name": "x", "source": "rtsp://h/s"}"#.into()),
            400,
        ),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"id": "demo", "name": "x", "source": "rtsp://h/s"}"#.into()),
            409,
        ),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"name": "", "source": "rtsp://h/s"}"#.into()),
            400,
        ),
        (
            "POST",
            "/api/cameras".into(),
            Some(r#"{"name": "x", "source": "rtsp://h/s", "admin": true}"#.into()),
            422,
        ),
        ("POST", "/api/cameras".into(), Some(huge), 413),
        ("PATCH", "/api/cameras/demo".into(), Some("{}".into()), 405),
        ("GET", "/api/nothing-here".into(), None, 404),
    ]
}

#[test]
fn a_bad_config_file_is_one_clear_error_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("eyrie.toml");
    std::fs::write(&cfg, "[storage]\nbudgett = \"1 GiB\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--data")
        .arg(dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("eyrie.toml") && err.contains("budgett"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing is written on a bad config"
    );
}

#[test]
fn stops_cleanly_on_sigterm_with_segments_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Eyrie::start_in(
        dir.path(),
        "[recording]\nsegment_seconds = 10\n",
        &["--demo"],
    );
    e.wait_until("records", Duration::from_secs(20), || {
        e.camera_status("demo")["frames"].as_u64().unwrap_or(0) > 30
    });
    assert!(e.terminate().success());
    let e = Eyrie::start_in(dir.path(), "", &[]);
    assert!(e.log().contains("recovered: 0"), "{}", e.log());
    let segs = e.recordings("demo")["segments"].as_array().unwrap().clone();
    assert!(!segs.is_empty());
    assert!(segs.iter().all(|s| s["state"] == "closed"), "{segs:?}");
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use std::io::{Read, Write};
    let e = Eyrie::start("", &[]);
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", e.port)).unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // Others are served meanwhile.
    assert_eq!(e.request("GET", "/api/health", None).0, 200);
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let n = slow.read(&mut buf).unwrap_or(0);
    let reply = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "closed only after {:?}",
        started.elapsed()
    );
}

#[test]
fn settings_change_at_once_persist_and_refuse_bad_values() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = Eyrie::start_in(dir.path(), "[node]\nlabel = \"House\"\n", &["--demo"]);
    let s = e.get("/api/system/settings");
    assert_eq!(s["label"], "House");
    assert_eq!(s["segment_seconds"], 60);
    assert!(s["budget_bytes"].is_null());

    // Bad values: a clear 4xx naming the field, nothing changed.
    for (body, want, field) in [
        (r#"{"segment_seconds": 5}"#, 400, "segment_seconds"),
        (r#"{"budget": 0}"#, 400, "budget"),
        (r#"{"budget": "lots"}"#, 400, "budget"),
        (r#"{"min_free": -1}"#, 422, ""),
        (r#"{"label": " "}"#, 400, "label"),
        (r#"{"colour": "red"}"#, 422, "colour"),
        ("{", 400, ""),
    ] {
        let (status, v) = e.request("PUT", "/api/system/settings", Some(body));
        assert_eq!(status, want, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(field), "{body}: {v}");
    }
    assert_eq!(e.get("/api/system/settings"), s);

    // Segment length and retention apply at once: the demo camera cuts at 10 s now.
    let (status, v) = e.request(
        "PUT",
        "/api/system/settings",
        Some(r#"{"segment_seconds": 10, "budget": "20 MiB", "min_free": 0}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["budget_bytes"], 20 << 20);
    e.wait_until(
        "cuts a segment at the new length",
        Duration::from_secs(40),
        || !e.closed_segments("demo").is_empty(),
    );
    let first = &e.closed_segments("demo")[0];
    let secs = first["duration_s"].as_f64().unwrap();
    assert!((10.0..12.0).contains(&secs), "{first}");
    assert_eq!(
        e.get("/api/health")["disk"]["budget_bytes"].as_u64(),
        Some(20 << 20),
        "retention runs with the new budget"
    );

    // The label applies at once; everything persists over a restart, whatever eyrie.toml says.
    let (status, v) = e.request(
        "PUT",
        "/api/system/settings",
        Some(r#"{"label": "Garage"}"#),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["label"], "Garage");
    assert_eq!(e.get("/api/health")["label"], "Garage");
    assert_eq!(e.get("/api/cameras")[0]["node_label"], "Garage");
    assert!(e.terminate().success());
    let e = Eyrie::start_in(dir.path(), "[node]\nlabel = \"House\"\n", &["--demo"]);
    let s = e.get("/api/system/settings");
    assert_eq!(s["label"], "Garage");
    assert_eq!(s["segment_seconds"], 10);
    assert_eq!(e.get("/api/health")["label"], "Garage");

    // Only this node's admin: not anonymous callers.
    let anon = ureq::get(&e.anon_url("/api/system/settings")).call();
    assert!(matches!(anon, Err(ureq::Error::Status(401, _))));
}
