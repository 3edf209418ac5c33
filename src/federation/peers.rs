//! Remote nodes this node reads, and what it last heard from them. A background poller asks
//! every enabled peer for its cameras and health (in parallel, with hard limits, backing off
//! from peers that keep failing) and keeps the answers in a cache, so that the aggregated
//! camera list and health answer at once whatever the peers do.
//!
//! An Eyrie peer is asked `GET /api/health` and `GET /api/cameras?scope=local` (local cameras
//! only, so two nodes that read each other never loop); a CartaNVR peer `GET
//! /api/maintenance/health` and `GET /api/cameras`. Both with `X-NVR-Auth: <key>`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::base::client::{self, FetchError, Limits};
use crate::storage::{Index, NodeKind, NodeRecord, StorageError};

/// Largest answer read from a peer.
pub const MAX_PEER_BODY: usize = 1 << 20;
/// Most cameras taken from one peer.
const MAX_PEER_CAMERAS: usize = 1000;
/// Longest wait between polls of a failing peer.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    pub interval: Duration,
    pub timeout: Duration,
}

impl PollConfig {
    /// Data older than this is flagged stale.
    pub fn stale_after(&self) -> Duration {
        self.interval * 3
    }
    fn limits(&self) -> Limits {
        Limits {
            connect: self.timeout,
            total: self.timeout,
            max_body: MAX_PEER_BODY,
        }
    }
}

/// A camera of a peer, as its owner described it (credentials and sources never included).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PeerCamera {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// `recording`, `connecting`, `error`, `disabled`, or `unknown` (CartaNVR).
    pub state: String,
    pub codec: Option<String>,
    /// The peer's absolute live URL with its media token, when it is on the peer's own origin.
    pub live_url: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PeerHealth {
    pub uptime_s: Option<u64>,
    pub disk_used_bytes: Option<u64>,
    pub disk_total_bytes: Option<u64>,
    pub cameras_recording: usize,
    pub cameras_total: usize,
    /// The board's temperature, when it reports one.
    pub temperature_c: Option<f64>,
    /// CartaNVR's `healthy` / `degraded`.
    pub status: Option<String>,
}

/// What this node knows of a peer now.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PeerStatus {
    pub online: bool,
    pub latency_ms: Option<u64>,
    pub last_seen_ms: Option<i64>,
    pub last_error: Option<String>,
    /// The peer's own node id and version, from its health.
    pub node_id: Option<String>,
    pub version: Option<String>,
    pub health: Option<PeerHealth>,
    #[serde(skip)]
    pub cameras: Vec<PeerCamera>,
    #[serde(skip)]
    failures: u32,
    #[serde(skip)]
    next_poll: Option<Instant>,
    /// While backing off from a peer that could not be connected to: when to try a bare TCP
    /// connect, which brings the full poll forward as soon as the peer answers again.
    #[serde(skip)]
    next_probe: Option<Instant>,
}

pub struct Peers {
    index: Arc<Index>,
    self_id: String,
    cfg: PollConfig,
    status: RwLock<HashMap<String, PeerStatus>>,
    wake: tokio::sync::Notify,
}

/// What one poll learnt.
#[derive(Debug)]
struct Learnt {
    node_id: Option<String>,
    version: Option<String>,
    health: PeerHealth,
    cameras: Vec<PeerCamera>,
    latency: Duration,
    tls_fingerprint: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("{0}")]
    Fetch(#[from] FetchError),
    #[error("the peer refused the key (HTTP {0})")]
    Refused(u16),
    #[error("HTTP {0} from the peer")]
    Status(u16),
    #[error("the peer's answer is not what was expected: {0}")]
    Malformed(String),
    #[error("that URL is this node itself")]
    IsSelf,
    #[error("this is the same node (node id {0}) as another remote node in the list")]
    Duplicate(String),
}

fn json(f: &client::Fetched) -> Result<Value, PollError> {
    match f.status {
        200 => serde_json::from_slice(&f.body).map_err(|e| PollError::Malformed(e.to_string())),
        401 | 403 => Err(PollError::Refused(f.status)),
        s => Err(PollError::Status(s)),
    }
}

/// A string the peer sent (a name, a state, a codec…), cleaned of control and bidi characters
/// where it enters ([`crate::base::text::clean`]), so nothing downstream sees them.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(crate::base::text::clean(s, 200)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads one peer: health first (it says who the peer is), then its local cameras.
async fn poll_once(node: &NodeRecord, self_id: &str, limits: Limits) -> Result<Learnt, PollError> {
    let base = node.url.trim_end_matches('/');
    let key = node.key.clone().unwrap_or_default();
    let headers = [("x-nvr-auth", key.as_str())];
    let (health_path, cameras_path) = match node.kind {
        NodeKind::Eyrie => ("/api/health", "/api/cameras?scope=local"),
        NodeKind::Cartanvr => ("/api/maintenance/health", "/api/cameras"),
    };
    let url = |p: &str| -> Result<url::Url, PollError> {
        format!("{base}{p}")
            .parse()
            .map_err(|e| PollError::Malformed(format!("URL: {e}")))
    };
    let pin = node.tls_pin.as_deref();
    let h = client::get(&url(health_path)?, &headers, limits, pin).await?;
    // Whatever the first answer's certificate was, the second must be the same one.
    let pin = pin.or(h.tls_fingerprint.as_deref());
    let latency = h.latency;
    let hv = json(&h)?;
    let node_id = hv.get("node_id").and_then(text);
    if node_id.as_deref() == Some(self_id) {
        return Err(PollError::IsSelf);
    }
    let c = client::get(&url(cameras_path)?, &headers, limits, pin).await?;
    let cv = json(&c)?;
    let (cameras, health) = read_answers(node, &hv, &cv)?;
    Ok(Learnt {
        node_id,
        version: hv.get("version").and_then(text),
        health,
        cameras,
        latency,
        tls_fingerprint: h.tls_fingerprint,
    })
}

/// What a peer's two answers say (health, then cameras), checked and cleaned: the cameras it
/// records itself (ids of a safe form, live URLs on its own origin only) and its health.
pub(crate) fn read_answers(
    node: &NodeRecord,
    hv: &Value,
    cv: &Value,
) -> Result<(Vec<PeerCamera>, PeerHealth), PollError> {
    let list = cv
        .as_array()
        .ok_or_else(|| PollError::Malformed("cameras: not a JSON array".into()))?;
    let mut cameras = Vec::new();
    for cam in list.iter().take(MAX_PEER_CAMERAS) {
        // A CartaNVR node lists the cameras it aggregates from others too: only its own count.
        if cam.get("isRemote").and_then(Value::as_bool) == Some(true)
            || cam.get("remote").and_then(Value::as_bool) == Some(true)
        {
            continue;
        }
        let Some(id) = cam.get("id").and_then(text) else {
            continue;
        };
        if id.is_empty()
            || id.len() > 64
            || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            continue;
        }
        let enabled = match cam.get("enabled") {
            Some(Value::Bool(b)) => *b,
            Some(Value::Number(n)) => n.as_i64() != Some(0),
            _ => true,
        };
        let state = cam
            .pointer("/status/state")
            .and_then(text)
            .unwrap_or_else(|| {
                if enabled {
                    "unknown".into()
                } else {
                    "disabled".into()
                }
            });
        let codec = match cam.get("is_hevc") {
            Some(v) => {
                let hevc = v.as_bool() == Some(true) || v.as_i64().is_some_and(|n| n != 0);
                Some(if hevc { "h265" } else { "h264" }.to_string())
            }
            None => cam.get("codec").and_then(text),
        };
        let live_url = cam
            .get("live_url")
            .and_then(Value::as_str)
            .filter(|u| u.len() <= 1024 && same_origin(u, &node.url))
            .map(str::to_string);
        cameras.push(PeerCamera {
            live_url,
            name: cam.get("name").and_then(text).unwrap_or_else(|| id.clone()),
            id,
            enabled,
            state,
            codec,
        });
    }
    let health = match node.kind {
        NodeKind::Eyrie => {
            let cams = hv.get("cameras").and_then(Value::as_array);
            PeerHealth {
                uptime_s: hv.get("uptime_s").and_then(Value::as_u64),
                disk_used_bytes: hv.pointer("/disk/used_bytes").and_then(Value::as_u64),
                disk_total_bytes: hv.pointer("/disk/total_bytes").and_then(Value::as_u64),
                cameras_recording: cams.map_or(0, |c| {
                    c.iter().filter(|c| c["state"] == "recording").count()
                }),
                cameras_total: cams.map_or(0, Vec::len),
                temperature_c: hv
                    .get("temperature_c")
                    .and_then(Value::as_f64)
                    .filter(|t| (-100.0..=200.0).contains(t)),
                status: None,
            }
        }
        NodeKind::Cartanvr => PeerHealth {
            status: hv.get("status").and_then(text),
            cameras_recording: cameras.iter().filter(|c| c.enabled).count(),
            cameras_total: cameras.len(),
            ..Default::default()
        },
    };
    Ok((cameras, health))
}

/// Whether something accepts TCP connections at `url`'s host and port within `limit`: the cheap
/// check that a peer which was unreachable is back.
async fn answers(url: &str, limit: Duration) -> bool {
    let Ok(u) = url::Url::parse(url) else {
        return false;
    };
    let (Some(host), Some(port)) = (u.host(), u.port_or_known_default()) else {
        return false;
    };
    let host = match host {
        url::Host::Domain(d) => d.to_string(),
        url::Host::Ipv4(a) => a.to_string(),
        url::Host::Ipv6(a) => a.to_string(),
    };
    matches!(
        tokio::time::timeout(limit, tokio::net::TcpStream::connect((host.as_str(), port))).await,
        Ok(Ok(_))
    )
}

/// Whether `url` lies on the origin of `base` (scheme, host and port), so a peer can only send
/// browsers to itself.
pub fn same_origin(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(u), Ok(b)) => u.origin() == b.origin() && u.username().is_empty(),
        _ => false,
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// Up to ±10 % of `d`, from the clock's low bits (spreads peers' polls; not security).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as u64;
    let span = d.as_millis() as u64 / 5;
    let off = if span == 0 { 0 } else { nanos % span };
    (d + Duration::from_millis(off)).saturating_sub(Duration::from_millis(span / 2))
}

/// The result of checking a URL and key before saving them.
#[derive(Debug, Serialize)]
pub struct TestResult {
    pub ok: bool,
    pub reachable: bool,
    pub key_accepted: bool,
    pub is_self: bool,
    pub node_id: Option<String>,
    pub version: Option<String>,
    pub cameras: usize,
    pub latency_ms: Option<u64>,
    /// The certificate an HTTPS peer presented: what will be pinned when the node is saved.
    pub tls_fingerprint: Option<String>,
    pub message: String,
}

impl Peers {
    pub fn new(index: Arc<Index>, cfg: PollConfig) -> Arc<Self> {
        let self_id = index.node_id().to_string();
        Arc::new(Self {
            index,
            self_id,
            cfg,
            status: RwLock::new(HashMap::new()),
            wake: tokio::sync::Notify::new(),
        })
    }

    pub fn config(&self) -> PollConfig {
        self.cfg
    }

    pub fn nodes(&self) -> Result<Vec<NodeRecord>, StorageError> {
        self.index.nodes()
    }

    pub fn status(&self, id: &str) -> PeerStatus {
        self.status
            .read()
            .unwrap()
            .get(id)
            .cloned()
            .unwrap_or_default()
    }

    /// Polls `id` at once (after it was added or changed), or forgets it (deleted).
    pub fn changed(&self, id: &str, exists: bool) {
        let mut s = self.status.write().unwrap();
        if exists {
            let e = s.entry(id.to_string()).or_default();
            e.next_poll = None;
            e.failures = 0;
        } else {
            s.remove(id);
        }
        drop(s);
        self.wake.notify_one();
    }

    /// Checks a URL and key the way the poller would, for `POST /api/system/nodes/test`.
    pub async fn test(&self, node: &NodeRecord) -> TestResult {
        let mut r = TestResult {
            ok: false,
            reachable: false,
            key_accepted: false,
            is_self: false,
            node_id: None,
            version: None,
            cameras: 0,
            latency_ms: None,
            tls_fingerprint: None,
            message: String::new(),
        };
        match poll_once(node, &self.self_id, self.cfg.limits()).await {
            Ok(l) => {
                r.ok = true;
                r.reachable = true;
                r.key_accepted = true;
                r.node_id = l.node_id;
                r.version = l.version;
                r.cameras = l.cameras.len();
                r.latency_ms = Some(l.latency.as_millis() as u64);
                r.tls_fingerprint = l.tls_fingerprint;
                r.message = format!("connected: {} cameras", r.cameras);
            }
            Err(e) => {
                r.reachable = !matches!(
                    e,
                    PollError::Fetch(
                        FetchError::Connect(_)
                            | FetchError::ConnectTimeout(_)
                            | FetchError::Unsupported(_)
                    )
                );
                r.is_self = matches!(e, PollError::IsSelf);
                r.key_accepted = r.reachable && !matches!(e, PollError::Refused(_));
                r.message = match e {
                    PollError::Refused(_) => "the peer is reachable but refused the key".into(),
                    other => other.to_string(),
                };
            }
        }
        r
    }

    /// Polls every enabled peer that is due, in parallel; then waits for the next due time or a
    /// change. Runs until the process ends.
    pub async fn run(self: Arc<Self>) {
        loop {
            let nodes = match self.index.nodes() {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!("reading remote nodes: {e}");
                    Vec::new()
                }
            };
            let now = Instant::now();
            // (node, probe first): a peer due for its poll is polled; one backing off after a
            // failed connect is probed each interval and polled at once if it answers.
            let due: Vec<(NodeRecord, bool)> = {
                let s = self.status.read().unwrap();
                nodes
                    .into_iter()
                    .filter(|n| n.enabled)
                    .filter_map(|n| match s.get(&n.id) {
                        Some(p) if p.next_poll.is_some_and(|t| t > now) => {
                            p.next_probe.is_some_and(|t| t <= now).then_some((n, true))
                        }
                        _ => Some((n, false)),
                    })
                    .collect()
            };
            let polls = due.into_iter().map(|(node, probe)| {
                let me = self.clone();
                async move {
                    if probe && !answers(&node.url, me.cfg.timeout).await {
                        me.probed(&node.id);
                        return;
                    }
                    me.poll(node).await;
                }
            });
            futures::future::join_all(polls).await;
            let next = {
                let s = self.status.read().unwrap();
                s.values()
                    .flat_map(|p| [p.next_poll, p.next_probe])
                    .flatten()
                    .min()
            };
            let sleep = next
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(self.cfg.interval)
                .max(Duration::from_millis(50));
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Polls `node` now and records what it learnt (and pins an HTTPS peer's certificate at
    /// its first successful poll); for the poller and for a re-check asked through the API.
    pub async fn poll(&self, node: NodeRecord) {
        let r = poll_once(&node, &self.self_id, self.cfg.limits()).await;
        let first_pin = match (&r, &node.tls_pin) {
            (Ok(l), None) => l.tls_fingerprint.clone(),
            _ => None,
        };
        self.record(&node.id, r);
        if let Some(pin) = first_pin {
            self.pin_first_use(node, pin).await;
        }
    }

    /// A probe of a backing-off peer found nothing listening: probe again next interval.
    fn probed(&self, id: &str) {
        if let Some(p) = self.status.write().unwrap().get_mut(id) {
            p.next_probe = Some(Instant::now() + self.cfg.interval);
        }
    }

    /// The other remote node (by id) that already is the peer with node id `node_id`.
    pub fn known_as(&self, node_id: &str, except: &str) -> Option<String> {
        self.status
            .read()
            .unwrap()
            .iter()
            .find(|(id, p)| *id != except && p.node_id.as_deref() == Some(node_id))
            .map(|(id, _)| id.clone())
    }

    /// Trust on first use: the certificate an HTTPS peer presented at the first successful poll
    /// is pinned, and every later connection must present the same one.
    async fn pin_first_use(&self, mut node: NodeRecord, pin: String) {
        tracing::info!(node = %node.label, fingerprint = %pin, "pinning the peer's TLS certificate");
        node.tls_pin = Some(pin);
        let index = self.index.clone();
        let saved = tokio::task::spawn_blocking(move || {
            // Only if the node is still there and still unpinned.
            let current = index.nodes()?.into_iter().find(|n| n.id == node.id);
            match current {
                Some(c) if c.tls_pin.is_none() && c.url == node.url => index.put_node(&node),
                _ => Ok(()),
            }
        })
        .await;
        if let Ok(Err(e)) = saved {
            tracing::error!("saving a TLS pin: {e}");
        }
    }

    fn record(&self, id: &str, r: Result<Learnt, PollError>) {
        // The same node added twice (under two URLs): the entry that knew it first keeps it.
        let r = r.and_then(|l| match l.node_id.as_deref() {
            Some(n) if self.known_as(n, id).is_some() => Err(PollError::Duplicate(n.to_string())),
            _ => Ok(l),
        });
        let mut s = self.status.write().unwrap();
        let p = s.entry(id.to_string()).or_default();
        match r {
            Ok(l) => {
                p.online = true;
                p.latency_ms = Some(l.latency.as_millis() as u64);
                p.last_seen_ms = Some(now_ms());
                p.last_error = None;
                p.node_id = l.node_id;
                p.version = l.version;
                p.health = Some(l.health);
                p.cameras = l.cameras;
                p.failures = 0;
                p.next_poll = Some(Instant::now() + jitter(self.cfg.interval));
                p.next_probe = None;
            }
            Err(e) => {
                p.online = false;
                // A latency is only meaningful for an answer that came.
                p.latency_ms = None;
                if matches!(e, PollError::Duplicate(_) | PollError::IsSelf) {
                    p.cameras.clear();
                    p.health = None;
                    p.node_id = None;
                }
                p.next_probe = matches!(
                    e,
                    PollError::Fetch(FetchError::Connect(_) | FetchError::ConnectTimeout(_))
                )
                .then(|| Instant::now() + self.cfg.interval);
                p.last_error = Some(e.to_string());
                p.failures = p.failures.saturating_add(1);
                let backoff = self
                    .cfg
                    .interval
                    .saturating_mul(1 << p.failures.min(6).saturating_sub(1))
                    .min(MAX_BACKOFF);
                p.next_poll = Some(Instant::now() + jitter(backoff));
            }
        }
    }

    /// Whether the cached data of a peer is older than the stale threshold.
    pub fn is_stale(&self, p: &PeerStatus) -> bool {
        p.last_seen_ms
            .is_none_or(|t| now_ms() - t > self.cfg.stale_after().as_millis() as i64)
    }
}
