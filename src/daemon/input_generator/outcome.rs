//! What becomes of a target's build: built, missed (counted, alerted, shown), or not served by
//! the node yet (asked for again with backoff until it leaves the backfill window).

use super::*;

/// A target the node has not served yet.
pub(super) struct NotServed {
    pub(super) stage: Stage,
    /// The node's last answer, in our words, and whole.
    pub(super) reason: String,
    pub(super) detail: String,
    pub(super) since: Instant,
    pub(super) tries: u32,
    pub(super) retry_at: Instant,
}

impl InputGenerator {
    pub(super) fn built(&self, s: &mut InputGenState, block: u64, result: Result<u64, BuildError>) {
        // The turn hears of one build: its lines are that block's.
        let _in = crate::runtime::block_span!(block).entered();
        match result {
            Ok(input_ms) => {
                s.not_served.remove(&block);
                s.processed_count += 1;
                crate::runtime::telemetry::input_generated(input_ms as f64 / 1000.0);
                self.alerts.resolve(AlertKind::InputFailed, format!("the input of block {block} was built"));
            }
            Err(BuildError::Unrecorded(e)) => {
                tracing::warn!(error = %e, "the input's outcome could not be recorded; the block is built again");
            }
            Err(BuildError::NotServed { stage, error }) => {
                crate::runtime::telemetry::rpc_error(stage.as_str(), error.label());
                let now = Instant::now();
                let entry = s.not_served.entry(block).or_insert(NotServed {
                    stage,
                    reason: String::new(),
                    detail: String::new(),
                    since: now,
                    tries: 0,
                    retry_at: now,
                });
                let wait = schedule::not_served_retry(entry.tries);
                (entry.stage, entry.reason, entry.detail) = (stage, error.summary(), error.to_string());
                entry.tries = entry.tries.saturating_add(1);
                entry.retry_at = now + wait;
                tracing::warn!(stage = stage.as_str(), %error, retry_in_s = wait.as_secs(), "the node does not serve the target yet; asking again");
            }
            Err(error) => {
                s.not_served.remove(&block);
                if let BuildError::Fetch { stage, error } = &error {
                    crate::runtime::telemetry::rpc_error(stage.as_str(), error.label());
                }
                self.missed(s, block, error.stage(), error.summary(), error.to_string());
            }
        }
    }

    /// A target the node never served while it was in the backfill window is failed there, with
    /// the node's last answer.
    pub(super) fn give_up_out_of_window(&self, s: &mut InputGenState) -> Result<(), StoreError> {
        let Some(head) = s.head else { return Ok(()) };
        let max = self.settings.max_backfill_blocks;
        let gone: Vec<u64> = s.not_served.keys().copied().filter(|b| schedule::out_of_window(*b, head, max)).collect();
        for block in gone {
            let Some(waited) = s.not_served.get(&block) else { continue };
            let reason = format!(
                "the node did not serve it in {}s while it was within MAX_BACKFILL_BLOCKS = {max} of the head ({}: {})",
                waited.since.elapsed().as_secs(),
                waited.stage.as_str(),
                waited.reason
            );
            match self.ctx.ledger.input_failed(block, Stage::BackfillWindow, &reason) {
                Ok(()) => {}
                // No longer waiting (the operator, a reorg): nothing to give up.
                Err(StoreError::IllegalMove { .. }) => {
                    s.not_served.remove(&block);
                    continue;
                }
                Err(e) => return Err(e),
            }
            let detail = format!("{reason}; its last answer: {}", waited.detail);
            s.not_served.remove(&block);
            let _in = crate::runtime::block_span!(block).entered();
            self.missed(s, block, Stage::BackfillWindow, reason, detail);
        }
        Ok(())
    }

    /// A target that will not be proved: counted, alerted, shown (`summary` in our words,
    /// `detail` whole). In the block's span.
    fn missed(&self, s: &mut InputGenState, block: u64, stage: Stage, summary: String, detail: String) {
        let stage = stage.as_str();
        crate::runtime::telemetry::block_outcome("missed", stage);
        self.alerts.alert(
            AlertKind::InputFailed,
            format!("Input failed: block {block} ({stage})"),
            format!("{detail}\n{}", self.ctx.links.block(block, false)),
        );
        tracing::error!(stage, reason = %detail, "target missed");
        s.missed_count = s.missed_count.saturating_add(1);
        s.missed.push(MissedBlock {
            block,
            stage: stage.into(),
            reason: summary,
            detail: Some(detail),
            at: rfc3339(SystemTime::now()),
        });
    }
}
