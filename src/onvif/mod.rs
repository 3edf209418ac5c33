//! ONVIF owns finding IP cameras on the LAN and reading their stream addresses: a WS-Discovery
//! probe, then per camera GetDeviceInformation, GetCapabilities (where the media service is),
//! GetProfiles and GetStreamUri, signed with a WS-Security UsernameToken digest when credentials
//! are given. Every step is bounded (scan time, datagram and answer sizes, device count,
//! per-call timeouts) and a camera that misbehaves gets its own error, never the whole scan's.
//!
//! Credentials go only where the user sends them: a scan reads every device without them
//! (anything on the LAN can answer a probe, and a UsernameToken digest can be guessed offline),
//! and [`read`] then reads the one device the user picked, signed. A scan signs its calls only
//! when the caller asks for that explicitly (`authenticate_all` in the API).

pub mod events;
pub mod probe;
pub mod push;
pub mod soap;
pub mod xml;

use std::net::Ipv4Addr;
use std::time::Duration;

use futures::StreamExt;
use serde::Serialize;

pub use soap::Credentials;
use soap::{Limits, SoapError};
use xml::Element;

/// Most devices a scan reports, and most profiles read per device.
pub const MAX_DEVICES: usize = 64;
pub const MAX_PROFILES: usize = 8;
/// Devices queried at once.
const PARALLEL: usize = 16;
/// Each SOAP call: connect, whole exchange, answer size.
pub const CALL_LIMITS: Limits = Limits {
    connect: Duration::from_secs(2),
    total: Duration::from_secs(4),
    max_body: 256 * 1024,
};
/// Everything asked of one device, and of all of them after the probe.
const DEVICE_DEADLINE: Duration = Duration::from_secs(15);
const READ_DEADLINE: Duration = Duration::from_secs(20);
pub const SCAN_SECONDS: std::ops::RangeInclusive<u64> = 1..=10;

/// How scans run: where the probe goes out and how long answers are awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanConfig {
    /// IPv4 address of the interface the probe is sent from; `None` lets the routing table
    /// choose.
    pub interface: Option<Ipv4Addr>,
    pub wait: Duration,
    /// Where cameras send pushed event notifications (`onvif.notify_base_url`); `None`: this
    /// node's address on the route to each camera ([`push::Endpoint`]).
    pub notify_base_url: Option<url::Url>,
}

impl Default for ScanConfig {
    fn default() -> Self {
        Self {
            interface: None,
            wait: Duration::from_secs(3),
            notify_base_url: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Profile {
    pub token: String,
    pub name: String,
    pub encoding: Option<String>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub fps: Option<f64>,
    /// The RTSP URI, without credentials, ready to be a camera's source.
    pub uri: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Device {
    /// WS-Discovery endpoint reference, stable for a device (`None` for a device read at an
    /// address the user gave).
    pub endpoint: Option<String>,
    pub host: String,
    /// The device service address used.
    pub xaddr: Option<String>,
    /// From the `onvif://www.onvif.org/name/` scope.
    pub name: Option<String>,
    pub manufacturer: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub serial: Option<String>,
    pub profiles: Vec<Profile>,
    /// The highest-resolution stream and the next one, for the camera-add form.
    pub main: Option<String>,
    pub sub: Option<String>,
    /// Why this device could not be read (fully), for people. A device that wants credentials
    /// and was asked without any has `needs_credentials` and no error.
    pub error: Option<String>,
    /// The device refused to answer without (these) credentials: read it again with
    /// [`read`] and the camera's user name and password.
    pub needs_credentials: bool,
}

#[derive(Debug, Serialize)]
pub struct ScanResult {
    pub devices: Vec<Device>,
    /// Datagrams received that were not an answer to this probe.
    pub ignored: usize,
    /// More devices answered than [`MAX_DEVICES`].
    pub truncated: bool,
}

/// Probes the LAN and reads every device that answers, with `creds` for every one of them
/// (`None`, the default, keeps the credentials for the devices the user picks: [`read`]).
pub async fn scan(cfg: ScanConfig, creds: Option<Credentials>) -> std::io::Result<ScanResult> {
    let probed = probe::probe(cfg.interface, cfg.wait, MAX_DEVICES).await?;
    let all_done = tokio::time::Instant::now() + READ_DEADLINE;
    let devices = futures::stream::iter(probed.found)
        .map(|f| {
            let creds = creds.clone();
            async move {
                let until = all_done.min(tokio::time::Instant::now() + DEVICE_DEADLINE);
                let mut d = Device {
                    endpoint: Some(f.endpoint.clone()),
                    host: f.from.to_string(),
                    name: scope(&f.scopes, "name"),
                    ..Default::default()
                };
                let Some(xaddr) = f.xaddrs.first() else {
                    d.error = Some(if f.foreign.is_empty() {
                        "the device gave no http:// service address".into()
                    } else {
                        format!(
                            "the device gave service addresses only on other hosts than {} ({}); not contacted",
                            f.from,
                            f.foreign.join(", ")
                        )
                    });
                    return d;
                };
                let timed_out = if until == all_done {
                    format!("not read: the scan reads devices for at most {READ_DEADLINE:?}")
                } else {
                    format!("the device took longer than {DEVICE_DEADLINE:?}")
                };
                read_until(until, timed_out, xaddr, creds.as_ref(), &mut d).await;
                d
            }
        })
        .buffered(PARALLEL)
        .collect()
        .await;
    Ok(ScanResult {
        devices,
        ignored: probed.ignored,
        truncated: probed.truncated,
    })
}

/// Reads the one device at `xaddr` (its device service, as a scan or the camera's settings
/// give it), signed with `creds`, within [`DEVICE_DEADLINE`].
pub async fn read(xaddr: &url::Url, creds: Option<Credentials>) -> Device {
    let mut d = Device {
        host: xaddr.host_str().unwrap_or_default().to_string(),
        ..Default::default()
    };
    let until = tokio::time::Instant::now() + DEVICE_DEADLINE;
    let timed_out = format!("the device took longer than {DEVICE_DEADLINE:?}");
    read_until(until, timed_out, xaddr, creds.as_ref(), &mut d).await;
    d
}

/// A device service address as a person or the finder gives it: `http://host[:port]/path`,
/// no credentials or fragment, at most 512 bytes.
pub fn device_address(text: &str) -> Result<url::Url, String> {
    if text.len() > 512 {
        return Err("at most 512 characters".into());
    }
    let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL ({e})"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "{}:// device services are not supported (only http://)",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials go in username and password, not in the address".into());
    }
    if url.fragment().is_some() {
        return Err("no #fragment".into());
    }
    Ok(url)
}

async fn read_until(
    until: tokio::time::Instant,
    timed_out: String,
    xaddr: &url::Url,
    creds: Option<&Credentials>,
    d: &mut Device,
) {
    d.xaddr = Some(xaddr.to_string());
    match tokio::time::timeout_at(until, read_device(xaddr, creds, d)).await {
        Ok(Ok(())) => {}
        // Asked without credentials, a device that wants them is not in error: it waits to
        // be picked.
        Ok(Err(Failed { auth: true, .. })) if creds.is_none() => d.needs_credentials = true,
        Ok(Err(Failed { text, auth })) => {
            d.needs_credentials = auth;
            d.error = Some(text);
        }
        Err(_) => d.error = Some(timed_out),
    }
}

/// The value of an `onvif://www.onvif.org/{kind}/...` scope, percent-decoded.
pub(crate) fn scope(scopes: &[String], kind: &str) -> Option<String> {
    let prefix = format!("onvif://www.onvif.org/{kind}/");
    let raw = scopes.iter().find_map(|s| s.strip_prefix(&prefix))?;
    let decoded: String = url::form_urlencoded::parse(format!("x={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    Some(clean(&decoded, 64)).filter(|s| !s.is_empty())
}

/// Text from a device, fit to show: no control characters, bounded.
fn clean(s: &str, max: usize) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .take(max)
        .collect()
}

const DEVICE_NS: &str = "http://www.onvif.org/ver10/device/wsdl";
const MEDIA_NS: &str = "http://www.onvif.org/ver10/media/wsdl";

/// Why reading a device stopped, and whether it was for want of (the right) credentials.
struct Failed {
    text: String,
    auth: bool,
}

impl From<String> for Failed {
    fn from(text: String) -> Self {
        Failed { text, auth: false }
    }
}

fn explain(step: &str, e: SoapError) -> String {
    format!("{step}: {e}")
}

fn failed(step: &str, e: SoapError) -> Failed {
    Failed {
        auth: matches!(e, SoapError::NotAuthorized(_)),
        text: explain(step, e),
    }
}

async fn read_device(
    xaddr: &url::Url,
    creds: Option<&Credentials>,
    d: &mut Device,
) -> Result<(), Failed> {
    let creds = match creds {
        Some(c) => Some(Credentials {
            clock_offset: clock_offset(xaddr).await,
            ..c.clone()
        }),
        None => None,
    };
    let creds = creds.as_ref();
    let info = soap::call(
        xaddr,
        &format!("{DEVICE_NS}/GetDeviceInformation"),
        &format!(r#"<GetDeviceInformation xmlns="{DEVICE_NS}"/>"#),
        creds,
        CALL_LIMITS,
    )
    .await
    .map_err(|e| failed("GetDeviceInformation", e))?;
    let field = |n: &str| info.text_at(&[n]).map(|v| clean(&v, 128));
    d.manufacturer = field("Manufacturer");
    d.model = field("Model");
    d.firmware = field("FirmwareVersion");
    d.serial = field("SerialNumber");

    // The media service may live at its own address; fall back to the device service's.
    let media = match soap::call(
        xaddr,
        &format!("{DEVICE_NS}/GetCapabilities"),
        &format!(
            r#"<GetCapabilities xmlns="{DEVICE_NS}"><Category>Media</Category></GetCapabilities>"#
        ),
        creds,
        CALL_LIMITS,
    )
    .await
    {
        Ok(caps) => service_address(&caps, "Media", xaddr)?.unwrap_or_else(|| xaddr.clone()),
        Err(SoapError::Transport(e)) => return Err(format!("GetCapabilities: {e}").into()),
        Err(e @ SoapError::NotAuthorized(_)) => return Err(failed("GetCapabilities", e)),
        Err(_) => xaddr.clone(),
    };
    let profiles = soap::call(
        &media,
        &format!("{MEDIA_NS}/GetProfiles"),
        &format!(r#"<GetProfiles xmlns="{MEDIA_NS}"/>"#),
        creds,
        CALL_LIMITS,
    )
    .await
    .map_err(|e| failed("GetProfiles", e))?;
    let mut list: Vec<Profile> = profiles
        .all("Profiles")
        .filter_map(profile_of)
        .take(MAX_PROFILES)
        .collect();
    if list.is_empty() {
        return Err(String::from("GetProfiles: the device has no media profiles").into());
    }
    for p in &mut list {
        match stream_uri(&media, &p.token, creds).await {
            Ok(uri) => p.uri = Some(uri),
            Err(e) => p.error = Some(e),
        }
    }
    // Largest picture first; profiles of unknown size keep the device's order after them.
    let mut ranked: Vec<&Profile> = list.iter().filter(|p| p.uri.is_some()).collect();
    ranked.sort_by_key(|p| {
        std::cmp::Reverse(p.width.unwrap_or(0) as u64 * p.height.unwrap_or(0) as u64)
    });
    d.main = ranked.first().and_then(|p| p.uri.clone());
    d.sub = ranked
        .iter()
        .skip(1)
        .find(|p| p.uri != d.main)
        .and_then(|p| p.uri.clone());
    if d.main.is_none() {
        d.error = list.iter().find_map(|p| p.error.clone());
    }
    d.profiles = list;
    Ok(())
}

/// How far the device's clock is from this node's, from GetSystemDateAndTime (which ONVIF
/// devices answer without credentials); zero when it cannot be read.
async fn clock_offset(xaddr: &url::Url) -> jiff::SignedDuration {
    let answer = soap::call(
        xaddr,
        &format!("{DEVICE_NS}/GetSystemDateAndTime"),
        &format!(r#"<GetSystemDateAndTime xmlns="{DEVICE_NS}"/>"#),
        None,
        CALL_LIMITS,
    )
    .await;
    let now = jiff::Timestamp::now();
    answer
        .ok()
        .and_then(|a| device_time(&a))
        .map_or(jiff::SignedDuration::ZERO, |t| t.duration_since(now))
}

/// The UTC time in a GetSystemDateAndTimeResponse.
pub(crate) fn device_time(answer: &Element) -> Option<jiff::Timestamp> {
    let utc = answer.find("UTCDateTime")?;
    let n = |path: &[&str]| -> Option<i64> { utc.text_at(path)?.parse().ok() };
    let date = jiff::civil::Date::new(
        i16::try_from(n(&["Date", "Year"])?).ok()?,
        i8::try_from(n(&["Date", "Month"])?).ok()?,
        i8::try_from(n(&["Date", "Day"])?).ok()?,
    )
    .ok()?;
    let time = jiff::civil::Time::new(
        i8::try_from(n(&["Time", "Hour"])?).ok()?,
        i8::try_from(n(&["Time", "Minute"])?).ok()?,
        i8::try_from(n(&["Time", "Second"])?).ok()?,
        0,
    )
    .ok()?;
    jiff::civil::DateTime::from_parts(date, time)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// The address of `service` (`Media`, `Events`) from GetCapabilities, if it names one; only
/// on the device service's own host (a device cannot send signed calls to another machine).
pub(crate) fn service_address(
    caps: &Element,
    service: &str,
    xaddr: &url::Url,
) -> Result<Option<url::Url>, String> {
    let Some(addr) = caps.find(service).and_then(|m| m.text_at(&["XAddr"])) else {
        return Ok(None);
    };
    let url = url::Url::parse(&addr).map_err(|_| {
        format!(
            "GetCapabilities: {} address '{}' is not a URL",
            service.to_lowercase(),
            clean(&addr, 100)
        )
    })?;
    if url.host() != xaddr.host() {
        return Err(format!(
            "GetCapabilities: the {} service is on another host ({}); not contacted",
            service.to_lowercase(),
            clean(&addr, 100)
        ));
    }
    Ok(Some(url))
}

pub(crate) fn profile_of(p: &Element) -> Option<Profile> {
    let token = clean(p.attr("token")?, 64);
    if token.is_empty() {
        return None;
    }
    let vec = p.child("VideoEncoderConfiguration");
    let num = |path: &[&str]| vec.and_then(|v| v.text_at(path));
    Some(Profile {
        name: p
            .text_at(&["Name"])
            .map(|n| clean(&n, 64))
            .unwrap_or_else(|| token.clone()),
        encoding: num(&["Encoding"]).map(|e| clean(&e, 16)),
        width: num(&["Resolution", "Width"]).and_then(|v| v.parse().ok()),
        height: num(&["Resolution", "Height"]).and_then(|v| v.parse().ok()),
        fps: num(&["RateControl", "FrameRateLimit"]).and_then(|v| v.parse().ok()),
        token,
        uri: None,
        error: None,
    })
}

async fn stream_uri(
    media: &url::Url,
    token: &str,
    creds: Option<&Credentials>,
) -> Result<String, String> {
    let body = format!(
        concat!(
            r#"<GetStreamUri xmlns="{ns}"><StreamSetup>"#,
            r#"<Stream xmlns="http://www.onvif.org/ver10/schema">RTP-Unicast</Stream>"#,
            r#"<Transport xmlns="http://www.onvif.org/ver10/schema"><Protocol>RTSP</Protocol></Transport>"#,
            "</StreamSetup><ProfileToken>{token}</ProfileToken></GetStreamUri>"
        ),
        ns = MEDIA_NS,
        token = quick_xml::escape::escape(token),
    );
    let answer = soap::call(
        media,
        &format!("{MEDIA_NS}/GetStreamUri"),
        &body,
        creds,
        CALL_LIMITS,
    )
    .await
    .map_err(|e| explain("GetStreamUri", e))?;
    let uri = answer
        .text_at(&["MediaUri", "Uri"])
        .ok_or("GetStreamUri: the answer has no MediaUri/Uri")?;
    let bare = crate::capture::split_credentials(&uri)
        .map_err(|e| format!("GetStreamUri: '{}': {e}", clean(&uri, 100)))?
        .url;
    match crate::capture::SourceSpec::parse(&bare) {
        Ok(v) if matches!(v.kind(), crate::capture::SourceKind::Rtsp(_)) => Ok(v.to_string()),
        Ok(_) => Err(format!(
            "GetStreamUri: '{}' is not an rtsp:// URI",
            clean(&bare, 100)
        )),
        Err(e) => Err(format!("GetStreamUri: '{}': {e}", clean(&bare, 100))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_profiles_and_scopes() {
        let doc = xml::parse(
            r#"<r:GetProfilesResponse xmlns:r="m" xmlns:t="s"><r:Profiles token="main" fixed="true"><t:Name>Main</t:Name><t:VideoEncoderConfiguration token="v"><t:Encoding>H264</t:Encoding><t:Resolution><t:Width>1920</t:Width><t:Height>1080</t:Height></t:Resolution><t:RateControl><t:FrameRateLimit>25</t:FrameRateLimit></t:RateControl></t:VideoEncoderConfiguration></r:Profiles><r:Profiles token="x"/><r:Profiles/></r:GetProfilesResponse>"#,
        )
        .unwrap();
        let list: Vec<Profile> = doc.all("Profiles").filter_map(profile_of).collect();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].name, "Main");
        assert_eq!((list[0].width, list[0].height), (Some(1920), Some(1080)));
        assert_eq!(list[0].fps, Some(25.0));
        assert_eq!(list[1].name, "x");
        let scopes = vec![
            "onvif://www.onvif.org/type/video_encoder".to_string(),
            "onvif://www.onvif.org/name/Front%20Door".to_string(),
        ];
        assert_eq!(scope(&scopes, "name").as_deref(), Some("Front Door"));
        assert_eq!(scope(&scopes, "hardware"), None);
    }

    #[test]
    fn reads_the_device_clock() {
        let a = xml::parse(
            "<GetSystemDateAndTimeResponse><SystemDateAndTime><DateTimeType>NTP</DateTimeType><UTCDateTime><Time><Hour>7</Hour><Minute>5</Minute><Second>9</Second></Time><Date><Year>2026</Year><Month>11</Month><Day>25</Day></Date></UTCDateTime></SystemDateAndTime></GetSystemDateAndTimeResponse>",
        )
        .unwrap();
        assert_eq!(device_time(&a).unwrap().to_string(), "2026-11-25T07:05:09Z");
        let bad = xml::parse("<R><UTCDateTime><Time><Hour>23</Hour><Minute>0</Minute><Second>0</Second></Time><Date><Year>2026</Year><Month>2</Month><Day>30</Day></Date></UTCDateTime></R>").unwrap();
        assert!(device_time(&bad).is_none());
        let bad = xml::parse("<R><UTCDateTime><Time><Hour>25</Hour><Minute>0</Minute><Second>0</Second></Time><Date><Year>2026</Year><Month>1</Month><Day>1</Day></Date></UTCDateTime></R>").unwrap();
        assert!(device_time(&bad).is_none());
    }
}
