//! The entry points of the fuzz targets (`fuzz/`, run with `cargo fuzz`; docs/security.md
//! "Fuzzing"): one function per parser of bytes from outside, each given arbitrary bytes. Each
//! checks what must hold whatever the bytes are, beyond not panicking: what is kept is cleaned
//! and bounded, what Eyrie writes from it reads back, a file rewritten still loads. A panic here
//! is a crash found; it becomes a fix and a regression test (the inputs of the corpora in
//! `fuzz/corpus/` run as a unit test below, so they are checked by every `cargo test`).
//!
//! This module sits at the top with `cmd` (it may reach into `http`), is not part of Eyrie's
//! interface, and is not used by the binary.

use std::io::Cursor;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;

use crate::capture::v4l2::{Buffer, H264Frames, MjpegFrames, Mode};
use crate::media::fmp4::{self, SampleMeta};
use crate::storage::{MediaMode, NodeKind, NodeRecord};
use crate::video::VideoParams;

/// A scratch path of this process (fuzzers run one input at a time).
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("eyrie-fuzz-{}-{name}", std::process::id()))
}

/// Removes a scratch file when dropped (also when a check fails under `cargo test`).
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    })
}

fn clean_text(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// `data` cut into pieces at `sep` (at most `max` pieces; the last holds the rest).
fn pieces(data: &[u8], sep: u8, max: usize) -> Vec<&[u8]> {
    data.splitn(max, |b| *b == sep).collect()
}

/// Writes `frames` (one stream's, from its first key frame) the way the segmenter does, one
/// frame a fragment, and checks the file scans back to the same frames.
fn written_reads_back(params: &VideoParams, frames: &[(Bytes, bool)]) {
    let mut file = fmp4::init_segment(params, None).to_vec();
    for (i, (data, key)) in frames.iter().enumerate() {
        let meta = SampleMeta {
            duration: 3000,
            size: u32::try_from(data.len()).unwrap(),
            key: *key,
        };
        file.extend(fmp4::fragment_header(
            i as u32 + 1,
            i as u64 * 3000,
            &[meta],
        ));
        file.extend_from_slice(data);
    }
    let len = file.len() as u64;
    let scan = fmp4::scan(&mut Cursor::new(file), len).expect("what Eyrie writes scans back");
    assert_eq!(scan.fragments.len(), frames.len());
    assert_eq!(scan.valid_len, len);
    assert_eq!(scan.params.codec, params.codec);
    assert_eq!(
        scan.key_frames() as usize,
        frames.iter().filter(|f| f.1).count()
    );
}

/// A device's H.264 (Annex B) and MJPEG buffers: `data` is a byte stream cut into buffers
/// before each access unit delimiter (`00 00 00 01 09`), as encoders that write them deliver
/// it. Frames come out as length-prefixed NAL units, from a key frame with parameters on, and
/// what is recorded of them reads back.
pub fn annexb(data: &[u8]) {
    const AUD: &[u8] = &[0, 0, 0, 1, 9];
    let mut cuts: Vec<usize> = data
        .windows(AUD.len())
        .enumerate()
        .filter(|(i, w)| *w == AUD && *i > 0)
        .map(|(i, _)| i)
        .collect();
    cuts.insert(0, 0);
    cuts.push(data.len());
    let mode = Mode {
        fourcc: *b"H264",
        width: 640,
        height: 360,
        fps: 30,
    };
    let dropped = Arc::new(AtomicU64::new(0));
    let mut h264 = H264Frames::new(mode, dropped.clone());
    let mut mjpeg = MjpegFrames::new(mode, dropped);
    let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
    let mut params = None;
    let mut frames = Vec::new();
    let mut last_pts = -1;
    for (i, w) in cuts.windows(2).enumerate() {
        let buf = Buffer {
            data: data[w[0]..w[1]].to_vec(),
            sequence: i as u32 * 2,
            timestamp: Duration::from_millis(1000 + 33 * i as u64),
        };
        let mono = Duration::from_secs(3600);
        if let Some(f) = mjpeg.push(&buf, mono, now) {
            assert!(f.key && f.data.starts_with(&[0xFF, 0xD8]) && f.data.ends_with(&[0xFF, 0xD9]));
        }
        match h264.push(&buf, mono, now) {
            Ok(Some(f)) => {
                assert!(f.pts > last_pts, "times never go backwards");
                last_pts = f.pts;
                // Length-prefixed NAL units that fill the sample exactly.
                let mut rest = &f.data[..];
                while !rest.is_empty() {
                    assert!(rest.len() >= 4);
                    let n = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
                    assert!(n > 0 && rest.len() >= 4 + n);
                    rest = &rest[4 + n..];
                }
                if params.is_none() {
                    assert!(f.key, "the first frame is a key frame");
                    params = h264.params();
                    assert!(params.is_some(), "the first frame has parameters");
                }
                if f.new_params.is_some() {
                    assert!(f.key);
                    break; // a new segment starts here
                }
                frames.push((f.data, f.key));
            }
            Ok(None) => {}
            // The recorder ends the run and reconnects.
            Err(_) => break,
        }
    }
    if let Some(p) = params {
        written_reads_back(&p, &frames);
    }
}

/// What RTSP hands over besides the frames: the sample entry retina builds from the camera's
/// parameters (read into [`VideoParams`], written into an init segment that scans back), and
/// H.265 access units searched for key pictures.
pub fn rtsp(data: &[u8]) {
    crate::capture::h265_has_irap(data);
    if let Ok(p) = VideoParams::from_sample_entry(data) {
        // Recorded with these parameters, the segments must read back.
        written_reads_back(&p, &[(Bytes::from_static(&[0, 0, 0, 2, 0x26, 0x01]), true)]);
    }
}

/// An MP4 file played as a camera (`file://`): opened (its `moov` read, the sample table
/// checked), and its first frame read.
pub fn mp4_file(data: &[u8]) {
    let path = scratch("source.mp4");
    std::fs::write(&path, data).unwrap();
    let source = crate::capture::FileSource::new(path.clone());
    let _remove = RemoveOnDrop(path);
    runtime().block_on(async {
        use futures::StreamExt;
        let Ok(mut opened) = crate::capture::Source::open(&source).await else {
            return;
        };
        if let Some(Ok(f)) = opened.frames.next().await {
            assert!(f.key, "the first sample is a key frame");
            assert_eq!(f.pts, 0);
        }
    });
}

/// A segment file as startup recovery, views and MJPEG pictures read it (a damaged or
/// tampered card): scanned, every fragment renumbered, its numbers for the index, its pictures.
pub fn segment(data: &[u8]) {
    let len = data.len() as u64;
    let Ok(scan) = fmp4::scan(&mut Cursor::new(data), len) else {
        return;
    };
    assert!(scan.valid_len <= len);
    let mut end = scan.init.len() as u64;
    for f in &scan.fragments {
        assert!(
            f.offset >= end && f.end() <= scan.valid_len,
            "fragments in order"
        );
        end = f.end();
        if let Ok(moof) = fmp4::rewrite_moof(&f.moof, 7, 1 << 40) {
            assert!(fmp4::rewrite_moof(&moof, 8, 0).is_ok());
        }
    }
    let start_ms = 1_800_000_000_000;
    let finish = crate::media::recover::finish_of(start_ms, &scan);
    assert!(finish.end_ms >= start_ms);
    if let Ok(pictures) = crate::media::view::pictures_of(&scan, start_ms) {
        for p in pictures {
            assert!(p.len > 0 && p.offset + p.len <= scan.valid_len);
        }
    }
}

/// A camera's ONVIF answers: `data` is an HTTP status (its first byte picks one) and a SOAP
/// body, read as an answer and as a WS-Discovery ProbeMatches; what a scan keeps of them
/// (names, profiles, addresses, the clock) is cleaned and bounded.
pub fn onvif(data: &[u8]) {
    use crate::onvif::{probe, soap};
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let status = [200, 400, 401, 500][usize::from(pick % 4)];
    let from = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    if let Ok(answer) = soap::read_answer(status, body) {
        crate::onvif::device_time(&answer);
        for p in answer.all("Profiles").filter_map(crate::onvif::profile_of) {
            assert!(!p.token.is_empty() && p.token.chars().count() <= 64);
            assert!(clean_text(&p.token) && clean_text(&p.name));
            assert!(p.encoding.as_deref().is_none_or(clean_text));
        }
        let device = url::Url::parse("http://192.0.2.7/onvif/device_service").unwrap();
        for service in ["Media", "Events"] {
            if let Ok(Some(url)) = crate::onvif::service_address(&answer, service, &device) {
                assert_eq!(url.host_str(), Some("192.0.2.7"));
            }
        }
    }
    for f in probe::parse_matches(body, "urn:uuid:probe", from).unwrap_or_default() {
        assert!(f.endpoint.chars().count() <= 256 && f.scopes.len() <= 64);
        assert!(f.foreign.len() <= 8);
        for x in &f.xaddrs {
            assert_eq!(x.scheme(), "http");
        }
        for kind in ["name", "hardware", "location"] {
            if let Some(s) = crate::onvif::scope(&f.scopes, kind) {
                assert!(!s.is_empty() && s.chars().count() <= 64 && clean_text(&s));
            }
        }
    }
}

/// Another node's mDNS answer: `data` is a TXT record's RDATA (length-prefixed strings of
/// `key=value`), and also the instance name of a service's full name.
pub fn mdns_txt(data: &[u8]) {
    use crate::discovery::txt::{PeerTxt, instance_of};
    let mut strings = Vec::new();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        strings.push(&tail[..n]);
        rest = &tail[n..];
    }
    let props: Vec<(&str, Option<&[u8]>)> = strings
        .iter()
        .filter_map(|s| {
            let (k, v) = match s.iter().position(|b| *b == b'=') {
                Some(i) => (&s[..i], Some(&s[i + 1..])),
                None => (&s[..], None),
            };
            Some((std::str::from_utf8(k).ok()?, v))
        })
        .collect();
    let t = PeerTxt::parse(props);
    if let Some(id) = &t.node_id {
        assert!(id.len() == 36 && uuid::Uuid::try_parse(id).is_ok() && *id == id.to_lowercase());
    }
    if let Some(fp) = &t.tls_fingerprint {
        assert!(crate::base::hex::is_hex64(fp));
    }
    for v in [&t.version, &t.proto, &t.api, &t.name]
        .into_iter()
        .flatten()
    {
        assert!(!v.is_empty() && v.len() <= 128 && clean_text(v));
    }
    let service = crate::discovery::SERVICE_TYPE;
    let full = format!("{}.{service}", String::from_utf8_lossy(data));
    let name = instance_of(&full, service);
    assert!(name.len() <= 63 && clean_text(&name));
}

fn node(kind: NodeKind, media_mode: MediaMode) -> NodeRecord {
    NodeRecord {
        id: "0123456789ab".into(),
        label: "peer".into(),
        url: "http://192.0.2.9:8080".into(),
        key: Some("k".into()),
        enabled: true,
        kind,
        media_mode,
        tls_pin: None,
        created_ms: 0,
    }
}

/// A media URL as this node passes it on: the peer's own origin with no credentials, or this
/// node's relay path.
fn check_media_url(n: &NodeRecord, url: &str) {
    if let Some(out) = crate::http::relay::peer_media_url(n, url) {
        let relay = format!("/api/system/nodes/{}/media/", n.id);
        let direct = url::Url::parse(&out).is_ok_and(|u| {
            crate::federation::peers::same_origin(u.as_str(), &n.url) && u.password().is_none()
        });
        assert!(
            out.starts_with(&relay) || direct,
            "{url:?} passed on as {out:?}"
        );
        if crate::http::relay::relayed(n) {
            assert!(out.starts_with(&relay));
        }
    }
}

/// A peer's answers: `data` is up to four parts split at NUL bytes (which JSON never holds): its
/// health, its cameras, a recordings listing (Eyrie's, and CartaNVR's playback files) and a
/// media URL. What is kept is cleaned, bounded and on the peer's own origin.
pub fn peer_json(data: &[u8]) {
    use crate::http::recordings::federated::{
        Capped, CartaFile, PeerListing, carta_listing, read_peer_answer,
    };
    let parts = pieces(data, 0, 4);
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let value = |i: usize| serde_json::from_slice::<serde_json::Value>(part(i)).ok();
    let relayed = node(NodeKind::Eyrie, MediaMode::Relay);
    let direct = node(NodeKind::Eyrie, MediaMode::Direct);
    let carta = node(NodeKind::Cartanvr, MediaMode::Direct);
    if let (Some(hv), Some(cv)) = (value(0), value(1)) {
        for n in [&direct, &carta] {
            let Ok((cams, health)) = crate::federation::peers::read_answers(n, &hv, &cv) else {
                continue;
            };
            assert!(cams.len() <= 1000);
            if n.kind == NodeKind::Cartanvr {
                assert_eq!(health.cameras_total, cams.len());
            }
            for c in &cams {
                assert!(!c.id.is_empty() && c.id.len() <= 64);
                assert!(c.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
                assert!(clean_text(&c.name) && clean_text(&c.state));
                assert!(c.codec.as_deref().is_none_or(clean_text));
                if let Some(u) = &c.live_url {
                    assert!(crate::federation::peers::same_origin(u, &n.url));
                }
            }
        }
    }
    let status = if part(0).first() == Some(&b'!') {
        500
    } else {
        200
    };
    match read_peer_answer::<PeerListing>(status, part(2)) {
        Ok(l) => {
            for item in l.segments.items.iter().chain(&l.runs.items) {
                for n in [&relayed, &direct] {
                    if let Some(u) = &item.url {
                        check_media_url(n, u);
                    }
                }
            }
        }
        Err(e) => assert!(clean_text(&e) || e.starts_with("invalid answer")),
    }
    if let Ok(files) = read_peer_answer::<Capped<CartaFile>>(200, part(2)) {
        let base = carta.url.clone();
        let l = carta_listing(&base, files);
        for s in &l.segments.items {
            let (start, end) = (s.start_ms.unwrap(), s.end_ms.unwrap());
            assert!(end >= start);
            assert!(
                s.url
                    .as_ref()
                    .unwrap()
                    .starts_with(&format!("{base}/api/recordings/"))
            );
            check_media_url(&carta, s.url.as_ref().unwrap());
        }
    }
    let url = String::from_utf8_lossy(part(3));
    for n in [&relayed, &direct, &carta] {
        check_media_url(n, &url);
    }
}

/// eyrie.toml, from the boot partition or the data disk: read and checked; a file that loads
/// still loads, the same but for its secrets, once `apply-boot-config` has removed them.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut cfg) = crate::config::Config::from_text(text) else {
        return;
    };
    let mut doc: toml_edit::DocumentMut = text.parse().expect("what toml reads, toml_edit reads");
    let mut removed = 0;
    for (table, key) in [("wifi", "psk"), ("auth", "admin_password")] {
        if crate::system::apply::remove_secret(&mut doc, table, key, "removed") {
            removed += 1;
        }
    }
    let had = usize::from(cfg.auth.admin_password.is_some())
        + usize::from(cfg.wifi.as_ref().is_some_and(|w| w.psk.is_some()));
    assert_eq!(removed, had, "every secret is found");
    let out = doc.to_string();
    let again = crate::config::Config::from_text(&out)
        .unwrap_or_else(|e| panic!("the file no longer loads: {e}\n{out}"));
    cfg.auth.admin_password = None;
    if let Some(w) = &mut cfg.wifi {
        w.psk = None;
    }
    assert_eq!(format!("{cfg:?}"), format!("{again:?}"));
}

/// The `Range`, `If-Range` and `If-None-Match` headers of a request for a recording (three parts
/// split at newlines), against a file whose size the first two bytes give: the answer's status,
/// headers and body agree with each other and with the file.
pub fn range(data: &[u8]) {
    use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
    if data.len() < 2 {
        return;
    }
    let size = usize::from(u16::from_be_bytes([data[0], data[1]]) % 4096);
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let file = crate::media::view::VirtualFile::in_memory(content.clone().into(), "\"e1\"".into());
    let mut headers = HeaderMap::new();
    for (name, value) in [header::RANGE, header::IF_RANGE, header::IF_NONE_MATCH]
        .into_iter()
        .zip(pieces(&data[2..], b'\n', 3))
    {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.insert(name, v);
        }
    }
    let answer = crate::http::ranges::serve(&headers, &file, None);
    let status = answer.status();
    let head = |name: header::HeaderName| {
        answer
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let length = head(header::CONTENT_LENGTH).map(|l| l.parse::<usize>().unwrap());
    let want: Option<&[u8]> = match status {
        StatusCode::OK => Some(&content),
        StatusCode::PARTIAL_CONTENT => {
            let cr = head(header::CONTENT_RANGE).unwrap();
            let (span, total) = cr.strip_prefix("bytes ").unwrap().split_once('/').unwrap();
            let (a, b) = span.split_once('-').unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            assert!(a <= b && b < size && total == size.to_string());
            Some(&content[a..=b])
        }
        StatusCode::NOT_MODIFIED | StatusCode::RANGE_NOT_SATISFIABLE => None,
        s => panic!("status {s}"),
    };
    let body = futures::executor::block_on(axum::body::to_bytes(answer.into_body(), usize::MAX))
        .expect("a file in memory streams");
    if let Some(want) = want {
        assert_eq!(length, Some(want.len()));
        assert_eq!(&body[..], want);
    }
}

/// Media tokens and session cookies as presented: `data` as a token, as an edit of a real one
/// (at the position its first byte gives, the rest inserted in place of one byte), and as a
/// `Cookie` header. Only the one spelling issued opens anything.
pub fn token(data: &[u8]) {
    if let Ok(v) = axum::http::HeaderValue::from_bytes(data) {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(axum::http::header::COOKIE, v);
        if let Some(c) = crate::http::cookie::session_cookie(&headers, "eyrie-0123456789ab") {
            assert!(!c.contains(';'), "{c:?}");
        }
    }
    use crate::federation::tokens::{Kind, MediaTokens};
    static TOKENS: OnceLock<MediaTokens> = OnceLock::new();
    let tokens = TOKENS.get_or_init(|| {
        let dir = scratch("index");
        std::fs::create_dir_all(&dir).unwrap();
        let index = Arc::new(crate::storage::Index::open(&dir.join("index.redb")).unwrap());
        // Open, it needs no name: nothing is left behind.
        std::fs::remove_dir_all(&dir).unwrap();
        let keys = crate::federation::keys::KeyStore::load(index).unwrap();
        MediaTokens::new(&[7; 32], Duration::from_secs(600), keys)
    });
    if let Ok(s) = std::str::from_utf8(data) {
        if tokens.check(s, "cam1", Kind::Live) {
            // Only in the one spelling issued: `{exp}.u.{64 lower-case hex}`.
            let (exp, mac) = s.split_once(".u.").unwrap();
            assert!(exp.bytes().all(|b| b.is_ascii_digit()) && !exp.starts_with('0'));
            assert!(crate::base::hex::is_hex64(mac) && mac == mac.to_lowercase());
        }
        if let Some(k) = MediaTokens::key_of(s) {
            assert!(k != "u" && k.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
    let real = tokens.issue("cam1", Kind::Live, None);
    assert!(tokens.check(&real, "cam1", Kind::Live));
    assert!(
        !tokens.check(&real, "cam2", Kind::Live) && !tokens.check(&real, "cam1", Kind::Recording)
    );
    if let Some((&at, insert)) = data.split_first() {
        let mut edited = real.clone().into_bytes();
        let at = usize::from(at) % edited.len();
        edited.splice(at..at + 1, insert.iter().copied());
        if let Ok(edited) = String::from_utf8(edited) {
            assert_eq!(
                tokens.check(&edited, "cam1", Kind::Live),
                edited == real,
                "{edited:?} for {real:?}"
            );
        }
    }
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by its name in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, Target); 10] = [
    ("annexb", annexb),
    ("rtsp", rtsp),
    ("mp4_file", mp4_file),
    ("segment", segment),
    ("onvif", onvif),
    ("mdns_txt", mdns_txt),
    ("peer_json", peer_json),
    ("config", config),
    ("range", range),
    ("token", token),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every input of every corpus (the seeds and what fuzzing kept, crashes found included)
    /// passes its target: the crashes fixed stay fixed.
    #[test]
    fn every_corpus_input_passes_its_target() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (name, target) in TARGETS {
            let dir = root.join(name);
            let mut n = 0;
            for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
                let path = e.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let ok = std::panic::catch_unwind(|| target(&data));
                assert!(ok.is_ok(), "{name}: {} fails", path.display());
                n += 1;
            }
            assert!(n > 0, "{name} has no corpus");
        }
    }
}
