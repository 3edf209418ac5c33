//! Attacks on a running node, each asserting the bound that holds it (docs/security.md): the
//! attacker on 127.0.0.1, the admin on 127.0.0.2, and the admin's page must keep answering.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use socket2::{Domain, Socket, Type};
use support::{ADMIN_PASSWORD, ADMIN_USER, Eyrie};

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
