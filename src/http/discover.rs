//! `GET /api/system/discover`: the nodes seen on the network now, from the browse cache (never
//! a scan), each with whether it is already a remote node here. `GET /api/events`: change
//! notices and event starts and ends as Server-Sent Events, so a page need not poll.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;

use super::{ApiError, ApiResult, AppState, State, blocking, rfc3339};
use crate::discovery::Seen;
use crate::discovery::events::Topic;

/// How often an idle event stream carries a comment, so proxies and browsers keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long one event stream lasts before the browser must reconnect (and log in again).
const STREAM_LIFETIME: Duration = Duration::from_secs(300);

#[derive(Debug, Serialize)]
pub struct SeenView {
    #[serde(flatten)]
    seen: Seen,
    last_seen: String,
    /// Whether a remote node here is this node (same node id, or same address and port).
    linked: bool,
    /// That remote node's id in `/api/system/nodes`.
    linked_node: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct DiscoverView {
    /// Whether mDNS discovery runs (`[discovery] enabled`).
    enabled: bool,
    /// The name this node is advertised under (`Label (2)` after a name conflict); null in
    /// the first seconds, while it listens for the names in use.
    advertised_as: Option<String>,
    nodes: Vec<SeenView>,
}

/// The registered node that is `s`, if any.
fn linked_to(s: &Seen, nodes: &[(crate::storage::NodeRecord, Option<String>)]) -> Option<String> {
    nodes
        .iter()
        .find(|(n, peer_id)| {
            let same_id = s.node_id.is_some() && *peer_id == s.node_id;
            let same_place = url::Url::parse(&n.url).ok().is_some_and(|u| {
                u.port_or_known_default() == Some(s.port)
                    && match u.host() {
                        Some(url::Host::Ipv4(ip)) => s.addresses.contains(&ip.into()),
                        Some(url::Host::Ipv6(ip)) => s.addresses.contains(&ip.into()),
                        _ => false,
                    }
            });
            same_id || same_place
        })
        .map(|(n, _)| n.id.clone())
}

pub async fn view(st: &AppState) -> ApiResult<DiscoverView> {
    let Some(d) = &st.discovery else {
        return Ok(DiscoverView {
            enabled: false,
            advertised_as: None,
            nodes: Vec::new(),
        });
    };
    let peers = st.peers.clone();
    let nodes = blocking(move || Ok(peers.nodes()?)).await?;
    let nodes: Vec<_> = nodes
        .into_iter()
        .map(|n| {
            let id = st.peers.status(&n.id).node_id;
            (n, id)
        })
        .collect();
    Ok(DiscoverView {
        enabled: true,
        advertised_as: d.advertised_as(),
        nodes: d
            .seen()
            .into_iter()
            .map(|s| {
                let linked_node = linked_to(&s, &nodes);
                SeenView {
                    last_seen: rfc3339(s.last_seen_ms),
                    linked: linked_node.is_some(),
                    linked_node,
                    seen: s,
                }
            })
            .collect(),
    })
}

pub async fn discover(st: State) -> ApiResult<Json<DiscoverView>> {
    Ok(Json(view(&st).await?))
}

/// The current state of `topic`, as its event's data.
async fn snapshot(st: &AppState, topic: Topic) -> String {
    let v = match topic {
        Topic::Discover => view(st)
            .await
            .ok()
            .and_then(|v| serde_json::to_value(v).ok()),
        Topic::PairRequests => serde_json::to_value(st.link.requests()).ok(),
        Topic::Pairings => serde_json::to_value(st.link.pairings()).ok(),
    };
    v.unwrap_or_default().to_string()
}

/// One thing to send on an event stream.
enum Next {
    Topic(Topic),
    Event(crate::events::Notice),
    End,
}

/// `GET /api/events`: `discover`, `pair_requests` and `pairings` events, each carrying the
/// whole current state of its view (the first of each comes at once), and `event_start` and
/// `event_end`, each carrying the event as `GET /api/recordings/events` lists it. A listener
/// that cannot keep up is disconnected (it reconnects and gets the current state again).
pub async fn events(st: State) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let busy = || {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event listeners; poll GET /api/system/discover instead".into(),
        )
    };
    let sub = st.notices.subscribe().ok_or_else(busy)?;
    let evs = st.events.subscribe().ok_or_else(busy)?;
    let st = st.0.clone();
    let first = vec![Topic::Discover, Topic::PairRequests, Topic::Pairings];
    let stream = futures::stream::unfold(
        (sub, evs, first, st),
        |(mut sub, mut evs, mut first, st)| async move {
            let next = match first.pop() {
                Some(t) => Next::Topic(t),
                None => tokio::select! {
                    t = sub.rx.recv() => t.map_or(Next::End, Next::Topic),
                    n = evs.rx.recv() => n.map_or(Next::End, Next::Event),
                },
            };
            let event = match next {
                Next::Topic(topic) => {
                    let data = snapshot(&st, topic).await;
                    Event::default().event(topic.name()).data(data)
                }
                Next::Event(n) => {
                    let out = match super::recordings::Local::load(&st).await {
                        Ok(local) => serde_json::to_string(&local.event(n.event.clone())),
                        Err(_) => serde_json::to_string(&serde_json::Value::Null),
                    };
                    Event::default()
                        .event(n.name())
                        .data(out.unwrap_or_default())
                }
                // Too slow, or a hub is gone: end the stream.
                Next::End => return None,
            };
            Some((Ok(event), (sub, evs, first, st)))
        },
    );
    // A stream outlives nothing for long: after a while it ends and the browser reconnects,
    // which checks its login again (so a logout or password change stops it within that).
    let stream = futures::StreamExt::take_until(stream, tokio::time::sleep(STREAM_LIFETIME));
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(HEARTBEAT)))
}
