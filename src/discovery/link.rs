//! Pairing at work: the requests other nodes made to this one (B's side, [`Requests`]) and the
//! pairings this node runs (A's side): ask the other node, show the code, collect the key in
//! the background with the federation client (a timeout on every call), and store the other
//! node as a remote node (TLS fingerprint pinned for HTTPS).

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::events::{Hub, Topic};
use super::pairing::{
    PairError, PairRequest, Pairing, PairingState, Pairings, RequestView, Requests, random_code,
};
use crate::base::client::{self, FetchError, Limits};
use crate::base::secret::random_hex;
use crate::federation::keys::KeyStore;
use crate::federation::peers::Peers;
use crate::storage::{Index, MediaMode, NodeKind, NodeRecord, StorageError};

/// Largest answer read from the other node during pairing.
const MAX_ANSWER: usize = 16 * 1024;
/// How often A asks whether its request was approved.
const COLLECT_EVERY: Duration = Duration::from_secs(2);

/// This node, as it introduces itself when pairing.
#[derive(Debug, Clone)]
pub struct Me {
    pub node_id: String,
    pub label: String,
    /// `http` or `https`, and the port peers reach this node on.
    pub https: bool,
    pub port: u16,
    pub tls_fingerprint: Option<String>,
}

/// Where to pair with.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// The node id it must answer with (from discovery), if known.
    pub node_id: Option<String>,
    pub label: Option<String>,
    /// The certificate fingerprint it must present (from its TXT record), if known.
    pub tls_pin: Option<String>,
}

pub struct Linker {
    requests: Mutex<Requests>,
    pairings: Mutex<Pairings>,
    keys: Arc<KeyStore>,
    index: Arc<Index>,
    peers: Arc<Peers>,
    hub: Arc<Hub>,
    /// The label changes at run time (`PUT /api/system/settings`); read it with [`Linker::me`].
    me: std::sync::RwLock<Me>,
    limits: Limits,
    ttl: Duration,
}

/// A node's URL in the one form Eyrie advertises when it asks to pair (`http(s)://host[:port]`,
/// normalised; no credentials, path, query or fragment), or `None`. Approving a request with
/// link-back makes this node connect there, so a stranger may name nothing more.
pub fn advertised_url(raw: &str) -> Option<String> {
    if raw.len() > crate::base::names::URL_BYTES {
        return None;
    }
    crate::base::names::origin_setting(raw.trim())
        .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Linker {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        keys: Arc<KeyStore>,
        index: Arc<Index>,
        peers: Arc<Peers>,
        hub: Arc<Hub>,
        me: Me,
        timeout: Duration,
        ttl: Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            requests: Mutex::new(Requests::new(ttl)),
            pairings: Mutex::new(Pairings::default()),
            keys,
            index,
            peers,
            hub,
            me: std::sync::RwLock::new(me),
            limits: Limits {
                connect: timeout,
                total: timeout,
                max_body: MAX_ANSWER,
            },
            ttl,
        })
    }

    pub fn me(&self) -> Me {
        self.me.read().unwrap().clone()
    }

    /// This node's new label, for the pairing requests it sends from now on.
    pub fn set_label(&self, label: &str) {
        self.me.write().unwrap().label = label.to_string();
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    // ---- B's side ----

    pub fn submit(&self, req: PairRequest, from: IpAddr) -> Result<RequestView, PairError> {
        let v = self
            .requests
            .lock()
            .unwrap()
            .submit(req, from, Instant::now(), now_ms())?;
        tracing::info!(from = %v.label, url = %v.url, "pairing request received");
        self.hub.publish(Topic::PairRequests);
        Ok(v)
    }

    pub fn requests(&self) -> Vec<RequestView> {
        self.requests.lock().unwrap().list(Instant::now())
    }

    pub fn approve(&self, id: &str, code: &str) -> Result<RequestView, PairError> {
        let r = self
            .requests
            .lock()
            .unwrap()
            .approve(id, code, Instant::now());
        self.hub.publish(Topic::PairRequests);
        r
    }

    pub fn reject(&self, id: &str) -> Result<RequestView, PairError> {
        let r = self.requests.lock().unwrap().reject(id, Instant::now());
        self.hub.publish(Topic::PairRequests);
        r
    }

    /// Hands the key out once (blocking: the key is written to the index).
    pub fn collect(
        &self,
        id: &str,
        secret: &str,
        from: IpAddr,
    ) -> Result<Result<(String, RequestView), StorageError>, PairError> {
        let r = self
            .requests
            .lock()
            .unwrap()
            .collect(id, secret, from, Instant::now(), |v| {
                self.keys
                    .create(&format!("paired: {}", v.label))
                    .map(|k| k.key)
            });
        if matches!(r, Ok(Ok(_))) {
            tracing::info!(request = id, "pairing: key collected");
            self.hub.publish(Topic::PairRequests);
        }
        r
    }

    // ---- A's side ----

    pub fn pairings(&self) -> Vec<Pairing> {
        self.pairings.lock().unwrap().list()
    }

    pub fn pairing(&self, id: &str) -> Option<Pairing> {
        self.pairings.lock().unwrap().get(id)
    }

    /// Starts pairing with `target` and returns it with its code; the rest runs in the
    /// background.
    pub fn start(self: &Arc<Self>, target: Target) -> Result<Pairing, PairError> {
        let p = Pairing {
            id: random_hex(6),
            url: target.url.clone(),
            label: target.label.clone(),
            node_id: target.node_id.clone(),
            code: random_code(),
            state: PairingState::Asking,
            message: "sending the request".into(),
            linked_node: None,
            created_ms: now_ms(),
            secret: random_hex(32),
            tls_pin: target.tls_pin.clone(),
        };
        {
            let mut all = self.pairings.lock().unwrap();
            if all.running_for(&p.url) {
                return Err(PairError::Running);
            }
            all.add(p.clone())?;
        }
        self.hub.publish(Topic::Pairings);
        tokio::spawn(self.clone().run(p.clone()));
        Ok(p)
    }

    fn set(&self, id: &str, f: impl FnOnce(&mut Pairing)) {
        self.pairings.lock().unwrap().update(id, f);
        self.hub.publish(Topic::Pairings);
    }

    async fn run(self: Arc<Self>, p: Pairing) {
        let deadline = Instant::now() + self.ttl + Duration::from_secs(30);
        let outcome = self.pair(&p, deadline).await;
        let (state, message, node) = match outcome {
            Ok((node_id, label)) => (
                PairingState::Linked,
                format!("linked: {label} is now a remote node"),
                Some(node_id),
            ),
            Err(Outcome(state, message)) => (state, message, None),
        };
        tracing::info!(url = %p.url, ?state, "pairing: {message}");
        self.set(&p.id, |x| {
            x.state = state;
            x.message = message;
            x.linked_node = node;
        });
    }

    /// The whole exchange: ask, then collect until approved, refused or out of time. Returns
    /// the remote node's id in `/api/system/nodes` and its label.
    async fn pair(&self, p: &Pairing, deadline: Instant) -> Result<(String, String), Outcome> {
        let base = p.url.trim_end_matches('/');
        let url = |path: &str| -> Result<url::Url, Outcome> {
            format!("{base}{path}")
                .parse()
                .map_err(|e| Outcome::failed(format!("URL: {e}")))
        };
        let my_url = self.my_url_towards(&p.url).await?;
        let me = self.me();
        let ask = json!({
            "node_id": me.node_id,
            "label": me.label,
            "url": my_url,
            "code": p.code,
            "secret": p.secret,
            "tls_fingerprint": me.tls_fingerprint,
        });
        let mut pin = p.tls_pin.clone();
        let asked = client::post_json(
            &url("/api/federation/pair")?,
            &ask,
            &[],
            self.limits,
            pin.as_deref(),
        )
        .await
        .map_err(Outcome::network)?;
        // Trust on first use when the URL was given by hand; a discovered node's certificate
        // had to match its TXT fingerprint already.
        if pin.is_none() {
            pin = asked.tls_fingerprint.clone();
        }
        let v = answer(&asked)?;
        if asked.status != 202 {
            return Err(Outcome::failed(message(&v, asked.status)));
        }
        let their_id = v["node_id"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if uuid::Uuid::try_parse(&their_id).is_err() {
            return Err(Outcome::failed(
                "the other node did not say which node it is: is it an Eyrie?",
            ));
        }
        if let Some(expected) = &p.node_id {
            if *expected != their_id {
                return Err(Outcome::failed(format!(
                    "the node at {} is {their_id}, not the node {expected} that was discovered",
                    p.url
                )));
            }
        }
        let label = v["label"]
            .as_str()
            .map(|s| {
                s.chars()
                    .filter(|c| !c.is_control())
                    .take(64)
                    .collect::<String>()
                    .trim()
                    .to_string()
            })
            .filter(|s| !s.is_empty())
            .or(p.label.clone())
            .unwrap_or_else(|| p.url.clone());
        let request = v["id"].as_str().unwrap_or_default().to_string();
        if request.is_empty() || !request.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Outcome::failed("the other node's answer has no request id"));
        }
        self.set(&p.id, |x| {
            x.state = PairingState::Waiting;
            x.node_id = Some(their_id.clone());
            x.label = Some(label.clone());
            x.message = format!(
                "waiting for the admin of {label} to approve code {}",
                x.code
            );
        });
        let collect = url(&format!("/api/federation/pair/{request}/collect"))?;
        let body = json!({ "secret": p.secret });
        loop {
            if Instant::now() > deadline {
                return Err(Outcome(
                    PairingState::Expired,
                    "no approval in time; start again".into(),
                ));
            }
            tokio::time::sleep(COLLECT_EVERY).await;
            let got =
                match client::post_json(&collect, &body, &[], self.limits, pin.as_deref()).await {
                    Ok(g) => g,
                    Err(FetchError::Tls(e)) => return Err(Outcome::failed(format!("TLS: {e}"))),
                    // The other node may restart or the network hiccup: keep asking until the
                    // deadline.
                    Err(e) => {
                        tracing::debug!(url = %p.url, "pairing: collect: {e}");
                        continue;
                    }
                };
            let v = answer(&got)?;
            match (got.status, v["status"].as_str().unwrap_or_default()) {
                (202, _) | (429, _) => continue,
                (200, "approved") => {
                    let key = v["key"].as_str().unwrap_or_default();
                    if key.is_empty()
                        || key.len() > 256
                        || !key.bytes().all(|b| b.is_ascii_graphic())
                    {
                        return Err(Outcome::failed("the other node sent no usable key"));
                    }
                    let id = self
                        .store(&p.url, &label, key, pin.clone())
                        .await
                        .map_err(|e| Outcome::failed(format!("saving the remote node: {e}")))?;
                    return Ok((id, label));
                }
                (_, "rejected") => {
                    return Err(Outcome(
                        PairingState::Rejected,
                        format!("{label} rejected the request"),
                    ));
                }
                (_, "collected") => {
                    return Err(Outcome::failed(format!(
                        "the key was collected by someone else with this pairing's secret: \
                         revoke the key \"paired: {}\" on {label} and pair again over HTTPS",
                        self.me().label
                    )));
                }
                (_, "expired") => {
                    return Err(Outcome(
                        PairingState::Expired,
                        "the request expired before it was approved; start again".into(),
                    ));
                }
                (s, _) => return Err(Outcome::failed(message(&v, s))),
            }
        }
    }

    /// Stores the other node as a remote node, or gives an existing one at that URL the new
    /// key.
    async fn store(
        &self,
        url: &str,
        label: &str,
        key: &str,
        pin: Option<String>,
    ) -> Result<String, StoreError> {
        let (index, url, label, key) = (
            self.index.clone(),
            url.to_string(),
            label.to_string(),
            key.to_string(),
        );
        let node = tokio::task::spawn_blocking(move || -> Result<NodeRecord, StorageError> {
            let existing = index.nodes()?.into_iter().find(|n| n.url == url);
            let node = match existing {
                Some(mut n) => {
                    n.key = Some(key);
                    n.enabled = true;
                    if pin.is_some() {
                        n.tls_pin = pin;
                    }
                    n
                }
                None => NodeRecord {
                    id: random_hex(6),
                    label,
                    url,
                    key: Some(key),
                    enabled: true,
                    kind: NodeKind::Eyrie,
                    media_mode: MediaMode::Direct,
                    tls_pin: pin,
                    created_ms: now_ms(),
                },
            };
            index.put_node(&node)?;
            Ok(node)
        })
        .await??;
        self.peers.changed(&node.id, true);
        Ok(node.id)
    }

    /// This node's URL as the other node can reach it: the local address the system would use
    /// to reach it (a connected UDP socket; nothing is sent), and this node's port.
    async fn my_url_towards(&self, other: &str) -> Result<String, Outcome> {
        let u = url::Url::parse(other).map_err(|e| Outcome::failed(format!("URL: {e}")))?;
        let host = u
            .host_str()
            .ok_or_else(|| Outcome::failed("URL has no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let port = u.port_or_known_default().unwrap_or(80);
        let addr: SocketAddr = match tokio::time::timeout(
            self.limits.connect,
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        {
            Ok(Ok(mut a)) => a
                .next()
                .ok_or_else(|| Outcome::failed(format!("{host}: no address")))?,
            Ok(Err(e)) => return Err(Outcome::failed(format!("{host}: {e}"))),
            Err(_) => return Err(Outcome::failed(format!("{host}: name lookup timed out"))),
        };
        let bind: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().unwrap()
        } else {
            "[::]:0".parse().unwrap()
        };
        let sock = tokio::net::UdpSocket::bind(bind)
            .await
            .map_err(|e| Outcome::failed(format!("finding this node's address: {e}")))?;
        sock.connect(addr)
            .await
            .map_err(|e| Outcome::failed(format!("no route to {addr}: {e}")))?;
        let local = sock
            .local_addr()
            .map_err(|e| Outcome::failed(e.to_string()))?
            .ip();
        let me = self.me();
        let scheme = if me.https { "https" } else { "http" };
        Ok(match local {
            IpAddr::V4(v4) => format!("{scheme}://{v4}:{}", me.port),
            IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{}", me.port),
        })
    }
}

/// Why the other node could not be saved as a remote node.
#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the saving task ended: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// How a pairing ended when it did not link.
struct Outcome(PairingState, String);

impl Outcome {
    fn failed(m: impl Into<String>) -> Self {
        Outcome(PairingState::Failed, m.into())
    }
    fn network(e: FetchError) -> Self {
        Outcome::failed(format!("cannot reach the other node: {e}"))
    }
}

fn answer(f: &client::Fetched) -> Result<Value, Outcome> {
    serde_json::from_slice(&f.body).map_err(|_| {
        Outcome::failed(format!(
            "the other node answered HTTP {} without JSON: is it an Eyrie?",
            f.status
        ))
    })
}

fn message(v: &Value, status: u16) -> String {
    // The other node's words end up in this node's log and UI: no control characters.
    let m: String = v["error"]
        .as_str()
        .unwrap_or("unexpected answer")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    format!("the other node answered HTTP {status}: {m}")
}

#[cfg(test)]
mod tests {
    use super::advertised_url;

    #[test]
    fn pairing_requests_name_an_origin_only() {
        assert_eq!(
            advertised_url("http://10.0.0.2:8080").as_deref(),
            Some("http://10.0.0.2:8080")
        );
        assert_eq!(
            advertised_url("https://[fd00::2]:8443/").as_deref(),
            Some("https://[fd00::2]:8443")
        );
        for bad in [
            "http://10.0.0.2:8080/api/system/settings",
            "http://10.0.0.2:8080/?x=1",
            "http://10.0.0.2:8080/#x",
            "http://u:p@10.0.0.2:8080",
            "ftp://10.0.0.2",
            "javascript:alert(1)",
            "",
        ] {
            assert_eq!(advertised_url(bad), None, "{bad}");
        }
    }
}
