//! The HTTP server loop: HTTP/1.1 over hyper, optionally inside TLS, with limits axum's `serve`
//! does not set. A client gets [`HEADER_TIMEOUT`] to finish its TLS handshake and to send its
//! request headers (no slow-loris), at most [`MAX_CONNECTIONS`] connections are open at once
//! (more are refused at accept), and shutdown waits up to [`DRAIN`] for requests in flight
//! (live streams never end by themselves).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_CONNECTIONS: usize = 256;
pub const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop` is cancelled; with `tls`, as HTTPS.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!("accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "refusing connection: {MAX_CONNECTIONS} already open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, app, peer, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(HEADER_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(s)) => connection(s, app, peer, watcher).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            drop(permit);
        });
    }
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(DRAIN) => {}
    }
}

async fn connection<S>(
    stream: S,
    app: Router,
    peer: std::net::SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = app.map_request(move |r: hyper::Request<Incoming>| {
        let mut r = r.map(Body::new);
        r.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        r
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc));
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, "connection: {e}");
    }
}
