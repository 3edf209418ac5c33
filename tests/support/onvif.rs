//! The ONVIF test devices (tests/support/onvif_responder.py) as a child process of a test,
//! started in the calling thread's network namespace and killed on drop.

use std::process::{Child, Command, Stdio};

pub struct Responder(Child);

impl Responder {
    /// Devices of the kinds in `devices` (comma-separated, see the script) on `addr`, with the
    /// user `admin` and `password`, offering `main` and `sub` as stream URIs.
    pub fn start(addr: &str, password: &str, main: &str, sub: &str, devices: &str) -> Responder {
        use std::io::BufRead;
        let mut child = Command::new("/usr/bin/python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/support/onvif_responder.py"
            ))
            .args(["--addr", addr, "--user", "admin", "--password", password])
            .args(["--main-uri", main, "--sub-uri", sub, "--devices", devices])
            // An hour off: the digest only passes if Eyrie signs in the camera's time.
            .args(["--clock-skew", "3600"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the ONVIF responder");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("READY"), "responder: {line:?}");
        Responder(child)
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
