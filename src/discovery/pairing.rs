//! Pairing: how node A obtains a federation key from node B without anyone copying it.
//!
//! A sends B a request (its label, node id, URL, a 6-digit code both admins see, and a one-time
//! secret of 256 random bits). B keeps only the secret's SHA-256. B's admin compares the code
//! and approves (typing the code) or rejects. A then collects the key with the secret: B
//! creates the key at that moment and hands it over exactly once. Requests expire after
//! [`REQUEST_TTL`] (10 minutes by default). This file holds the state machines of both sides;
//! the HTTP endpoints are in src/http/pair.rs and the protocol in docs/federation.md.
//!
//! Anyone on the LAN may ask, so B's book of requests cannot be crowded out: one address (an
//! IPv6 /64 counts as one, as in every throttle) holds at most [`MAX_PENDING_PER_ADDRESS`]
//! pending requests, and a full book makes room by dropping a pending request of the address
//! that holds the most, those the admin has not yet been shown first, oldest first. So a new
//! request from an address with fewer pending requests than the busiest one always gets in, and
//! one the admin has seen goes only after every unseen one of an equally busy address.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::base::secret::{random_bytes, random_hex, same, sha256};
use crate::base::throttle::{Throttle, counted_as};

/// How long a request waits for approval and collection.
pub const REQUEST_TTL: Duration = Duration::from_secs(600);
/// Requests one node holds at once (pending or recently decided).
pub const MAX_REQUESTS: usize = 32;
/// Pending requests from one address (IPv6: one /64) at once.
const MAX_PENDING_PER_ADDRESS: usize = 3;
/// Wrong codes an admin may type before the request is rejected.
const MAX_WRONG_CODES: u8 = 3;
/// Decided or expired requests are remembered this long, to answer their status.
const KEEP_DECIDED: Duration = Duration::from_secs(600);

/// A uniformly random 6-digit code.
pub fn random_code() -> String {
    loop {
        let n = u32::from_le_bytes(random_bytes());
        // Reject the top sliver so that every code is equally likely.
        if n < u32::MAX - u32::MAX % 1_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

pub fn is_code(s: &str) -> bool {
    s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit())
}

pub fn is_secret(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// What A sends to ask for pairing (already checked by the HTTP layer).
#[derive(Debug, Clone)]
pub struct PairRequest {
    pub node_id: String,
    pub label: String,
    pub url: String,
    pub code: String,
    pub secret: String,
    /// A's certificate fingerprint when its URL is https (for B linking back).
    pub tls_fingerprint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Pending,
    Approved,
    Rejected,
    Collected,
    Expired,
}

/// A request as B's admin sees it (never the secret or its hash, and never the code: the
/// admin must type the code the asking node's page shows, so that approving proves the
/// request came from that node, not from whoever on the LAN claimed its name).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestView {
    pub id: String,
    pub node_id: String,
    pub label: String,
    pub url: String,
    #[serde(skip)]
    pub code: String,
    pub from: IpAddr,
    pub state: RequestState,
    pub created_ms: i64,
    pub expires_in_s: u64,
    #[serde(skip)]
    pub tls_fingerprint: Option<String>,
}

struct Incoming {
    view: RequestView,
    secret_hash: [u8; 32],
    created: Instant,
    decided: Option<Instant>,
    wrong_codes: u8,
    /// Whether the admin's list has shown it.
    seen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PairError {
    #[error("too many pairing requests from this address; try again in a minute")]
    Throttled,
    #[error("this node holds too many pairing requests; try again later")]
    Full,
    #[error("no such pairing request")]
    NotFound,
    #[error("the pairing request expired (requests last 10 minutes); start again")]
    Expired,
    #[error("the pairing request was rejected")]
    Rejected,
    #[error("the pairing request was already {0}")]
    Decided(&'static str),
    #[error("wrong code: it does not match the code shown on the other node")]
    WrongCode,
    #[error("wrong code typed too often: the request is rejected")]
    TooManyWrongCodes,
    #[error("wrong secret")]
    WrongSecret,
    #[error("the key was already collected; a replayed secret is refused")]
    AlreadyCollected,
    #[error("waiting for the admin to approve the request")]
    Pending,
    #[error("a pairing with that node is running already")]
    Running,
}

impl PairError {
    /// The machine-readable status of a collect answer.
    pub fn status(&self) -> &'static str {
        match self {
            PairError::Throttled => "throttled",
            PairError::Full => "full",
            PairError::NotFound => "not_found",
            PairError::Expired => "expired",
            PairError::Rejected | PairError::TooManyWrongCodes => "rejected",
            PairError::Decided(_) => "decided",
            PairError::WrongCode => "wrong_code",
            PairError::WrongSecret => "wrong_secret",
            PairError::AlreadyCollected => "collected",
            PairError::Pending => "pending",
            PairError::Running => "running",
        }
    }
}

/// B's side: the requests other nodes made to it.
pub struct Requests {
    ttl: Duration,
    items: Vec<Incoming>,
    submits: Throttle,
    collects: Throttle,
    wrong_secrets: Throttle,
}

impl Requests {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            items: Vec::new(),
            // A asks once per pairing; a few retries are fine.
            submits: Throttle::new(10, Duration::from_secs(60)),
            // A polls every 2 s.
            collects: Throttle::new(60, Duration::from_secs(60)),
            wrong_secrets: Throttle::new(5, Duration::from_secs(60)),
        }
    }

    /// Marks expired requests and forgets old decided ones.
    fn tidy(&mut self, now: Instant) {
        let ttl = self.ttl;
        for r in &mut self.items {
            let age = now.saturating_duration_since(r.created);
            if age >= ttl && matches!(r.view.state, RequestState::Pending | RequestState::Approved)
            {
                r.view.state = RequestState::Expired;
                r.decided = Some(r.created + ttl);
            }
            r.view.expires_in_s = ttl.saturating_sub(age).as_secs();
        }
        self.items.retain(|r| {
            r.decided
                .is_none_or(|d| now.saturating_duration_since(d) < KEEP_DECIDED)
        });
    }

    /// Takes a new request from `from`. A newer request from the same node and address
    /// replaces its pending one; one claiming the same node from elsewhere stands beside it
    /// (node ids and labels are public in mDNS, so a claim proves nothing).
    pub fn submit(
        &mut self,
        req: PairRequest,
        from: IpAddr,
        now: Instant,
        now_ms: i64,
    ) -> Result<RequestView, PairError> {
        if !self.submits.attempt_at(from, now) {
            return Err(PairError::Throttled);
        }
        self.tidy(now);
        let replaces = |r: &Incoming| {
            r.view.node_id == req.node_id
                && r.view.from == from
                && r.view.state == RequestState::Pending
        };
        let group = counted_as(from);
        let pending_of = |items: &[Incoming], g: IpAddr| {
            items
                .iter()
                .filter(|r| counted_as(r.view.from) == g && r.view.state == RequestState::Pending)
                .count()
        };
        let pending_here = self
            .items
            .iter()
            .filter(|r| {
                counted_as(r.view.from) == group
                    && r.view.state == RequestState::Pending
                    && !replaces(r)
            })
            .count();
        if pending_here >= MAX_PENDING_PER_ADDRESS {
            return Err(PairError::Throttled);
        }
        if self.items.len() >= MAX_REQUESTS && !self.items.iter().any(replaces) {
            // Make room: the oldest decided request, else a pending one of the busiest address
            // (unseen before seen, oldest first), if that address holds more than this one.
            let decided = self
                .items
                .iter()
                .enumerate()
                .filter(|(_, r)| r.decided.is_some())
                .min_by_key(|(_, r)| r.decided)
                .map(|(i, _)| i);
            let crowding = || {
                self.items
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.view.state == RequestState::Pending)
                    .map(|(i, r)| {
                        let held = pending_of(&self.items, counted_as(r.view.from));
                        (i, (held, !r.seen, std::cmp::Reverse(r.created)))
                    })
                    .max_by_key(|(_, rank)| *rank)
                    .filter(|(_, (held, unseen, _))| *held > pending_here + 1 || *unseen)
                    .map(|(i, _)| i)
            };
            match decided.or_else(crowding) {
                Some(i) => {
                    let gone = self.items.remove(i);
                    tracing::info!(from = %gone.view.from, "pairing request dropped to make room");
                }
                None => return Err(PairError::Full),
            }
        }
        self.items.retain(|r| !replaces(r));
        let view = RequestView {
            id: random_hex(6),
            node_id: req.node_id,
            label: req.label,
            url: req.url,
            code: req.code,
            from,
            state: RequestState::Pending,
            created_ms: now_ms,
            expires_in_s: self.ttl.as_secs(),
            tls_fingerprint: req.tls_fingerprint,
        };
        self.items.push(Incoming {
            view: view.clone(),
            secret_hash: sha256(req.secret.as_bytes()),
            created: now,
            decided: None,
            wrong_codes: 0,
            seen: false,
        });
        Ok(view)
    }

    /// The admin's list: every request shown here counts as seen.
    pub fn list(&mut self, now: Instant) -> Vec<RequestView> {
        self.tidy(now);
        self.items
            .iter_mut()
            .map(|r| {
                r.seen = true;
                r.view.clone()
            })
            .collect()
    }

    fn find(&mut self, id: &str) -> Result<&mut Incoming, PairError> {
        self.items
            .iter_mut()
            .find(|r| r.view.id == id)
            .ok_or(PairError::NotFound)
    }

    /// The admin approves, typing the code the other node shows.
    pub fn approve(
        &mut self,
        id: &str,
        code: &str,
        now: Instant,
    ) -> Result<RequestView, PairError> {
        self.tidy(now);
        let r = self.find(id)?;
        match r.view.state {
            RequestState::Pending => {}
            RequestState::Expired => return Err(PairError::Expired),
            RequestState::Approved => return Err(PairError::Decided("approved")),
            RequestState::Rejected => return Err(PairError::Decided("rejected")),
            RequestState::Collected => return Err(PairError::Decided("collected")),
        }
        if !same(code.as_bytes(), r.view.code.as_bytes()) {
            r.wrong_codes += 1;
            if r.wrong_codes >= MAX_WRONG_CODES {
                r.view.state = RequestState::Rejected;
                r.decided = Some(now);
                return Err(PairError::TooManyWrongCodes);
            }
            return Err(PairError::WrongCode);
        }
        r.view.state = RequestState::Approved;
        Ok(r.view.clone())
    }

    pub fn reject(&mut self, id: &str, now: Instant) -> Result<RequestView, PairError> {
        self.tidy(now);
        let r = self.find(id)?;
        match r.view.state {
            RequestState::Pending | RequestState::Approved => {
                r.view.state = RequestState::Rejected;
                r.decided = Some(now);
                Ok(r.view.clone())
            }
            RequestState::Expired => Err(PairError::Expired),
            RequestState::Rejected => Err(PairError::Decided("rejected")),
            RequestState::Collected => Err(PairError::Decided("collected")),
        }
    }

    /// A collects with its secret. The secret is checked first (in constant time) so that
    /// nobody else learns anything about the request; then pending, rejected, expired and
    /// collected each answer their own error. On approval `make_key` creates the key (named
    /// after A) and the request becomes collected: the key is handed out exactly once.
    pub fn collect<E>(
        &mut self,
        id: &str,
        secret: &str,
        from: IpAddr,
        now: Instant,
        make_key: impl FnOnce(&RequestView) -> Result<String, E>,
    ) -> Result<Result<(String, RequestView), E>, PairError> {
        if !self.collects.attempt_at(from, now) {
            return Err(PairError::Throttled);
        }
        self.tidy(now);
        let hash = sha256(secret.as_bytes());
        let Some(i) = self.items.iter().position(|r| r.view.id == id) else {
            return Err(PairError::NotFound);
        };
        if !same(&self.items[i].secret_hash, &hash) {
            // Counted separately: a stream of wrong secrets closes this address for a while.
            if !self.wrong_secrets.attempt_at(from, now) {
                return Err(PairError::Throttled);
            }
            return Err(PairError::WrongSecret);
        }
        let r = &mut self.items[i];
        match r.view.state {
            RequestState::Pending => Err(PairError::Pending),
            RequestState::Rejected => Err(PairError::Rejected),
            RequestState::Expired => Err(PairError::Expired),
            RequestState::Collected => Err(PairError::AlreadyCollected),
            RequestState::Approved => match make_key(&r.view) {
                Ok(key) => {
                    r.view.state = RequestState::Collected;
                    r.decided = Some(now);
                    Ok(Ok((key, r.view.clone())))
                }
                Err(e) => Ok(Err(e)),
            },
        }
    }
}

/// A's side: a pairing this node started with another node.
#[derive(Debug, Clone, Serialize)]
pub struct Pairing {
    pub id: String,
    /// The other node's URL.
    pub url: String,
    /// Its label and node id, as discovered or as it answered.
    pub label: Option<String>,
    pub node_id: Option<String>,
    /// The code both admins see.
    pub code: String,
    pub state: PairingState,
    pub message: String,
    /// The remote node created in `/api/system/nodes` once linked.
    pub linked_node: Option<String>,
    pub created_ms: i64,
    #[serde(skip)]
    pub secret: String,
    /// The certificate fingerprint to hold the other node to (https).
    #[serde(skip)]
    pub tls_pin: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PairingState {
    /// Sending the request.
    Asking,
    /// The other node has the request; its admin has to approve it.
    Waiting,
    Linked,
    Rejected,
    Expired,
    Failed,
}

impl PairingState {
    pub fn finished(self) -> bool {
        !matches!(self, PairingState::Asking | PairingState::Waiting)
    }
}

/// The pairings this node started; the oldest finished ones are forgotten past a bound.
#[derive(Default)]
pub struct Pairings {
    items: Vec<Pairing>,
}

impl Pairings {
    pub const MAX: usize = 32;

    /// Adds a new pairing; refuses when [`Self::MAX`] are still running.
    pub fn add(&mut self, p: Pairing) -> Result<(), PairError> {
        if self.items.len() >= Self::MAX {
            match self
                .items
                .iter()
                .enumerate()
                .filter(|(_, p)| p.state.finished())
                .min_by_key(|(_, p)| p.created_ms)
                .map(|(i, _)| i)
            {
                Some(i) => {
                    self.items.remove(i);
                }
                None => return Err(PairError::Full),
            }
        }
        self.items.push(p);
        Ok(())
    }

    pub fn list(&self) -> Vec<Pairing> {
        self.items.clone()
    }

    pub fn get(&self, id: &str) -> Option<Pairing> {
        self.items.iter().find(|p| p.id == id).cloned()
    }

    pub fn update(&mut self, id: &str, f: impl FnOnce(&mut Pairing)) {
        if let Some(p) = self.items.iter_mut().find(|p| p.id == id) {
            f(p);
        }
    }

    /// Whether a pairing with `url` is still running.
    pub fn running_for(&self, url: &str) -> bool {
        self.items
            .iter()
            .any(|p| p.url == url && !p.state.finished())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    const NODE: &str = "a32d2ad5-3707-4f3b-a6e7-0e2e33353208";

    fn request(secret: &str) -> PairRequest {
        PairRequest {
            node_id: NODE.into(),
            label: "House".into(),
            url: "http://10.0.0.1:8080".into(),
            code: "123456".into(),
            secret: secret.into(),
            tls_fingerprint: None,
        }
    }

    fn key(_: &RequestView) -> Result<String, std::convert::Infallible> {
        Ok("the-key".into())
    }

    #[test]
    fn codes_and_secrets_have_their_form() {
        for _ in 0..100 {
            assert!(is_code(&random_code()));
        }
        assert!(is_secret(&random_hex(32)));
        assert!(!is_secret("ABC"));
        assert!(!is_code("12345a"));
    }

    #[test]
    fn approve_then_collect_once() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let secret = random_hex(32);
        let v = r.submit(request(&secret), A, t, 0).unwrap();
        assert_eq!(v.state, RequestState::Pending);
        // Before approval: pending, and a wrong secret learns nothing.
        assert_eq!(
            r.collect(&v.id, &secret, A, t, key).unwrap_err(),
            PairError::Pending
        );
        assert_eq!(
            r.collect(&v.id, &random_hex(32), A, t, key).unwrap_err(),
            PairError::WrongSecret
        );
        assert_eq!(
            r.approve(&v.id, "654321", t).unwrap_err(),
            PairError::WrongCode
        );
        assert_eq!(
            r.approve(&v.id, "123456", t).unwrap().state,
            RequestState::Approved
        );
        let (k, got) = r.collect(&v.id, &secret, A, t, key).unwrap().unwrap();
        assert_eq!(
            (k.as_str(), got.state),
            ("the-key", RequestState::Collected)
        );
        // Replay.
        assert_eq!(
            r.collect(&v.id, &secret, A, t, key).unwrap_err(),
            PairError::AlreadyCollected
        );
        assert_eq!(
            r.collect("nope", &secret, A, t, key).unwrap_err(),
            PairError::NotFound
        );
    }

    #[test]
    fn a_failed_key_leaves_the_request_approved() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let secret = random_hex(32);
        let v = r.submit(request(&secret), A, t, 0).unwrap();
        r.approve(&v.id, "123456", t).unwrap();
        let failed = r
            .collect(&v.id, &secret, A, t, |_| Err::<String, _>("disk full"))
            .unwrap();
        assert_eq!(failed.unwrap_err(), "disk full");
        assert!(r.collect(&v.id, &secret, A, t, key).unwrap().is_ok());
    }

    #[test]
    fn rejected_and_expired_requests_hand_out_nothing() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let s1 = random_hex(32);
        let v1 = r.submit(request(&s1), A, t, 0).unwrap();
        r.reject(&v1.id, t).unwrap();
        assert_eq!(
            r.collect(&v1.id, &s1, A, t, key).unwrap_err(),
            PairError::Rejected
        );
        assert!(r.approve(&v1.id, "123456", t).is_err());

        // Approved but never collected: expires all the same.
        let s2 = random_hex(32);
        let mut req = request(&s2);
        req.node_id = "b32d2ad5-3707-4f3b-a6e7-0e2e33353208".into();
        let v2 = r.submit(req, A, t, 0).unwrap();
        r.approve(&v2.id, "123456", t).unwrap();
        let later = t + REQUEST_TTL + Duration::from_secs(1);
        assert_eq!(
            r.collect(&v2.id, &s2, A, later, key).unwrap_err(),
            PairError::Expired
        );
        assert_eq!(
            r.approve(&v2.id, "123456", later).unwrap_err(),
            PairError::Expired
        );
        assert!(
            r.list(later)
                .iter()
                .all(|v| v.state != RequestState::Pending)
        );
        // Long after, they are forgotten.
        assert!(r.list(later + KEEP_DECIDED).is_empty());
    }

    #[test]
    fn wrong_codes_reject_the_request() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let s = random_hex(32);
        let v = r.submit(request(&s), A, t, 0).unwrap();
        for _ in 1..MAX_WRONG_CODES {
            assert_eq!(
                r.approve(&v.id, "000000", t).unwrap_err(),
                PairError::WrongCode
            );
        }
        assert_eq!(
            r.approve(&v.id, "000000", t).unwrap_err(),
            PairError::TooManyWrongCodes
        );
        assert_eq!(
            r.approve(&v.id, "123456", t).unwrap_err(),
            PairError::Decided("rejected")
        );
        assert_eq!(
            r.collect(&v.id, &s, A, t, key).unwrap_err(),
            PairError::Rejected
        );
    }

    #[test]
    fn requests_are_bounded_and_throttled() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let mut n = 0;
        let mut distinct = || {
            n += 1;
            let mut q = request(&random_hex(32));
            q.node_id = format!("{n:08}-3707-4f3b-a6e7-0e2e33353208");
            q
        };
        for _ in 0..MAX_PENDING_PER_ADDRESS {
            r.submit(distinct(), A, t, 0).unwrap();
        }
        assert_eq!(
            r.submit(distinct(), A, t, 0).unwrap_err(),
            PairError::Throttled
        );
        // An IPv6 host is one address for its whole /64.
        for i in 0..MAX_PENDING_PER_ADDRESS {
            let v6 = IpAddr::V6(format!("fd00:1:2:3::{}", i + 1).parse().unwrap());
            r.submit(distinct(), v6, t, 0).unwrap();
        }
        let same64 = IpAddr::V6("fd00:1:2:3:ffff::9".parse().unwrap());
        assert_eq!(
            r.submit(distinct(), same64, t, 0).unwrap_err(),
            PairError::Throttled
        );
        // Twelve addresses fill the book three times over: it stays bounded.
        for i in 0..12u8 {
            for _ in 0..MAX_PENDING_PER_ADDRESS {
                let from = IpAddr::V4(Ipv4Addr::new(10, 1, 0, i));
                r.submit(distinct(), from, t, 0).unwrap();
            }
        }
        assert_eq!(r.list(t).len(), MAX_REQUESTS);
        // A real request still gets in, and once the admin has seen it, fresh addresses
        // crowding in drop the others' requests, never it.
        let real = r
            .submit(distinct(), IpAddr::V4(Ipv4Addr::new(10, 9, 9, 9)), t, 0)
            .unwrap();
        assert!(r.list(t).iter().any(|v| v.id == real.id));
        for i in 0..64u8 {
            let from = IpAddr::V4(Ipv4Addr::new(10, 3, 0, i));
            r.submit(distinct(), from, t, 0).unwrap();
        }
        let listed = r.list(t);
        assert_eq!(listed.len(), MAX_REQUESTS);
        assert!(listed.iter().any(|v| v.id == real.id));
        // A book full of seen requests, one per address: refused, nothing dropped.
        assert_eq!(
            r.submit(distinct(), IpAddr::V4(Ipv4Addr::new(10, 4, 0, 1)), t, 0)
                .unwrap_err(),
            PairError::Full
        );
        // One address sending many requests is throttled whatever their content.
        let other = IpAddr::V4(Ipv4Addr::new(10, 2, 0, 1));
        let throttle = Throttle::new(10, Duration::from_secs(60));
        assert!((0..10).all(|_| throttle.attempt_at(other, t)));
        assert!(!throttle.attempt_at(other, t));
        assert!(throttle.attempt_at(other, t + Duration::from_secs(61)));
    }

    #[test]
    fn a_retry_replaces_the_pending_request() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let v1 = r.submit(request(&random_hex(32)), A, t, 0).unwrap();
        let v2 = r.submit(request(&random_hex(32)), A, t, 0).unwrap();
        let ids: Vec<String> = r.list(t).into_iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![v2.id.clone()]);
        assert_ne!(v1.id, ids[0]);

        // Someone else claiming the same node (its id and label are public in mDNS) does not
        // replace it: both wait, and the admin approves the one whose code they were shown.
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 66));
        let v3 = r.submit(request(&random_hex(32)), other, t, 0).unwrap();
        let ids: Vec<String> = r.list(t).into_iter().map(|v| v.id).collect();
        assert_eq!(ids, vec![v2.id, v3.id]);
        // The admin's list never carries the code.
        let json = serde_json::to_value(r.list(t)).unwrap();
        assert!(json[0].get("code").is_none(), "{json}");
    }

    #[test]
    fn wrong_secrets_are_throttled() {
        let mut r = Requests::new(REQUEST_TTL);
        let t = Instant::now();
        let s = random_hex(32);
        let v = r.submit(request(&s), A, t, 0).unwrap();
        for _ in 0..5 {
            assert_eq!(
                r.collect(&v.id, &random_hex(32), A, t, key).unwrap_err(),
                PairError::WrongSecret
            );
        }
        assert_eq!(
            r.collect(&v.id, &random_hex(32), A, t, key).unwrap_err(),
            PairError::Throttled
        );
    }

    #[test]
    fn pairings_are_bounded() {
        let mut p = Pairings::default();
        let make = |i: usize, state| Pairing {
            id: format!("{i}"),
            url: format!("http://10.0.0.{i}:8080"),
            label: None,
            node_id: None,
            code: random_code(),
            state,
            message: String::new(),
            linked_node: None,
            created_ms: i as i64,
            secret: random_hex(32),
            tls_pin: None,
        };
        for i in 0..Pairings::MAX {
            p.add(make(i, PairingState::Waiting)).unwrap();
        }
        assert_eq!(p.add(make(99, PairingState::Waiting)), Err(PairError::Full));
        p.update("3", |x| x.state = PairingState::Linked);
        assert!(p.running_for("http://10.0.0.4:8080"));
        assert!(!p.running_for("http://10.0.0.3:8080"));
        p.add(make(100, PairingState::Waiting)).unwrap();
        assert!(p.get("3").is_none());
        assert_eq!(p.list().len(), Pairings::MAX);
    }
}
