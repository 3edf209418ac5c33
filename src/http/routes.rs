//! Every route of the API and the web UI, and who may call it.
//!
//! A route's access is decided by the sub-router that declares it, never by reading its path:
//! each sub-router below holds the routes of one [`Access`] level and carries that level's
//! [`Gate`] as its `route_layer`, and [`router`] merges them into one app. A path may have
//! methods at different levels (`GET /api/cameras` reads for peers, `POST` is for users): each
//! method is declared in its level's sub-router, and axum's merge joins them into one route
//! whose methods each keep their own gate (two sub-routers may not declare the same method of
//! the same path; axum panics at start if they do).
//!
//! To add a route, declare it in the sub-router of the level it needs:
//!
//! - [`Access::Public`]: anyone, without credentials (the page, pairing asked by a stranger);
//! - [`Access::Login`]: anyone, proving itself with a password or secret in its body;
//! - [`Access::PathToken`]: anyone and peers, to read, opened by a token in the path;
//! - [`Access::PeerRead`]: users, and peers to read;
//! - [`Access::Media`]: users, peers and `?token=` media tokens, to read; these routes also
//!   answer the CORS preflight of token requests from pages of any origin
//!   ([`cors::token_preflight`], outside the gate: a preflight carries no credentials);
//! - [`Access::User`]: logged-in users; anything that changes or administers the node.
//!
//! A method a path does not have, and a path no route has, are answered at the
//! [`Access::User`] level: a caller who may not reach the API learns nothing from a 404 or 405.
//! Layers for one route (a body limit) go on its method router; layers for every route
//! (CORS, JSON errors, headers, tracing) at the end of [`router`].

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::Response;
use axum::routing::{MethodRouter, delete, get, options, post, put};

use super::auth::{Access, Gate, authenticate};
use super::{
    ApiError, AppState, MAX_BODY, cameras, cartanvr, cors, devices, discover, federation, health,
    json_errors, live, nodes, notify, pair, recordings, relay, session, settings, system, ui,
};

type Routes = Vec<(&'static str, MethodRouter<Arc<AppState>>)>;

fn public() -> Routes {
    vec![
        // The web UI: the page asks for a login.
        ("/", get(ui::index)),
        ("/assets/{build}/{*file}", get(ui::asset)),
        ("/api/session", get(session::current)),
        // Pairing (docs/federation.md): a remote node asks and collects its key before it has
        // any credentials here, so these get their own smaller body limit.
        (
            "/api/federation/pair",
            post(pair::ask).layer(DefaultBodyLimit::max(pair::MAX_PAIR_BODY)),
        ),
        (
            "/api/federation/pair/{id}/collect",
            post(pair::collect).layer(DefaultBodyLimit::max(pair::MAX_PAIR_BODY)),
        ),
        // Cameras push their ONVIF events; the token in the path is the credential
        // (docs/security.md).
        (
            "/api/onvif/notify/{token}",
            post(notify::notify).layer(DefaultBodyLimit::max(notify::MAX_BODY)),
        ),
    ]
}

fn login() -> Routes {
    vec![
        ("/api/session", post(session::login)),
        ("/api/setup", post(session::setup)),
    ]
}

fn path_token() -> Routes {
    vec![("/api/recordings/{camera}/{file}", get(cartanvr::file))]
}

fn peer_read() -> Routes {
    vec![
        ("/api/health", get(health::health)),
        ("/api/cameras", get(cameras::list)),
        ("/api/cameras/{id}", get(cameras::get_one)),
        ("/api/recordings", get(recordings::list)),
        ("/api/recordings/events", get(recordings::events)),
        // CartaNVR's dialect (docs/federation.md).
        ("/api/maintenance/health", get(cartanvr::health)),
        ("/api/playback/{camera}", get(cartanvr::playback)),
    ]
}

fn media() -> Routes {
    vec![
        ("/api/cameras/{id}/live", get(live::live)),
        ("/api/recordings/{camera}/view.mp4", get(recordings::view)),
        ("/api/recordings/{camera}/frame.jpg", get(recordings::frame)),
        (
            "/api/recordings/{camera}/replay.mjpeg",
            get(recordings::replay),
        ),
        ("/api/segments/{file}", get(recordings::segment)),
        (
            "/api/recordings/events/{id}/thumbnail.jpg",
            get(recordings::thumbnail),
        ),
    ]
}

fn user() -> Routes {
    vec![
        // Accounts and sessions.
        ("/api/session", delete(session::logout)),
        ("/api/account/password", put(session::change_password)),
        // Cameras.
        ("/api/cameras", post(cameras::create)),
        (
            "/api/cameras/{id}",
            put(cameras::update)
                .delete(cameras::delete)
                .post(cameras::test_or_405),
        ),
        // Events: marking a moment, keeping a clip.
        ("/api/recordings/events", post(recordings::mark)),
        (
            "/api/recordings/events/{id}/protect",
            post(recordings::protect),
        ),
        // Federation keys and remote nodes.
        (
            "/api/federation/keys",
            get(federation::list).post(federation::create),
        ),
        ("/api/federation/keys/{id}", delete(federation::revoke)),
        ("/api/system/nodes", get(nodes::list).post(nodes::create)),
        ("/api/system/nodes/test", post(nodes::test)),
        ("/api/system/nodes/{id}/check", post(nodes::check)),
        (
            "/api/system/nodes/{id}",
            get(nodes::get_one).put(nodes::update).delete(nodes::delete),
        ),
        ("/api/system/nodes/{id}/media/{*path}", get(relay::media)),
        // Settings and the appliance (docs/update.md): an update image is streamed, so no
        // body limit there.
        (
            "/api/system/settings",
            get(settings::get).put(settings::put),
        ),
        (
            "/api/system/update",
            get(system::status)
                .post(system::update)
                .layer(DefaultBodyLimit::disable()),
        ),
        ("/api/system/reboot", post(system::reboot)),
        // Discovery and pairing, the admin's side (docs/federation.md).
        ("/api/federation/pair/requests", get(pair::requests)),
        (
            "/api/federation/pair/requests/{id}/approve",
            post(pair::approve),
        ),
        (
            "/api/federation/pair/requests/{id}/reject",
            post(pair::reject),
        ),
        ("/api/system/pairings", get(pair::list).post(pair::start)),
        ("/api/system/pairings/{id}", get(pair::get_one)),
        ("/api/system/discover", get(discover::discover)),
        ("/api/events", get(discover::events)),
        // Local cameras and ONVIF discovery (docs/devices.md).
        ("/api/system/devices", get(devices::list)),
        ("/api/system/onvif/scan", post(devices::onvif_scan)),
        ("/api/system/onvif/device", post(devices::onvif_device)),
    ]
}

/// The routes of one level, behind its gate.
fn sub_router(st: &Arc<AppState>, access: Access, routes: Routes) -> Router<Arc<AppState>> {
    let paths: Vec<&str> = routes.iter().map(|(path, _)| *path).collect();
    let gated = routes
        .into_iter()
        .fold(Router::new(), |r, (path, m)| r.route(path, m))
        .route_layer(middleware::from_fn_with_state(
            Gate::new(st, access),
            authenticate,
        ));
    if !access.admits_tokens() {
        return gated;
    }
    paths.into_iter().fold(gated, |r, path| {
        r.route(path, options(cors::token_preflight))
    })
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

pub fn router(st: Arc<AppState>) -> Router {
    let unrouted = || middleware::from_fn_with_state(Gate::new(&st, Access::User), authenticate);
    Router::new()
        .merge(sub_router(&st, Access::Public, public()))
        .merge(sub_router(&st, Access::Login, login()))
        .merge(sub_router(&st, Access::PathToken, path_token()))
        .merge(sub_router(&st, Access::PeerRead, peer_read()))
        .merge(sub_router(&st, Access::Media, media()))
        .merge(sub_router(&st, Access::User, user()))
        .method_not_allowed_fallback(method_not_allowed.layer(unrouted()))
        .fallback(not_found.layer(unrouted()))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(st.clone(), cors::cors))
        .layer(middleware::from_fn(json_errors))
        .layer(middleware::map_response(|mut r: Response| async move {
            r.headers_mut()
                .entry(header::CACHE_CONTROL)
                .or_insert(HeaderValue::from_static("no-store"));
            r.headers_mut().insert(
                "x-content-type-options",
                HeaderValue::from_static("nosniff"),
            );
            r
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(st)
}
