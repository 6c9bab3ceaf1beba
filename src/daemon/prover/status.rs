//! What the Prover publishes for `/health` every turn: its state, the run in flight and its
//! phases, the coordinator's reachability, recent outcomes.

use super::*;

impl Prover {
    pub(super) fn publish(&self, s: &ProverState) -> Result<(), StoreError> {
        let threshold = self.settings.stuck_threshold;
        let stuck = s.in_flight.as_ref().is_some_and(|f| f.started.elapsed() > threshold);
        let progress = s.in_flight.as_ref().map(|f| f.progress.snapshot()).unwrap_or_default();
        let cut_off = progress.trouble.as_ref().is_some_and(|t| t.since.elapsed() > COORDINATOR_ALERT_AFTER);
        let coordinator = self.ctx.backend.service().map(|service| CoordinatorStatus {
            url: service.url,
            hash_id: service.hash_id,
            set_up: service.set_up,
            reachable: s.in_flight.as_ref().map(|_| progress.trouble.is_none()),
            unreachable_seconds: progress.trouble.as_ref().map(|t| t.since.elapsed().as_secs()),
            error: progress.trouble.as_ref().map(|t| t.error.clone()),
        });
        self.ctx.board.prover.publish(ProverStatus {
            status: if stuck || cut_off { "degraded" } else { "healthy" },
            state: if stuck {
                "stuck"
            } else if s.in_flight.is_some() {
                "proving"
            } else if self.ctx.drain.is_draining() {
                "stopped"
            } else if self.ctx.is_paused() {
                "paused"
            } else {
                "idle"
            },
            proving_block: s.in_flight.as_ref().map(|f| f.block),
            proving_attempt: s
                .in_flight
                .as_ref()
                .and_then(|f| self.ctx.ledger.block(f.block).ok().flatten())
                .filter(|b| b.state == BlockState::Proving)
                .map(|b| b.attempts),
            proving_since: s.in_flight.as_ref().map(|f| rfc3339(f.started_at)),
            proving_duration_seconds: s.in_flight.as_ref().map(|f| f.started.elapsed().as_secs()),
            zisk_version: self.ctx.zisk_label(),
            action: match self.settings.action {
                ZiskAction::Prove => "prove",
                ZiskAction::Execute => "execute",
                ZiskAction::Native => "native",
            },
            backend: self.ctx.backend.name(),
            job_id: progress.job_id.clone(),
            phase: progress.phase.map(|(p, _)| p.as_str()),
            phase_seconds: progress.phase.map(|(_, since)| since.elapsed().as_secs()),
            phases: progress
                .done
                .iter()
                .map(|(p, took)| PhaseTime { phase: p.as_str(), seconds: took.as_secs_f64() })
                .collect(),
            coordinator,
            runs: crate::status::RunCounts {
                proved: s.proved_count,
                executed: s.executed_count,
                failed: s.failed_count,
            },
            recent_proved: s.proved.to_vec(),
            recent_executed: s.executed.to_vec(),
            recent_failed: s.failed.to_vec(),
        });
        Ok(())
    }
}
