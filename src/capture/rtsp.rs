//! RTSP cameras through retina: DESCRIBE/SETUP/PLAY with timeouts, TCP interleaved or UDP,
//! digest or basic auth, H.264, H.265 and Motion JPEG (RFC 2435; every picture a key frame).
//! Frames before the first key frame are skipped.

use std::num::NonZeroU32;
use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use retina::client::{
    Credentials, PlayOptions, Session, SessionOptions, SetupOptions, TcpTransportOptions,
    Transport, UdpTransportOptions,
};
use retina::codec::{CodecItem, ParametersRef};
use tokio::time::timeout;

use super::{CONNECT_TIMEOUT, CaptureError, FRAME_TIMEOUT, Opened, PROBE_TIMEOUT, Source};
use crate::video::{Codec, Frame, TIMESCALE, VideoParams};

pub struct RtspSource {
    url: url::Url,
    creds: Option<Credentials>,
    udp: bool,
}

impl RtspSource {
    pub fn new(url: url::Url, user: Option<String>, pass: Option<String>, udp: bool) -> Self {
        let creds = user.map(|username| Credentials {
            username,
            password: pass.unwrap_or_default(),
        });
        Self { url, creds, udp }
    }
}

fn params_of(p: Option<ParametersRef>) -> Result<Option<Arc<VideoParams>>, CaptureError> {
    let Some(ParametersRef::Video(v)) = p else {
        return Ok(None);
    };
    // retina describes JPEG as an `mp4v` entry (MPEG-4 systems, object type 0x6C); Eyrie
    // records it in the `jpeg` entry as it does a local camera's MJPEG.
    if v.rfc6381_codec() == "mp4v.6C" {
        let (w, h) = v.pixel_dimensions();
        let (Ok(w), Ok(h)) = (u16::try_from(w), u16::try_from(h)) else {
            return Err(CaptureError::Unsupported(format!("a {w}x{h} JPEG stream")));
        };
        return Ok(Some(Arc::new(VideoParams::mjpeg(w, h))));
    }
    let entry = v
        .mp4_sample_entry()
        .build()
        .map_err(|e| CaptureError::Unsupported(format!("video parameters: {e}")))?;
    VideoParams::from_sample_entry(&entry)
        .map(|p| Some(Arc::new(p)))
        .map_err(|e| CaptureError::Unsupported(e.0))
}

/// Whether an H.265 access unit (4-byte length-prefixed NAL units) holds an IRAP picture:
/// BLA, IDR or CRA (NAL unit types 16 to 23). retina flags only IDR as a random access point,
/// but many encoders (x265 by default, some cameras) use CRA for every key frame after the
/// first. Eyrie records no B-frames, so a CRA has no leading pictures and is as clean a place
/// to start decoding as an IDR.
pub fn h265_has_irap(data: &[u8]) -> bool {
    let mut rest = data;
    while rest.len() >= 5 {
        let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let Some(nal) = rest.get(4..4 + len).filter(|n| !n.is_empty()) else {
            return false; // malformed: trust only complete NAL units
        };
        if (16..=23).contains(&((nal[0] >> 1) & 0x3f)) {
            return true;
        }
        rest = &rest[4 + len..];
    }
    false
}

fn is_key(f: &retina::codec::VideoFrame, codec: Codec) -> bool {
    f.is_random_access_point() || (codec == Codec::H265 && h265_has_irap(f.data()))
}

/// retina's error text in words for the person who set the camera up: its first line (the
/// rest is connection context for developers), and for an answer that is not RTSP at all (a
/// web server on that port) a sentence instead of a hex dump of what came back.
fn plain_error(text: &str) -> String {
    if text.contains("Invalid RTSP message") {
        let web = text.contains("48 54 54 50")
            || text.contains("3c 21 44 4f")
            || text.contains("3c 68 74 6d");
        return if web {
            "the address answers, but as a web server, not as an RTSP camera stream: the port is \
             probably the camera's web page (RTSP is usually port 554)"
                .into()
        } else {
            "the address answers, but not in RTSP: is the port the camera's RTSP port (usually \
             554)?"
                .into()
        };
    }
    text.lines().next().unwrap_or_default().trim().to_string()
}

fn step<T>(
    what: &str,
    r: Result<Result<T, retina::Error>, tokio::time::error::Elapsed>,
) -> Result<T, CaptureError> {
    match r {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(CaptureError::Connect(format!(
            "{what}: {}",
            plain_error(&e.to_string())
        ))),
        Err(_) => Err(CaptureError::Connect(format!(
            "{what}: no answer within {CONNECT_TIMEOUT:?}"
        ))),
    }
}

impl Source for RtspSource {
    fn describe(&self) -> String {
        self.url.to_string()
    }

    fn probe(&self) -> Option<BoxFuture<'static, bool>> {
        let port = self.url.port().unwrap_or(554);
        let host = match self.url.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        Some(Box::pin(async move {
            let connect = tokio::net::TcpStream::connect((host.as_str(), port));
            matches!(timeout(PROBE_TIMEOUT, connect).await, Ok(Ok(_)))
        }))
    }

    fn open(&self) -> BoxFuture<'static, Result<Opened, CaptureError>> {
        let url = self.url.clone();
        let creds = self.creds.clone();
        let udp = self.udp;
        Box::pin(async move {
            let opts = SessionOptions::default()
                .creds(creds)
                .user_agent(format!("Eyrie/{}", env!("CARGO_PKG_VERSION")));
            let mut session = step(
                "DESCRIBE",
                timeout(CONNECT_TIMEOUT, Session::describe(url, opts)).await,
            )?;
            let stream_i = session
                .streams()
                .iter()
                .position(|s| {
                    s.media() == "video" && matches!(s.encoding_name(), "h264" | "h265" | "jpeg")
                })
                .ok_or_else(|| {
                    let found: Vec<String> = session
                        .streams()
                        .iter()
                        .map(|s| format!("{}/{}", s.media(), s.encoding_name()))
                        .collect();
                    CaptureError::Unsupported(format!(
                        "no H.264, H.265 or MJPEG video stream (camera offers: {})",
                        found.join(", ")
                    ))
                })?;
            let transport = if udp {
                Transport::Udp(UdpTransportOptions::default())
            } else {
                Transport::Tcp(TcpTransportOptions::default())
            };
            step(
                "SETUP",
                timeout(
                    CONNECT_TIMEOUT,
                    session.setup(stream_i, SetupOptions::default().transport(transport)),
                )
                .await,
            )?;
            let mut params = params_of(session.streams()[stream_i].parameters())?;
            let playing = step(
                "PLAY",
                timeout(
                    CONNECT_TIMEOUT,
                    session.play(
                        PlayOptions::default()
                            .enforce_timestamps_with_max_jump_secs(NonZeroU32::new(10).unwrap()),
                    ),
                )
                .await,
            )?;
            let mut demuxed = playing
                .demuxed()
                .map_err(|e| CaptureError::Connect(format!("PLAY: {e}")))?;

            // Wait for the first key frame with known parameters.
            let first = loop {
                let item = match timeout(FRAME_TIMEOUT, demuxed.next()).await {
                    Err(_) => return Err(CaptureError::Timeout(FRAME_TIMEOUT)),
                    Ok(None) => {
                        return Err(CaptureError::Stream(
                            "stream ended before a key frame".into(),
                        ));
                    }
                    Ok(Some(Err(e))) => return Err(CaptureError::Stream(e.to_string())),
                    Ok(Some(Ok(item))) => item,
                };
                if let CodecItem::VideoFrame(f) = item {
                    if f.stream_id() != stream_i {
                        continue;
                    }
                    if f.has_new_parameters() || params.is_none() {
                        params = params_of(demuxed.streams()[stream_i].parameters())?;
                    }
                    if let Some(p) = &params {
                        if is_key(&f, p.codec) {
                            break f;
                        }
                    }
                }
            };
            let params = params.expect("checked above");
            let to_90k = |ts: retina::Timestamp| -> i64 {
                let rate = ts.clock_rate().get() as i64;
                ts.elapsed() * TIMESCALE as i64 / rate
            };
            let origin = to_90k(first.timestamp());
            let codec = params.codec;
            let first = Frame {
                pts: 0,
                key: true,
                received: jiff::Timestamp::now(),
                new_params: None,
                data: first.into_data().into(),
            };
            let frames = futures::stream::once(async move { Ok(first) })
                .chain(futures::stream::unfold(
                    (demuxed, stream_i, origin),
                    move |(mut demuxed, stream_i, origin)| async move {
                        loop {
                            let item = match timeout(FRAME_TIMEOUT, demuxed.next()).await {
                                Err(_) => {
                                    return Some((
                                        Err(CaptureError::Timeout(FRAME_TIMEOUT)),
                                        (demuxed, stream_i, origin),
                                    ));
                                }
                                Ok(None) => return None,
                                Ok(Some(Err(e))) => {
                                    return Some((
                                        Err(CaptureError::Stream(e.to_string())),
                                        (demuxed, stream_i, origin),
                                    ));
                                }
                                Ok(Some(Ok(item))) => item,
                            };
                            let CodecItem::VideoFrame(f) = item else {
                                continue;
                            };
                            if f.stream_id() != stream_i {
                                continue;
                            }
                            let new_params = if f.has_new_parameters() {
                                match params_of(demuxed.streams()[stream_i].parameters()) {
                                    Ok(p) => p,
                                    Err(e) => return Some((Err(e), (demuxed, stream_i, origin))),
                                }
                            } else {
                                None
                            };
                            let frame = Frame {
                                pts: to_90k(f.timestamp()) - origin,
                                key: is_key(&f, codec),
                                received: jiff::Timestamp::now(),
                                new_params,
                                data: f.into_data().into(),
                            };
                            return Some((Ok(frame), (demuxed, stream_i, origin)));
                        }
                    },
                ))
                .boxed();
            Ok(Opened { params, frames })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{h265_has_irap, plain_error};

    #[test]
    fn rtsp_errors_are_said_in_plain_words() {
        // What retina says when an HTTP server answers (its hex dump of the bytes).
        let http = "RTSP framing error: Invalid RTSP message; buffered:\n\
                    0000:   48 54 54 50  2f 31 2e 31  20 34 30 30  20 42 61 64   HTTP/1.1 400 Bad\n\n\
                    conn: 127.0.0.1:40000(me)->127.0.0.1:8080@2026-12-02T21:00:00";
        let e = plain_error(http);
        assert!(e.contains("web server") && e.contains("554"), "{e}");
        assert!(!e.contains("48 54"), "no hex: {e}");
        let other =
            plain_error("RTSP framing error: Invalid RTSP message; buffered:\n0000:   00 01 02 03");
        assert!(other.contains("not in RTSP"), "{other}");
        // Otherwise the first line: the reason, without the connection context.
        assert_eq!(
            plain_error("401 response to DESCRIBE CSeq=1: Unauthorized\n\nconn: a->b\nmsg: x"),
            "401 response to DESCRIBE CSeq=1: Unauthorized"
        );
    }

    #[test]
    fn finds_irap_nal_units() {
        let nal = |t: u8, len: usize| {
            let mut v = (len as u32 + 2).to_be_bytes().to_vec();
            v.extend([t << 1, 1]);
            v.extend(std::iter::repeat_n(0u8, len));
            v
        };
        let cra = [nal(39, 3), nal(21, 10)].concat(); // prefix SEI, then CRA
        assert!(h265_has_irap(&cra));
        assert!(h265_has_irap(&nal(19, 4))); // IDR_W_RADL
        assert!(!h265_has_irap(&[nal(1, 10), nal(0, 3)].concat())); // TRAIL_R, TRAIL_N
        assert!(!h265_has_irap(&[0, 0, 0, 200, 42])); // length past the end
        assert!(!h265_has_irap(&[]));
    }
}
