//! The ONVIF test devices (tests/support/onvif_responder.py) as a child process of a test,
//! started in the calling thread's network namespace and killed on drop. What the devices print
//! after READY (which device received a UsernameToken with which call, ...) is collected.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct Responder {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Responder {
    /// Devices of the kinds in `devices` (comma-separated, see the script) on `addr`, with the
    /// user `admin` and `password`, offering `main` and `sub` as stream URIs.
    pub fn start(addr: &str, password: &str, main: &str, sub: &str, devices: &str) -> Responder {
        Self::start_with(addr, password, main, sub, devices, &[])
    }

    /// [`Responder::start`] with more arguments for the script.
    pub fn start_with(
        addr: &str,
        password: &str,
        main: &str,
        sub: &str,
        devices: &str,
        extra: &[&str],
    ) -> Responder {
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
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the ONVIF responder");
        let stdin = child.stdin.take().unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("READY"), "responder: {line:?}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in out.lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Responder {
            child,
            stdin,
            lines,
        }
    }

    /// Sends a notification on `topic` with `item` = `value` to every event subscription of
    /// `device`.
    pub fn emit(&mut self, device: &str, topic: &str, item: &str, value: &str) {
        use std::io::Write;
        writeln!(self.stdin, "emit {device} {topic} {item} {value}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// The lines printed so far that start with `word` (`SUBSCRIBE`, `RENEW`, ...).
    pub fn said(&self, word: &str) -> Vec<String> {
        let prefix = format!("{word} ");
        self.lines()
            .into_iter()
            .filter(|l| l.starts_with(&prefix))
            .collect()
    }

    /// Every line the devices printed after READY so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// The devices that have received a WS-Security UsernameToken so far, one entry per call.
    pub fn tokens_received(&self) -> Vec<String> {
        self.lines()
            .iter()
            .filter_map(|l| l.strip_prefix("TOKEN "))
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
