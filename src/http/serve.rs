//! The HTTP server loop for the daemon's own port, hardened for the network in front of it:
//! at most [`MAX_CONNECTIONS`] at once and [`PER_CLIENT`] from one address, request headers must
//! arrive within [`HEADER_TIMEOUT`], headers are capped at [`MAX_HEADER_BYTES`], bodies at
//! [`MAX_BODY_BYTES`], and an idle connection is closed after [`IDLE_TIMEOUT`]. A stream of
//! half-open connections therefore costs a bounded number of file descriptors for a bounded time.
//!
//! Past either cap a connection is not dropped at once: it gets one of [`PROBE_LANE`] reserved
//! places where only the probes (`/health/live`, `/health/ready`) are served, and only to a
//! client that sends its request within [`PROBE_HEADER_TIMEOUT`]. So the kubelet's probes are
//! answered however many slow clients or dashboard polls fill the port, and a probe failing
//! never restarts the pod (and its running proof) for someone else's flood.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub const MAX_CONNECTIONS: usize = 64;
/// Connections one address may hold at once (a reverse proxy in front is one address).
pub const PER_CLIENT: usize = 32;
/// Places kept for the probes once the port is full.
pub const PROBE_LANE: usize = 16;
/// Of those, what one address may hold: no one client fills the lane.
pub const PROBE_LANE_PER_CLIENT: usize = 4;
/// How soon a connection in the probe lane must have sent its request.
pub const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Connections held per address, at most `max`; a place is given back when its guard drops.
#[derive(Clone)]
struct PerClient(Arc<Mutex<HashMap<IpAddr, usize>>>, usize);

struct ClientPlace(PerClient, IpAddr);

impl PerClient {
    fn new(max: usize) -> PerClient {
        PerClient(Arc::default(), max)
    }

    fn take(&self, ip: IpAddr) -> Option<ClientPlace> {
        // An IPv4 client seen through an IPv6 socket is the same client.
        let ip = ip.to_canonical();
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= self.1 {
            return None;
        }
        *n += 1;
        Some(ClientPlace(self.clone(), ip))
    }
}

impl Drop for ClientPlace {
    fn drop(&mut self) {
        let mut held = self.0.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.1) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.1);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves (`probes`, the liveness and
/// readiness routes, also in the reserved lane); connections still open then get a moment to
/// finish and are dropped.
pub async fn serve(listener: TcpListener, router: Router, probes: Router, shutdown: impl Future<Output = ()>) {
    let router = router.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let probes = probes.layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let lane = Arc::new(Semaphore::new(PROBE_LANE));
    let clients = PerClient::new(PER_CLIENT);
    let lane_clients = PerClient::new(PROBE_LANE_PER_CLIENT);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
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
        let place = clients.take(peer.ip()).zip(permits.clone().try_acquire_owned().ok());
        let (service, header_timeout, places) = match place {
            Some(places) => (router.clone(), HEADER_TIMEOUT, (Some(places), None)),
            None => match lane_clients.take(peer.ip()).zip(lane.clone().try_acquire_owned().ok()) {
                Some(probe_place) => (probes.clone(), PROBE_HEADER_TIMEOUT, (None, Some(probe_place))),
                // Over every cap: close at once rather than hold a descriptor we won't serve.
                None => {
                    drop(stream);
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(service);
        let idle = if places.1.is_some() { PROBE_HEADER_TIMEOUT * 2 } else { IDLE_TIMEOUT };
        connections.spawn(async move {
            let _places = places;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(MAX_HEADER_BYTES)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // A connection idle (or trickling) past the limit is closed whatever it is doing.
            let _ = tokio::time::timeout(idle, conn).await;
        });
        // Finished connections are collected as we go, so the set stays as small as the caps.
        while connections.try_join_next().is_some() {}
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(2), async { while connections.join_next().await.is_some() {} }).await;
    connections.abort_all();
}
