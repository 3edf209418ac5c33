//! A fake appliance for tests that run Eyrie "as an appliance" on the host: the A/B slot
//! "devices" are regular files (Eyrie opens, sizes, writes, fsyncs and reads them back with the
//! same calls it makes on a block device), a temporary directory plays /boot and /run/eyrie,
//! and the reboot command is a script that leaves a marker file. Root images are real
//! squashfs files made by mksquashfs.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fake appliance's files: boot.env, ab.txt, two slots, a reboot command that leaves a mark.
pub struct Appliance {
    pub dir: tempfile::TempDir,
}

impl Appliance {
    /// Running `slot` ("a" or "b"); each slot is `size` bytes of `A` or `B`.
    pub fn new(slot: &str, size: u64) -> Appliance {
        let dir = tempfile::tempdir().unwrap();
        let a = Appliance { dir };
        for sub in ["boot", "run/eyrie", "state"] {
            std::fs::create_dir_all(a.path(sub)).unwrap();
        }
        std::fs::write(a.path("slot_a"), vec![b'A'; size as usize]).unwrap();
        std::fs::write(a.path("slot_b"), vec![b'B'; size as usize]).unwrap();
        std::fs::write(
            a.path("run/eyrie/boot.env"),
            format!(
                "slot={slot}\nslot_a={}\nslot_b={}\nboot=/dev/null\ndata=/dev/null\n",
                a.path("slot_a").display(),
                a.path("slot_b").display()
            ),
        )
        .unwrap();
        let script = a.path("reboot.sh");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"$@\" > {}\n",
                a.path("rebooted").display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        a
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The `[system]` section that makes Eyrie use these files.
    pub fn config(&self) -> String {
        format!(
            "[system]\nboot_env = \"{}\"\nab_file = \"{}\"\nstate = \"{}\"\nreboot_command = [\"{}\", \"now\"]\n",
            self.path("run/eyrie/boot.env").display(),
            self.path("boot/ab.txt").display(),
            self.path("state").display(),
            self.path("reboot.sh").display(),
        )
    }

    pub fn ab(&self) -> String {
        std::fs::read_to_string(self.path("boot/ab.txt")).unwrap_or_default()
    }

    pub fn slot(&self, s: &str) -> Vec<u8> {
        std::fs::read(self.path(&format!("slot_{s}"))).unwrap()
    }
}

/// A real root image: mksquashfs of a small tree whose `bin/eyrie` is `payload`, written to
/// `dir/root.squashfs`. None (skip) without squashfs-tools.
pub fn squashfs(dir: &Path, payload: &[u8]) -> Option<(PathBuf, Vec<u8>)> {
    if !super::tools::require(&["mksquashfs"]) {
        return None;
    }
    let src = dir.join("rootfs");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("bin/eyrie"), payload).unwrap();
    let out = dir.join("root.squashfs");
    let r = Command::new("mksquashfs")
        .arg(&src)
        .arg(&out)
        .args(["-noappend", "-no-progress"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let bytes = std::fs::read(&out).unwrap();
    Some((out, bytes))
}
