//! What a Prover incarnation does first: settle the runs a predecessor left behind, row by row
//! (`decide::recovery` plans; this carries the plan out), never refusing to start.

use super::*;

impl Prover {
    /// Settles the runs a predecessor left behind, row by row. Never refuses to start: a row
    /// whose record cannot be written now (a transient ledger error) is looked at again at the
    /// next heartbeat (`unsettled`), and one that cannot be judged at all is failed with the
    /// reason. Blocks of this incarnation's own runs are left alone.
    pub(super) fn recover(&self, s: &mut ProverState) {
        let ledger = &self.ctx.ledger;
        let rows =
            ledger.blocks_in(&[BlockState::Proving]).and_then(|p| Ok((p, ledger.blocks_in(&[BlockState::Exited])?)));
        let (proving, exited) = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the runs left behind; looking again at the next heartbeat");
                s.unsettled = true;
                return;
            }
        };
        let ours =
            |block: u64| s.in_flight.values().any(|f| f.block == block) || s.resume.iter().any(|(b, _)| *b == block);
        let proving: Vec<BlockRecord> = proving.into_iter().filter(|r| !ours(r.number)).collect();
        // An adopted run may be past its exit, judging its proof itself.
        let exited: Vec<BlockRecord> = exited.into_iter().filter(|r| !ours(r.number)).collect();
        let plan = recovery::plan(&proving, &exited, self.ctx.backend.reattaches());
        let mut unsettled = false;
        for step in plan {
            let block = step.block();
            let _in = crate::runtime::block_span!(block).entered();
            match self.recover_one(s, step, &exited) {
                Ok(()) => {}
                Err(e) if e.is_transient() => {
                    tracing::warn!(error = %e, "a run left behind is not settled yet; looking again at the next heartbeat");
                    unsettled = true;
                }
                Err(e) => {
                    let reason = format!("the run left behind could not be judged after a restart: {e}");
                    tracing::error!(%reason, "failing the block rather than refusing to start");
                    match ledger.proof_failed(block, Stage::Prove, &reason) {
                        Ok(()) => self.failed(s, block, Stage::Prove, &reason, Vec::new()),
                        Err(e) => {
                            tracing::error!(error = %e, "cannot record it either; looking again at the next heartbeat");
                            unsettled = true;
                        }
                    }
                }
            }
        }
        if self.settings.action == ZiskAction::Prove {
            match ledger.reopen_executed() {
                Ok(reopened) if !reopened.is_empty() => {
                    tracing::info!(blocks = ?reopened, "blocks that were only executed are proved now");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "cannot take back the executed blocks yet");
                    unsettled = true;
                }
            }
        }
        s.unsettled = unsettled;
    }

    /// One step of the recovery plan, in its block's span.
    fn recover_one(&self, s: &mut ProverState, step: Recovery, exited: &[BlockRecord]) -> Result<(), StoreError> {
        let ledger = &self.ctx.ledger;
        match step {
            Recovery::Follow { block, attempt, job } => {
                tracing::info!(job_id = job.id(), "a coordinator job outlived the last run; following it again");
                s.resume.push_back((block, Resume { attempt, job }));
            }
            Recovery::Interrupted { block, process } => {
                let mut alive = false;
                if let Some(process) = &process {
                    let ended = crate::outside::instance::reap(process);
                    if ended > 0 {
                        alive = true;
                        tracing::warn!(pgid = process.pgid, ended, "ended a prover run left behind");
                    }
                }
                // A run that finished while its end could not be recorded (the ledger locked,
                // a stop, a crash): its proof is judged, never proved again. One whose process
                // was still running is not finished: what it wrote may be half a proof.
                // Only a proof that verifies for this block counts: a file a killed prover was
                // still writing is half a proof (and without verification nothing can tell).
                if !alive
                    && let Some(row) = ledger.block(block)?
                    && let Some(found) = self.proof_left_behind(&row)
                    && (self.ctx.verify.is_some() || proof_run::whole(&found.0))
                {
                    let expected =
                        row.expected_output.as_deref().and_then(crate::block::commitment::BlockOutputs::from_hex);
                    match proof_run::accept(&self.ctx, &found.0, expected.as_ref()) {
                        Ok(sha256) => {
                            tracing::warn!(proof = %found.0.display(), "the run finished before the restart; its proof verifies");
                            let exit = crate::store::ExitRecord {
                                exit: &Exit::FoundAfterRestart.record(),
                                proof: Some((&found.0, found.1)),
                                proving_ms: found.2,
                                cycles: None,
                            };
                            ledger.prover_exited(block, &exit)?;
                            let verdict = Verdict::Proved { proving_ms: found.2, cycles: None };
                            proof_run::record(&self.ctx, &self.settings, block, &verdict, Some(Ok(sha256)))?;
                            return Ok(());
                        }
                        Err((_, why)) => {
                            tracing::warn!(%why, "a proof left behind does not verify; proving the block again");
                        }
                    }
                }
                match ledger.proof_interrupted(block, true, self.settings.max_prove_attempts)? {
                    Interrupted::Requeued => tracing::info!("resuming: proving again"),
                    Interrupted::GaveUp(reason) => self.failed(s, block, Stage::Prove, &reason, Vec::new()),
                }
            }
            Recovery::Rejudge { block } => {
                let Some(row) = exited.iter().find(|r| r.number == block) else { return Ok(()) };
                let verdict = self.rejudge(row);
                tracing::warn!(?verdict, "judging a run whose exit was recorded before a restart");
                proof_run::settle_recorded(&self.ctx, &self.settings, row, verdict)?;
            }
        }
        Ok(())
    }

    /// The proof a `proving` row's run left in its block's folder, if there is one written
    /// after the run started (`OUTPUT_DIR/<n>/proof.bin`, where cargo-zisk 0.17 and later and
    /// the coordinator's proofs go): its path, size and the run's time up to it.
    fn proof_left_behind(&self, row: &BlockRecord) -> Option<(std::path::PathBuf, u64, u64)> {
        if self.settings.action != ZiskAction::Prove
            || !matches!(self.ctx.dialect, crate::block::zisk::Dialect::V017 | crate::block::zisk::Dialect::V1)
        {
            return None;
        }
        let path = row.input_path.as_deref()?.parent()?.join("proof.bin");
        let meta = std::fs::symlink_metadata(&path).ok().filter(|m| m.is_file() && m.len() > 0)?;
        let written_ms = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        let written_ms = i64::try_from(written_ms).ok()?;
        let started_ms = row.run_started_at_ms?;
        // Strictly after: a proof is never written in the millisecond its run started.
        (written_ms > started_ms).then(|| {
            let took = u64::try_from(written_ms.saturating_sub(started_ms)).unwrap_or(1).max(1);
            (path, meta.len(), took)
        })
    }

    pub(super) fn rejudge(&self, row: &BlockRecord) -> Verdict {
        let intact = match (&row.proof_path, row.proof_bytes) {
            (Some(path), Some(bytes)) => proof_run::intact(path, bytes),
            _ => false,
        };
        let text = row.exit.as_deref().unwrap_or("");
        let exit = Exit::from_record(text).ok_or(text);
        judge::rejudge(crate::backend::action(self.settings.action), exit, intact, row.proving_ms, row.cycles)
    }
}
