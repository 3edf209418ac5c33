//! The HTTP side of accounts and sessions: log in and out, the one-time setup link, changing
//! one's password. A login starts a session ([`crate::accounts::sessions`]) whose id goes to the
//! browser in the session cookie ([`super::cookie`]) and whose CSRF token goes in the answer,
//! for the page to send back in `X-CSRF-Token` on every change.

use axum::Extension;
use axum::Json;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::ClientIp;
use super::cookie::{Https, session_cookie, set_cookie};
use super::{ApiError, ApiResult, State};
use crate::accounts::Login;
use crate::accounts::passwords::check_password_rules;
use crate::accounts::users::check_user_name;

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
        Login::Busy => ApiError(StatusCode::TOO_MANY_REQUESTS, super::auth::BUSY.into()),
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
    check_user_name(&b.username).map_err(|e| ApiError::bad_request(e.to_string()))?;
    check_password_rules(&b.password).map_err(|e| ApiError::bad_request(e.to_string()))?;
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
    check_password_rules(&b.new_password).map_err(|e| ApiError::bad_request(e.to_string()))?;
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
        refusal @ (Login::Throttled | Login::Busy) => Err(refused(refusal)),
        Login::Invalid => Err(ApiError(
            StatusCode::FORBIDDEN,
            "the current password is wrong".into(),
        )),
    }
}
