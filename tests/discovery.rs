//! Discovery and pairing with real multicast: Eyries in network namespaces on one bridge find
//! each other over mDNS, leave on goodbye or TTL, interoperate with avahi, and pair through the
//! HTTP API. Pairing's refusals (wrong code, wrong secret, replay, expiry) are checked against an
//! Eyrie on loopback, where no multicast is involved.

mod support;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use support::appliance::Appliance;
use support::netns::*;
use support::*;

const DISCOVERY_ON: &str = "[discovery]\nenabled = true\n";

/// The nodes `e` lists in `/api/system/discover`.
fn seen(e: &NsEyrie) -> Vec<Value> {
    e.get("/api/system/discover")["nodes"]
        .as_array()
        .unwrap()
        .clone()
}

fn seen_ids(e: &NsEyrie) -> Vec<String> {
    let mut v: Vec<String> = seen(e)
        .iter()
        .filter_map(|n| n["node_id"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

/// Whether an entry has both its IPv4 and its IPv6 address (records arrive one by one).
fn complete(n: &Value) -> bool {
    let addrs = n["addresses"].as_array().unwrap();
    addrs
        .iter()
        .any(|a| a.as_str().unwrap().starts_with("10.77.0."))
        && addrs
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("fd00:77::"))
}

/// Waits until `e` lists exactly the nodes `want` (by node id), each complete, at most `limit`.
fn wait_seen(e: &NsEyrie, want: &[String], limit: Duration) {
    let mut want = want.to_vec();
    want.sort();
    let start = Instant::now();
    loop {
        let got = seen_ids(e);
        if got == want && seen(e).iter().all(complete) {
            return;
        }
        if start.elapsed() > limit {
            panic!(
                "{} lists {:?}, not {want:?}, after {limit:?}:\n{:#?}\nlog:\n{}",
                e.ns,
                got,
                seen(e),
                e.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn node_id(e: &NsEyrie) -> String {
    e.get("/api/health")["node_id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn three_nodes_discover_each_other_and_leave_with_a_goodbye() {
    if !can_use_namespaces() {
        return;
    }
    let lan = Lan::new(3);
    let started = Instant::now();
    let a = NsEyrie::start(&lan, 0, "Alpha", DISCOVERY_ON);
    let mut b = NsEyrie::start(&lan, 1, "Bravo", DISCOVERY_ON);
    let b_id = node_id(&b);
    a.wait_until("sees B", Duration::from_secs(5), || {
        seen_ids(&a) == [b_id.clone()]
    });
    // Same label as B, which holds the name already: C must take "Bravo (2)".
    let c = NsEyrie::start(&lan, 2, "Bravo", DISCOVERY_ON);
    let nodes = [&a, &b, &c];
    let ids: Vec<String> = nodes.iter().map(|e| node_id(e)).collect();

    for (i, e) in nodes.iter().enumerate() {
        let want: Vec<String> = ids
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, id)| id.clone())
            .collect();
        wait_seen(e, &want, Duration::from_secs(5));
    }
    eprintln!("all three found each other in {:?}", started.elapsed());

    // What A sees of B and C: every TXT key, the address and port, never itself.
    let version = a.get("/api/health")["version"].clone();
    let listed = seen(&a);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (other, id) in [(&b, &ids[1]), (&c, &ids[2])] {
        let n = listed.iter().find(|n| n["node_id"] == id.as_str()).unwrap();
        assert_eq!(n["kind"], "eyrie", "{n}");
        assert_eq!(n["label"], "Bravo", "{n}");
        assert_eq!(n["version"], version, "{n}");
        assert_eq!(n["proto"], "1", "{n}");
        assert_eq!(n["port"], NsEyrie::PORT, "{n}");
        assert_eq!(n["url"], other.url(), "{n}");
        assert_eq!(n["tls_fingerprint"], Value::Null, "{n}");
        assert_eq!(n["linked"], false, "{n}");
        assert!(n["last_seen"].is_string(), "{n}");
        let addrs = n["addresses"].as_array().unwrap();
        assert!(addrs.contains(&json!(other.ipv4)), "{n}");
        assert!(
            addrs
                .iter()
                .any(|a| a.as_str().unwrap().starts_with("fd00:77::")),
            "IPv6 too: {n}"
        );
    }
    assert!(!seen_ids(&a).contains(&ids[0]));

    // An address added to C is announced.
    ip(&["-n", &c.ns, "addr", "add", "10.77.0.50/24", "dev", "eth0"]);
    a.wait_until("learns C's new address", Duration::from_secs(15), || {
        seen(&a).iter().any(|n| {
            n["node_id"] == ids[2].as_str()
                && n["addresses"]
                    .as_array()
                    .unwrap()
                    .contains(&json!("10.77.0.50"))
        })
    });
    // The two "Bravo"s are told apart by their instance names.
    let mut instances: Vec<String> = listed
        .iter()
        .map(|n| n["instance"].as_str().unwrap().to_string())
        .collect();
    instances.sort();
    assert_eq!(instances, ["Bravo", "Bravo (2)"], "{listed:?}");
    let advertised: Vec<String> = [&b, &c]
        .iter()
        .map(|e| {
            e.get("/api/system/discover")["advertised_as"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(advertised, ["Bravo", "Bravo (2)"]);
    let c_seen = listed
        .iter()
        .find(|n| n["node_id"] == ids[2].as_str())
        .unwrap();
    assert_eq!(c_seen["instance"], "Bravo (2)");

    // A clean stop says goodbye: gone from the others' lists at once, not after a TTL.
    assert!(b.terminate().success(), "log:\n{}", b.log());
    assert!(b.log().contains("goodbye sent"), "{}", b.log());
    for e in [&a, &c] {
        e.wait_until(
            "forgets B after its goodbye",
            Duration::from_secs(5),
            || !seen_ids(e).contains(&ids[1]),
        );
    }
    assert_eq!(seen_ids(&a), vec![ids[2].clone()]);
}

#[test]
fn a_killed_node_leaves_the_list_after_its_ttl() {
    if !can_use_namespaces() {
        return;
    }
    let lan = Lan::new(3);
    // The interface allow-list, both ways, while this test waits anyway: A uses only eth0
    // (and works); C uses only loopback, so nobody on the LAN ever sees it, nor it them.
    let a = NsEyrie::start(
        &lan,
        0,
        "Alpha",
        "[discovery]\nenabled = true\ninterfaces = [\"eth0\"]\n",
    );
    let mut b = NsEyrie::start(&lan, 1, "Bravo", DISCOVERY_ON);
    let c = NsEyrie::start(
        &lan,
        2,
        "Charlie",
        "[discovery]\nenabled = true\ninterfaces = [\"lo\"]\n",
    );
    let b_id = node_id(&b);
    a.wait_until("sees B", Duration::from_secs(5), || {
        seen_ids(&a) == [b_id.clone()]
    });
    b.wait_until("sees A only", Duration::from_secs(5), || {
        seen_ids(&b).len() == 1
    });
    b.kill9();
    let killed = Instant::now();
    // No goodbye: B stays listed until its address records (TTL 120 s, mdns-sd's fixed
    // default) run out, when A's refresh queries go unanswered.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(seen_ids(&a), [b_id], "gone before its TTL");
    a.wait_until("drops B after its TTL", Duration::from_secs(150), || {
        seen_ids(&a).is_empty()
    });
    let after = killed.elapsed();
    eprintln!("killed node dropped after {after:?}");
    assert!(after >= Duration::from_secs(90), "dropped after {after:?}");
    // Two minutes on, C (loopback only) was never seen and saw nobody.
    assert!(seen(&a).is_empty());
    assert!(seen(&c).is_empty(), "{:?}", seen(&c));
}

#[test]
fn avahi_sees_eyrie_and_eyrie_sees_avahi() {
    if !can_use_namespaces()
        || !tools::require(&[
            "avahi-daemon",
            "avahi-browse",
            "avahi-publish",
            "dbus-daemon",
        ])
    {
        return;
    }
    let lan = Lan::new(2);
    let e = NsEyrie::start(&lan, 0, "Alpha Node", DISCOVERY_ON);
    let mut avahi = Avahi::start(&lan, 1);
    let id = node_id(&e);

    // avahi-browse resolves Eyrie's service with every TXT key, on IPv4 and IPv6.
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let lines: Vec<Vec<String>> = avahi
            .browse("_nvr-federation._tcp")
            .into_iter()
            .filter(|l| l.get(3).map(String::as_str) == Some("Alpha Node"))
            .collect();
        if lines.iter().any(|l| l[2] == "IPv4") && lines.iter().any(|l| l[2] == "IPv6") {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "avahi-browse does not see Eyrie: {lines:?}\navahi log:\n{}\neyrie log:\n{}",
            avahi.log(),
            e.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    let v4 = lines.iter().find(|l| l[2] == "IPv4").unwrap();
    // =;iface;proto;name;type;domain;host;address;port;txt
    assert_eq!(v4[4], "_nvr-federation._tcp");
    assert_eq!(v4[7], e.ipv4);
    assert_eq!(v4[8], NsEyrie::PORT.to_string());
    let txt = &v4[9];
    for want in [
        format!("\"id={id}\""),
        "\"api=/api\"".to_string(),
        "\"proto=1\"".to_string(),
        "\"name=Alpha Node\"".to_string(),
        format!("\"ver={}\"", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(txt.contains(&want), "{want} missing from {txt}");
    }
    assert!(!txt.contains("tls="), "no HTTPS, no fingerprint: {txt}");
    // Off the appliance, a host name of Eyrie's own (the host may run avahi under its name).
    assert_eq!(v4[6], format!("eyrie-{}.local", &id[..8]));

    // A service published by avahi without TXT (as CartaNVR advertises) shows up as cartanvr;
    // one with Eyrie's TXT as an Eyrie.
    avahi.publish("Carta Shop", "_nvr-federation._tcp", 3000, &[]);
    let fake_id = "0badc0de-0000-4000-8000-000000000001";
    avahi.publish(
        "Published Eyrie",
        "_nvr-federation._tcp",
        8443,
        &[
            &format!("id={fake_id}"),
            "ver=9.9.9",
            "proto=1",
            "api=/api",
            "name=Published Eyrie",
            &format!("tls={}", "ab".repeat(32)),
        ],
    );
    e.wait_until("lists both avahi services", Duration::from_secs(10), || {
        seen(&e).len() == 2
    });
    let listed = seen(&e);
    let carta = listed
        .iter()
        .find(|n| n["instance"] == "Carta Shop")
        .unwrap();
    assert_eq!(carta["kind"], "cartanvr", "{carta}");
    assert_eq!(carta["node_id"], Value::Null);
    assert_eq!(carta["url"], format!("http://{}:3000", lan.ipv4(1)));
    let published = listed
        .iter()
        .find(|n| n["node_id"] == fake_id)
        .unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(published["kind"], "eyrie");
    assert_eq!(published["version"], "9.9.9");
    assert_eq!(published["tls_fingerprint"], "ab".repeat(32));
    assert_eq!(published["url"], format!("https://{}:8443", lan.ipv4(1)));
}

/// Starts a pairing on `from` with `body` and returns its id and code.
fn start_pairing(from: &NsEyrie, body: &Value) -> (String, String) {
    let (s, p) = from.request("POST", "/api/system/pairings", Some(&body.to_string()));
    assert_eq!(s, 202, "{p}");
    let code = p["code"].as_str().unwrap().to_string();
    assert_eq!(code.len(), 6);
    (p["id"].as_str().unwrap().to_string(), code)
}

/// Waits until `on` holds a pending request from `from_id` and returns it.
fn pending_request(on: &NsEyrie, from_id: &str) -> Value {
    let mut found = Value::Null;
    on.wait_until("holds the pairing request", Duration::from_secs(10), || {
        let list = on.get("/api/federation/pair/requests");
        match list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["node_id"] == from_id && r["state"] == "pending")
        {
            Some(r) => {
                found = r.clone();
                true
            }
            None => false,
        }
    });
    found
}

fn wait_linked(on: &NsEyrie, pairing: &str) -> Value {
    let mut last = Value::Null;
    on.wait_until("links the other node", Duration::from_secs(15), || {
        last = on.get(&format!("/api/system/pairings/{pairing}"));
        assert!(
            matches!(
                last["state"].as_str(),
                Some("asking" | "waiting" | "linked")
            ),
            "{last}"
        );
        last["state"] == "linked"
    });
    last
}

#[test]
fn two_namespaced_nodes_pair_through_the_api_and_share_cameras() {
    if !can_use_namespaces() {
        return;
    }
    let lan = Lan::new(2);
    let a = NsEyrie::start(&lan, 0, "House", DISCOVERY_ON);
    let b = NsEyrie::start(&lan, 1, "Garage", DISCOVERY_ON);
    let (a_id, b_id) = (node_id(&a), node_id(&b));
    a.wait_until("discovers B", Duration::from_secs(5), || {
        seen_ids(&a) == [b_id.clone()]
    });

    // Both UIs follow along on their event streams.
    let events = NsEyrie::admin_url("/api/events");
    let a_events = Events::open(&a.ns, &events);
    let b_events = Events::open(&b.ns, &events);
    a_events.wait_for("discover", Duration::from_secs(5), |v| {
        v["nodes"][0]["node_id"] == b_id.as_str()
    });

    let (node, approved) = a_pairs_with_b(&a, &b, (&a_id, &b_id), (&a_events, &b_events));
    a_shows_b_linked(&a, &b_id, &node);
    b_links_back(&a, &b, &b_id, &approved);
    // Linked both ways, still one remote camera each (no loops).
    std::thread::sleep(Duration::from_secs(2));
    for e in [&a, &b] {
        let cams = e.get("/api/cameras");
        assert_eq!(cams.as_array().unwrap().len(), 2, "{cams}");
    }
    // Pairing again with a linked node is refused.
    let (s, v) = a.request(
        "POST",
        "/api/system/pairings",
        Some(&json!({ "url": b.url() }).to_string()),
    );
    assert_eq!(s, 409, "{v}");
}

/// Step of [`two_namespaced_nodes_pair_through_the_api_and_share_cameras`]: A pairs with the
/// discovered B (ids and event streams of both given); the id of B's node at A and B's answer.
fn a_pairs_with_b(
    a: &NsEyrie,
    b: &NsEyrie,
    (a_id, b_id): (&str, &str),
    (a_events, b_events): (&Events, &Events),
) -> (String, Value) {
    // A starts from the discovered entry and shows a code; B's admin sees the request, but not
    // the code: they must type what A's page shows.
    let (pairing, code) = start_pairing(a, &json!({ "node_id": b_id }));
    b_events.wait_for("pair_requests", Duration::from_secs(10), |v| {
        v.as_array()
            .is_some_and(|l| l.iter().any(|r| r["node_id"] == a_id))
    });
    let req = pending_request(b, a_id);
    assert!(req.get("code").is_none(), "{req}");
    assert_eq!(req["label"], "House");
    assert_eq!(req["url"], a.url());
    assert!(req.get("secret").is_none() && !req.to_string().contains("secret"));
    assert_eq!(
        a.get(&format!("/api/system/pairings/{pairing}"))["state"],
        "waiting"
    );

    // B approves with the code and links back; A links B.
    let rid = req["id"].as_str().unwrap();
    let (s, approved) = b.request(
        "POST",
        &format!("/api/federation/pair/requests/{rid}/approve"),
        Some(&json!({ "code": code, "link_back": true }).to_string()),
    );
    assert_eq!(s, 200, "{approved}");
    let linked = wait_linked(a, &pairing);
    a_events.wait_for("pairings", Duration::from_secs(5), |v| {
        v.as_array().is_some_and(|l| {
            l.iter()
                .any(|p| p["id"] == pairing.as_str() && p["state"] == "linked")
        })
    });
    let node = linked["linked_node"].as_str().unwrap().to_string();
    let n = a.get(&format!("/api/system/nodes/{node}"));
    assert_eq!(n["url"], b.url());
    assert_eq!(n["label"], "Garage");
    assert_eq!(n["has_key"], true);
    assert!(!n.to_string().contains(&code));

    (node, approved)
}

/// Step: A's cameras show B's, and discovery marks B linked as `node`.
fn a_shows_b_linked(a: &NsEyrie, b_id: &str, node: &str) {
    // A's aggregated cameras show B's demo camera.
    a.wait_until("shows B's camera", Duration::from_secs(15), || {
        a.get("/api/cameras")
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["remote"] == true && c["node_label"] == "Garage" && c["online"] == true)
    });
    // Discovery now says B is linked.
    a.wait_until("marks B linked", Duration::from_secs(5), || {
        seen(a)
            .iter()
            .any(|n| n["node_id"] == b_id && n["linked"] == true && n["linked_node"] == node)
    });
}

/// Step: B's link back (asked with `approved`), approved by A's admin with its code.
fn b_links_back(a: &NsEyrie, b: &NsEyrie, b_id: &str, approved: &Value) {
    // The link back: B asked A the same way; A's admin approves B's code.
    let back = approved["link_back"].clone();
    let back_id = back["id"].as_str().unwrap().to_string();
    let back_req = pending_request(a, b_id);
    assert!(back_req.get("code").is_none(), "{back_req}");
    let (s, v) = a.request(
        "POST",
        &format!(
            "/api/federation/pair/requests/{}/approve",
            back_req["id"].as_str().unwrap()
        ),
        Some(&json!({ "code": back["code"] }).to_string()),
    );
    assert_eq!(s, 200, "{v}");
    wait_linked(b, &back_id);
    b.wait_until("shows A's camera", Duration::from_secs(15), || {
        b.get("/api/cameras")
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["remote"] == true && c["node_label"] == "House")
    });
}

#[test]
fn https_nodes_advertise_their_fingerprint_and_pairing_pins_it() {
    if !can_use_namespaces() {
        return;
    }
    let lan = Lan::new(2);
    let tls = "[http]\ntls_listen = \"[::]:8443\"\n[discovery]\nenabled = true\n";
    let a = NsEyrie::start(&lan, 0, "House", tls);
    let b = NsEyrie::start(&lan, 1, "Garage", tls);
    let (a_id, b_id) = (node_id(&a), node_id(&b));
    let b_fp = b.get("/api/health")["tls_fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    a.wait_until("discovers B", Duration::from_secs(5), || {
        seen_ids(&a) == [b_id.clone()]
    });
    // The HTTPS port is advertised, with the certificate's fingerprint in TXT.
    let entry = seen(&a)[0].clone();
    assert_eq!(entry["port"], 8443, "{entry}");
    assert_eq!(entry["tls_fingerprint"], b_fp.as_str(), "{entry}");
    assert_eq!(entry["url"], format!("https://{}:8443", b.ipv4));

    let (pairing, code) = start_pairing(&a, &json!({ "node_id": b_id }));
    let req = pending_request(&b, &a_id);
    // A introduced itself with its own HTTPS URL and fingerprint.
    assert_eq!(req["url"], format!("https://{}:8443", a.ipv4));
    let (s, v) = b.request(
        "POST",
        &format!(
            "/api/federation/pair/requests/{}/approve",
            req["id"].as_str().unwrap()
        ),
        Some(&json!({ "code": code }).to_string()),
    );
    assert_eq!(s, 200, "{v}");
    let linked = wait_linked(&a, &pairing);
    let node = a.get(&format!(
        "/api/system/nodes/{}",
        linked["linked_node"].as_str().unwrap()
    ));
    assert_eq!(node["url"], format!("https://{}:8443", b.ipv4));
    assert_eq!(node["tls_pin"], b_fp.as_str(), "pinned from TXT: {node}");
    a.wait_until("reads B over HTTPS", Duration::from_secs(15), || {
        a.get("/api/cameras")
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["remote"] == true && c["online"] == true)
    });
}

// ---- Refusals, against an Eyrie on loopback (no multicast needed) ----

const NODE_A: &str = "5e1f0a3c-0d4e-4c2b-9a61-3f0c8e7d2b10";

fn secret() -> String {
    (0..32)
        .map(|i| format!("{:02x}", (i * 37 + 11) % 256))
        .collect()
}

fn ask(b: &Eyrie, node_id: &str, code: &str, secret: &str) -> (u16, Value) {
    b.request(
        "POST",
        "/api/federation/pair",
        Some(
            &json!({
                "node_id": node_id,
                "label": "House",
                "url": "http://127.0.0.1:9",
                "code": code,
                "secret": secret,
            })
            .to_string(),
        ),
    )
}

fn collect(b: &Eyrie, id: &str, secret: &str) -> (u16, Value) {
    b.request(
        "POST",
        &format!("/api/federation/pair/{id}/collect"),
        Some(&json!({ "secret": secret }).to_string()),
    )
}

fn decide(b: &Eyrie, id: &str, what: &str, body: Value) -> (u16, Value) {
    b.request(
        "POST",
        &format!("/api/federation/pair/requests/{id}/{what}"),
        Some(&body.to_string()),
    )
}

#[test]
fn pairing_refuses_wrong_codes_wrong_secrets_replays_and_expired_requests() {
    let b = Eyrie::start(
        "[discovery]\nenabled = false\npairing_ttl_seconds = 5\n",
        &["--demo"],
    );
    let started = Instant::now();
    // One request left alone, to expire.
    let other = "5e1f0a3c-0d4e-4c2b-9a61-3f0c8e7d2b11";
    let (s, stale) = ask(&b, other, "111111", &secret());
    assert_eq!(s, 202, "{stale}");
    let stale_id = stale["id"].as_str().unwrap().to_string();

    let s1 = a_request_is_approved_with_its_code_and_collected_once(&b);

    // A rejected request hands out nothing.
    let s2 = secret();
    let (_, v) = ask(&b, NODE_A, "222222", &s2);
    let rid = v["id"].as_str().unwrap().to_string();
    let (s, v) = decide(&b, &rid, "reject", json!({}));
    assert_eq!(s, 200, "{v}");
    let (s, v) = collect(&b, &rid, &s2);
    assert_eq!((s, v["status"].as_str()), (403, Some("rejected")), "{v}");

    // The request left alone expires (this node's TTL is 5 s).
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    let (s, v) = collect(&b, &stale_id, &secret());
    assert_eq!((s, v["status"].as_str()), (410, Some("expired")), "{v}");
    let (s, v) = decide(&b, &stale_id, "approve", json!({ "code": "111111" }));
    assert_eq!(s, 410, "{v}");
    let listed = b.get("/api/federation/pair/requests");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == stale_id.as_str() && r["state"] == "expired"),
        "{listed}"
    );

    unknown_and_malformed_asks_are_refused_then_throttled(&b, &s1);
    assert!(b.try_get("/api/health").is_some(), "the node stays up");
}

/// Step of [`pairing_refuses_wrong_codes_wrong_secrets_replays_and_expired_requests`]: A's
/// request, refused with a wrong code or secret, approved with the right code, collected once;
/// the request's secret.
fn a_request_is_approved_with_its_code_and_collected_once(b: &Eyrie) -> String {
    let s1 = secret();
    let (s, v) = ask(b, NODE_A, "123456", &s1);
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["node_id"], b.get("/api/health")["node_id"]);
    let id = v["id"].as_str().unwrap().to_string();

    // Before approval: pending for the right secret, refused for a wrong one.
    let (s, v) = collect(b, &id, &s1);
    assert_eq!((s, v["status"].as_str()), (202, Some("pending")), "{v}");
    let wrong = "0".repeat(64);
    let (s, v) = collect(b, &id, &wrong);
    assert_eq!(
        (s, v["status"].as_str()),
        (401, Some("wrong_secret")),
        "{v}"
    );
    assert!(v["error"].is_string());

    // A wrong code is refused and the request stays pending.
    let (s, v) = decide(b, &id, "approve", json!({ "code": "654321" }));
    assert_eq!((s, v["status"].as_str()), (400, Some("wrong_code")), "{v}");
    let (s, v) = decide(b, &id, "approve", json!({ "code": "123456" }));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["request"]["state"], "approved");

    // A wrong secret still gets nothing after approval; the right one gets the key once.
    let (s, v) = collect(b, &id, &wrong);
    assert_eq!(s, 401, "{v}");
    let (s, v) = collect(b, &id, &s1);
    assert_eq!((s, v["status"].as_str()), (200, Some("approved")), "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    let (s, v) = collect(b, &id, &s1);
    assert_eq!((s, v["status"].as_str()), (410, Some("collected")), "{v}");
    assert!(!v.to_string().contains(&key));
    // The key is a real federation key, listed under A's label, stored only hashed.
    let status = ureq::get(&b.url("/api/cameras"))
        .set("X-NVR-Auth", &key)
        .call()
        .map(|r| r.status())
        .unwrap_or(0);
    assert_eq!(status, 200);
    let keys = b.get("/api/federation/keys");
    assert_eq!(keys[0]["name"], "paired: House");
    let db = std::fs::read(b.dir.join("data/eyrie.redb")).unwrap();
    assert!(!db.windows(key.len()).any(|w| w == key.as_bytes()));
    assert!(!db.windows(s1.len()).any(|w| w == s1.as_bytes()));
    s1
}

/// Step: unknown ids and malformed bodies are refused; one address asking over and over is
/// throttled.
fn unknown_and_malformed_asks_are_refused_then_throttled(b: &Eyrie, s1: &str) {
    // Unknown ids and malformed bodies.
    assert_eq!(collect(b, "000000000000", s1).0, 404);
    assert_eq!(collect(b, "../../x", s1).0, 404);
    let (s, v) = ask(b, "not-a-uuid", "123456", &secret());
    assert_eq!(s, 400, "{v}");
    let (s, v) = ask(b, NODE_A, "12345", &secret());
    assert_eq!(s, 400, "{v}");
    let (s, v) = ask(b, NODE_A, "123456", "short");
    assert_eq!(s, 400, "{v}");
    let big = json!({ "node_id": NODE_A, "label": "x".repeat(8000), "url": "http://a",
                      "code": "123456", "secret": secret() });
    let (s, v) = b.request("POST", "/api/federation/pair", Some(&big.to_string()));
    assert_eq!(s, 413, "{v}");
    let (s, _) = b.request("POST", "/api/federation/pair", Some("{nope"));
    assert_eq!(s, 400);

    // One address asking over and over is throttled.
    let mut last = 0;
    for i in 0..12 {
        last = ask(b, NODE_A, "333333", &format!("{:064x}", i)).0;
    }
    assert_eq!(last, 429);
}

#[test]
fn the_asking_node_reports_a_rejection_and_refuses_bad_targets() {
    let off = "[discovery]\nenabled = false\n";
    let a = Eyrie::start(off, &[]);
    let b = Eyrie::start(off, &[]);
    let (s, p) = a.request(
        "POST",
        "/api/system/pairings",
        Some(&json!({ "url": b.url("") }).to_string()),
    );
    assert_eq!(s, 202, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    let mut req = Value::Null;
    b.wait_until("holds A's request", Duration::from_secs(10), || {
        req = b.get("/api/federation/pair/requests")[0].clone();
        req["state"] == "pending"
    });
    assert!(req.get("code").is_none(), "{req}");
    assert_eq!(
        a.get(&format!("/api/system/pairings/{id}"))["state"],
        "waiting"
    );
    let (s, v) = decide(&b, req["id"].as_str().unwrap(), "reject", json!({}));
    assert_eq!(s, 200, "{v}");
    let mut last = Value::Null;
    a.wait_until("reports the rejection", Duration::from_secs(10), || {
        last = a.get(&format!("/api/system/pairings/{id}"));
        last["state"] == "rejected"
    });
    assert!(
        last["message"].as_str().unwrap().contains("rejected"),
        "{last}"
    );
    assert_eq!(last["linked_node"], Value::Null);
    assert!(a.get("/api/system/nodes").as_array().unwrap().is_empty());

    // Bad targets: nothing to pair with, a URL with credentials, an unknown discovered node
    // (discovery is off here), and something that is not an Eyrie.
    for (body, status) in [
        (json!({}), 400),
        (json!({ "url": "http://u:p@127.0.0.1:1" }), 400),
        (json!({ "node_id": NODE_A }), 404),
        (
            json!({ "url": "http://127.0.0.1:1", "node_id": NODE_A }),
            400,
        ),
    ] {
        let (s, v) = a.request("POST", "/api/system/pairings", Some(&body.to_string()));
        assert_eq!(s, status, "{body}: {v}");
    }
    let junk = FakePeer::start(|_, _| Reply::Body(200, "<html>".into()));
    let (s, p) = a.request(
        "POST",
        "/api/system/pairings",
        Some(&json!({ "url": junk.url() }).to_string()),
    );
    assert_eq!(s, 202, "{p}");
    let id = p["id"].as_str().unwrap();
    a.wait_until("gives up on a non-Eyrie", Duration::from_secs(10), || {
        let p = a.get(&format!("/api/system/pairings/{id}"));
        p["state"] == "failed" && p["message"].as_str().unwrap().contains("without JSON")
    });
}

/// UDP port 5353 in the hex of /proc/net/udp*.
const MDNS_PORT_HEX: &str = ":14E9";

/// The socket inodes of process `pid`.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|f| std::fs::read_link(f.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn eyries_on_the_host_never_open_mdns_and_events_are_capped() {
    let e = Eyrie::start("", &["--demo"]);
    let v = e.get("/api/system/discover");
    assert_eq!(v["enabled"], false, "{v}");
    assert_eq!(v["nodes"], json!([]));
    // No UDP socket of this process is bound to port 5353.
    let mine = socket_inodes(e.child.id());
    assert!(!mine.is_empty());
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (local, inode) = (cols[1], cols[9]);
            assert!(
                !(local.ends_with(MDNS_PORT_HEX) && mine.iter().any(|i| i == inode)),
                "a harness Eyrie opened mDNS: {line}"
            );
        }
    }

    // At most 8 event listeners; each starts with the current state of every view.
    // A listener, or the refusal's status and body.
    let open = || match ureq::get(&e.url("/api/events"))
        .timeout(Duration::from_secs(5))
        .call()
    {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(s, r)) => Err((s, r.into_string().unwrap_or_default())),
        Err(other) => panic!("/api/events: {other}"),
    };
    let mut listeners = Vec::new();
    for _ in 0..8 {
        let r = open().expect("an event listener");
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        listeners.push(r.into_reader());
    }
    match open() {
        Err((503, body)) => assert!(body.contains("poll"), "{body}"),
        other => panic!("a ninth listener: {:?}", other.map(|r| r.status())),
    }
    let mut first = [0u8; 256];
    let n = std::io::Read::read(&mut listeners[0], &mut first).unwrap();
    let text = String::from_utf8_lossy(&first[..n]);
    assert!(text.starts_with("event: "), "{text}");
    // A listener that leaves frees its place.
    listeners.pop();
    e.wait_until("takes a listener again", Duration::from_secs(5), || {
        open().is_ok_and(|r| {
            listeners.push(r.into_reader());
            true
        })
    });
}

#[test]
fn a_label_changed_in_settings_is_announced_at_once() {
    if !can_use_namespaces() {
        return;
    }
    let lan = Lan::new(2);
    let a = NsEyrie::start(&lan, 0, "Alpha", DISCOVERY_ON);
    let b = NsEyrie::start(&lan, 1, "Bravo", DISCOVERY_ON);
    let b_id = node_id(&b);
    wait_seen(&a, std::slice::from_ref(&b_id), Duration::from_secs(5));
    let (s, v) = b.request(
        "PUT",
        "/api/system/settings",
        Some(r#"{"label": "Charlie"}"#),
    );
    assert_eq!(s, 200, "{v}");
    // The old name says goodbye and the new one is announced: one entry, renamed.
    a.wait_until("sees B as Charlie", Duration::from_secs(5), || {
        let list = seen(&a);
        list.len() == 1 && list[0]["label"] == "Charlie" && list[0]["instance"] == "Charlie"
    });
    assert_eq!(seen(&a)[0]["node_id"], b_id.as_str());
    assert_eq!(b.get("/api/system/discover")["advertised_as"], "Charlie");
}

/// The appliance (boot.env present) answers its addresses under the machine's host name, which
/// its init sets to eyrie-xxxx, so the box is reachable as eyrie-xxxx.local from the LAN.
#[test]
fn an_appliance_is_reachable_by_its_host_name() {
    if !can_use_namespaces()
        || !tools::require(&["avahi-daemon", "avahi-resolve", "dbus-daemon", "unshare"])
    {
        return;
    }
    let lan = Lan::new(2);
    let appliance = Appliance::new("a", 4096);
    let extra = format!("{DISCOVERY_ON}\n{}", appliance.config());
    let e = NsEyrie::start_named(&lan, 0, "Garage", &extra, Some("eyrie-7f3a"));
    let avahi = Avahi::start(&lan, 1);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = avahi.resolve("eyrie-7f3a.local");
        if out.split_whitespace().nth(1) == Some(e.ipv4.as_str()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "avahi-resolve eyrie-7f3a.local: {out:?}\navahi log:\n{}\neyrie log:\n{}",
            avahi.log(),
            e.log()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
