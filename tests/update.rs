//! Appliance updates and boot settings with real eyrie processes on a fake appliance
//! (tests/support/appliance.rs: the A/B slot "devices" are regular files, a temporary directory
//! plays /boot and /run/eyrie). The image is a real squashfs from mksquashfs, signed by
//! `eyrie sign` with a key made in the test's temporary directory.

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::appliance::Appliance;
use support::*;

const SLOT_SIZE: u64 = 1 << 20;

/// A real root image for these tests, signed with the appliance's key.
fn squashfs(a: &Appliance) -> Option<Vec<u8>> {
    a.image(&b"the next version\n".repeat(500))
        .map(|(_, img)| img)
}

fn sha256(b: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// `(status, JSON)` of an upload with optional extra headers.
fn upload(url: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = ureq::post(url).timeout(Duration::from_secs(60));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn basic_auth() -> String {
    use base64::Engine;
    let creds = format!("{ADMIN_USER}:{ADMIN_PASSWORD}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(creds)
    )
}

/// Announces an upload of `length` bytes with `Expect: 100-continue` and returns the answer
/// that came instead of `100 Continue`.
fn expect_continue(e: &Eyrie, length: u64) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", e.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    write!(
        s,
        "POST /api/system/update HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\ncontent-length: {length}\r\nexpect: 100-continue\r\nconnection: close\r\n\r\n",
        basic_auth()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn an_update_goes_to_the_other_slot_and_waits_for_a_reboot() {
    let a = Appliance::new("a", SLOT_SIZE);
    let Some(img) = squashfs(&a) else {
        return;
    };
    let e = Eyrie::start(&a.config(), &[]);
    let st = e.get("/api/system/update");
    assert_eq!(st["appliance"], true, "{st}");
    assert_eq!(
        (st["slot"].as_str(), st["active"].as_str()),
        (Some("a"), Some("a"))
    );
    assert!(st["next"].is_null() && st["version"].is_string(), "{st}");

    let sum = sha256(&img);
    let (s, v) = upload(
        &e.url("/api/system/update"),
        &img,
        &[("x-eyrie-sha256", &sum)],
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["slot"], "b");
    assert_eq!(v["sha256"], sum.as_str());
    assert_eq!(v["bytes"], img.len() as u64);
    assert_eq!(v["rebooting"], false);
    assert_eq!(v["signed_by"], a.public_key("update.key"), "{v}");
    assert!(v["message"].as_str().unwrap().contains("reboot"), "{v}");
    let b = a.slot("b");
    assert_eq!(&b[..img.len()], &img[..], "slot b holds exactly the image");
    assert!(b[img.len()..].iter().all(|x| *x == b'B'), "nothing past it");
    assert!(
        a.slot("a").iter().all(|x| *x == b'A'),
        "the running slot is untouched"
    );
    assert_eq!(a.ab(), "active=a\nnext=b\ntrial=\nfailed=\n");
    assert!(!a.path("boot/ab.txt.new").exists());
    let st = e.get("/api/system/update");
    assert_eq!(st["next"], "b", "{st}");
    let h = e.get("/api/health");
    assert_eq!(h["system"]["slot"], "a", "{h}");
    assert_eq!(h["system"]["next"], "b", "{h}");
    assert!(h["system"]["boot_config_error"].is_null(), "{h}");
    assert!(!a.path("rebooted").exists());

    // The same image again, sent chunked (no Content-Length), rebooting at once this time.
    let resp = ureq::post(&e.url("/api/system/update?reboot=true"))
        .timeout(Duration::from_secs(60))
        .send(std::io::Cursor::new(img.clone()))
        .unwrap_or_else(|e| panic!("chunked upload: {e}"));
    let v: Value = resp.into_json().unwrap();
    assert_eq!(v["sha256"], sum.as_str(), "{v}");
    assert_eq!(v["rebooting"], true);
    e.wait_until("runs the reboot command", Duration::from_secs(10), || {
        a.path("rebooted").exists()
    });
    assert_eq!(
        std::fs::read_to_string(a.path("rebooted")).unwrap(),
        "now\n"
    );
}

#[test]
fn bad_updates_change_nothing_and_the_server_stays_up() {
    let a = Appliance::new("b", SLOT_SIZE);
    let Some(img) = squashfs(&a) else {
        return;
    };
    std::fs::write(a.path("boot/ab.txt"), "active=b\nnext=\ntrial=\nfailed=a\n").unwrap();
    let mut e = Eyrie::start(&a.config(), &[]);
    let url = e.url("/api/system/update");
    let before = a.ab();

    // Larger than the slot: refused before anything is written, and before the body is sent
    // by a client that waits for `100 Continue` (as curl does).
    let answer = expect_continue(&e, SLOT_SIZE + 1);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("larger than slot a"), "{answer}");
    assert!(a.slot("a").iter().all(|x| *x == b'A'));
    assert_eq!(a.ab(), before);

    // Not a squashfs.
    let (s, v) = upload(&url, &vec![0x7f; 8192], &[]);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("hsqs"), "{v}");
    assert!(a.slot("a").iter().all(|x| *x == b'A'));
    // A squashfs cut short of the size its superblock gives.
    let used = u64::from_le_bytes(img[40..48].try_into().unwrap()) as usize;
    let (s, v) = upload(&url, &img[..used - 1], &[]);
    assert_eq!(s, 400, "{v}");
    assert_eq!(a.ab(), before);
    // A malformed checksum header.
    let (s, v) = upload(&url, &img, &[("x-eyrie-sha256", "abc")]);
    assert_eq!(s, 400, "{v}");

    // A good upload, then one whose checksum does not match: next is unset again.
    let (s, v) = upload(&url, &img, &[]);
    assert_eq!(s, 200, "{v}");
    assert_eq!(a.ab(), "active=b\nnext=a\ntrial=\nfailed=a\n");
    let (s, v) = upload(&url, &img, &[("x-eyrie-sha256", &"0".repeat(64))]);
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("will not be booted"),
        "{v}"
    );
    assert_eq!(a.ab(), before, "next unset");
    assert!(
        a.slot("b").iter().all(|x| *x == b'B'),
        "the running slot is untouched"
    );

    // Callers other than an admin.
    let (s, _) = upload(&e.anon_url("/api/system/update"), &img, &[]);
    assert_eq!(s, 401);
    let (s, _) = upload(&e.anon_url("/api/system/reboot"), &[], &[]);
    assert_eq!(s, 401);
    let (s, k) = e.request("POST", "/api/federation/keys", Some(r#"{"name": "peer"}"#));
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap();
    for p in ["/api/system/update", "/api/system/reboot"] {
        let (s, v) = upload(&e.anon_url(p), &img, &[("x-nvr-auth", key)]);
        assert_eq!(s, 403, "{p}: {v}");
    }
    // A session without its CSRF token.
    let resp = ureq::post(&e.anon_url("/api/session"))
        .set("content-type", "application/json")
        .send_string(&format!(
            r#"{{"username": "{ADMIN_USER}", "password": "{ADMIN_PASSWORD}"}}"#
        ))
        .unwrap();
    let cookie = resp
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (s, v) = upload(
        &e.anon_url("/api/system/update"),
        &img,
        &[("cookie", &cookie)],
    );
    assert_eq!(s, 403, "{v}");
    assert_eq!(a.ab(), before);
    assert!(!a.path("rebooted").exists());
    assert!(e.alive(), "still running");
    assert_eq!(e.get("/api/system/update")["slot"], "b");
}

/// Size of the signature trailer at the end of a signed image: the signer's public key (32
/// bytes), the signature (64) and the magic (16); docs/update.md.
const TRAILER: usize = 112;

/// The payload of the images of the signing tests.
const PAYLOAD: &[u8] = b"a release\n";

#[test]
fn only_images_signed_by_a_trusted_key_become_the_next_slot() {
    let a = Appliance::new("a", SLOT_SIZE);
    let Some((_, signed)) = a.image(PAYLOAD) else {
        return;
    };
    let trusted = a.public_key("update.key");
    // The same image unsigned, and signed with a key the appliance does not know.
    std::fs::create_dir(a.path("other")).unwrap();
    let (other_path, unsigned) = appliance::squashfs(&a.path("other"), PAYLOAD).unwrap();
    let other = a.keygen("other.key");
    a.sign_with("other.key", &other_path);
    let by_other = std::fs::read(&other_path).unwrap();
    assert_eq!(&signed[..signed.len() - TRAILER], &unsigned[..]);
    assert_eq!(&by_other[..by_other.len() - TRAILER], &unsigned[..]);

    let mut e = Eyrie::start(&a.config(), &[]);
    let url = e.url("/api/system/update");
    let clean = "active=a\nnext=\ntrial=\nfailed=\n";
    let refused = |body: &[u8], why: &str| {
        let (s, v) = upload(&url, body, &[]);
        assert_eq!(s, 400, "{why}: {v}");
        let msg = v["error"].as_str().unwrap_or_else(|| panic!("{v}"));
        assert!(msg.contains(why), "{why:?} in {msg:?}");
        assert_eq!(a.ab(), clean, "{why}: slot b is not next");
        assert!(a.slot("a").iter().all(|x| *x == b'A'), "slot a untouched");
        msg.to_string()
    };

    // The appliance's own key: taken, and the answer names it.
    let (s, v) = upload(&url, &signed, &[]);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["signed_by"], trusted.as_str(), "{v}");
    assert_eq!(a.ab(), "active=a\nnext=b\ntrial=\nfailed=\n");

    // Unsigned (also: a trailer cut short by a byte is no trailer). The slot was overwritten,
    // so the update written before is not next either.
    refused(&unsigned, "not signed");
    refused(&signed[..signed.len() - 1], "not signed");
    // Signed, by a key it does not trust.
    let msg = refused(&by_other, "does not trust");
    assert!(
        msg.contains(&other) && msg.contains("update-keys.txt"),
        "{msg}"
    );
    // Changed after signing: one byte of the squashfs, or the signature's key swapped for the
    // trusted one.
    let mut altered = signed.clone();
    altered[100] ^= 1;
    refused(&altered, "changed after it was signed");
    let mut forged = by_other.clone();
    let at = forged.len() - TRAILER;
    forged[at..at + 32].copy_from_slice(&signed[at..at + 32]);
    refused(&forged, "changed after it was signed");
    // The checksum header does not make an unsigned image any better.
    let (s, v) = upload(&url, &unsigned, &[("x-eyrie-sha256", &sha256(&unsigned))]);
    assert_eq!(s, 400, "{v}");

    // Keys in settings. With none anywhere, an update is refused before its body is sent.
    std::fs::write(a.path("boot/update-keys.txt"), "# no keys\n").unwrap();
    let answer = expect_continue(&e, signed.len() as u64);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("trusts no update key"), "{answer}");
    let (s, v) = e.request(
        "PUT",
        "/api/system/settings",
        Some(&format!(r#"{{"update_keys": [" {other} ", "{other}"]}}"#)),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["update_keys"], serde_json::json!([other]), "one spelling");
    assert_eq!(
        e.get("/api/system/settings")["update_keys"],
        serde_json::json!([other])
    );
    let (s, v) = upload(&url, &by_other, &[]);
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["signed_by"], other.as_str());
    assert_eq!(a.ab(), "active=a\nnext=b\ntrial=\nfailed=\n");
    refused(&signed, "does not trust");
    // Bad keys are refused, the stored ones kept.
    for bad in [r#"["not a key"]"#, r#"["AAAA"]"#, r#""one""#] {
        let (s, v) = e.request(
            "PUT",
            "/api/system/settings",
            Some(&format!(r#"{{"update_keys": {bad}}}"#)),
        );
        assert!(s == 400 || s == 422, "{bad}: {s} {v}");
    }
    assert_eq!(
        e.get("/api/system/settings")["update_keys"],
        serde_json::json!([other])
    );
    // A peer's key changes no settings.
    let (s, k) = e.request("POST", "/api/federation/keys", Some(r#"{"name": "peer"}"#));
    assert_eq!(s, 201, "{k}");
    let resp = ureq::put(&e.anon_url("/api/system/settings"))
        .set("x-nvr-auth", k["key"].as_str().unwrap())
        .set("content-type", "application/json")
        .send_string(r#"{"update_keys": []}"#);
    assert!(matches!(resp, Err(ureq::Error::Status(403, _))), "{resp:?}");
    // The boot partition's file and the settings' keys both count.
    std::fs::write(a.path("boot/update-keys.txt"), format!("{trusted}\n")).unwrap();
    let (s, v) = upload(&url, &signed, &[]);
    assert_eq!(
        (s, v["signed_by"].as_str()),
        (200, Some(trusted.as_str())),
        "{v}"
    );

    // A keys file that cannot be read: 409 naming it and the line, nothing written.
    std::fs::write(
        a.path("boot/update-keys.txt"),
        format!("{trusted}\nssh-ed25519 AAAAC3Nza\n"),
    )
    .unwrap();
    std::fs::write(a.path("boot/ab.txt"), clean).unwrap();
    let b_before = a.slot("b");
    let (s, v) = upload(&url, &signed, &[]);
    assert_eq!(s, 409, "{v}");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.contains("update-keys.txt: line 2"), "{msg}");
    assert_eq!(a.slot("b"), b_before, "nothing written");
    assert_eq!(a.ab(), clean);
    assert!(e.alive(), "still running");
}

#[test]
fn the_boot_partition_can_allow_unsigned_updates() {
    let a = Appliance::new("b", SLOT_SIZE);
    let Some((_, signed)) = a.image(PAYLOAD) else {
        return;
    };
    std::fs::create_dir(a.path("other")).unwrap();
    let (other_path, unsigned) = appliance::squashfs(&a.path("other"), PAYLOAD).unwrap();
    let other = a.keygen("other.key");
    a.sign_with("other.key", &other_path);
    let by_other = std::fs::read(&other_path).unwrap();
    // No key trusted anywhere: only the setting lets anything in.
    std::fs::remove_file(a.path("boot/update-keys.txt")).unwrap();
    let mut e = Eyrie::start(
        &format!("{}allow_unsigned_updates = true\n", a.config()),
        &[],
    );
    let url = e.url("/api/system/update");
    let (s, v) = upload(&url, &unsigned, &[]);
    assert_eq!(s, 200, "{v}");
    assert!(v["signed_by"].is_null(), "{v}");
    assert_eq!(a.ab(), "active=a\nnext=a\ntrial=\nfailed=\n");
    assert_eq!(&a.slot("a")[..unsigned.len()], &unsigned[..]);
    // A good signature by any key passes; an altered image never does.
    let (s, v) = upload(&url, &by_other, &[]);
    assert_eq!(
        (s, v["signed_by"].as_str()),
        (200, Some(other.as_str())),
        "{v}"
    );
    let mut altered = signed.clone();
    altered[100] ^= 1;
    let (s, v) = upload(&url, &altered, &[]);
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("changed after"),
        "{v}"
    );
    assert_eq!(a.ab(), "active=a\nnext=\ntrial=\nfailed=\n");
    assert!(a.slot("b").iter().all(|x| *x == b'B'), "the running slot");
    assert!(e.alive());
}

/// `eyrie sign ARGS` as a command that may fail: (success, stdout, stderr).
fn sign(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .arg("sign")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn eyrie_sign_makes_keys_signs_and_verifies() {
    use std::os::unix::fs::PermissionsExt;
    let a = Appliance::new("a", 4096);
    let key = a.path("update.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the private key is the owner's");
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    let public = a.public_key("update.key");
    let (ok, out, _) = sign(&["public-key".as_ref(), key.as_os_str()]);
    assert!(ok && out == public, "{out}");
    // A key is never overwritten.
    let (ok, _, err) = sign(&["keygen".as_ref(), key.as_os_str()]);
    assert!(!ok && err.contains("update.key"), "{err}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), text);

    let Some((image, signed)) = a.image(PAYLOAD) else {
        return;
    };
    let keys = a.path("boot/update-keys.txt");
    let verify = |keys: &Path, image: &Path| {
        sign(&[
            "verify".as_ref(),
            "--keys".as_ref(),
            keys.as_os_str(),
            image.as_os_str(),
        ])
    };
    let (ok, out, err) = verify(&keys, &image);
    assert!(ok && out == public, "{out} {err}");
    // Signing twice, or something that is not a root image, is refused.
    let (ok, _, err) = sign(&[
        "image".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        image.as_os_str(),
    ]);
    assert!(!ok && err.contains("signed already"), "{err}");
    assert_eq!(std::fs::read(&image).unwrap(), signed, "unchanged");
    let junk = a.path("junk.bin");
    std::fs::write(&junk, vec![0x7f; 8192]).unwrap();
    let (ok, _, err) = sign(&[
        "image".as_ref(),
        "--key".as_ref(),
        key.as_os_str(),
        junk.as_os_str(),
    ]);
    assert!(!ok && err.contains("not a root image"), "{err}");
    assert_eq!(std::fs::read(&junk).unwrap(), vec![0x7f; 8192]);
    // Another key's list, an altered image, an unsigned one: exit status 1 and why.
    let other = a.path("other-keys.txt");
    std::fs::write(&other, format!("{}\n", a.keygen("other.key"))).unwrap();
    let (ok, _, err) = verify(&other, &image);
    assert!(!ok && err.contains("does not trust"), "{err}");
    let mut altered = signed.clone();
    altered[100] ^= 1;
    std::fs::write(&junk, &altered).unwrap();
    let (ok, _, err) = verify(&keys, &junk);
    assert!(!ok && err.contains("changed after"), "{err}");
    std::fs::write(&junk, &signed[..signed.len() - TRAILER]).unwrap();
    let (ok, _, err) = verify(&keys, &junk);
    assert!(!ok && err.contains("not signed"), "{err}");
}

#[test]
fn one_update_at_a_time() {
    let a = Appliance::new("a", SLOT_SIZE);
    let Some(img) = squashfs(&a) else {
        return;
    };
    let e = Eyrie::start(&a.config(), &[]);
    // The first upload sends its headers and the superblock, then waits.
    let mut first = std::net::TcpStream::connect(("127.0.0.1", e.port)).unwrap();
    write!(
        first,
        "POST /api/system/update HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        basic_auth(),
        img.len()
    )
    .unwrap();
    first.write_all(&img[..512]).unwrap();
    e.wait_until("writes the first update", Duration::from_secs(10), || {
        e.get("/api/system/update")["updating"] == true
    });
    let (s, v) = upload(&e.url("/api/system/update"), &img, &[]);
    assert_eq!(s, 409, "{v}");
    assert!(v["error"].as_str().unwrap().contains("already"), "{v}");
    let (s, v) = e.request("POST", "/api/system/reboot", None);
    assert_eq!(s, 409, "no reboot mid-update: {v}");
    // The first one completes.
    first.write_all(&img[512..]).unwrap();
    let mut answer = String::new();
    first.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(&a.slot("b")[..img.len()], &img[..]);
    assert_eq!(a.ab(), "active=a\nnext=b\ntrial=\nfailed=\n");
}

#[test]
fn a_trial_boot_is_confirmed_once_eyrie_serves() {
    let a = Appliance::new("b", SLOT_SIZE);
    std::fs::write(
        a.path("boot/ab.txt"),
        "active=a\nnext=\ntrial=b\nfailed=a\n",
    )
    .unwrap();
    let e = Eyrie::start(&a.config(), &[]);
    e.wait_until("confirms slot b", Duration::from_secs(10), || {
        a.ab() == "active=b\nnext=\ntrial=\nfailed=\n"
    });
    let st = e.get("/api/system/update");
    assert_eq!(
        (st["slot"].as_str(), st["active"].as_str()),
        (Some("b"), Some("b"))
    );

    // Running the active slot after a failed trial: nothing to confirm.
    let a = Appliance::new("a", SLOT_SIZE);
    let state = "active=a\nnext=\ntrial=\nfailed=b\n";
    std::fs::write(a.path("boot/ab.txt"), state).unwrap();
    let e = Eyrie::start(&a.config(), &[]);
    assert_eq!(e.get("/api/health")["system"]["failed"], "b");
    assert_eq!(a.ab(), state);
}

#[test]
fn reboot_runs_the_configured_command() {
    let a = Appliance::new("a", SLOT_SIZE);
    let e = Eyrie::start(&a.config(), &[]);
    let (s, v) = e.request("POST", "/api/system/reboot", None);
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["rebooting"], true);
    e.wait_until("runs the reboot command", Duration::from_secs(10), || {
        a.path("rebooted").exists()
    });
}

#[test]
fn without_boot_env_it_is_not_an_appliance() {
    let a = Appliance::new("a", SLOT_SIZE);
    std::fs::remove_file(a.path("run/eyrie/boot.env")).unwrap();
    let mut e = Eyrie::start(&a.config(), &[]);
    let st = e.get("/api/system/update");
    assert_eq!(st["appliance"], false, "{st}");
    assert!(e.get("/api/health")["system"].is_null());
    let (s, v) = upload(&e.url("/api/system/update"), b"hsqs", &[]);
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("not running as an appliance"),
        "{v}"
    );
    let (s, v) = e.request("POST", "/api/system/reboot", None);
    assert_eq!(s, 409, "{v}");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!a.path("rebooted").exists());
    assert!(a.slot("a").iter().all(|x| *x == b'A') && a.slot("b").iter().all(|x| *x == b'B'));
    assert!(e.alive());
}

fn apply(config: &Path, data: &Path, state: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_eyrie"))
        .arg("apply-boot-config")
        .arg("--config")
        .arg(config)
        .arg("--data")
        .arg(data)
        .arg("--state")
        .arg(state)
        .output()
        .unwrap()
}

/// The boot partition's eyrie.toml as a user writes it.
const BOOT_TOML: &str = r#"# Settings for my shed appliance.
[system]
hostname = "shed-cam"   # reachable as shed-cam.local

[wifi]
ssid = "IEEE"
# The house network.
psk = "password"
country = "gb"

[auth]
admin_user = "admin"
admin_password = "the-new-password"

[node]
label = "Shed" # shown on every page
"#;

#[test]
fn boot_settings_are_applied_and_the_secrets_leave_the_file() {
    use std::os::unix::fs::PermissionsExt;
    let home = tempfile::tempdir().unwrap();
    // A node that has run before: its admin has the harness's password.
    let mut e = Eyrie::start_in(home.path(), "", &[]);
    e.terminate();
    let boot = home.path().join("boot.toml");
    std::fs::write(&boot, BOOT_TOML).unwrap();
    let (data, state) = (home.path().join("data"), home.path().join("system"));

    let out = apply(&boot, &data, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let wpa = std::fs::read_to_string(state.join("wpa_supplicant.conf")).unwrap();
    // wpa_passphrase's key for SSID "IEEE", passphrase "password" (IEEE 802.11i H.4.1).
    assert!(
        wpa.contains("psk=f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e\n"),
        "{wpa}"
    );
    assert!(
        wpa.contains("country=GB\n") && !wpa.contains("password"),
        "{wpa}"
    );
    let mode = std::fs::metadata(state.join("wpa_supplicant.conf"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_to_string(state.join("hostname")).unwrap(),
        "shed-cam\n"
    );
    let rewritten = std::fs::read_to_string(&boot).unwrap();
    assert!(
        !rewritten.contains("\"password\"") && !rewritten.contains("the-new-password"),
        "{rewritten}"
    );
    for kept in [
        "# Settings for my shed appliance.",
        "# reachable as shed-cam.local",
        "# The house network.",
        "ssid = \"IEEE\"",
        "country = \"gb\"",
        "label = \"Shed\" # shown on every page",
        "wifi.psk was applied",
        "auth.admin_password was applied",
    ] {
        assert!(rewritten.contains(kept), "{kept:?} kept in:\n{rewritten}");
    }
    assert!(!home.path().join("boot.toml.new").exists());

    // Every boot runs it again: nothing changes, the Wi-Fi key stays.
    let out = apply(&boot, &data, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&boot).unwrap(), rewritten);
    assert_eq!(
        std::fs::read_to_string(state.join("wpa_supplicant.conf")).unwrap(),
        wpa
    );

    // Eyrie runs with the rewritten file; the admin logs in with the new password only.
    let e = Eyrie::start_in(home.path(), &rewritten, &[]);
    let login = |pw: &str| {
        json_request(
            "POST",
            &e.anon_url("/api/session"),
            Some(&format!(r#"{{"username": "admin", "password": "{pw}"}}"#)),
        )
        .unwrap()
        .0
    };
    assert_eq!(login("the-new-password"), 200);
    assert_eq!(login(ADMIN_PASSWORD), 401);
}

#[test]
fn a_bad_boot_file_changes_nothing_and_shows_in_health() {
    let a = Appliance::new("a", SLOT_SIZE);
    let boot = a.path("boot/eyrie.toml");
    let state = a.path("state");
    let data = a.dir.path().join("data");
    // A good boot first, with the default host name.
    std::fs::write(
        &boot,
        "[wifi]\nssid = \"Home\"\npsk = \"a good passphrase\"\n",
    )
    .unwrap();
    let out = apply(&boot, &data, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = std::fs::read_to_string(state.join("hostname")).unwrap();
    let suffix = name
        .trim()
        .strip_prefix("eyrie-")
        .unwrap_or_else(|| panic!("{name}"));
    assert!(
        suffix.len() == 4 && suffix.bytes().all(|c| c.is_ascii_hexdigit()),
        "{name}"
    );
    let wpa = std::fs::read_to_string(state.join("wpa_supplicant.conf")).unwrap();

    let bad = "# edited on a PC\n[wifi]\nssid = \"Home\"\npsk = \"short\"\n[auth]\nadmin_password = \"another-password\"\n";
    std::fs::write(&boot, bad).unwrap();
    let out = apply(&boot, &data, &state);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one clear error: {err}");
    assert!(
        err.contains("wifi.psk") && err.contains("eyrie.toml"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&boot).unwrap(),
        bad,
        "the file is unchanged"
    );
    assert_eq!(
        std::fs::read_to_string(state.join("wpa_supplicant.conf")).unwrap(),
        wpa
    );
    assert_eq!(
        std::fs::read_to_string(state.join("hostname")).unwrap(),
        name
    );
    assert!(!data.join("eyrie.redb").exists(), "no password applied");

    // Eyrie starts with the last good settings and shows the error.
    let e = Eyrie::start(&a.config(), &[]);
    let h = e.get("/api/health");
    let shown = h["system"]["boot_config_error"]
        .as_str()
        .unwrap_or_else(|| panic!("{h}"));
    assert!(shown.contains("wifi.psk"), "{shown}");

    // Fixed: the error goes away.
    std::fs::write(&boot, "[wifi]\nssid = \"Home\"\n").unwrap();
    let out = apply(&boot, &data, &state);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(e.get("/api/health")["system"]["boot_config_error"].is_null());
    assert_eq!(
        std::fs::read_to_string(state.join("wpa_supplicant.conf")).unwrap(),
        wpa,
        "the key applied earlier stays once the passphrase has left the file"
    );
}
