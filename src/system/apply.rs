//! `eyrie apply-boot-config`: run by the init at every boot, before Eyrie. It applies the
//! settings of the boot partition's eyrie.toml that live outside Eyrie (admin password into the
//! account store, Wi-Fi into wpa_supplicant.conf, the host name), then removes the secrets from
//! the file (FAT, readable by anyone holding the card), keeping the user's comments and other
//! keys. Running it again changes nothing.

use std::path::{Path, PathBuf};

use super::files::{FileError, read_small, remove, replace};
use super::wifi;
use crate::config::{Config, Overrides};

/// Longest eyrie.toml read.
const MAX_CONFIG: u64 = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The file is not a valid configuration: nothing was applied or changed.
    #[error("{0}")]
    BadFile(String),
    /// Applying failed part way (a disk error): run again.
    #[error("{0}")]
    Failed(String),
}

impl From<FileError> for ApplyError {
    fn from(e: FileError) -> Self {
        ApplyError::Failed(e.to_string())
    }
}

/// What one run did, for the log.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub password_set: bool,
    pub wifi: bool,
    pub hostname: String,
    /// Secrets removed from the file.
    pub removed: Vec<&'static str>,
}

/// Applies `config` with the account store in `data` and the rest in `state`; on failure the
/// error is also left in `state`/boot-config-error for health to show, and removed on success.
pub fn run(config: &Path, data: &Path, state: &Path) -> Result<Applied, ApplyError> {
    let out = apply(config, data, state);
    let err_file = state.join(super::BOOT_CONFIG_ERROR);
    match &out {
        Ok(_) => {
            let _ = remove(&err_file);
        }
        Err(e) => {
            if std::fs::create_dir_all(state).is_ok() {
                let _ = replace(&err_file, format!("{e}\n").as_bytes(), 0o644);
            }
        }
    }
    out
}

fn apply(config: &Path, data: &Path, state: &Path) -> Result<Applied, ApplyError> {
    // Everything is checked before anything is applied.
    let cfg = Config::load(
        Some(config),
        &Overrides {
            data: Some(data.to_path_buf()),
            ..Default::default()
        },
    )
    .map_err(|e| ApplyError::BadFile(e.to_string()))?;
    let text = read_small(config, MAX_CONFIG)
        .map_err(|e| ApplyError::BadFile(e.to_string()))?
        .unwrap_or_default();
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| ApplyError::BadFile(format!("{}: {e}", config.display())))?;
    std::fs::create_dir_all(state).map_err(|e| FileError::new(state, e))?;
    let mut done = Applied::default();

    if let Some(pw) = &cfg.auth.admin_password {
        set_admin_password(data, &cfg.auth.admin_user, pw)?;
        done.password_set = true;
    }

    let wpa = state.join("wpa_supplicant.conf");
    match &cfg.wifi {
        Some(w) => {
            // Once applied the passphrase is gone from the file: keep the key derived then.
            let key = match &w.psk {
                Some(p) => Some(wifi::derive_psk(&w.ssid, p)),
                None => {
                    read_small(&wpa, 64 * 1024)?.and_then(|old| wifi::stored_key(&old, &w.ssid))
                }
            };
            let conf = wifi::render(&w.ssid, key.as_deref(), w.country.as_deref());
            write_if_changed(&wpa, &conf, 0o600)?;
            done.wifi = true;
        }
        None => remove(&wpa)?,
    }

    let name = cfg.system.hostname.clone().unwrap_or_else(default_hostname);
    write_if_changed(&state.join("hostname"), &format!("{name}\n"), 0o644)?;
    done.hostname = name;

    for (table, key, note) in [
        (
            "wifi",
            "psk",
            format!(
                "wifi.psk was applied and removed from this file (the derived key is kept in {}).",
                wpa.display()
            ),
        ),
        (
            "auth",
            "admin_password",
            "auth.admin_password was applied (stored hashed) and removed from this file; set it \
             here again to reset the password."
                .to_string(),
        ),
    ] {
        if remove_secret(&mut doc, table, key, &note) {
            done.removed.push(key);
        }
    }
    if !done.removed.is_empty() {
        replace(config, doc.to_string().as_bytes(), 0o644)?;
    }
    Ok(done)
}

/// Sets the password of `user` in the account store, creating the account if needed.
fn set_admin_password(data: &Path, user: &str, password: &str) -> Result<(), ApplyError> {
    use crate::storage::{Index, Layout, UserRecord};
    std::fs::create_dir_all(data).map_err(|e| FileError::new(data, e))?;
    let layout = Layout::new(data);
    let index = Index::open(&layout.db_path())
        .map_err(|e| ApplyError::Failed(format!("{}: {e}", layout.db_path().display())))?;
    let users = index
        .users()
        .map_err(|e| ApplyError::Failed(e.to_string()))?;
    let created_ms = users
        .iter()
        .find(|u| u.name == user)
        .map_or_else(|| jiff::Timestamp::now().as_millisecond(), |u| u.created_ms);
    let record = UserRecord {
        name: user.to_string(),
        password_hash: crate::accounts::hash_password(password),
        created_ms,
    };
    index
        .put_user(&record, false)
        .map_err(|e| ApplyError::Failed(e.to_string()))?;
    Ok(())
}

fn write_if_changed(path: &Path, text: &str, mode: u32) -> Result<(), FileError> {
    if read_small(path, 64 * 1024).ok().flatten().as_deref() == Some(text) {
        return Ok(());
    }
    replace(path, text.as_bytes(), mode)
}

/// Removes `table.key` from the document, leaving `# note` where it was: above the table's next
/// key, or else after the table's last one. Returns whether the key was there.
pub(crate) fn remove_secret(
    doc: &mut toml_edit::DocumentMut,
    table: &str,
    key: &str,
    note: &str,
) -> bool {
    let Some(item) = doc.get_mut(table) else {
        return false;
    };
    if let Some(t) = item.as_table_mut() {
        let Some((k, _)) = t.get_key_value(key) else {
            return false;
        };
        // The removed key's own comment lines stay, followed by the note.
        let own = k
            .leaf_decor()
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        let next = t
            .iter()
            .map(|(name, _)| name.to_string())
            .skip_while(|name| name != key)
            .nth(1);
        t.remove(key);
        let text = format!("{}# {note}\n", own.trim_start_matches('\n'));
        match next.and_then(|n| t.key_mut(&n)) {
            Some(mut k) => {
                let after = k
                    .leaf_decor()
                    .prefix()
                    .and_then(|p| p.as_str())
                    .unwrap_or("")
                    .to_string();
                k.leaf_decor_mut().set_prefix(format!("{text}{after}"));
            }
            None => {
                // After the table's last key: above the next table's header, or at the end.
                let pos = t.position();
                let following = doc
                    .as_table()
                    .iter()
                    .filter_map(|(name, item)| Some((item.as_table()?.position()?, name)))
                    .filter(|(p, _)| pos.is_some_and(|me| *p > me))
                    .min()
                    .map(|(_, name)| name.to_string());
                match following.and_then(|n| doc.get_mut(&n)?.as_table_mut()) {
                    Some(next) => {
                        let after = next
                            .decor()
                            .prefix()
                            .and_then(|p| p.as_str())
                            .unwrap_or("")
                            .to_string();
                        next.decor_mut().set_prefix(format!("{text}{after}"));
                    }
                    None => {
                        let trailing = doc.trailing().as_str().unwrap_or("").to_string();
                        doc.set_trailing(format!("{text}{trailing}"));
                    }
                }
            }
        }
        return true;
    }
    // An inline table (`auth = { ... }`): the note goes at the top of the file.
    let removed = item
        .as_table_like_mut()
        .and_then(|t| t.remove(key))
        .is_some();
    if removed {
        let root = doc.as_table_mut().decor_mut();
        let before = root
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or("")
            .to_string();
        root.set_prefix(format!("# {note}\n{before}"));
    }
    removed
}

/// `eyrie-xxxx` from the last four hex digits of the first network card's MAC address (by
/// interface name; physical cards before virtual ones), or else from /etc/machine-id.
pub fn default_hostname() -> String {
    let suffix = mac_suffix(Path::new("/sys/class/net"))
        .or_else(|| {
            let id = std::fs::read_to_string("/etc/machine-id").ok()?;
            let id = id.trim();
            (id.len() >= 4 && id.bytes().all(|c| c.is_ascii_hexdigit()))
                .then(|| id[..4].to_ascii_lowercase())
        })
        .unwrap_or_else(|| "0000".into());
    format!("eyrie-{suffix}")
}

fn mac_suffix(net: &Path) -> Option<String> {
    let mut cards: Vec<(bool, PathBuf)> = std::fs::read_dir(net)
        .ok()?
        .flatten()
        .filter(|e| e.file_name() != "lo")
        .map(|e| (!e.path().join("device").exists(), e.path()))
        .collect();
    cards.sort();
    cards.into_iter().find_map(|(_, dir)| {
        let mac = std::fs::read_to_string(dir.join("address")).ok()?;
        let hex: String = mac.trim().chars().filter(|c| *c != ':').collect();
        (hex.len() == 12 && hex.bytes().all(|c| c.is_ascii_hexdigit()) && hex != "000000000000")
            .then(|| hex[8..].to_ascii_lowercase())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_leave_comments_and_other_keys_in_place() {
        let text = "# my appliance\n[wifi]\n# home network\nssid = \"Home\"\n# the password\npsk = \"secret-pass\"\ncountry = \"GB\"\n\n[auth]\nadmin_password = \"hunter22\" # first\n\n[node]\nlabel = \"Shed\" # shed cam\n";
        let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
        assert!(remove_secret(&mut doc, "wifi", "psk", "psk applied"));
        assert!(remove_secret(
            &mut doc,
            "auth",
            "admin_password",
            "pw applied"
        ));
        assert!(!remove_secret(&mut doc, "auth", "admin_password", "again"));
        let out = doc.to_string();
        assert!(
            !out.contains("secret-pass") && !out.contains("hunter22"),
            "{out}"
        );
        for kept in [
            "# my appliance",
            "# home network",
            "# the password\n# psk applied\ncountry = \"GB\"",
            "# pw applied\n\n[node]",
            "label = \"Shed\" # shed cam",
        ] {
            assert!(out.contains(kept), "{kept:?} in:\n{out}");
        }
        let back: toml_edit::DocumentMut = out.parse().unwrap();
        assert_eq!(back["wifi"]["ssid"].as_str(), Some("Home"));

        let mut doc: toml_edit::DocumentMut = "[wifi]\nssid = \"a\"\npsk = \"12345678\"\n"
            .parse()
            .unwrap();
        assert!(remove_secret(&mut doc, "wifi", "psk", "psk applied"));
        assert_eq!(doc.to_string(), "[wifi]\nssid = \"a\"\n# psk applied\n");

        let mut doc: toml_edit::DocumentMut =
            "auth = { admin_user = \"a\", admin_password = \"hunter22\" }\n"
                .parse()
                .unwrap();
        assert!(remove_secret(
            &mut doc,
            "auth",
            "admin_password",
            "pw applied"
        ));
        let out = doc.to_string();
        assert!(
            out.starts_with("# pw applied\n") && !out.contains("hunter22"),
            "{out}"
        );
    }

    #[test]
    fn the_default_name_comes_from_a_mac_address() {
        let net = tempfile::tempdir().unwrap();
        for (name, mac, physical) in [
            ("lo", "00:00:00:00:00:00", false),
            ("docker0", "02:42:00:00:00:01", false),
            ("eth0", "dc:a6:32:1A:2B:3C", true),
        ] {
            let d = net.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("address"), format!("{mac}\n")).unwrap();
            if physical {
                std::fs::create_dir(d.join("device")).unwrap();
            }
        }
        assert_eq!(mac_suffix(net.path()).as_deref(), Some("2b3c"));
        let name = default_hostname();
        assert!(crate::config::hostname(&name).is_ok(), "{name}");
        assert!(name.starts_with("eyrie-") && name.len() == 10, "{name}");
    }
}
