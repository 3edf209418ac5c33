//! Runs the web UI tests (tests/ui/*.test.js: playwright-core driving Debian's Chromium) against
//! two real Eyrie nodes with demo cameras, federated on loopback: "House" reads "Shop"; and a
//! third without an account, for the first-start setup link; and a fourth on a private LAN of
//! network namespaces with ONVIF test devices and the RTSP test server, which the browser
//! reaches through a forwarder on loopback, for the camera-add form's ONVIF scan; and a fifth
//! running as an appliance (tests/support/appliance.rs: file slots, a temporary /boot, a reboot
//! command that leaves a marker), for Settings → System's update and restart; and "Barn", which
//! the browser test links to House and then stops, for what the pages do when a node goes down.
//! Events are made by the browser test itself (user marks, and a camera with motion detection on
//! reading the motion clip made here). `EYRIE_UI_TESTS=pattern` runs only the browser tests
//! whose names match (and the login).
//! Screenshots go to target/ui-artifacts.

mod support;

use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use support::onvif::Responder;
use support::*;

/// The camera password of the ONVIF test devices (characters that need escaping in XML).
const ONVIF_PASSWORD: &str = "s3cret & <pw>";

/// An Eyrie in a namespace of a private LAN whose other node runs the ONVIF test devices
/// ("good" and "garbage") and the RTSP test server; `url` reaches it from the host. Fields drop
/// in order: the processes, then the namespaces.
struct OnvifLan {
    _eyrie: netns::NsEyrie,
    _responder: Responder,
    _rtsp: RtspServer,
    url: String,
    main_uri: String,
    _lan: netns::Lan,
}

impl OnvifLan {
    /// None (the browser test skips that part, saying why) without root, iproute2 or the RTSP
    /// server; never under CI, where those checks panic instead.
    fn start() -> Option<OnvifLan> {
        if !netns::can_use_namespaces() || !rtsp::available() {
            return None;
        }
        let lan = netns::Lan::new(2);
        let camera_host = lan.ipv4(1);
        let (rtsp, responder, main_uri) = netns::in_ns(lan.ns(1), || {
            let rtsp = RtspServer::start(free_port(), &["--host", &camera_host]);
            let base = format!("rtsp://{camera_host}:{}", rtsp.port);
            let (main, sub) = (format!("{base}/h264"), format!("{base}/h265"));
            let responder =
                Responder::start(&camera_host, ONVIF_PASSWORD, &main, &sub, "good,garbage");
            (rtsp, responder, main)
        });
        let eyrie = netns::NsEyrie::start(
            &lan,
            0,
            "Lan",
            &format!(
                "[onvif]\ninterface = \"{}\"\nscan_seconds = 2\n[recording]\nsegment_seconds = 10\n",
                lan.ipv4(0)
            ),
        );
        let url = forward_into(lan.ns(0), netns::NsEyrie::PORT);
        Some(OnvifLan {
            _eyrie: eyrie,
            _responder: responder,
            _rtsp: rtsp,
            url,
            main_uri,
            _lan: lan,
        })
    }
}

/// Forwards TCP connections to a new port on the host's loopback to `port` on the loopback of
/// namespace `ns` (each upstream socket is made by a thread inside it), so a browser on the
/// host reaches a server that lives in the namespace. Returns `http://127.0.0.1:{port}`.
fn forward_into(ns: &str, port: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let ns = ns.to_string();
    std::thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(down) = down else { return };
            let ns = ns.clone();
            std::thread::spawn(move || {
                let Ok(up) = netns::in_ns(&ns, || TcpStream::connect(("127.0.0.1", port))) else {
                    return;
                };
                let (mut d, mut u) = (down.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut d, &mut u);
                    let _ = u.shutdown(Shutdown::Write);
                });
                let (mut d, mut u) = (down, up);
                let _ = std::io::copy(&mut u, &mut d);
                let _ = d.shutdown(Shutdown::Write);
            });
        }
    });
    url
}

/// Each slot of the UI test's appliance: room for the image, and less than the too-large file
/// the test uploads.
const APPLIANCE_SLOT_SIZE: u64 = 16 << 20;

/// An Eyrie running as an appliance on slot A, and a real root image for it, signed with its
/// update key: a squashfs of a few MiB that does not compress (so its upload takes several progress events). None (the
/// browser test skips that part, saying why) without squashfs-tools, never under CI.
fn appliance_node() -> Option<(appliance::Appliance, Eyrie, PathBuf)> {
    let a = appliance::Appliance::new("a", APPLIANCE_SLOT_SIZE);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let payload: Vec<u8> = (0..6 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let (image, _) = a.image(&payload)?;
    let e = Eyrie::start(&format!("{}[node]\nlabel = \"Shed\"\n", a.config()), &[]);
    Some((a, e, image))
}

fn have_ui_tools(dir: &std::path::Path) -> bool {
    tools::require(&["node", "chromium"])
        && (dir.join("node_modules/playwright-core").is_dir()
            && dir.join("node_modules/axe-core").is_dir()
            || tools::unmet(
                "tests/ui/node_modules: run `npm ci` in tests/ui first (tests/run does)",
            ))
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
    // A node the browser test links to House and then stops (SIGSTOP: its connections stay
    // open and nothing answers, as when a box hangs or its network goes), for the pages' faults
    // about a node that went down.
    let barn = Eyrie::start(&config("Barn"), &["--demo"]);
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
    for n in [&b, &barn] {
        n.wait_until("closes a segment", Duration::from_secs(40), || {
            !n.closed_segments("demo").is_empty()
        });
    }
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
    // A camera with Eyrie's motion detection on, for events of another node: a box moves from
    // 1 s to 4 s of every 10 s of this looped clip (so a motion event ends every 10 s).
    // (File sources are named .mp4; the clip is the same QuickTime MJPEG as mjpeg_clip's.)
    let motion = clips.path().join("motion.mp4");
    std::fs::rename(
        media::motion_clip(clips.path(), "motion", 10, &[(1.0, 4.0)], false),
        &motion,
    )
    .unwrap();
    let onvif = OnvifLan::start();
    let shed = appliance_node();
    let mut node = Command::new("node");
    if let Some((a, e, image)) = &shed {
        node.env("EYRIE_APPLIANCE_URL", e.url(""))
            .env("EYRIE_APPLIANCE_IMAGE", image)
            .env("EYRIE_APPLIANCE_DIR", a.dir.path())
            .env("EYRIE_APPLIANCE_SLOT_SIZE", APPLIANCE_SLOT_SIZE.to_string());
    }
    if let Some(lan) = &onvif {
        node.env("EYRIE_ONVIF_URL", &lan.url)
            .env("EYRIE_ONVIF_PASSWORD", ONVIF_PASSWORD)
            .env("EYRIE_ONVIF_MAIN", &lan.main_uri);
    }
    // EYRIE_UI_TESTS: a pattern of test names to run only those (with the login's, which the
    // others need), e.g. `EYRIE_UI_TESTS=events cargo test --test ui`.
    if let Ok(only) = std::env::var("EYRIE_UI_TESTS") {
        node.arg(format!("--test-name-pattern=login|{only}"));
    }
    let status = node
        .arg("--test")
        .current_dir(&dir)
        .env("EYRIE_A_URL", a.url(""))
        .env("EYRIE_B_URL", b.url(""))
        .env("EYRIE_C_URL", barn.url(""))
        .env("EYRIE_C_PID", barn.child.id().to_string())
        .env("EYRIE_USER", ADMIN_USER)
        .env("EYRIE_PASSWORD", ADMIN_PASSWORD)
        .env("EYRIE_UI_ARTIFACTS", &artifacts)
        .env("EYRIE_DEMO_CLIP", root.join("assets/demo.mp4"))
        .env("EYRIE_MJPEG_SOURCE", &mjpeg)
        .env(
            "EYRIE_MOTION_SOURCE",
            format!("file://{}", motion.display()),
        )
        .env("EYRIE_SETUP_URL", &setup_url)
        .status()
        .expect("running node --test");
    assert!(
        status.success(),
        "the UI tests failed (above); screenshots in {}\nHouse's log:\n{}\nShop's log:\n{}\n\
         The ONVIF test node's log:\n{}\nThe appliance's log:\n{}",
        artifacts.display(),
        a.log(),
        b.log(),
        onvif.as_ref().map(|o| o._eyrie.log()).unwrap_or_default(),
        shed.as_ref().map(|s| s.1.log()).unwrap_or_default()
    );
}
