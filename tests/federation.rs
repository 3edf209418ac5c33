//! Federation keys over real HTTP: shown once, stored hashed, read-only, revocable, throttled.

mod support;

use std::time::Duration;

use support::*;

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
    // A peer never learns where a camera is, from the list or from one camera.
    for path in ["/api/cameras", "/api/cameras/demo"] {
        let seen = ureq::get(&e.anon_url(path))
            .set("X-NVR-Auth", &key)
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(!seen.contains("\"source\""), "{path}: {seen}");
    }

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

const FAST_POLL: &str = "[federation]\npoll_interval_seconds = 1\nrequest_timeout_seconds = 2\n";

fn node(label: &str) -> Eyrie {
    Eyrie::start(
        &format!("{FAST_POLL}[node]\nlabel = \"{label}\"\n"),
        &["--demo"],
    )
}

fn issue_key(on: &Eyrie, name: &str) -> String {
    let (s, v) = on.request(
        "POST",
        "/api/federation/keys",
        Some(&format!(r#"{{"name": "{name}"}}"#)),
    );
    assert_eq!(s, 201, "{v}");
    v["key"].as_str().unwrap().to_string()
}

fn link(from: &Eyrie, to: &Eyrie, label: &str) -> String {
    let key = issue_key(to, "peer");
    let body = format!(
        r#"{{"label": "{label}", "url": "{}", "key": "{key}"}}"#,
        to.url("")
    );
    let (s, v) = from.request("POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["has_key"], true);
    assert!(!v.to_string().contains(&key), "the key is write-only");
    v["id"].as_str().unwrap().to_string()
}

fn cameras(e: &Eyrie) -> Vec<serde_json::Value> {
    e.get("/api/cameras").as_array().unwrap().clone()
}

/// The first remote camera `e` lists with a live URL, once it does (within 20 s).
fn remote_camera_with_live_url(e: &Eyrie) -> serde_json::Value {
    let find = || {
        cameras(e)
            .into_iter()
            .find(|c| c["remote"] == true && c["live_url"].is_string())
    };
    e.wait_until(
        "lists a remote camera with a live URL",
        Duration::from_secs(20),
        || find().is_some(),
    );
    find().unwrap()
}

fn timed_get(e: &Eyrie, path: &str) -> (serde_json::Value, Duration) {
    let started = std::time::Instant::now();
    let v = e.get(path);
    (v, started.elapsed())
}

#[test]
fn three_nodes_one_view_without_loops_and_bad_peers_cannot_slow_it() {
    let a = node("House");
    let b = node("Shop");
    let mut c = node("Garage");
    link(&a, &b, "Shop");
    let c_id = link(&a, &c, "Garage");
    link(&b, &a, "House"); // both ways: must not loop

    a.wait_until(
        "lists the cameras of all three nodes",
        Duration::from_secs(20),
        || cameras(&a).len() == 3,
    );
    let cams = cameras(&a);
    let mut labels: Vec<&str> = cams
        .iter()
        .map(|c| c["node_label"].as_str().unwrap())
        .collect();
    labels.sort();
    assert_eq!(labels, ["Garage", "House", "Shop"]);
    for cam in cams.iter().filter(|c| c["remote"] == true) {
        assert!(cam["id"].as_str().unwrap().starts_with("r-"));
        assert!(!cam["id"].as_str().unwrap().contains('_'));
        assert_eq!(cam["online"], true);
        assert!(
            cam.get("source").is_none(),
            "peers never share camera addresses: {cam}"
        );
    }
    // B reads A, which reads B: B sees its own camera once and A's once, nothing nested.
    b.wait_until("lists its camera and A's", Duration::from_secs(20), || {
        cameras(&b).len() == 2
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(cameras(&b).len(), 2, "{:?}", cameras(&b));
    // Peers asking for local scope get only local cameras.
    assert_eq!(
        a.get("/api/cameras?scope=local").as_array().unwrap().len(),
        1
    );

    // Health: one entry per peer with its numbers.
    let health = a.get("/api/health");
    assert_eq!(health["label"], "House");
    let nodes = health["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2);
    for n in nodes {
        assert_eq!(n["reachable"], true, "{n}");
        assert_eq!(n["cameras_total"], 1);
        assert!(n["disk_total_bytes"].as_u64().unwrap() > 0);
        assert_eq!(n["version"], health["version"]);
    }

    // Misbehaving peers: silent, invalid JSON, endless body; and a dead one.
    let silent = FakePeer::start(|_, _| Reply::Silent);
    let garbage = FakePeer::start(|_, _| Reply::Body(200, "{nope".into()));
    let endless = FakePeer::start(|_, _| Reply::Endless);
    for (label, peer) in [
        ("silent", &silent),
        ("garbage", &garbage),
        ("endless", &endless),
    ] {
        let body = format!(
            r#"{{"label": "{label}", "url": "{}", "key": "k"}}"#,
            peer.url()
        );
        assert_eq!(a.request("POST", "/api/system/nodes", Some(&body)).0, 201);
    }
    c.kill9();
    a.wait_until("marks the garage offline", Duration::from_secs(20), || {
        a.get(&format!("/api/system/nodes/{c_id}"))["status"]["online"] == false
    });
    for _ in 0..10 {
        let (cams, took) = timed_get(&a, "/api/cameras");
        assert!(
            took < Duration::from_millis(1000),
            "/api/cameras took {took:?}"
        );
        assert_eq!(
            cams.as_array().unwrap().len(),
            3,
            "the dead node's camera stays, offline"
        );
        let (_, took) = timed_get(&a, "/api/health");
        assert!(
            took < Duration::from_millis(1000),
            "/api/health took {took:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let garage = cameras(&a)
        .into_iter()
        .find(|c| c["node_label"] == "Garage")
        .unwrap();
    assert_eq!(garage["online"], false);
    assert_eq!(garage["status"]["state"], "offline");
    let nodes = a.get("/api/system/nodes");
    for n in nodes.as_array().unwrap() {
        let label = n["label"].as_str().unwrap();
        if ["silent", "garbage", "endless", "Garage"].contains(&label) {
            assert_eq!(n["status"]["online"], false, "{n}");
            assert!(n["status"]["last_error"].is_string(), "{n}");
        }
    }
    let errors: Vec<String> = nodes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| format!("{}: {}", n["label"], n["status"]["last_error"]))
        .collect();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("endless") && e.contains("larger than")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("garbage") && e.contains("not what was expected")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.contains("silent") && e.contains("within")),
        "{errors:?}"
    );
}

#[test]
fn a_node_test_checks_reachability_key_and_self() {
    let a = node("A");
    let b = node("B");
    let key = issue_key(&b, "a");
    let test = |url: &str, key: &str| {
        let (s, v) = a.request(
            "POST",
            "/api/system/nodes/test",
            Some(&format!(r#"{{"url": "{url}", "key": "{key}"}}"#)),
        );
        assert_eq!(s, 200, "{v}");
        v
    };
    let ok = test(&b.url(""), &key);
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["cameras"], 1);
    let wrong = test(&b.url(""), "wrong");
    assert_eq!(
        (wrong["reachable"].clone(), wrong["key_accepted"].clone()),
        (true.into(), false.into()),
        "{wrong}"
    );
    let me = test(&a.url(""), &issue_key(&a, "self"));
    assert_eq!(me["is_self"], true, "{me}");
    let closed = test(&format!("http://127.0.0.1:{}", free_port()), "k");
    assert_eq!(closed["reachable"], false, "{closed}");
    // Bad input to the node API.
    for body in [
        r#"{"url": "ftp://x"}"#,
        r#"{"url": "http://u:p@x"}"#,
        r#"{"url": "http://x/?a=1"}"#,
        r#"{"label": "x"}"#,
        r#"{"url": "http://x", "tls_pin": "12"}"#,
        r#"{"url": "http://x", "kind": "zoneminder"}"#,
    ] {
        let (s, v) = a.request("POST", "/api/system/nodes", Some(body));
        assert!(s == 400 || s == 422, "{body}: {s} {v}");
    }
    assert_eq!(a.request("GET", "/api/system/nodes/../../x", None).0, 404);
    assert_eq!(
        a.request("DELETE", "/api/system/nodes/0123456789ab", None)
            .0,
        404
    );
}

#[test]
fn a_cartanvr_peer_is_read_with_its_own_calls() {
    let carta = FakePeer::start(|path, key| {
        if key != Some("0123456789abcdef0123456789abcdef") {
            return Reply::Body(401, r#"{"error":"Unauthorized"}"#.into());
        }
        match path {
            "/api/cameras" => Reply::Body(
                200,
                r#"[{"id": 3, "name": "Driveway", "ip_address": "10.0.0.3", "rtsp_url": "rtsp://admin:pw@10.0.0.3/",
                     "storage_id": 1, "is_hevc": 1, "enabled": 1, "stream_method": "dash", "has_audio": 0},
                    {"id": "remote_2_5", "name": "Elsewhere", "isRemote": true, "enabled": 1}]"#
                    .into(),
            ),
            "/api/maintenance/health" => Reply::Body(
                200,
                r#"{"status": "healthy", "components": {"recordingsDir": "ok", "ffmpeg": "ok", "database": "ok"}, "remote_nodes": []}"#.into(),
            ),
            p if p.starts_with("/api/playback/cam_3?") => {
                let ts = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis()
                    - 120_000;
                Reply::Body(
                    200,
                    format!(
                        r#"[{{"file": "/api/recordings/cam_3/2024-05-01T10-00-00.mp4", "timestamp": {ts}, "duration": 60.5}},
                            {{"file": "https://elsewhere.example/x.mp4", "timestamp": {ts}, "duration": 1}}]"#
                    ),
                )
            }
            // A hostile peer answers media with a page: relayed, it must not run as one.
            "/api/recordings/cam_3/2024-05-01T10-00-00.mp4" => {
                Reply::Typed(200, "text/html", "<script>steal()</script>".into())
            }
            _ => Reply::Body(404, "{}".into()),
        }
    });
    let a = node("A");
    let body = format!(
        r#"{{"label": "Carta", "url": "{}", "key": "0123456789abcdef0123456789abcdef", "kind": "cartanvr"}}"#,
        carta.url()
    );
    let (s, v) = a.request("POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    a.wait_until("lists the CartaNVR camera", Duration::from_secs(20), || {
        cameras(&a).len() == 2
    });
    let cam = cameras(&a)
        .into_iter()
        .find(|c| c["remote"] == true)
        .unwrap();
    assert_eq!(cam["name"], "Driveway");
    assert_eq!(cam["node_label"], "Carta");
    assert_eq!(cam["codec"], "h265");
    assert!(!cam.to_string().contains("admin:pw"), "{cam}");
    let health = a.get("/api/health");
    assert_eq!(health["nodes"][0]["status"], "healthy");
    assert_eq!(
        health["nodes"][0]["cameras_total"], 1,
        "its aggregated cameras are not counted"
    );

    // Its recordings are searched with its playback call, and its files reach the browser
    // through this node (fetching them needs the key, which never leaves this node).
    let id = cam["id"].as_str().unwrap();
    let rec = a.get(&format!("/api/recordings?camera={id}"));
    let segs = rec["segments"].as_array().unwrap();
    assert_eq!(segs.len(), 1, "only files on the node itself: {rec}");
    let url = segs[0]["url"].as_str().unwrap();
    let node_id = cam["node_id"].as_str().unwrap();
    assert_eq!(
        url,
        format!("/api/system/nodes/{node_id}/media/recordings/cam_3/2024-05-01T10-00-00.mp4")
    );
    assert_eq!(segs[0]["duration_s"], 60.5);
    let got = ureq::get(&a.url(url)).call().unwrap();
    assert_eq!(got.content_type(), "application/octet-stream");
    assert!(
        got.header("content-security-policy")
            .is_some_and(|c| c.starts_with("sandbox")),
        "served sandboxed"
    );
    assert_eq!(got.into_string().unwrap(), "<script>steal()</script>");
    let all = a.get("/api/recordings?camera=all");
    assert!(
        all["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["camera"] == id && r["node_label"] == "Carta"),
        "{all}"
    );
}

#[test]
fn relay_mode_streams_a_peers_media_through_this_node() {
    let a = node("A");
    let b = node("B");
    let b_id = link(&a, &b, "B");
    let (s, v) = a.request(
        "PUT",
        &format!("/api/system/nodes/{b_id}"),
        Some(r#"{"media_mode": "relay"}"#),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["media_mode"], "relay");
    let relay = format!("/api/system/nodes/{b_id}/media");
    let remote = remote_camera_with_live_url(&a);
    assert_eq!(remote["live_url"], format!("{relay}/cameras/demo/live"));
    let resp = ureq::get(&a.url(remote["live_url"].as_str().unwrap()))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap();
    assert_eq!(resp.content_type(), "video/mp4");
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut resp.into_reader(), &mut first).unwrap();
    assert_eq!(&first[4..8], b"ftyp");

    // Recordings: relayed URLs, no token; byte ranges pass through; the result decodes.
    let cam = remote["id"].as_str().unwrap();
    a.wait_until("finds B's closed segments", Duration::from_secs(30), || {
        a.get(&format!("/api/recordings?camera={cam}"))["segments"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    });
    let rec = a.get(&format!("/api/recordings?camera={cam}"));
    let seg = rec["segments"][0]["url"].as_str().unwrap().to_string();
    assert!(seg.starts_with(&format!("{relay}/segments/")), "{seg}");
    assert!(!rec.to_string().contains("token="), "{rec}");
    let part = ureq::get(&a.url(&seg))
        .set("Range", "bytes=0-99")
        .call()
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(
        part.header("content-range")
            .unwrap()
            .starts_with("bytes 0-99/")
    );
    assert_eq!(read_all(part.into_reader()).len(), 100);
    let run_url = rec["runs"][0]["url"].as_str().unwrap();
    assert!(
        run_url.starts_with(&format!("{relay}/recordings/demo/view.mp4?start=")),
        "{run_url}"
    );
    if tools::require(&["ffmpeg"]) {
        let file = a.download(run_url, "relayed.mp4");
        assert_decodes(&file);
    }

    // Only media is relayed, only to this node's own users, only for known nodes.
    assert_eq!(
        status_of(&a.url(&format!("{relay}/federation/keys"))).0,
        400
    );
    assert_eq!(
        status_of(&a.url(&format!("{relay}/segments/..%2F..%2Feyrie.redb"))).0,
        400
    );
    assert_eq!(
        status_of(&a.url("/api/system/nodes/000000000000/media/segments/1.mp4")).0,
        404
    );
    let key = issue_key(&a, "someone");
    assert_eq!(
        with_key(
            &a,
            "GET",
            &format!("{relay}/segments/1.mp4"),
            ("X-NVR-Auth", &key)
        ),
        403
    );
    assert!(a.get("/api/health")["node_id"].is_string(), "still up");
}

fn status_of(url: &str) -> (u16, Option<String>) {
    match ureq::get(url).timeout(Duration::from_secs(10)).call() {
        Ok(r) => (
            r.status(),
            r.header("access-control-allow-origin").map(str::to_string),
        ),
        Err(ureq::Error::Status(s, r)) => (
            s,
            r.header("access-control-allow-origin").map(str::to_string),
        ),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

#[test]
fn media_plays_straight_from_the_peer_with_tokens_and_search_spans_nodes() {
    let a = node("A");
    let b = node("B");
    let b_id = link(&a, &b, "B");
    let remote = remote_camera_with_live_url(&a);
    let live = remote["live_url"].as_str().unwrap().to_string();
    assert!(
        live.starts_with(&format!("{}/api/cameras/demo/live?token=", b.url(""))),
        "{live}"
    );
    // The browser fetches it from B with no key: allowed, from any origin, without credentials.
    let resp = ureq::get(&live)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap();
    assert_eq!(resp.content_type(), "video/mp4");
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let mut first = [0u8; 8];
    std::io::Read::read_exact(&mut resp.into_reader(), &mut first).unwrap();
    assert_eq!(&first[4..8], b"ftyp");
    // Forged, or for another camera or kind: 401.
    // (The last character changed: to "1" where it is "0", so the forgery never equals it.)
    let last = if live.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &live[..live.len() - 1]);
    assert_eq!(status_of(&forged).0, 401);
    let token = live.split("token=").nth(1).unwrap();
    // Expired (an expiry in the past, whatever the MAC): 401.
    let (_, mac) = token.split_once('.').unwrap();
    assert_eq!(
        status_of(&b.url(&format!("/api/cameras/demo/live?token=1000000000.{mac}"))).0,
        401
    );
    assert_eq!(
        status_of(&b.url(&format!("/api/recordings/demo/view.mp4?token={token}"))).0,
        401
    );
    assert_eq!(
        status_of(&b.url(&format!("/api/cameras/other/live?token={token}"))).0,
        401
    );
    assert_eq!(
        status_of(&b.url(&format!("/api/health?token={token}"))).0,
        401
    );

    // Recordings of B's camera, asked on A: answered by B, URLs absolute with B's tokens.
    let cam = remote["id"].as_str().unwrap();
    a.wait_until("finds B's recordings", Duration::from_secs(20), || {
        a.get(&format!("/api/recordings?camera={cam}"))["runs"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });
    let rec = a.get(&format!("/api/recordings?camera={cam}"));
    assert_eq!(rec["node_label"], "B");
    let run_url = rec["runs"][0]["url"].as_str().unwrap().to_string();
    assert!(
        run_url.starts_with(&format!("{}/api/recordings/demo/view.mp4?", b.url("")))
            && run_url.contains("token="),
        "{run_url}"
    );
    let (status, cors) = status_of(&run_url);
    assert_eq!((status, cors.as_deref()), (200, Some("*")));
    if tools::require(&["ffmpeg"]) {
        let resp = ureq::get(&run_url).call().unwrap();
        let file = a.dir.join("remote-view.mp4");
        std::io::copy(
            &mut resp.into_reader(),
            &mut std::fs::File::create(&file).unwrap(),
        )
        .unwrap();
        assert_decodes(&file);
    }

    // Every node at once, merged in time order; a dead node is reported beside the results.
    let dead = FakePeer::start(|_, _| Reply::Silent);
    let body = format!(
        r#"{{"label": "dead", "url": "{}", "key": "k"}}"#,
        dead.url()
    );
    assert_eq!(a.request("POST", "/api/system/nodes", Some(&body)).0, 201);
    let all = a.get("/api/recordings?camera=all");
    let runs = all["runs"].as_array().unwrap();
    let mut labels: Vec<&str> = runs
        .iter()
        .map(|r| r["node_label"].as_str().unwrap())
        .collect();
    labels.dedup();
    labels.sort();
    labels.dedup();
    assert_eq!(labels, ["A", "B"], "{all}");
    let starts: Vec<i64> = runs
        .iter()
        .map(|r| r["start_ms"].as_i64().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
    assert!(runs.iter().any(|r| r["camera"] == format!("r-{b_id}-demo")));
    let errors = all["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["node_label"], "dead");
}

#[test]
fn eyrie_answers_the_calls_a_cartanvr_node_makes() {
    let e = Eyrie::start(
        &format!("{FAST_POLL}[recording]\nsegment_seconds = 10\n"),
        &["--demo"],
    );
    let key = issue_key(&e, "carta");
    let carta_get = |path: &str| -> (u16, serde_json::Value) {
        match ureq::get(&e.url(path)).set("X-NVR-Auth", &key).call() {
            Ok(r) => (r.status(), r.into_json().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_json().unwrap_or_default()),
            Err(err) => panic!("{path}: {err}"),
        }
    };
    let (s, cams) = carta_get("/api/cameras");
    assert_eq!(s, 200);
    let row = &cams[0];
    assert_eq!(row["id"], "demo");
    assert_eq!(row["name"], "Demo camera");
    assert_eq!(
        (
            row["enabled"].clone(),
            row["is_hevc"].clone(),
            row["has_audio"].clone()
        ),
        (true.into(), false.into(), false.into())
    );
    assert!(
        row.get("source").is_none() && row.get("rtsp_url").is_none(),
        "{row}"
    );
    e.wait_until("closes a segment", Duration::from_secs(40), || {
        !e.closed_segments("demo").is_empty()
    });
    let (s, h) = carta_get("/api/maintenance/health");
    assert_eq!(s, 200);
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["components"]["database"], "ok");
    assert!(h["remote_nodes"].as_array().unwrap().is_empty());

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let (s, files) = carta_get(&format!(
        "/api/playback/cam_demo?start={}&end={now}",
        now - 3_600_000
    ));
    assert_eq!(s, 200, "{files}");
    let first = &files[0];
    let file = first["file"].as_str().unwrap();
    assert!(
        file.starts_with("/api/recordings/demo/") && !file.contains('?'),
        "{file}"
    );
    assert!(first["timestamp"].as_i64().unwrap() > 0);
    assert!(
        (first["duration"].as_f64().unwrap() - 10.0).abs() < 1.5,
        "{first}"
    );
    // The CartaNVR browser loads {node.url}{file}?api_key=<key>: the path's own token opens it.
    let url = format!("{}{file}?api_key={key}", e.url(""));
    let resp = ureq::get(&url).call().unwrap();
    assert_eq!(resp.content_type(), "video/mp4");
    if tools::require(&["ffmpeg"]) {
        let out = e.dir.join("carta.mp4");
        std::io::copy(
            &mut resp.into_reader(),
            &mut std::fs::File::create(&out).unwrap(),
        )
        .unwrap();
        assert_decodes(&out);
    }
    let forged = url.replacen(".mp4", "0.mp4", 1);
    assert_eq!(status_of(&forged).0, 401);
    // Date strings work too; a wrong key is refused.
    let (s, _) = carta_get("/api/playback/cam_demo?start=2020-01-01&end=2099-01-01");
    assert_eq!(s, 400, "more than 31 days");
    let wrong = ureq::get(&e.url("/api/maintenance/health"))
        .set("X-NVR-Auth", "nope")
        .call();
    assert!(matches!(wrong, Err(ureq::Error::Status(401, _))));
}

#[test]
fn https_peers_are_pinned_on_first_use_and_a_changed_certificate_is_refused() {
    let tls_port = free_port();
    let b = Eyrie::start(
        &format!(
            "{FAST_POLL}[node]\nlabel = \"B\"\n[http]\ntls_listen = \"127.0.0.1:{tls_port}\"\n"
        ),
        &["--demo"],
    );
    let fingerprint = b.get("/api/health")["tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(fingerprint.len(), 64);
    let a = node("A");
    let key = issue_key(&b, "a");
    let url = format!("https://127.0.0.1:{tls_port}");
    // The test shows the certificate the admin is about to trust.
    let (_, test) = a.request(
        "POST",
        "/api/system/nodes/test",
        Some(&format!(r#"{{"url": "{url}", "key": "{key}"}}"#)),
    );
    assert_eq!(test["ok"], true, "{test}");
    assert_eq!(test["tls_fingerprint"], fingerprint.as_str());
    let (s, node) = a.request(
        "POST",
        "/api/system/nodes",
        Some(&format!(
            r#"{{"label": "B", "url": "{url}", "key": "{key}"}}"#
        )),
    );
    assert_eq!(s, 201, "{node}");
    let id = node["id"].as_str().unwrap().to_string();
    a.wait_until(
        "pins B's certificate and lists its camera",
        Duration::from_secs(20),
        || {
            let n = a.get(&format!("/api/system/nodes/{id}"));
            n["tls_pin"] == fingerprint.as_str() && n["status"]["online"] == true
        },
    );
    assert!(cameras(&a).iter().any(|c| c["node_label"] == "B"));
    // Another certificate (as after a swap or a man in the middle): refused, never accepted.
    let other = "ab".repeat(32);
    let (s, _) = a.request(
        "PUT",
        &format!("/api/system/nodes/{id}"),
        Some(&format!(r#"{{"tls_pin": "{other}"}}"#)),
    );
    assert_eq!(s, 200);
    a.wait_until(
        "refuses the unpinned certificate",
        Duration::from_secs(20),
        || {
            let n = a.get(&format!("/api/system/nodes/{id}"));
            n["status"]["online"] == false
                && n["status"]["last_error"]
                    .as_str()
                    .is_some_and(|e| e.contains("pinned"))
        },
    );
    // Plain HTTP keeps working beside HTTPS.
    assert_eq!(b.request("GET", "/api/health", None).0, 200);
}

/// `(status, Access-Control-Allow-Origin, Access-Control-Allow-Credentials)` of a request
/// carrying `Origin: origin` and `headers`.
fn cors_call(
    e: &Eyrie,
    method: &str,
    path: &str,
    origin: &str,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, Option<String>) {
    let mut req = ureq::request(method, &e.url(path)).set("Origin", origin);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(err) => panic!("{method} {path}: {err}"),
    };
    let h = |n: &str| r.header(n).map(str::to_string);
    (
        r.status(),
        h("access-control-allow-origin"),
        h("access-control-allow-credentials"),
    )
}

#[test]
fn cors_allows_configured_origins_only() {
    let a = Eyrie::start(
        &format!("{FAST_POLL}[http]\ncors_origins = [\"http://ui.example:9000\"]\n"),
        &["--demo"],
    );
    let b = node("B");
    link(&a, &b, "B");
    // B's camera is listed before anything is compared (the poller adds it on its own time).
    remote_camera_with_live_url(&a);
    let b_origin = b.url("");
    let b_origin = b_origin.trim_end_matches('/');
    let preflight = [
        ("Access-Control-Request-Method", "POST"),
        (
            "Access-Control-Request-Headers",
            "content-type, x-csrf-token",
        ),
    ];

    // A configured origin: credentialed, echoed exactly.
    let origin = "http://ui.example:9000";
    let (s, acao, acac) = cors_call(&a, "GET", "/api/cameras", origin, &[]);
    assert_eq!(
        (s, acao.as_deref(), acac.as_deref()),
        (200, Some(origin), Some("true"))
    );
    let (s, acao, acac) = cors_call(&a, "OPTIONS", "/api/cameras", origin, &preflight);
    assert_eq!(
        (s, acao.as_deref(), acac.as_deref()),
        (204, Some(origin), Some("true"))
    );

    // A registered node's pages (they need no credentials here: issue 14, item 5), look-alikes
    // and strangers: no CORS headers, preflight refused, nothing changed.
    let ids =
        || -> Vec<serde_json::Value> { cameras(&a).iter().map(|c| c["id"].clone()).collect() };
    let before = ids();
    for origin in [
        b_origin,
        "http://127.0.0.1.evil.example",
        "http://ui.example:9000.evil.example",
        "http://ui.example:9001",
        "null",
    ] {
        let (s, acao, acac) = cors_call(&a, "GET", "/api/cameras", origin, &[]);
        assert_eq!((s, acao, acac), (200, None, None), "{origin}");
        let (s, acao, acac) = cors_call(&a, "OPTIONS", "/api/cameras", origin, &preflight);
        assert_eq!((s, acao, acac), (403, None, None), "{origin}");
    }
    assert_eq!(ids(), before);

    // Token media may be read from any page, never with credentials.
    let (s, acao, acac) = cors_call(
        &a,
        "OPTIONS",
        "/api/segments/1.mp4?token=1.ab",
        "http://stranger.example",
        &[
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert_eq!((s, acao.as_deref(), acac), (204, Some("*"), None));

    // A bad setting is one clear error naming the key.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("eyrie.toml");
    std::fs::write(&cfg, "[http]\ncors_origins = [\"http://ui.example/app\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .args(["run", "--data"])
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("http.cors_origins"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The first part of a `multipart/x-mixed-replace` picture stream: its JPEG.
fn first_picture(resp: ureq::Response) -> Vec<u8> {
    let ct = resp.content_type().to_string();
    assert_eq!(
        ct,
        "multipart/x-mixed-replace",
        "{:?}",
        resp.header("content-type")
    );
    let mut r = std::io::BufReader::new(resp.into_reader());
    let mut len = None;
    loop {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut r, &mut line).unwrap();
        let line = line.trim_end();
        if let Some(v) = line.strip_prefix("Content-Length: ") {
            len = Some(v.parse::<usize>().unwrap());
        }
        if line.is_empty() && len.is_some() {
            break;
        }
    }
    let mut jpeg = vec![0u8; len.unwrap()];
    std::io::Read::read_exact(&mut r, &mut jpeg).unwrap();
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    jpeg
}

#[test]
fn recorded_mjpeg_replays_from_a_peer_directly_and_through_the_relay() {
    let clips = tempfile::tempdir().unwrap();
    let Some(source) = mjpeg_clip(clips.path()) else {
        return;
    };
    let a = node("A");
    let b = node("B");
    b.add_camera(&format!(
        r#"{{"id": "mj", "name": "MJPEG", "source": "{source}"}}"#
    ));
    let b_id = link(&a, &b, "B");
    let cam = format!("r-{b_id}-mj");
    let run = || {
        a.try_get(&format!("/api/recordings?camera={cam}"))
            .filter(|(s, _)| *s == 200)
            .and_then(|(_, v)| v["runs"].as_array().and_then(|r| r.first().cloned()))
    };
    a.wait_until(
        "lists 3 s of B's MJPEG recording",
        Duration::from_secs(30),
        || {
            run().is_some_and(|r| {
                r["end_ms"].as_i64().unwrap() - r["start_ms"].as_i64().unwrap() >= 3000
            })
        },
    );
    // Directly from B with its media token, as a browser of A fetches it: the run's URL with
    // view.mp4 changed to replay.mjpeg or frame.jpg.
    let r = run().unwrap();
    let url = r["url"].as_str().unwrap();
    assert!(
        url.starts_with(&b.url("")) && url.contains("token="),
        "{url}"
    );
    let replay = url.replace("/view.mp4?", "/replay.mjpeg?");
    let resp = ureq::get(&replay)
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap();
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    first_picture(resp);
    let token = url.split("token=").nth(1).unwrap();
    let at = r["start_ms"].as_i64().unwrap() + 1000;
    let frame = b.anon_url(&format!(
        "/api/recordings/mj/frame.jpg?at={at}&token={token}"
    ));
    let resp = ureq::get(&frame).call().unwrap();
    assert_eq!(resp.content_type(), "image/jpeg");
    // The token is for B's camera "mj" only.
    let other = b.anon_url(&format!(
        "/api/recordings/demo/replay.mjpeg?start={at}&end={}&token={token}",
        at + 1000
    ));
    assert_eq!(status_of(&other).0, 401);

    // Through A's relay: the picture stream and the still pass as what they are.
    let (s, v) = a.request(
        "PUT",
        &format!("/api/system/nodes/{b_id}"),
        Some(r#"{"media_mode": "relay"}"#),
    );
    assert_eq!(s, 200, "{v}");
    let r = run().unwrap();
    let url = r["url"].as_str().unwrap();
    assert!(
        url.starts_with(&format!(
            "/api/system/nodes/{b_id}/media/recordings/mj/view.mp4?"
        )),
        "{url}"
    );
    let resp = ureq::get(&a.url(&url.replace("/view.mp4?", "/replay.mjpeg?")))
        .timeout(Duration::from_secs(10))
        .call()
        .unwrap();
    first_picture(resp);
    let still = format!("/api/system/nodes/{b_id}/media/recordings/mj/frame.jpg?at={at}");
    let resp = ureq::get(&a.url(&still)).call().unwrap();
    assert_eq!(resp.content_type(), "image/jpeg");
    assert!(read_all(resp.into_reader()).starts_with(&[0xFF, 0xD8]));
}

/// A minimal Eyrie peer on a fixed loopback port that can go away (nothing listening, so
/// connections are refused, as when a node is powered off) and come back on the same port.
struct Flapper {
    port: u16,
    stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Flapper {
    fn new() -> Flapper {
        Flapper {
            port: free_port(),
            stop: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn up(&mut self) {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let started = std::time::Instant::now();
        let listener = loop {
            match std::net::TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if started.elapsed() < Duration::from_secs(10) => {
                    eprintln!("binding {}: {e}", self.port);
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("binding {}: {e}", self.port),
            }
        };
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        self.stop = Some(stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16384 {
                    match s.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => break,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let path = head.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = if path.starts_with("/api/health") {
                    (
                        200,
                        r#"{"node_id": "f1a9f1a9f1a9", "version": "0", "cameras": []}"#,
                    )
                } else if path.starts_with("/api/cameras") {
                    (200, "[]")
                } else {
                    (404, "{}")
                };
                let _ = write!(
                    s,
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }

    fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Flapper {
    fn drop(&mut self) {
        self.down();
    }
}

fn node_online(e: &Eyrie, id: &str) -> bool {
    e.get(&format!("/api/system/nodes/{id}"))["status"]["online"] == true
}

#[test]
fn a_node_that_comes_back_is_seen_at_once_and_old_numbers_say_their_age() {
    let a = node("A");
    let mut peer = Flapper::new();
    peer.up();
    let body = format!(
        r#"{{"label": "flapper", "url": "{}", "key": "k"}}"#,
        peer.url()
    );
    let (s, v) = a.request("POST", "/api/system/nodes", Some(&body));
    assert_eq!(s, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    a.wait_until("sees the peer", Duration::from_secs(10), || {
        node_online(&a, &id)
    });

    // Down long enough for the failure backoff to grow to 16 s.
    peer.down();
    a.wait_until("marks the peer offline", Duration::from_secs(10), || {
        !node_online(&a, &id)
    });
    std::thread::sleep(Duration::from_secs(16));
    // Its last numbers are shown with their age, and no latency of an answer that never came.
    let health = a.get("/api/health");
    let n = &health["nodes"][0];
    assert_eq!(n["reachable"], false, "{n}");
    assert!(n["latency_ms"].is_null(), "{n}");
    assert!(n["last_seen_age_s"].as_u64().unwrap() >= 15, "{n}");
    let status = &a.get(&format!("/api/system/nodes/{id}"))["status"];
    assert!(
        status["last_seen_age_s"].as_u64().unwrap() >= 15,
        "{status}"
    );
    assert!(status["latency_ms"].is_null(), "{status}");

    // Back: seen within about one poll interval, whatever the backoff had grown to.
    peer.up();
    let back = std::time::Instant::now();
    a.wait_until("sees the peer back", Duration::from_secs(4), || {
        node_online(&a, &id)
    });
    eprintln!("the peer was seen back after {:?}", back.elapsed());
    let n = a.get("/api/health")["nodes"][0].clone();
    assert!(n["last_seen_age_s"].as_u64().unwrap() <= 2, "{n}");

    // A re-check asked through the API polls at once and answers the fresh status.
    peer.down();
    a.wait_until("marks the peer offline", Duration::from_secs(10), || {
        !node_online(&a, &id)
    });
    peer.up();
    let (s, v) = a.request("POST", &format!("/api/system/nodes/{id}/check"), None);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["status"]["online"], true, "{v}");
    assert_eq!(
        a.request("POST", "/api/system/nodes/0123456789ab/check", None)
            .0,
        404
    );
}

#[test]
fn a_node_cannot_be_added_twice_nor_add_itself() {
    let a = node("A");
    let b = node("B");
    let b_id = link(&a, &b, "Shop");
    a.wait_until("sees B", Duration::from_secs(10), || node_online(&a, &b_id));
    let add = |url: &str, key: &str| {
        a.request(
            "POST",
            "/api/system/nodes",
            Some(&format!(r#"{{"url": "{url}", "key": "{key}"}}"#)),
        )
    };
    // The same URL again.
    let (s, v) = add(&format!("{}/", b.url("")), &issue_key(&b, "again"));
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Shop"), "{v}");
    // The same node under another name: told apart by its node id.
    let (s, v) = add(
        &format!("http://localhost:{}", b.port),
        &issue_key(&b, "other"),
    );
    assert_eq!(s, 409, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("Shop") && msg.contains("node id"), "{v}");
    // This node itself.
    let (s, v) = add(&a.url(""), &issue_key(&a, "me"));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("itself"), "{v}");
    // Moving a node onto another's URL is refused the same way.
    let c = node("C");
    let c_id = link(&a, &c, "Garage");
    let (s, v) = a.request(
        "PUT",
        &format!("/api/system/nodes/{c_id}"),
        Some(&format!(r#"{{"url": "{}"}}"#, b.url(""))),
    );
    assert_eq!(s, 409, "{v}");
    assert_eq!(a.get("/api/system/nodes").as_array().unwrap().len(), 2);
    std::thread::sleep(Duration::from_secs(2));
    let remote = cameras(&a).into_iter().filter(|c| c["remote"] == true);
    assert_eq!(remote.count(), 2, "one card per node");
}
