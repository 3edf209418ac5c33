//! The push transport of camera events (WS-BaseNotification, issue 15), for cameras that offer
//! no PullPoint: the camera POSTs `Notify` messages to Eyrie at
//! `/api/onvif/notify/{token}`. [`Inbox`] holds one fresh random token per subscription and
//! hands each accepted message's notices to that subscription's watch ([`super::events`]),
//! which treats them exactly like pulled ones. [`Endpoint`] says at which address a camera
//! reaches this node.
//!
//! Invariants: a token is 32 random bytes from the CSPRNG, known only to Eyrie and the one
//! camera it was sent to, kept only as its SHA-256 and found by it (the lookup's time tells
//! nothing about the token); it is removed when its subscription ends (the [`Mailbox`] is
//! dropped). A request's body is bounded by [`MAX_NOTIFY_BODY`] (by the route), its messages by
//! [`super::events::MAX_MESSAGES`], a token's requests by [`RATE`], and a subscription's queue by
//! [`QUEUE`] (more is dropped, never waited for).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::events::{Notice, notices};
use crate::base::secret;
use crate::base::throttle::Budget;

/// Largest Notify body taken.
pub const MAX_NOTIFY_BODY: usize = 64 * 1024;
/// Notify requests one token may send: a burst, then one more each period.
pub const RATE: (u32, Duration) = (20, Duration::from_millis(250));
/// Notify requests waiting for their watch, per subscription.
const QUEUE: usize = 16;
/// The route's path before the token.
pub const PATH: &str = "/api/onvif/notify/";

/// Why a Notify was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No subscription has this token (never had, or it ended).
    Unknown,
    /// The token sent more than [`RATE`] allows, or its watch is behind.
    TooMany,
    /// The body is not a SOAP Notify.
    Malformed(String),
}

type Key = [u8; 32];

/// The subscriptions that take pushed notifications, by their token's hash.
pub struct Inbox {
    boxes: Mutex<HashMap<Key, mpsc::Sender<Vec<Notice>>>>,
    budget: Budget<Key>,
}

/// One subscription's token and what is delivered to it; dropping it retires the token.
pub struct Mailbox {
    inbox: Arc<Inbox>,
    key: Key,
    pub token: String,
    pub rx: mpsc::Receiver<Vec<Notice>>,
}

impl Drop for Mailbox {
    fn drop(&mut self) {
        self.inbox.boxes.lock().unwrap().remove(&self.key);
    }
}

impl Inbox {
    pub fn new() -> Arc<Inbox> {
        Arc::new(Inbox {
            boxes: Mutex::new(HashMap::new()),
            budget: Budget::new(RATE.0, RATE.1),
        })
    }

    /// A fresh token and the mailbox its notifications arrive in.
    pub fn open(self: &Arc<Self>) -> Mailbox {
        let token = secret::random_hex(32);
        let key = secret::sha256(token.as_bytes());
        let (tx, rx) = mpsc::channel(QUEUE);
        self.boxes.lock().unwrap().insert(key, tx);
        Mailbox {
            inbox: self.clone(),
            key,
            token,
            rx,
        }
    }

    /// How many subscriptions take notifications now.
    pub fn len(&self) -> usize {
        self.boxes.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes a Notify `body` sent with `token`; the number of notices Eyrie keeps from it.
    pub fn deliver(&self, token: &str, body: &[u8]) -> Result<usize, Refused> {
        let key = secret::sha256(token.as_bytes());
        let tx = self
            .boxes
            .lock()
            .unwrap()
            .get(&key)
            .cloned()
            .ok_or(Refused::Unknown)?;
        if !self.budget.take(&key) {
            return Err(Refused::TooMany);
        }
        let notify =
            super::soap::read_answer(200, body).map_err(|e| Refused::Malformed(e.to_string()))?;
        if notify.name != "Notify" {
            return Err(Refused::Malformed(format!(
                "the body is a {}, not a Notify",
                super::clean(&notify.name, 64)
            )));
        }
        let got = notices(&notify);
        let n = got.len();
        if n > 0 {
            tx.try_send(got).map_err(|_| Refused::TooMany)?;
        }
        Ok(n)
    }
}

/// Where cameras reach this node's notify route.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Set by the admin (`onvif.notify_base_url`): used as it is, for NAT or a reverse proxy.
    pub base: Option<url::Url>,
    /// `https` when the node serves HTTPS, else `http`.
    pub scheme: &'static str,
    pub port: u16,
}

impl Endpoint {
    /// The consumer address for a subscription with `token` at the camera `xaddr`: the base
    /// URL set, else this node's address on the route to the camera (a connected UDP socket
    /// says it; no packet is sent) and its port.
    pub fn consumer(&self, xaddr: &url::Url, token: &str) -> Result<url::Url, String> {
        let base = match &self.base {
            Some(b) => b.clone(),
            None => {
                let ip = local_address_towards(xaddr)?;
                let host = match ip {
                    IpAddr::V4(a) => a.to_string(),
                    IpAddr::V6(a) => format!("[{a}]"),
                };
                url::Url::parse(&format!("{}://{host}:{}/", self.scheme, self.port))
                    .map_err(|e| e.to_string())?
            }
        };
        let path = format!(
            "{}/{}{token}",
            base.path().trim_end_matches('/'),
            &PATH[1..]
        );
        let mut url = base;
        url.set_path(&path);
        url.set_query(None);
        Ok(url)
    }
}

/// This host's address on the route to `xaddr`'s host.
fn local_address_towards(xaddr: &url::Url) -> Result<IpAddr, String> {
    let port = xaddr.port_or_known_default().unwrap_or(80);
    let target: SocketAddr = match xaddr.host() {
        Some(url::Host::Ipv4(a)) => (a, port).into(),
        Some(url::Host::Ipv6(a)) => (a, port).into(),
        _ => {
            return Err(format!(
                "the camera's address {} is not an IP address; set onvif.notify_base_url",
                xaddr.host_str().unwrap_or_default()
            ));
        }
    };
    let bind: SocketAddr = if target.is_ipv4() {
        ([0u8; 4], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let s = std::net::UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    s.connect(target)
        .map_err(|e| format!("no route to the camera: {e}"))?;
    Ok(s.local_addr().map_err(|e| e.to_string())?.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notify(messages: usize) -> String {
        let m = r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="d">tns1:RuleEngine/CellMotionDetector/Motion</wsnt:Topic><wsnt:Message><tt:Message UtcTime="2026-12-02T10:00:00Z" PropertyOperation="Changed"><tt:Source/><tt:Data><tt:SimpleItem Name="IsMotion" Value="true"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#;
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><wsnt:Notify>{}</wsnt:Notify></s:Body></s:Envelope>"#,
            m.repeat(messages)
        )
    }

    #[test]
    fn tokens_deliver_until_their_mailbox_is_gone() {
        let inbox = Inbox::new();
        let mut a = inbox.open();
        let b = inbox.open();
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), 64);
        assert_eq!(inbox.deliver(&a.token, notify(2).as_bytes()), Ok(2));
        assert_eq!(a.rx.try_recv().unwrap().len(), 2);
        // Bounded count per request.
        assert_eq!(
            inbox.deliver(&a.token, notify(200).as_bytes()),
            Ok(super::super::events::MAX_MESSAGES)
        );
        assert_eq!(
            inbox.deliver("0".repeat(64).as_str(), notify(1).as_bytes()),
            Err(Refused::Unknown)
        );
        assert!(matches!(
            inbox.deliver(&a.token, b"<not xml"),
            Err(Refused::Malformed(_))
        ));
        assert!(matches!(
            inbox.deliver(&a.token, b"\xff\xfe"),
            Err(Refused::Malformed(_))
        ));
        let token = a.token.clone();
        drop(a);
        assert_eq!(
            inbox.deliver(&token, notify(1).as_bytes()),
            Err(Refused::Unknown)
        );
        assert_eq!(inbox.len(), 1);
        drop(b);
        assert!(inbox.is_empty());
    }

    #[test]
    fn a_token_is_rate_limited() {
        let inbox = Inbox::new();
        let mut a = inbox.open();
        let mut refused = 0;
        for _ in 0..RATE.0 + 5 {
            if inbox.deliver(&a.token, notify(0).as_bytes()) == Err(Refused::TooMany) {
                refused += 1;
            }
        }
        assert!(refused >= 5, "{refused}");
        assert!(a.rx.try_recv().is_err());
    }

    #[test]
    fn consumer_addresses() {
        let cam: url::Url = "http://127.0.0.1:8000/onvif/device_service"
            .parse()
            .unwrap();
        let e = Endpoint {
            base: None,
            scheme: "https",
            port: 8443,
        };
        assert_eq!(
            e.consumer(&cam, "abc").unwrap().as_str(),
            "https://127.0.0.1:8443/api/onvif/notify/abc"
        );
        let e = Endpoint {
            base: Some("http://nvr.example:9000/eyrie/".parse().unwrap()),
            scheme: "http",
            port: 1,
        };
        assert_eq!(
            e.consumer(&cam, "abc").unwrap().as_str(),
            "http://nvr.example:9000/eyrie/api/onvif/notify/abc"
        );
        let named: url::Url = "http://cam.local/onvif/device_service".parse().unwrap();
        let e = Endpoint {
            base: None,
            scheme: "http",
            port: 1,
        };
        assert!(e.consumer(&named, "abc").is_err());
    }
}
