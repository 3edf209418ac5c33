//! The appliance images (docs/image.md): `image/build` makes each board's SD-card image from
//! Debian's arm64 or armhf packages, and the qemu-aarch64 one boots under
//! `qemu-system-aarch64 -M virt` (TCG) as a card would: first boot grows the data partition and
//! makes root slot B, Eyrie answers through a forwarded port, a camera survives power cuts, a
//! `vivid` camera in the guest records segments the host decodes with ffprobe, an update through
//! the API (signed by the key the image was built with; unsigned, refused) lands in slot B and
//! runs after the reboot the API starts, and the initramfs follows
//! `/boot/ab.txt` (docs/update.md) back to the good slot when a trial fails. The 32-bit
//! qemu-armv7 image boots once under `qemu-system-arm -M virt`: Eyrie starts, its demo camera
//! records, and a segment fetched through the forwarded port decodes. The Raspberry Pi images
//! are checked on the file: partition table, boot files, `config.txt`/`cmdline.txt`, an Eyrie of
//! the board's architecture in the root; the rpi3 one also boots in QEMU's raspi3b. Needs the
//! packages tests/run installs and Debian's package archive; skips with a reason outside CI when
//! tools are missing, never under CI.

mod support;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use support::{free_port, json_request, tools};

const ADMIN: &str = "admin:eyrie-test-password"; // board/qemu-*/eyrie.toml
const MIB: u64 = 1024 * 1024;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// What Eyrie is built for on a board's architecture (board.conf's ARCH, image/build).
struct Arch {
    rust_target: &'static str,
    linker: &'static str,
    /// How file(1) names such a program.
    elf: &'static str,
}

const ARM64: Arch = Arch {
    rust_target: "aarch64-unknown-linux-gnu",
    linker: "aarch64-linux-gnu-gcc",
    elf: "ARM aarch64",
};
const ARMHF: Arch = Arch {
    rust_target: "armv7-unknown-linux-gnueabihf",
    linker: "arm-linux-gnueabihf-gcc",
    elf: "ARM, EABI5",
};

/// The build tools, the cross linker and a Rust for the architecture: rustup's target or
/// Debian's rustc with its standard library (libstd-rust-web-dev:arm64/armhf).
fn can_build(arch: &Arch) -> bool {
    if !tools::require(BUILD_TOOLS) || !tools::require(&[arch.linker]) {
        return false;
    }
    let rustup = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(arch.rust_target));
    let debian = Path::new("/usr/lib/rustlib")
        .join(arch.rust_target)
        .exists();
    rustup
        || debian
        || tools::unmet(&format!(
            "a {} Rust target is not installed (docs/cross.md)",
            arch.rust_target
        ))
}

const BUILD_TOOLS: &[&str] = &[
    "genimage",
    "mkfs.vfat",
    "mcopy",
    "mksquashfs",
    "unsquashfs",
    "mke2fs",
    "sfdisk",
    "readelf",
    "depmod",
    "cpio",
    "flock",
    "file",
];

/// `image/build <board>` into a fresh directory (the package cache under target/image is
/// shared), the root signed with `sign_key` when given (by this test's eyrie); the image's
/// path.
fn build(board: &str, out: &Path, sign_key: Option<&Path>) -> PathBuf {
    let started = Instant::now();
    let mut cmd = Command::new(repo().join("image/build"));
    if let Some(key) = sign_key {
        cmd.env("EYRIE_SIGN_KEY", key)
            .env("EYRIE_HOST_BIN", env!("CARGO_BIN_EXE_eyrie"));
    }
    let res = cmd
        .arg(board)
        .env("EYRIE_IMAGE_OUT", out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("running image/build");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(res.status.success(), "image/build {board} failed:\n{err}");
    eprintln!(
        "image/build {board}: {:.0} s\n{}",
        started.elapsed().as_secs_f64(),
        err.lines().last().unwrap_or("")
    );
    let img = out.join(format!("eyrie-{board}.img"));
    assert!(img.exists(), "no {}", img.display());
    assert!(
        out.join(format!("eyrie-{board}-root.squashfs")).exists(),
        "the update's root image is written beside the image"
    );
    img
}

/// The partitions of a disk image as sfdisk reads them: (number, start sector, sectors, type).
fn partitions(img: &Path) -> Vec<(u32, u64, u64, String)> {
    let out = Command::new("sfdisk")
        .arg("--json")
        .arg(img)
        .output()
        .unwrap();
    assert!(out.status.success(), "sfdisk --json {}", img.display());
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(t["partitiontable"]["label"], "dos", "{t:#}");
    let name = img.to_string_lossy().to_string();
    t["partitiontable"]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let node = p["node"].as_str().unwrap();
            (
                node.strip_prefix(&name).unwrap().parse().unwrap(),
                p["start"].as_u64().unwrap(),
                p["size"].as_u64().unwrap(),
                p["type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn part(parts: &[(u32, u64, u64, String)], n: u32) -> Option<(u64, u64)> {
    parts
        .iter()
        .find(|p| p.0 == n)
        .map(|p| (p.1 * 512, p.2 * 512))
}

/// mtools on the boot partition (partition 1 of `img`).
fn mtools(tool: &str, img: &Path, args: &[&str]) -> String {
    let (start, _) = part(&partitions(img), 1).expect("a boot partition");
    let out = Command::new(tool)
        .arg("-i")
        .arg(format!("{}@@{start}", img.display()))
        .args(args)
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).replace('\r', "")
}

fn boot_file(img: &Path, name: &str) -> String {
    mtools("mtype", img, &[&format!("::{name}")])
}

fn boot_files(img: &Path) -> Vec<String> {
    mtools("mdir", img, &["-b", "::"])
        .lines()
        .map(|l| l.trim_start_matches("::/").to_string())
        .collect()
}

/// The key=value lines of a file on the boot partition.
fn keys(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn key(text: &str, k: &str) -> String {
    keys(text)
        .into_iter()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

fn set_ab(img: &Path, dir: &Path, text: &str) {
    let f = dir.join("ab.txt");
    std::fs::write(&f, text).unwrap();
    mtools("mcopy", img, &["-o", f.to_str().unwrap(), "::ab.txt"]);
}

/// QEMU's `virt` machine as one of the QEMU boards (board/qemu-*) runs on it.
struct Machine {
    qemu: &'static str,
    /// `-M`.
    machine: &'static str,
    cpu: &'static str,
    /// More devices the board has.
    devices: &'static [&'static str],
}

const QEMU_AARCH64: Machine = Machine {
    qemu: "qemu-system-aarch64",
    machine: "virt",
    cpu: "cortex-a72",
    // A hardware watchdog, as the Pis have (bcm2835_wdt).
    devices: &["-device", "i6300esb"],
};
// No watchdog: Debian's armhf kernel has no driver for one on this machine (board.conf).
const QEMU_ARMV7: Machine = Machine {
    qemu: "qemu-system-arm",
    // The PCI host's ECAM and MMIO windows below 4 GiB, where a kernel without LPAE (armmp)
    // reaches them: otherwise the virtio PCI disk and NIC are not found.
    machine: "virt,highmem=off",
    cpu: "cortex-a15",
    devices: &[],
};

/// A running guest of a QEMU board booted from `disk` with the kernel and initramfs in `dir`,
/// its console in a file.
struct Vm {
    child: Child,
    console: PathBuf,
    port: u16,
}

impl Vm {
    fn boot(machine: &Machine, dir: &Path, disk: &Path, name: &str, cmdline: &str) -> Vm {
        let port = free_port();
        let console = dir.join(format!("console-{name}.log"));
        let child = Command::new(machine.qemu)
            .args([
                "-M",
                machine.machine,
                "-cpu",
                machine.cpu,
                "-m",
                "512",
                "-smp",
                "2",
            ])
            // TCG: KVM guests hang on this CI machine (see tests/vivid.rs), and the host is x86.
            .args([
                "-accel",
                "tcg",
                "-nodefaults",
                "-no-reboot",
                "-display",
                "none",
            ])
            .args(["-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-kernel")
            .arg(dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(dir.join("initrd.img"))
            .arg("-append")
            .arg(format!("console=ttyAMA0 panic=-1 quiet {cmdline}"))
            .arg("-drive")
            .arg(format!("file={},if=virtio,format=raw", disk.display()))
            // User networking that reaches nothing outside the VM but the forwarded port.
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:8080"
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .args(machine.devices)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", machine.qemu));
        Vm {
            child,
            console,
            port,
        }
    }

    fn console(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.console).unwrap_or_default()).replace('\r', "")
    }

    fn url(&self, path: &str) -> String {
        format!("http://{ADMIN}@127.0.0.1:{}{path}", self.port)
    }

    fn get_bytes(&self, path: &str) -> Vec<u8> {
        let resp = ureq::get(&self.url(path))
            .timeout(Duration::from_secs(60))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}; console:\n{}", self.console()));
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut body).unwrap();
        body
    }

    fn call(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
        json_request(method, &self.url(path), body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer; console:\n{}", self.console()))
    }

    /// Seconds from now until /api/health answers 200.
    fn wait_healthy(&mut self) -> (f64, Value) {
        let started = Instant::now();
        loop {
            if let Some((200, h)) = json_request("GET", &self.url("/api/health"), None) {
                return (started.elapsed().as_secs_f64(), h);
            }
            if let Some(st) = self.child.try_wait().unwrap() {
                panic!("qemu exited ({st}); console:\n{}", self.console());
            }
            if started.elapsed() > Duration::from_secs(180) {
                panic!("no /api/health within 180 s; console:\n{}", self.console());
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The URL of the first closed segment of `camera`, waiting up to 2 minutes for one.
    fn closed_segment(&self, camera: &str) -> String {
        let started = Instant::now();
        loop {
            let (_, list) = self.call("GET", &format!("/api/recordings?camera={camera}"), None);
            let closed = list["segments"].as_array().and_then(|s| {
                s.iter()
                    .find(|s| s["state"] == "closed")
                    .map(|s| s["url"].as_str().unwrap().to_string())
            });
            if let Some(url) = closed {
                return url;
            }
            let (_, cam) = self.call("GET", &format!("/api/cameras/{camera}"), None);
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no closed segment from {camera}: {cam:#}\nconsole:\n{}",
                self.console()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Fetches a segment into `mp4` on the host and reads it with ffprobe, counting frames.
    fn probe(&self, segment: &str, mp4: &Path) -> Value {
        std::fs::write(mp4, self.get_bytes(segment)).unwrap();
        let probe = Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-count_frames",
                "-show_streams",
                "-of",
                "json",
            ])
            .arg(mp4)
            .output()
            .expect("ffprobe");
        assert!(
            probe.status.success(),
            "{}",
            String::from_utf8_lossy(&probe.stderr)
        );
        serde_json::from_slice(&probe.stdout).unwrap()
    }

    /// Pulls the plug: no shutdown, as when a card's power goes.
    fn power_cut(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.console()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn qemu_image_boots_keeps_cameras_and_switches_slots() {
    if !can_build(&ARM64) || !tools::require(&["qemu-system-aarch64", "mtype"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The update key the image is built with: made here, never kept.
    let sign_key = dir.join("update.key");
    let made = Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .args(["sign", "keygen"])
        .arg(&sign_key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let public = String::from_utf8(made.stdout).unwrap().trim().to_string();
    let img = build("qemu-aarch64", &dir.join("out"), Some(&sign_key));

    let apparent = std::fs::metadata(&img).unwrap().len();
    assert!(apparent <= 128 * MIB, "image is {apparent} bytes");
    let parts = partitions(&img);
    let (_, slot) = part(&parts, 2).expect("root slot A is partition 2");
    let (data_start, data_size) = part(&parts, 4).expect("data is partition 4");
    assert!(part(&parts, 3).is_none(), "slot B is made on first boot");
    let files = boot_files(&img);
    for f in [
        "vmlinuz",
        "initrd.img",
        "eyrie.toml",
        "ab.txt",
        "update-keys.txt",
    ] {
        assert!(
            files.iter().any(|x| x == f),
            "{f} on the boot partition: {files:?}"
        );
    }
    assert_eq!(key(&boot_file(&img, "ab.txt"), "active"), "a");
    let trusted = boot_file(&img, "update-keys.txt");
    assert!(
        trusted.lines().any(|l| l.starts_with(&public)),
        "the boot partition trusts the build's key: {trusted}"
    );

    // The kernel and initramfs QEMU loads (it has no boot firmware for this image) come from
    // the image's boot partition; the disk is a copy grown as a larger card would be.
    for f in ["vmlinuz", "initrd.img"] {
        let dest = dir.join(f);
        mtools("mcopy", &img, &[&format!("::{f}"), dest.to_str().unwrap()]);
    }
    let disk = dir.join("disk.img");
    std::fs::copy(&img, &disk).unwrap();
    File::options()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(1024 * MIB)
        .unwrap();

    // First boot: grows data, makes slot B at the end, Eyrie comes up.
    let mut vm = Vm::boot(&QEMU_AARCH64, dir, &disk, "1", "");
    let started = Instant::now();
    let (_, health) = vm.wait_healthy();
    let boot_s = started.elapsed().as_secs_f64();
    eprintln!("first boot to /api/health under TCG: {boot_s:.1} s");
    let console = vm.console();
    assert!(
        console.contains("first boot: data partition grows"),
        "{console}"
    );
    assert!(console.contains("root slot a (/dev/vda2)"), "{console}");
    assert!(
        console.contains("hardware watchdog on /dev/watchdog"),
        "{console}"
    );
    // The host name from the NIC's MAC (QEMU's default 52:54:00:12:34:56), Eyrie's default
    // label; reached at all, the guest got its address by DHCP.
    assert_eq!(health["label"], "eyrie-3456", "{health:#}");
    let data_bytes = health["disk"]["total_bytes"].as_u64().unwrap();
    assert!(
        data_bytes > 700 * MIB,
        "the data filesystem fills the card less slot B: {data_bytes} bytes"
    );
    let total = health["memory"]["total_bytes"].as_u64().unwrap();
    let available = health["memory"]["available_bytes"].as_u64().unwrap();
    eprintln!(
        "idle memory in use, whole system (MemTotal - MemAvailable): {} MiB of {} MiB",
        (total - available) / MIB,
        total / MIB
    );
    let (status, cam) = vm.call(
        "POST",
        "/api/cameras",
        Some(r#"{"id": "porch", "name": "Porch", "source": "rtsp://192.0.2.1/stream", "enabled": false}"#),
    );
    assert_eq!(status, 201, "{cam:#}");
    vm.power_cut();

    let parts = partitions(&disk);
    let (b_start, b_size) = part(&parts, 3).expect("slot B made on first boot");
    let (d_start, d_size) = part(&parts, 4).unwrap();
    assert_eq!(b_size, slot, "slot B is as large as slot A");
    assert_eq!(d_start, data_start);
    assert!(d_size > data_size);
    assert_eq!(d_start + d_size, b_start, "data reaches slot B");
    assert!(
        1024 * MIB - (b_start + b_size) < MIB,
        "slot B ends the card"
    );

    // Second boot, told to try slot B, which holds no root yet: the initramfs falls back to
    // slot A at once and says so in ab.txt. The vivid module is asked for on the command line.
    set_ab(&disk, dir, "active=a\nnext=b\ntrial=\nfailed=\n");
    let mut vm = Vm::boot(&QEMU_AARCH64, dir, &disk, "2", "eyrie.modules=vivid");
    let (s, _) = vm.wait_healthy();
    eprintln!("second boot to /api/health: {s:.1} s");
    let console = vm.console();
    assert!(
        console.contains("slot b does not mount: back to slot a"),
        "{console}"
    );
    assert!(!console.contains("first boot"), "{console}");
    let (status, cam) = vm.call("GET", "/api/cameras/porch", None);
    assert_eq!(
        (status, cam["name"].as_str()),
        (200, Some("Porch")),
        "{cam:#}"
    );
    let (_, devices) = vm.call("GET", "/api/system/devices", None);
    assert!(
        devices["devices"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["driver"] == "vivid"),
        "vivid loaded from the command line: {devices:#}"
    );

    // A camera on vivid inside the guest: raw YUYV, encoded to MJPEG by Eyrie in software, in
    // 10 s segments. The host fetches a closed segment through the API and ffprobe reads it.
    let (status, v) = vm.call(
        "PUT",
        "/api/system/settings",
        Some(r#"{"segment_seconds": 10}"#),
    );
    assert_eq!(status, 200, "{v:#}");
    let vivid = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver"] == "vivid")
        .unwrap()["path"]
        .as_str()
        .unwrap()
        .to_string();
    let source =
        format!("v4l2://{vivid}?width=640&height=360&fps=10&format=YUYV&encode_fps=2&quality=50");
    let (status, v) = vm.call(
        "POST",
        "/api/cameras",
        Some(&serde_json::json!({"id": "vivid", "name": "Vivid", "source": source}).to_string()),
    );
    assert_eq!(status, 201, "{v:#}");
    let segment = vm.closed_segment("vivid");
    let probe = vm.probe(&segment, &dir.join("vivid.mp4"));
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "mjpeg", "{probe:#}");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(640), Some(360))
    );
    let frames: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    // 2 pictures a second for ~10 s; fewer when TCG's encoder falls behind, never none.
    assert!(
        (1..=25).contains(&frames),
        "{frames} frames in a 10 s segment: {probe:#}"
    );
    let (_, health) = vm.call("GET", "/api/health", None);
    let cam = health["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "vivid")
        .unwrap();
    assert_eq!(cam["encoder"], "software-mjpeg", "{cam:#}");
    eprintln!("vivid in the guest: {frames} MJPEG frames in {segment}; health: {cam}");

    // An update through the API: the build's root image goes to slot B (checked against its
    // SHA-256 and its signature), and the reboot the API starts brings the system up from it
    // with the same data. The same root without its signature is refused first.
    let root = std::fs::read(dir.join("out/eyrie-qemu-aarch64-root.squashfs")).unwrap();
    let unsigned = &root[..root.len() - 112]; // the trailer, docs/update.md
    let resp = ureq::post(&vm.url("/api/system/update"))
        .timeout(Duration::from_secs(300))
        .send_bytes(unsigned);
    match resp {
        Err(ureq::Error::Status(400, r)) => {
            let v: Value = r.into_json().unwrap();
            assert!(v["error"].as_str().unwrap().contains("not signed"), "{v:#}");
        }
        other => panic!("an unsigned root: {other:?}"),
    }
    let (_, state) = vm.call("GET", "/api/system/update", None);
    assert!(state["next"].is_null(), "{state:#}");
    let sum: String = ring::digest::digest(&ring::digest::SHA256, &root)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let resp = ureq::post(&vm.url("/api/system/update"))
        .timeout(Duration::from_secs(300))
        .set("x-eyrie-sha256", &sum)
        .send_bytes(&root);
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("update upload: {e}\nconsole:\n{}", vm.console()),
    };
    let status = resp.status();
    let v: Value = serde_json::from_str(&resp.into_string().unwrap()).unwrap();
    assert_eq!((status, v["slot"].as_str()), (200, Some("b")), "{v:#}");
    assert_eq!(v["sha256"], sum.as_str());
    assert_eq!(v["signed_by"], public.as_str(), "{v:#}");
    let (_, state) = vm.call("GET", "/api/system/update", None);
    assert_eq!(state["next"], "b", "{state:#}");
    let (status, v) = vm.call("POST", "/api/system/reboot", None);
    assert_eq!(status, 202, "{v:#}");
    // The init shuts down and reboots; QEMU (-no-reboot) stops there.
    let started = Instant::now();
    while vm.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no reboot after POST /api/system/reboot; console:\n{}",
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    vm.power_cut();
    let ab = boot_file(&disk, "ab.txt");
    assert_eq!(
        (
            key(&ab, "active"),
            key(&ab, "next"),
            key(&ab, "trial"),
            key(&ab, "failed")
        ),
        ("a".into(), "b".into(), "".into(), "b".into()),
        "{ab}"
    );

    // Slot B on trial: Eyrie comes up from it and confirms it.
    let mut vm = Vm::boot(&QEMU_AARCH64, dir, &disk, "3", "");
    vm.wait_healthy();
    assert!(
        vm.console().contains("root slot b (/dev/vda3)"),
        "{}",
        vm.console()
    );
    let started = Instant::now();
    let state = loop {
        let (_, state) = vm.call("GET", "/api/system/update", None);
        if state["active"] == "b" || started.elapsed() > Duration::from_secs(30) {
            break state;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(
        (
            state["slot"].as_str(),
            state["active"].as_str(),
            state["trial"].as_str()
        ),
        (Some("b"), Some("b"), None),
        "{state:#}"
    );
    let (status, _) = vm.call("GET", "/api/cameras/porch", None);
    assert_eq!(status, 200, "the cameras survive the update");
    vm.power_cut();
    let ab = boot_file(&disk, "ab.txt");
    assert_eq!(
        (key(&ab, "active"), key(&ab, "trial"), key(&ab, "failed")),
        ("b".into(), "".into(), "".into()),
        "{ab}"
    );

    // Slot A on trial where Eyrie cannot start (it is told to listen on an address the VM
    // does not have): after 3 exits the supervisor reboots (QEMU, with -no-reboot, stops) and
    // the initramfs goes back to slot B, marking A failed.
    let good = boot_file(&disk, "eyrie.toml");
    // The first boot applied the admin password from the boot partition (every call since has
    // logged in with it) and took the secret off the FAT file, keeping the other settings.
    assert!(!good.contains("eyrie-test-password"), "{good}");
    assert!(good.contains("0.0.0.0:8080"), "{good}");
    let bad = dir.join("eyrie.toml");
    std::fs::write(&bad, good.replace("0.0.0.0:8080", "192.0.2.1:8080")).unwrap();
    mtools(
        "mcopy",
        &disk,
        &["-o", bad.to_str().unwrap(), "::eyrie.toml"],
    );
    set_ab(&disk, dir, "active=b\nnext=a\ntrial=\nfailed=\n");
    let mut vm = Vm::boot(&QEMU_AARCH64, dir, &disk, "4", "");
    let started = Instant::now();
    while vm.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the supervisor did not reboot; console:\n{}",
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let console = vm.power_cut();
    assert!(console.contains("root slot a (/dev/vda2)"), "{console}");
    assert!(
        console.contains("was not confirmed after 3 failures; rebooting"),
        "{console}"
    );
    assert_eq!(key(&boot_file(&disk, "ab.txt"), "trial"), "a");
    std::fs::write(&bad, &good).unwrap();
    mtools(
        "mcopy",
        &disk,
        &["-o", bad.to_str().unwrap(), "::eyrie.toml"],
    );
    let mut vm = Vm::boot(&QEMU_AARCH64, dir, &disk, "5", "");
    vm.wait_healthy();
    let console = vm.power_cut();
    assert!(
        console.contains("slot a was tried and never confirmed: back to slot b"),
        "{console}"
    );
    assert!(console.contains("root slot b (/dev/vda3)"), "{console}");
    let ab = boot_file(&disk, "ab.txt");
    assert_eq!(
        (key(&ab, "active"), key(&ab, "trial"), key(&ab, "failed")),
        ("b".into(), "".into(), "a".into()),
        "{ab}"
    );

    // Slot A on trial with an Eyrie that runs but never confirms it (it is pointed at another
    // slot-state file), as a hung Eyrie would: the init reboots once the confirm time is up,
    // leaving the trial for the initramfs to give up on.
    std::fs::write(
        &bad,
        format!("{good}\n[system]\nab_file = \"/run/eyrie/elsewhere.txt\"\n"),
    )
    .unwrap();
    mtools(
        "mcopy",
        &disk,
        &["-o", bad.to_str().unwrap(), "::eyrie.toml"],
    );
    set_ab(&disk, dir, "active=b\nnext=a\ntrial=\nfailed=a\n");
    let mut vm = Vm::boot(&QEMU_AARCH64, dir, &disk, "6", "eyrie.confirm_timeout=20");
    vm.wait_healthy();
    let started = Instant::now();
    while vm.child.try_wait().unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "no reboot for an unconfirmed trial; console:\n{}",
            vm.console()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let console = vm.power_cut();
    assert!(console.contains("root slot a (/dev/vda2)"), "{console}");
    assert!(
        console.contains("slot a on trial was not confirmed in 20 s; rebooting"),
        "{console}"
    );
    assert_eq!(key(&boot_file(&disk, "ab.txt"), "trial"), "a");
}

/// The 32-bit board: the qemu-armv7 image (Debian's armhf kernel and libraries, Eyrie built
/// for armv7-unknown-linux-gnueabihf) boots once under `qemu-system-arm -M virt` (TCG, a
/// Cortex-A15): Eyrie starts, the demo camera (kernel command line `eyrie.demo`) records, and
/// a closed segment fetched through the loopback-only forwarded port decodes with ffprobe.
#[test]
fn qemu_armv7_image_boots_and_records() {
    if !can_build(&ARMHF) || !tools::require(&["qemu-system-arm", "mtype", "ffprobe"]) {
        return;
    }
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let img = build("qemu-armv7", &dir.join("out"), None);
    let apparent = std::fs::metadata(&img).unwrap().len();
    assert!(apparent <= 128 * MIB, "image is {apparent} bytes");

    // The binary image/build put in the root (its tree stays in out/work): 32-bit ARM, and
    // small enough for the slot with room to spare.
    let eyrie = dir.join("out/work/root/usr/bin/eyrie");
    let size = std::fs::metadata(&eyrie).unwrap().len();
    let file = Command::new("file").arg(&eyrie).output().unwrap();
    let file = String::from_utf8_lossy(&file.stdout);
    assert!(file.contains(ARMHF.elf), "{file}");
    assert!(size < 10 * MIB, "the armv7 Eyrie is {size} bytes");
    eprintln!(
        "armv7 Eyrie: {size} bytes ({:.1} MiB)",
        size as f64 / MIB as f64
    );

    for f in ["vmlinuz", "initrd.img"] {
        let dest = dir.join(f);
        mtools("mcopy", &img, &[&format!("::{f}"), dest.to_str().unwrap()]);
    }
    // A card with room for slot B and a data partition the demo camera can record on.
    let disk = dir.join("disk.img");
    std::fs::copy(&img, &disk).unwrap();
    File::options()
        .write(true)
        .open(&disk)
        .unwrap()
        .set_len(384 * MIB)
        .unwrap();

    let mut vm = Vm::boot(&QEMU_ARMV7, dir, &disk, "armv7", "eyrie.demo");
    let (boot_s, health) = vm.wait_healthy();
    eprintln!("qemu-armv7: boot to /api/health under TCG: {boot_s:.1} s");
    let console = vm.console();
    assert!(console.contains("root slot a (/dev/vda2)"), "{console}");
    assert!(
        console.contains("first boot: data partition grows"),
        "{console}"
    );
    assert_eq!(health["label"], "eyrie-3456", "{health:#}");
    let (_, settings) = vm.call("GET", "/api/system/settings", None);
    assert_eq!(settings["segment_seconds"], 10, "{settings:#}");

    let segment = vm.closed_segment("demo");
    let probe = vm.probe(&segment, &dir.join("demo.mp4"));
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{probe:#}");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(640), Some(360)),
        "{probe:#}"
    );
    let frames: u64 = stream["nb_read_frames"].as_str().unwrap().parse().unwrap();
    assert!(frames > 0, "{probe:#}");
    let (_, health) = vm.call("GET", "/api/health", None);
    let cam = health["cameras"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "demo")
        .unwrap_or_else(|| panic!("no demo camera in health: {health:#}"));
    assert_eq!(cam["state"], "recording", "{cam:#}");
    eprintln!(
        "qemu-armv7: {frames} frames in {segment}; health: {cam}; whole test {:.0} s",
        started.elapsed().as_secs_f64()
    );
    let console = vm.power_cut();
    assert!(!console.contains("panicked"), "{console}");
}

/// What a Raspberry Pi card holds, checked on the file.
struct Pi {
    board: &'static str,
    arch: &'static Arch,
    firmware: &'static [&'static str],
    dtbs: &'static [&'static str],
    /// config.txt's `arm_64bit`: the firmware starts a 64-bit kernel or a 32-bit one.
    arm_64bit: &'static str,
    /// The serial console on the GPIO header.
    console: &'static str,
    /// Files in the root beyond Eyrie, init, wpa_supplicant and the camera modules.
    root: &'static [&'static str],
}

const PIS: &[Pi] = &[
    Pi {
        board: "rpi4",
        arch: &ARM64,
        firmware: &["start4.elf", "fixup4.dat"],
        dtbs: &[
            "bcm2711-rpi-4-b.dtb",
            "bcm2711-rpi-400.dtb",
            "bcm2711-rpi-cm4-io.dtb",
        ],
        arm_64bit: "1",
        console: "console=ttyS1,115200",
        root: &["brcmfmac.ko", "/lib/firmware/brcm/brcmfmac43455-sdio.bin"],
    },
    Pi {
        board: "rpi3",
        arch: &ARM64,
        firmware: &["bootcode.bin", "start.elf", "fixup.dat"],
        dtbs: &[
            "bcm2837-rpi-3-b.dtb",
            "bcm2837-rpi-3-b-plus.dtb",
            "bcm2837-rpi-zero-2-w.dtb",
        ],
        arm_64bit: "1",
        console: "console=ttyS1,115200",
        root: &["brcmfmac.ko", "/lib/firmware/brcm/brcmfmac43455-sdio.bin"],
    },
    // 32-bit, Debian's armhf kernel; the Pi 2's header UART is the PL011 (no Bluetooth on it).
    Pi {
        board: "rpi2",
        arch: &ARMHF,
        firmware: &["bootcode.bin", "start.elf", "fixup.dat"],
        dtbs: &["bcm2836-rpi-2-b.dtb"],
        arm_64bit: "0",
        console: "console=ttyAMA0,115200",
        root: &["smsc95xx.ko"],
    },
];

#[test]
fn raspberry_pi_images() {
    if !can_build(&ARM64)
        || !can_build(&ARMHF)
        || !tools::require(&["mtype", "mdir", "qemu-system-aarch64"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for pi in PIS {
        let board = pi.board;
        let img = build(board, &tmp.path().join(board), None);
        let apparent = std::fs::metadata(&img).unwrap().len();
        assert!(apparent <= 128 * MIB, "{board}: image is {apparent} bytes");
        let parts = partitions(&img);
        let types: Vec<(u32, &str)> = parts.iter().map(|p| (p.0, p.3.as_str())).collect();
        assert_eq!(
            types,
            [(1, "c"), (2, "83"), (4, "83")],
            "{board}: {parts:?}"
        );
        let (boot_start, _) = part(&parts, 1).unwrap();
        assert_eq!(boot_start, MIB, "{board}: boot partition at 1 MiB");

        let files = boot_files(&img);
        let mut want = vec![
            "config.txt",
            "cmdline.txt",
            "vmlinuz",
            "initrd.img",
            "eyrie.toml",
            "ab.txt",
            "update-keys.txt",
        ];
        want.extend(pi.firmware);
        want.extend(pi.dtbs);
        for f in want {
            assert!(
                files.iter().any(|x| x == f),
                "{board}: {f} on the boot partition: {files:?}"
            );
        }
        // config.txt: 64- or 32-bit, the kernel and initramfs that are on the partition,
        // upstream device trees (Debian's kernel).
        let config = boot_file(&img, "config.txt");
        let settings = keys(&config);
        let get = |k: &str| {
            settings
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{board}: config.txt has no {k}:\n{config}"))
        };
        assert_eq!(get("arm_64bit"), pi.arm_64bit, "{board}");
        assert_eq!(get("upstream_kernel"), "1");
        assert!(files.iter().any(|f| f == get("kernel")), "{config}");
        let initramfs = config
            .lines()
            .find_map(|l| l.strip_prefix("initramfs "))
            .unwrap_or_else(|| panic!("{board}: no initramfs line:\n{config}"));
        let mut words = initramfs.split_whitespace();
        let initrd = words.next();
        assert!(files.iter().any(|f| Some(f.as_str()) == initrd), "{config}");
        assert_eq!(words.next(), Some("followkernel"), "{config}");
        for line in config.lines().map(str::trim) {
            assert!(
                line.is_empty()
                    || line.starts_with('#')
                    || line.starts_with('[')
                    || line.contains('=')
                    || line.starts_with("initramfs "),
                "{board}: config.txt line {line:?}"
            );
        }
        // cmdline.txt: one line, a serial console, no root= (the initramfs finds the root).
        let cmdline = boot_file(&img, "cmdline.txt");
        assert_eq!(
            cmdline.trim_end().lines().count(),
            1,
            "{board}: {cmdline:?}"
        );
        assert!(cmdline.contains(pi.console), "{board}: {cmdline}");
        assert!(!cmdline.contains("root="), "{board}: {cmdline}");

        // The root: an Eyrie of the board's architecture, the board's modules and Wi-Fi
        // firmware.
        let squashfs = tmp
            .path()
            .join(board)
            .join(format!("eyrie-{board}-root.squashfs"));
        let listing = Command::new("unsquashfs")
            .arg("-l")
            .arg(&squashfs)
            .output()
            .unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout);
        let every = [
            "/usr/bin/eyrie",
            "/sbin/init",
            "/sbin/wpa_supplicant",
            "uvcvideo.ko",
            "bcm2835-v4l2.ko",
        ];
        for want in every.iter().chain(pi.root) {
            assert!(listing.contains(want), "{board}: {want} in the root");
        }
        let x = tmp.path().join(format!("{board}-root"));
        let ok = Command::new("unsquashfs")
            .args(["-q", "-n", "-d"])
            .arg(&x)
            .arg(&squashfs)
            .arg("/usr/bin/eyrie")
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok, "{board}: unsquashfs");
        let file = Command::new("file")
            .arg(x.join("usr/bin/eyrie"))
            .output()
            .unwrap();
        let file = String::from_utf8_lossy(&file.stdout);
        assert!(file.contains(pi.arch.elf), "{board}: {file}");

        if board == "rpi3" {
            boot_raspi3b(tmp.path(), &img, &cmdline);
        }
    }
}

/// The rpi3 card in QEMU's `raspi3b` machine (TCG), with the kernel, device tree, initramfs
/// and command line from its boot partition: it comes up to Eyrie's "listening" log line on
/// the serial console (the mini UART, ttyS1). QEMU's Pi has no network device; the card is
/// 128 MiB (QEMU wants a power of two), too small for slot B.
fn boot_raspi3b(dir: &Path, img: &Path, cmdline: &str) {
    let sd = dir.join("rpi3-sd.img");
    std::fs::copy(img, &sd).unwrap();
    File::options()
        .write(true)
        .open(&sd)
        .unwrap()
        .set_len(128 * MIB)
        .unwrap();
    for f in ["vmlinuz", "initrd.img", "bcm2837-rpi-3-b.dtb"] {
        let dest = dir.join(f);
        mtools(
            "mcopy",
            img,
            &["-o", &format!("::{f}"), dest.to_str().unwrap()],
        );
    }
    let console = dir.join("console-raspi3b.log");
    let mut qemu = Command::new("qemu-system-aarch64")
        .args([
            "-M",
            "raspi3b",
            "-display",
            "none",
            "-monitor",
            "none",
            "-no-reboot",
        ])
        .arg("-kernel")
        .arg(dir.join("vmlinuz"))
        .arg("-dtb")
        .arg(dir.join("bcm2837-rpi-3-b.dtb"))
        .arg("-initrd")
        .arg(dir.join("initrd.img"))
        .arg("-append")
        // QEMU's model of the Pi's watchdog resets the machine as soon as the driver starts
        // it (it has no timer), so the watchdog module stays out here.
        .arg(format!(
            "{} panic=-1 modprobe.blacklist=bcm2835_wdt",
            cmdline.trim()
        ))
        .arg("-drive")
        .arg(format!("file={},if=sd,format=raw", sd.display()))
        .args(["-serial", "null", "-serial"])
        .arg(format!("file:{}", console.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(dir.join("qemu-raspi3b.log")).unwrap())
        .spawn()
        .expect("starting qemu-system-aarch64 -M raspi3b");
    let started = Instant::now();
    let read =
        || String::from_utf8_lossy(&std::fs::read(&console).unwrap_or_default()).replace('\r', "");
    let up = loop {
        let text = read();
        if text.contains("Eyrie 0.1.0 listening on http://0.0.0.0:80") {
            break true;
        }
        if qemu.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(240) {
            break false;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    // A few seconds more: Eyrie stays up.
    std::thread::sleep(Duration::from_secs(10));
    let alive = qemu.try_wait().unwrap().is_none();
    let _ = qemu.kill();
    let _ = qemu.wait();
    let text = read();
    let log = std::fs::read_to_string(dir.join("qemu-raspi3b.log")).unwrap_or_default();
    assert!(
        up,
        "raspi3b: no Eyrie log line; console:\n{text}\nqemu: {log}"
    );
    eprintln!(
        "raspi3b: Eyrie up after {:.0} s",
        started.elapsed().as_secs_f64() - 10.0
    );
    assert!(alive, "raspi3b: the board reset; console:\n{text}");
    assert!(text.contains("root slot a (/dev/mmcblk0p2)"), "{text}");
    assert_eq!(
        text.matches("Eyrie 0.1.0 listening").count(),
        1,
        "Eyrie started once: {text}"
    );
}
