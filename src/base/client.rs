//! The one outbound HTTP client: Eyrie's requests to peers (federation, pairing, relayed media)
//! and to cameras (ONVIF SOAP) all go through it.
//!
//! Invariants: every limit a dead, slow or hostile server could test is set by the caller and
//! kept here: a connect timeout, one deadline for the whole exchange, and a cap on the response
//! body (an endless body is cut off at the cap, never buffered past it). HTTPS is always
//! certificate-pinned ([`super::tls::PinVerifier`]), never unverified.

use std::time::{Duration, Instant};

use axum::body::Body;
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::timeout;

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub connect: Duration,
    /// Everything from connecting to the last body byte.
    pub total: Duration,
    pub max_body: usize,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("no connection within {0:?}")]
    ConnectTimeout(Duration),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("answer larger than {0} bytes")]
    TooLarge(usize),
    #[error("{0}")]
    Http(String),
    #[error("{0}")]
    Unsupported(String),
    #[error("TLS: {0}")]
    Tls(String),
}

#[derive(Debug)]
pub struct Fetched {
    pub status: u16,
    pub body: Bytes,
    pub latency: Duration,
    /// For HTTPS: the fingerprint of the certificate the peer presented.
    pub tls_fingerprint: Option<String>,
}

/// `GET url` with `headers`, over `http://`, or `https://` with the peer's certificate pinned
/// to `pin` (a SHA-256 fingerprint); with no pin yet any certificate is accepted and its
/// fingerprint returned, for the caller to pin (trust on first use).
pub async fn get(
    url: &url::Url,
    headers: &[(&str, &str)],
    limits: Limits,
    pin: Option<&str>,
) -> Result<Fetched, FetchError> {
    exchange(url, None, headers, limits, pin).await
}

/// `POST url` with a JSON `body`, with the same limits, pinning and answer as [`get`].
pub async fn post_json(
    url: &url::Url,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
    limits: Limits,
    pin: Option<&str>,
) -> Result<Fetched, FetchError> {
    let body = Bytes::from(serde_json::to_vec(body).expect("JSON serializes"));
    post(url, "application/json", body, headers, limits, pin).await
}

/// `POST url` with a `body` of `content_type` (SOAP to cameras, JSON to peers), with the same
/// limits, pinning and answer as [`get`].
pub async fn post(
    url: &url::Url,
    content_type: &str,
    body: Bytes,
    headers: &[(&str, &str)],
    limits: Limits,
    pin: Option<&str>,
) -> Result<Fetched, FetchError> {
    exchange(url, Some((content_type, body)), headers, limits, pin).await
}

/// One request (a GET, or a POST when there is a body) and its whole answer.
async fn exchange(
    url: &url::Url,
    body: Option<(&str, Bytes)>,
    headers: &[(&str, &str)],
    limits: Limits,
    pin: Option<&str>,
) -> Result<Fetched, FetchError> {
    let started = Instant::now();
    let exchange = async {
        let opened = connect_and_send(url, body, headers, limits.connect, pin).await?;
        let status = opened.response.status().as_u16();
        let body = axum::body::to_bytes(Body::new(opened.response.into_body()), limits.max_body)
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("length limit") {
                    FetchError::TooLarge(limits.max_body)
                } else {
                    FetchError::Http(text)
                }
            })?;
        Ok(Fetched {
            status,
            body,
            latency: started.elapsed(),
            tls_fingerprint: opened.tls_fingerprint,
        })
    };
    match timeout(limits.total, exchange).await {
        Err(_) => Err(FetchError::Timeout(limits.total)),
        Ok(r) => r,
    }
}

/// A peer's answer whose body is still arriving, for streaming it on (the relay).
pub struct Streaming {
    pub status: axum::http::StatusCode,
    pub headers: axum::http::HeaderMap,
    /// The body, ended with an error when the peer sends nothing for `idle`. Dropping it closes
    /// the connection to the peer.
    pub body: Body,
}

/// `GET url` like [`get`], but returns once the answer's head is in (within `limits.total`)
/// and streams the body without buffering it; a body that stalls for `idle` is cut off.
pub async fn stream(
    url: &url::Url,
    headers: &[(&str, &str)],
    limits: Limits,
    pin: Option<&str>,
    idle: Duration,
) -> Result<Streaming, FetchError> {
    let opened = match timeout(
        limits.total,
        connect_and_send(url, None, headers, limits.connect, pin),
    )
    .await
    {
        Err(_) => return Err(FetchError::Timeout(limits.total)),
        Ok(r) => r?,
    };
    let (parts, incoming) = opened.response.into_parts();
    let state = (Body::new(incoming).into_data_stream(), opened.driver);
    let chunks = futures::stream::unfold(Some(state), move |state| async move {
        let (mut data, driver) = state?;
        match timeout(idle, futures::StreamExt::next(&mut data)).await {
            Ok(Some(Ok(chunk))) => Some((Ok(chunk), Some((data, driver)))),
            Ok(Some(Err(e))) => Some((Err(std::io::Error::other(e)), None)),
            Ok(None) => None,
            Err(_) => Some((
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("peer sent nothing for {idle:?}"),
                )),
                None,
            )),
        }
    });
    Ok(Streaming {
        status: parts.status,
        headers: parts.headers,
        body: Body::from_stream(chunks),
    })
}

/// Aborts the connection task when the answer it serves is dropped.
struct Driver(tokio::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Opened {
    response: hyper::Response<hyper::body::Incoming>,
    tls_fingerprint: Option<String>,
    driver: Driver,
}

/// Connects (within `connect`), does TLS with the pin for `https://`, sends the request and
/// waits for the answer's head. The caller bounds the whole with its own deadline.
async fn connect_and_send(
    url: &url::Url,
    body: Option<(&str, Bytes)>,
    headers: &[(&str, &str)],
    connect: Duration,
    pin: Option<&str>,
) -> Result<Opened, FetchError> {
    let https = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            return Err(FetchError::Unsupported(format!(
                "{other}:// peers are not supported"
            )));
        }
    };
    let host = url
        .host_str()
        .ok_or_else(|| FetchError::Unsupported("URL has no host".into()))?
        .to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let stream = match timeout(
        connect,
        TcpStream::connect((host.trim_matches(['[', ']']), port)),
    )
    .await
    {
        Err(_) => return Err(FetchError::ConnectTimeout(connect)),
        Ok(Err(e)) => return Err(FetchError::Connect(e.to_string())),
        Ok(Ok(s)) => s,
    };
    let _ = stream.set_nodelay(true);
    if !https {
        return send(stream, url, body, headers, None).await;
    }
    let verifier = super::tls::PinVerifier::new(pin.map(str::to_string));
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(verifier.client_config()));
    let name = rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| FetchError::Unsupported(format!("host name: {e}")))?;
    let tls = connector
        .connect(name, stream)
        .await
        .map_err(|e| FetchError::Tls(e.to_string()))?;
    send(tls, url, body, headers, verifier.seen()).await
}

async fn send<S>(
    stream: S,
    url: &url::Url,
    body: Option<(&str, Bytes)>,
    headers: &[(&str, &str)],
    tls_fingerprint: Option<String>,
) -> Result<Opened, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let driver = Driver(tokio::spawn(async move {
        let _ = conn.await;
    }));
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let method = if body.is_some() {
        hyper::Method::POST
    } else {
        hyper::Method::GET
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, url.authority())
        .header(
            hyper::header::USER_AGENT,
            concat!("Eyrie/", env!("CARGO_PKG_VERSION")),
        )
        .header(hyper::header::ACCEPT, "application/json");
    let body = match body {
        Some((content_type, bytes)) => {
            req = req.header(hyper::header::CONTENT_TYPE, content_type);
            Body::from(bytes)
        }
        None => Body::empty(),
    };
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(body)
        .map_err(|e| FetchError::Http(e.to_string()))?;
    let response = sender
        .send_request(req)
        .await
        .map_err(|e| FetchError::Http(e.to_string()))?;
    Ok(Opened {
        response,
        tls_fingerprint,
        driver,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMITS: Limits = Limits {
        connect: Duration::from_millis(500),
        total: Duration::from_millis(1500),
        max_body: 1024,
    };

    /// A one-connection server that reads the request and then runs `then` on the socket.
    async fn serve_once<F, Fut>(then: F) -> url::Url
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            then(s).await;
        });
        format!("http://{addr}/x?y=1").parse().unwrap()
    }

    #[tokio::test]
    async fn reads_a_normal_answer() {
        let url = serve_once(|mut s| async move {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n[]")
                .await;
        })
        .await;
        let r = get(&url, &[("x-nvr-auth", "k")], LIMITS, None)
            .await
            .unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"[]"[..]));
    }

    #[tokio::test]
    async fn posts_a_json_body() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.ends_with(b"}") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let text = String::from_utf8_lossy(&got).to_lowercase();
            let ok = text.starts_with("post /p http/1.1")
                && text.contains("content-type: application/json")
                && text.ends_with("\r\n\r\n{\"a\":1}");
            let body = if ok { "yes" } else { "no" };
            let _ = s
                .write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                )
                .await;
        });
        let url = format!("http://{addr}/p").parse().unwrap();
        let r = post_json(&url, &serde_json::json!({"a": 1}), &[], LIMITS, None)
            .await
            .unwrap();
        assert_eq!(&r.body[..], b"yes");
    }

    #[tokio::test]
    async fn a_silent_peer_times_out() {
        let url = serve_once(|s| async move {
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        })
        .await;
        let started = Instant::now();
        assert!(matches!(
            get(&url, &[], LIMITS, None).await,
            Err(FetchError::Timeout(_))
        ));
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_at_the_cap() {
        let url = serve_once(|mut s| async move {
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            loop {
                if s.write_all(b"400\r\n").await.is_err()
                    || s.write_all(&[b'x'; 1024]).await.is_err()
                    || s.write_all(b"\r\n").await.is_err()
                {
                    break;
                }
            }
        })
        .await;
        assert!(matches!(
            get(&url, &[], LIMITS, None).await,
            Err(FetchError::TooLarge(1024))
        ));
    }

    #[tokio::test]
    async fn refuses_what_it_cannot_do() {
        let ftp: url::Url = "ftp://127.0.0.1:1/".parse().unwrap();
        assert!(matches!(
            get(&ftp, &[], LIMITS, None).await,
            Err(FetchError::Unsupported(_))
        ));
        let closed: url::Url = format!("http://127.0.0.1:{}/", {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        })
        .parse()
        .unwrap();
        assert!(matches!(
            get(&closed, &[], LIMITS, None).await,
            Err(FetchError::Connect(_))
        ));
    }
}
