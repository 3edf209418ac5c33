//! A camera's own events over ONVIF (issue 15): one subscription per camera, over one of two
//! transports: a PullPoint (CreatePullPointSubscription, PullMessages long polls) where the
//! camera offers one, which needs no inbound connection; else, where the node takes pushed
//! notifications ([`Push`]), a WS-BaseNotification subscription (Subscribe, the camera POSTs
//! Notify to a token-carrying address of this node, [`super::push`]). Both are one loop:
//! Renew at half of the granted lifetime, Unsubscribe when stopped, subscribed again with
//! backoff after the camera or the network went away. Notification messages are read from the bounded XML tree ([`super::xml`]), their
//! topics mapped to event kinds (`motion`, `tamper`, `line`, `intrusion`, `person`, `vehicle`,
//! `face`), and each kind's start and stop passed to an [`EventSink`]. An event the camera never
//! says is over (cameras that send only a start, a lost stop, a pulse like a line crossing) is
//! closed `quiet` after the last message that said it was on. A thumbnail comes from the
//! camera's `GetSnapshotUri`, when it has one, fetched with the base client (bounded, with a
//! deadline).
//!
//! Invariants: every call has the SOAP call limits (the long poll its timeout plus a margin);
//! signed calls go only to addresses on the device service's host; at most [`MAX_OPEN`] events
//! are open per camera and at most [`MAX_MESSAGES`] messages are read per poll or pushed
//! request; every event begun is ended (at the latest when the watch stops); PullPoint is
//! always tried first, push only when the camera has none; a push subscription's token lives
//! exactly as long as the subscription.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::push::{Endpoint, Inbox, Mailbox};
use super::soap::{self, Credentials, Limits, SoapError};
use super::xml::Element;
use super::{CALL_LIMITS, DEVICE_NS, MEDIA_NS, clean};
use crate::events::{EventId, EventSink, Origin};

const EVENTS_NS: &str = "http://www.onvif.org/ver10/events/wsdl";
const WSN_NS: &str = "http://docs.oasis-open.org/wsn/b-2";
/// Most events open at once per camera (distinct topic and source).
pub const MAX_OPEN: usize = 64;
/// Most notification messages read from one PullMessages answer.
pub const MAX_MESSAGES: usize = 64;
/// The subscription's lifetime asked for; it is renewed at half of what the camera grants.
const LIFETIME: Duration = Duration::from_secs(60);
/// Longest a PullMessages waits at the camera for a message.
const LONGEST_POLL: Duration = Duration::from_secs(10);
/// Time between subscribing again after a failure: doubles from the first to the last.
const BACKOFF: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(60));
/// The snapshot fetched as a thumbnail.
const SNAPSHOT_LIMITS: Limits = Limits {
    connect: Duration::from_secs(2),
    total: Duration::from_secs(4),
    max_body: 256 * 1024,
};
/// The quiet time's bounds in seconds, and its default.
pub const QUIET_SECONDS: std::ops::RangeInclusive<u32> = 5..=3600;
pub const DEFAULT_QUIET_SECONDS: u32 = 30;

/// One camera's subscription settings.
#[derive(Debug, Clone)]
pub struct Watch {
    pub camera: String,
    /// The device service address (`http://…/onvif/device_service`).
    pub xaddr: url::Url,
    pub creds: Option<Credentials>,
    /// How long after the last "on" an event not said to be over is closed.
    pub quiet: Duration,
    /// Where pushed notifications arrive, for cameras without a PullPoint; `None`: pull only.
    pub push: Option<Push>,
    /// The transport in use now (`pull` or `push`), `None` while not subscribed.
    pub transport: Shown,
}

/// The transport a watch uses now, as the API shows it.
pub type Shown = Arc<std::sync::Mutex<Option<&'static str>>>;

/// What a watch needs to take pushed notifications.
#[derive(Clone)]
pub struct Push {
    pub inbox: Arc<Inbox>,
    pub endpoint: Endpoint,
}

impl std::fmt::Debug for Push {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Push")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

/// One notification, read and mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct Notice {
    pub kind: &'static str,
    /// Topic and source, which tell one running event from another of the same kind.
    pub key: String,
    /// `Some(true)` starts, `Some(false)` stops, `None` is a pulse (on, with no stop to come).
    pub state: Option<bool>,
    /// The camera's time of the message, if it gave one.
    pub utc: Option<jiff::Timestamp>,
    /// The rule that fired, where the camera names one.
    pub zone: Option<String>,
}

/// The event kind of a topic (`tns1:RuleEngine/CellMotionDetector/Motion`), if it is one Eyrie
/// keeps. The more specific kinds win over `motion`.
pub fn kind_of(topic: &str) -> Option<&'static str> {
    let path: String = topic
        .split('/')
        .map(|part| part.rsplit_once(':').map_or(part, |(_, l)| l))
        .collect::<Vec<_>>()
        .join("/")
        .to_ascii_lowercase();
    let has = |w: &str| path.contains(w);
    if has("tamper")
        || has("globalscenechange")
        || has("imagetooblurry")
        || has("imagetoodark")
        || has("imagetoobright")
    {
        Some("tamper")
    } else if has("linedetector") || has("linecross") || path.ends_with("/crossed") {
        Some("line")
    } else if has("fielddetector") || has("intrusion") || has("objectsinside") {
        Some("intrusion")
    } else if has("person") || has("people") || has("human") {
        Some("person")
    } else if has("vehicle") {
        Some("vehicle")
    } else if has("face") {
        Some("face")
    } else if has("motion") {
        Some("motion")
    } else {
        None
    }
}

fn boolean(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// `(Name, Value)` of the `SimpleItem`s of a message part, bounded.
fn items(part: Option<&Element>) -> Vec<(String, String)> {
    part.map(|p| {
        p.all("SimpleItem")
            .take(16)
            .map(|i| {
                (
                    clean(i.attr("Name").unwrap_or_default(), 64),
                    clean(i.attr("Value").unwrap_or_default(), 128),
                )
            })
            .collect()
    })
    .unwrap_or_default()
}

/// The notifications of a PullMessagesResponse Eyrie keeps, in the camera's order.
pub fn notices(answer: &Element) -> Vec<Notice> {
    answer
        .all("NotificationMessage")
        .take(MAX_MESSAGES)
        .filter_map(notice)
        .collect()
}

fn notice(m: &Element) -> Option<Notice> {
    let topic = clean(&m.text_at(&["Topic"])?, 256);
    let kind = kind_of(&topic)?;
    let msg = m.at(&["Message", "Message"])?;
    let source = items(msg.child("Source"));
    let data = items(msg.child("Data"));
    let named = [
        "IsMotion", "State", "IsInside", "IsTamper", "Active", "Value",
    ];
    let state = named
        .iter()
        .find_map(|n| {
            data.iter()
                .find(|(k, _)| k == n)
                .and_then(|(_, v)| boolean(v))
        })
        .or_else(|| data.iter().find_map(|(_, v)| boolean(v)));
    let state = match msg.attr("PropertyOperation") {
        Some("Deleted") => Some(false),
        _ => state,
    };
    let key: String = std::iter::once(topic.clone())
        .chain(source.iter().map(|(k, v)| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(";");
    Some(Notice {
        kind,
        key,
        state,
        utc: msg.attr("UtcTime").and_then(|t| t.parse().ok()),
        zone: source
            .iter()
            .find(|(k, _)| k == "Rule")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty()),
    })
}

/// The events open now, each closed when the camera says so or after the quiet time.
#[derive(Default)]
pub struct Tracker {
    camera: String,
    quiet_ms: i64,
    open: HashMap<String, Open>,
}

struct Open {
    id: EventId,
    last_on_ms: i64,
}

impl Tracker {
    pub fn new(camera: &str, quiet: Duration) -> Tracker {
        Tracker {
            camera: camera.to_string(),
            quiet_ms: i64::try_from(quiet.as_millis()).unwrap_or(i64::MAX),
            open: HashMap::new(),
        }
    }

    /// Applies one notice that happened at `at_ms`; the id of an event it began.
    pub fn apply(&mut self, sink: &dyn EventSink, n: &Notice, at_ms: i64) -> Option<EventId> {
        if n.state == Some(false) {
            if let Some(o) = self.open.remove(&n.key) {
                self.close(sink, o.id, at_ms);
            }
            return None;
        }
        if let Some(o) = self.open.get_mut(&n.key) {
            o.last_on_ms = o.last_on_ms.max(at_ms);
            return None;
        }
        if self.open.len() >= MAX_OPEN {
            tracing::warn!(
                "camera {}: {MAX_OPEN} events open; '{}' not recorded",
                self.camera,
                n.key
            );
            return None;
        }
        match sink.begin(
            &self.camera,
            n.kind,
            Origin::Camera,
            at_ms,
            None,
            n.zone.clone(),
        ) {
            Ok(id) => {
                let last_on_ms = at_ms;
                self.open.insert(n.key.clone(), Open { id, last_on_ms });
                Some(id)
            }
            Err(e) => {
                tracing::warn!("camera {}: event not stored: {e}", self.camera);
                None
            }
        }
    }

    /// Closes the events quiet since `quiet` before `now_ms`, at their last "on" plus `quiet`.
    pub fn expire(&mut self, sink: &dyn EventSink, now_ms: i64) {
        let quiet = self.quiet_ms;
        let due: Vec<String> = self
            .open
            .iter()
            .filter(|(_, o)| now_ms.saturating_sub(o.last_on_ms) >= quiet)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            if let Some(o) = self.open.remove(&k) {
                self.close(sink, o.id, o.last_on_ms.saturating_add(quiet));
            }
        }
    }

    /// When the next event falls quiet, if any is open.
    pub fn next_expiry_ms(&self) -> Option<i64> {
        self.open
            .values()
            .map(|o| o.last_on_ms.saturating_add(self.quiet_ms))
            .min()
    }

    /// Closes every open event at `now_ms` (the watch stops).
    pub fn close_all(&mut self, sink: &dyn EventSink, now_ms: i64) {
        for (_, o) in std::mem::take(&mut self.open) {
            self.close(sink, o.id, now_ms);
        }
    }

    fn close(&self, sink: &dyn EventSink, id: EventId, end_ms: i64) {
        if let Err(e) = sink.end(id, end_ms) {
            tracing::warn!("camera {}: event {} not closed: {e}", self.camera, id.0);
        }
    }
}

/// The camera's services, read once per subscription.
struct Services {
    events: url::Url,
    /// Whether the camera says it has no PullPoint (GetCapabilities' WSPullPointSupport).
    no_pull_point: bool,
    snapshot: Option<url::Url>,
    creds: Option<Credentials>,
}

/// Why a subscription ended; it is made again after the backoff.
#[derive(Debug)]
struct Lost(String);

impl From<SoapError> for Lost {
    fn from(e: SoapError) -> Self {
        Lost(e.to_string())
    }
}

fn on_host(addr: &str, xaddr: &url::Url, what: &str) -> Result<url::Url, Lost> {
    let url = url::Url::parse(addr)
        .map_err(|_| Lost(format!("{what} '{}' is not a URL", clean(addr, 100))))?;
    if url.scheme() != "http" || url.host() != xaddr.host() {
        return Err(Lost(format!(
            "{what} '{}' is not http:// on the device's host; not contacted",
            clean(addr, 100)
        )));
    }
    Ok(url)
}

async fn services(w: &Watch) -> Result<Services, Lost> {
    let creds = match &w.creds {
        Some(c) => Some(Credentials {
            clock_offset: super::clock_offset(&w.xaddr).await,
            ..c.clone()
        }),
        None => None,
    };
    let caps = soap::call(
        &w.xaddr,
        &format!("{DEVICE_NS}/GetCapabilities"),
        &format!(
            r#"<GetCapabilities xmlns="{DEVICE_NS}"><Category>All</Category></GetCapabilities>"#
        ),
        creds.as_ref(),
        CALL_LIMITS,
    )
    .await;
    let no_pull_point = caps
        .as_ref()
        .ok()
        .and_then(|c| c.find("Events"))
        .and_then(|e| e.text_at(&["WSPullPointSupport"]))
        .and_then(|v| boolean(&v))
        == Some(false);
    let (events, media) = match &caps {
        Ok(caps) => (
            super::service_address(caps, "Events", &w.xaddr).map_err(Lost)?,
            super::service_address(caps, "Media", &w.xaddr).map_err(Lost)?,
        ),
        Err(e @ (SoapError::Transport(_) | SoapError::NotAuthorized(_))) => {
            return Err(Lost(format!("GetCapabilities: {e}")));
        }
        Err(_) => (None, None),
    };
    let events = events.unwrap_or_else(|| w.xaddr.clone());
    let media = media.unwrap_or_else(|| w.xaddr.clone());
    let snapshot = snapshot_uri(&media, &w.xaddr, creds.as_ref()).await;
    Ok(Services {
        events,
        no_pull_point,
        snapshot,
        creds,
    })
}

/// The snapshot address of the camera's first profile, if it has one on its own host.
async fn snapshot_uri(
    media: &url::Url,
    xaddr: &url::Url,
    creds: Option<&Credentials>,
) -> Option<url::Url> {
    let profiles = soap::call(
        media,
        &format!("{MEDIA_NS}/GetProfiles"),
        &format!(r#"<GetProfiles xmlns="{MEDIA_NS}"/>"#),
        creds,
        CALL_LIMITS,
    )
    .await
    .ok()?;
    let token = profiles.all("Profiles").find_map(|p| p.attr("token"))?;
    let answer = soap::call(
        media,
        &format!("{MEDIA_NS}/GetSnapshotUri"),
        &format!(
            r#"<GetSnapshotUri xmlns="{MEDIA_NS}"><ProfileToken>{}</ProfileToken></GetSnapshotUri>"#,
            quick_xml::escape::escape(token)
        ),
        creds,
        CALL_LIMITS,
    )
    .await
    .ok()?;
    let uri = answer.text_at(&["MediaUri", "Uri"])?;
    on_host(&uri, xaddr, "snapshot URI").ok()
}

/// The lifetime the camera granted, from an answer's CurrentTime and TerminationTime.
fn granted(answer: &Element) -> Duration {
    let t = |n: &str| -> Option<jiff::Timestamp> { answer.text_at(&[n])?.parse().ok() };
    match (t("CurrentTime"), t("TerminationTime")) {
        (Some(now), Some(end)) => end
            .duration_since(now)
            .try_into()
            .ok()
            .filter(|d: &Duration| *d >= Duration::from_secs(2))
            .unwrap_or(LIFETIME),
        _ => LIFETIME,
    }
}

fn iso_seconds(d: Duration) -> String {
    format!("PT{}S", d.as_secs().max(1))
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// When a notice happened here: the camera's time less its clock offset when that is within a
/// few minutes of now (cameras keep bad clocks), else now.
fn when(n: &Notice, offset: jiff::SignedDuration) -> i64 {
    let now = now_ms();
    n.utc
        .and_then(|t| t.checked_sub(offset).ok())
        .map(|t| t.as_millisecond())
        .filter(|t| (now - t).abs() <= 5 * 60 * 1000)
        .map_or(now, |t| t.min(now))
}

/// Watches one camera until `stop` is cancelled, then unsubscribes and closes its open events.
pub async fn watch(w: Watch, sink: Arc<dyn EventSink>, stop: CancellationToken) {
    let mut tracker = Tracker::new(&w.camera, w.quiet);
    let mut backoff = BACKOFF.0;
    while !stop.is_cancelled() {
        let result = subscribed(&w, &sink, &mut tracker, &stop).await;
        *w.transport.lock().unwrap() = None;
        match result {
            Ok(()) => break,
            Err((Lost(why), pulled)) => {
                if pulled {
                    backoff = BACKOFF.0;
                }
                tracing::info!(
                    "camera {}: ONVIF events: {why}; subscribing again in {backoff:?}",
                    w.camera
                );
                let until = Instant::now() + backoff;
                // Events still fall quiet while the camera is away.
                while Instant::now() < until && !stop.is_cancelled() {
                    expire(&mut tracker, &sink).await;
                    let step = until.min(Instant::now() + Duration::from_secs(1));
                    tokio::select! {
                        _ = tokio::time::sleep_until(step) => {}
                        _ = stop.cancelled() => {}
                    }
                }
                backoff = (backoff * 2).min(BACKOFF.1);
            }
        }
    }
    off_async(&mut tracker, &sink, |t, sink| t.close_all(sink, now_ms())).await;
}

/// Runs `f` with the tracker and the sink on a blocking thread: the event log's writes wait on
/// the disk, which an async task must not.
async fn off_async<R: Send + 'static>(
    tracker: &mut Tracker,
    sink: &Arc<dyn EventSink>,
    f: impl FnOnce(&mut Tracker, &dyn EventSink) -> R + Send + 'static,
) -> R {
    let mut t = std::mem::take(tracker);
    let sink = sink.clone();
    let (t, r) = tokio::task::spawn_blocking(move || {
        let r = f(&mut t, sink.as_ref());
        (t, r)
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    *tracker = t;
    r
}

/// Closes the events that fell quiet, if any did (else no thread is needed).
async fn expire(tracker: &mut Tracker, sink: &Arc<dyn EventSink>) {
    if tracker.next_expiry_ms().is_some_and(|t| t <= now_ms()) {
        off_async(tracker, sink, |t, sink| t.expire(sink, now_ms())).await;
    }
}

/// One subscription, from creating it to losing it (`Err`, with whether any pull succeeded) or
/// to `stop` (`Ok`, after unsubscribing).
async fn subscribed(
    w: &Watch,
    sink: &Arc<dyn EventSink>,
    tracker: &mut Tracker,
    stop: &CancellationToken,
) -> Result<(), (Lost, bool)> {
    let s = services(w).await.map_err(|e| (e, false))?;
    let creds = s.creds.as_ref();
    let offset = creds.map_or(jiff::SignedDuration::ZERO, |c| c.clock_offset);
    let (mut transport, created) = subscribe(w, &s).await.map_err(|e| (e, false))?;
    let address = created
        .text_at(&["SubscriptionReference", "Address"])
        .ok_or_else(|| (Lost("no SubscriptionReference/Address".into()), false))?;
    let sub = on_host(&address, &w.xaddr, "subscription address").map_err(|e| (e, false))?;
    let mut renew_at = Instant::now() + granted(&created) / 2;
    let name = match transport {
        Transport::Pull => "pull",
        Transport::Push(_) => "push",
    };
    *w.transport.lock().unwrap() = Some(name);
    tracing::info!("camera {}: subscribed to ONVIF events ({name})", w.camera);
    let mut pulled = false;
    loop {
        expire(tracker, sink).await;
        // Back in time to renew, and to close an event falling quiet.
        let mut wait = LONGEST_POLL.min(renew_at.saturating_duration_since(Instant::now()));
        if let Some(t) = tracker.next_expiry_ms() {
            let ms = u64::try_from(t.saturating_sub(now_ms())).unwrap_or(0);
            wait = wait.min(Duration::from_millis(ms));
        }
        let wait = wait.max(Duration::from_secs(1));
        let got = tokio::select! {
            got = transport.next(&sub, creds, wait) => {
                got.map_err(|e| (e, pulled))?
            }
            _ = stop.cancelled() => {
                unsubscribe(&sub, creds).await;
                return Ok(());
            }
        };
        if matches!(transport, Transport::Pull) || !got.is_empty() {
            pulled = true;
        }
        let begun = if got.is_empty() {
            Vec::new()
        } else {
            off_async(tracker, sink, move |t, sink| {
                got.iter()
                    .filter_map(|n| t.apply(sink, n, when(n, offset)))
                    .collect()
            })
            .await
        };
        if let Some(uri) = &s.snapshot {
            for id in begun {
                tokio::spawn(thumbnail(sink.clone(), id, uri.clone()));
            }
        }
        if Instant::now() >= renew_at {
            let renewed = soap::call_addressed(
                &sub,
                "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/RenewRequest",
                &format!(
                    r#"<Renew xmlns="{WSN_NS}"><TerminationTime>{}</TerminationTime></Renew>"#,
                    iso_seconds(LIFETIME)
                ),
                creds,
                CALL_LIMITS,
            )
            .await
            .map_err(|e| (Lost(format!("Renew: {e}")), pulled))?;
            renew_at = Instant::now() + granted(&renewed) / 2;
            pulled = true;
            tracing::debug!("camera {}: ONVIF subscription renewed", w.camera);
        }
    }
}

/// How a subscription's notifications come: pulled from the camera, or pushed by it into a
/// mailbox.
enum Transport {
    Pull,
    Push(Mailbox),
}

impl Transport {
    /// The notices that come within `wait` (none is not an error).
    async fn next(
        &mut self,
        sub: &url::Url,
        creds: Option<&Credentials>,
        wait: Duration,
    ) -> Result<Vec<Notice>, Lost> {
        match self {
            Transport::Pull => {
                let limits = Limits {
                    total: wait + CALL_LIMITS.total,
                    ..CALL_LIMITS
                };
                let body = format!(
                    r#"<PullMessages xmlns="{EVENTS_NS}"><Timeout>{}</Timeout><MessageLimit>{MAX_MESSAGES}</MessageLimit></PullMessages>"#,
                    iso_seconds(wait)
                );
                let action = format!("{EVENTS_NS}/PullPointSubscription/PullMessagesRequest");
                let answer = soap::call_addressed(sub, &action, &body, creds, limits)
                    .await
                    .map_err(|e| Lost(format!("PullMessages: {e}")))?;
                Ok(notices(&answer))
            }
            Transport::Push(mailbox) => {
                match tokio::time::timeout(wait, mailbox.rx.recv()).await {
                    Ok(Some(got)) => Ok(got),
                    // The inbox keeps the sender while the mailbox lives.
                    Ok(None) | Err(_) => Ok(Vec::new()),
                }
            }
        }
    }
}

/// Subscribes: to a PullPoint where the camera has one, else (when this node takes pushed
/// notifications) with Subscribe to a fresh token's address. The transport and the answer.
async fn subscribe(w: &Watch, s: &Services) -> Result<(Transport, Element), Lost> {
    let creds = s.creds.as_ref();
    let pull_refused = if s.no_pull_point {
        "the camera has no PullPoint".to_string()
    } else {
        let created = soap::call(
            &s.events,
            &format!("{EVENTS_NS}/EventPortType/CreatePullPointSubscriptionRequest"),
            &format!(
                r#"<CreatePullPointSubscription xmlns="{EVENTS_NS}"><InitialTerminationTime>{}</InitialTerminationTime></CreatePullPointSubscription>"#,
                iso_seconds(LIFETIME)
            ),
            creds,
            CALL_LIMITS,
        )
        .await;
        match created {
            Ok(answer) => return Ok((Transport::Pull, answer)),
            // A camera that answers with a fault or nonsense has no working PullPoint.
            Err(e @ (SoapError::Fault(_) | SoapError::Malformed(_))) => e.to_string(),
            Err(e) => return Err(Lost(format!("CreatePullPointSubscription: {e}"))),
        }
    };
    let Some(push) = &w.push else {
        return Err(Lost(format!(
            "CreatePullPointSubscription: {pull_refused}; this node takes no pushed notifications"
        )));
    };
    let mailbox = push.inbox.open();
    let consumer = push
        .endpoint
        .consumer(&w.xaddr, &mailbox.token)
        .map_err(|e| Lost(format!("no address the camera can notify: {e}")))?;
    let answer = soap::call(
        &s.events,
        "http://docs.oasis-open.org/wsn/bw-2/NotificationProducer/SubscribeRequest",
        &format!(
            r#"<Subscribe xmlns="{WSN_NS}"><ConsumerReference><Address xmlns="http://www.w3.org/2005/08/addressing">{}</Address></ConsumerReference><InitialTerminationTime>{}</InitialTerminationTime></Subscribe>"#,
            quick_xml::escape::escape(consumer.as_str()),
            iso_seconds(LIFETIME)
        ),
        creds,
        CALL_LIMITS,
    )
    .await
    .map_err(|e| Lost(format!("no PullPoint ({pull_refused}); Subscribe: {e}")))?;
    Ok((Transport::Push(mailbox), answer))
}

async fn unsubscribe(sub: &url::Url, creds: Option<&Credentials>) {
    let _ = soap::call_addressed(
        sub,
        "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager/UnsubscribeRequest",
        &format!(r#"<Unsubscribe xmlns="{WSN_NS}"/>"#),
        creds,
        CALL_LIMITS,
    )
    .await;
}

/// Fetches the camera's snapshot (without credentials: HTTP authentication is not spoken here)
/// and stores it as the event's thumbnail if it is a JPEG.
async fn thumbnail(sink: Arc<dyn EventSink>, id: EventId, uri: url::Url) {
    let id_n = id.0;
    match crate::base::client::get(&uri, &[], SNAPSHOT_LIMITS, None).await {
        Ok(got) if got.status == 200 && got.body.starts_with(&[0xFF, 0xD8]) => {
            let stored =
                tokio::task::spawn_blocking(move || sink.set_thumbnail(id, &got.body)).await;
            match stored {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("event {id_n}: thumbnail not stored: {e}"),
                Err(e) => tracing::warn!("event {id_n}: thumbnail not stored: {e}"),
            }
        }
        Ok(got) => tracing::info!(
            "event {id_n}: the snapshot is not a JPEG (HTTP {})",
            got.status
        ),
        Err(e) => tracing::info!("event {id_n}: no snapshot: {e}"),
    }
}

/// The watch a camera's settings ask for: ONVIF events on, a valid device address, the
/// ONVIF credentials or else the stream's.
pub fn watch_of(cam: &crate::storage::CameraRecord) -> Option<Watch> {
    let o = cam.onvif.as_ref().filter(|o| o.events && cam.enabled)?;
    let xaddr = super::device_address(&o.xaddr).ok()?;
    let (user, pass) = if o.username.is_some() {
        (o.username.clone(), o.password.clone())
    } else {
        (cam.username.clone(), cam.password.clone())
    };
    Some(Watch {
        camera: cam.id.clone(),
        xaddr,
        creds: user.map(|username| Credentials {
            username,
            password: pass.unwrap_or_default(),
            clock_offset: jiff::SignedDuration::ZERO,
        }),
        quiet: Duration::from_secs(u64::from(o.quiet_seconds)),
        push: None,
        transport: Shown::default(),
    })
}

/// What a running watch was started with, to tell whether new settings change it.
fn fingerprint(w: &Watch) -> (String, Option<(String, String)>, Duration) {
    (
        w.xaddr.to_string(),
        w.creds
            .as_ref()
            .map(|c| (c.username.clone(), c.password.clone())),
        w.quiet,
    )
}

type Running = (
    (String, Option<(String, String)>, Duration),
    CancellationToken,
    tokio::task::JoinHandle<()>,
    Shown,
);

/// The node's watches, one per camera whose settings ask for its events: started, restarted
/// when its settings change, stopped (unsubscribed, open events closed) when they no longer ask.
pub struct Watchers {
    sink: Arc<dyn EventSink>,
    running: std::sync::Mutex<HashMap<String, Running>>,
    inbox: Arc<Inbox>,
    /// Where cameras reach this node; `None` (until [`Watchers::take_pushes`]): pull only.
    endpoint: std::sync::Mutex<Option<Endpoint>>,
}

impl Watchers {
    pub fn new(sink: Arc<dyn EventSink>) -> Watchers {
        Watchers {
            sink,
            running: std::sync::Mutex::new(HashMap::new()),
            inbox: Inbox::new(),
            endpoint: std::sync::Mutex::new(None),
        }
    }

    /// Lets watches started from now on take pushed notifications, which cameras send to
    /// `endpoint`.
    pub fn take_pushes(&self, endpoint: Endpoint) {
        *self.endpoint.lock().unwrap() = Some(endpoint);
    }

    /// Where the notify route delivers.
    pub fn inbox(&self) -> &Arc<Inbox> {
        &self.inbox
    }

    /// The transport camera `id`'s events come over now (`pull`, `push`), if it is subscribed.
    pub fn transport(&self, id: &str) -> Option<&'static str> {
        let running = self.running.lock().unwrap();
        let shown = running.get(id)?.3.clone();
        drop(running);
        *shown.lock().unwrap()
    }

    /// Brings camera `id`'s watch in line with `cam` (`None`: the camera is gone).
    pub fn apply(&self, id: &str, cam: Option<&crate::storage::CameraRecord>) {
        let want = cam.and_then(watch_of);
        let mut running = self.running.lock().unwrap();
        let same = match (&want, running.get(id)) {
            (Some(w), Some((f, _, _, _))) => fingerprint(w) == *f,
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        if let Some((_, stop, _, _)) = running.remove(id) {
            stop.cancel();
        }
        if let Some(mut w) = want {
            w.push = self.endpoint.lock().unwrap().clone().map(|endpoint| Push {
                inbox: self.inbox.clone(),
                endpoint,
            });
            let stop = CancellationToken::new();
            let f = fingerprint(&w);
            let shown = w.transport.clone();
            let task = tokio::spawn(watch(w, self.sink.clone(), stop.clone()));
            running.insert(id.to_string(), (f, stop, task, shown));
        }
    }

    /// Stops every watch and waits (at most `limit`) until they have unsubscribed and closed
    /// their events.
    pub async fn stop_all(&self, limit: Duration) {
        let tasks: Vec<_> = {
            let mut running = self.running.lock().unwrap();
            running
                .drain()
                .map(|(_, (_, stop, task, _))| {
                    stop.cancel();
                    task
                })
                .collect()
        };
        let _ = tokio::time::timeout(limit, futures::future::join_all(tasks)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventError;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl EventSink for Log {
        fn begin(
            &self,
            camera: &str,
            kind: &str,
            origin: Origin,
            start_ms: i64,
            _score: Option<f32>,
            zone: Option<String>,
        ) -> Result<EventId, EventError> {
            assert_eq!(origin, Origin::Camera);
            let mut l = self.0.lock().unwrap();
            l.push(format!("begin {camera} {kind} {start_ms} {zone:?}"));
            Ok(EventId(l.len() as u64))
        }
        fn end(&self, id: EventId, end_ms: i64) -> Result<(), EventError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("end {} {end_ms}", id.0));
            Ok(())
        }
        fn set_thumbnail(&self, id: EventId, jpeg: &[u8]) -> Result<(), EventError> {
            self.0
                .lock()
                .unwrap()
                .push(format!("thumb {} {}", id.0, jpeg.len()));
            Ok(())
        }
    }

    #[test]
    fn topics_map_to_kinds() {
        for (topic, kind) in [
            ("tns1:RuleEngine/CellMotionDetector/Motion", Some("motion")),
            ("tns1:VideoSource/MotionAlarm", Some("motion")),
            (
                "tns1:VideoSource/GlobalSceneChange/ImagingService",
                Some("tamper"),
            ),
            ("tns1:RuleEngine/TamperDetector/Tamper", Some("tamper")),
            ("tns1:RuleEngine/LineDetector/Crossed", Some("line")),
            (
                "tns1:RuleEngine/FieldDetector/ObjectsInside",
                Some("intrusion"),
            ),
            (
                "tns1:RuleEngine/MyRuleDetector/PeopleDetect",
                Some("person"),
            ),
            (
                "tns1:RuleEngine/MyRuleDetector/VehicleDetect",
                Some("vehicle"),
            ),
            ("tns1:Device/Trigger/DigitalInput", None),
            ("tns1:Monitoring/ProcessorUsage", None),
        ] {
            assert_eq!(kind_of(topic), kind, "{topic}");
        }
    }

    fn pull(messages: &str) -> Element {
        crate::onvif::xml::parse(&format!(
            r#"<tev:PullMessagesResponse xmlns:tev="e" xmlns:wsnt="n" xmlns:tt="t"><tev:CurrentTime>2026-12-02T10:00:00Z</tev:CurrentTime><tev:TerminationTime>2026-12-02T10:01:00Z</tev:TerminationTime>{messages}</tev:PullMessagesResponse>"#
        ))
        .unwrap()
    }

    fn message(topic: &str, op: &str, source: &str, data: &str) -> String {
        format!(
            r#"<wsnt:NotificationMessage><wsnt:Topic Dialect="d">{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="2026-12-02T10:00:00.500Z" PropertyOperation="{op}"><tt:Source>{source}</tt:Source><tt:Key/><tt:Data>{data}</tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage>"#
        )
    }

    #[test]
    fn notification_messages_are_read() {
        let answer = pull(&[
            message(
                "tns1:RuleEngine/CellMotionDetector/Motion",
                "Changed",
                r#"<tt:SimpleItem Name="VideoSourceConfigurationToken" Value="vsc"/><tt:SimpleItem Name="Rule" Value="Door"/>"#,
                r#"<tt:SimpleItem Name="IsMotion" Value="true"/>"#,
            ),
            message(
                "tns1:RuleEngine/LineDetector/Crossed",
                "Changed",
                "",
                r#"<tt:SimpleItem Name="ObjectId" Value="7"/>"#,
            ),
            message(
                "tns1:VideoSource/MotionAlarm",
                "Initialized",
                r#"<tt:SimpleItem Name="Source" Value="vs"/>"#,
                r#"<tt:SimpleItem Name="State" Value="false"/>"#,
            ),
            message("tns1:Device/Trigger/Relay", "Changed", "", ""),
        ]
        .concat());
        let got = notices(&answer);
        assert_eq!(got.len(), 3);
        assert_eq!(got[0].kind, "motion");
        assert_eq!(got[0].state, Some(true));
        assert_eq!(got[0].zone.as_deref(), Some("Door"));
        assert_eq!(got[0].utc.unwrap().to_string(), "2026-12-02T10:00:00.5Z");
        assert_eq!((got[1].kind, got[1].state), ("line", None));
        assert_eq!((got[2].kind, got[2].state), ("motion", Some(false)));
        assert_ne!(got[0].key, got[2].key);
        assert_eq!(granted(&answer), Duration::from_secs(60));
    }

    fn notice(kind: &'static str, key: &str, state: Option<bool>) -> Notice {
        Notice {
            kind,
            key: key.into(),
            state,
            utc: None,
            zone: None,
        }
    }

    #[test]
    fn starts_stops_and_quiet_times() {
        let log = Log::default();
        let mut t = Tracker::new("cam", Duration::from_secs(30));
        // Start, repeated start, stop.
        assert_eq!(
            t.apply(&log, &notice("motion", "m", Some(true)), 1_000),
            Some(EventId(1))
        );
        assert_eq!(
            t.apply(&log, &notice("motion", "m", Some(true)), 2_000),
            None
        );
        t.apply(&log, &notice("motion", "m", Some(false)), 5_000);
        // A stop without a start, and a second stop: nothing.
        t.apply(&log, &notice("motion", "m", Some(false)), 6_000);
        // A start never stopped, and a pulse: closed after the quiet time from their last "on".
        t.apply(&log, &notice("motion", "m", Some(true)), 10_000);
        t.apply(&log, &notice("line", "l", None), 12_000);
        t.apply(&log, &notice("line", "l", None), 20_000);
        assert_eq!(t.next_expiry_ms(), Some(40_000));
        t.expire(&log, 39_999);
        t.expire(&log, 40_000);
        t.expire(&log, 50_000);
        // One still open when the watch stops.
        t.apply(&log, &notice("tamper", "t", Some(true)), 60_000);
        t.close_all(&log, 61_000);
        assert_eq!(
            log.0.lock().unwrap().clone(),
            [
                "begin cam motion 1000 None",
                "end 1 5000",
                "begin cam motion 10000 None",
                "begin cam line 12000 None",
                "end 3 40000",
                "end 4 50000",
                "begin cam tamper 60000 None",
                "end 7 61000",
            ]
        );
    }

    #[test]
    fn open_events_are_bounded() {
        let log = Log::default();
        let mut t = Tracker::new("cam", Duration::from_secs(30));
        for i in 0..MAX_OPEN + 10 {
            t.apply(&log, &notice("motion", &format!("k{i}"), Some(true)), 1);
        }
        assert_eq!(t.open.len(), MAX_OPEN);
    }
}
