//! Runs the web UI tests (tests/ui/*.test.js: playwright-core driving Debian's Chromium) against
//! two real Eyrie nodes with demo cameras, federated on loopback: "House" reads "Shop"; and a
//! third without an account, for the first-start setup link.
//! Screenshots go to target/ui-artifacts.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::*;

fn have_ui_tools(dir: &std::path::Path) -> bool {
    if !have_tool("node") || !have_tool("chromium") {
        return false;
    }
    let ok = dir.join("node_modules/playwright-core").is_dir()
        && dir.join("node_modules/axe-core").is_dir();
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tests/ui/node_modules is missing under CI (tests/run runs npm ci)");
        }
        eprintln!("SKIP: run `npm ci` in tests/ui first (tests/run does)");
    }
    ok
}

#[test]
fn the_web_ui_in_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/ui");
    if !have_ui_tools(&dir) {
        return;
    }
    let config = |label: &str| {
        format!(
            "[node]\nlabel = \"{label}\"\n[recording]\nsegment_seconds = 10\n\
             [federation]\npoll_interval_seconds = 1\nrequest_timeout_seconds = 2\n"
        )
    };
    let a = Eyrie::start(&config("House"), &["--demo"]);
    let b = Eyrie::start(&config("Shop"), &["--demo"]);
    let (s, key) = b.request("POST", "/api/federation/keys", Some(r#"{"name": "House"}"#));
    assert_eq!(s, 201, "{key}");
    let body = format!(
        r#"{{"label": "Shop", "url": "{}", "key": "{}"}}"#,
        b.url(""),
        key["key"].as_str().unwrap()
    );
    let (s, v) = a.request("POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    a.wait_until(
        "lists Shop's camera with a live URL",
        Duration::from_secs(20),
        || {
            a.get("/api/cameras")
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["remote"] == true && c["live_url"].is_string())
        },
    );
    b.wait_until("closes a segment", Duration::from_secs(40), || {
        !b.closed_segments("demo").is_empty()
    });
    // A third node without an account: its one-time setup link, as printed in its log.
    let fresh = Eyrie::start("[auth]\n", &[]);
    let log = fresh.log();
    let setup = log
        .split("/#/setup/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no setup link in the log:\n{log}"));
    let setup_url = format!("{}/#/setup/{setup}", fresh.url(""));
    let artifacts = root.join("target/ui-artifacts");
    // An MJPEG clip for a camera whose live view is a picture stream.
    let clips = tempfile::tempdir().unwrap();
    let mjpeg = mjpeg_clip(clips.path()).expect("ffmpeg is installed by tests/run");
    let status = Command::new("node")
        .arg("--test")
        .current_dir(&dir)
        .env("EYRIE_A_URL", a.url(""))
        .env("EYRIE_B_URL", b.url(""))
        .env("EYRIE_USER", ADMIN_USER)
        .env("EYRIE_PASSWORD", ADMIN_PASSWORD)
        .env("EYRIE_UI_ARTIFACTS", &artifacts)
        .env("EYRIE_DEMO_CLIP", root.join("assets/demo.mp4"))
        .env("EYRIE_MJPEG_SOURCE", &mjpeg)
        .env("EYRIE_SETUP_URL", &setup_url)
        .status()
        .expect("running node --test");
    assert!(
        status.success(),
        "the UI tests failed (above); screenshots in {}\nHouse's log:\n{}\nShop's log:\n{}",
        artifacts.display(),
        a.log(),
        b.log()
    );
}
