//! The health endpoints (axum): what Kubernetes probes and operators' scripts read.
//!
//! - `GET /health`: the whole picture, 200 when healthy, else 503.
//! - `GET /health/ready`: 200 only when healthy (not stuck, head fresh, every actor answering).
//! - `GET /health/live`: 200 while the supervisor answers.
//!
//! Every figure comes from asking the actors themselves, with a deadline: an actor that does not
//! answer makes the daemon unhealthy, which is the point of asking.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use serde_json::{Value, json};

use crate::daemon::input_generator::InputGenMsg;
use crate::daemon::notifier::NotifierMsg;
use crate::daemon::prover::ProverMsg;
use crate::daemon::reporter::ReporterMsg;
use crate::daemon::supervisor::SupervisorMsg;
use crate::daemon::{self, Context, INPUT_GENERATOR, NOTIFIER, PROVER, REPORTER, SUPERVISOR, ask};

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// The daemon's HTTP surface: health always, the admin API when `ADMIN_TOKEN` is set.
pub fn router(ctx: Arc<Context>) -> Router {
    let health = Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .route("/metrics", get(metrics))
        .with_state(ctx.clone())
        .merge(crate::dashboard::router(ctx.clone()));
    if ctx.config.admin_token.is_some() { health.merge(crate::admin::router(ctx)) } else { health }
}

fn to_value<T: serde::Serialize>(v: Option<T>) -> Value {
    match v {
        Some(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        None => json!({"status": "unhealthy", "state": "not_responding"}),
    }
}

/// Builds the `/health` document and says whether the daemon is healthy.
pub async fn snapshot(ctx: &Context) -> (Value, &'static str) {
    let (input, prover, reporter, notifier, supervisor) = tokio::join!(
        ask(INPUT_GENERATOR, ASK_TIMEOUT, InputGenMsg::Status),
        ask(PROVER, ASK_TIMEOUT, ProverMsg::Status),
        ask(REPORTER, ASK_TIMEOUT, ReporterMsg::Status),
        ask(NOTIFIER, ASK_TIMEOUT, NotifierMsg::Status),
        ask(SUPERVISOR, ASK_TIMEOUT, SupervisorMsg::Status),
    );
    let all_answer =
        input.is_some() && prover.is_some() && reporter.is_some() && notifier.is_some() && supervisor.is_some();
    let degraded =
        input.as_ref().is_some_and(|s| s.status != "healthy") || prover.as_ref().is_some_and(|s| s.status != "healthy");
    let status = if !all_answer {
        "unhealthy"
    } else if degraded {
        "degraded"
    } else {
        "healthy"
    };
    let uptime = SystemTime::now().duration_since(ctx.started_at).map(|d| d.as_secs()).unwrap_or(0);
    let doc = json!({
        "status": status,
        "timestamp": daemon::rfc3339(SystemTime::now()),
        "uptime_seconds": uptime,
        "version": env!("CARGO_PKG_VERSION"),
        "ethrex_version": crate::ETHREX_VERSION,
        "chain": {"name": ctx.chain.origin, "chain_id": ctx.chain.chain_id()},
        "components": {
            "input_generator": to_value(input),
            "prover": to_value(prover),
            "reporter": to_value(reporter),
            "notifier": to_value(notifier),
            "supervisor": to_value(supervisor),
        },
        "paused": ctx.is_paused(),
        "ledger": ledger(ctx),
        "system": system(ctx),
    });
    (doc, status)
}

fn ledger(ctx: &Context) -> Value {
    match ctx.ledger.counts() {
        Ok(counts) => json!({
            "path": ctx.ledger.path(),
            "blocks": counts.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<String, Value>>(),
        }),
        Err(e) => json!({"path": ctx.ledger.path(), "error": e.to_string()}),
    }
}

fn system(ctx: &Context) -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
    };
    json!({
        "rss_mb": kb("VmRSS:").map(|k| k / 1024),
        "peak_rss_mb": kb("VmHWM:").map(|k| k / 1024),
        "threads": kb("Threads:"),
        "output_dir_free_gb": free_gb(&ctx.config.output_dir),
    })
}

/// Free space available to us in `path`'s filesystem, in MB.
pub fn free_mb(path: &std::path::Path) -> Option<u64> {
    free_bytes(path).map(|b| b / 1_000_000)
}

fn free_gb(path: &std::path::Path) -> Option<f64> {
    free_bytes(path).map(|b| (b as f64 / 1e9 * 10.0).round() / 10.0)
}

fn free_bytes(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized out-parameter.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(st.f_bavail as u64 * st.f_frsize as u64)
}

async fn health(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let (doc, status) = snapshot(&ctx).await;
    let code = if status == "healthy" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(doc))
}

async fn ready(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let (_, status) = snapshot(&ctx).await;
    let code = if status == "healthy" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(json!({"status": status})))
}

async fn metrics(State(ctx): State<Arc<Context>>) -> impl IntoResponse {
    let (input, prover, reporter) = tokio::join!(
        ask(INPUT_GENERATOR, ASK_TIMEOUT, InputGenMsg::Status),
        ask(PROVER, ASK_TIMEOUT, ProverMsg::Status),
        ask(REPORTER, ASK_TIMEOUT, ReporterMsg::Status),
    );
    let six_hours_ago = SystemTime::now()
        .checked_sub(Duration::from_secs(6 * 3600))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    let (expected_6h, proved_6h) = ctx.ledger.reliability(six_hours_ago).unwrap_or((0, 0));
    let (last_proved, last_reported) = ctx.ledger.last_proved_and_reported().unwrap_or((None, None));
    let snapshot = crate::telemetry::Snapshot {
        head: input.as_ref().and_then(|s| s.head),
        last_target: ctx.ledger.last_target().ok().flatten(),
        last_proved,
        last_reported,
        input_queue: input.as_ref().map_or(0, |s| s.queue_length),
        prover_queue: prover.as_ref().map_or(0, |s| s.queue_length),
        report_queue: reporter.as_ref().map_or(0, |s| s.queue_length),
        proving_block: prover.as_ref().and_then(|s| s.proving_block),
        proving_seconds: prover.as_ref().and_then(|s| s.proving_duration_seconds),
        expected_6h,
        proved_6h,
        paused: ctx.is_paused(),
    };
    let body = crate::telemetry::render(
        &snapshot,
        [
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("ethrex", crate::ETHREX_VERSION.to_string()),
            ("zisk", ctx.zisk_version.to_string()),
            ("elf_sha256", ctx.elf_sha256.clone()),
        ],
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn live() -> impl IntoResponse {
    match ask(SUPERVISOR, ASK_TIMEOUT, SupervisorMsg::Ping).await {
        Some(()) => (StatusCode::OK, Json(json!({"status": "alive"}))),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "supervisor not responding"}))),
    }
}
