//! Sessions of logged-in users: a random id in an HttpOnly, SameSite=Strict cookie, a CSRF
//! token the page sends back in `X-CSRF-Token` on every change, an idle and an absolute
//! lifetime, and a bound on how many exist (the oldest are ended first). Sessions live in memory:
//! a restart logs everyone out. Also the HTTP side of accounts: log in and out, the one-time
//! setup link, changing one's password.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ring::digest::{SHA256, digest};
use serde::Deserialize;
use serde_json::json;

use super::account::{Login, check_password_rules, check_user_name};
use super::auth::ClientIp;
use super::{ApiError, ApiResult, State};
use crate::federation::keys::random_hex;

#[derive(Debug, Clone, Copy)]
pub struct SessionConfig {
    /// A session not used for this long ends.
    pub idle: Duration,
    /// A session ends this long after login whatever its use.
    pub absolute: Duration,
    /// Most sessions at once; a new login past it ends the least recently used one.
    pub max: usize,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(12 * 3600),
            absolute: Duration::from_secs(7 * 24 * 3600),
            max: 32,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Session {
    pub user: String,
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Sessions by the SHA-256 of their id (the id itself is only in the browser's cookie).
pub struct Sessions {
    cfg: SessionConfig,
    map: Mutex<HashMap<[u8; 32], Session>>,
}

fn id_hash(id: &str) -> [u8; 32] {
    digest(&SHA256, id.as_bytes())
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

impl Sessions {
    pub fn new(cfg: SessionConfig) -> Self {
        Self {
            cfg,
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn config(&self) -> SessionConfig {
        self.cfg
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.duration_since(s.last_seen) >= self.cfg.idle
            || now.duration_since(s.created) >= self.cfg.absolute
    }

    /// Starts a session; returns its id (for the cookie) and CSRF token.
    pub fn start(&self, user: &str) -> (String, String) {
        let id = random_hex(32);
        let csrf = random_hex(32);
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        map.retain(|_, s| !self.expired(s, now));
        while map.len() >= self.cfg.max.max(1) {
            let Some(oldest) = map.iter().min_by_key(|(_, s)| s.last_seen).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(
            id_hash(&id),
            Session {
                user: user.to_string(),
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (id, csrf)
    }

    /// The live session with this id, marked as used now.
    pub fn get(&self, id: &str) -> Option<Session> {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap();
        let key = id_hash(id);
        let s = map.get_mut(&key)?;
        if self.expired(s, now) {
            map.remove(&key);
            return None;
        }
        s.last_seen = now;
        Some(s.clone())
    }

    pub fn end(&self, id: &str) {
        self.map.lock().unwrap().remove(&id_hash(id));
    }

    /// Ends every session of `user` except `keep` (a session id).
    pub fn end_user(&self, user: &str, keep: Option<&str>) {
        let keep = keep.map(id_hash);
        self.map
            .lock()
            .unwrap()
            .retain(|k, s| s.user != user || Some(*k) == keep);
    }
}

/// The session cookie's name: one per node, since browsers share cookies between the ports of
/// one host (two nodes on one machine must not log each other out).
pub fn cookie_name(node_id: &uuid::Uuid) -> String {
    format!("eyrie-{}", &node_id.simple().to_string()[..12])
}

/// The session id in the request's cookies, if any.
pub fn session_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Marks requests that came over HTTPS (a layer on the TLS server only): their session cookie is
/// `Secure`, so the browser never sends it over plain HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Https;

fn set_cookie(res: &mut Response, https: bool, name: &str, value: &str, max_age: u64) {
    let secure = if https { "; Secure" } else { "" };
    let c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    res.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&c).expect("cookie is ASCII"),
    );
}

fn logged_in(st: &super::AppState, https: bool, user: &str) -> Response {
    let (id, csrf) = st.accounts.sessions.start(user);
    let cfg = st.accounts.sessions.config();
    let mut res =
        Json(json!({ "user": user, "csrf": csrf, "node_label": st.label() })).into_response();
    set_cookie(
        &mut res,
        https,
        &st.session_cookie,
        &id,
        cfg.absolute.as_secs(),
    );
    res
}

fn refused(login: Login) -> ApiError {
    match login {
        Login::Throttled => ApiError(
            StatusCode::TOO_MANY_REQUESTS,
            "too many wrong passwords from this address; try again in a minute".into(),
        ),
        _ => ApiError(
            StatusCode::UNAUTHORIZED,
            "wrong user name or password".into(),
        ),
    }
}

/// `GET /api/session` (open to all): who is logged in with this request's cookie, its CSRF
/// token, and whether the node still waits for its first account.
pub async fn current(st: State, headers: HeaderMap) -> Json<serde_json::Value> {
    let s =
        session_cookie(&headers, &st.session_cookie).and_then(|id| st.accounts.sessions.get(&id));
    Json(json!({
        "user": s.as_ref().map(|s| s.user.clone()),
        "csrf": s.map(|s| s.csrf),
        "setup_required": !st.accounts.has_users(),
        "node_label": st.label(),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    username: String,
    password: String,
}

/// `POST /api/session`: logs in.
pub async fn login(
    st: State,
    Extension(ClientIp(from)): Extension<ClientIp>,
    https: Option<Extension<Https>>,
    Json(b): Json<LoginBody>,
) -> ApiResult<Response> {
    match st.accounts.login(&b.username, &b.password, from).await {
        Login::Valid(user) => {
            tracing::info!(%user, "logged in");
            Ok(logged_in(&st, https.is_some(), &user))
        }
        other => Err(refused(other)),
    }
}

/// `DELETE /api/session`: logs out.
pub async fn logout(st: State, https: Option<Extension<Https>>, headers: HeaderMap) -> Response {
    if let Some(id) = session_cookie(&headers, &st.session_cookie) {
        st.accounts.sessions.end(&id);
    }
    let mut res = StatusCode::NO_CONTENT.into_response();
    set_cookie(&mut res, https.is_some(), &st.session_cookie, "", 0);
    res
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    token: String,
    username: String,
    password: String,
}

/// `POST /api/setup`: creates the first account with the one-time link's secret, logged in.
pub async fn setup(
    st: State,
    Extension(ClientIp(from)): Extension<ClientIp>,
    https: Option<Extension<Https>>,
    Json(b): Json<SetupBody>,
) -> ApiResult<Response> {
    check_user_name(&b.username).map_err(ApiError::bad_request)?;
    check_password_rules(&b.password).map_err(ApiError::bad_request)?;
    let accounts = st.accounts.clone();
    let done = super::blocking(move || {
        accounts
            .complete_setup(&b.token, &b.username, &b.password)
            .map(|ok| ok.then_some(b.username))
            .map_err(ApiError::internal)
    })
    .await?;
    match done {
        Some(user) => {
            tracing::info!(%user, "first account created with the setup link");
            Ok(logged_in(&st, https.is_some(), &user))
        }
        None => {
            tracing::warn!(%from, "setup link refused");
            Err(ApiError(
                StatusCode::FORBIDDEN,
                "this setup link is not valid (an account exists already, or the link is from an earlier start; see the log)".into(),
            ))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordBody {
    current_password: String,
    new_password: String,
}

/// `PUT /api/account/password`: changes the caller's password; their other sessions end.
pub async fn change_password(
    st: State,
    Extension(ClientIp(from)): Extension<ClientIp>,
    headers: HeaderMap,
    axum::Extension(caller): axum::Extension<super::auth::Caller>,
    Json(b): Json<PasswordBody>,
) -> ApiResult<StatusCode> {
    let super::auth::Caller::User { name } = caller else {
        return Err(ApiError(StatusCode::FORBIDDEN, "only for users".into()));
    };
    check_password_rules(&b.new_password).map_err(ApiError::bad_request)?;
    let keep = session_cookie(&headers, &st.session_cookie);
    match st
        .accounts
        .change_password(
            &name,
            &b.current_password,
            &b.new_password,
            from,
            keep.as_deref(),
        )
        .await
        .map_err(ApiError::internal)?
    {
        Login::Valid(_) => Ok(StatusCode::NO_CONTENT),
        Login::Throttled => Err(refused(Login::Throttled)),
        Login::Invalid => Err(ApiError(
            StatusCode::FORBIDDEN,
            "the current password is wrong".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_when_idle_and_are_bounded() {
        let s = Sessions::new(SessionConfig {
            idle: Duration::from_secs(1),
            absolute: Duration::from_secs(60),
            max: 2,
        });
        let (a, csrf) = s.start("admin");
        assert_eq!(s.get(&a).unwrap().csrf, csrf);
        std::thread::sleep(Duration::from_millis(1200));
        assert!(s.get(&a).is_none(), "idle too long");
        let (b, _) = s.start("admin");
        let (c, _) = s.start("admin");
        let (d, _) = s.start("other");
        assert!(s.get(&b).is_none(), "the oldest is ended past the bound");
        assert!(s.get(&c).is_some() && s.get(&d).is_some());
        s.end_user("admin", None);
        assert!(s.get(&c).is_none() && s.get(&d).is_some());
        s.end(&d);
        assert!(s.get(&d).is_none());
    }

    #[test]
    fn sessions_end_after_their_absolute_lifetime() {
        let s = Sessions::new(SessionConfig {
            idle: Duration::from_secs(60),
            absolute: Duration::from_secs(1),
            max: 8,
        });
        let (a, _) = s.start("admin");
        assert!(s.get(&a).is_some());
        std::thread::sleep(Duration::from_millis(1200));
        assert!(s.get(&a).is_none(), "used recently, but past its lifetime");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; eyrie-x=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h, "eyrie-x").as_deref(), Some("abc"));
        assert_eq!(session_cookie(&h, "eyrie-y"), None);
    }
}
