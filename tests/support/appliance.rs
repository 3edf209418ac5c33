//! A fake appliance for tests that run Eyrie "as an appliance" on the host: the A/B slot
//! "devices" are regular files (Eyrie opens, sizes, writes, fsyncs and reads them back with the
//! same calls it makes on a block device), a temporary directory plays /boot and /run/eyrie,
//! and the reboot command is a script that leaves a marker file. Root images are real
//! squashfs files made by mksquashfs, signed with an update key made for each appliance by
//! `eyrie sign keygen` in its temporary directory (its public key in the fake boot partition's
//! update-keys.txt).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A fake appliance's files: boot.env, ab.txt, two slots, a reboot command that leaves a mark,
/// an update key (`update.key`) whose public key `boot/update-keys.txt` trusts.
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
        let public = a.keygen("update.key");
        std::fs::write(
            a.path("boot/update-keys.txt"),
            format!("# Keys trusted to sign updates.\n{public} the test's key\n"),
        )
        .unwrap();
        a
    }

    /// `eyrie sign ARGS`; its standard output, or a panic with its error.
    pub fn sign_cmd(args: &[&std::ffi::OsStr]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_eyrie"))
            .arg("sign")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "eyrie sign {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A new signing key `name` in the appliance's directory; its public key.
    pub fn keygen(&self, name: &str) -> String {
        Self::sign_cmd(&["keygen".as_ref(), self.path(name).as_os_str()])
    }

    /// The public key of the key `name` (as its `.pub` file has it).
    pub fn public_key(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(&format!("{name}.pub")))
            .unwrap()
            .trim()
            .to_string()
    }

    /// Signs `image` in place with the key `key` (made by [`Appliance::keygen`]).
    pub fn sign_with(&self, key: &str, image: &Path) {
        Self::sign_cmd(&[
            "image".as_ref(),
            "--key".as_ref(),
            self.path(key).as_os_str(),
            image.as_os_str(),
        ]);
    }

    /// A real root image whose `bin/eyrie` is `payload`, signed with the appliance's key:
    /// its path and bytes. None (skip) without squashfs-tools.
    pub fn image(&self, payload: &[u8]) -> Option<(PathBuf, Vec<u8>)> {
        let (path, _) = squashfs(self.dir.path(), payload)?;
        self.sign_with("update.key", &path);
        let bytes = std::fs::read(&path).unwrap();
        Some((path, bytes))
    }

    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// The `[system]` section that makes Eyrie use these files.
    pub fn config(&self) -> String {
        format!(
            "[system]\nboot_env = \"{}\"\nab_file = \"{}\"\nstate = \"{}\"\nreboot_command = [\"{}\", \"now\"]\nupdate_keys_file = \"{}\"\n",
            self.path("run/eyrie/boot.env").display(),
            self.path("boot/ab.txt").display(),
            self.path("state").display(),
            self.path("reboot.sh").display(),
            self.path("boot/update-keys.txt").display(),
        )
    }

    pub fn ab(&self) -> String {
        std::fs::read_to_string(self.path("boot/ab.txt")).unwrap_or_default()
    }

    pub fn slot(&self, s: &str) -> Vec<u8> {
        std::fs::read(self.path(&format!("slot_{s}"))).unwrap()
    }
}

/// A real root image, unsigned: mksquashfs of a small tree whose `bin/eyrie` is `payload`,
/// written to `dir/root.squashfs`. None (skip) without squashfs-tools.
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
