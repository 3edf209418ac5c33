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
    onvif: OnvifSection,
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
            if !SEGMENT_SECONDS.contains(&s) {
                return Err(err(
                    "recording.segment_seconds",
                    format!("{s} is outside {SEGMENT_SECONDS:?}"),
                ));
            }
            c.segment_target = Duration::from_secs(s);
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
        if let Some(label) = file.node.label {
            let label = label.trim().to_string();
            if label.is_empty() || label.chars().count() > 64 || label.chars().any(char::is_control)
            {
                return Err(err(
                    "node.label",
                    "1 to 64 characters, no control characters".into(),
                ));
            }
            c.label = label;
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
