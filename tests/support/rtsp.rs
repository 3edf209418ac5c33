//! The GStreamer RTSP test server (tests/support/rtsp_server.py) as a child process of a test.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::process::{unsafe_sigterm, wait_timeout};
use super::tools;

/// Whether the RTSP test server can run here: ffmpeg and ffprobe (to check what Eyrie wrote)
/// and GStreamer's RTSP server for /usr/bin/python3. Skips with the reason printed, or fails
/// under CI.
pub fn available() -> bool {
    tools::require(&["ffprobe", "ffmpeg"])
        && tools::python_modules(&[(
            "GstRtspServer",
            "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer",
        )])
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The GStreamer RTSP server of tests/support/rtsp_server.py (mounts /h264, /h265, /mjpeg and
/// the clips given with `--clip NAME=FILE`).
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
