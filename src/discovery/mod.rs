//! Discovery owns how appliances find each other on the LAN and pair without copying keys:
//! advertising this node over mDNS/DNS-SD as `_nvr-federation._tcp.local.` (the service type
//! CartaNVR uses, so each finds the other), browsing that type continuously into a cache the API
//! answers from at once, the pairing state machines ([`pairing`], [`link`]), and the change
//! notices the UI listens to ([`events`]). mdns-sd is the responder and browser (it runs its own
//! thread); docs/federation.md describes the protocol.

pub mod events;
pub mod link;
pub mod pairing;
pub mod txt;

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceEvent, ServiceInfo};
use serde::Serialize;

use events::{Hub, Topic};
use txt::{Advert, Kind, PeerTxt};

/// Why mDNS could not start, or a name could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("mDNS: {0}")]
    Mdns(#[from] mdns_sd::Error),
    #[error("the node is stopping")]
    Stopping,
}

/// The DNS-SD service type of NVR federation.
pub const SERVICE_TYPE: &str = "_nvr-federation._tcp.local.";
/// Most nodes kept in the browse cache; more are ignored (a LAN with more NVRs than this is
/// not what Eyrie is for, and a flood of fake answers must not grow memory).
const MAX_SEEN: usize = 256;
/// How long a starting node listens for the names in use before it picks its own.
const NAME_CHECK: Duration = Duration::from_millis(1500);

/// How to advertise.
#[derive(Debug, Clone)]
pub struct Options {
    /// Interfaces to use (names); empty: every interface that is up.
    pub interfaces: Vec<String>,
    /// The address peers connect to: its port is advertised; an unspecified IPv4 address
    /// advertises the IPv4 addresses of the interfaces, `[::]` all of them, a specific address
    /// only itself.
    pub listen: SocketAddr,
    pub advert: Advert,
    /// The host name the node's addresses are answered under (`{host}.local.`). None:
    /// `eyrie-<node id>`, a name of its own, so several Eyries on one host (or the host's own
    /// avahi) never fight over `{hostname}.local.`. The appliance, where Eyrie is the only mDNS
    /// responder, passes the machine's host name, so `eyrie-xxxx.local` reaches it.
    pub host: Option<String>,
}

/// `name` when it can be a `.local` host name: one DNS label (RFC 1123), letters, digits and
/// inner hyphens, at most 63 characters.
pub fn host_label(name: &str) -> Option<String> {
    let ok = (1..=63).contains(&name.len())
        && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ok.then(|| name.to_ascii_lowercase())
}

/// A node seen on the network.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Seen {
    /// The DNS-SD instance name it advertises.
    pub instance: String,
    pub kind: Kind,
    /// Its label (TXT `name`, else the instance name).
    pub label: String,
    pub node_id: Option<String>,
    pub addresses: Vec<IpAddr>,
    pub port: u16,
    /// Where to reach it, when one of its addresses is usable in a URL.
    pub url: Option<String>,
    pub version: Option<String>,
    pub proto: Option<String>,
    pub tls_fingerprint: Option<String>,
    pub last_seen_ms: i64,
}

impl Seen {
    fn from_resolved(s: &mdns_sd::ResolvedService, now_ms: i64) -> Self {
        let t = PeerTxt::parse(s.get_properties().iter().map(|p| (p.key(), p.val())));
        let instance = txt::instance_of(&s.fullname, SERVICE_TYPE);
        let mut addresses: Vec<IpAddr> = s.addresses.iter().map(|a| a.to_ip_addr()).collect();
        addresses.sort();
        addresses.truncate(16);
        Seen {
            kind: t.kind(),
            label: t.name.clone().unwrap_or_else(|| instance.clone()),
            url: txt::url_for(&addresses, s.port, t.tls_fingerprint.is_some()),
            instance,
            node_id: t.node_id,
            addresses,
            port: s.port,
            version: t.version,
            proto: t.proto,
            tls_fingerprint: t.tls_fingerprint,
            last_seen_ms: now_ms,
        }
    }
}

pub struct Discovery {
    daemon: ServiceDaemon,
    self_id: String,
    /// What is advertised, to register again under another name.
    host: String,
    /// What the TXT record says; its label changes with the node's.
    advert: Mutex<Advert>,
    listen: SocketAddr,
    /// The full name registered now, and its instance part (empty until registered).
    registered: Mutex<(String, String)>,
    /// Instance names other services of this type use (lower case), for picking a free one.
    in_use: Mutex<HashSet<String>>,
    /// Keyed by full service name.
    seen: RwLock<BTreeMap<String, Seen>>,
    hub: Arc<Hub>,
    /// Set when the node stops, so that nothing is registered after the goodbye.
    stopping: std::sync::atomic::AtomicBool,
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl Discovery {
    /// Starts the responder and the browser. Must run inside a tokio runtime.
    pub fn start(opts: Options, hub: Arc<Hub>) -> Result<Arc<Self>, DiscoveryError> {
        let daemon = ServiceDaemon::new()?;
        // No loopback unless listed: a node would hear its own un-renamed name there after a
        // conflict rename on the LAN, and its cache would take that for the other node's.
        daemon.disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])?;
        if !opts.interfaces.is_empty() {
            daemon.disable_interface(IfKind::All)?;
            let names: Vec<IfKind> = opts
                .interfaces
                .iter()
                .map(|n| IfKind::Name(n.clone()))
                .collect();
            daemon.enable_interface(names)?;
        }
        let monitor = daemon.monitor()?;
        let me = Arc::new(Self {
            daemon,
            self_id: opts.advert.node_id.clone(),
            host: match &opts.host {
                Some(h) => format!("{h}.local."),
                None => format!(
                    "eyrie-{}.local.",
                    opts.advert.node_id.get(..8).unwrap_or("node")
                ),
            },
            advert: Mutex::new(opts.advert.clone()),
            listen: opts.listen,
            registered: Mutex::new((String::new(), String::new())),
            in_use: Mutex::new(HashSet::new()),
            seen: RwLock::new(BTreeMap::new()),
            hub,
            stopping: std::sync::atomic::AtomicBool::new(false),
        });
        let browse = me.daemon.browse(SERVICE_TYPE)?;
        tokio::spawn(me.clone().watch_daemon(monitor));
        tokio::spawn(me.clone().browse(browse));
        tokio::spawn(me.clone().advertise());
        Ok(me)
    }

    /// Listens for the names in use, then registers under the label, or `Label (2)`, `(3)`…
    /// when another service has it. Picking a free name first leaves mDNS probing to settle
    /// only nodes that start at the same moment.
    async fn advertise(self: Arc<Self>) {
        tokio::time::sleep(NAME_CHECK).await;
        self.register_free_name();
    }

    /// Registers under the label, or the first `Label (N)` no other service uses.
    fn register_free_name(&self) {
        let label = self.instance_label();
        let name = {
            let used = self.in_use.lock().unwrap();
            free_name(&label, &used)
        };
        if name != label {
            tracing::warn!(
                "another node on the network is named {label:?}: advertising as {name:?}"
            );
        }
        match self.register(&name) {
            Ok(()) => tracing::info!(
                name = %name,
                port = self.listen.port(),
                "advertising {SERVICE_TYPE} over mDNS"
            ),
            Err(e) => tracing::error!("mDNS: registering as {name:?}: {e}"),
        }
    }

    /// Registers this node's service under `instance`.
    fn register(&self, instance: &str) -> Result<(), DiscoveryError> {
        if self.stopping.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(DiscoveryError::Stopping);
        }
        let ip = self.listen.ip();
        let port = self.listen.port();
        let txt = self.advert.lock().unwrap().txt();
        let props = &txt[..];
        let mut info = if ip.is_unspecified() {
            ServiceInfo::new(SERVICE_TYPE, instance, &self.host, (), port, props)?
                .enable_addr_auto()
        } else {
            ServiceInfo::new(SERVICE_TYPE, instance, &self.host, ip, port, props)?
        };
        if ip == IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED) {
            // Listening on IPv4 only: advertise only what a peer can connect to.
            info.set_interfaces(vec![IfKind::IPv4]);
        }
        let fullname = info.get_fullname().to_string();
        self.daemon.register(info)?;
        *self.registered.lock().unwrap() = (fullname, instance.to_string());
        Ok(())
    }

    /// The label as an instance name.
    fn instance_label(&self) -> String {
        txt::instance_name(&self.advert.lock().unwrap().label)
    }

    /// The node's label changed: a goodbye for the old name, then an announcement under the
    /// new one (or `New (2)` when another node has it), with the new TXT `name`.
    pub async fn relabel(&self, label: &str) {
        {
            let mut advert = self.advert.lock().unwrap();
            if advert.label == label {
                return;
            }
            advert.label = label.to_string();
        }
        let current = self.registered.lock().unwrap().0.clone();
        if current.is_empty() {
            return; // not advertised yet: the first registration takes the new label
        }
        if let Ok(rx) = self.daemon.unregister(&current) {
            let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv_async()).await;
        }
        // Our own old name is not taken by anyone else.
        self.in_use
            .lock()
            .unwrap()
            .remove(&txt::instance_of(&current, SERVICE_TYPE).to_lowercase());
        self.register_free_name();
    }

    /// The instance name this node is advertised under now (`Label (2)` after a conflict).
    pub fn advertised_as(&self) -> Option<String> {
        let name = self.registered.lock().unwrap().1.clone();
        (!name.is_empty()).then_some(name)
    }

    /// The nodes seen now, by label.
    pub fn seen(&self) -> Vec<Seen> {
        let mut v: Vec<Seen> = self.seen.read().unwrap().values().cloned().collect();
        v.sort_by(|a, b| a.label.cmp(&b.label).then(a.instance.cmp(&b.instance)));
        v
    }

    /// The node seen with this node id.
    pub fn find(&self, node_id: &str) -> Option<Seen> {
        self.seen
            .read()
            .unwrap()
            .values()
            .find(|s| s.node_id.as_deref() == Some(node_id))
            .cloned()
    }

    async fn watch_daemon(self: Arc<Self>, events: mdns_sd::Receiver<DaemonEvent>) {
        while let Ok(e) = events.recv_async().await {
            match e {
                DaemonEvent::NameChange(c) => {
                    let current = self.registered.lock().unwrap().0.clone();
                    if !c.original.eq_ignore_ascii_case(&current) {
                        continue;
                    }
                    let name = txt::instance_of(&c.new_name, SERVICE_TYPE);
                    tracing::warn!(
                        interface = %c.intf_name,
                        "another node on the network is named like this one: advertising as {name:?}"
                    );
                    // Registered again under the new name rather than left to mdns-sd's
                    // renaming: mdns-sd 0.21 still answers queries for the first name when
                    // it has capitals (it looks the rename up in lower case), which would
                    // hijack the other node's entry in every cache. The goodbye for the
                    // renamed records and the new announcement follow each other at once.
                    if let Ok(rx) = self.daemon.unregister(&current) {
                        let _ = tokio::time::timeout(Duration::from_secs(2), rx.recv_async()).await;
                    }
                    if let Err(e) = self.register(&name) {
                        tracing::error!("mDNS: registering as {name:?}: {e}");
                    }
                }
                DaemonEvent::Error(e) => tracing::warn!("mDNS: {e}"),
                DaemonEvent::IpAdd(ip) => tracing::info!(%ip, "mDNS: address added, announcing"),
                DaemonEvent::IpDel(ip) => tracing::info!(%ip, "mDNS: address removed"),
                _ => {}
            }
        }
    }

    async fn browse(self: Arc<Self>, events: mdns_sd::Receiver<ServiceEvent>) {
        while let Ok(e) = events.recv_async().await {
            let changed = match e {
                ServiceEvent::ServiceFound(_, fullname) => {
                    let mut used = self.in_use.lock().unwrap();
                    if used.len() < MAX_SEEN {
                        used.insert(txt::instance_of(&fullname, SERVICE_TYPE).to_lowercase());
                    }
                    false
                }
                ServiceEvent::ServiceResolved(s) => {
                    let seen = Seen::from_resolved(&s, now_ms());
                    // Self is known by its id (after a conflict another node may hold the
                    // name this one registered first).
                    if seen.node_id.as_deref() == Some(self.self_id.as_str()) {
                        continue;
                    }
                    let mut map = self.seen.write().unwrap();
                    if map.len() >= MAX_SEEN && !map.contains_key(&s.fullname) {
                        continue;
                    }
                    // A refresh that only renews the records is not news for the UI.
                    let same = map.get(&s.fullname).is_some_and(|old| {
                        Seen {
                            last_seen_ms: seen.last_seen_ms,
                            ..old.clone()
                        } == seen
                    });
                    map.insert(s.fullname.clone(), seen);
                    !same
                }
                ServiceEvent::ServiceRemoved(_, fullname) => {
                    self.in_use
                        .lock()
                        .unwrap()
                        .remove(&txt::instance_of(&fullname, SERVICE_TYPE).to_lowercase());
                    self.seen.write().unwrap().remove(&fullname).is_some()
                }
                _ => false,
            };
            if changed {
                self.hub.publish(Topic::Discover);
            }
        }
        tracing::warn!("mDNS browsing stopped");
    }

    /// Withdraws this node from the network (goodbye packets), then stops the daemon. Waits a
    /// bounded time for each step.
    pub async fn stop(&self) {
        let wait = Duration::from_secs(2);
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let current = self.registered.lock().unwrap().0.clone();
        if current.is_empty() {
            // Not advertised yet: nothing to withdraw.
        } else if let Ok(rx) = self.daemon.unregister(&current) {
            let _ = tokio::time::timeout(wait, rx.recv_async()).await;
        }
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = tokio::time::timeout(wait, rx.recv_async()).await;
        }
        tracing::info!("mDNS: goodbye sent, stopped advertising");
    }
}

/// `label`, or the first of `label (2)`, `label (3)`, … that no other service uses.
fn free_name(label: &str, used: &HashSet<String>) -> String {
    let taken = |n: &str| used.contains(&n.to_lowercase());
    if !taken(label) {
        return label.to_string();
    }
    (2..)
        .map(|i| format!("{label} ({i})"))
        .find(|n| !taken(n))
        .expect("a free name")
}

#[cfg(test)]
mod host_tests {
    use super::host_label;

    #[test]
    fn host_labels() {
        assert_eq!(host_label("eyrie-3456").as_deref(), Some("eyrie-3456"));
        assert_eq!(host_label("Shop").as_deref(), Some("shop"));
        for bad in ["", "-a", "a-", "a.b", "a_b", "été", &"a".repeat(64)] {
            assert_eq!(host_label(bad), None, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_name_gets_the_next_free_number() {
        let used: HashSet<String> = ["bravo", "bravo (2)", "x"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(free_name("Alpha", &used), "Alpha");
        assert_eq!(free_name("Bravo", &used), "Bravo (3)");
        assert_eq!(free_name("X", &used), "X (2)");
    }
}
