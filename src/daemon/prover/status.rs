//! What the Prover publishes for `/health` every turn: its state, the run in flight and its
//! phases, the coordinator's reachability, recent outcomes.

use super::*;

impl Prover {
    pub(super) fn publish(&self, s: &ProverState) -> Result<(), StoreError> {
        let threshold = self.settings.stuck_threshold;
        let stuck = s.in_flight.values().any(|f| f.started.elapsed() > threshold);
        // The single-run fields tell of the oldest run; `in_flight` lists them all.
        let oldest = s.in_flight.values().min_by_key(|f| f.started);
        let progress = oldest.map(|f| f.progress.snapshot()).unwrap_or_default();
        let trouble = s.in_flight.values().find_map(|f| f.progress.snapshot().trouble);
        let cut_off = trouble.as_ref().is_some_and(|t| t.since.elapsed() > COORDINATOR_ALERT_AFTER);
        let coordinator = self.ctx.backend.service().map(|service| CoordinatorStatus {
            url: service.url,
            hash_id: service.hash_id,
            set_up: service.set_up,
            reachable: oldest.map(|_| trouble.is_none()),
            unreachable_seconds: trouble.as_ref().map(|t| t.since.elapsed().as_secs()),
            error: trouble.as_ref().map(|t| t.error.clone()),
        });
        self.ctx.board.prover.publish(ProverStatus {
            status: if stuck || cut_off { "degraded" } else { "healthy" },
            state: if stuck {
                "stuck"
            } else if !s.in_flight.is_empty() {
                "proving"
            } else if self.ctx.drain.is_draining() {
                "stopped"
            } else if self.ctx.is_paused() {
                "paused"
            } else {
                "idle"
            },
            proving_block: oldest.map(|f| f.block),
            proving_attempt: oldest.and_then(|f| self.attempt_of(f.block)),
            proving_since: oldest.map(|f| rfc3339(f.started_at)),
            proving_duration_seconds: oldest.map(|f| f.started.elapsed().as_secs()),
            lanes: self.settings.lanes.len(),
            in_flight: s.in_flight.values().map(|f| self.run_status(f, threshold)).collect(),
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
            runs: crate::runtime::status::RunCounts {
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

    /// The attempt a block's run is, once it has raised `proving`.
    fn attempt_of(&self, block: u64) -> Option<u32> {
        let row = self.ctx.ledger.block(block).ok().flatten()?;
        (row.state == BlockState::Proving).then_some(row.attempts)
    }

    fn run_status(&self, f: &InFlight, threshold: Duration) -> RunInFlight {
        let progress = f.progress.snapshot();
        RunInFlight {
            block: f.block,
            attempt: self.attempt_of(f.block),
            lane: f.lane,
            gpu: self.settings.lanes.get(f.lane).cloned().flatten(),
            since: rfc3339(f.started_at),
            seconds: f.started.elapsed().as_secs(),
            stuck: f.started.elapsed() > threshold,
            job_id: progress.job_id,
            phase: progress.phase.map(|(p, _)| p.as_str()),
            phase_seconds: progress.phase.map(|(_, since)| since.elapsed().as_secs()),
        }
    }
}
