//! Where one block's time went, end to end: from the block's own timestamp to EthProofs
//! accepting its proof. The block page, `/api/blocks/{n}` and the latency histograms all read
//! these figures, so a stretch means the same everywhere.

/// When each step of a block's life happened (milliseconds since the epoch; the block's own
/// timestamp in seconds, as the chain says it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub block_timestamp_s: Option<u64>,
    /// The daemon saw the target (the head reached it).
    pub seen: Option<i64>,
    /// Its input was built and queued for a prover.
    pub input_ready: Option<i64>,
    /// A prover run started on it (the latest run).
    pub proving: Option<i64>,
    /// The prover's run ended with the proof.
    pub proof_ended: Option<i64>,
    /// The proof was verified, made durable and recorded as proved.
    pub verified: Option<i64>,
    /// EthProofs accepted the `proved` call.
    pub accepted: Option<i64>,
}

/// The stretches, in milliseconds; `None` where either end is not known (yet), or the clock
/// went backwards between them (never a negative figure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    /// The chain's block to the daemon seeing it: the node's and the poll's delay.
    pub block_to_seen_ms: Option<u64>,
    /// Fetching the block and its witness and building the input (waiting for a build included).
    pub seen_to_input_ms: Option<u64>,
    /// Waiting for a free prover.
    pub input_to_proving_ms: Option<u64>,
    /// The prover's run.
    pub proving_ms: Option<u64>,
    /// Verifying the proof, hashing it and recording it.
    pub proof_to_verified_ms: Option<u64>,
    /// The outbox delivering `proved`.
    pub verified_to_accepted_ms: Option<u64>,
    /// The block's timestamp to EthProofs accepting its proof (to the proof's record when the
    /// daemon does not report): what a real-time deadline is measured against.
    pub end_to_end_ms: Option<u64>,
}

impl Times {
    /// The steps' times from a block's story: its latest moments, and when EthProofs accepted
    /// its `proved` call.
    pub fn of(story: &crate::store::Story) -> Times {
        let at = |what: &str| story.moments.iter().rev().find(|m| m.what == what).map(|m| m.at_ms);
        Times {
            block_timestamp_s: story.block_timestamp,
            seen: at("seen"),
            input_ready: at("queued"),
            proving: at("proving"),
            proof_ended: at("exited"),
            verified: at("proved"),
            accepted: story
                .calls
                .iter()
                .rev()
                .find(|c| c.kind == "proved" && matches!(c.state.as_str(), "done" | "already_proved"))
                .and_then(|c| c.done_at_ms),
        }
    }
}

fn between(from: Option<i64>, to: Option<i64>) -> Option<u64> {
    u64::try_from(to?.checked_sub(from?)?).ok()
}

/// The stretches of `t`.
pub fn latency(t: &Times) -> Latency {
    let block_ms = t.block_timestamp_s.and_then(|s| i64::try_from(s).ok()).and_then(|s| s.checked_mul(1000));
    Latency {
        block_to_seen_ms: between(block_ms, t.seen),
        seen_to_input_ms: between(t.seen, t.input_ready),
        input_to_proving_ms: between(t.input_ready, t.proving),
        proving_ms: between(t.proving, t.proof_ended),
        proof_to_verified_ms: between(t.proof_ended, t.verified),
        verified_to_accepted_ms: between(t.verified, t.accepted),
        end_to_end_ms: between(block_ms, t.accepted.or(t.verified)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_stretch_is_the_time_between_its_two_steps() {
        let t = Times {
            block_timestamp_s: Some(1_000),
            seen: Some(1_000_800),
            input_ready: Some(1_002_000),
            proving: Some(1_002_050),
            proof_ended: Some(1_009_050),
            verified: Some(1_009_150),
            accepted: Some(1_009_400),
        };
        let l = latency(&t);
        assert_eq!(l.block_to_seen_ms, Some(800));
        assert_eq!(l.seen_to_input_ms, Some(1_200));
        assert_eq!(l.input_to_proving_ms, Some(50));
        assert_eq!(l.proving_ms, Some(7_000));
        assert_eq!(l.proof_to_verified_ms, Some(100));
        assert_eq!(l.verified_to_accepted_ms, Some(250));
        assert_eq!(l.end_to_end_ms, Some(9_400), "the block's time to EthProofs accepting it");
        let unreported = latency(&Times { accepted: None, ..t });
        assert_eq!(unreported.end_to_end_ms, Some(9_150), "without reporting: to the proof's record");
    }

    #[test]
    fn unknown_ends_backward_clocks_and_absurd_timestamps_give_no_figure() {
        let l = latency(&Times { seen: Some(5_000), input_ready: Some(4_000), ..Times::default() });
        assert_eq!(l.seen_to_input_ms, None, "a clock that went back is no negative time");
        assert_eq!(l, Latency::default());
        let absurd = latency(&Times { block_timestamp_s: Some(u64::MAX), seen: Some(1), ..Times::default() });
        assert_eq!(absurd.block_to_seen_ms, None, "a header's absurd timestamp overflows nothing");
    }
}
