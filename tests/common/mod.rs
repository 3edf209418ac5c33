//! Shared pieces of the integration tests: real `eyrie` processes on loopback, the GStreamer
//! RTSP test server, and ffmpeg/ffprobe checks of what Eyrie wrote.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Under CI every tool must be there; elsewhere a test without its tool says why and skips.
pub fn have_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{tool} is required under CI (tests/run installs it)");
        }
        eprintln!("SKIP: {tool} is not installed (tests/run installs it)");
    }
    found
}

pub fn have_rtsp_server() -> bool {
    if !have_tool("ffprobe") || !have_tool("ffmpeg") {
        return false;
    }
    let ok = Command::new("/usr/bin/python3")
        .args(["-c", "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("python3-gi with GstRtspServer is required under CI (tests/run installs it)");
        }
        eprintln!(
            "SKIP: GstRtspServer for /usr/bin/python3 is not installed (tests/run installs it)"
        );
    }
    ok
}

/// `(status, JSON body or Null when empty)` of a request with an optional JSON body; None when
/// nothing answers. A body that is not JSON fails the test.
pub fn json_request(method: &str, url: &str, body: Option<&str>) -> Option<(u16, Value)> {
    let req = ureq::request(method, url).timeout(Duration::from_secs(15));
    let res = match body {
        Some(b) => req.set("content-type", "application/json").send_string(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"))
    };
    Some((status, json))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The account the harness makes on every node (unless the test's config has an `[auth]`
/// section of its own), and with which every call of the harness is made.
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "eyrie-test-password";

pub struct Eyrie {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    /// Basic credentials the harness calls with, when it made the account.
    pub creds: Option<(String, String)>,
    log: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Eyrie {
    /// Starts eyrie on a fresh data directory with `config` as its eyrie.toml.
    pub fn start(config: &str, extra: &[&str]) -> Eyrie {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut e = Self::start_in(&dir, config, extra);
        e._tmp = Some(tmp);
        e
    }

    /// Starts eyrie on `dir` (kept between runs, for restart tests). Unless `config` has an
    /// `[auth]` section, the node gets the harness's admin account at first start and every
    /// call the harness makes (and every `url(path)`) carries its Basic credentials.
    pub fn start_in(dir: &Path, config: &str, extra: &[&str]) -> Eyrie {
        std::fs::create_dir_all(dir).unwrap();
        let cfg = dir.join("eyrie.toml");
        // Processes on the host never multicast on its real network: mDNS is off unless a
        // test (in its own network namespace) turns it on.
        let config = if config.contains("[discovery]") {
            config.to_string()
        } else {
            format!("{config}\n[discovery]\nenabled = false\n")
        };
        let (config, creds) = if config.contains("[auth]") {
            (config.to_string(), None)
        } else {
            (
                format!(
                    "{config}\n[auth]\nadmin_user = \"{ADMIN_USER}\"\nadmin_password = \"{ADMIN_PASSWORD}\"\n"
                ),
                Some((ADMIN_USER.to_string(), ADMIN_PASSWORD.to_string())),
            )
        };
        std::fs::write(&cfg, config).unwrap();
        let port = free_port();
        let log = dir.join(format!("eyrie-{port}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_eyrie"))
            .arg("run")
            .arg("--data")
            .arg(dir.join("data"))
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--config")
            .arg(&cfg)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting eyrie");
        let e = Eyrie {
            child,
            port,
            dir: dir.to_path_buf(),
            creds,
            log,
            _tmp: None,
        };
        e.wait_until("answers /api/session", Duration::from_secs(20), || {
            e.try_get("/api/session").is_some_and(|(s, _)| s == 200)
        });
        e
    }

    /// `url("")` is the node's address as peers and browsers know it (no credentials);
    /// `url("/api/...")` is a URL to call, with the harness's Basic credentials in it (ureq sends
    /// them as `Authorization: Basic`).
    pub fn url(&self, path: &str) -> String {
        match (&self.creds, path) {
            (Some((u, p)), path) if !path.is_empty() => {
                format!("http://{u}:{p}@127.0.0.1:{}{path}", self.port)
            }
            _ => format!("http://127.0.0.1:{}{path}", self.port),
        }
    }

    /// A URL to call without any credentials.
    pub fn anon_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// `(status, JSON body)`; None when the server does not answer.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Option<(u16, Value)> {
        json_request(method, &self.url(path), body)
    }

    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        self.try_request(method, path, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer; log:\n{}", self.log()))
    }

    pub fn try_get(&self, path: &str) -> Option<(u16, Value)> {
        self.try_request("GET", path, None)
    }

    pub fn get(&self, path: &str) -> Value {
        let (s, v) = self.request("GET", path, None);
        assert_eq!(s, 200, "GET {path}: {v}");
        v
    }

    /// Downloads `path` to a file in the data directory and returns its path.
    pub fn download(&self, path: &str, name: &str) -> PathBuf {
        let resp = ureq::get(&self.url(path))
            .timeout(Duration::from_secs(60))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let out = self.dir.join(name);
        let mut f = std::fs::File::create(&out).unwrap();
        std::io::copy(&mut resp.into_reader(), &mut f).unwrap();
        out
    }

    pub fn add_camera(&self, body: &str) -> Value {
        let (s, v) = self.request("POST", "/api/cameras", Some(body));
        assert_eq!(s, 201, "POST /api/cameras {body}: {v}");
        v
    }

    pub fn camera_status(&self, id: &str) -> Value {
        self.get(&format!("/api/cameras/{id}"))["status"].clone()
    }

    pub fn recordings(&self, camera: &str) -> Value {
        self.get(&format!("/api/recordings?camera={camera}"))
    }

    /// Polls `cond` every 250 ms; on timeout fails with `what` and the server log.
    pub fn wait_until(&self, what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while !cond() {
            if start.elapsed() > limit {
                panic!(
                    "timed out after {limit:?} waiting until eyrie {what}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Closed segments of a camera as listed by the API.
    pub fn closed_segments(&self, camera: &str) -> Vec<Value> {
        self.recordings(camera)["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["state"] != "open")
            .cloned()
            .collect()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe_sigterm(self.child.id());
        wait_timeout(&mut self.child, Duration::from_secs(20)).expect("eyrie exits on SIGTERM")
    }
}

impl Drop for Eyrie {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The GStreamer RTSP server of tests/support/rtsp_server.py (mounts /h264 and /h265).
pub struct RtspServer {
    child: Child,
    pub port: u16,
}

impl RtspServer {
    pub fn start(port: u16, extra: &[&str]) -> RtspServer {
        let mut child = Command::new("/usr/bin/python3")
            .arg(repo().join("tests/support/rtsp_server.py"))
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting the RTSP test server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("READY"),
            "RTSP server did not start: {line:?}"
        );
        RtspServer { child, port }
    }

    pub fn url(&self, mount: &str) -> String {
        format!("rtsp://127.0.0.1:{}/{mount}", self.port)
    }

    pub fn stop(&mut self) {
        unsafe_sigterm(self.child.id());
        if wait_timeout(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes every frame of `file` with ffmpeg; panics on any error output.
pub fn assert_decodes(file: &Path) {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "ffmpeg could not decode {} cleanly:\n{err}",
        file.display()
    );
}

/// `(duration in seconds, decoded frame count)` as ffprobe reports them.
pub fn probe(file: &Path) -> (f64, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "format=duration:stream=nb_read_frames",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dur = v["format"]["duration"].as_str().unwrap().parse().unwrap();
    let frames = v["streams"][0]["nb_read_frames"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (dur, frames)
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

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

/// A 640x360 15 fps MJPEG clip from ffmpeg, in the QuickTime `jpeg` sample entry, for a file
/// source to loop; `None` (skip) without ffmpeg.
pub fn mjpeg_clip(dir: &std::path::Path) -> Option<String> {
    if !have_tool("ffmpeg") || !have_tool("ffprobe") {
        return None;
    }
    let clip = dir.join("mjpeg.mp4");
    let out = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=640x360:rate=15",
        ])
        .args(["-frames:v", "60", "-c:v", "mjpeg", "-q:v", "5", "-f", "mov"])
        .arg(&clip)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(format!("file://{}", clip.display()))
}
