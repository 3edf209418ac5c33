//! A camera's source URL, checked and parsed once into a [`SourceSpec`], and [`open`], which
//! makes the [`Source`] it names. Invariants: a `SourceSpec` is always valid (its URL is at most
//! 1024 bytes, rtsp has a host, file is an absolute `.mp4` path, v4l2 a checked
//! [`Request`](v4l2::Request)); its URL is the canonical form without credentials, which is
//! what is stored. Credentials and the RTSP transport come apart from the URL ([`Login`]).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::v4l2;
use super::{FileSource, RtspSource, Source};

/// Why a source URL is not accepted; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// A checked source: its canonical URL (without credentials) and what it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSpec {
    url: url::Url,
    kind: SourceKind,
}

/// What a source URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// `rtsp://` or `rtsps://`: a network camera, with how to log in and which transport.
    Rtsp(Login),
    /// `v4l2:///dev/videoN?…`: a local device (see v4l2/request.rs).
    V4l2(v4l2::Request),
    /// `file:///….mp4`: a local MP4 file looped in real time.
    File(PathBuf),
}

/// How an RTSP camera is reached: its credentials (kept apart from the URL), and whether over
/// UDP (else interleaved in the TCP connection).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Login {
    pub username: Option<String>,
    pub password: Option<String>,
    pub udp: bool,
}

/// A source that does not parse, in plain words.
fn not_a_url(e: url::ParseError) -> SourceError {
    SourceError(format!(
        "the source is not a camera address: {}",
        crate::base::names::url_problem(&e)
    ))
}

impl SourceSpec {
    /// Checks a source URL (already without credentials: [`split_credentials`]) and parses it.
    pub fn parse(source: &str) -> Result<SourceSpec, SourceError> {
        if source.len() > 1024 {
            return Err(SourceError("source URL is longer than 1024 bytes".into()));
        }
        let url = url::Url::parse(source).map_err(not_a_url)?;
        let kind = match url.scheme() {
            "rtsp" | "rtsps" => {
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(SourceError("rtsp source needs a host".into()));
                }
                SourceKind::Rtsp(Login::default())
            }
            "file" => {
                let path = url
                    .to_file_path()
                    .map_err(|_| SourceError("file source needs an absolute local path".into()))?;
                if path.extension().and_then(|e| e.to_str()) != Some("mp4") {
                    return Err(SourceError("file source must be an .mp4 file".into()));
                }
                SourceKind::File(path)
            }
            "v4l2" => SourceKind::V4l2(v4l2::parse(&url)?),
            other => {
                return Err(SourceError(format!(
                    "unsupported source scheme '{other}': use rtsp://, rtsps://, v4l2:// or file://"
                )));
            }
        };
        Ok(SourceSpec { url, kind })
    }

    /// The same source, logging in with `login` when it is an RTSP camera (other sources have
    /// no login).
    pub fn with_login(mut self, login: Login) -> SourceSpec {
        if let SourceKind::Rtsp(l) = &mut self.kind {
            *l = login;
        }
        self
    }

    pub fn kind(&self) -> &SourceKind {
        &self.kind
    }

    /// The local device it records from, by its real path (so a by-id name and the /dev/videoN
    /// it points to are the same device), if it is a `v4l2://` source.
    pub fn device(&self) -> Option<PathBuf> {
        match &self.kind {
            SourceKind::V4l2(req) => {
                Some(std::fs::canonicalize(&req.path).unwrap_or_else(|_| req.path.clone()))
            }
            _ => None,
        }
    }
}

/// The canonical URL, without credentials: what is stored.
impl fmt::Display for SourceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.url.as_str())
    }
}

/// The source a camera records from.
pub fn open(spec: &SourceSpec) -> Arc<dyn Source> {
    match &spec.kind {
        SourceKind::File(path) => Arc::new(FileSource::new(path.clone())),
        SourceKind::V4l2(req) => Arc::new(
            v4l2::V4l2Source::new(req.clone(), Arc::new(v4l2::KernelDevice::open))
                .with_hw(Arc::new(v4l2::m2m::h264_encoder)),
        ),
        SourceKind::Rtsp(login) => Arc::new(RtspSource::new(
            spec.url.clone(),
            login.username.clone(),
            login.password.clone(),
            login.udp,
        )),
    }
}

/// A source URL as given, split: the URL without credentials, and the credentials it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Splits credentials out of a source URL (percent-decoded).
pub fn split_credentials(source: &str) -> Result<Split, SourceError> {
    let mut url = url::Url::parse(source).map_err(not_a_url)?;
    let user = (!url.username().is_empty()).then(|| percent_decode(url.username()));
    let pass = url.password().map(percent_decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(Split {
        url: url.to_string(),
        username: user,
        password: pass,
    })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={s}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_split_out() {
        let Split {
            url,
            username: u,
            password: p,
        } = split_credentials("rtsp://ad%40min:p%3Ass@cam.local:554/s1").unwrap();
        assert_eq!(url, "rtsp://cam.local:554/s1");
        assert_eq!(u.as_deref(), Some("ad@min"));
        assert_eq!(p.as_deref(), Some("p:ss"));
        let Split {
            url,
            username: u,
            password: p,
        } = split_credentials("rtsp://cam/x").unwrap();
        assert_eq!((url.as_str(), u, p), ("rtsp://cam/x", None, None));
    }

    #[test]
    fn a_source_that_is_no_address_is_said_in_plain_words() {
        let e = SourceSpec::parse("192.168.1.20/stream").unwrap_err().0;
        assert_eq!(
            e,
            "the source is not a camera address: it must start with its scheme, such as http:// or rtsp://"
        );
    }

    #[test]
    fn sources_are_validated() {
        assert!(SourceSpec::parse("rtsp://10.0.0.2/stream").is_ok());
        assert!(SourceSpec::parse("rtsps://cam:322/stream").is_ok());
        assert!(SourceSpec::parse("file:///var/demo.mp4").is_ok());
        assert!(SourceSpec::parse("v4l2:///dev/video0?width=1280&height=720&fps=30").is_ok());
        for bad in [
            "http://x/y",
            "rtsp:///nohost",
            "file://relative.mp4",
            "file:///etc/passwd",
            "not a url",
            "v4l2://host/dev/video0",
            "v4l2:///dev/sda",
            "v4l2:///dev/video0?width=640",
        ] {
            assert!(SourceSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sources_are_parsed_once_into_what_they_name() {
        let s = SourceSpec::parse("v4l2:///dev/video0?fps=15").unwrap();
        assert_eq!(s.to_string(), "v4l2:///dev/video0?fps=15");
        match s.kind() {
            SourceKind::V4l2(req) => assert_eq!(req.fps, Some(15)),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.device(), Some(PathBuf::from("/dev/video0")));
        let login = Login {
            username: Some("u".into()),
            password: Some("p".into()),
            udp: true,
        };
        let s = SourceSpec::parse("rtsp://cam/x")
            .unwrap()
            .with_login(login.clone());
        assert_eq!(s.kind(), &SourceKind::Rtsp(login));
        assert_eq!(s.device(), None);
        let s = SourceSpec::parse("file:///var/demo.mp4").unwrap();
        assert_eq!(s.kind(), &SourceKind::File("/var/demo.mp4".into()));
    }
}
