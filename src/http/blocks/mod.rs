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

use crate::http::surface::Surface;
use crate::store::Story;

mod time;

use time::{latency_json, segments};

const PAGE: &str = include_str!("../dashboard/block.html");

pub fn router(surface: Arc<Surface>) -> Router {
    Router::new().route("/blocks/{n}", get(page)).route("/api/blocks/{n}", get(data)).with_state(surface)
}

/// Why a path names no block.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum NotABlock {
    #[error("that is above the largest block number the ledger holds ({})", i64::MAX)]
    AboveTheLedger,
    #[error("that is not a block number")]
    NotANumber,
}

/// The block a path names, or why it names none. The ledger holds numbers up to 2^63−1; a larger
/// one is refused rather than read as another block.
fn number(asked: &str) -> Result<u64, NotABlock> {
    match asked.parse::<u64>() {
        Ok(n) if i64::try_from(n).is_ok() => Ok(n),
        _ if !asked.is_empty() && asked.bytes().all(|b| b.is_ascii_digit()) => Err(NotABlock::AboveTheLedger),
        _ => Err(NotABlock::NotANumber),
    }
}

/// The page, once the block is known to be in the ledger; otherwise a 404 page that says so in
/// words (the script would have nothing to show).
async fn page(State(s): State<Arc<Surface>>, Path(asked): Path<String>) -> Response {
    crate::http::surface::off_runtime(s, move |s| page_now(s, asked)).await
}

fn page_now(s: &Surface, asked: String) -> Response {
    let why = match number(&asked) {
        Err(why) => why.to_string(),
        Ok(n) => match s.control.reads().block(n) {
            Ok(Some(_)) => return Html(PAGE).into_response(),
            Ok(None) => format!("this daemon has no block {n} in its ledger (never a target, nor asked for)"),
            Err(e) => {
                tracing::error!(error = %e, "block page: ledger error");
                let page = missing_page(&asked, "the ledger cannot be read (see the daemon's log)");
                return (StatusCode::INTERNAL_SERVER_ERROR, Html(page)).into_response();
            }
        },
    };
    (StatusCode::NOT_FOUND, Html(missing_page(&asked, &why))).into_response()
}

/// A page for a block that cannot be shown: what was asked (escaped, and cut short: it is the
/// visitor's text), why, and the way back to the board.
fn missing_page(asked: &str, why: &str) -> String {
    let asked = escape_html(&visitor_text(asked));
    let body = format!("You asked for block <code>{asked}</code>: {}.", escape_html(why));
    not_found_page("No such block", &body, "../")
}

/// Any other path on the public port: a 404 page in words, not an empty answer.
pub async fn unknown(uri: axum::http::Uri) -> Response {
    let asked = escape_html(&visitor_text(uri.path()));
    let body = format!("This daemon serves no page at <code>{asked}</code>.");
    (StatusCode::NOT_FOUND, Html(not_found_page("Nothing here", &body, "/"))).into_response()
}

/// The visitor's text as a page may quote it: no control characters, at most 80 characters.
fn visitor_text(asked: &str) -> String {
    asked.chars().filter(|c| !c.is_control()).take(80).collect()
}

/// The 404 page: `body_html` is already escaped.
fn not_found_page(heading: &str, body_html: &str, back: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{heading} · ethproofs-daemon</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body {{ font: 14px/1.4 system-ui, sans-serif; margin: 0; padding: 24px 20px; background: #0f1115; color: #e6e6e6; }}
  h1 {{ font-size: 20px; margin: 0 0 12px; }}
  code {{ overflow-wrap: anywhere; }}
  a {{ color: #93c5fd; }}
</style>
</head>
<body>
<h1 id="not-found">{heading}</h1>
<p>{body_html}</p>
<p><a href="{back}">Back to the dashboard</a></p>
</body>
</html>
"#
    )
}

/// `text` made safe inside HTML element content and attribute values.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

async fn data(State(s): State<Arc<Surface>>, Path(asked): Path<String>) -> Response {
    crate::http::surface::off_runtime(s, move |s| data_now(s, asked)).await
}

fn data_now(s: &Surface, asked: String) -> Response {
    let n = match number(&asked) {
        Ok(n) => n,
        Err(why) => {
            let asked: String = asked.chars().take(80).collect();
            return (StatusCode::NOT_FOUND, Json(json!({"error": format!("{asked:?}: {why}")}))).into_response();
        }
    };
    match s.control.reads().story(n) {
        Ok(Some(story)) => {
            let mut doc = document(s, &story);
            // Reasons carry what a node, the coordinator or the API wrote: shown clean.
            crate::outside::sanitize::public_strings(&mut doc);
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
    crate::runtime::status::rfc3339(at)
}

/// What a transition means, in words, with what the ledger knows about it. `executes`: the block
/// is (being) executed without a proof (`native`, `execute`), and is worded so. Figures the
/// ledger does not have are left out, never shown as "?".
fn describe(story: &Story, what: &str, executes: bool) -> (&'static str, Option<String>) {
    let time = |ms: Option<u64>| ms.map(crate::runtime::status::human_ms);
    let parts = |parts: Vec<Option<String>>| {
        let said: Vec<String> = parts.into_iter().flatten().collect();
        (!said.is_empty()).then(|| said.join(", "))
    };
    match what {
        "seen" => ("target seen", Some(format!("origin: {}", story.origin))),
        "queued" => (
            "input built",
            parts(vec![
                story.gas_used.map(|g| format!("{g} gas")),
                story.tx_count.map(|t| format!("{t} transaction{}", if t == 1 { "" } else { "s" })),
                time(story.input_ms).map(|t| format!("built in {t}")),
            ]),
        ),
        "proving" => (
            if executes { "execution started" } else { "proving started" },
            Some(match &story.job_id {
                Some(job) => format!("attempt {}, coordinator job {job}", story.attempts),
                None => format!("attempt {}", story.attempts),
            }),
        ),
        "checked" => ("input checked by the guest", story.guest_steps.map(|s| format!("{s} steps"))),
        "exited" => (if executes { "execution finished" } else { "prover finished" }, story.exit.clone()),
        "proved" => (
            "proof accepted",
            parts(vec![
                time(story.proving_ms).map(|t| format!("proving time {t}")),
                story.cycles.map(|c| format!("{c} cycles")),
                story.proof_bytes.map(|b| format!("proof {b} bytes")),
            ]),
        ),
        "executed" => (
            "executed (no proof)",
            parts(vec![
                time(story.proving_ms).map(|t| format!("execution time {t}")),
                story.cycles.map(|c| format!("{c} steps")),
            ]),
        ),
        "failed" => (
            "failed",
            Some(format!("{}: {}", story.stage.as_deref().unwrap_or("?"), story.reason.as_deref().unwrap_or(""))),
        ),
        "skipped" => ("skipped", story.reason.clone()),
        _ => ("event", None),
    }
}

/// What an earlier run came to, in the page's words (its stage and reason are the daemon's own).
fn earlier_detail(run: &crate::store::EarlierRun) -> Option<String> {
    match run.outcome.as_str() {
        "failed" | "skipped" => Some(format!(
            "{}: {}",
            run.stage.as_deref().unwrap_or("?"),
            run.reason.as_deref().map(crate::runtime::status::public_reason).unwrap_or_default()
        )),
        _ => {
            let said: Vec<String> = [
                run.proving_ms.map(|ms| format!("in {}", crate::runtime::status::human_ms(ms))),
                run.cycles.map(|c| format!("{c} {}", if run.outcome == "executed" { "steps" } else { "cycles" })),
            ]
            .into_iter()
            .flatten()
            .collect();
            (!said.is_empty()).then(|| said.join(", "))
        }
    }
}

/// The `/api/blocks/{n}` document.
pub fn document(s: &Surface, story: &Story) -> Value {
    let dev = s.info.dev;
    // A block's own outcome says whether it was proved; one in flight or failed is worded as
    // the daemon's mode makes it (no proofs with `native` or `execute`).
    let executes = match story.state.as_str() {
        "proved" => false,
        "executed" => true,
        // The configured mode, not the prover's live status (stale for a moment after a restart).
        _ => !s.info.proves,
    };
    let mut events: Vec<(i64, String, Option<String>)> = story
        .moments
        .iter()
        .map(|m| {
            let (what, detail) = describe(story, m.what, executes);
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
            let detail = call.last_error.as_deref().map(crate::runtime::status::public_reason);
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
    // Each earlier run: its own start and end, and the moment it was replaced, with who asked.
    for run in &story.earlier_runs {
        let worded = if run.outcome == "executed" { "earlier run: execution started" } else { "earlier run started" };
        if let Some(at) = run.started_at_ms {
            events.push((at, worded.into(), Some(format!("attempt {}", run.attempts))));
        }
        if let Some(at) = run.ended_at_ms {
            events.push((at, format!("earlier run {}", run.outcome), earlier_detail(run)));
        }
        let who =
            if run.replaced_by == "operator" { "the operator" } else { "prove mode (executed blocks are proved)" };
        events.push((run.replaced_at_ms, format!("run again, asked by {who}"), None));
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
    let ethproofs_url =
        crate::runtime::status::ethproofs_url(story.block, story.state == "proved", s.info.reporting, dev);
    json!({
        "block": story.block,
        "chain": s.info.chain_name,
        "dev_chain": dev,
        "outcome": story.state,
        // Whether this block is about a proof, or an execution without one.
        "proof": !executes,
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
        "earlier_runs": story.earlier_runs.iter().map(|r| json!({
            "outcome": r.outcome,
            "detail": earlier_detail(r),
            "attempts": r.attempts,
            "started_at": r.started_at_ms.map(time),
            "ended_at": r.ended_at_ms.map(time),
            "replaced_at": time(r.replaced_at_ms),
            "replaced_by": r.replaced_by,
        })).collect::<Vec<_>>(),
        "where_the_time_went": segments(story, proved_call, executes),
        "latency": latency_json(&crate::decide::latency::latency(&crate::decide::latency::Times::of(story))),
        "ethproofs_url": ethproofs_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_names_a_block_the_ledger_can_hold_or_says_why_not() {
        assert_eq!(number("10"), Ok(10));
        assert_eq!(number(&i64::MAX.to_string()), Ok(i64::MAX as u64));
        assert_eq!(number("9223372036854775808"), Err(NotABlock::AboveTheLedger));
        assert_eq!(number("99999999999999999999999"), Err(NotABlock::AboveTheLedger));
        assert!(
            NotABlock::AboveTheLedger
                .to_string()
                .contains("largest block number the ledger holds (9223372036854775807)")
        );
        for not in ["abc", "", "-1", "1e3", "0x10", " 10"] {
            assert_eq!(number(not), Err(NotABlock::NotANumber), "{not:?}");
        }
    }

    #[test]
    fn the_missing_page_shows_what_was_asked_as_text_only() {
        let page = missing_page("<script>alert('x')</script>&\"", "that is not a block number");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"), "{page}");
        assert!(page.contains(r#"<a href="../">"#) && page.contains("that is not a block number"), "{page}");
        let long = missing_page(&"9".repeat(500), "why");
        assert!(!long.contains(&"9".repeat(81)), "the asked text is cut short");
    }
}
