//! The HTTP server loop: HTTP/1.1 over hyper, optionally inside TLS, with limits axum's `serve`
//! does not set, so that no client can hold the server:
//! - a client gets [`HEADER_TIMEOUT`] to finish its TLS handshake and to send its request headers;
//! - a request body must keep up an average of [`MIN_BODY_RATE`] after [`BODY_GRACE`] (a body sent a
//!   byte at a time is cut off, an update image over slow Wi-Fi is not);
//! - a connection whose writes make no progress for [`WRITE_STALL`] is closed (a viewer that stops
//!   reading), and each socket's send buffer is capped at [`SEND_BUFFER`] so that the kernel
//!   memory a stalled viewer pins is small;
//! - at most [`MAX_CONNECTIONS`] connections are open at once and [`MAX_PER_ADDRESS`] from one
//!   address (an IPv6 /64 counts as one), so one host cannot lock the others out; more are
//!   refused at accept;
//! - shutdown waits up to [`DRAIN`] for requests in flight (live streams never end by themselves).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use futures::StreamExt;
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_CONNECTIONS: usize = 256;
/// A browser opens at most six connections to a host; a peer relaying several viewers a few more.
pub const MAX_PER_ADDRESS: usize = 32;
pub const WRITE_STALL: Duration = Duration::from_secs(20);
pub const BODY_GRACE: Duration = Duration::from_secs(10);
/// Bytes per second a request body must average once [`BODY_GRACE`] is over.
pub const MIN_BODY_RATE: u64 = 16 << 10;
/// Enough for gigabit on a LAN (the kernel doubles it for its bookkeeping).
pub const SEND_BUFFER: usize = 256 << 10;
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
    let per_address = Arc::new(PerAddress::default());
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
        let Some(slot) = per_address.take(peer.ip()) else {
            tracing::warn!(%peer, "refusing connection: {MAX_PER_ADDRESS} already open from this address");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(SEND_BUFFER);
        let stream = Stalls::new(stream);
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
            drop((permit, slot));
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
        let mut r = r.map(paced);
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

/// The request body, cut off with an error once it falls behind [`MIN_BODY_RATE`] (after
/// [`BODY_GRACE`]): the `n`th byte is due by `start + grace + n / rate`.
fn paced(body: Incoming) -> Body {
    if body.is_end_stream() {
        return Body::empty();
    }
    let start = Instant::now();
    let chunks = futures::stream::unfold(
        (Body::new(body).into_data_stream(), 0u64, false),
        move |(mut chunks, got, failed)| async move {
            if failed {
                return None;
            }
            let due = start
                + BODY_GRACE
                + Duration::from_millis(got.saturating_mul(1000) / MIN_BODY_RATE);
            match tokio::time::timeout_at(due, chunks.next()).await {
                Ok(Some(Ok(b))) => {
                    let got = got.saturating_add(b.len() as u64);
                    Some((Ok(b), (chunks, got, false)))
                }
                Ok(Some(Err(e))) => Some((Err(io::Error::other(e)), (chunks, got, true))),
                Ok(None) => None,
                Err(_) => Some((
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "request body too slow",
                    )),
                    (chunks, got, true),
                )),
            }
        },
    );
    Body::from_stream(chunks)
}

/// Open connections per address; an IPv6 address counts by its /64, which one host may own whole.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in [`PerAddress`], given back when dropped.
struct AddressSlot {
    of: Arc<PerAddress>,
    key: IpAddr,
}

impl PerAddress {
    fn key(ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !0u128 << 64)),
            },
            v4 => v4,
        }
    }

    fn take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let key = Self::key(ip);
        let mut counts = self.0.lock().unwrap();
        let n = counts.entry(key).or_default();
        if *n >= MAX_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            of: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.of.0.lock().unwrap();
        if let Some(n) = counts.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// A connection whose writes fail with `TimedOut` once they have made no progress for
/// [`WRITE_STALL`]: hyper then drops the connection, and with it what was queued for it.
struct Stalls<S> {
    io: S,
    timer: Pin<Box<Sleep>>,
    armed: bool,
}

impl<S> Stalls<S> {
    fn new(io: S) -> Self {
        Stalls {
            io,
            timer: Box::pin(tokio::time::sleep(WRITE_STALL)),
            armed: false,
        }
    }

    /// After a write that made progress (or failed) the clock is stopped; after one that could
    /// not, it runs, and the write fails when it runs out.
    fn watch<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.armed = false;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if !self.armed {
                    self.timer.as_mut().reset(Instant::now() + WRITE_STALL);
                    self.armed = true;
                }
                ready!(self.timer.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading",
                )))
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.watch(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.watch(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.watch(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.watch(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_per_host_and_ipv6_per_64() {
        let p = Arc::new(PerAddress::default());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let slots: Vec<_> = (0..MAX_PER_ADDRESS).map(|_| p.take(a).unwrap()).collect();
        assert!(p.take(a).is_none(), "one address past its limit");
        assert!(
            p.take("192.0.2.2".parse().unwrap()).is_some(),
            "another address"
        );
        assert!(
            p.take("::ffff:192.0.2.1".parse().unwrap()).is_none(),
            "the same IPv4 address mapped into IPv6"
        );
        drop(slots);
        assert!(p.take(a).is_some(), "slots are given back");

        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let held: Vec<_> = (0..MAX_PER_ADDRESS)
            .map(|i| p.take(v6(&format!("2001:db8:1:2::{:x}", i + 1))).unwrap())
            .collect();
        assert!(p.take(v6("2001:db8:1:2:ffff::9")).is_none(), "same /64");
        assert!(p.take(v6("2001:db8:1:3::1")).is_some(), "another /64");
        drop(held);
        assert!(p.0.lock().unwrap().len() <= 1, "counts are removed at zero");
    }
}
