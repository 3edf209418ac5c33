//! Configuration: built-in defaults, then an optional `eyrie.toml`, then command-line flags.
//! Every key is documented in docs/config.md. A bad file is one clear error naming the file and
//! the key, and the process exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    http: HttpSection,
    #[serde(default)]
    storage: StorageSection,
    #[serde(default)]
    recording: RecordingSection,
    #[serde(default)]
    node: NodeSection,
    #[serde(default)]
    federation: FederationSection,
    #[serde(default)]
    discovery: DiscoverySection,
    #[serde(default)]
    auth: AuthSection,
    #[serde(default)]
    onvif: OnvifSection,
    #[serde(default)]
    system: SystemSection,
    wifi: Option<WifiSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemSection {
    hostname: Option<String>,
    boot_env: Option<PathBuf>,
    ab_file: Option<PathBuf>,
    state: Option<PathBuf>,
    reboot_command: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WifiSection {
    ssid: String,
    psk: Option<String>,
    country: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiscoverySection {
    enabled: Option<bool>,
    interfaces: Option<Vec<String>>,
    pairing_ttl_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthSection {
    admin_user: Option<String>,
    admin_password: Option<String>,
    session_idle_minutes: Option<u64>,
    max_sessions: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnvifSection {
    interface: Option<std::net::Ipv4Addr>,
    scan_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeSection {
    label: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FederationSection {
    poll_interval_seconds: Option<u64>,
    request_timeout_seconds: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpSection {
    listen: Option<SocketAddr>,
    tls_listen: Option<SocketAddr>,
    cors_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StorageSection {
    data: Option<PathBuf>,
    budget: Option<ByteSize>,
    min_free: Option<ByteSize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingSection {
    segment_seconds: Option<u64>,
    fsync_interval_seconds: Option<u64>,
}

/// The settings Eyrie runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Where to serve HTTPS too (with a self-signed certificate made at first start).
    pub tls_listen: Option<SocketAddr>,
    /// Origins (`scheme://host[:port]`) whose pages may make credentialed requests, besides
    /// the registered remote nodes'.
    pub cors_origins: Vec<String>,
    pub data: PathBuf,
    /// Bytes all recordings may use; `None` means only `min_free` limits them.
    pub budget: Option<u64>,
    pub min_free: u64,
    pub segment_target: Duration,
    pub sync_interval: Duration,
    pub demo: bool,
    /// How this node is named to people and peers (default: the host name).
    pub label: String,
    pub poll_interval: Duration,
    pub peer_timeout: Duration,
    /// Advertise and browse over mDNS (docs/federation.md).
    pub discovery: bool,
    /// Interfaces mDNS uses; empty: all but loopback.
    pub discovery_interfaces: Vec<String>,
    /// How long a pairing request waits for approval and collection.
    pub pairing_ttl: Duration,
    /// Name of the account made at first start.
    pub admin_user: String,
    /// Password of that account; without one, first start prints a one-time setup link.
    pub admin_password: Option<String>,
    /// A session unused for this long ends.
    pub session_idle: Duration,
    pub max_sessions: usize,
    /// Where ONVIF discovery probes go out, and how long a scan waits for answers.
    pub onvif: crate::onvif::ScanConfig,
    /// The appliance's host name, slot files and reboot command (src/system, docs/update.md).
    pub system: SystemConfig,
    /// The Wi-Fi network the appliance joins (applied by `eyrie apply-boot-config`).
    pub wifi: Option<WifiConfig>,
}

/// The appliance's own settings (docs/update.md): where the initramfs and the boot partition
/// keep the slot state, and how to reboot.
#[derive(Debug, Clone)]
pub struct SystemConfig {
    /// Host name to set; `None`: `eyrie-xxxx` from the machine's MAC address or machine id.
    pub hostname: Option<String>,
    /// What the initramfs wrote about this boot (which slot runs, the partitions' devices).
    /// Without it Eyrie is not running as an appliance: no updates.
    pub boot_env: PathBuf,
    /// The slot state on the boot partition.
    pub ab_file: PathBuf,
    /// Where `apply-boot-config` keeps what it applied (and its last error, shown in health).
    pub state: PathBuf,
    /// Program and arguments that reboot the machine.
    pub reboot_command: Vec<String>,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            hostname: None,
            boot_env: PathBuf::from("/run/eyrie/boot.env"),
            ab_file: PathBuf::from("/boot/ab.txt"),
            state: PathBuf::from("/data/system"),
            reboot_command: vec!["/sbin/reboot".into()],
        }
    }
}

/// A Wi-Fi network: the passphrase (or the derived key as 64 hex digits) is a secret that
/// `apply-boot-config` turns into a key and then removes from the file.
#[derive(Clone)]
pub struct WifiConfig {
    pub ssid: String,
    pub psk: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
}

impl std::fmt::Debug for WifiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WifiConfig")
            .field("ssid", &self.ssid)
            .field("psk", &self.psk.as_ref().map(|_| "(secret)"))
            .field("country", &self.country)
            .finish()
    }
}

/// A host name: one RFC 1123 label (1 to 63 of a-z, A-Z, 0-9 and '-', not starting or ending
/// with '-'), kept as written.
pub fn hostname(name: &str) -> Result<String, String> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a host name (1 to 63 of a-z, A-Z, 0-9 and '-', not starting or ending with '-')"
        ))
    }
}

/// A Wi-Fi passphrase (8 to 63 printable ASCII characters) or a derived key (64 hex digits).
pub fn wifi_psk(psk: &str) -> Result<(), String> {
    let passphrase =
        (8..=63).contains(&psk.len()) && psk.bytes().all(|c| (0x20..=0x7e).contains(&c));
    let key = psk.len() == 64 && psk.bytes().all(|c| c.is_ascii_hexdigit());
    if passphrase || key {
        Ok(())
    } else {
        Err("8 to 63 printable ASCII characters, or 64 hex digits".into())
    }
}

/// The machine's host name (the default node label, and a name in the TLS certificate).
pub fn host_name() -> String {
    let name = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    if name.is_empty() {
        "eyrie".into()
    } else {
        name
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:8080".parse().unwrap(),
            tls_listen: None,
            cors_origins: Vec::new(),
            data: PathBuf::from("eyrie-data"),
            budget: None,
            min_free: 512 << 20,
            segment_target: Duration::from_secs(60),
            sync_interval: Duration::from_secs(10),
            demo: false,
            label: host_name(),
            poll_interval: Duration::from_secs(10),
            peer_timeout: Duration::from_secs(3),
            discovery: true,
            discovery_interfaces: Vec::new(),
            pairing_ttl: Duration::from_secs(600),
            admin_user: "admin".into(),
            admin_password: None,
            session_idle: Duration::from_secs(12 * 3600),
            max_sessions: 32,
            onvif: crate::onvif::ScanConfig::default(),
            system: SystemConfig::default(),
            wifi: None,
        }
    }
}

/// Flags given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub demo: bool,
}

#[derive(Debug, thiserror::Error)]
#[error("{file}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub message: String,
}

pub const SEGMENT_SECONDS: std::ops::RangeInclusive<u64> = 10..=300;
pub const FSYNC_SECONDS: std::ops::RangeInclusive<u64> = 1..=300;
pub const POLL_SECONDS: std::ops::RangeInclusive<u64> = 1..=300;
pub const PEER_TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 1..=30;
pub const PAIRING_TTL_SECONDS: std::ops::RangeInclusive<u64> = 5..=3600;
pub const SESSION_IDLE_MINUTES: std::ops::RangeInclusive<u64> = 1..=10080;
pub const MAX_SESSIONS: std::ops::RangeInclusive<u64> = 1..=1000;

/// A node label: trimmed, 1 to 64 characters, no control characters.
pub fn label(text: &str) -> Result<String, String> {
    let label = text.trim();
    if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control) {
        return Err("1 to 64 characters, no control characters".into());
    }
    Ok(label.to_string())
}

/// A segment length in seconds, within [`SEGMENT_SECONDS`].
pub fn segment_target(seconds: u64) -> Result<Duration, String> {
    if !SEGMENT_SECONDS.contains(&seconds) {
        return Err(format!("{seconds} is outside {SEGMENT_SECONDS:?}"));
    }
    Ok(Duration::from_secs(seconds))
}

/// What the admin set in the web UI (`PUT /api/system/settings`), kept in the index. It wins
/// over eyrie.toml, at once and at every start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct AdminSettings {
    pub label: String,
    pub segment_seconds: u64,
    pub budget_bytes: Option<u64>,
    pub min_free_bytes: u64,
}

impl AdminSettings {
    /// The index's setting key.
    pub const KEY: &str = "admin";

    /// The values `c` runs with.
    pub fn of(c: &Config) -> Self {
        Self {
            label: c.label.clone(),
            segment_seconds: c.segment_target.as_secs(),
            budget_bytes: c.budget,
            min_free_bytes: c.min_free,
        }
    }

    /// Checks every value as the config file's would be.
    pub fn validate(&self) -> Result<(), String> {
        label(&self.label).map_err(|m| format!("label: {m}"))?;
        segment_target(self.segment_seconds).map_err(|m| format!("segment_seconds: {m}"))?;
        if self.budget_bytes == Some(0) {
            return Err("budget_bytes: must be more than 0, or null for no budget".into());
        }
        Ok(())
    }

    /// Makes `c` run with these values.
    pub fn apply(&self, c: &mut Config) {
        c.label = self.label.clone();
        c.segment_target = Duration::from_secs(self.segment_seconds);
        c.budget = self.budget_bytes;
        c.min_free = self.min_free_bytes;
    }
}

impl Config {
    /// Loads `path` if given (it must then exist), applies the overrides, validates.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Self, ConfigError> {
        let (name, file) = match path {
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError {
                    file: name.clone(),
                    message: format!("cannot read: {e}"),
                })?;
                let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError {
                    file: name.clone(),
                    message: e.to_string().trim_end().to_string(),
                })?;
                (name, file)
            }
            None => ("(defaults)".to_string(), FileConfig::default()),
        };
        let err = |key: &str, message: String| ConfigError {
            file: name.clone(),
            message: format!("{key}: {message}"),
        };
        let mut c = Config::default();
        if let Some(v) = file.http.listen {
            c.listen = v;
        }
        c.tls_listen = file.http.tls_listen;
        for o in file.http.cors_origins.unwrap_or_default() {
            match crate::base::names::origin_setting(&o) {
                Some(n) => c.cors_origins.push(n),
                None => {
                    return Err(err(
                        "http.cors_origins",
                        format!("'{o}' is not an origin like http://host:port (no path, no *)"),
                    ));
                }
            }
        }
        if let Some(v) = file.storage.data {
            c.data = v;
        }
        c.budget = file.storage.budget.map(|b| b.as_u64());
        if let Some(v) = file.storage.min_free {
            c.min_free = v.as_u64();
        }
        if let Some(s) = file.recording.segment_seconds {
            c.segment_target =
                segment_target(s).map_err(|m| err("recording.segment_seconds", m))?;
        }
        if let Some(s) = file.recording.fsync_interval_seconds {
            if !FSYNC_SECONDS.contains(&s) {
                return Err(err(
                    "recording.fsync_interval_seconds",
                    format!("{s} is outside {FSYNC_SECONDS:?}"),
                ));
            }
            c.sync_interval = Duration::from_secs(s);
        }
        if let Some(l) = file.node.label {
            c.label = label(&l).map_err(|m| err("node.label", m))?;
        }
        for (key, value, range, slot) in [
            (
                "federation.poll_interval_seconds",
                file.federation.poll_interval_seconds,
                POLL_SECONDS,
                &mut c.poll_interval,
            ),
            (
                "federation.request_timeout_seconds",
                file.federation.request_timeout_seconds,
                PEER_TIMEOUT_SECONDS,
                &mut c.peer_timeout,
            ),
        ] {
            if let Some(v) = value {
                if !range.contains(&v) {
                    return Err(err(key, format!("{v} is outside {range:?}")));
                }
                *slot = Duration::from_secs(v);
            }
        }
        if let Some(e) = file.discovery.enabled {
            c.discovery = e;
        }
        if let Some(names) = file.discovery.interfaces {
            for n in &names {
                // Linux interface names: 1 to 15 bytes, no '/' or whitespace.
                if n.is_empty()
                    || n.len() > 15
                    || n.contains('/')
                    || n.contains(char::is_whitespace)
                {
                    return Err(err(
                        "discovery.interfaces",
                        format!("{n:?} is not an interface name"),
                    ));
                }
            }
            c.discovery_interfaces = names;
        }
        if let Some(s) = file.discovery.pairing_ttl_seconds {
            if !PAIRING_TTL_SECONDS.contains(&s) {
                return Err(err(
                    "discovery.pairing_ttl_seconds",
                    format!("{s} is outside {PAIRING_TTL_SECONDS:?}"),
                ));
            }
            c.pairing_ttl = Duration::from_secs(s);
        }
        if let Some(user) = file.auth.admin_user {
            if !(1..=32).contains(&user.len())
                || !user
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            {
                return Err(err(
                    "auth.admin_user",
                    "1 to 32 characters of a-z, A-Z, 0-9, '.', '_' and '-'".into(),
                ));
            }
            c.admin_user = user;
        }
        if let Some(pw) = file.auth.admin_password {
            if !(8..=128).contains(&pw.chars().count()) {
                return Err(err("auth.admin_password", "8 to 128 characters".into()));
            }
            c.admin_password = Some(pw);
        }
        if let Some(m) = file.auth.session_idle_minutes {
            if !SESSION_IDLE_MINUTES.contains(&m) {
                return Err(err(
                    "auth.session_idle_minutes",
                    format!("{m} is outside {SESSION_IDLE_MINUTES:?}"),
                ));
            }
            c.session_idle = Duration::from_secs(m * 60);
        }
        if let Some(n) = file.auth.max_sessions {
            if !MAX_SESSIONS.contains(&n) {
                return Err(err(
                    "auth.max_sessions",
                    format!("{n} is outside {MAX_SESSIONS:?}"),
                ));
            }
            c.max_sessions = n as usize;
        }
        c.onvif.interface = file.onvif.interface;
        if let Some(s) = file.onvif.scan_seconds {
            let range = crate::onvif::SCAN_SECONDS;
            if !range.contains(&s) {
                return Err(err(
                    "onvif.scan_seconds",
                    format!("{s} is outside {range:?}"),
                ));
            }
            c.onvif.wait = Duration::from_secs(s);
        }
        if c.budget == Some(0) {
            return Err(err("storage.budget", "must be more than 0".into()));
        }
        let sys = file.system;
        if let Some(h) = sys.hostname {
            c.system.hostname = Some(hostname(&h).map_err(|m| err("system.hostname", m))?);
        }
        for (key, value, slot) in [
            ("system.boot_env", sys.boot_env, &mut c.system.boot_env),
            ("system.ab_file", sys.ab_file, &mut c.system.ab_file),
            ("system.state", sys.state, &mut c.system.state),
        ] {
            if let Some(v) = value {
                if !v.is_absolute() {
                    return Err(err(key, format!("{} is not an absolute path", v.display())));
                }
                *slot = v;
            }
        }
        if let Some(cmd) = sys.reboot_command {
            if cmd.first().is_none_or(|p| !Path::new(p).is_absolute()) {
                return Err(err(
                    "system.reboot_command",
                    "a list starting with the program's absolute path, like [\"/sbin/reboot\"]"
                        .into(),
                ));
            }
            c.system.reboot_command = cmd;
        }
        if let Some(w) = file.wifi {
            if !(1..=32).contains(&w.ssid.len()) {
                return Err(err("wifi.ssid", "1 to 32 bytes".into()));
            }
            if let Some(p) = &w.psk {
                wifi_psk(p).map_err(|m| err("wifi.psk", m))?;
            }
            let country = match w.country {
                Some(cc) if cc.len() == 2 && cc.bytes().all(|b| b.is_ascii_alphabetic()) => {
                    Some(cc.to_ascii_uppercase())
                }
                Some(cc) => {
                    return Err(err(
                        "wifi.country",
                        format!("{cc:?} is not a two-letter country code like \"GB\""),
                    ));
                }
                None => None,
            };
            c.wifi = Some(WifiConfig {
                ssid: w.ssid,
                psk: w.psk,
                country,
            });
        }
        if let Some(v) = &o.listen {
            c.listen = *v;
        }
        if let Some(v) = &o.data {
            c.data = v.clone();
        }
        c.demo = o.demo;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("eyrie.toml");
        std::fs::write(&p, text).unwrap();
        Config::load(Some(&p), &Overrides::default())
    }

    #[test]
    fn reads_every_key() {
        let c = load(
            r#"
            [http]
            listen = "127.0.0.1:9000"
            tls_listen = "127.0.0.1:9443"
            [storage]
            data = "/srv/eyrie"
            budget = "20 GiB"
            min_free = 1000000
            [recording]
            segment_seconds = 30
            fsync_interval_seconds = 5
            [node]
            label = "Garage"
            [federation]
            poll_interval_seconds = 2
            request_timeout_seconds = 1
            [discovery]
            enabled = false
            interfaces = ["eth0", "wlan0"]
            pairing_ttl_seconds = 60
            [auth]
            admin_user = "root"
            admin_password = "first-start"
            session_idle_minutes = 30
            max_sessions = 4
            [onvif]
            interface = "10.1.2.3"
            scan_seconds = 5
            [system]
            hostname = "eyrie-1a2b"
            boot_env = "/tmp/boot.env"
            ab_file = "/tmp/ab.txt"
            state = "/tmp/state"
            reboot_command = ["/bin/sh", "-c", "reboot"]
            [wifi]
            ssid = "Home"
            psk = "correct horse"
            country = "gb"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.tls_listen.map(|a| a.port()), Some(9443));
        assert_eq!(c.data, Path::new("/srv/eyrie"));
        assert_eq!(c.budget, Some(20 << 30));
        assert_eq!(c.min_free, 1_000_000);
        assert_eq!(c.segment_target, Duration::from_secs(30));
        assert_eq!(c.sync_interval, Duration::from_secs(5));
        assert_eq!(c.label, "Garage");
        assert_eq!(c.poll_interval, Duration::from_secs(2));
        assert_eq!(c.peer_timeout, Duration::from_secs(1));
        assert!(!c.discovery);
        assert_eq!(c.discovery_interfaces, ["eth0", "wlan0"]);
        assert_eq!(c.pairing_ttl, Duration::from_secs(60));
        let e = load("[discovery]\ninterfaces = [\"a b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("discovery.interfaces"), "{e}");
        assert_eq!(c.admin_user, "root");
        assert_eq!(c.admin_password.as_deref(), Some("first-start"));
        assert_eq!(c.session_idle, Duration::from_secs(1800));
        assert_eq!(c.max_sessions, 4);
        let e = load("[auth]\nadmin_password = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.admin_password"), "{e}");
        assert_eq!(c.onvif.interface, Some([10, 1, 2, 3].into()));
        assert_eq!(c.onvif.wait, Duration::from_secs(5));
        assert_eq!(c.system.hostname.as_deref(), Some("eyrie-1a2b"));
        assert_eq!(c.system.boot_env, Path::new("/tmp/boot.env"));
        assert_eq!(c.system.ab_file, Path::new("/tmp/ab.txt"));
        assert_eq!(c.system.state, Path::new("/tmp/state"));
        assert_eq!(c.system.reboot_command, ["/bin/sh", "-c", "reboot"]);
        let w = c.wifi.unwrap();
        assert_eq!(
            (w.ssid.as_str(), w.psk.as_deref()),
            ("Home", Some("correct horse"))
        );
        assert_eq!(w.country.as_deref(), Some("GB"));
        assert!(
            !format!("{w:?}").contains("horse"),
            "the passphrase is not logged"
        );
    }

    #[test]
    fn appliance_keys_are_checked() {
        for (text, key) in [
            ("[system]\nhostname = \"-bad\"\n", "system.hostname"),
            ("[system]\nhostname = \"a.b\"\n", "system.hostname"),
            ("[system]\nhostname = \"\"\n", "system.hostname"),
            ("[system]\nab_file = \"ab.txt\"\n", "system.ab_file"),
            ("[system]\nreboot_command = []\n", "system.reboot_command"),
            ("[wifi]\nssid = \"\"\n", "wifi.ssid"),
            (
                &format!("[wifi]\nssid = \"{}\"\n", "x".repeat(33)),
                "wifi.ssid",
            ),
            ("[wifi]\nssid = \"a\"\npsk = \"short\"\n", "wifi.psk"),
            ("[wifi]\nssid = \"a\"\npsk = \"tab\\tinside\"\n", "wifi.psk"),
            (
                &format!("[wifi]\nssid = \"a\"\npsk = \"{}\"\n", "x".repeat(64)),
                "wifi.psk",
            ),
            ("[wifi]\nssid = \"a\"\ncountry = \"GBR\"\n", "wifi.country"),
            ("[wifi]\npsk = \"12345678\"\n", "ssid"),
        ] {
            let e = load(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(hostname(&"a".repeat(63)).is_ok() && hostname(&"a".repeat(64)).is_err());
        let key = "0123456789abcdef".repeat(4);
        let c = load(&format!("[wifi]\nssid = \"a\"\npsk = \"{key}\"\n")).unwrap();
        assert_eq!(c.wifi.unwrap().psk.as_deref(), Some(key.as_str()));
        let c = load("").unwrap();
        assert_eq!(c.system.boot_env, Path::new("/run/eyrie/boot.env"));
        assert_eq!(c.system.ab_file, Path::new("/boot/ab.txt"));
        assert_eq!(c.system.reboot_command, ["/sbin/reboot"]);
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = load("[storage]\nbudgt = 5\n").unwrap_err().to_string();
        assert!(e.contains("eyrie.toml") && e.contains("budgt"), "{e}");
        let e = load("[recording]\nsegment_seconds = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("recording.segment_seconds"), "{e}");
        let e = load("[http]\nlisten = \"nope\"\n").unwrap_err().to_string();
        assert!(e.contains("listen"), "{e}");
        let e = load("[storage]\nbudget = \"lots\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("budget"), "{e}");
        let e = Config::load(
            Some(Path::new("/nonexistent/eyrie.toml")),
            &Overrides::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/nonexistent/eyrie.toml"), "{e}");
    }

    #[test]
    fn flags_override_the_file() {
        let o = Overrides {
            listen: Some("127.0.0.1:1".parse().unwrap()),
            data: Some("/x".into()),
            demo: true,
        };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.listen.port(), 1);
        assert!(c.demo);
    }
}
