//! ONVIF discovery end to end, inside network namespaces this test makes: Eyrie in one, the
//! ONVIF test devices (tests/support/onvif_responder.py) and the GStreamer RTSP server in the
//! other, joined by a veth pair with 10.77.x.x addresses that exist only there. Multicast never
//! reaches the host's own interfaces. Needs root (skips with a reason outside CI).

mod support;

use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::onvif::Responder;
use support::*;

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two network namespaces joined by a veth pair: `a` at 10.77.{n}.1, `b` at 10.77.{n}.2.
/// Both are deleted when this is dropped.
struct Pair {
    a: String,
    b: String,
    addr_a: String,
    addr_b: String,
}

impl Pair {
    fn new() -> Pair {
        let id = std::process::id() % 50_000;
        let n = id % 250 + 1;
        let (a, b) = (format!("eyrie{id}a"), format!("eyrie{id}b"));
        let pair = Pair {
            addr_a: format!("10.77.{n}.1"),
            addr_b: format!("10.77.{n}.2"),
            a,
            b,
        };
        ip(&["netns", "add", &pair.a]);
        ip(&["netns", "add", &pair.b]);
        let (va, vb) = (format!("v{id}a"), format!("v{id}b"));
        ip(&[
            "link", "add", &va, "netns", &pair.a, "type", "veth", "peer", "name", &vb, "netns",
            &pair.b,
        ]);
        for (ns, dev, addr) in [(&pair.a, &va, &pair.addr_a), (&pair.b, &vb, &pair.addr_b)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        pair
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// The calling thread inside a namespace (so the processes it starts and the sockets it opens
/// are there) until dropped.
struct Inside(std::fs::File);

impl Inside {
    fn enter(ns: &str) -> Inside {
        let home = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        let target = std::fs::File::open(format!("/run/netns/{ns}")).unwrap();
        rustix::thread::move_into_link_name_space(
            target.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .unwrap();
        Inside(home)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        rustix::thread::move_into_link_name_space(
            self.0.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("back to the test's own network namespace");
    }
}

fn device<'a>(scan: &'a Value, name: &str) -> &'a Value {
    scan["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device named {name} in {scan:#}"))
}

fn error_of(d: &Value) -> String {
    d["error"].as_str().unwrap_or_default().to_string()
}

#[test]
fn finds_cameras_reads_the_picked_one_with_credentials_and_records_it() {
    if !tools::root() || !rtsp::available() {
        return;
    }
    let net = Pair::new();
    let password = "s3cret & <pw>";
    let (rtsp, responder) = {
        let _b = Inside::enter(&net.b);
        let rtsp = RtspServer::start(free_port(), &["--host", &net.addr_b]);
        let base = format!("rtsp://{}:{}", net.addr_b, rtsp.port);
        let responder = Responder::start(
            &net.addr_b,
            password,
            &format!("{base}/h264"),
            &format!("{base}/h265"),
            "good,good2,garbage,silent,endless,foreign",
        );
        (rtsp, responder)
    };
    let _a = Inside::enter(&net.a);
    let mut e = Eyrie::start(
        &format!(
            "[onvif]\ninterface = \"{}\"\nscan_seconds = 2\n[recording]\nsegment_seconds = 10\n",
            net.addr_a
        ),
        &[],
    );

    // The scan sends no credentials: every device is read without them, and the ones that
    // want them say so (not an error).
    let (status, scan) = e.request("POST", "/api/system/onvif/scan", Some(""));
    assert_eq!(status, 200, "{scan}");
    assert_eq!(scan["devices"].as_array().unwrap().len(), 6, "{scan:#}");
    assert!(
        scan["ignored"].as_u64().unwrap() >= 1,
        "the garbage datagram"
    );
    for name in ["Test good", "Test good2"] {
        let d = device(&scan, name);
        assert_eq!(error_of(d), "", "{d:#}");
        assert_eq!(d["needs_credentials"], true, "{d:#}");
        assert_eq!(d["host"], net.addr_b.as_str());
        assert!(d["endpoint"].as_str().unwrap().starts_with("urn:uuid:"));
    }
    let garbage = error_of(device(&scan, "Test garbage"));
    assert!(garbage.contains("not valid SOAP"), "{garbage}");
    let silent = error_of(device(&scan, "Test silent"));
    assert!(silent.contains("no complete answer within"), "{silent}");
    let endless = error_of(device(&scan, "Test endless"));
    assert!(endless.contains("larger than"), "{endless}");
    let foreign = error_of(device(&scan, "Test foreign"));
    assert!(
        foreign.contains("other hosts") && foreign.contains("not contacted"),
        "{foreign}"
    );
    assert_eq!(responder.tokens_received(), Vec::<String>::new());

    // Credentials with a scan are refused unless they are meant for every device.
    let creds = serde_json::json!({"username": "admin", "password": password, "seconds": 1});
    let (status, v) = e.request("POST", "/api/system/onvif/scan", Some(&creds.to_string()));
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("authenticate_all"),
        "{v}"
    );

    // The user picks "good": it alone is read with the credentials.
    let xaddr = device(&scan, "Test good")["xaddr"]
        .as_str()
        .unwrap()
        .to_string();
    let pick = serde_json::json!({"xaddr": xaddr, "username": "admin", "password": password});
    let (status, good) = e.request("POST", "/api/system/onvif/device", Some(&pick.to_string()));
    assert_eq!(status, 200, "{good}");
    assert_eq!(error_of(&good), "", "{good:#}");
    assert_eq!(good["needs_credentials"], false);
    assert_eq!(good["manufacturer"], "Eyrie Test Optics");
    assert_eq!(good["model"], "NVT-1 & Co");
    assert_eq!(good["host"], net.addr_b.as_str());
    let main = format!("rtsp://{}:{}/h264", net.addr_b, rtsp.port);
    assert_eq!(good["main"], main.as_str(), "the 640x360 profile");
    assert_eq!(
        good["sub"],
        format!("rtsp://{}:{}/h265", net.addr_b, rtsp.port).as_str()
    );
    assert_eq!(good["profiles"].as_array().unwrap().len(), 2);
    let received = responder.tokens_received();
    assert!(!received.is_empty());
    assert!(
        received.iter().all(|t| t.starts_with("good ")),
        "only the picked device gets a UsernameToken: {received:?}"
    );

    // A wrong password is that device's clear error, and it still asks for credentials.
    let wrong = serde_json::json!({"xaddr": xaddr, "username": "admin", "password": "wrong"});
    let (status, d) = e.request("POST", "/api/system/onvif/device", Some(&wrong.to_string()));
    assert_eq!(status, 200, "{d}");
    assert!(
        error_of(&d).contains("GetDeviceInformation: the camera refused the username or password"),
        "{d}"
    );
    assert_eq!(d["needs_credentials"], true);

    // Asked for, the scan signs its calls to every device that answers.
    let mut all = creds.clone();
    all["authenticate_all"] = true.into();
    let (status, scan) = e.request("POST", "/api/system/onvif/scan", Some(&all.to_string()));
    assert_eq!(status, 200, "{scan}");
    for name in ["Test good", "Test good2"] {
        let d = device(&scan, name);
        assert_eq!(error_of(d), "", "{d:#}");
        assert_eq!(d["main"], main.as_str(), "{d:#}");
    }
    assert!(
        responder
            .tokens_received()
            .iter()
            .any(|t| t.starts_with("good2 ")),
        "authenticate_all reaches the other device too"
    );

    // Bad picks: clear 400s, nothing contacted.
    for (body, want) in [
        (r#"{"xaddr": "ftp://10.0.0.1/onvif"}"#, "only http://"),
        (
            r#"{"xaddr": "http://a:b@10.0.0.1/onvif"}"#,
            "not in the address",
        ),
        (r#"{"xaddr": "not a url"}"#, "not a URL"),
        (r#"{"username": "admin"}"#, "xaddr"),
        (
            r#"{"xaddr": "http://10.0.0.1/", "password": "x"}"#,
            "without a username",
        ),
        (r#"{"xaddr": "http://10.0.0.1/", "x": 1}"#, "unknown field"),
    ] {
        let (status, v) = e.request("POST", "/api/system/onvif/device", Some(body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }

    // Bad requests: clear 400s, nothing probed.
    for (body, want) in [
        (r#"{"seconds": 99}"#, "seconds"),
        (r#"{"password": "x"}"#, "without a username"),
        (r#"{"user": "x"}"#, "unknown field"),
        ("{", "body"),
    ] {
        let (status, v) = e.request("POST", "/api/system/onvif/scan", Some(body));
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    assert!(e.alive());

    // What the scan found goes straight into the camera-add form, and records.
    e.add_camera(
        &serde_json::json!({
            "id": "onvif", "name": "Found", "source": main,
            "username": "admin", "password": password,
        })
        .to_string(),
    );
    e.wait_until("closes a segment", Duration::from_secs(45), || {
        !e.closed_segments("onvif").is_empty()
    });
    let seg = &e.closed_segments("onvif")[0];
    let file = e.download(seg["url"].as_str().unwrap(), "onvif.mp4");
    assert_decodes(&file);
    let (dur, frames) = probe(&file);
    assert!(dur >= 9.0 && frames >= 100, "{dur} s, {frames} frames");
    assert!(e.alive());
}
