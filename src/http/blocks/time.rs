//! Where a block's time went, as its page and JSON say it: the bar of consecutive stretches and
//! the end-to-end latency.

use serde_json::{Value, json};

use crate::store::Story;

/// The block's stretches from its timestamp to EthProofs accepting its proof (milliseconds;
/// `null` where not known).
pub(super) fn latency_json(l: &crate::decide::latency::Latency) -> Value {
    json!({
        "block_to_seen_ms": l.block_to_seen_ms,
        "seen_to_input_ms": l.seen_to_input_ms,
        "input_to_proving_ms": l.input_to_proving_ms,
        "proving_ms": l.proving_ms,
        "proof_to_verified_ms": l.proof_to_verified_ms,
        "verified_to_accepted_ms": l.verified_to_accepted_ms,
        "end_to_end_ms": l.end_to_end_ms,
    })
}

/// Consecutive stretches of the block's life, each with its length: the bar on the page.
pub(super) fn segments(story: &Story, proved_call_done: Option<i64>, executes: bool) -> Vec<Value> {
    let label = |from: &str, to: &str| match (from, to) {
        ("seen", "queued") => "building the input",
        ("queued", "proving") if executes => "waiting to be executed",
        ("queued", "proving") => "waiting for the prover",
        ("proving", "checked") => "checking the input",
        (_, "exited") if executes => "executing",
        (_, "exited") => "proving",
        ("exited", "executed") => "recording the execution",
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
