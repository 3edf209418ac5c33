//! The V4L2 kernel side against a real driver: Debian's x86_64 kernel booted under QEMU with an initramfs holding busybox, the `vivid` virtual camera module and this build's eyrie
//! (tests/support/vivid_init.sh is its /init). Checks what the device listing and a camera on the
//! device report. Needs the packages tests/run installs; skips with a reason outside CI when they
//! are missing, never under CI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn missing(what: &str) -> bool {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{what} is required under CI (tests/run installs it)");
    }
    eprintln!("SKIP: {what} is missing (tests/run installs it)");
    true
}

/// The installed kernel that has the vivid module: (vmlinuz, module directory).
fn kernel() -> Option<(PathBuf, PathBuf)> {
    let mut found = None;
    for e in std::fs::read_dir("/lib/modules").ok()?.flatten() {
        let ver = e.file_name().to_string_lossy().to_string();
        let vmlinuz = PathBuf::from(format!("/boot/vmlinuz-{ver}"));
        if vmlinuz.exists() && e.path().join("modules.dep").exists() {
            found = Some((vmlinuz, e.path()));
        }
    }
    found
}

fn copy_into(root: &Path, file: &Path) {
    let dest = root.join(file.strip_prefix("/").unwrap());
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::copy(file, &dest).unwrap_or_else(|e| panic!("copying {}: {e}", file.display()));
}

/// The shared libraries a binary needs, as ldd lists them.
fn libraries(bin: &Path) -> Vec<PathBuf> {
    let out = Command::new("ldd").arg(bin).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

fn section(console: &str, name: &str) -> String {
    let start = format!("=== {name}\n");
    let Some(i) = console.find(&start) else {
        panic!("no {name} section on the console:\n{console}");
    };
    let rest = &console[i + start.len()..];
    rest[..rest.find("=== END").unwrap_or(rest.len())]
        .trim()
        .to_string()
}

#[test]
fn lists_and_opens_a_vivid_camera() {
    for tool in ["qemu-system-x86_64", "cpio", "ldd", "strip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found && missing(tool) {
            return;
        }
    }
    if !Path::new("/bin/busybox").exists() && missing("busybox-static") {
        return;
    }
    let Some((vmlinuz, modules)) = kernel().or_else(|| {
        missing("a Debian kernel (linux-image-amd64)");
        None
    }) else {
        return;
    };

    // The initramfs: busybox, vivid and the modules it needs, eyrie and its libraries.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    for d in ["bin", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    copy_into(&root, Path::new("/bin/busybox"));
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/vivid_init.sh"),
        root.join("init"),
    )
    .unwrap();
    let dep = std::fs::read_to_string(modules.join("modules.dep")).unwrap();
    let line = dep
        .lines()
        .find(|l| l.contains("/vivid.ko"))
        .expect("the kernel has the vivid module");
    for m in line.split([':', ' ']).filter(|w| w.ends_with(".ko")) {
        copy_into(&root, &modules.join(m));
    }
    for f in [
        "modules.dep",
        "modules.alias",
        "modules.symbols",
        "modules.builtin",
    ] {
        if modules.join(f).exists() {
            copy_into(&root, &modules.join(f));
        }
    }
    let eyrie = Path::new(env!("CARGO_BIN_EXE_eyrie"));
    // Without debug information: the test build's would not fit in the VM's memory.
    let ok = Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(root.join("eyrie"))
        .arg(eyrie)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "strip {}", eyrie.display());
    for lib in libraries(eyrie) {
        copy_into(&root, &lib);
    }
    // The admin account the init script's requests log in as.
    std::fs::write(
        root.join("eyrie.toml"),
        "[storage]\nmin_free = 0\n[auth]\nadmin_user = \"admin\"\nadmin_password = \"eyrie-test-password\"\n",
    )
    .unwrap();
    let initrd = tmp.path().join("initrd.cpio");
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && find . | cpio -o -H newc --quiet > '{}'",
            root.display(),
            initrd.display()
        ))
        .status()
        .unwrap()
        .success();
    assert!(ok, "building the initramfs");

    // Boot it; the console is the serial port. No network device: nothing leaves the VM.
    let mut qemu = Command::new("qemu-system-x86_64")
        // TCG, not KVM: on this CI machine (itself a Firecracker VM) a KVM guest hangs in the
        // kernel's decompressor, with QEMU 7.2 and 10.0 alike; TCG boots this in seconds.
        .args(["-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1"])
        .args([
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
            "-serial",
            "stdio",
        ])
        .arg("-kernel")
        .arg(&vmlinuz)
        .arg("-initrd")
        .arg(&initrd)
        .args(["-append", "console=ttyS0 panic=-1 quiet"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qemu");
    let started = Instant::now();
    loop {
        if qemu.try_wait().unwrap().is_some() {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = qemu.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = qemu.wait_with_output().unwrap();
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        !console.contains("=== FAILED"),
        "console:\n{console}\nqemu: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let devices: Value = serde_json::from_str(&section(&console, "DEVICES"))
        .unwrap_or_else(|e| panic!("device list is not JSON ({e}); console:\n{console}"));
    let list = devices["devices"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{devices:#}");
    let vivid = &list[0];
    assert_eq!(vivid["path"], "/dev/video0");
    assert_eq!(vivid["driver"], "vivid");
    let formats = vivid["formats"].as_array().unwrap();
    let yuyv = formats
        .iter()
        .find(|f| f["fourcc"] == "YUYV")
        .unwrap_or_else(|| panic!("vivid offers YUYV: {vivid:#}"));
    eprintln!("vivid's YUYV as Eyrie lists it: {yuyv}");
    let sizes = yuyv["sizes"].as_array().unwrap();
    assert!(!sizes.is_empty(), "{yuyv:#}");
    assert!(
        sizes
            .iter()
            .all(|s| s["width"].as_u64().unwrap() > 0 && !s["fps"].as_array().unwrap().is_empty()),
        "{yuyv:#}"
    );
    // Streaming from the driver: buffers of the mode's size, timestamps on the monotonic clock.
    let trial: Value = serde_json::from_str(&section(&console, "TRIAL"))
        .unwrap_or_else(|e| panic!("trial capture is not JSON ({e}); console:\n{console}"));
    let t = &trial["captures"][0];
    eprintln!("trial capture from vivid: {t}");
    assert_eq!(t["error"], Value::Null, "{t:#}");
    assert_eq!(t["frames"], 10, "{t:#}");
    assert_eq!(t["fourcc"], "YUYV");
    let frame_bytes = t["width"].as_u64().unwrap() * t["height"].as_u64().unwrap() * 2;
    assert_eq!(t["min_bytes"].as_u64(), Some(frame_bytes), "{t:#}");
    assert_eq!(t["max_bytes"].as_u64(), Some(frame_bytes), "{t:#}");
    assert_eq!(t["timestamps_increasing"], true, "{t:#}");
    assert_eq!(t["timestamps_set"], true, "{t:#}");
    assert_eq!(
        (t["width"].as_u64(), t["height"].as_u64()),
        (Some(640), Some(360))
    );
    // On CLOCK_MONOTONIC: within a second of it (another clock would be years off).
    let ahead = t["max_ahead_us"].as_i64().unwrap();
    assert!(ahead.abs() < 1_000_000, "{t:#}");
    assert!(t["dropped"].is_u64());

    // vivid makes raw pictures only, which this build cannot record yet: listed as such, and a
    // camera on it says why.
    assert_eq!(vivid["recordable"], false);
    assert!(vivid["note"].as_str().unwrap().contains("uncompressed"));
    let cam: Value = serde_json::from_str(&section(&console, "CAMERA")).unwrap();
    assert_eq!(cam["status"]["state"], "error", "{cam:#}");
    let err = cam["status"]["last_error"].as_str().unwrap();
    assert!(err.contains("uncompressed"), "{err}");
}
