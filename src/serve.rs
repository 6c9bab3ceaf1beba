//! The HTTP server loop for the daemon's own port, hardened for the network in front of it:
//! at most [`MAX_CONNECTIONS`] at once (more are closed at once), request headers must arrive
//! within [`HEADER_TIMEOUT`], headers are capped at [`MAX_HEADER_BYTES`], bodies at
//! [`MAX_BODY_BYTES`], and an idle connection is closed after [`IDLE_TIMEOUT`]. A stream of
//! half-open connections therefore costs a bounded number of file descriptors for a bounded time.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub const MAX_CONNECTIONS: usize = 64;
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Serves `router` on `listener` until `shutdown` resolves; connections still open then get a
/// moment to finish and are dropped.
pub async fn serve(listener: TcpListener, router: Router, shutdown: impl Future<Output = ()>) {
    let router = router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors, or a connection reset before accept: keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            // Over the cap: close at once rather than hold a descriptor for a client we won't serve.
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        connections.spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // A connection idle (or trickling) past the limit is closed whatever it is doing.
            let _ = tokio::time::timeout(IDLE_TIMEOUT, conn).await;
        });
        // Finished connections are collected as we go, so the set stays as small as the cap.
        while connections.try_join_next().is_some() {}
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(2), async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
}
