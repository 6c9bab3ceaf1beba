//! What the Prover does when a run has ended: the run recorded its outcome; this tells of it
//! (logs, metrics, Slack, the recent lists) and lets the lane's stuck alert go.

use super::*;

impl Prover {
    pub(super) fn finished(&self, s: &mut ProverState, r: &RunReport, run: Option<&InFlight>) {
        let (started, timestamp) = (run.map(|f| f.started), run.and_then(|f| f.timestamp));
        let block = r.block;
        // The turn hears of one run: its lines are that block's.
        let _in = crate::runtime::block_span!(block, attempt = r.attempt).entered();
        if let Some(e) = &r.unrecorded {
            tracing::error!(error = %e, "the run's outcome could not be recorded; it is looked at again");
            // Settled from the ledger and the disk as a restart would, at the next heartbeat
            // (while stopping, at the next start).
            if !self.ctx.drain.is_draining() {
                s.unsettled = true;
            }
        }
        if s.stuck_alerted.remove(&block) {
            let secs = started.map_or(0, |t| t.elapsed().as_secs());
            self.alerts.resolve(AlertKind::ProverStuck, format!("the run of block {block} ended after {secs}s"));
        }
        match &r.verdict {
            Verdict::Proved { proving_ms, cycles } => {
                tracing::info!(proving_time_ms = proving_ms, cycles = *cycles, "block proved");
                crate::runtime::telemetry::block_outcome("proved", "prove");
                crate::runtime::telemetry::proved(*proving_ms as f64 / 1000.0, timestamp);
                self.record_latency(block);
                s.proved_count += 1;
                s.proved.push(ProvedBlock {
                    block,
                    proving_time_ms: *proving_ms,
                    cycles: *cycles,
                    head_to_prover_ms: run.and_then(|f| f.head_to_prover_ms).and_then(|v| u64::try_from(v).ok()),
                });
                self.alerts.resolve(AlertKind::ProofFailed, format!("block {block} proved"));
                if self.settings.notify_proved {
                    let cycles = cycles.map_or("unknown".to_string(), |c| c.to_string());
                    self.alerts.info(
                        format!("Block {block} proved"),
                        format!("proving time {proving_ms} ms, cycles {cycles}\n{}", self.ctx.links.block(block, true)),
                    );
                }
            }
            Verdict::Executed { ms, cycles } => {
                tracing::info!(ms, cycles = *cycles, "block executed (no proof)");
                crate::runtime::telemetry::block_outcome("executed", "execute");
                s.executed_count += 1;
                s.executed.push(ExecutedBlock { block, ms: *ms, cycles: *cycles });
            }
            Verdict::Failed { stage, reason } => self.failed(s, block, *stage, reason, r.last_lines.clone()),
            Verdict::Orphaned(reason) => {
                crate::runtime::telemetry::block_outcome("orphaned", "reorg");
                self.alerts.info(
                    format!("Reorg at block {block}"),
                    format!("{reason}; the orphan is kept, the canonical block is proved"),
                );
            }
            Verdict::Stopped => {}
        }
        self.prune();
    }

    /// Called in the block's span (the run's end, or recovery's look at the block).
    pub(super) fn failed(&self, s: &mut ProverState, block: u64, stage: Stage, reason: &str, last_lines: Vec<String>) {
        tracing::error!(stage = stage.as_str(), %reason, "proof failed");
        crate::runtime::telemetry::block_outcome("failed", if stage == Stage::Prove { "prove" } else { "prover" });
        self.alerts.alert(
            AlertKind::ProofFailed,
            format!("Proof failed: block {block} ({stage})"),
            format!("{reason}\n{}\n{}", last_lines.join("\n"), self.ctx.links.block(block, false)),
        );
        s.failed_count += 1;
        s.failed.push(FailedBlock { block, stage: stage.to_string(), reason: reason.to_string(), last_lines });
    }

    /// The proved block's stretches, for the latency histograms; end to end here only when the
    /// daemon does not report (else it ends when EthProofs accepts the proof: the Reporter's).
    fn record_latency(&self, block: u64) {
        use crate::decide::latency::{Times, latency};
        let Ok(Some(story)) = self.ctx.ledger.story(block) else { return };
        let l = latency(&Times::of(&story));
        crate::runtime::telemetry::block_latency(l.seen_to_input_ms, l.input_to_proving_ms);
        if !self.settings.reports_to_ethproofs
            && let Some(ms) = l.end_to_end_ms
        {
            crate::runtime::telemetry::end_to_end(ms);
        }
    }
}
