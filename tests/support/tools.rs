//! The one check of what a test needs from the machine: tools on PATH, Python modules, root.
//! Under CI (`CI=true`) every need must be met — tests/run installs the tools and CI runs as
//! root — so a missing one fails the test; elsewhere the test prints why and skips.

use std::process::{Command, Stdio};

/// A need of the test that this machine does not meet: fails under CI, else prints `why` as the
/// reason the test skips. Always false, so that it reads `if !(have || unmet(why)) { return; }`.
pub fn unmet(why: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}: required under CI (tests/run installs every tool; CI runs as root)");
    }
    eprintln!("SKIP: {why}");
    false
}

/// Whether every one of `tools` is on PATH (see the module header for when one is not).
pub fn require(tools: &[&str]) -> bool {
    tools.iter().all(|tool| {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        found || unmet(&format!("{tool} is not installed (tests/run installs it)"))
    })
}

/// Whether /usr/bin/python3 can run each `(what, code)`: `code` imports the modules a helper
/// script needs, `what` names them in the reason printed when it cannot.
pub fn python_modules(modules: &[(&str, &str)]) -> bool {
    modules.iter().all(|(what, code)| {
        let ok = Command::new("/usr/bin/python3")
            .args(["-c", code])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok || unmet(&format!(
            "{what} for /usr/bin/python3 is not installed (tests/run installs it)"
        ))
    })
}

/// Whether the test runs as root (network namespaces, mounts).
pub fn root() -> bool {
    rustix::process::geteuid().is_root() || unmet("this test needs root")
}
