//! A fake HTTP peer on loopback that answers as a test tells it to.

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

/// How a fake peer answers a request path.
pub enum Reply {
    /// Status and JSON body, then the connection closes.
    Body(u16, String),
    /// Status, content type and body, then the connection closes.
    Typed(u16, &'static str, String),
    /// Accepts and never answers.
    Silent,
    /// A chunked body that never ends.
    Endless,
    /// Status and a plain-text body of this many bytes, sent one byte a second.
    Dribble(u16, usize),
}

/// A small HTTP peer on loopback that answers every request with `reply(path)`, for peers that
/// misbehave and for speaking another NVR's dialect. It stops when dropped.
pub struct FakePeer {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakePeer {
    pub fn start(reply: impl Fn(&str, Option<&str>) -> Reply + Send + Sync + 'static) -> FakePeer {
        use std::io::Write;
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let reply = Arc::new(reply);
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let reply = reply.clone();
                let stopped = stopped.clone();
                std::thread::spawn(move || {
                    s.set_nonblocking(false).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                        match s.read(&mut byte) {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_string();
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let key = head
                        .lines()
                        .find_map(|l| {
                            l.strip_prefix("x-nvr-auth: ")
                                .or_else(|| l.strip_prefix("X-NVR-Auth: "))
                        })
                        .map(str::to_string);
                    match reply(&path, key.as_deref()) {
                        Reply::Body(status, body) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Reply::Typed(status, mime, body) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 {status} X\r\ncontent-type: {mime}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                                body.len()
                            );
                        }
                        Reply::Silent => {
                            while !stopped.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                        Reply::Dribble(status, len) => {
                            let _ = write!(
                                s,
                                "HTTP/1.1 {status} X\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\nconnection: close\r\n\r\n"
                            );
                            for _ in 0..len {
                                if stopped.load(Ordering::Relaxed) || s.write_all(b"x").is_err() {
                                    break;
                                }
                                std::thread::sleep(Duration::from_secs(1));
                            }
                        }
                        Reply::Endless => {
                            let _ = s.write_all(
                                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
                            );
                            let chunk = format!("1000\r\n{}\r\n", "[".repeat(4096));
                            while !stopped.load(Ordering::Relaxed)
                                && s.write_all(chunk.as_bytes()).is_ok()
                            {
                            }
                        }
                    }
                });
            }
        });
        FakePeer { port, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for FakePeer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
