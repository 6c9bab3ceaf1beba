//! The admin API: what an operator can ask a running daemon to do. Mounted only when
//! `ADMIN_TOKEN` is set; every call needs `Authorization: Bearer <token>`, and a wrong or missing
//! token gets 401 with nothing changed.
//!
//! - `POST /admin/prove/{n}`, `POST /admin/prove?start=<n>&count=<k>`: prove any blocks, not only targets;
//!   `POST /admin/prove?latest=<k>`: the k newest targets at or below the head.
//! - `POST /admin/resubmit/{n}`: send a proved block's `proved` report again, from its saved proof.
//! - `POST /admin/cancel/{n}`: cancel the block's running attempt (its cargo-zisk run or
//!   coordinator job); the block ends failed at stage `cancelled` and can be proved again.
//! - `POST /admin/pause`, `POST /admin/resume`: stop / restart starting new inputs and proofs.
//! - `GET /admin/blocks?state=&limit=`: the ledger's recent blocks.
//! - `GET /admin/status`: the `/health` document with every detail.
//!
//! Served on its own address (`ADMIN_HOST:ADMIN_PORT`, loopback by default), never on the
//! public health port.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::json;

use crate::config::Secret;
use crate::http::control::Resubmit;
use crate::http::surface::Surface;
use crate::store::CancelRequest;

/// At most this many blocks per `prove?start=&count=` call.
pub const MAX_RANGE: u64 = 1000;

pub fn router(surface: Arc<Surface>) -> Router {
    Router::new()
        .route("/admin/prove/{n}", post(prove_one))
        .route("/admin/prove", post(prove_range))
        .route("/admin/resubmit/{n}", post(resubmit))
        .route("/admin/cancel/{n}", post(cancel))
        .route("/admin/pause", post(pause))
        .route("/admin/resume", post(resume))
        .route("/admin/blocks", get(blocks))
        .route("/admin/status", get(status))
        .with_state(surface)
}

/// Compares without an early exit, so response times do not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The refusal to send, if the request does not carry the admin token.
fn refuse(s: &Surface, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = s.info.admin_token.as_ref() else {
        return Some((StatusCode::NOT_FOUND, "admin API disabled").into_response());
    };
    let given = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if same(g.as_bytes(), token.expose().as_bytes()) => None,
        _ => Some((StatusCode::UNAUTHORIZED, Json(json!({"error": "missing or wrong admin token"}))).into_response()),
    }
}

fn error(code: StatusCode, message: String) -> Response {
    (code, Json(json!({"error": message}))).into_response()
}

fn ledger_error(e: crate::store::StoreError) -> Response {
    tracing::error!(error = %e, "admin call: ledger error");
    error(StatusCode::INTERNAL_SERVER_ERROR, "the ledger could not be read or written (see the daemon's log)".into())
}

/// The largest block number the ledger can hold (SQLite integers are signed): a larger one is
/// refused, never clamped into another block.
pub const MAX_BLOCK: u64 = i64::MAX as u64;

/// 400 for a block number the ledger cannot hold.
fn beyond_ledger(blocks: &[u64]) -> Option<Response> {
    let n = blocks.iter().find(|&&n| n > MAX_BLOCK)?;
    Some(error(StatusCode::BAD_REQUEST, format!("block {n} is above the largest block number {MAX_BLOCK}")))
}

fn add_blocks(s: &Surface, blocks: &[u64]) -> Response {
    if let Some(refusal) = beyond_ledger(blocks) {
        return refusal;
    }
    match s.control.prove(blocks) {
        Ok(outcome) if outcome.added.is_empty() => error(
            StatusCode::CONFLICT,
            format!(
                "nothing to start: already proved {:?}, in progress {:?}",
                outcome.already_proved, outcome.in_progress
            ),
        ),
        Ok(outcome) => (
            StatusCode::ACCEPTED,
            Json(json!({
                "requested": blocks,
                "added": outcome.added.len(),
                "added_blocks": outcome.added,
                "in_progress": outcome.in_progress,
                "already_proved": outcome.already_proved,
            })),
        )
            .into_response(),
        Err(e) => ledger_error(e),
    }
}

async fn prove_one(State(s): State<Arc<Surface>>, headers: HeaderMap, Path(n): Path<u64>) -> Response {
    if let Some(refusal) = refuse(&s, &headers) {
        return refusal;
    }
    add_blocks(&s, &[n])
}

#[derive(Deserialize)]
struct Range {
    start: Option<u64>,
    count: Option<u64>,
    latest: Option<u64>,
}

async fn prove_range(State(s): State<Arc<Surface>>, headers: HeaderMap, Query(range): Query<Range>) -> Response {
    if let Some(refusal) = refuse(&s, &headers) {
        return refusal;
    }
    if let Some(latest) = range.latest {
        if latest == 0 || latest > MAX_RANGE {
            return error(StatusCode::BAD_REQUEST, format!("latest must be 1..={MAX_RANGE}"));
        }
        let Some(head) = s.board.input.fresh().and_then(|i| i.head) else {
            return error(StatusCode::CONFLICT, "the head is not known yet".into());
        };
        return add_blocks(&s, &latest_targets(head, s.info.block_interval, latest));
    }
    let (Some(start), Some(count)) = (range.start, range.count) else {
        return error(StatusCode::BAD_REQUEST, "give start and count, or latest".into());
    };
    if count == 0 || count > MAX_RANGE {
        return error(StatusCode::BAD_REQUEST, format!("count must be 1..={MAX_RANGE}"));
    }
    let Some(end) = start.checked_add(count) else {
        return error(StatusCode::BAD_REQUEST, "start + count overflows".into());
    };
    add_blocks(&s, &(start..end).collect::<Vec<_>>())
}

async fn resubmit(State(s): State<Arc<Surface>>, headers: HeaderMap, Path(n): Path<u64>) -> Response {
    if let Some(refusal) = refuse(&s, &headers) {
        return refusal;
    }
    if let Some(refusal) = beyond_ledger(&[n]) {
        return refusal;
    }
    match s.control.resubmit(n) {
        Ok(Resubmit::Queued) => (StatusCode::ACCEPTED, Json(json!({"resubmitted": n}))).into_response(),
        Ok(Resubmit::ReportingOff) => error(StatusCode::CONFLICT, "EthProofs reporting is not configured".into()),
        Ok(Resubmit::NotProvedOrPending) => {
            error(StatusCode::CONFLICT, format!("block {n} is not proved, or its proved report is still pending"))
        }
        Err(e) => ledger_error(e),
    }
}

async fn cancel(State(s): State<Arc<Surface>>, headers: HeaderMap, Path(n): Path<u64>) -> Response {
    if let Some(refusal) = refuse(&s, &headers) {
        return refusal;
    }
    if let Some(refusal) = beyond_ledger(&[n]) {
        return refusal;
    }
    match s.control.cancel(n) {
        Ok(CancelRequest::Requested) => (StatusCode::ACCEPTED, Json(json!({"cancelling": n}))).into_response(),
        Ok(CancelRequest::NotProving(state)) => error(
            StatusCode::CONFLICT,
            match state {
                Some(state) => format!("block {n} is not being proved (it is {state}); nothing to cancel"),
                None => format!("block {n} is not in the ledger; nothing to cancel"),
            },
        ),
        Err(e) => ledger_error(e),
    }
}

async fn pause(State(s): State<Arc<Surface>>, headers: HeaderMap) -> Response {
    set_paused(&s, &headers, true)
}

async fn resume(State(s): State<Arc<Surface>>, headers: HeaderMap) -> Response {
    set_paused(&s, &headers, false)
}

fn set_paused(s: &Surface, headers: &HeaderMap, paused: bool) -> Response {
    if let Some(refusal) = refuse(s, headers) {
        return refusal;
    }
    match s.control.set_paused(paused) {
        Ok(()) => Json(json!({"paused": paused})).into_response(),
        Err(e) => ledger_error(e),
    }
}

/// The `/health` document with every detail: the prover's last lines, what the node and the
/// API said.
async fn status(State(s): State<Arc<Surface>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = refuse(&s, &headers) {
        return refusal;
    }
    Json(crate::http::health::snapshot(&s, true).0).into_response()
}

#[derive(Deserialize)]
struct BlocksQuery {
    state: Option<String>,
    limit: Option<u32>,
}

async fn blocks(State(s): State<Arc<Surface>>, headers: HeaderMap, Query(q): Query<BlocksQuery>) -> Response {
    if let Some(refusal) = refuse(&s, &headers) {
        return refusal;
    }
    match s.control.reads().recent_blocks(q.state.as_deref(), q.limit.unwrap_or(50).min(1000)) {
        Ok(lines) => Json(json!({"blocks": lines})).into_response(),
        Err(e) => ledger_error(e),
    }
}

/// The `count` newest multiples of `interval` at or below `head`, newest first (fewer near 0).
pub fn latest_targets(head: u64, interval: u64, count: u64) -> Vec<u64> {
    let newest = crate::block::schedule::newest_target(head, interval);
    (0..count).map_while(|k| interval.checked_mul(k).and_then(|d| newest.checked_sub(d))).filter(|b| *b > 0).collect()
}

/// The largest answer the admin client reads (a `/health` document is a few tens of kB).
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Why the CLI's call to a running daemon got no answer to show (an answer with any HTTP status
/// is an answer).
#[derive(Debug, thiserror::Error)]
pub enum AdminCallError {
    #[error("cannot make an HTTP client: {0}")]
    Client(String),
    #[error("cannot reach the daemon at {base}: {reason}")]
    Unreachable { base: String, reason: String },
    #[error("the answer from {base} broke off: {reason}")]
    BrokenOff { base: String, reason: String },
    #[error("the answer from {base} is larger than {MAX_ANSWER_BYTES} bytes")]
    TooLarge { base: String },
}

/// The CLI side: one call to a running daemon's admin API. Returns the status and JSON body.
pub async fn call(
    base: &str,
    token: Option<&Secret>,
    method: &str,
    path: &str,
) -> Result<(u16, serde_json::Value), AdminCallError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    let shown = || crate::outside::chain::redact_url(base);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| AdminCallError::Client(e.to_string()))?;
    let mut request = match method {
        "POST" => client.post(&url),
        _ => client.get(&url),
    };
    if let Some(t) = token {
        request = request.header("Authorization", format!("Bearer {}", t.expose()));
    }
    let response = request
        .send()
        .await
        .map_err(|e| AdminCallError::Unreachable { base: shown(), reason: e.without_url().to_string() })?;
    let status = response.status().as_u16();
    // Whatever answers on that port, its answer is read only up to a status document's size.
    let mut response = response;
    let mut bytes = Vec::new();
    let broken = |e: reqwest::Error| AdminCallError::BrokenOff { base: shown(), reason: e.without_url().to_string() };
    while let Some(chunk) = response.chunk().await.map_err(broken)? {
        if bytes.len().saturating_add(chunk.len()) > MAX_ANSWER_BYTES {
            return Err(AdminCallError::TooLarge { base: shown() });
        }
        bytes.extend_from_slice(&chunk);
    }
    let text = String::from_utf8_lossy(&bytes).to_string();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_latest_targets_are_the_newest_multiples_at_or_below_the_head() {
        assert_eq!(super::latest_targets(1234, 100, 3), vec![1200, 1100, 1000]);
        assert_eq!(super::latest_targets(250, 100, 5), vec![200, 100], "none below the first");
        assert_eq!(super::latest_targets(u64::MAX, 100, 2).len(), 2);
    }

    #[test]
    fn token_comparison() {
        assert!(super::same(b"abc", b"abc"));
        assert!(!super::same(b"abc", b"abd"));
        assert!(!super::same(b"abc", b"abcd"));
    }
}
