//! Federation keys over real HTTP: shown once, stored hashed, read-only, revocable, throttled.

mod common;

use common::*;

fn with_key(e: &Eyrie, method: &str, path: &str, header: (&str, &str)) -> u16 {
    let req = ureq::request(method, &e.url(path)).set(header.0, header.1);
    match req.call() {
        Ok(r) => r.status(),
        Err(ureq::Error::Status(s, _)) => s,
        Err(err) => panic!("{method} {path}: {err}"),
    }
}

#[test]
fn a_federation_key_reads_only_and_stops_working_when_revoked() {
    let e = Eyrie::start("", &["--demo"]);
    let (s, created) = e.request(
        "POST",
        "/api/federation/keys",
        Some(r#"{"name": "garage box"}"#),
    );
    assert_eq!(s, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(key.len(), 64);

    // Shown once: the listing has no secret, and the database holds only its hash.
    let listed = e.get("/api/federation/keys");
    assert_eq!(listed[0]["name"], "garage box");
    assert!(!listed.to_string().contains(&key));
    let db = std::fs::read(e.dir.join("data/eyrie.redb")).unwrap();
    assert!(
        !db.windows(key.len()).any(|w| w == key.as_bytes()),
        "the key is stored in clear"
    );

    for h in [
        ("X-NVR-Auth", key.clone()),
        ("Authorization", format!("Bearer {key}")),
    ] {
        let h = (h.0, h.1.as_str());
        assert_eq!(with_key(&e, "GET", "/api/cameras", h), 200);
        assert_eq!(with_key(&e, "GET", "/api/health", h), 200);
        assert_eq!(with_key(&e, "GET", "/api/recordings?camera=demo", h), 200);
        // Nothing admin.
        assert_eq!(with_key(&e, "POST", "/api/cameras", h), 403);
        assert_eq!(
            with_key(&e, "DELETE", "/api/cameras/demo?keep_recordings=true", h),
            403
        );
        assert_eq!(with_key(&e, "GET", "/api/federation/keys", h), 403);
    }
    let used = e.get("/api/federation/keys");
    assert!(used[0]["last_used"].is_string(), "{used}");

    // A wrong key is 401 even on routes open without one.
    assert_eq!(
        with_key(&e, "GET", "/api/cameras", ("X-NVR-Auth", "0123")),
        401
    );
    assert_eq!(
        e.request("DELETE", &format!("/api/federation/keys/{id}"), None)
            .0,
        204
    );
    assert_eq!(
        with_key(&e, "GET", "/api/cameras", ("X-NVR-Auth", &key)),
        401
    );
    assert_eq!(
        e.request("DELETE", &format!("/api/federation/keys/{id}"), None)
            .0,
        404
    );

    // The address has now failed twice; three more and even a good key is refused for a while.
    let (_, fresh) = e.request("POST", "/api/federation/keys", Some(r#"{"name": "b"}"#));
    for _ in 0..3 {
        assert_eq!(
            with_key(&e, "GET", "/api/health", ("X-NVR-Auth", "bad")),
            401
        );
    }
    let good = fresh["key"].as_str().unwrap();
    assert_eq!(
        with_key(&e, "GET", "/api/health", ("X-NVR-Auth", good)),
        429
    );
    // Requests without a key are not affected.
    assert_eq!(e.request("GET", "/api/health", None).0, 200);
    assert_eq!(
        e.request("POST", "/api/federation/keys", Some(r#"{"name": ""}"#))
            .0,
        400
    );
}
