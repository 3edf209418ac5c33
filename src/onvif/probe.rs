//! WS-Discovery (2005/04, as ONVIF uses it): one Probe for NetworkVideoTransmitters sent to
//! 239.255.255.250:3702 from a chosen interface with TTL 1, repeated once, and the
//! ProbeMatches collected until a deadline. Only answers to this probe's MessageID count, and a
//! device is only reached at addresses on the host its answer came from.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::xml;

pub const GROUP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(239, 255, 255, 250)), 3702);

/// A device that answered the probe.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its WS-Addressing endpoint reference (usually `urn:uuid:...`).
    pub endpoint: String,
    pub from: IpAddr,
    /// Device service addresses on `from`, usable.
    pub xaddrs: Vec<url::Url>,
    /// Addresses it advertised that are not on `from` (never contacted).
    pub foreign: Vec<String>,
    pub scopes: Vec<String>,
}

#[derive(Debug, Default)]
pub struct Probed {
    pub found: Vec<Found>,
    /// Datagrams that were not a ProbeMatches for this probe.
    pub ignored: usize,
    /// Whether more devices answered than are kept.
    pub truncated: bool,
}

fn probe_message(id: &str) -> String {
    format!(
        concat!(
            r#"<?xml version="1.0" encoding="UTF-8"?>"#,
            r#"<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" "#,
            r#"xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" "#,
            r#"xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" "#,
            r#"xmlns:dn="http://www.onvif.org/ver10/network/wsdl">"#,
            "<e:Header><w:MessageID>{id}</w:MessageID>",
            r#"<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>"#,
            r#"<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>"#,
            "</e:Header><e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>"
        ),
        id = id
    )
}

/// Reads one datagram as ProbeMatches answering `id`; `None` for anything else.
pub fn parse_matches(data: &[u8], id: &str, from: IpAddr) -> Option<Vec<Found>> {
    let doc = xml::parse(std::str::from_utf8(data).ok()?).ok()?;
    if doc.name != "Envelope" || doc.text_at(&["Header", "RelatesTo"]).as_deref() != Some(id) {
        return None;
    }
    let matches = doc.at(&["Body", "ProbeMatches"])?;
    let mut out = Vec::new();
    for m in matches.all("ProbeMatch") {
        let Some(endpoint) = m.text_at(&["EndpointReference", "Address"]) else {
            continue;
        };
        let mut xaddrs = Vec::new();
        let mut foreign = Vec::new();
        for a in m
            .text_at(&["XAddrs"])
            .unwrap_or_default()
            .split_whitespace()
        {
            match url::Url::parse(a) {
                Ok(u)
                    if u.scheme() == "http"
                        && u.host_str()
                            .and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok())
                            == Some(from) =>
                {
                    xaddrs.push(u)
                }
                _ => foreign.push(a.chars().take(200).collect()),
            }
        }
        let scopes = m
            .text_at(&["Scopes"])
            .unwrap_or_default()
            .split_whitespace()
            .take(64)
            .map(|s| s.chars().take(256).collect())
            .collect();
        out.push(Found {
            endpoint: endpoint.chars().take(256).collect(),
            from,
            xaddrs,
            foreign: foreign.into_iter().take(8).collect(),
            scopes,
        });
    }
    Some(out)
}

fn socket(interface: Option<Ipv4Addr>) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    s.set_multicast_ttl_v4(1)?;
    s.set_multicast_loop_v4(false)?;
    let local = interface.unwrap_or(Ipv4Addr::UNSPECIFIED);
    if let Some(ifaddr) = interface {
        s.set_multicast_if_v4(&ifaddr)?;
    }
    s.bind(&SocketAddr::new(IpAddr::V4(local), 0).into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Probes for `wait` and returns who answered, at most `max_devices` of them.
pub async fn probe(
    interface: Option<Ipv4Addr>,
    wait: Duration,
    max_devices: usize,
) -> std::io::Result<Probed> {
    let sock = socket(interface)?;
    let id = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let msg = probe_message(&id);
    sock.send_to(msg.as_bytes(), GROUP).await?;
    let deadline = Instant::now() + wait;
    // WS-Discovery repeats a multicast message once, 50-250 ms later, for lost datagrams.
    let mut repeat = Some(Instant::now() + Duration::from_millis(150));
    let mut by_endpoint: HashMap<String, Found> = HashMap::new();
    let mut order = Vec::new();
    let mut out = Probed::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let until = repeat.map_or(deadline, |r| r.min(deadline));
        match tokio::time::timeout_at(until, sock.recv_from(&mut buf)).await {
            Err(_) if Instant::now() >= deadline => break,
            Err(_) => {
                repeat = None;
                sock.send_to(msg.as_bytes(), GROUP).await?;
            }
            Ok(Err(e)) => {
                tracing::debug!("WS-Discovery receive: {e}");
            }
            Ok(Ok((n, from))) => match parse_matches(&buf[..n], &id, from.ip()) {
                None => out.ignored += 1,
                Some(found) => {
                    for f in found {
                        if by_endpoint.contains_key(&f.endpoint) {
                            continue;
                        }
                        if by_endpoint.len() == max_devices {
                            out.truncated = true;
                            continue;
                        }
                        order.push(f.endpoint.clone());
                        by_endpoint.insert(f.endpoint.clone(), f);
                    }
                }
            },
        }
    }
    out.found = order
        .into_iter()
        .filter_map(|e| by_endpoint.remove(&e))
        .collect();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FROM: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5));

    fn answer(relates: &str, xaddrs: &str) -> String {
        format!(
            r#"<?xml version="1.0"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><SOAP-ENV:Header><wsa:RelatesTo>{relates}</wsa:RelatesTo></SOAP-ENV:Header><SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch><wsa:EndpointReference><wsa:Address>urn:uuid:1</wsa:Address></wsa:EndpointReference><d:Types>dn:NetworkVideoTransmitter</d:Types><d:Scopes>onvif://www.onvif.org/name/Cam onvif://www.onvif.org/hardware/X1</d:Scopes><d:XAddrs>{xaddrs}</d:XAddrs></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
        )
    }

    #[test]
    fn reads_matches_for_this_probe_only() {
        let a = answer(
            "urn:uuid:me",
            "http://10.0.0.5/onvif/device_service http://192.168.1.9/x http://[fe80::1]/y",
        );
        let f = parse_matches(a.as_bytes(), "urn:uuid:me", FROM).unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].endpoint, "urn:uuid:1");
        assert_eq!(f[0].xaddrs.len(), 1);
        assert_eq!(f[0].foreign.len(), 2);
        assert_eq!(f[0].scopes.len(), 2);
        assert!(parse_matches(a.as_bytes(), "urn:uuid:other", FROM).is_none());
        assert!(parse_matches(b"garbage", "urn:uuid:me", FROM).is_none());
        assert!(probe_message("urn:uuid:me").contains("NetworkVideoTransmitter"));
    }
}
