//! The node harness: a real `eyrie` process on loopback, on a data directory of its own, with
//! the harness's admin account, and the calls tests make of it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::process::{unsafe_sigterm, wait_timeout};
use super::web::{free_port, json_request};

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
        closed(self.recordings(camera))
    }

    /// Closed segments of a camera that overlap `[start, end)` (epoch ms).
    pub fn closed_segments_in(&self, camera: &str, start: i64, end: i64) -> Vec<Value> {
        closed(self.get(&format!(
            "/api/recordings?camera={camera}&start={start}&end={end}"
        )))
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

/// The segments of a recordings listing that are closed.
fn closed(listing: Value) -> Vec<Value> {
    listing["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] != "open")
        .cloned()
        .collect()
}
