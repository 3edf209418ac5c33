//! Child processes of a test: a polite SIGTERM and a bounded wait.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Asks process `pid` to stop (SIGTERM, by kill(1), so that no unsafe code is needed here).
pub fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// The child's exit status, or None when it has not exited within `limit`.
pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
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
