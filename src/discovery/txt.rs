//! What a node says about itself in its DNS-SD records, and how an answer from another node is
//! read back: the instance name (the label, cut to what a DNS label holds) and the TXT keys
//! `id`, `ver`, `api`, `proto`, `tls`, `name`. Everything read from the network is checked and
//! bounded before it is kept: a peer's TXT record is untrusted input.

use std::net::IpAddr;

use serde::Serialize;

/// The version of the discovery and pairing protocol (TXT `proto`).
pub const PROTO: &str = "1";
/// Longest instance name advertised, in bytes: a DNS label holds 63, and conflict renaming may
/// append " (NN)".
const INSTANCE_MAX: usize = 56;
/// Longest text value kept from a peer's TXT record.
const VALUE_MAX: usize = 128;

/// This node, as it advertises itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advert {
    pub node_id: String,
    pub label: String,
    pub version: String,
    /// SHA-256 fingerprint of the certificate when the advertised port serves HTTPS.
    pub tls_fingerprint: Option<String>,
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The DNS-SD instance name for a label: no control characters, at most 56 bytes.
pub fn instance_name(label: &str) -> String {
    let clean: String = label.chars().filter(|c| !c.is_control()).collect();
    let name = cut(clean.trim(), INSTANCE_MAX).trim().to_string();
    if name.is_empty() {
        "Eyrie".into()
    } else {
        name
    }
}

impl Advert {
    /// The TXT key/value pairs, each within the 255 bytes a TXT string holds.
    pub fn txt(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("id".to_string(), self.node_id.clone()),
            ("ver".to_string(), cut(&self.version, VALUE_MAX).to_string()),
            ("api".to_string(), "/api".to_string()),
            ("proto".to_string(), PROTO.to_string()),
        ];
        if let Some(fp) = &self.tls_fingerprint {
            v.push(("tls".to_string(), fp.clone()));
        }
        // 255 bytes minus "name=".
        v.push(("name".to_string(), cut(&self.label, 250).to_string()));
        v
    }
}

/// Which kind of node answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Another Eyrie (its TXT record names it).
    Eyrie,
    /// A service of this type without Eyrie's TXT keys: CartaNVR advertises none.
    Cartanvr,
}

/// What a peer's TXT record says, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTxt {
    pub node_id: Option<String>,
    pub version: Option<String>,
    pub proto: Option<String>,
    pub api: Option<String>,
    pub tls_fingerprint: Option<String>,
    pub name: Option<String>,
}

fn text(v: Option<&[u8]>) -> Option<String> {
    let s = std::str::from_utf8(v?).ok()?;
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    let s = cut(s.trim(), VALUE_MAX).to_string();
    (!s.is_empty()).then_some(s)
}

fn is_uuid(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok() && s.len() == 36
}

impl PeerTxt {
    /// Reads `(key, value)` pairs as they came off the wire; keys are matched without regard to
    /// case (RFC 6763 §6.4), values that do not have the expected form are dropped.
    pub fn parse<'a>(props: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>) -> Self {
        let mut t = PeerTxt::default();
        for (k, v) in props {
            match k.to_ascii_lowercase().as_str() {
                "id" => t.node_id = text(v).filter(|s| is_uuid(s)).map(|s| s.to_lowercase()),
                "ver" => t.version = text(v),
                "proto" => t.proto = text(v),
                "api" => t.api = text(v).filter(|s| s.starts_with('/')),
                "tls" => {
                    t.tls_fingerprint = text(v)
                        .map(|s| s.replace(':', "").to_ascii_lowercase())
                        .filter(|s| crate::base::hex::is_hex64(s))
                }
                "name" => t.name = text(v),
                _ => {}
            }
        }
        t
    }

    /// Eyrie nodes carry a node id; anything else of this service type is taken for CartaNVR.
    pub fn kind(&self) -> Kind {
        if self.node_id.is_some() {
            Kind::Eyrie
        } else {
            Kind::Cartanvr
        }
    }
}

/// The URL to reach a node at: `https` when it advertises a certificate, the first usable
/// IPv4 address, else the first global or unique-local IPv6 one (link-local addresses need a
/// zone, which URLs cannot carry).
pub fn url_for(addresses: &[IpAddr], port: u16, tls: bool) -> Option<String> {
    let scheme = if tls { "https" } else { "http" };
    // Loopback is never another node: an answer naming it would point this node at itself.
    let usable = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => {
            !v4.is_unspecified() && !v4.is_loopback() && !v4.is_link_local() && !v4.is_multicast()
        }
        IpAddr::V6(v6) => {
            !v6.is_unspecified()
                && !v6.is_loopback()
                && !v6.is_unicast_link_local()
                && !v6.is_multicast()
        }
    };
    let pick = addresses
        .iter()
        .filter(|a| usable(a))
        .min_by_key(|a| (a.is_ipv6(), **a))?;
    Some(match pick {
        IpAddr::V4(v4) => format!("{scheme}://{v4}:{port}"),
        IpAddr::V6(v6) => format!("{scheme}://[{v6}]:{port}"),
    })
}

/// The instance part of a DNS-SD full name (`Garage._nvr-federation._tcp.local.` → `Garage`),
/// with DNS escapes (`\.`, `\\`, `\DDD`) undone.
pub fn instance_of(fullname: &str, service_type: &str) -> String {
    let raw = fullname
        .strip_suffix(service_type)
        .and_then(|s| s.strip_suffix('.'))
        .unwrap_or(fullname);
    let mut out = Vec::with_capacity(raw.len());
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') as u32 * 100
                + (b[i + 2] - b'0') as u32 * 10
                + (b[i + 3] - b'0') as u32;
            out.push(n.min(255) as u8);
            i += 4;
        } else if b[i] == b'\\' && i + 1 < b.len() {
            out.push(b[i + 1]);
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    let s = String::from_utf8_lossy(&out);
    let s: String = s.chars().filter(|c| !c.is_control()).collect();
    cut(&s, 63).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a32d2ad5-3707-4f3b-a6e7-0e2e33353208";
    const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn advert(tls: Option<&str>) -> Advert {
        Advert {
            node_id: ID.into(),
            label: "Garage".into(),
            version: "0.1.0".into(),
            tls_fingerprint: tls.map(str::to_string),
        }
    }

    fn parse_pairs(pairs: &[(String, String)]) -> PeerTxt {
        PeerTxt::parse(pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))))
    }

    #[test]
    fn txt_round_trips() {
        let a = advert(Some(FP));
        let txt = a.txt();
        let keys: Vec<&str> = txt.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["id", "ver", "api", "proto", "tls", "name"]);
        let p = parse_pairs(&txt);
        assert_eq!(p.node_id.as_deref(), Some(ID));
        assert_eq!(p.version.as_deref(), Some("0.1.0"));
        assert_eq!(p.api.as_deref(), Some("/api"));
        assert_eq!(p.proto.as_deref(), Some(PROTO));
        assert_eq!(p.tls_fingerprint.as_deref(), Some(FP));
        assert_eq!(p.name.as_deref(), Some("Garage"));
        assert_eq!(p.kind(), Kind::Eyrie);
        // Plain HTTP: no tls key.
        assert!(advert(None).txt().iter().all(|(k, _)| k != "tls"));
    }

    #[test]
    fn every_txt_string_fits() {
        let mut a = advert(Some(FP));
        a.label = "é".repeat(64);
        a.version = "v".repeat(1000);
        for (k, v) in a.txt() {
            assert!(k.len() + 1 + v.len() <= 255, "{k}");
        }
    }

    #[test]
    fn hostile_txt_values_are_dropped_or_bounded() {
        let p = PeerTxt::parse([
            ("ID", Some(&b"not-a-uuid"[..])),
            ("tls", Some(&b"zz"[..])),
            ("api", Some(&b"http://evil/"[..])),
            ("name", Some("x\u{7}y".repeat(200).as_bytes())),
            ("ver", Some(&[0xff, 0xfe][..])),
            ("proto", None),
        ]);
        assert_eq!(p.node_id, None);
        assert_eq!(p.tls_fingerprint, None);
        assert_eq!(p.api, None);
        assert_eq!(p.version, None);
        assert_eq!(p.proto, None);
        let name = p.name.clone().unwrap();
        assert!(name.len() <= VALUE_MAX && !name.contains('\u{7}'));
        assert_eq!(p.kind(), Kind::Cartanvr);
        // Keys are case-insensitive, fingerprints may come with colons and in capitals.
        let colons: String = FP
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        let p = PeerTxt::parse([
            ("TLS", Some(colons.as_bytes())),
            ("Id", Some(ID.as_bytes())),
        ]);
        assert_eq!(p.tls_fingerprint.as_deref(), Some(FP));
        assert_eq!(p.node_id.as_deref(), Some(ID));
    }

    #[test]
    fn no_txt_at_all_is_cartanvr() {
        let p = PeerTxt::parse(std::iter::empty());
        assert_eq!(p.kind(), Kind::Cartanvr);
    }

    #[test]
    fn instance_names_fit_a_dns_label() {
        assert_eq!(instance_name("  Garage "), "Garage");
        assert_eq!(instance_name("\u{1}"), "Eyrie");
        let long = instance_name(&"ü".repeat(64));
        assert!(long.len() <= INSTANCE_MAX && long.chars().all(|c| c == 'ü'));
    }

    #[test]
    fn instance_names_are_unescaped() {
        let t = "_nvr-federation._tcp.local.";
        assert_eq!(
            instance_of("Garage._nvr-federation._tcp.local.", t),
            "Garage"
        );
        assert_eq!(
            instance_of(r"My\.NVR\\x._nvr-federation._tcp.local.", t),
            r"My.NVR\x"
        );
        assert_eq!(
            instance_of(r"My\032NVR._nvr-federation._tcp.local.", t),
            "My NVR"
        );
    }

    #[test]
    fn urls_prefer_routable_ipv4() {
        let a: Vec<IpAddr> = ["fe80::1", "fd00::5", "10.0.0.7", "127.0.0.1"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(url_for(&a, 8080, false).unwrap(), "http://10.0.0.7:8080");
        assert_eq!(
            url_for(&a[..2], 8443, true).unwrap(),
            "https://[fd00::5]:8443"
        );
        assert_eq!(url_for(&a[..1], 80, false), None);
        // An answer that names only loopback is no node to pair with.
        let lo: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];
        assert_eq!(url_for(&lo, 8080, false), None);
    }
}
