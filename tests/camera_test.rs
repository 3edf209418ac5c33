//! `POST /api/cameras/test`: a source is tried before it is saved, with a clear answer.

mod support;

use support::*;

#[test]
fn a_source_is_tried_before_saving() {
    let e = Eyrie::start("", &[]);
    let clip = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/demo.mp4");
    let try_source = |body: String| e.request("POST", "/api/cameras/test", Some(&body));
    let (s, v) = try_source(format!(r#"{{"source": "file://{}"}}"#, clip.display()));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["codec"], "h264");
    assert!(v["width"].as_u64().unwrap() > 0);

    let (s, v) = try_source(r#"{"source": "file:///nonexistent/clip.mp4"}"#.into());
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["ok"], false);
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");

    let closed = free_port();
    let (_, v) = try_source(format!(r#"{{"source": "rtsp://127.0.0.1:{closed}/x"}}"#));
    assert_eq!(v["ok"], false, "{v}");

    let (s, v) = try_source(r#"{"source": "http://127.0.0.1/x"}"#.into());
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("source"), "{v}");
    // Nothing was saved, and POST on a camera's own path is not a test.
    assert!(e.get("/api/cameras").as_array().unwrap().is_empty());
    assert_eq!(
        e.request("POST", "/api/cameras/other", Some("{\"source\": \"x\"}"))
            .0,
        405
    );
}
