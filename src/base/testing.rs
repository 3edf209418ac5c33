//! What the unit tests of any module share that knows nothing of Eyrie.

/// Whether `tool` (ffmpeg, ffprobe) runs here. Under CI every tool must be there (tests/run
/// installs them), so a missing one fails the test; elsewhere the test says why and skips.
pub fn have(tool: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("-version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI (tests/run installs it)"
        );
        eprintln!("SKIP: {tool} is not installed (tests/run installs it)");
    }
    found
}
