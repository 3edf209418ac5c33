//! `/api/cameras`: the cameras of this node. Credentials are write-only: a source URL given with
//! `user:pass@` is split, and no response ever carries a username or password.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::auth::Caller;
use super::{ApiError, ApiResult, State, blocking, rfc3339};
use crate::capture::{Login, SourceSpec, Split, split_credentials};
use crate::federation::tokens::Kind;
use crate::recorder::CameraStatus;
use crate::storage::{CameraRecord, Transport, valid_camera_id};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraInput {
    id: Option<String>,
    name: Option<String>,
    source: Option<String>,
    username: Option<String>,
    password: Option<String>,
    transport: Option<Transport>,
    enabled: Option<bool>,
    /// `0` clears the limit.
    retention_days: Option<u32>,
    /// Maximum age of segments overlapping an event's clip; `0` clears it (then
    /// `retention_days` applies to them too).
    event_retention_days: Option<u32>,
    /// Seconds of recording before and after an event that belong to its clip (0 to 300).
    pre_roll_s: Option<u32>,
    post_roll_s: Option<u32>,
    /// The camera's ONVIF service and its events; `{"xaddr": ""}` removes it.
    onvif: Option<OnvifInput>,
    /// Replaces the motion settings as a whole (keys left out take their defaults).
    motion: Option<crate::motion::Settings>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnvifInput {
    xaddr: Option<String>,
    events: Option<bool>,
    quiet_seconds: Option<u32>,
    /// ONVIF credentials when they are not the stream's; `""` clears them.
    username: Option<String>,
    password: Option<String>,
}

/// What is shown of a camera's ONVIF settings (never its credentials).
#[derive(Debug, Serialize)]
pub struct OnvifView {
    xaddr: String,
    events: bool,
    quiet_seconds: u32,
    /// Whether ONVIF has credentials of its own (else the stream's are used).
    has_credentials: bool,
    /// How the camera's events come now: `pull` (PullPoint), `push` (Basic Notification), or
    /// left out while not subscribed.
    #[serde(skip_serializing_if = "Option::is_none")]
    events_transport: Option<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct CameraView {
    id: String,
    name: String,
    /// Left out for peers: they have no use for this node's camera addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<String>,
    has_credentials: bool,
    transport: Transport,
    enabled: bool,
    retention_days: Option<u32>,
    event_retention_days: Option<u32>,
    pre_roll_s: u32,
    post_roll_s: u32,
    /// Left out for peers, like `source`.
    #[serde(skip_serializing_if = "Option::is_none")]
    onvif: Option<OnvifView>,
    motion: crate::motion::Settings,
    created: String,
    status: CameraStatus,
    /// Where the live stream is: relative for this node's own pages, absolute with a media token
    /// for a peer's.
    live_url: String,
    node_id: String,
    node_label: String,
    remote: bool,
    online: bool,
    stale: bool,
    /// As CartaNVR peers read a camera row.
    is_hevc: bool,
    has_audio: bool,
}

pub fn view(state: &super::AppState, c: CameraRecord) -> CameraView {
    let status = state.recorder.status(&c.id);
    let id = c.id.clone();
    CameraView {
        is_hevc: status.codec == Some(crate::video::Codec::H265),
        has_audio: false,
        status,
        live_url: format!("/api/cameras/{}/live", c.id),
        has_credentials: c.username.is_some() || c.password.is_some(),
        id: c.id,
        name: c.name,
        source: Some(c.source),

        transport: c.transport,
        enabled: c.enabled,
        retention_days: c.retention_days,
        event_retention_days: c.event_retention_days,
        pre_roll_s: c.pre_roll_s,
        post_roll_s: c.post_roll_s,
        onvif: c.onvif.map(|o| OnvifView {
            has_credentials: o.username.is_some() || o.password.is_some(),
            xaddr: o.xaddr,
            events: o.events,
            quiet_seconds: o.quiet_seconds,
            events_transport: state.recorder.onvif_events().transport(&id),
        }),
        motion: c.motion,
        created: rfc3339(c.created_ms),
        node_id: state.index.node_id().to_string(),
        node_label: state.label(),
        remote: false,
        online: true,
        stale: false,
    }
}

/// A camera of a remote node, from the poller's cache. Its id, `r-{node}-{camera}`, is unique
/// across nodes and stable while the node stays registered.
#[derive(Debug, Serialize)]
struct RemoteCameraView {
    id: String,
    name: String,
    enabled: bool,
    node_id: String,
    node_label: String,
    remote: bool,
    online: bool,
    stale: bool,
    /// Seconds since the node last answered.
    age_s: Option<f64>,
    codec: Option<String>,
    /// Straight from the owning node with the token it issued, or through this node's relay
    /// when the node is in relay mode (absent while it is offline).
    live_url: Option<String>,
    status: serde_json::Value,
}

fn remote_cameras(st: &super::AppState) -> ApiResult<Vec<RemoteCameraView>> {
    let now = jiff::Timestamp::now().as_millisecond();
    let mut out = Vec::new();
    for node in st.peers.nodes()?.into_iter().filter(|n| n.enabled) {
        let peer = st.peers.status(&node.id);
        let stale = st.peers.is_stale(&peer);
        for cam in &peer.cameras {
            let state = if peer.online {
                cam.state.as_str()
            } else {
                "offline"
            };
            out.push(RemoteCameraView {
                id: format!("r-{}-{}", node.id, cam.id),
                name: cam.name.clone(),
                enabled: cam.enabled,
                node_id: node.id.clone(),
                node_label: node.label.clone(),
                remote: true,
                online: peer.online,
                stale,
                age_s: peer.last_seen_ms.map(|t| (now - t) as f64 / 1000.0),
                codec: cam.codec.clone(),
                live_url: if super::relay::relayed(&node) {
                    cam.live_url
                        .as_deref()
                        .and_then(|u| super::relay::rewrite_url(&node, u))
                } else {
                    cam.live_url.clone()
                }
                .filter(|_| peer.online),
                status: serde_json::json!({ "state": state }),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    /// `local`: this node's cameras only (what peers ask, so linked nodes never loop).
    scope: Option<String>,
}

/// Whether a request wants this node's own data only: peers always get just that.
pub fn local_only(scope: Option<&str>, caller: &Caller) -> ApiResult<bool> {
    match scope {
        None | Some("all") => Ok(matches!(caller, Caller::Peer { .. })),
        Some("local") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "scope: 'local' or 'all', not '{}'",
            other.escape_debug()
        ))),
    }
}

fn check_name(name: &str) -> ApiResult<String> {
    crate::base::names::label(name).map_err(|e| ApiError::bad_request(format!("name: {e}")))
}

fn check_secret(what: &str, v: &str) -> ApiResult<()> {
    if v.len() > 256 || v.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{what}: at most 256 characters, no control characters"
        )));
    }
    Ok(())
}

/// Applies `input` to `cam`, validating every field given.
fn apply(cam: &mut CameraRecord, input: CameraInput) -> ApiResult<()> {
    if let Some(name) = input.name {
        cam.name = check_name(&name)?;
    }
    if let Some(source) = input.source {
        let Split {
            url: bare,
            username: user,
            password: pass,
        } = split_credentials(&source)
            .map_err(|e| ApiError::bad_request(format!("source: {e}")))?;
        cam.source = SourceSpec::parse(&bare)
            .map_err(|e| ApiError::bad_request(format!("source: {e}")))?
            .to_string();
        if user.is_some() {
            cam.username = user;
            cam.password = pass;
        }
    }
    if let Some(u) = input.username {
        check_secret("username", &u)?;
        cam.username = (!u.is_empty()).then_some(u);
    }
    if let Some(p) = input.password {
        check_secret("password", &p)?;
        cam.password = (!p.is_empty()).then_some(p);
    }
    if let Some(t) = input.transport {
        cam.transport = t;
    }
    if let Some(e) = input.enabled {
        cam.enabled = e;
    }
    match input.retention_days {
        Some(0) => cam.retention_days = None,
        Some(d) if d > 3650 => {
            return Err(ApiError::bad_request(
                "retention_days: 1 to 3650, or 0 for none",
            ));
        }
        Some(d) => cam.retention_days = Some(d),
        None => {}
    }
    match input.event_retention_days {
        Some(0) => cam.event_retention_days = None,
        Some(d) if d > 3650 => {
            return Err(ApiError::bad_request(
                "event_retention_days: 1 to 3650, or 0 for the same as retention_days",
            ));
        }
        Some(d) => cam.event_retention_days = Some(d),
        None => {}
    }
    for (name, given, field) in [
        ("pre_roll_s", input.pre_roll_s, &mut cam.pre_roll_s),
        ("post_roll_s", input.post_roll_s, &mut cam.post_roll_s),
    ] {
        match given {
            Some(s) if s > MAX_ROLL_S => {
                return Err(ApiError::bad_request(format!(
                    "{name}: 0 to {MAX_ROLL_S} seconds"
                )));
            }
            Some(s) => *field = s,
            None => {}
        }
    }
    if let Some(o) = input.onvif {
        apply_onvif(cam, o)?;
    }
    if let Some(m) = input.motion {
        m.validate().map_err(ApiError::bad_request)?;
        cam.motion = m;
    }
    Ok(())
}

fn apply_onvif(cam: &mut CameraRecord, input: OnvifInput) -> ApiResult<()> {
    use crate::onvif::events::{DEFAULT_QUIET_SECONDS, QUIET_SECONDS};
    if input.xaddr.as_deref() == Some("") {
        cam.onvif = None;
        return Ok(());
    }
    // On an error the request fails and `cam` is not stored.
    let mut o = match (cam.onvif.take(), input.xaddr) {
        (old, Some(x)) => {
            let xaddr = crate::onvif::device_address(&x)
                .map_err(|e| ApiError::bad_request(format!("onvif.xaddr: {e}")))?;
            crate::storage::CameraOnvif {
                xaddr: xaddr.to_string(),
                ..old.unwrap_or(crate::storage::CameraOnvif {
                    xaddr: String::new(),
                    events: false,
                    quiet_seconds: DEFAULT_QUIET_SECONDS,
                    username: None,
                    password: None,
                })
            }
        }
        (Some(o), None) => o,
        (None, None) => {
            return Err(ApiError::bad_request(
                "onvif.xaddr: the camera's ONVIF device service address is required",
            ));
        }
    };
    if let Some(e) = input.events {
        o.events = e;
    }
    if let Some(q) = input.quiet_seconds {
        if !QUIET_SECONDS.contains(&q) {
            return Err(ApiError::bad_request(format!(
                "onvif.quiet_seconds: {q} is outside {QUIET_SECONDS:?}"
            )));
        }
        o.quiet_seconds = q;
    }
    if let Some(u) = input.username {
        check_secret("onvif.username", &u)?;
        o.username = (!u.is_empty()).then_some(u);
    }
    if let Some(p) = input.password {
        check_secret("onvif.password", &p)?;
        o.password = (!p.is_empty()).then_some(p);
    }
    cam.onvif = Some(o);
    Ok(())
}

/// Longest pre- or post-roll of an event's clip.
const MAX_ROLL_S: u32 = 300;

fn slug(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    let s: String = s.trim_end_matches('-').chars().take(24).collect();
    let s = s.trim_end_matches('-').to_string();
    if s.is_empty() { "camera".into() } else { s }
}

pub async fn list(
    st: State,
    Query(q): Query<ListQuery>,
    Extension(caller): Extension<Caller>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let local_only = local_only(q.scope.as_deref(), &caller)?;
    let origin = super::origin_of(&headers);
    let index = st.index.clone();
    let cams = blocking(move || Ok(index.cameras()?)).await?;
    let mut out: Vec<serde_json::Value> = cams
        .into_iter()
        .map(|c| {
            let mut v = view(&st, c);
            if matches!(caller, Caller::Peer { .. }) {
                v.source = None;
                v.onvif = None;
                let token = st.tokens.issue(&v.id, Kind::Live, caller.key_id());
                v.live_url = format!(
                    "{}{}?token={token}",
                    origin.as_deref().unwrap_or(""),
                    v.live_url
                );
            }
            to_value(&v)
        })
        .collect();
    if !local_only {
        let st2 = st.clone();
        let remote = blocking(move || remote_cameras(&st2)).await?;
        out.extend(remote.iter().map(to_value));
    }
    Ok(Json(out))
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).expect("views serialize")
}

fn known_id(id: &str) -> ApiResult<()> {
    if valid_camera_id(id) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!(
            "no camera '{}'",
            id.escape_debug()
        )))
    }
}

pub async fn get_one(
    st: State,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<CameraView>> {
    known_id(&id)?;
    let index = st.index.clone();
    let lookup = id.clone();
    let cam = blocking(move || Ok(index.camera(&lookup)?))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no camera '{id}'")))?;
    let mut v = view(&st, cam);
    if matches!(caller, Caller::Peer { .. }) {
        v.source = None; // where a camera is, is this node's business
        v.onvif = None;
    }
    Ok(Json(v))
}

/// A local device feeds one camera: a second camera on it is refused (at run time it would be
/// in error anyway).
fn check_device_free(index: &crate::storage::Index, cam: &CameraRecord) -> ApiResult<()> {
    let device_of = |source: &str| SourceSpec::parse(source).ok()?.device();
    let Some(dev) = device_of(&cam.source) else {
        return Ok(());
    };
    for other in index.cameras()? {
        if other.id != cam.id && device_of(&other.source).as_ref() == Some(&dev) {
            return Err(ApiError(
                StatusCode::CONFLICT,
                format!(
                    "{} is already the source of camera '{}'; a device feeds one camera",
                    dev.display(),
                    other.id
                ),
            ));
        }
    }
    Ok(())
}

pub async fn create(st: State, Json(input): Json<CameraInput>) -> ApiResult<impl IntoResponse> {
    let name = check_name(
        input
            .name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("name is required"))?,
    )?;
    if input.source.is_none() {
        return Err(ApiError::bad_request("source is required"));
    }
    let explicit_id = input.id.clone();
    if let Some(id) = &explicit_id {
        if !valid_camera_id(id) {
            return Err(ApiError::bad_request(
                "id: 1 to 32 of a-z, 0-9 and '-', not starting with '-'",
            ));
        }
    }
    let mut cam = CameraRecord {
        id: String::new(),
        name: name.clone(),
        source: String::new(),
        username: None,
        password: None,
        transport: Transport::Tcp,
        enabled: true,
        retention_days: None,
        event_retention_days: None,
        pre_roll_s: crate::storage::DEFAULT_ROLL_S,
        post_roll_s: crate::storage::DEFAULT_ROLL_S,
        motion: Default::default(),
        created_ms: jiff::Timestamp::now().as_millisecond(),
        onvif: None,
    };
    apply(&mut cam, input)?;
    let index = st.index.clone();
    let cam = blocking(move || {
        check_device_free(&index, &cam)?;
        let base = explicit_id.clone().unwrap_or_else(|| slug(&name));
        for n in 1..1000 {
            cam.id = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            };
            if index.put_camera(&cam, true)? {
                return Ok(cam);
            }
            if explicit_id.is_some() {
                return Err(ApiError(
                    StatusCode::CONFLICT,
                    format!("camera '{}' exists already", cam.id),
                ));
            }
        }
        Err(ApiError::bad_request("could not find a free id; give one"))
    })
    .await?;
    st.recorder.apply(&cam).await;
    Ok((StatusCode::CREATED, Json(view(&st, cam))))
}

pub async fn update(
    st: State,
    Path(id): Path<String>,
    Json(input): Json<CameraInput>,
) -> ApiResult<Json<CameraView>> {
    known_id(&id)?;
    if input.id.as_ref().is_some_and(|new| *new != id) {
        return Err(ApiError::bad_request("id cannot be changed"));
    }
    let index = st.index.clone();
    let cam = blocking(move || {
        let mut cam = index
            .camera(&id)?
            .ok_or_else(|| ApiError::not_found(format!("no camera '{id}'")))?;
        apply(&mut cam, input)?;
        check_device_free(&index, &cam)?;
        index.put_camera(&cam, false)?;
        Ok(cam)
    })
    .await?;
    st.recorder.apply(&cam).await;
    Ok(Json(view(&st, cam)))
}

#[derive(Debug, Deserialize)]
pub struct DeleteQuery {
    keep_recordings: Option<bool>,
}

pub async fn delete(
    st: State,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
) -> ApiResult<StatusCode> {
    known_id(&id)?;
    let keep = q.keep_recordings.ok_or_else(|| {
        ApiError::bad_request(
            "say what happens to its recordings: ?keep_recordings=true or ?keep_recordings=false",
        )
    })?;
    let index = st.index.clone();
    let lookup = id.clone();
    if blocking(move || Ok(index.camera(&lookup)?))
        .await?
        .is_none()
    {
        return Err(ApiError::not_found(format!("no camera '{id}'")));
    }
    st.recorder.stop(&id).await;
    let index = st.index.clone();
    let retention = st.retention.clone();
    blocking(move || {
        index.delete_camera(&id)?;
        if !keep {
            retention.delete_camera(&id)?;
        }
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::slug;

    #[test]
    fn slugs() {
        assert_eq!(slug("Front Door"), "front-door");
        assert_eq!(slug("  Garage #2 (east) "), "garage-2-east");
        assert_eq!(slug("日本"), "camera");
        assert_eq!(slug(&"x".repeat(40)).len(), 24);
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    source: String,
    username: Option<String>,
    password: Option<String>,
    transport: Option<Transport>,
    /// A camera being edited: its stored credentials are used when none are given.
    id: Option<String>,
}

/// Longest a source test waits for the first key frame, connection included.
const TEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `POST /api/cameras/test`: opens a source as a camera would and waits for its first key
/// frame, so a source can be checked before it is saved. The route shares its path with
/// `/api/cameras/{id}`, whose other methods still reach a camera called `test`.
pub async fn test_or_405(
    st: State,
    Path(id): Path<String>,
    Json(input): Json<TestInput>,
) -> ApiResult<Json<serde_json::Value>> {
    if id != "test" {
        return Err(ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST is for /api/cameras (create) and /api/cameras/test".into(),
        ));
    }
    let Split {
        url: bare,
        username: user,
        password: pass,
    } = split_credentials(&input.source)
        .map_err(|e| ApiError::bad_request(format!("source: {e}")))?;
    let spec =
        SourceSpec::parse(&bare).map_err(|e| ApiError::bad_request(format!("source: {e}")))?;
    let stored = match input.id.filter(|i| valid_camera_id(i)) {
        Some(id) => {
            let index = st.index.clone();
            blocking(move || Ok(index.camera(&id)?)).await?
        }
        None => None,
    };
    for (what, v) in [("username", &input.username), ("password", &input.password)] {
        if let Some(v) = v {
            check_secret(what, v)?;
        }
    }
    let src = crate::capture::open(
        &spec.with_login(Login {
            username: user
                .or(input.username.filter(|u| !u.is_empty()))
                .or_else(|| stored.as_ref().and_then(|c| c.username.clone())),
            password: pass
                .or(input.password.filter(|p| !p.is_empty()))
                .or_else(|| stored.as_ref().and_then(|c| c.password.clone())),
            udp: input.transport == Some(Transport::Udp),
        }),
    );
    let started = std::time::Instant::now();
    let tried = tokio::time::timeout(TEST_TIMEOUT, async {
        let mut opened = src.open().await?;
        let first = futures::StreamExt::next(&mut opened.frames).await;
        match first {
            Some(Ok(_)) => Ok(opened.params),
            Some(Err(e)) => Err(e),
            None => Err(crate::capture::CaptureError::Stream(
                "the stream ended before its first frame".into(),
            )),
        }
    })
    .await;
    let ms = started.elapsed().as_millis() as u64;
    Ok(Json(match tried {
        Ok(Ok(p)) => serde_json::json!({
            "ok": true,
            "codec": p.codec,
            "width": p.width, "height": p.height, "took_ms": ms,
            "message": format!("received a key frame: {}×{} {}", p.width, p.height, p.rfc6381),
        }),
        Ok(Err(e)) => serde_json::json!({ "ok": false, "took_ms": ms, "message": e.to_string() }),
        Err(_) => serde_json::json!({
            "ok": false, "took_ms": ms,
            "message": format!("no key frame within {} s", TEST_TIMEOUT.as_secs()),
        }),
    }))
}
