//! Outbound HTTP to peers, with every limit a dead, slow or hostile peer could test: a connect
//! timeout, one deadline for the whole exchange, and a cap on the response body (an endless
//! body is cut off at the cap, never buffered past it).

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
    let started = Instant::now();
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
    let exchange = async {
        let stream = match timeout(
            limits.connect,
            TcpStream::connect((host.trim_matches(['[', ']']), port)),
        )
        .await
        {
            Err(_) => return Err(FetchError::ConnectTimeout(limits.connect)),
            Ok(Err(e)) => return Err(FetchError::Connect(e.to_string())),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        if !https {
            return exchange(stream, url, headers, limits, started, None).await;
        }
        let verifier = super::tls::PinVerifier::new(pin.map(str::to_string));
        let connector =
            tokio_rustls::TlsConnector::from(std::sync::Arc::new(verifier.client_config()));
        let name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())
                .map_err(|e| FetchError::Unsupported(format!("host name: {e}")))?;
        let tls = connector
            .connect(name, stream)
            .await
            .map_err(|e| FetchError::Tls(e.to_string()))?;
        exchange(tls, url, headers, limits, started, verifier.seen()).await
    };
    match timeout(limits.total, exchange).await {
        Err(_) => Err(FetchError::Timeout(limits.total)),
        Ok(r) => r,
    }
}

async fn exchange<S>(
    stream: S,
    url: &url::Url,
    headers: &[(&str, &str)],
    limits: Limits,
    started: Instant,
    tls_fingerprint: Option<String>,
) -> Result<Fetched, FetchError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let driver = tokio::spawn(conn);
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let mut req = hyper::Request::get(path)
            .header(hyper::header::HOST, url.authority())
            .header(
                hyper::header::USER_AGENT,
                concat!("Eyrie/", env!("CARGO_PKG_VERSION")),
            )
            .header(hyper::header::ACCEPT, "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Body::empty())
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| FetchError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(Body::new(resp.into_body()), limits.max_body)
            .await
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("length limit") {
                    FetchError::TooLarge(limits.max_body)
                } else {
                    FetchError::Http(text)
                }
            });
        driver.abort();
        Ok(Fetched {
            status,
            body: body?,
            latency: started.elapsed(),
            tls_fingerprint,
        })
    }
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
