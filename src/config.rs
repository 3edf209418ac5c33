//! Configuration: built-in defaults, then an optional `eyrie.toml`, then command-line flags.
//! Every key is documented in docs/config.md. A bad file is one clear error naming the file and
//! the key, and the process exits with status 2.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::base::names;

/// The settings Eyrie runs with: one field per section of `eyrie.toml`, each deserialised
/// straight from its table. A missing key or table keeps the built-in default
/// (`#[serde(default)]`), an unknown one is an error (`deny_unknown_fields`); what serde cannot
/// check (ranges, names, paths) [`Config::load`] checks right after.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub http: HttpConfig,
    pub storage: StorageConfig,
    pub recording: RecordingConfig,
    pub node: NodeConfig,
    pub federation: FederationConfig,
    pub discovery: DiscoveryConfig,
    pub auth: AuthConfig,
    /// Where ONVIF discovery probes go out, and how long a scan waits for answers.
    #[serde(with = "OnvifSection")]
    pub onvif: crate::onvif::ScanConfig,
    /// The appliance's host name, slot files and reboot command (src/system, docs/update.md).
    pub system: SystemConfig,
    /// The Wi-Fi network the appliance joins (applied by `eyrie apply-boot-config`).
    pub wifi: Option<WifiConfig>,
    /// Add the built-in demo camera (`--demo` only; not a file key).
    #[serde(skip)]
    pub demo: bool,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    pub listen: SocketAddr,
    /// Where to serve HTTPS too (with a self-signed certificate made at first start).
    pub tls_listen: Option<SocketAddr>,
    /// Origins (`scheme://host[:port]`) whose pages may make credentialed requests, besides
    /// the registered remote nodes'. Normalised by [`Config::load`].
    pub cors_origins: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            tls_listen: None,
            cors_origins: Vec::new(),
        }
    }
}

/// `[storage]`: sizes are a number of bytes or a string with a unit (`"20 GiB"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    pub data: PathBuf,
    /// Bytes all recordings may use; `None` means only `min_free` limits them.
    #[serde(deserialize_with = "de::some_bytes")]
    pub budget: Option<u64>,
    #[serde(deserialize_with = "de::bytes")]
    pub min_free: u64,
    /// Share of the budget (or of the filesystem, without a budget) that protected event
    /// clips may use: 0 to 0.9.
    pub protected_share: f32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data: PathBuf::from("eyrie-data"),
            budget: None,
            min_free: 512 << 20,
            protected_share: 0.25,
        }
    }
}

impl StorageConfig {
    /// The limits retention starts with.
    pub fn retention(&self) -> crate::storage::retention::RetentionConfig {
        crate::storage::retention::RetentionConfig {
            budget: self.budget,
            min_free: self.min_free,
            protected_share: self.protected_share,
        }
    }
}

/// `[recording]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordingConfig {
    #[serde(rename = "segment_seconds", deserialize_with = "de::seconds")]
    pub segment_target: Duration,
    #[serde(rename = "fsync_interval_seconds", deserialize_with = "de::seconds")]
    pub sync_interval: Duration,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            segment_target: Duration::from_secs(60),
            sync_interval: Duration::from_secs(10),
        }
    }
}

/// `[node]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    /// How this node is named to people and peers (default: the host name).
    pub label: String,
}

impl Default for NodeConfig {
    fn default() -> Self {
        Self { label: host_name() }
    }
}

/// `[federation]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    #[serde(rename = "poll_interval_seconds", deserialize_with = "de::seconds")]
    pub poll_interval: Duration,
    /// Connect and answer deadline of each request to a peer.
    #[serde(rename = "request_timeout_seconds", deserialize_with = "de::seconds")]
    pub peer_timeout: Duration,
}

impl Default for FederationConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(10),
            peer_timeout: Duration::from_secs(3),
        }
    }
}

/// `[discovery]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Advertise and browse over mDNS (docs/federation.md).
    pub enabled: bool,
    /// Interfaces mDNS uses; empty: all but loopback.
    pub interfaces: Vec<String>,
    /// How long a pairing request waits for approval and collection.
    #[serde(rename = "pairing_ttl_seconds", deserialize_with = "de::seconds")]
    pub pairing_ttl: Duration,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interfaces: Vec::new(),
            pairing_ttl: Duration::from_secs(600),
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Name of the account made at first start.
    pub admin_user: String,
    /// Password of that account; without one, first start prints a one-time setup link.
    pub admin_password: Option<String>,
    /// A session unused for this long ends.
    #[serde(rename = "session_idle_minutes", deserialize_with = "de::minutes")]
    pub session_idle: Duration,
    pub max_sessions: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_user: "admin".into(),
            admin_password: None,
            session_idle: Duration::from_secs(12 * 3600),
            max_sessions: 32,
        }
    }
}

/// `[onvif]`, read straight into the scanner's own settings.
#[derive(Deserialize)]
#[serde(remote = "crate::onvif::ScanConfig", deny_unknown_fields)]
struct OnvifSection {
    #[serde(default)]
    interface: Option<Ipv4Addr>,
    #[serde(
        rename = "scan_seconds",
        deserialize_with = "de::seconds",
        default = "default_scan_wait"
    )]
    wait: Duration,
    #[serde(default, deserialize_with = "de::url")]
    notify_base_url: Option<url::Url>,
}

fn default_scan_wait() -> Duration {
    crate::onvif::ScanConfig::default().wait
}

/// `[system]`: the appliance's own settings (docs/update.md): where the initramfs and the boot
/// partition keep the slot state, and how to reboot.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// The boot partition's file of public keys trusted to sign updates, one a line.
    pub update_keys_file: PathBuf,
    /// Whether an update may be an unsigned image (one with a signature that does not verify
    /// is refused still). Only eyrie.toml sets it: on the appliance, the boot partition.
    pub allow_unsigned_updates: bool,
}

impl Default for SystemConfig {
    fn default() -> Self {
        Self {
            hostname: None,
            boot_env: PathBuf::from("/run/eyrie/boot.env"),
            ab_file: PathBuf::from("/boot/ab.txt"),
            state: PathBuf::from("/data/system"),
            reboot_command: vec!["/sbin/reboot".into()],
            update_keys_file: PathBuf::from("/boot/update-keys.txt"),
            allow_unsigned_updates: false,
        }
    }
}

/// `[wifi]`, a Wi-Fi network: the passphrase (or the derived key as 64 hex digits) is a secret
/// that `apply-boot-config` turns into a key and then removes from the file.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiConfig {
    pub ssid: String,
    pub psk: Option<String>,
    /// ISO 3166-1 alpha-2, upper case once loaded.
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

/// Deserialisers from the file's units into the settings' types.
mod de {
    use std::time::Duration;

    use bytesize::ByteSize;
    use serde::{Deserialize, Deserializer, de::Error};

    pub fn url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<url::Url>, D::Error> {
        let s = String::deserialize(d)?;
        url::Url::parse(&s)
            .map(Some)
            .map_err(|e| D::Error::custom(format!("{s:?} is not a URL: {e}")))
    }

    pub fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }

    pub fn minutes<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let m = u64::deserialize(d)?;
        m.checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(|| D::Error::custom(format!("{m} minutes is too long")))
    }

    pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        ByteSize::deserialize(d).map(|b| b.as_u64())
    }

    pub fn some_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        bytes(d).map(Some)
    }
}

/// A value refused, and what a good one looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("{value} is outside {range:?}")]
    OutOfRange {
        value: u64,
        range: RangeInclusive<u64>,
    },
    #[error("{value:?} is not {expected}")]
    Not {
        value: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Expected(&'static str),
}

impl Invalid {
    fn not(value: impl Into<String>, expected: &'static str) -> Self {
        Self::Not {
            value: value.into(),
            expected,
        }
    }
}

/// A setting refused: its key (`section.key` in the file) and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct Refused {
    pub key: &'static str,
    pub problem: Invalid,
}

/// Tags an [`Invalid`] with the key it was found at.
trait At<T> {
    fn at(self, key: &'static str) -> Result<T, Refused>;
}

impl<T, E: Into<Invalid>> At<T> for Result<T, E> {
    fn at(self, key: &'static str) -> Result<T, Refused> {
        self.map_err(|problem| Refused {
            key,
            problem: problem.into(),
        })
    }
}

/// A name refused by the shared checks of [`names`] (a node label).
impl From<names::Invalid> for Invalid {
    fn from(e: names::Invalid) -> Self {
        Self::Expected(e.0)
    }
}

/// A configuration that cannot be used, named by its file.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {kind}")]
pub struct ConfigError {
    pub file: String,
    pub kind: ConfigErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// Not TOML, a wrong type, an unknown key (the message names the line and the key).
    #[error("{}", .0.to_string().trim_end())]
    Parse(toml::de::Error),
    #[error(transparent)]
    Refused(Refused),
}

/// A host name: one RFC 1123 label (1 to 63 of a-z, A-Z, 0-9 and '-', not starting or ending
/// with '-'), kept as written.
pub fn hostname(name: &str) -> Result<String, Invalid> {
    let b = name.as_bytes();
    let ok = (1..=63).contains(&b.len())
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-';
    if ok {
        Ok(name.to_string())
    } else {
        Err(Invalid::not(
            name,
            "a host name (1 to 63 of a-z, A-Z, 0-9 and '-', not starting or ending with '-')",
        ))
    }
}

/// A Wi-Fi passphrase (8 to 63 printable ASCII characters) or a derived key (64 hex digits).
pub fn wifi_psk(psk: &str) -> Result<(), Invalid> {
    let passphrase =
        (8..=63).contains(&psk.len()) && psk.bytes().all(|c| (0x20..=0x7e).contains(&c));
    let key = psk.len() == 64 && psk.bytes().all(|c| c.is_ascii_hexdigit());
    if passphrase || key {
        Ok(())
    } else {
        Err(Invalid::Expected(
            "8 to 63 printable ASCII characters, or 64 hex digits",
        ))
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

/// Flags given on the command line; they win over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<SocketAddr>,
    pub data: Option<PathBuf>,
    pub demo: bool,
}

pub const SEGMENT_SECONDS: RangeInclusive<u64> = 10..=300;
pub const FSYNC_SECONDS: RangeInclusive<u64> = 1..=300;
pub const POLL_SECONDS: RangeInclusive<u64> = 1..=300;
pub const PEER_TIMEOUT_SECONDS: RangeInclusive<u64> = 1..=30;
pub const PAIRING_TTL_SECONDS: RangeInclusive<u64> = 5..=3600;
pub const SESSION_IDLE_MINUTES: RangeInclusive<u64> = 1..=10080;
pub const MAX_SESSIONS: RangeInclusive<u64> = 1..=1000;

/// `value` if it is within `range`.
fn within(value: u64, range: RangeInclusive<u64>) -> Result<u64, Invalid> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(Invalid::OutOfRange { value, range })
    }
}

/// A segment length in seconds, within [`SEGMENT_SECONDS`].
pub fn segment_target(seconds: u64) -> Result<Duration, Invalid> {
    within(seconds, SEGMENT_SECONDS).map(Duration::from_secs)
}

/// What the admin set in the web UI (`PUT /api/system/settings`), kept in the index. It wins
/// over eyrie.toml, at once and at every start.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct AdminSettings {
    pub label: String,
    pub segment_seconds: u64,
    pub budget_bytes: Option<u64>,
    pub min_free_bytes: u64,
    /// Public keys trusted to sign updates, besides the boot partition's (docs/update.md).
    #[serde(default)]
    pub update_keys: Vec<String>,
}

impl AdminSettings {
    /// The index's setting key.
    pub const KEY: &str = "admin";

    /// The values `c` runs with.
    pub fn of(c: &Config) -> Self {
        Self {
            label: c.node.label.clone(),
            segment_seconds: c.recording.segment_target.as_secs(),
            budget_bytes: c.storage.budget,
            min_free_bytes: c.storage.min_free,
            update_keys: Vec::new(),
        }
    }

    /// The update keys, parsed.
    pub fn update_keys(&self) -> Result<Vec<crate::system::signature::PublicKey>, Refused> {
        if self.update_keys.len() > crate::system::signature::MAX_KEYS {
            return Err(Invalid::Expected("at most 32 keys")).at("update_keys");
        }
        self.update_keys
            .iter()
            .map(|k| {
                k.parse().map_err(|_| {
                    Invalid::not(
                        k.chars().take(60).collect::<String>(),
                        "an Ed25519 public key (44 characters of base64)",
                    )
                })
            })
            .collect::<Result<_, _>>()
            .at("update_keys")
    }

    /// Checks every value as the config file's would be.
    pub fn validate(&self) -> Result<(), Refused> {
        names::label(&self.label).at("label")?;
        segment_target(self.segment_seconds).at("segment_seconds")?;
        if self.budget_bytes == Some(0) {
            return Err(Invalid::Expected(
                "must be more than 0, or null for no budget",
            ))
            .at("budget_bytes");
        }
        self.update_keys()?;
        Ok(())
    }

    /// Makes `c` run with these values.
    pub fn apply(&self, c: &mut Config) {
        c.node.label = self.label.clone();
        c.recording.segment_target = Duration::from_secs(self.segment_seconds);
        c.storage.budget = self.budget_bytes;
        c.storage.min_free = self.min_free_bytes;
    }
}

impl Config {
    /// Loads `path` if given (it must then exist), checks it, applies the overrides.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Self, ConfigError> {
        let (file, read) = match path {
            Some(p) => (
                p.display().to_string(),
                std::fs::read_to_string(p)
                    .map_err(ConfigErrorKind::Read)
                    .and_then(|text| Self::from_text(&text)),
            ),
            None => ("(defaults)".to_string(), Config::default().checked()),
        };
        let mut c = read.map_err(|kind| ConfigError { file, kind })?;
        if let Some(v) = o.listen {
            c.http.listen = v;
        }
        if let Some(v) = &o.data {
            c.storage.data = v.clone();
        }
        c.demo = o.demo;
        Ok(c)
    }

    /// The settings in `text` (an eyrie.toml), checked and normalised.
    pub fn from_text(text: &str) -> Result<Self, ConfigErrorKind> {
        toml::from_str::<Config>(text)
            .map_err(ConfigErrorKind::Parse)?
            .checked()
    }

    fn checked(mut self) -> Result<Self, ConfigErrorKind> {
        self.check().map_err(ConfigErrorKind::Refused)?;
        Ok(self)
    }

    /// What deserialising cannot check: ranges, names, paths. Normalises as it goes (trimmed
    /// label, canonical origins, upper-case country).
    fn check(&mut self) -> Result<(), Refused> {
        self.http.check()?;
        self.recording.check()?;
        self.node.label = names::label(&self.node.label).at("node.label")?;
        self.federation.check()?;
        self.discovery.check()?;
        self.auth.check()?;
        within(self.onvif.wait.as_secs(), crate::onvif::SCAN_SECONDS).at("onvif.scan_seconds")?;
        if let Some(u) = &self.onvif.notify_base_url {
            if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
                return Err(Refused {
                    key: "onvif.notify_base_url",
                    problem: Invalid::Not {
                        value: u.to_string(),
                        expected: "an http:// or https:// URL with a host",
                    },
                });
            }
        }
        self.storage.check()?;
        self.system.check()?;
        if let Some(w) = &mut self.wifi {
            w.check()?;
        }
        Ok(())
    }
}

impl HttpConfig {
    fn check(&mut self) -> Result<(), Refused> {
        for o in &mut self.cors_origins {
            *o = crate::base::names::origin_setting(o)
                .ok_or_else(|| {
                    Invalid::not(
                        o.as_str(),
                        "an origin like http://host:port (no path, no *)",
                    )
                })
                .at("http.cors_origins")?;
        }
        Ok(())
    }
}

impl StorageConfig {
    fn check(&self) -> Result<(), Refused> {
        if self.budget == Some(0) {
            return Err(Invalid::Expected("must be more than 0")).at("storage.budget");
        }
        if !(0.0..=0.9).contains(&self.protected_share) {
            return Err(Invalid::Expected("a share from 0 to 0.9")).at("storage.protected_share");
        }
        Ok(())
    }
}

impl RecordingConfig {
    fn check(&self) -> Result<(), Refused> {
        segment_target(self.segment_target.as_secs()).at("recording.segment_seconds")?;
        within(self.sync_interval.as_secs(), FSYNC_SECONDS)
            .at("recording.fsync_interval_seconds")?;
        Ok(())
    }
}

impl FederationConfig {
    fn check(&self) -> Result<(), Refused> {
        within(self.poll_interval.as_secs(), POLL_SECONDS)
            .at("federation.poll_interval_seconds")?;
        within(self.peer_timeout.as_secs(), PEER_TIMEOUT_SECONDS)
            .at("federation.request_timeout_seconds")?;
        Ok(())
    }
}

impl DiscoveryConfig {
    fn check(&self) -> Result<(), Refused> {
        for n in &self.interfaces {
            // Linux interface names: 1 to 15 bytes, no '/' or whitespace.
            if n.is_empty() || n.len() > 15 || n.contains('/') || n.contains(char::is_whitespace) {
                return Err(Invalid::not(n.as_str(), "an interface name"))
                    .at("discovery.interfaces");
            }
        }
        within(self.pairing_ttl.as_secs(), PAIRING_TTL_SECONDS)
            .at("discovery.pairing_ttl_seconds")?;
        Ok(())
    }
}

impl AuthConfig {
    fn check(&self) -> Result<(), Refused> {
        let user = &self.admin_user;
        if !(1..=32).contains(&user.len())
            || !user
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            return Err(Invalid::Expected(
                "1 to 32 characters of a-z, A-Z, 0-9, '.', '_' and '-'",
            ))
            .at("auth.admin_user");
        }
        if let Some(pw) = &self.admin_password {
            if !(8..=128).contains(&pw.chars().count()) {
                return Err(Invalid::Expected("8 to 128 characters")).at("auth.admin_password");
            }
        }
        within(self.session_idle.as_secs() / 60, SESSION_IDLE_MINUTES)
            .at("auth.session_idle_minutes")?;
        within(self.max_sessions as u64, MAX_SESSIONS).at("auth.max_sessions")?;
        Ok(())
    }
}

impl SystemConfig {
    fn check(&self) -> Result<(), Refused> {
        if let Some(h) = &self.hostname {
            hostname(h).at("system.hostname")?;
        }
        for (key, path) in [
            ("system.boot_env", &self.boot_env),
            ("system.ab_file", &self.ab_file),
            ("system.state", &self.state),
            ("system.update_keys_file", &self.update_keys_file),
        ] {
            if !path.is_absolute() {
                return Err(Invalid::not(path.display().to_string(), "an absolute path")).at(key);
            }
        }
        if self
            .reboot_command
            .first()
            .is_none_or(|p| !Path::new(p).is_absolute())
        {
            return Err(Invalid::Expected(
                "a list starting with the program's absolute path, like [\"/sbin/reboot\"]",
            ))
            .at("system.reboot_command");
        }
        Ok(())
    }
}

impl WifiConfig {
    fn check(&mut self) -> Result<(), Refused> {
        if !(1..=32).contains(&self.ssid.len()) {
            return Err(Invalid::Expected("1 to 32 bytes")).at("wifi.ssid");
        }
        if let Some(p) = &self.psk {
            wifi_psk(p).at("wifi.psk")?;
        }
        if let Some(cc) = &mut self.country {
            if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(Invalid::not(
                    cc.as_str(),
                    "a two-letter country code like \"GB\"",
                ))
                .at("wifi.country");
            }
            cc.make_ascii_uppercase();
        }
        Ok(())
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
            notify_base_url = "https://nvr.example:8443/eyrie/"
            [system]
            hostname = "eyrie-1a2b"
            boot_env = "/tmp/boot.env"
            ab_file = "/tmp/ab.txt"
            state = "/tmp/state"
            reboot_command = ["/bin/sh", "-c", "reboot"]
            update_keys_file = "/tmp/keys.txt"
            allow_unsigned_updates = true
            [wifi]
            ssid = "Home"
            psk = "correct horse"
            country = "gb"
            "#,
        )
        .unwrap();
        assert_eq!(c.http.listen.port(), 9000);
        assert_eq!(c.http.tls_listen.map(|a| a.port()), Some(9443));
        assert_eq!(c.storage.data, Path::new("/srv/eyrie"));
        assert_eq!(c.storage.budget, Some(20 << 30));
        assert_eq!(c.storage.min_free, 1_000_000);
        assert_eq!(c.recording.segment_target, Duration::from_secs(30));
        assert_eq!(c.recording.sync_interval, Duration::from_secs(5));
        assert_eq!(c.node.label, "Garage");
        assert_eq!(c.federation.poll_interval, Duration::from_secs(2));
        assert_eq!(c.federation.peer_timeout, Duration::from_secs(1));
        assert!(!c.discovery.enabled);
        assert_eq!(c.discovery.interfaces, ["eth0", "wlan0"]);
        assert_eq!(c.discovery.pairing_ttl, Duration::from_secs(60));
        let e = load("[discovery]\ninterfaces = [\"a b\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("discovery.interfaces"), "{e}");
        assert_eq!(c.auth.admin_user, "root");
        assert_eq!(c.auth.admin_password.as_deref(), Some("first-start"));
        assert_eq!(c.auth.session_idle, Duration::from_secs(1800));
        assert_eq!(c.auth.max_sessions, 4);
        let e = load("[auth]\nadmin_password = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.admin_password"), "{e}");
        assert_eq!(c.onvif.interface, Some([10, 1, 2, 3].into()));
        assert_eq!(
            c.onvif.notify_base_url.as_ref().map(|u| u.as_str()),
            Some("https://nvr.example:8443/eyrie/")
        );
        assert_eq!(c.onvif.wait, Duration::from_secs(5));
        assert_eq!(c.system.hostname.as_deref(), Some("eyrie-1a2b"));
        assert_eq!(c.system.boot_env, Path::new("/tmp/boot.env"));
        assert_eq!(c.system.ab_file, Path::new("/tmp/ab.txt"));
        assert_eq!(c.system.state, Path::new("/tmp/state"));
        assert_eq!(c.system.reboot_command, ["/bin/sh", "-c", "reboot"]);
        assert_eq!(c.system.update_keys_file, Path::new("/tmp/keys.txt"));
        assert!(c.system.allow_unsigned_updates);
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
            (
                "[onvif]\nnotify_base_url = \"ftp://nvr/\"\n",
                "onvif.notify_base_url",
            ),
            ("[system]\nhostname = \"a.b\"\n", "system.hostname"),
            ("[system]\nhostname = \"\"\n", "system.hostname"),
            ("[system]\nab_file = \"ab.txt\"\n", "system.ab_file"),
            ("[system]\nreboot_command = []\n", "system.reboot_command"),
            (
                "[system]\nupdate_keys_file = \"keys.txt\"\n",
                "system.update_keys_file",
            ),
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
        assert_eq!(
            c.system.update_keys_file,
            Path::new("/boot/update-keys.txt")
        );
        assert!(!c.system.allow_unsigned_updates, "updates are signed");
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
        let e = load("[storage]\nprotected_share = 0.95\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("storage.protected_share"), "{e}");
        assert_eq!(
            load("[storage]\nprotected_share = 0.5\n")
                .unwrap()
                .storage
                .protected_share,
            0.5
        );
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
        assert_eq!(c.http.listen.port(), 1);
        assert!(c.demo);
    }
}
