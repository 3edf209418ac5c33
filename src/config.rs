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
            match crate::http::origin_setting(&o) {
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
