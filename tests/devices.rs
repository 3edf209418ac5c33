//! V4L2 sources through the API of a real eyrie process. This machine may have no video
//! devices at all (CI runs in a VM without them), so what is checked here is what holds either
//! way: the listing answers, bad v4l2 URLs are refused, a camera on a device that is not there
//! is an error state that says why, and a second camera on one device is refused. The frame logic is tested
//! against a fake device in src/capture/v4l2/tests.rs.

mod support;

use std::time::Duration;

use support::*;

#[test]
fn lists_devices_and_reports_a_missing_one() {
    let e = Eyrie::start("", &[]);
    let list = e.get("/api/system/devices");
    let devices = list["devices"].as_array().expect("a device list");
    assert!(
        list["encoders"].is_array(),
        "hardware encoders found: {list}"
    );
    for d in devices {
        assert!(d["path"].as_str().unwrap().starts_with("/dev/video"), "{d}");
        assert!(
            d["formats"].is_array() && d["recordable"].is_boolean(),
            "{d}"
        );
    }
    for (source, want) in [
        ("v4l2:///dev/sda", "is not /dev/videoN"),
        ("v4l2:///dev/v4l/by-id/../../sda", "is not /dev/videoN"),
        ("v4l2:///dev/video0?width=640", "width and height together"),
        ("v4l2:///dev/video0?zoom=1", "unknown parameter 'zoom'"),
        ("v4l2://host/dev/video0", "no host"),
        (
            "v4l2:///dev/video0?quality=100",
            "quality must be a number from 10 to 95",
        ),
        (
            "v4l2:///dev/video0?encode_fps=60",
            "encode_fps must be a number from 1 to 30",
        ),
    ] {
        let body = serde_json::json!({"name": "x", "source": source}).to_string();
        let (status, v) = e.request("POST", "/api/cameras", Some(&body));
        assert_eq!(status, 400, "{source}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{source}: {v}");
    }
    // A device node no machine has: the camera is kept, in error, saying why.
    e.add_camera(r#"{"id": "usb", "name": "USB", "source": "v4l2:///dev/video999?fps=15"}"#);
    e.wait_until(
        "reports the missing device",
        Duration::from_secs(10),
        || {
            let st = e.camera_status("usb");
            st["state"] == "error"
                && st["last_error"]
                    .as_str()
                    .is_some_and(|m| m.contains("cannot open /dev/video999"))
        },
    );
    assert_eq!(
        e.get("/api/cameras/usb")["source"],
        "v4l2:///dev/video999?fps=15"
    );
    // A second camera on the same device is refused, whether created or changed to it.
    let (status, v) = e.request(
        "POST",
        "/api/cameras",
        Some(r#"{"name": "again", "source": "v4l2:///dev/video999"}"#),
    );
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("already the source of camera 'usb'"),
        "{v}"
    );
    e.add_camera(r#"{"id": "other", "name": "other", "source": "v4l2:///dev/video998"}"#);
    let (status, v) = e.request(
        "PUT",
        "/api/cameras/other",
        Some(r#"{"source": "v4l2:///dev/video999?fps=5"}"#),
    );
    assert_eq!(status, 409, "{v}");
    let (status, v) = e.request(
        "PUT",
        "/api/cameras/usb",
        Some(r#"{"source": "v4l2:///dev/video999?fps=5"}"#),
    );
    assert_eq!(status, 200, "a camera may change its own mode: {v}");
    assert_eq!(e.get("/api/health")["cameras"].as_array().unwrap().len(), 2);
}
