//! One block's page: `/blocks/{n}` (HTML) and `/api/blocks/{n}` (its JSON), the block's story
//! from the ledger — each transition with its time and the time since the previous one, sizes,
//! gas, transactions, attempts, the prover's exit or coordinator job, every EthProofs call and
//! what became of it — and where the time went. A block re-executed natively (`run --dev`) says
//! "executed", and a dev chain's page links nowhere: ethproofs.org is linked only for a proved
//! block of a chain this daemon reports.
//!
//! The JSON is this module's own shape (built here, from `store::Story`), an API boundary.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};

use crate::store::Story;
use crate::surface::Surface;

const PAGE: &str = include_str!("dashboard/block.html");

pub fn router(surface: Arc<Surface>) -> Router {
    Router::new().route("/blocks/{n}", get(page)).route("/api/blocks/{n}", get(data)).with_state(surface)
}

async fn page() -> impl IntoResponse {
    Html(PAGE)
}

async fn data(State(s): State<Arc<Surface>>, Path(n): Path<u64>) -> Response {
    match s.control.ledger().story(n) {
        Ok(Some(story)) => {
            let mut doc = document(&s, &story);
            // Reasons carry what a node, the coordinator or the API wrote: shown clean.
            crate::sanitize::public_strings(&mut doc);
            Json(doc).into_response()
        }
        Ok(None) => {
            (StatusCode::NOT_FOUND, Json(json!({"error": format!("block {n} is not in the ledger")}))).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "block page: ledger error");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({"error": "the ledger cannot be read (see the daemon's log)"})),
            )
                .into_response()
        }
    }
}

fn time(ms: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    crate::status::rfc3339(at)
}

/// What a transition means, in words, with what the ledger knows about it.
fn describe(story: &Story, what: &str) -> (&'static str, Option<String>) {
    let executed = story.state == "executed";
    let num = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    match what {
        "seen" => ("target seen", Some(format!("origin: {}", story.origin))),
        "queued" => (
            "input built",
            Some(format!(
                "{} gas, {} transactions, built in {} ms",
                num(story.gas_used),
                num(story.tx_count),
                num(story.input_ms)
            )),
        ),
        "proving" => (
            if executed { "execution started" } else { "proving started" },
            Some(match &story.job_id {
                Some(job) => format!("attempt {}, coordinator job {job}", story.attempts),
                None => format!("attempt {}", story.attempts),
            }),
        ),
        "checked" => ("input checked by the guest", story.guest_steps.map(|s| format!("{s} steps"))),
        "exited" => ("prover finished", story.exit.clone()),
        "proved" => (
            "proof accepted",
            Some(format!(
                "proving time {} ms, {} cycles, proof {} bytes",
                num(story.proving_ms),
                num(story.cycles),
                num(story.proof_bytes)
            )),
        ),
        "executed" => {
            ("executed (no proof)", Some(format!("{} ms, {} steps", num(story.proving_ms), num(story.cycles))))
        }
        "failed" => (
            "failed",
            Some(format!("{}: {}", story.stage.as_deref().unwrap_or("?"), story.reason.as_deref().unwrap_or(""))),
        ),
        "skipped" => ("skipped", story.reason.clone()),
        _ => ("event", None),
    }
}

/// The `/api/blocks/{n}` document.
pub fn document(s: &Surface, story: &Story) -> Value {
    let dev = s.info.dev;
    let mut events: Vec<(i64, String, Option<String>)> = story
        .moments
        .iter()
        .map(|m| {
            let (what, detail) = describe(story, m.what);
            (m.at_ms, what.to_string(), detail)
        })
        .collect();
    for call in &story.calls {
        events.push((call.created_at_ms, format!("EthProofs `{}` call raised", call.kind), None));
        let answer = match (call.state.as_str(), call.done_at_ms) {
            ("done", Some(at)) => Some((at, format!("EthProofs accepted `{}`", call.kind))),
            ("already_proved", Some(at)) => Some((at, format!("EthProofs already had `{}`", call.kind))),
            (state, Some(at)) => Some((at, format!("EthProofs `{}` call {state}", call.kind))),
            _ => None,
        };
        if let Some((at, what)) = answer {
            // What the API said is shown in our words only: the public page carries no text from outside.
            let detail = call.last_error.as_deref().map(crate::status::public_reason);
            events.push((
                at,
                what,
                Some(format!(
                    "after {} attempt(s){}",
                    call.attempts,
                    detail.map_or(String::new(), |d| format!(", last error: {d}"))
                )),
            ));
        }
    }
    for (hash, reason, at) in &story.orphans {
        events.push((
            *at,
            "left the canonical chain".into(),
            Some(format!("{} ({reason})", hash.as_deref().unwrap_or("?"))),
        ));
    }
    events.sort_by_key(|e| e.0);
    let mut previous: Option<i64> = None;
    let timeline: Vec<Value> = events
        .iter()
        .map(|(at, what, detail)| {
            let since = previous.map(|p| at.saturating_sub(p).max(0));
            previous = Some(*at);
            json!({"at": time(*at), "at_ms": at, "what": what, "detail": detail, "since_previous_ms": since})
        })
        .collect();
    let proved_call = story.calls.iter().find(|c| c.kind == "proved").and_then(|c| c.done_at_ms);
    let ethproofs_url = crate::status::ethproofs_url(story.block, story.state == "proved", s.info.reporting, dev);
    json!({
        "block": story.block,
        "chain": s.info.chain_name,
        "dev_chain": dev,
        "outcome": story.state,
        "stage": story.stage,
        "reason": story.reason,
        "attempts": story.attempts,
        "interruptions": story.interruptions,
        "gas_used": story.gas_used,
        "tx_count": story.tx_count,
        "input_bytes": story.input_path.as_deref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()),
        "proof_bytes": story.proof_bytes,
        "input_ms": story.input_ms,
        "proving_ms": story.proving_ms,
        "cycles": story.cycles,
        "guest_steps": story.guest_steps,
        "exit": story.exit,
        "job_id": story.job_id,
        "block_hash": story.block_hash,
        "block_time": story.block_timestamp.and_then(|t| i64::try_from(t).ok()).map(|t| time(t.saturating_mul(1000))),
        "timeline": timeline,
        "where_the_time_went": segments(story, proved_call),
        "ethproofs_url": ethproofs_url,
    })
}

/// Consecutive stretches of the block's life, each with its length: the bar on the page.
fn segments(story: &Story, proved_call_done: Option<i64>) -> Vec<Value> {
    let label = |from: &str, to: &str| match (from, to) {
        ("seen", "queued") => "building the input",
        ("queued", "proving") => "waiting for the prover",
        ("proving", "checked") => "checking the input",
        (_, "exited") => "proving",
        ("exited", _) => "sealing the proof",
        (_, "failed") => "until it failed",
        _ => "waiting",
    };
    let mut out: Vec<Value> = story
        .moments
        .windows(2)
        .map(|w| json!({"label": label(w[0].what, w[1].what), "ms": w[1].at_ms.saturating_sub(w[0].at_ms).max(0)}))
        .collect();
    if let (Some(last), Some(done)) = (story.moments.last(), proved_call_done)
        && last.what == "proved"
    {
        out.push(json!({"label": "reporting to EthProofs", "ms": done.saturating_sub(last.at_ms).max(0)}));
    }
    out
}
