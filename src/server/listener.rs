//! The accept loop: HTTP/1.1 connections with a header read timeout (which also closes idle
//! keep-alive connections, so slow or silent clients cannot pin the server), a cap on open
//! connections, and graceful shutdown (stop accepting, let in-flight requests finish within a
//! deadline).
//!
//! Invariants:
//! - The listen backlog is `server.backlog` (the kernel caps it at `net.core.somaxconn`), so a
//!   burst of connections waits in the kernel's queue instead of being dropped and retried by
//!   clients a second later.
//! - At most `server.max_connections` connections are served at once: a permit is taken
//!   *before* `accept` (as mini-redis does), so past the cap new connections wait in the
//!   backlog and cost no memory here; a closed connection gives its permit back.
//!
//! warp's own server cannot set these timeouts, so connections are served with hyper directly
//! and warp's filters as the service.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// Binds a listener with a listen backlog of `backlog`; port 0 picks a free port (tests).
pub async fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted server must not wait for the old one's connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog.max(1))
}

/// How a listener treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send request headers; also how long an idle keep-alive connection stays.
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the backlog.
    pub max_connections: usize,
}

/// Serves `filter` on `listener` until `shutdown`, then waits up to `grace` for open requests.
pub fn serve<F>(
    listener: TcpListener,
    filter: F,
    limits: Limits,
    shutdown: CancellationToken,
    grace: Duration,
) -> JoinHandle<()>
where
    F: Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    tokio::spawn(async move {
        let graceful = GracefulShutdown::new();
        let service = warp::service(filter);
        let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
        loop {
            // The permit first: past the cap, connections wait in the kernel's backlog.
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let accepted = tokio::select! {
                _ = shutdown.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let svc = TowerToHyperService::new(service.clone());
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(true);
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
                drop(permit);
            });
        }
        drop(listener);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(grace) => {
                tracing::warn!("requests still open after the shutdown grace period; closing them");
            }
        }
    })
}
