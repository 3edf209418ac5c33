//! Attacks on a running node, each asserting the bound that holds it (docs/security.md): the
//! attacker on 127.0.0.1, the admin on 127.0.0.2, and the admin's page must keep answering.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use common::{ADMIN_PASSWORD, ADMIN_USER, Eyrie};
use socket2::{Domain, Socket, Type};

/// A TCP connection to `port` from the loopback address `from`, with a receive buffer of
/// `rcvbuf` bytes when given (a client that reads nothing then pins little on its own side).
fn connect_from(from: &str, port: u16, rcvbuf: Option<usize>) -> TcpStream {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if let Some(n) = rcvbuf {
        s.set_recv_buffer_size(n).unwrap();
    }
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    s.bind(&local.into()).unwrap();
    let to: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    s.connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap();
    s.into()
}

fn basic() -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    format!(
        "Basic {}",
        b64.encode(format!("{ADMIN_USER}:{ADMIN_PASSWORD}"))
    )
}

/// How long `GET /api/health` takes from 127.0.0.2 with the admin's credentials (None: no
/// answer within 5 s, or not a 200).
fn admin_health(port: u16) -> Option<Duration> {
    let t = Instant::now();
    let mut s = connect_from("127.0.0.2", port, None);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/health HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\nconnection: close\r\n\r\n",
        basic()
    )
    .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    (&head == b"HTTP/1.1 200").then(|| t.elapsed())
}

/// Open sockets of the node (its listener, its connections, outbound ones).
fn node_sockets(e: &Eyrie) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", e.child.id()))
        .unwrap()
        .filter_map(|f| std::fs::read_link(f.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().starts_with("socket:"))
        .count()
}

/// Polls until the node holds no more than `most` sockets, asking for the admin's health from
/// the other address every second; returns the worst answer time and the peak RSS in MiB.
/// Fails after `limit`.
fn until_sockets_fall(e: &Eyrie, most: usize, limit: Duration) -> (Duration, u64) {
    let start = Instant::now();
    let mut worst = Duration::ZERO;
    let mut peak = 0;
    loop {
        let took =
            admin_health(e.port).expect("the admin's request from another address is answered");
        worst = worst.max(took);
        peak = peak.max(rss_mib(e));
        let n = node_sockets(e);
        if n <= most {
            return (worst, peak);
        }
        assert!(
            start.elapsed() < limit,
            "the node still holds {n} sockets (at most {most} expected) after {:?}",
            start.elapsed()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Resident memory of the node, in MiB.
fn rss_mib(e: &Eyrie) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.child.id())).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb / 1024
}

/// Slow-loris on request bodies: 300 anonymous logins from one address, each announcing 60,000
/// bytes and sending one every 4 s. The address gets its share of connections and no more, each
/// is cut off once its body falls behind the minimum rate, and the admin from another address
/// is answered within a second throughout.
#[test]
fn slow_bodies_from_one_address_lock_nobody_out() {
    let e = Eyrie::start("", &[]);
    let idle = node_sockets(&e);
    let mut held = Vec::new();
    for _ in 0..300 {
        let mut s = connect_from("127.0.0.1", e.port, None);
        // The server may refuse at accept (it closes at once): that write can fail.
        let _ = write!(
            s,
            "POST /api/session HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 60000\r\n\r\n{{"
        );
        held.push(s);
    }
    let dribble = std::thread::spawn(move || {
        // A byte every 4 s from each, for longer than the node should put up with it.
        for _ in 0..8 {
            for s in &mut held {
                let _ = s.write_all(b" ");
            }
            std::thread::sleep(Duration::from_secs(4));
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let held_open = node_sockets(&e) - idle;
    assert!(
        held_open <= 32,
        "{held_open} connections from one address held open (at most 32)"
    );
    // The grace (10 s) and the minimum rate give 60,000 bytes no more than about 14 s.
    let (worst, _) = until_sockets_fall(&e, idle + 1, Duration::from_secs(25));
    assert!(
        worst < Duration::from_secs(3),
        "admin answered in {worst:?} at worst"
    );
    assert!(
        e.log().contains("already open from this address"),
        "refusals are logged"
    );
    dribble.join().unwrap();
}

/// Live viewers that never read: 30 from one address with tiny receive buffers. They are
/// dropped (the stream falls behind, or its writes stall) rather than buffered for, the node's
/// memory stays small, and the admin from another address is answered throughout.
#[test]
fn live_viewers_that_never_read_are_dropped() {
    let e = Eyrie::start("", &["--demo"]);
    e.wait_until("records the demo camera", Duration::from_secs(30), || {
        e.camera_status("demo")["state"] == "recording"
    });
    let idle = node_sockets(&e);
    let rss_before = rss_mib(&e);
    let mut viewers = Vec::new();
    for _ in 0..30 {
        let mut s = connect_from("127.0.0.1", e.port, Some(4096));
        write!(
            s,
            "GET /api/cameras/demo/live HTTP/1.1\r\nhost: x\r\nauthorization: {}\r\n\r\n",
            basic()
        )
        .unwrap();
        viewers.push(s);
    }
    std::thread::sleep(Duration::from_secs(1));
    let connected = node_sockets(&e);
    assert!(
        connected >= idle + 25,
        "the viewers are connected: {connected} sockets, {idle} idle"
    );
    // Nothing is read from here on. A viewer is dropped once it is 64 frames behind, or its
    // writes have stalled for 20 s, whichever the node sees first.
    let start = Instant::now();
    let (worst, peak) = until_sockets_fall(&e, idle + 1, Duration::from_secs(60));
    assert!(
        worst < Duration::from_secs(3),
        "admin answered in {worst:?} at worst"
    );
    assert!(
        peak < rss_before + 64,
        "RSS went from {rss_before} MiB to {peak} MiB with stalled viewers"
    );
    eprintln!("30 non-reading viewers dropped after {:?}", start.elapsed());
    drop(viewers);
}

// ---- A hostile peer (issue 14 items 9, 10, 13): what it sends is cleaned, checked and bounded.

/// Every string inside `v`.
fn strings_in(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|v| strings_in(v, out)),
        serde_json::Value::Object(o) => o.values().for_each(|v| strings_in(v, out)),
        _ => {}
    }
}

/// The characters a peer's strings must lose: C0/C1 controls and bidi controls.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// Has `e` read the peer at `url` (key "k", media `mode`); returns the remote node's id.
fn reading_peer(e: &Eyrie, url: &str, mode: &str) -> String {
    let body =
        format!(r#"{{"label": "hostile", "url": "{url}", "key": "k", "media_mode": "{mode}"}}"#);
    let (s, v) = e.request("POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

const FAST_PEERS: &str = "[federation]\npoll_interval_seconds = 1\nrequest_timeout_seconds = 2\n";

#[test]
fn a_peers_strings_are_cleaned_and_its_media_urls_stay_on_its_origin() {
    use common::{FakePeer, Reply};
    let e = Eyrie::start(FAST_PEERS, &[]);
    let own = e.port;
    let peer_port = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(0));
    let port_seen = peer_port.clone();
    let peer = FakePeer::start(move |path, _| {
        let me = format!(
            "http://127.0.0.1:{}",
            port_seen.load(std::sync::atomic::Ordering::Relaxed)
        );
        let hostile_urls = format!(
            r#"{{"url": "javascript:alert(1)", "camera": "cam", "start_ms": 1, "end_ms": 2}},
               {{"url": "http://evil.example/api/segments/1.mp4", "camera": "cam", "start_ms": 2, "end_ms": 3}},
               {{"url": "http://127.0.0.1:{own}/api/segments/1.mp4", "camera": "cam", "start_ms": 3, "end_ms": 4}},
               {{"url": "{me}/api/federation/keys", "camera": "cam", "start_ms": 4, "end_ms": 5}},
               {{"url": "{me}/api/recordings/cam/view.mp4?start=5&end=6&token=t", "camera": "cam", "start_ms": 5, "end_ms": 6}}"#
        );
        let body = if path.starts_with("/api/health") {
            r#"{"node_id": "bad0bad0bad0", "version": "1.0\u0007\u202e", "cameras": [{"state": "recording"}]}"#.to_string()
        } else if path.starts_with("/api/cameras") {
            r#"[{"id": "cam", "name": "Gar\u0000age\u0007\u202etxt.exe\u2066", "enabled": true,
                 "status": {"state": "recor\u001bding\u200f"}, "codec": "h264\u0085"}]"#
                .to_string()
        } else if path.starts_with("/api/recordings") {
            format!(r#"{{"segments": [{hostile_urls}], "runs": [{hostile_urls}]}}"#)
        } else {
            return Reply::Body(404, "{}".into());
        };
        Reply::Body(200, body)
    });
    peer_port.store(peer.port, std::sync::atomic::Ordering::Relaxed);
    let id = reading_peer(&e, &peer.url(), "direct");
    let remote = || {
        e.get("/api/cameras")
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["remote"] == true)
            .cloned()
    };
    e.wait_until("lists the peer's camera", Duration::from_secs(10), || {
        remote().is_some()
    });
    let cam = remote().unwrap();
    assert_eq!(cam["name"], "Garagetxt.exe", "{cam}");
    assert_eq!(cam["status"]["state"], "recording", "{cam}");
    for path in ["/api/cameras", "/api/health", "/api/system/nodes"] {
        let mut all = Vec::new();
        strings_in(&e.get(path), &mut all);
        for s in all {
            assert!(!s.chars().any(unsafe_char), "{path}: {s:?}");
        }
    }

    // Media URLs in direct mode: only media paths on the peer's own origin reach a page.
    let peer_origin = peer.url();
    for listing in [
        format!("/api/recordings?camera=r-{id}-cam"),
        "/api/recordings?camera=all".to_string(),
    ] {
        let v = e.get(&listing);
        let mut urls = Vec::new();
        for list in ["segments", "runs"] {
            for item in v[list].as_array().into_iter().flatten() {
                if let Some(u) = item["url"].as_str() {
                    urls.push(u.to_string());
                }
            }
        }
        assert!(
            urls.iter()
                .any(|u| u.starts_with(&format!("{peer_origin}/api/recordings/cam/view.mp4"))),
            "{listing}: the peer's own media URL is kept: {v}"
        );
        for u in &urls {
            assert!(
                u.starts_with(&format!("{peer_origin}/api/recordings/")),
                "{listing}: {u} reached the page"
            );
        }
    }
}

/// A peer on loopback that answers `/api/segments/…` with a 500 whose 60-byte body comes one
/// byte a second, and everything else with a 404.
fn slow_error_peer() -> (u16, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            let stopped = stopped.clone();
            std::thread::spawn(move || {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                    match s.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                if !String::from_utf8_lossy(&head).contains(" /api/segments/") {
                    let _ = s.write_all(
                        b"HTTP/1.1 404 X\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
                    );
                    return;
                }
                let _ = s.write_all(
                    b"HTTP/1.1 500 X\r\ncontent-type: text/plain\r\ncontent-length: 60\r\nconnection: close\r\n\r\n",
                );
                for _ in 0..60 {
                    if stopped.load(Ordering::Relaxed) || s.write_all(b"x").is_err() {
                        return;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            });
        }
    });
    (port, stop)
}

#[test]
fn a_peers_slow_error_answer_is_cut_off_at_the_peer_deadline() {
    let e = Eyrie::start(FAST_PEERS, &[]);
    let (port, stop) = slow_error_peer();
    let id = reading_peer(&e, &format!("http://127.0.0.1:{port}"), "relay");
    let t = Instant::now();
    let answer = ureq::get(&e.url(&format!("/api/system/nodes/{id}/media/segments/1.mp4")))
        .timeout(Duration::from_secs(90))
        .call();
    let (status, body) = match answer {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap_or_default()),
        Err(e) => panic!("{e}"),
    };
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    eprintln!("relayed error: {status} {body:?} after {took:?}");
    assert!(
        took < Duration::from_secs(8),
        "the relayed error took {took:?} ({status} {body})"
    );
    assert!(status >= 500, "{status} {body}");
}

/// A pairing request as another node would send it, naming `url` as its own.
fn pair_request(url: &str) -> String {
    serde_json::json!({
        "node_id": "6b1d4f5e-2c7a-4e53-9a1d-0f4b7c9e2a11",
        "label": "stranger",
        "url": url,
        "code": "123456",
        "secret": "ab".repeat(32),
    })
    .to_string()
}

#[test]
fn a_pairing_request_names_only_an_origin_to_link_back_to() {
    let e = Eyrie::start("", &[]);
    let anon = |body: &str| {
        common::json_request("POST", &e.anon_url("/api/federation/pair"), Some(body))
            .expect("an answer")
    };
    // Link-back would POST wherever the request said: a path, a query or credentials are refused.
    for bad in [
        "http://127.0.0.1:9/api/system/settings",
        "http://127.0.0.1:9/?x=1",
        "http://u:p@127.0.0.1:9",
        "http://127.0.0.1:9/#frag",
    ] {
        let (s, v) = anon(&pair_request(bad));
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, v) = anon(&pair_request("http://127.0.0.1:9/"));
    assert_eq!(s, 202, "{v}");
    // The admin sees the address the link back would go to.
    let reqs = e.get("/api/federation/pair/requests");
    let urls: Vec<&str> = reqs
        .as_array()
        .or_else(|| reqs["requests"].as_array())
        .unwrap()
        .iter()
        .map(|r| r["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, ["http://127.0.0.1:9"], "{reqs}");
}
