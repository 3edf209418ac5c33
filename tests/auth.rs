//! Accounts over real HTTP: what needs a login, sessions with CSRF, Basic credentials,
//! throttling, the one-time setup link, password changes, and hashes that never leave.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::*;

/// `(status, headers we look at, JSON body or Null)` of a raw request without harness credentials.
fn call(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, ureq::Response) {
    let mut req = ureq::request(method, url).timeout(Duration::from_secs(15));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let res = match body {
        Some(b) => req.set("content-type", "application/json").send_string(b),
        None => req.call(),
    };
    match res {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(s, r)) => (s, r),
        Err(e) => panic!("{method} {url}: {e}"),
    }
}

fn json(r: ureq::Response) -> Value {
    let t = r.into_string().unwrap();
    if t.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&t).unwrap()
    }
}

/// Logs in; returns the `Cookie` header value and the CSRF token.
fn login(e: &Eyrie, user: &str, password: &str) -> (String, String) {
    let (s, r) = call(
        "POST",
        &e.anon_url("/api/session"),
        &[],
        Some(&format!(
            r#"{{"username": "{user}", "password": "{password}"}}"#
        )),
    );
    let set_cookie = r.header("set-cookie").unwrap_or("").to_string();
    let v = json(r);
    assert_eq!(s, 200, "{v}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attr), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    (cookie, v["csrf"].as_str().unwrap().to_string())
}

#[test]
fn without_a_login_only_public_routes_answer() {
    let e = Eyrie::start("", &["--demo"]);
    for (m, p) in [
        ("GET", "/api/health"),
        ("GET", "/api/cameras"),
        ("POST", "/api/cameras"),
        ("GET", "/api/recordings?camera=demo"),
        ("GET", "/api/cameras/demo/live"),
        ("GET", "/api/federation/keys"),
        ("POST", "/api/federation/keys"),
        ("GET", "/api/system/nodes"),
        ("GET", "/api/system/nodes/0123456789ab/media/segments/1.mp4"),
        ("PUT", "/api/account/password"),
        ("DELETE", "/api/session"),
    ] {
        let (s, r) = call(m, &e.anon_url(p), &[], None);
        assert!(
            r.header("www-authenticate").is_none(),
            "{m} {p}: never a Basic challenge"
        );
        assert_eq!(s, 401, "{m} {p}: {}", json(r));
    }
    // A wrong session cookie is no session either.
    let (s, _) = call(
        "GET",
        &e.anon_url("/api/cameras"),
        &[("cookie", "eyrie-000000000000=abc")],
        None,
    );
    assert_eq!(s, 401);
    // Public: the page, its assets, who-am-I.
    let (s, r) = call("GET", &e.anon_url("/"), &[], None);
    assert_eq!(s, 200);
    assert!(r.header("content-security-policy").is_some());
    let page = r.into_string().unwrap();
    let asset = page
        .split('"')
        .find(|p| p.starts_with("/assets/") && p.ends_with(".js"))
        .unwrap()
        .to_string();
    let (s, r) = call(
        "GET",
        &e.anon_url(&asset),
        &[("accept-encoding", "gzip")],
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.header("cache-control").unwrap().contains("immutable"));
    let etag = r.header("etag").unwrap().to_string();
    let (s, _) = call(
        "GET",
        &e.anon_url(&asset),
        &[("if-none-match", &etag)],
        None,
    );
    assert_eq!(s, 304);
    let (s, r) = call("GET", &e.anon_url("/api/session"), &[], None);
    assert_eq!(s, 200);
    let v = json(r);
    assert_eq!(
        (v["user"].clone(), v["setup_required"].clone()),
        (Value::Null, false.into())
    );
    // The harness's Basic credentials reach everything.
    assert_eq!(e.request("GET", "/api/health", None).0, 200);
}

#[test]
fn sessions_need_csrf_for_changes_and_end_at_logout() {
    let e = Eyrie::start("", &["--demo"]);
    let (cookie, csrf) = login(&e, ADMIN_USER, ADMIN_PASSWORD);
    let ck = ("cookie", cookie.as_str());
    let (s, _) = call("GET", &e.anon_url("/api/cameras"), &[ck], None);
    assert_eq!(s, 200);
    let (s, r) = call("GET", &e.anon_url("/api/session"), &[ck], None);
    assert_eq!(s, 200);
    let me = json(r);
    assert_eq!(me["user"], ADMIN_USER);
    assert_eq!(me["csrf"], csrf.as_str());

    let body = Some(r#"{"name": "garage"}"#);
    let (s, r) = call("POST", &e.anon_url("/api/federation/keys"), &[ck], body);
    assert_eq!(s, 403, "no CSRF token");
    assert!(json(r)["error"].as_str().unwrap().contains("X-CSRF-Token"));
    let wrong = "0".repeat(64);
    let (s, _) = call(
        "POST",
        &e.anon_url("/api/federation/keys"),
        &[ck, ("x-csrf-token", &wrong)],
        body,
    );
    assert_eq!(s, 403, "wrong CSRF token");
    let (s, _) = call(
        "POST",
        &e.anon_url("/api/federation/keys"),
        &[ck, ("x-csrf-token", &csrf)],
        body,
    );
    assert_eq!(s, 201);
    // Even with the token, a page of another origin (say a peer's, on another port of the same
    // host, where the cookie goes too) cannot change anything.
    let other_port = format!("http://127.0.0.1:{}", e.port + 1);
    let (s, _) = call(
        "POST",
        &e.anon_url("/api/federation/keys"),
        &[ck, ("x-csrf-token", &csrf), ("origin", &other_port)],
        body,
    );
    assert_eq!(s, 403, "cross-origin change");
    let (s, _) = call(
        "POST",
        &e.anon_url("/api/federation/keys"),
        &[ck, ("x-csrf-token", &csrf), ("origin", &e.url(""))],
        body,
    );
    assert_eq!(s, 201, "from its own page");

    // Basic credentials need no CSRF token, but a browser page of another origin gets nowhere.
    let (s, _) = call(
        "POST",
        &e.url("/api/federation/keys"),
        &[("origin", "http://evil.example")],
        body,
    );
    assert_eq!(s, 403);
    let (s, _) = call(
        "POST",
        &e.url("/api/federation/keys"),
        &[("origin", &e.url(""))],
        body,
    );
    assert_eq!(s, 201);

    // Logging in again with a session cookie still set needs no CSRF token (the password is
    // the proof), and starts another session.
    let again = format!(r#"{{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}"#);
    let (s, _) = call("POST", &e.anon_url("/api/session"), &[ck], Some(&again));
    assert_eq!(s, 200);
    let (s, _) = call("DELETE", &e.anon_url("/api/session"), &[ck], None);
    assert_eq!(s, 403, "logging out is a change too");
    let (s, r) = call(
        "DELETE",
        &e.anon_url("/api/session"),
        &[ck, ("x-csrf-token", &csrf)],
        None,
    );
    assert_eq!(s, 204);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    let (s, _) = call("GET", &e.anon_url("/api/cameras"), &[ck], None);
    assert_eq!(s, 401, "the session ended");
}

#[test]
fn wrong_passwords_are_throttled_and_hashes_never_leave() {
    let e = Eyrie::start("", &["--demo"]);
    let bad = r#"{"username": "admin", "password": "wrong-password"}"#;
    let (s, r) = call("POST", &e.anon_url("/api/session"), &[], Some(bad));
    assert_eq!(s, 401);
    assert!(json(r)["error"].is_string());
    let (s, _) = call(
        "POST",
        &e.anon_url("/api/session"),
        &[],
        Some(r#"{"username": "nobody", "password": "wrong-password"}"#),
    );
    assert_eq!(s, 401);

    // Hashes: not in any answer, and the password itself is nowhere in the database.
    for p in [
        "/api/session",
        "/api/health",
        "/api/cameras",
        "/api/federation/keys",
        "/api/system/nodes",
    ] {
        let v = e.get(p).to_string();
        assert!(
            !v.contains("argon2") && !v.contains(ADMIN_PASSWORD),
            "{p}: {v}"
        );
    }
    let db = std::fs::read(e.dir.join("data/eyrie.redb")).unwrap();
    let has = |needle: &[u8]| db.windows(needle.len()).any(|w| w == needle);
    assert!(!has(ADMIN_PASSWORD.as_bytes()), "password stored in clear");
    assert!(has(b"$argon2id$"), "stored as an argon2id hash");

    // Three more failures (five in all) and even the right password is refused for a while,
    // by the login form and by Basic credentials alike.
    for _ in 0..3 {
        assert_eq!(
            call("POST", &e.anon_url("/api/session"), &[], Some(bad)).0,
            401
        );
    }
    let good = format!(r#"{{"username": "admin", "password": "{ADMIN_PASSWORD}"}}"#);
    let (s, r) = call("POST", &e.anon_url("/api/session"), &[], Some(&good));
    assert_eq!(s, 429);
    assert!(json(r)["error"].as_str().unwrap().contains("try again"));
    let fresh = e.url("/api/health").replace(ADMIN_PASSWORD, "another-one");
    assert_eq!(call("GET", &fresh, &[], None).0, 429);
    // An already verified Basic login keeps working (its check is cached).
    assert_eq!(e.request("GET", "/api/health", None).0, 200);
}

#[test]
fn a_password_change_ends_other_sessions_and_old_credentials() {
    let e = Eyrie::start("", &[]);
    let (mine, csrf) = login(&e, ADMIN_USER, ADMIN_PASSWORD);
    let (other, _) = login(&e, ADMIN_USER, ADMIN_PASSWORD);
    let change = |current: &str, new: &str| {
        call(
            "PUT",
            &e.anon_url("/api/account/password"),
            &[("cookie", &mine), ("x-csrf-token", &csrf)],
            Some(&format!(
                r#"{{"current_password": "{current}", "new_password": "{new}"}}"#
            )),
        )
    };
    let (s, r) = change(ADMIN_PASSWORD, "short");
    assert_eq!(s, 400, "{}", json(r));
    let (s, r) = change("not-the-password", "a-new-password");
    assert_eq!(s, 403, "{}", json(r));
    let (s, _) = change(ADMIN_PASSWORD, "a-new-password");
    assert_eq!(s, 204);
    assert_eq!(
        call(
            "GET",
            &e.anon_url("/api/cameras"),
            &[("cookie", &mine)],
            None
        )
        .0,
        200
    );
    assert_eq!(
        call(
            "GET",
            &e.anon_url("/api/cameras"),
            &[("cookie", &other)],
            None
        )
        .0,
        401
    );
    assert_eq!(
        call("GET", &e.url("/api/cameras"), &[], None).0,
        401,
        "old Basic password"
    );
    login(&e, ADMIN_USER, "a-new-password");
}

#[test]
fn first_start_without_a_password_prints_a_one_time_setup_link() {
    let e = Eyrie::start("[auth]\n", &[]);
    let (_, r) = call("GET", &e.anon_url("/api/session"), &[], None);
    assert_eq!(json(r)["setup_required"], true);
    let log = e.log();
    let secret = log
        .split("/#/setup/")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no setup link in the log:\n{log}"))
        .to_string();
    let setup = |token: &str, user: &str| {
        call(
            "POST",
            &e.anon_url("/api/setup"),
            &[],
            Some(&format!(
                r#"{{"token": "{token}", "username": "{user}", "password": "first-password"}}"#
            )),
        )
    };
    assert_eq!(setup("0badc0de", "owner").0, 403);
    let (s, r) = setup(&secret, "bad name!");
    assert_eq!(s, 400, "{}", json(r));
    let (s, r) = setup(&secret, "owner");
    assert!(r.header("set-cookie").unwrap().contains("HttpOnly"));
    assert_eq!(s, 200);
    assert_eq!(setup(&secret, "second").0, 403, "the link works once");
    let (_, r) = call("GET", &e.anon_url("/api/session"), &[], None);
    assert_eq!(json(r)["setup_required"], false);
    login(&e, "owner", "first-password");
}

#[test]
fn over_https_the_session_cookie_is_secure() {
    if !tools::require(&["python3"]) {
        return;
    }
    let tls_port = free_port();
    let e = Eyrie::start(
        &format!("[http]\ntls_listen = \"127.0.0.1:{tls_port}\"\n"),
        &[],
    );
    // python3's http.client as the HTTPS client (the certificate is the node's self-signed one).
    let script = format!(
        r#"
import http.client, json, ssl
c = http.client.HTTPSConnection("127.0.0.1", {tls_port}, context=ssl._create_unverified_context(), timeout=15)
c.request("POST", "/api/session", json.dumps({{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}), {{"content-type": "application/json"}})
r = c.getresponse()
print(r.status, r.getheader("set-cookie"))
"#
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("200 "),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("; Secure"), "{text}");
    // Over plain HTTP it cannot be Secure (the browser would never send it back).
    let (_, plain) = login_cookie_header(&e);
    assert!(!plain.contains("Secure"), "{plain}");
}

fn login_cookie_header(e: &Eyrie) -> (u16, String) {
    let body = format!(r#"{{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}"#);
    let (s, r) = call("POST", &e.anon_url("/api/session"), &[], Some(&body));
    (s, r.header("set-cookie").unwrap_or("").to_string())
}

#[test]
fn a_media_token_opens_media_only_and_bad_tokens_never_crash() {
    let mut e = Eyrie::start("", &["--demo"]);
    // A camera whose id looks like a media path's last part.
    e.add_camera(r#"{"id": "live", "name": "Live", "source": "rtsp://127.0.0.1:9/x"}"#);
    for (method, path) in [
        ("GET", "/api/cameras/live?token=1.ab"),
        ("PUT", "/api/cameras/live?token=1.ab"),
        (
            "DELETE",
            "/api/cameras/live?keep_recordings=false&token=1.ab",
        ),
        ("POST", "/api/cameras/demo/live?token=1.ab"),
    ] {
        let body = (method == "PUT").then_some(r#"{"enabled": false}"#);
        let (s, r) = call(method, &e.anon_url(path), &[], body);
        assert_eq!(s, 401, "{method} {path}: {}", json(r));
    }
    assert_eq!(
        e.get("/api/cameras/live")["enabled"],
        true,
        "nothing changed"
    );

    // Tokens that are not hex, in every way one can be wrong: 401, and the node stays up.
    let far = "99999999999";
    for mac in [
        format!("a\u{e9}{}", "0".repeat(61)),
        format!("+f{}", "0".repeat(62)),
        "\u{1F600}".repeat(16),
        "0".repeat(63),
    ] {
        let token: String =
            url::form_urlencoded::byte_serialize(format!("{far}.{mac}").as_bytes()).collect();
        for path in [
            format!("/api/cameras/demo/live?token={token}"),
            format!("/api/segments/1.mp4?token={token}"),
        ] {
            let (s, _) = call("GET", &e.anon_url(&path), &[], None);
            assert_eq!(s, 401, "{path}");
        }
    }
    assert!(e.alive(), "still up");
    assert_eq!(e.get("/api/health")["cameras"].as_array().unwrap().len(), 2);
}

#[test]
fn guesses_sent_at_once_are_throttled_like_one_by_one() {
    let e = Eyrie::start("", &[]);
    let url = e.anon_url("/api/session");
    let bad = r#"{"username": "admin", "password": "wrong-password"}"#;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| s.spawn(|| call("POST", &url, &[], Some(bad)).0))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (5, 15), "{statuses:?}");
    // And the right password, sent now, waits out the minute too.
    let good = format!(r#"{{"username": "admin", "password": "{ADMIN_PASSWORD}"}}"#);
    assert_eq!(call("POST", &url, &[], Some(&good)).0, 429);
}
