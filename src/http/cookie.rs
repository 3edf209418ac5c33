//! The session cookie: its name (one per node), finding it among a request's cookies, and
//! setting it (HttpOnly, SameSite=Strict, `Secure` over HTTPS). The sessions themselves are in
//! [`crate::accounts::sessions`].

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

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

pub fn set_cookie(res: &mut Response, https: bool, name: &str, value: &str, max_age: u64) {
    let secure = if https { "; Secure" } else { "" };
    let c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}");
    res.headers_mut().append(
        header::SET_COOKIE,
        HeaderValue::from_str(&c).expect("cookie is ASCII"),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; eyrie-x=abc; b=2".parse().unwrap());
        assert_eq!(session_cookie(&h, "eyrie-x").as_deref(), Some("abc"));
        assert_eq!(session_cookie(&h, "eyrie-y"), None);
    }
}
