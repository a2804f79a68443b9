//! The accept loop: HTTP/1.1 connections with a header read timeout (which also closes idle
//! keep-alive connections, so slow or silent clients cannot pin the server), and graceful
//! shutdown (stop accepting, let in-flight requests finish within a deadline).
//!
//! warp's own server cannot set these timeouts, so connections are served with hyper directly
//! and warp's filters as the service.

use std::net::SocketAddr;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use warp::Filter;

/// Binds a listener; port 0 picks a free port (tests).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `filter` on `listener` until `shutdown`, then waits up to `grace` for open requests.
pub fn serve<F>(
    listener: TcpListener,
    filter: F,
    header_timeout: Duration,
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
        loop {
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
                .header_read_timeout(header_timeout)
                .keep_alive(true);
            let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection closed with an error");
                }
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
