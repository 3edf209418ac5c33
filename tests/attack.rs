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

// ---- Memory a hostile peer or a long range can cost (issue 14: High 1, High 2, Medium 6) ----

/// Peak and current resident memory of the node, in MiB (`VmHWM`, `VmRSS`).
fn peak_and_rss_mib(e: &Eyrie) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{}/status", e.child.id())).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
            / 1024
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn node_threads(e: &Eyrie) -> usize {
    std::fs::read_dir(format!("/proc/{}/task", e.child.id()))
        .unwrap()
        .count()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// A hostile peer answers every listing with 8 MiB of tiny runs. Six listings through it
/// (`camera=all` and the peer's camera) keep the node's peak memory within 64 MiB of idle, give
/// it back, and the answers say they were cut.
#[test]
fn a_hostile_peers_listings_cost_bounded_memory() {
    let mut runs = String::from(r#"{"runs":["#);
    while runs.len() < (8 << 20) - 64 {
        runs.push_str(r#"{"camera":"c","start_ms":1},"#);
    }
    runs.push_str(r#"{"camera":"c","start_ms":1}]}"#);
    let runs = std::sync::Arc::new(runs);
    let answer = runs.clone();
    let peer = common::FakePeer::start(move |path, _| {
        if path.starts_with("/api/recordings") {
            common::Reply::Body(200, answer.to_string())
        } else {
            common::Reply::Body(404, "{}".into())
        }
    });
    let mut e = Eyrie::start("", &[]);
    let body = format!(
        r#"{{"label": "hostile", "url": "{}", "key": "k"}}"#,
        peer.url()
    );
    let (s, v) = e.request("POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    let node = v["id"].as_str().unwrap().to_string();
    let (_, idle) = peak_and_rss_mib(&e);
    let mut listings = Vec::new();
    for i in 0..6 {
        let path = if i % 2 == 0 {
            "/api/recordings?camera=all".to_string()
        } else {
            format!("/api/recordings?camera=r-{node}-c")
        };
        let listing = e.get(&path);
        let runs = listing["runs"].as_array().map(Vec::len);
        listings.push((path, listing["truncated"].clone(), runs));
    }
    let (peak, after) = peak_and_rss_mib(&e);
    eprintln!("idle {idle} MiB, peak {peak} MiB, after {after} MiB");
    assert!(
        peak < idle + 64,
        "peak RSS {peak} MiB after six listings from a hostile peer (idle {idle} MiB)"
    );
    assert!(
        after < idle + 32,
        "RSS {after} MiB stays after the listings (idle {idle} MiB)"
    );
    for (path, truncated, runs) in listings {
        assert_eq!(truncated, true, "{path}: the answer says it was cut");
        assert!(runs.is_some_and(|n| n <= 20_000), "{path}: {runs:?} runs");
    }
    assert!(e.alive());
    drop(runs);
}

/// Times that overflow `end - start` (i64::MIN) would wrap past the 6 h and 31 day limits in
/// a release build (and panic in a debug one): every route that takes a range answers 400, and
/// the node stays up and answers the admin from another address.
#[test]
fn overflowing_time_ranges_are_refused() {
    let mut e = Eyrie::start("", &["--demo"]);
    let (s, v) = e.request(
        "POST",
        "/api/federation/keys",
        Some(r#"{"name": "attacker"}"#),
    );
    assert_eq!(s, 201, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    let now = now_ms();
    let min = i64::MIN;
    let with_key = |e: &Eyrie, path: &str| -> u16 {
        match ureq::get(&e.anon_url(path))
            .set("X-NVR-Auth", &key)
            .timeout(Duration::from_secs(15))
            .call()
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(err) => panic!("{path}: no answer ({err}); log:\n{}", e.log()),
        }
    };
    for path in [
        format!("/api/recordings/demo/view.mp4?start={min}&end={now}"),
        format!("/api/recordings/demo/replay.mjpeg?start={min}&end={now}"),
        format!("/api/recordings?camera=demo&start={min}&end={now}"),
        format!("/api/recordings?camera=all&start={min}&end={now}"),
        format!("/api/recordings/demo/frame.jpg?at={min}"),
        format!("/api/playback/cam_demo?start={min}&end={now}"),
        format!("/api/recordings/demo/view.mp4?start=0&end={}", i64::MAX),
        "/api/recordings/demo/view.mp4?start=-9999-01-01T00:00:00Z&end=9999-01-01T00:00:00Z"
            .to_string(),
    ] {
        assert_eq!(with_key(&e, &path), 400, "{path}");
        let (s, v) = e.request("GET", &path, None);
        assert_eq!(s, 400, "{path}: {v}");
        assert!(e.alive(), "{path} took the node down; log:\n{}", e.log());
    }
    assert!(admin_health(e.port).is_some(), "the admin is answered");
}

/// 250 `view.mp4` downloads at once with one media token, from ten addresses (each under the
/// per-address connection limit), none reading: at most 4 are served (the token's share of the
/// node's 8), the rest refused with 503 and `Retry-After`; memory and threads stay bounded and
/// the admin is answered from another address meanwhile.
#[test]
fn concurrent_views_are_bounded() {
    let e = Eyrie::start("", &["--demo"]);
    let (s, v) = e.request("POST", "/api/federation/keys", Some(r#"{"name": "peer"}"#));
    assert_eq!(s, 201, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    // A run long enough that its view does not fit in the socket buffers of a client that
    // reads nothing (the demo records about 32 KB/s).
    let mut url = String::new();
    e.wait_until("has recorded 1 MiB", Duration::from_secs(90), || {
        let listing: serde_json::Value = ureq::get(&e.anon_url("/api/recordings?camera=demo"))
            .set("X-NVR-Auth", &key)
            .call()
            .unwrap()
            .into_json()
            .unwrap();
        let Some(run) = listing["runs"].as_array().and_then(|r| r.last()) else {
            return false;
        };
        url = run["url"].as_str().unwrap().to_string();
        run["bytes"].as_u64().unwrap_or(0) > 1 << 20
    });
    let path = &url[url.find("/api/").unwrap()..];
    assert!(path.contains("token="), "{path}");
    let idle_rss = rss_mib(&e);
    let idle_threads = node_threads(&e);
    let mut clients = Vec::new();
    for i in 0..250 {
        let from = format!("127.0.1.{}", 1 + i % 10);
        let mut s = connect_from(&from, e.port, Some(4096));
        let _ = write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\n\r\n");
        clients.push(s);
    }
    let (mut served, mut refused) = (0, 0);
    for s in &mut clients {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = [0u8; 12];
        match s.read_exact(&mut head) {
            Ok(()) if &head == b"HTTP/1.1 200" => served += 1,
            Ok(()) if &head == b"HTTP/1.1 503" => {
                let mut rest = [0u8; 512];
                let n = s.read(&mut rest).unwrap_or(0);
                let text = String::from_utf8_lossy(&rest[..n]).to_ascii_lowercase();
                assert!(text.contains("retry-after:"), "{text}");
                refused += 1;
            }
            other => panic!("{other:?} {:?}", String::from_utf8_lossy(&head)),
        }
    }
    eprintln!("{served} served, {refused} refused");
    assert!(served <= 4, "{served} views served at once with one token");
    assert!(refused >= 240, "{refused} refused");
    let took = admin_health(e.port).expect("the admin is answered meanwhile");
    assert!(took < Duration::from_secs(3), "admin answered in {took:?}");
    let (rss, threads) = (rss_mib(&e), node_threads(&e));
    assert!(
        rss < idle_rss + 64,
        "RSS went from {idle_rss} MiB to {rss} MiB"
    );
    assert!(
        threads < idle_threads + 32,
        "threads went from {idle_threads} to {threads}"
    );
    drop(clients);
}
