//! The health endpoints (axum): what Kubernetes probes and operators' scripts read.
//!
//! - `GET /health`: the whole picture, 200 when healthy, else 503.
//! - `GET /health/ready`: 200 only when healthy (not stuck, head fresh, every actor publishing,
//!   the ledger writable); otherwise 503 with the reason.
//! - `GET /health/live`: 200 while the supervisor publishes.
//!
//! `/health` shows health, not internals; the same document with every detail is
//! `GET /admin/status`, behind the admin token.
//!
//! The surface reads the status board ([`crate::runtime::status`]) and the ledger, and sends typed
//! commands ([`crate::http::control`]); it never imports an actor. An actor whose status has not been
//! refreshed recently counts as not responding, which makes the daemon unhealthy.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;

mod scoreboard;

pub use scoreboard::{keep as keep_scoreboard, scoreboard};
use serde_json::{Value, json};

use crate::http::surface::Surface;

fn to_value<T: serde::Serialize>(v: Option<T>) -> Value {
    match v {
        Some(v) => serde_json::to_value(v).unwrap_or(Value::Null),
        None => json!({"status": "unhealthy", "state": "not_responding"}),
    }
}

/// Drops the detail fields (`status::DETAIL_FIELDS`) everywhere in a document.
fn public(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|k, _| !crate::runtime::status::DETAIL_FIELDS.contains(&k.as_str()));
            map.values_mut().for_each(public);
        }
        Value::Array(items) => items.iter_mut().for_each(public),
        _ => {}
    }
}

/// Builds the `/health` document and says whether the daemon is healthy. Without `detail` (the
/// unauthenticated `/health`) it carries health, not internals: no prover output, no text a
/// node or the API sent; `/admin/status` (behind the token) has everything.
pub fn snapshot(s: &Surface, detail: bool) -> (Value, &'static str) {
    let b = &s.board;
    let (input, prover, reporter, notifier, supervisor) =
        (b.input.fresh(), b.prover.fresh(), b.reporter.fresh(), b.notifier.fresh(), b.supervisor.fresh());
    let all_answer =
        input.is_some() && prover.is_some() && reporter.is_some() && notifier.is_some() && supervisor.is_some();
    let write_trouble = s.control.write_trouble();
    let pause = s.pause();
    // A pause the daemon imposed (a full disk) is not health: the operator's own is.
    let degraded = input.as_ref().is_some_and(|s| s.status != "healthy")
        || prover.as_ref().is_some_and(|s| s.status != "healthy")
        || write_trouble.is_some()
        || pause.as_ref().is_some_and(|p| p.imposed);
    let status = if !all_answer {
        "unhealthy"
    } else if degraded {
        "degraded"
    } else {
        "healthy"
    };
    let uptime = SystemTime::now().duration_since(s.info.started_at).map(|d| d.as_secs()).unwrap_or(0);
    let q = queues(s, &building(input.as_ref()));
    let doc = json!({
        "status": status,
        "timestamp": crate::runtime::status::rfc3339(SystemTime::now()),
        "uptime_seconds": uptime,
        "version": env!("CARGO_PKG_VERSION"),
        "ethrex_version": crate::ETHREX_VERSION,
        "chain": {"name": s.info.chain_name, "chain_id": s.info.chain_id},
        "elf": {"sha256": s.info.elf_sha256, "ethrex": s.info.elf_ethrex, "ziskos": s.info.elf_ziskos},
        "verify": {
            "enabled": s.info.verify_proofs,
            "program_vk": s.info.program_vk,
            "key_from": s.info.key_from,
            "output_layout": s.info.output_layout,
            "unchecked": s.info.proofs_unchecked,
        },
        "components": {
            "input_generator": to_value(input),
            "prover": to_value(prover),
            "reporter": to_value(reporter),
            "notifier": to_value(notifier),
            "supervisor": to_value(supervisor),
        },
        "paused": pause.is_some(),
        "pause": pause.as_ref().map(|p| json!({"by": p.by, "reason": p.reason})),
        "ledger": ledger(s, write_trouble.as_ref()),
        "cohort": serde_json::to_value(scoreboard(s)).unwrap_or(Value::Null),
        "system": system(s),
    });
    let mut doc = doc;
    // One meaning per word on every screen: `proved_count` and its kin count blocks, as the
    // ledger (and so the dashboard and `report`) does; this process's runs are `runs`.
    if doc["components"]["prover"].is_object() {
        for (field, state) in [("proved_count", "proved"), ("executed_count", "executed"), ("failed_count", "failed")] {
            let n = doc["ledger"]["blocks"][state].as_u64().unwrap_or(0);
            doc["components"]["prover"][field] = json!(n);
        }
    }
    let components = &mut doc["components"];
    components["input_generator"]["queue_length"] = json!(q.input.len());
    components["input_generator"]["queued_blocks"] = json!(q.input.iter().take(100).collect::<Vec<_>>());
    components["prover"]["queue_length"] = json!(q.prover.len());
    components["prover"]["queued_blocks"] = json!(q.prover.iter().take(100).collect::<Vec<_>>());
    components["reporter"]["queue_length"] = json!(q.reports.len());
    components["reporter"]["queued_reports"] = json!(q.reports.iter().take(100).collect::<Vec<_>>());
    if !detail {
        public(&mut doc);
        // What outside parties wrote reaches the public without secrets, paths or line breaks.
        crate::outside::sanitize::public_strings(&mut doc);
    }
    (doc, status)
}

/// The three queues, read from the ledger when a document is asked for (the actors do not query
/// them on every turn): `seen` blocks not being built, `queued` blocks, pending EthProofs calls.
struct QueueContents {
    input: Vec<u64>,
    prover: Vec<u64>,
    reports: Vec<String>,
}

/// The blocks whose inputs are building: not waiting in the input queue.
fn building(input: Option<&crate::runtime::status::InputStatus>) -> Vec<u64> {
    input.map(|i| i.building.iter().map(|b| b.block).collect()).unwrap_or_default()
}

fn queues(s: &Surface, building: &[u64]) -> QueueContents {
    use crate::store::BlockState;
    let ledger = s.control.reads();
    let numbers = |states: &[BlockState]| -> Vec<u64> {
        ledger.blocks_in(states).map(|rows| rows.iter().map(|b| b.number).collect()).unwrap_or_default()
    };
    let input = numbers(&[BlockState::Seen]).into_iter().filter(|b| !building.contains(b)).collect();
    let prover = numbers(&[BlockState::Queued, BlockState::InputReady]);
    let reports = if s.info.reporting {
        let pending = ledger.pending_reports().unwrap_or_default();
        pending.iter().map(|r| format!("{} {}", r.block, r.kind.as_str())).collect()
    } else {
        Vec::new()
    };
    QueueContents { input, prover, reports }
}

fn ledger(s: &Surface, write_trouble: Option<&crate::store::WriteTrouble>) -> Value {
    let mut doc = match s.control.reads().counts() {
        Ok(counts) => json!({
            "blocks": counts.into_iter().map(|(k, v)| (k, json!(v))).collect::<serde_json::Map<String, Value>>(),
        }),
        Err(_) => json!({"error": "the ledger cannot be read (see the daemon's log)"}),
    };
    // Writes failing for now: the daemon is not ready, and this says why.
    if let Some(t) = write_trouble {
        doc["write_error"] = json!(format!("the ledger cannot be written: {}", t.error));
        doc["write_failing_since"] = json!(crate::runtime::status::rfc3339(t.since));
        doc["write_failures"] = json!(t.failures);
    }
    doc
}

/// Why the daemon is not ready, in a few words for a probe's log.
fn not_ready_reason(doc: &Value) -> Option<String> {
    if let Some(e) = doc["ledger"]["write_error"].as_str() {
        return Some(e.to_string());
    }
    if let Some(reason) = doc["pause"]["reason"].as_str().filter(|_| doc["pause"]["by"] != "operator") {
        return Some(reason.to_string());
    }
    let components = doc["components"].as_object()?;
    let unwell: Vec<String> = components
        .iter()
        .filter(|(_, c)| c["status"] != "healthy")
        .map(|(name, c)| format!("{name} {}", c["state"].as_str().or(c["status"].as_str()).unwrap_or("unhealthy")))
        .collect();
    (!unwell.is_empty()).then(|| unwell.join(", "))
}

fn system(s: &Surface) -> Value {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb = |key: &str| -> Option<u64> {
        status.lines().find(|l| l.starts_with(key))?.split_whitespace().nth(1)?.parse().ok()
    };
    json!({
        "rss_mb": kb("VmRSS:").map(|k| k / 1024),
        "peak_rss_mb": kb("VmHWM:").map(|k| k / 1024),
        "threads": kb("Threads:"),
        "output_dir_free_gb": crate::runtime::disk::free_gb(&s.info.output_dir),
    })
}

/// The health endpoints and `/metrics`.
/// Only liveness and readiness: what the server's reserved lane serves when the port is full
/// (anything else there is told to come back).
pub fn probes(surface: Arc<Surface>) -> Router {
    Router::new()
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .fallback(|| async { (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")], "busy: try again") })
        .with_state(surface)
}

pub fn router(surface: Arc<Surface>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .route("/metrics", get(metrics))
        .with_state(surface)
}

async fn health(State(s): State<Arc<Surface>>) -> Response {
    crate::http::surface::off_runtime(s, |s| health_now(s).into_response()).await
}

fn health_now(s: &Surface) -> impl IntoResponse {
    let (doc, status) = snapshot(s, false);
    let code = if status == "healthy" { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, Json(doc))
}

async fn ready(State(s): State<Arc<Surface>>) -> Response {
    crate::http::surface::off_runtime(s, |s| ready_now(s).into_response()).await
}

fn ready_now(s: &Surface) -> impl IntoResponse {
    let (doc, status) = snapshot(s, false);
    if status == "healthy" {
        return (StatusCode::OK, Json(json!({"status": status})));
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": status, "reason": not_ready_reason(&doc)})))
}

async fn metrics(State(s): State<Arc<Surface>>) -> Response {
    crate::http::surface::off_runtime(s, |s| metrics_now(s).into_response()).await
}

fn metrics_now(s: &Surface) -> impl IntoResponse {
    let b = &s.board;
    let (input, prover) = (b.input.fresh(), b.prover.fresh());
    let queued = queues(s, &building(input.as_ref()));
    let ledger = s.control.reads();
    let six_hours_ago = SystemTime::now()
        .checked_sub(Duration::from_secs(6 * 3600))
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0));
    // A target is done when the mode's work on it is: proved, or executed without proofs.
    let done = if s.info.proves { crate::store::BlockState::Proved } else { crate::store::BlockState::Executed };
    let (expected_6h, proved_6h) = ledger.reliability(six_hours_ago, done).unwrap_or((0, 0));
    let targets_behind = ledger.targets_behind(done).unwrap_or(0);
    let last_done = ledger.newest_in(done).ok().flatten();
    // In prove mode the newest done block is the newest proved one: asked once.
    let last_proved =
        if s.info.proves { last_done } else { ledger.newest_in(crate::store::BlockState::Proved).ok().flatten() };
    let last_reported = ledger.last_reported().ok().flatten();
    let snapshot = crate::runtime::telemetry::Snapshot {
        head: input.as_ref().and_then(|s| s.head),
        last_target: ledger.last_scheduled().ok().flatten(),
        last_proved,
        last_done,
        last_reported,
        input_queue: queued.input.len(),
        prover_queue: queued.prover.len(),
        report_queue: queued.reports.len(),
        proving_block: prover.as_ref().and_then(|s| s.proving_block),
        proving_seconds: prover.as_ref().and_then(|s| s.proving_duration_seconds),
        expected_6h,
        proved_6h,
        paused: s.paused(),
        job_phase: prover.as_ref().and_then(|p| p.phase.zip(p.phase_seconds)),
        coordinator_up: prover.as_ref().and_then(|p| p.coordinator.as_ref()).map(|c| c.reachable != Some(false)),
        block_interval: s.info.block_interval,
        targets_behind,
        prover_stuck: prover.as_ref().is_some_and(|p| p.state == "stuck"),
        cohort: scoreboard(s).map(|b| crate::runtime::telemetry::CohortGauges {
            in_time_bar: b.in_time_bar,
            proved_bar: b.proved_bar,
            windows: [("1h", b.last_hour), ("24h", b.last_day)]
                .into_iter()
                .map(|(window, f)| crate::runtime::telemetry::CohortWindow {
                    window,
                    counted: f.counted,
                    share_in_time: f.share_in_time,
                    share_proved: f.share_proved,
                    paralyzed: f.paralyzed,
                    avg_cost_per_proof: f.avg_cost_per_proof,
                })
                .collect(),
        }),
    };
    let hash_id = prover
        .as_ref()
        .and_then(|p| p.coordinator.as_ref())
        .and_then(|c| c.hash_id.clone())
        .unwrap_or_else(|| "none".to_string());
    let body = crate::runtime::telemetry::render(
        &snapshot,
        vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("ethrex", crate::ETHREX_VERSION.to_string()),
            ("zisk", s.info.zisk_version.clone()),
            ("elf_sha256", s.info.elf_sha256.clone()),
            ("elf_ethrex", s.info.elf_ethrex.clone()),
            ("elf_ziskos", s.info.elf_ziskos.clone()),
            ("backend", prover.as_ref().map_or("unknown", |p| p.backend).to_string()),
            ("elf_hash_id", hash_id),
        ],
    );
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}

async fn live(State(s): State<Arc<Surface>>) -> impl IntoResponse {
    match s.board.supervisor.fresh() {
        Some(_) => (StatusCode::OK, Json(json!({"status": "alive"}))),
        None => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "supervisor not responding"}))),
    }
}
