//! Attacks on a running node, each asserting the bound that holds it (docs/security.md): the
//! attacker on 127.0.0.1, the admin on 127.0.0.2, and the admin's page must keep answering.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use socket2::{Domain, Socket, Type};
use support::{ADMIN_PASSWORD, ADMIN_USER, Eyrie, FakePeer, Reply};

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

// ---- Keys, tokens, CORS, pairing and logins (issue 14: items 4, 5, 7, 14, 15) ----

/// One HTTP/1.1 request from the loopback address `from`, answered with `connection: close`:
/// `(status, lower-cased head, body)`. Fails the test when nothing answers within 10 s.
fn call_from(
    from: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String, String) {
    let mut s = connect_from(from, port, None);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no status in {head:?}"));
    (status, head.to_ascii_lowercase(), body.to_string())
}

/// The admin's call from 127.0.0.2 with Basic credentials: `(status, JSON body or Null)`.
fn admin_call(port: u16, method: &str, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
    let auth = basic();
    let (s, _, b) = call_from(
        "127.0.0.2",
        port,
        method,
        path,
        &[("authorization", &auth)],
        body,
    );
    (
        s,
        serde_json::from_str(&b).unwrap_or(serde_json::Value::Null),
    )
}

/// A live stream request from the attacker's address, its head read: the open stream.
fn open_live(port: u16, path: &str, headers: &[(&str, &str)]) -> TcpStream {
    let mut s = connect_from("127.0.0.1", port, None);
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200", "{path}");
    s
}

/// Reads `s` until the server ends it; how long that took, or None if it still streams after
/// `limit`.
fn until_ended(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    while start.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(start.elapsed()),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some(start.elapsed()),
        }
    }
    None
}

/// A node recording its demo camera, and a federation key made on it (the answer of
/// `POST /api/federation/keys`: `key` and `id`).
fn demo_node_with_peer_key() -> (Eyrie, serde_json::Value) {
    let e = Eyrie::start("", &["--demo"]);
    e.wait_until("records the demo camera", Duration::from_secs(30), || {
        e.camera_status("demo")["state"] == "recording"
    });
    let (s, k) = admin_call(
        e.port,
        "POST",
        "/api/federation/keys",
        Some(r#"{"name": "peer"}"#),
    );
    assert_eq!(s, 201, "{k}");
    (e, k)
}

/// A peer's live streams, opened with its key and with a token issued under it, end within a
/// second of the key's revocation, and the token opens nothing any more.
#[test]
fn revoking_a_key_ends_its_streams_and_tokens_at_once() {
    let (e, k) = demo_node_with_peer_key();
    let (key, id) = (k["key"].as_str().unwrap(), k["id"].as_str().unwrap());
    let auth = [("x-nvr-auth", key)];
    let (s, _, cams) = call_from("127.0.0.1", e.port, "GET", "/api/cameras", &auth, None);
    assert_eq!(s, 200, "{cams}");
    let cams: serde_json::Value = serde_json::from_str(&cams).unwrap();
    let live_url = cams[0]["live_url"].as_str().unwrap();
    let live_path = &live_url[live_url.find("/api/").unwrap()..];
    assert!(live_path.contains("?token="), "{live_path}");

    let mut with_key = open_live(e.port, "/api/cameras/demo/live", &auth);
    let mut with_token = open_live(e.port, live_path, &[]);
    // Both are streaming: nothing ends them in a second and a half of their own.
    assert_eq!(
        until_ended(&mut with_key, Duration::from_millis(1500)),
        None
    );
    assert_eq!(
        until_ended(&mut with_token, Duration::from_millis(100)),
        None
    );

    let (s, _) = admin_call(
        e.port,
        "DELETE",
        &format!("/api/federation/keys/{id}"),
        None,
    );
    assert_eq!(s, 204);
    for (what, stream) in [("key", &mut with_key), ("token", &mut with_token)] {
        let took = until_ended(stream, Duration::from_secs(3));
        assert!(
            took.is_some_and(|t| t < Duration::from_millis(1500)),
            "the stream opened with the {what} still runs ({took:?})"
        );
    }
    assert_eq!(
        head_status(e.port, live_path),
        401,
        "a token of a revoked key"
    );
}

/// The status of a GET from the attacker's address, read from the head alone (a stream
/// need not end).
fn head_status(port: u16, path: &str) -> u16 {
    let mut s = connect_from("127.0.0.1", port, None);
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n\r\n").unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

/// A media token opens media in the one spelling the node wrote, and in no other: not with its
/// hex in upper case, nor with a leading `0` or `+` on its expiry.
#[test]
fn tokens_open_media_in_their_one_spelling_only() {
    let (e, k) = demo_node_with_peer_key();
    let auth = [("x-nvr-auth", k["key"].as_str().unwrap())];
    let (s, _, cams) = call_from("127.0.0.1", e.port, "GET", "/api/cameras", &auth, None);
    assert_eq!(s, 200, "{cams}");
    let cams: serde_json::Value = serde_json::from_str(&cams).unwrap();
    let live_url = cams[0]["live_url"].as_str().unwrap();
    let (path, token) = live_url[live_url.find("/api/").unwrap()..]
        .split_once("?token=")
        .unwrap();
    assert_eq!(head_status(e.port, &format!("{path}?token={token}")), 200);
    let (exp, rest) = token.split_once('.').unwrap();
    for other in [
        format!("{exp}.{}", rest.to_uppercase()),
        format!("0{exp}.{rest}"),
        format!("%2B{exp}.{rest}"),
    ] {
        assert_eq!(
            head_status(e.port, &format!("{path}?token={other}")),
            401,
            "{other}"
        );
    }
}

/// A registered peer's page, with the admin's session cookie, gets no CORS grant: it cannot
/// read the CSRF token, the keys, the nodes or the cameras' sources.
#[test]
fn a_peer_page_reads_nothing_with_the_admins_cookie() {
    let e = Eyrie::start("", &["--demo"]);
    let peer = "http://127.0.0.9:8080";
    let body = format!(
        r#"{{"label": "peer", "url": "{peer}", "key": "{}"}}"#,
        "ab".repeat(32)
    );
    let (s, v) = admin_call(e.port, "POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    let login = format!(r#"{{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}"#);
    let (s, head, _) = call_from(
        "127.0.0.2",
        e.port,
        "POST",
        "/api/session",
        &[],
        Some(&login),
    );
    assert_eq!(s, 200);
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_string();
    for path in [
        "/api/session",
        "/api/federation/keys",
        "/api/system/nodes",
        "/api/cameras",
    ] {
        let (s, head, body) = call_from(
            "127.0.0.1",
            e.port,
            "GET",
            path,
            &[("cookie", &cookie), ("origin", peer)],
            None,
        );
        assert_eq!(s, 200, "{path}: {body}");
        assert!(
            !head.contains("access-control-allow-origin")
                && !head.contains("access-control-allow-credentials"),
            "{path} grants the peer's page a read:\n{head}"
        );
        let (s, head, _) = call_from(
            "127.0.0.1",
            e.port,
            "OPTIONS",
            path,
            &[("origin", peer), ("access-control-request-method", "GET")],
            None,
        );
        assert_eq!(s, 403, "{path} preflight:\n{head}");
    }
}

/// Anonymous pairing requests from twelve addresses (three each, the most one address may hold)
/// overfill the book; a real request from another address still gets in, the admin sees it,
/// and more crowding from fresh addresses does not push it out.
#[test]
fn pairing_requests_cannot_be_crowded_out() {
    let e = Eyrie::start("", &[]);
    let mut n = 0u32;
    let mut ask = |from: &str, label: &str| {
        n += 1;
        let body = format!(
            r#"{{"node_id": "{n:08}-3707-4f3b-a6e7-0e2e33353208", "label": "{label}", "url": "http://{from}:8080", "code": "123456", "secret": "{}"}}"#,
            "ab".repeat(32)
        );
        let (s, _, b) = call_from(
            from,
            e.port,
            "POST",
            "/api/federation/pair",
            &[],
            Some(&body),
        );
        (
            s,
            serde_json::from_str::<serde_json::Value>(&b).unwrap_or_default(),
        )
    };
    for i in 10..22 {
        for _ in 0..3 {
            let (s, b) = ask(&format!("127.0.0.{i}"), "crowd");
            assert_eq!(s, 202, "{b}");
        }
    }
    let (s, real) = ask("127.0.0.50", "real");
    assert_eq!(s, 202, "the real request: {real}");
    let real_id = real["id"].as_str().unwrap().to_string();
    let listed = |port| {
        let (s, v) = admin_call(port, "GET", "/api/federation/pair/requests", None);
        assert_eq!(s, 200);
        v.as_array().unwrap().clone()
    };
    assert!(listed(e.port).iter().any(|r| r["id"] == real_id.as_str()));
    for i in 100..140 {
        let _ = ask(&format!("127.0.0.{i}"), "crowd");
    }
    let now = listed(e.port);
    assert!(now.len() <= 32);
    assert!(
        now.iter().any(|r| r["id"] == real_id.as_str()),
        "the request the admin saw was pushed out"
    );
}

/// Twenty addresses guessing the admin's password for 6 s: the guesses actually checked stay
/// within one per address plus the user's budget, and the admin, from an address with no
/// failures, logs in at once in the middle of it.
#[test]
fn many_addresses_guessing_are_bounded_and_the_admin_gets_in() {
    let e = Eyrie::start("", &[]);
    let port = e.port;
    let wrong = format!(r#"{{"username": "{ADMIN_USER}", "password": "not-the-password"}}"#);
    let start = Instant::now();
    let guessers: Vec<_> = (10..30)
        .map(|i| {
            let wrong = wrong.clone();
            std::thread::spawn(move || {
                let from = format!("127.0.0.{i}");
                let mut checked = 0;
                while start.elapsed() < Duration::from_secs(6) {
                    let (s, _, b) =
                        call_from(&from, port, "POST", "/api/session", &[], Some(&wrong));
                    match s {
                        401 => checked += 1,
                        429 => std::thread::sleep(Duration::from_millis(50)),
                        _ => panic!("{s}: {b}"),
                    }
                }
                checked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let login = format!(r#"{{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}"#);
    let t = Instant::now();
    let (s, _, b) = call_from("127.0.0.2", port, "POST", "/api/session", &[], Some(&login));
    let took = t.elapsed();
    let checked: u32 = guessers.into_iter().map(|g| g.join().unwrap()).sum();
    let elapsed = start.elapsed().as_secs();
    eprintln!("{checked} guesses checked in {elapsed} s; the admin logged in in {took:?}");
    assert_eq!(s, 200, "the admin's login during the attack: {b}");
    assert!(took < Duration::from_secs(3), "the admin waited {took:?}");
    // One per address, the user's burst of 5, one per 2 s after it (and a second of slack).
    assert!(
        u64::from(checked) <= 20 + 5 + elapsed / 2 + 1,
        "{checked} guesses checked in {elapsed} s"
    );
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
    let peer = support::FakePeer::start(move |path, _| {
        if path.starts_with("/api/recordings") {
            support::Reply::Body(200, answer.to_string())
        } else {
            support::Reply::Body(404, "{}".into())
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
    eprintln!(
        "threads {idle_threads} idle, {threads} after; RSS {idle_rss} MiB idle, {rss} MiB after"
    );
    assert!(
        rss < idle_rss + 64,
        "RSS went from {idle_rss} MiB to {rss} MiB"
    );
    // tokio's blocking pool grows with the requests in flight (up to 512; 517 threads before
    // the cap): a bound well under that, with room for the pool's idle threads.
    assert!(
        threads < idle_threads + 64,
        "threads went from {idle_threads} to {threads}"
    );
    drop(clients);
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

#[test]
fn a_peers_slow_error_answer_is_cut_off_at_the_peer_deadline() {
    let e = Eyrie::start(FAST_PEERS, &[]);
    // A 500 whose 60-byte body comes one byte a second; everything else a 404.
    let peer = FakePeer::start(|path, _| {
        if path.starts_with("/api/segments/") {
            Reply::Dribble(500, 60)
        } else {
            Reply::Body(404, "{}".into())
        }
    });
    let id = reading_peer(&e, &peer.url(), "relay");
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
    drop(peer);
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
        support::json_request("POST", &e.anon_url("/api/federation/pair"), Some(body))
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
