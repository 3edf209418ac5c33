//! A camera's own events over ONVIF, against the ONVIF test devices
//! (tests/support/onvif_responder.py, on loopback without WS-Discovery): Eyrie's PullPoint
//! subscriber (`eyrie::onvif::events`) subscribes, pulls, renews, survives the devices'
//! restart, and turns motion start/stop, a camera that never sends the stop, tamper and line
//! crossing into events with thumbnails from the camera's snapshot. The events go to a sink
//! that writes down what it is given (the events contract's three methods); the node's event
//! log is wired to the same trait in cmd/run. Cameras without a PullPoint push their events to
//! a real node's `POST /api/onvif/notify/{token}` (WS-BaseNotification), which is attacked
//! with forged tokens and bad bodies.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eyrie::events::{EventError, EventId, EventSink, Origin};
use eyrie::onvif::Credentials;
use eyrie::onvif::events::{Watch, watch};
use support::onvif::Responder;
use support::*;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "s3cret & <pw>";

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Begin {
        id: u64,
        camera: String,
        kind: String,
        start_ms: i64,
        zone: Option<String>,
    },
    End {
        id: u64,
        end_ms: i64,
    },
    Thumbnail {
        id: u64,
        bytes: usize,
    },
}

/// Writes down every call, with when it came.
#[derive(Default)]
struct Written(Mutex<Vec<(Instant, Call)>>);

impl EventSink for Written {
    fn begin(
        &self,
        camera: &str,
        kind: &str,
        origin: Origin,
        start_ms: i64,
        _score: Option<f32>,
        zone: Option<String>,
    ) -> Result<EventId, EventError> {
        assert_eq!(origin, Origin::Camera);
        let mut calls = self.0.lock().unwrap();
        let id = calls.len() as u64 + 1;
        calls.push((
            Instant::now(),
            Call::Begin {
                id,
                camera: camera.into(),
                kind: kind.into(),
                start_ms,
                zone,
            },
        ));
        Ok(EventId(id))
    }
    fn end(&self, id: EventId, end_ms: i64) -> Result<(), EventError> {
        let id = id.0;
        let mut calls = self.0.lock().unwrap();
        calls.push((Instant::now(), Call::End { id, end_ms }));
        Ok(())
    }
    fn set_thumbnail(&self, id: EventId, jpeg: &[u8]) -> Result<(), EventError> {
        let id = id.0;
        let mut calls = self.0.lock().unwrap();
        calls.push((
            Instant::now(),
            Call::Thumbnail {
                id,
                bytes: jpeg.len(),
            },
        ));
        Ok(())
    }
}

impl Written {
    fn calls(&self) -> Vec<(Instant, Call)> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (at most `limit`) for a call `pick` finds, and returns what it found.
    async fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        pick: impl Fn(&[(Instant, Call)]) -> Option<T>,
    ) -> T {
        let until = Instant::now() + limit;
        loop {
            if let Some(v) = pick(&self.calls()) {
                return v;
            }
            assert!(
                Instant::now() < until,
                "{what}: not within {limit:?}; calls: {:#?}",
                self.calls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn begun(&self, camera: &str, kind: &str, after: usize) -> (Instant, u64, i64) {
        self.wait(
            &format!("{camera} {kind} begins"),
            Duration::from_secs(20),
            |c| {
                c.iter().skip(after).find_map(|(t, call)| match call {
                    Call::Begin {
                        id,
                        camera: cam,
                        kind: k,
                        start_ms,
                        ..
                    } if cam == camera && k == kind => Some((*t, *id, *start_ms)),
                    _ => None,
                })
            },
        )
        .await
    }

    async fn ended(&self, id: u64, limit: Duration) -> (Instant, i64) {
        self.wait(&format!("event {id} ends"), limit, |c| {
            c.iter().find_map(|(t, call)| match call {
                Call::End { id: i, end_ms } if *i == id => Some((*t, *end_ms)),
                _ => None,
            })
        })
        .await
    }
}

/// Two devices, `good` and `good2` (which never says a motion is over), on ports from `base`,
/// with subscriptions of 4 s, and `extra` arguments.
fn start_devices(base: u16, extra: &[&str]) -> Responder {
    let base = base.to_string();
    let mut args = vec![
        "--no-discovery",
        "--port-base",
        &base,
        "--lifetime",
        "4",
        "--no-stop",
        "good2",
    ];
    args.extend_from_slice(extra);
    Responder::start_with(
        "127.0.0.1",
        PASSWORD,
        "rtsp://127.0.0.1:1/main",
        "rtsp://127.0.0.1:1/sub",
        "good,good2",
        &args,
    )
}

fn watch_of(camera: &str, port: u16) -> Watch {
    Watch {
        camera: camera.into(),
        xaddr: format!("http://127.0.0.1:{port}/onvif/device_service")
            .parse()
            .unwrap(),
        creds: Some(Credentials {
            username: "admin".into(),
            password: PASSWORD.into(),
            clock_offset: jiff::SignedDuration::ZERO,
        }),
        quiet: Duration::from_secs(5),
        push: None,
        transport: Default::default(),
    }
}

const MOTION: &str = "tns1:RuleEngine/CellMotionDetector/Motion";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn camera_events_start_stop_fall_quiet_renew_and_survive_a_restart() {
    if !tools::require(&["ffmpeg"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let jpeg = dir.path().join("snapshot.jpg");
    let made = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90"])
        .args(["-frames:v", "1", "-y"])
        .arg(&jpeg)
        .status()
        .unwrap();
    assert!(made.success());
    let jpeg_len = std::fs::metadata(&jpeg).unwrap().len() as usize;

    let base = free_port();
    let mut devices = start_devices(base, &["--snapshot", jpeg.to_str().unwrap()]);
    let sink = Arc::new(Written::default());
    let stop = CancellationToken::new();
    let tasks = [
        tokio::spawn(watch(watch_of("front", base), sink.clone(), stop.clone())),
        tokio::spawn(watch(
            watch_of("back", base + 1),
            sink.clone(),
            stop.clone(),
        )),
    ];
    let subscribed = |r: &Responder, device: &str| {
        r.said("SUBSCRIBE")
            .iter()
            .filter(|l| l.starts_with(&format!("SUBSCRIBE {device} ")))
            .count()
    };
    let until = Instant::now() + Duration::from_secs(20);
    while subscribed(&devices, "good") == 0 || subscribed(&devices, "good2") == 0 {
        assert!(Instant::now() < until, "{:?}", devices.lines());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Calls signed in the camera's time (an hour off): no refusal.
    assert!(devices.lines().iter().all(|l| !l.contains("NotAuthorized")));

    // Motion start and stop: one event of about that length, a thumbnail of the snapshot.
    let sent = jiff::Timestamp::now().as_millisecond();
    devices.emit("good", MOTION, "IsMotion", "true");
    let (_, id, start_ms) = sink.begun("front", "motion", 0).await;
    assert!(
        (start_ms - sent).abs() < 2_000,
        "start {start_ms} is the camera's time less its clock offset, near {sent}"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    devices.emit("good", MOTION, "IsMotion", "false");
    let (_, end_ms) = sink.ended(id, Duration::from_secs(10)).await;
    assert!(
        (1_000..4_000).contains(&(end_ms - start_ms)),
        "{start_ms}..{end_ms}"
    );
    sink.wait("the thumbnail", Duration::from_secs(10), |c| {
        c.iter()
            .any(|(_, call)| {
                *call
                    == Call::Thumbnail {
                        id,
                        bytes: jpeg_len,
                    }
            })
            .then_some(())
    })
    .await;
    let Call::Begin { zone, .. } = &sink
        .calls()
        .into_iter()
        .find(|(_, c)| matches!(c, Call::Begin { id: i, .. } if *i == id))
        .unwrap()
        .1
    else {
        unreachable!()
    };
    assert_eq!(zone.as_deref(), Some("Rule1"));

    // A camera that never sends the stop: closed the quiet time after its start.
    let n = sink.calls().len();
    devices.emit("good2", MOTION, "IsMotion", "true");
    let (begun_at, id, start_ms) = sink.begun("back", "motion", n).await;
    devices.emit("good2", MOTION, "IsMotion", "false");
    let (ended_at, end_ms) = sink.ended(id, Duration::from_secs(15)).await;
    assert_eq!(end_ms - start_ms, 5_000);
    assert!(ended_at - begun_at >= Duration::from_millis(4_500));

    // Tamper and line crossing are their own kinds; a crossing (no stop) falls quiet too.
    let n = sink.calls().len();
    devices.emit(
        "good",
        "tns1:VideoSource/GlobalSceneChange/ImagingService",
        "State",
        "true",
    );
    devices.emit(
        "good",
        "tns1:RuleEngine/LineDetector/Crossed",
        "ObjectId",
        "3",
    );
    let (_, tamper, _) = sink.begun("front", "tamper", n).await;
    let (_, line, line_start) = sink.begun("front", "line", n).await;
    let (_, line_end) = sink.ended(line, Duration::from_secs(15)).await;
    assert_eq!(line_end - line_start, 5_000);

    // Renewed at half of the 4 s the devices grant, on one subscription all along.
    let renewals = |r: &Responder| {
        r.said("RENEW")
            .iter()
            .filter(|l| l.starts_with("RENEW good "))
            .count()
    };
    assert!(renewals(&devices) >= 3, "{:?}", devices.lines());
    assert_eq!(subscribed(&devices, "good"), 1, "{:?}", devices.lines());

    // The devices restart (a camera reboot): subscribed again, events flow again.
    drop(devices);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut devices = start_devices(base, &["--snapshot", jpeg.to_str().unwrap()]);
    let until = Instant::now() + Duration::from_secs(30);
    while subscribed(&devices, "good") == 0 {
        assert!(Instant::now() < until, "not subscribed again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = sink.calls().len();
    devices.emit("good", MOTION, "IsMotion", "true");
    let (_, again, _) = sink.begun("front", "motion", n).await;

    // Stopping unsubscribes and closes what is open (the last motion).
    stop.cancel();
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(10), t)
            .await
            .expect("the watches stop")
            .unwrap();
    }
    assert!(
        devices
            .said("UNSUBSCRIBE")
            .iter()
            .any(|l| l.starts_with("UNSUBSCRIBE good ")),
        "{:?}",
        devices.lines()
    );
    sink.ended(again, Duration::from_secs(1)).await;
    // The tamper the camera never ended fell quiet long before.
    sink.ended(tamper, Duration::from_secs(1)).await;
    // Every event begun was ended once.
    let calls: Vec<Call> = sink.calls().into_iter().map(|(_, c)| c).collect();
    for c in &calls {
        if let Call::Begin { id, .. } = c {
            let ends = calls
                .iter()
                .filter(|e| matches!(e, Call::End { id: i, .. } if i == id))
                .count();
            assert_eq!(ends, 1, "event {id}: {calls:#?}");
        }
    }
}

/// A camera without a PullPoint (`--push-only`) on a real node: Eyrie subscribes with
/// WS-BaseNotification, the camera POSTs Notify to the node's token address, and the events are
/// the same as pulled ones. The token is the only credential: a wrong one is 404 and makes no
/// event; garbage and oversized bodies are refused and the node stays up; deleting the camera
/// unsubscribes and retires its token.
#[test]
fn cameras_without_a_pull_point_push_their_events_to_a_token_address() {
    let e = node::Eyrie::start("", &[]);
    let base = free_port();
    let mut devices = start_devices(base, &["--push-only", "good,good2"]);
    for (name, port) in [("Push", base), ("Push Nostop", base + 1)] {
        let cam = e.add_camera(&format!(
            r#"{{"name": "{name}", "source": "rtsp://127.0.0.1:1/main"}}"#
        ));
        let id = cam["id"].as_str().unwrap().to_string();
        let (s, v) = e.request(
            "PUT",
            &format!("/api/cameras/{id}"),
            Some(&format!(
                r#"{{"onvif": {{"xaddr": "http://127.0.0.1:{port}/onvif/device_service",
                    "events": true, "quiet_seconds": 5, "username": "admin",
                    "password": {}}}}}"#,
                serde_json::Value::from(PASSWORD)
            )),
        );
        assert_eq!(s, 200, "{v}");
    }
    // Subscribed by push, the consumer a token address on this node.
    let consumer = |device: &str| -> Option<String> {
        devices
            .said("SUBSCRIBE")
            .iter()
            .rev()
            .find(|l| l.starts_with(&format!("SUBSCRIBE {device} ")))
            .and_then(|l| l.split(' ').nth(3).map(str::to_string))
    };
    e.wait_until("both subscribed", Duration::from_secs(20), || {
        consumer("good").is_some() && consumer("good2").is_some()
    });
    let url = consumer("good").unwrap();
    let prefix = format!("http://127.0.0.1:{}/api/onvif/notify/", e.port);
    assert!(url.starts_with(&prefix), "{url}");
    let token = &url[prefix.len()..];
    assert_eq!(token.len(), 64, "{url}");
    assert_ne!(consumer("good2"), Some(url.clone()));
    e.wait_until("push shown", Duration::from_secs(10), || {
        e.get("/api/cameras/push")["onvif"]["events_transport"] == "push"
    });

    let now = jiff::Timestamp::now().as_millisecond();
    let (from, to) = (now - 3_600_000, now + 3_600_000);
    let events = |camera: &str| -> Vec<serde_json::Value> {
        e.get(&format!(
            "/api/recordings/events?camera={camera}&start={from}&end={to}"
        ))["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| v["kind"] != "marker")
            .cloned()
            .collect()
    };

    // Motion start and stop, pushed: one closed event of about that length.
    devices.emit("good", MOTION, "IsMotion", "true");
    e.wait_until("the motion begins", Duration::from_secs(10), || {
        events("push").len() == 1
    });
    std::thread::sleep(Duration::from_millis(1_500));
    devices.emit("good", MOTION, "IsMotion", "false");
    e.wait_until("the motion ends", Duration::from_secs(10), || {
        events("push")[0]["end_ms"].is_i64()
    });
    let ev = &events("push")[0];
    assert_eq!(ev["kind"], "motion", "{ev}");
    let len = ev["end_ms"].as_i64().unwrap() - ev["start_ms"].as_i64().unwrap();
    assert!((1_000..4_000).contains(&len), "{ev}");

    // A start with no stop: closed the quiet time after it.
    devices.emit("good2", MOTION, "IsMotion", "true");
    e.wait_until("the quiet motion ends", Duration::from_secs(15), || {
        events("push-nostop")
            .first()
            .is_some_and(|v| v["end_ms"].is_i64())
    });
    let ev = &events("push-nostop")[0];
    assert_eq!(
        ev["end_ms"].as_i64().unwrap() - ev["start_ms"].as_i64().unwrap(),
        5_000,
        "{ev}"
    );

    // Forged: a wrong token (of the right shape) is 404 and makes no event; no session needed
    // for the right one, and nothing else answers under the route.
    let notify = |motion: bool| {
        format!(
            r#"<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" xmlns:tt="http://www.onvif.org/ver10/schema"><s:Body><wsnt:Notify><wsnt:NotificationMessage><wsnt:Topic Dialect="d">{MOTION}</wsnt:Topic><wsnt:Message><tt:Message PropertyOperation="Changed"><tt:Source/><tt:Data><tt:SimpleItem Name="IsMotion" Value="{motion}"/></tt:Data></tt:Message></wsnt:Message></wsnt:NotificationMessage></wsnt:Notify></s:Body></s:Envelope>"#
        )
    };
    let post = |path: &str, body: &[u8]| -> u16 {
        match ureq::post(&format!("http://127.0.0.1:{}{path}", e.port))
            .timeout(Duration::from_secs(10))
            .send_bytes(body)
        {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(s, _)) => s,
            Err(err) => panic!("POST {path}: {err}"),
        }
    };
    let wrong: String = token
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let before = events("push").len();
    assert_eq!(
        post(
            &format!("/api/onvif/notify/{wrong}"),
            notify(true).as_bytes()
        ),
        404
    );
    // Paths beside the route are the API's, which wants a login.
    for path in [
        "/api/onvif/notify/".to_string(),
        format!("/api/onvif/notify/{token}/x"),
    ] {
        let status = post(&path, notify(true).as_bytes());
        assert!(matches!(status, 401 | 404), "{path}: {status}");
    }
    // Garbage and oversized bodies with the right token: refused, nothing made.
    assert_eq!(
        post(&format!("/api/onvif/notify/{token}"), b"\x00not <xml &&"),
        400
    );
    assert_eq!(
        post(&format!("/api/onvif/notify/{token}"), b"<a><b></a>"),
        400
    );
    let huge = format!("<a>{}</a>", "x".repeat(200 * 1024));
    assert_eq!(
        post(&format!("/api/onvif/notify/{token}"), huge.as_bytes()),
        413
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(events("push").len(), before);
    // The right token without any login is taken (as the camera itself does).
    assert_eq!(
        post(
            &format!("/api/onvif/notify/{token}"),
            notify(true).as_bytes()
        ),
        200
    );
    e.wait_until("the posted motion begins", Duration::from_secs(10), || {
        events("push").len() == before + 1
    });
    assert_eq!(
        post(
            &format!("/api/onvif/notify/{token}"),
            notify(false).as_bytes()
        ),
        200
    );

    // Events still flow from the camera after all that, and the subscription was renewed (at
    // half of the 4 s granted) on one subscription.
    devices.emit("good", MOTION, "IsMotion", "true");
    e.wait_until("motion after the refusals", Duration::from_secs(10), || {
        events("push").len() == before + 2
    });
    devices.emit("good", MOTION, "IsMotion", "false");
    let renewals = devices
        .said("RENEW")
        .iter()
        .filter(|l| l.starts_with("RENEW good "))
        .count();
    assert!(renewals >= 2, "{:?}", devices.lines());
    assert_eq!(
        devices
            .said("SUBSCRIBE")
            .iter()
            .filter(|l| l.starts_with("SUBSCRIBE good "))
            .count(),
        1,
        "{:?}",
        devices.lines()
    );
    assert!(
        devices.said("NOTIFY").iter().all(|l| l.ends_with(" 200")),
        "{:?}",
        devices.lines()
    );

    // Deleting the camera unsubscribes; its token is retired.
    let (s, v) = e.request("DELETE", "/api/cameras/push?keep_recordings=false", None);
    assert!(s == 200 || s == 204, "{s} {v}");
    e.wait_until("unsubscribed", Duration::from_secs(10), || {
        devices
            .said("UNSUBSCRIBE")
            .iter()
            .any(|l| l.starts_with("UNSUBSCRIBE good "))
    });
    e.wait_until("the token retired", Duration::from_secs(5), || {
        post(
            &format!("/api/onvif/notify/{token}"),
            notify(true).as_bytes(),
        ) == 404
    });
    // The other camera's events still come.
    let n = events("push-nostop").len();
    devices.emit("good2", MOTION, "IsMotion", "true");
    e.wait_until("the other camera still", Duration::from_secs(10), || {
        events("push-nostop").len() == n + 1
    });
}
