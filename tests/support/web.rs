//! Plain HTTP from the test to a node: JSON requests, a free loopback port, reading a body.

use std::io::Read;
use std::net::TcpListener;
use std::time::Duration;

use serde_json::Value;

/// `(status, JSON body or Null when empty)` of a request with an optional JSON body; None when
/// nothing answers. A body that is not JSON fails the test.
pub fn json_request(method: &str, url: &str, body: Option<&str>) -> Option<(u16, Value)> {
    let req = ureq::request(method, url).timeout(Duration::from_secs(15));
    let res = match body {
        Some(b) => req.set("content-type", "application/json").send_string(b),
        None => req.call(),
    };
    let resp = match res {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let text = resp.into_string().unwrap_or_default();
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {text}"))
    };
    Some((status, json))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}
