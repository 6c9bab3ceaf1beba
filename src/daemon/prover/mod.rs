//! The Prover actor: one prover run at a time, taken from the ledger's queued blocks. It starts
//! runs ([`super::proof_run`]) and hears how they went; the runs record their own outcome. When
//! it starts it settles what a predecessor left: a coordinator job still recorded is followed
//! again (re-attached, first of all); any other run the daemon died under is ended (only if its
//! recorded process is verifiably ours) and queued again, counted as an interruption; a
//! recorded exit that was never judged is judged from the ledger. An operator's cancel is a
//! ledger flag the Prover turns into a stop of the running attempt.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::proof_run::{self, Resume, RunJob, RunReport};
use super::run_progress::RunProgress;
use super::{Alerts, Context, Mailbox, ProverSettings, rfc3339};
use crate::backend::{Stop, StopSignal};
use crate::commitment::BlockOutputs;
use crate::config::ZiskAction;
use crate::decide::judge::Exit;
use crate::decide::judge::{self, Verdict};
use crate::decide::recovery::{self, Recovery};
use crate::drain::Hold;
use crate::notify::AlertKind;
use crate::status::{CoordinatorStatus, ExecutedBlock, FailedBlock, PhaseTime, ProvedBlock, ProverStatus, Recent};
use crate::store::Stage;
use crate::store::{BlockRecord, BlockState, Interrupted, StoreError};

mod recover;
mod slot;
mod status;

pub use slot::RunSlot;

pub enum ProverMsg {
    /// The queue may have changed.
    Wake,
    /// Heartbeat: stuck detection, status.
    Check,
    /// The run ended: its report is in the [`RunSlot`] (a message lost with a dying
    /// incarnation loses nothing; the next heartbeat finds the report there).
    Finished,
    /// Panics, as a bug would (tests of the restart path).
    #[cfg(test)]
    Crash,
}

/// The run in flight.
#[derive(Clone)]
pub struct InFlight {
    block: u64,
    started: Instant,
    started_at: SystemTime,
    /// Cancels the run for the operator; the daemon's drain reaches it by itself.
    stop: StopSignal,
    /// What the run has told so far (its job, phase, the coordinator's trouble).
    progress: Arc<RunProgress>,
    /// The running block's own timestamp, for block-to-proof latency.
    timestamp: Option<u64>,
}

/// How long the coordinator may be unreachable during a run before Slack hears of it and
/// readiness degrades.
const COORDINATOR_ALERT_AFTER: Duration = Duration::from_secs(120);

pub struct ProverState {
    in_flight: Option<InFlight>,
    proved_count: u64,
    executed_count: u64,
    failed_count: u64,
    proved: Recent<ProvedBlock>,
    executed: Recent<ExecutedBlock>,
    failed: Recent<FailedBlock>,
    stuck_alerted: bool,
    coordinator_alerted: bool,
    /// Attempts whose coordinator jobs outlived the previous daemon: followed before anything new.
    resume: VecDeque<(u64, Resume)>,
    /// From the block becoming a target to its run starting, for the latest run.
    last_head_to_prover_ms: Option<i64>,
    /// Heartbeats seen, for work done every few of them.
    ticks: u64,
    /// Runs left behind that the last recovery could not settle (the ledger could not be
    /// written): recovery runs again at the next heartbeat.
    unsettled: bool,
}

pub struct Prover {
    pub ctx: Arc<Context>,
    pub settings: Arc<ProverSettings>,
    pub alerts: Alerts,
    pub mailbox: Mailbox<ProverMsg>,
    /// The run in flight, shared with the incarnations before and after this one.
    pub runs: RunSlot,
}

impl Actor for Prover {
    type Msg = ProverMsg;
    type State = ProverState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        // A run the previous incarnation started goes on: adopted, never counted as interrupted.
        let adopted = self.runs.get();
        if let Some(run) = &adopted {
            tracing::warn!(block = run.block, "the Prover restarted during a run; the run goes on and is adopted");
        }
        let mut s = ProverState {
            in_flight: adopted,
            proved_count: 0,
            executed_count: 0,
            failed_count: 0,
            proved: Recent::new(50),
            executed: Recent::new(50),
            failed: Recent::new(50),
            stuck_alerted: false,
            coordinator_alerted: false,
            resume: VecDeque::new(),
            last_head_to_prover_ms: None,
            ticks: 0,
            unsettled: false,
        };
        self.recover(&mut s);
        myself.send_interval(Duration::from_secs(1), || ProverMsg::Check);
        let _ = myself.cast(ProverMsg::Wake);
        Ok(s)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProverMsg::Wake => {}
            ProverMsg::Check => {
                if s.unsettled {
                    self.recover(s);
                }
                self.check_stuck(s);
                self.check_coordinator(s);
                // Proofs become deletable when EthProofs accepts them, which the Reporter
                // records: look every few seconds rather than only after a run.
                s.ticks = s.ticks.wrapping_add(1);
                if s.ticks % 5 == 0 {
                    self.prune();
                }
            }
            ProverMsg::Finished => {}
            #[cfg(test)]
            ProverMsg::Crash => panic!("an injected crash"),
        }
        // Whatever woke us: a run that ended is settled here, even if its message was lost.
        if let Some((report, run)) = self.runs.take_finished() {
            s.in_flight = None;
            self.finished(s, &report, run.as_ref().map(|f| f.started), run.and_then(|f| f.timestamp));
        }
        self.honour_cancel(s);
        super::survive(self.start_next(s))?;
        super::survive(self.publish(s))?;
        Ok(())
    }
}

impl Prover {
    fn start_next(&self, s: &mut ProverState) -> Result<(), StoreError> {
        // Held before the drain is looked at: a stop that begins after this look waits for the
        // run to record its end (taken after, a stop could settle in between and abort the run).
        let hold = self.ctx.drain.hold();
        // A run whose start cannot be recorded is not started: none while ledger writes back off.
        if s.in_flight.is_some() || self.ctx.drain.is_draining() || !self.ctx.ledger.write_retry_in().is_zero() {
            return Ok(());
        }
        let ledger = &self.ctx.ledger;
        if let Some((block, resume)) = s.resume.pop_front() {
            let Some(row) = ledger.block(block)?.filter(|r| r.state == BlockState::Proving) else { return Ok(()) };
            let input_path = row.input_path.clone().unwrap_or_default();
            let job = RunJob {
                block,
                input_path,
                block_hash: row.block_hash.clone(),
                resume: Some(resume.clone()),
                expected: row.expected_output.as_deref().and_then(BlockOutputs::from_hex),
                in_doubt: row.job_in_doubt.clone(),
            };
            self.spawn_run(s, job, Some(resume.job.id().to_string()), row.block_timestamp, hold);
            s.last_head_to_prover_ms = None;
            return Ok(());
        }
        // Re-attaching above is following work already paid for; a pause or a full disk holds
        // back only new work.
        if self.ctx.is_paused() {
            return Ok(());
        }
        let Some(row) = ledger.next_to_prove()? else { return Ok(()) };
        let Some(input_path) = row.input_path.clone().filter(|p| p.is_file()) else {
            tracing::warn!(block = row.number, "the input is gone from disk; building it again");
            ledger.input_lost(row.number)?;
            return Ok(());
        };
        // Seen to prover is a block's first run: one run again keeps when it was first seen.
        let head_to_prover_ms =
            row.seen_at_ms.filter(|_| row.attempts == 0).map(|seen| crate::store::now_ms().saturating_sub(seen).max(0));
        tracing::debug!(block = row.number, ?head_to_prover_ms, "run starting");
        // The run records `proof started` itself, once the block is known to be canonical.
        // An input built before outputs were recorded (an older daemon) is built again: its proof
        // could not be bound to the block.
        let Some(expected) = row.expected_output.as_deref().and_then(BlockOutputs::from_hex) else {
            tracing::warn!(block = row.number, "no outputs recorded with the input; building it again");
            ledger.input_lost(row.number)?;
            return Ok(());
        };
        let job = RunJob {
            block: row.number,
            input_path,
            block_hash: row.block_hash.clone(),
            resume: None,
            expected: Some(expected),
            in_doubt: row.job_in_doubt.clone(),
        };
        self.spawn_run(s, job, None, row.block_timestamp, hold);
        s.last_head_to_prover_ms = head_to_prover_ms;
        Ok(())
    }

    /// Starts the run; `hold` keeps the daemon's stop waiting until the run has recorded its end.
    fn spawn_run(&self, s: &mut ProverState, job: RunJob, job_id: Option<String>, timestamp: Option<u64>, hold: Hold) {
        let stop = StopSignal::for_run(&self.ctx.drain);
        let progress = Arc::new(RunProgress::new(job_id));
        let (ctx, settings) = (self.ctx.clone(), self.settings.clone());
        let (mailbox, shared, run_stop) = (self.mailbox.clone(), progress.clone(), stop.clone());
        let block = job.block;
        // Not the actor's task: it runs to its end whatever becomes of this incarnation, and
        // its end reaches whichever incarnation is alive.
        let slot = self.runs.clone();
        tokio::spawn(async move {
            let report = proof_run::run(ctx, settings, job, run_stop, shared).await;
            slot.finish(report);
            // Its end is recorded: a stop need not wait for an actor to hear of it.
            drop(hold);
            mailbox.deliver(ProverMsg::Finished).await;
        });
        let run = InFlight { block, started: Instant::now(), started_at: SystemTime::now(), stop, progress, timestamp };
        self.runs.set(Some(run.clone()));
        s.in_flight = Some(run);
    }

    /// The operator's cancel, recorded in the ledger, reaches the running attempt.
    fn honour_cancel(&self, s: &ProverState) {
        let Some(f) = &s.in_flight else { return };
        let requested = self.ctx.ledger.block(f.block).ok().flatten().is_some_and(|b| b.cancel_requested);
        if requested && f.stop.now() == Stop::No {
            tracing::warn!(block = f.block, "the operator cancels the running attempt");
            f.stop.cancel();
        }
    }

    /// A coordinator that stays unreachable during a run is alerted once, and resolved when it answers.
    fn check_coordinator(&self, s: &mut ProverState) {
        let trouble = s.in_flight.as_ref().and_then(|f| f.progress.snapshot().trouble);
        match trouble {
            Some(t) if t.since.elapsed() > COORDINATOR_ALERT_AFTER && !s.coordinator_alerted => {
                s.coordinator_alerted = true;
                self.alerts.alert(
                    AlertKind::CoordinatorDown,
                    "ZisK coordinator unreachable".to_string(),
                    format!("for {}s: {}; the block waits, it is not failed", t.since.elapsed().as_secs(), t.error),
                );
            }
            None if s.coordinator_alerted => {
                s.coordinator_alerted = false;
                self.alerts.resolve(AlertKind::CoordinatorDown, "the coordinator answers again".to_string());
            }
            _ => {}
        }
    }

    fn finished(&self, s: &mut ProverState, r: &RunReport, started: Option<Instant>, timestamp: Option<u64>) {
        let block = r.block;
        if let Some(e) = &r.unrecorded {
            tracing::error!(block, error = %e, "the run's outcome could not be recorded; it is looked at again");
            // Settled from the ledger and the disk as a restart would, at the next heartbeat
            // (while stopping, at the next start).
            if !self.ctx.drain.is_draining() {
                s.unsettled = true;
            }
        }
        if std::mem::take(&mut s.stuck_alerted) {
            let secs = started.map_or(0, |t| t.elapsed().as_secs());
            self.alerts.resolve(AlertKind::ProverStuck, format!("the run of block {block} ended after {secs}s"));
        }
        match &r.verdict {
            Verdict::Proved { proving_ms, cycles } => {
                tracing::info!(
                    block,
                    attempt = r.attempt,
                    proving_time_ms = proving_ms,
                    cycles = *cycles,
                    "block proved"
                );
                crate::telemetry::block_outcome("proved", "prove");
                crate::telemetry::proved(*proving_ms as f64 / 1000.0, timestamp);
                s.proved_count += 1;
                s.proved.push(ProvedBlock {
                    block,
                    proving_time_ms: *proving_ms,
                    cycles: *cycles,
                    head_to_prover_ms: s.last_head_to_prover_ms.and_then(|v| u64::try_from(v).ok()),
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
                tracing::info!(block, ms, cycles = *cycles, "block executed (no proof)");
                crate::telemetry::block_outcome("executed", "execute");
                s.executed_count += 1;
                s.executed.push(ExecutedBlock { block, ms: *ms, cycles: *cycles });
            }
            Verdict::Failed { stage, reason } => self.failed(s, block, *stage, reason, r.last_lines.clone()),
            Verdict::Orphaned(reason) => {
                crate::telemetry::block_outcome("orphaned", "reorg");
                self.alerts.info(
                    format!("Reorg at block {block}"),
                    format!("{reason}; the orphan is kept, the canonical block is proved"),
                );
            }
            Verdict::Stopped => {}
        }
        self.prune();
    }

    fn failed(&self, s: &mut ProverState, block: u64, stage: Stage, reason: &str, last_lines: Vec<String>) {
        tracing::error!(block, stage = stage.as_str(), %reason, "proof failed");
        crate::telemetry::block_outcome("failed", if stage == Stage::Prove { "prove" } else { "prover" });
        self.alerts.alert(
            AlertKind::ProofFailed,
            format!("Proof failed: block {block} ({stage})"),
            format!("{reason}\n{}\n{}", last_lines.join("\n"), self.ctx.links.block(block, false)),
        );
        s.failed_count += 1;
        s.failed.push(FailedBlock { block, stage: stage.to_string(), reason: reason.to_string(), last_lines });
    }

    fn check_stuck(&self, s: &mut ProverState) {
        let threshold = self.settings.stuck_threshold;
        let Some((block, running)) =
            s.in_flight.as_ref().map(|f| (f.block, f.started.elapsed())).filter(|(_, e)| *e > threshold)
        else {
            return;
        };
        if !std::mem::replace(&mut s.stuck_alerted, true) {
            let detail = format!(
                "block {block} has been proving for {}s (PROVER_STUCK_THRESHOLD_SECONDS = {}); it is killed at PROVER_TIMEOUT_SECONDS = {}",
                running.as_secs(),
                threshold.as_secs(),
                self.settings.timeout.as_secs()
            );
            self.alerts.alert(AlertKind::ProverStuck, format!("Prover stuck on block {block}"), detail);
        }
    }

    /// Drops old inputs and proofs in the background (never an unaccepted proof).
    fn prune(&self) {
        let (ctx, settings) = (self.ctx.clone(), self.settings.clone());
        tokio::task::spawn_blocking(move || {
            let reporting = settings.reports_to_ethproofs;
            match crate::retention::prune(&settings.output_dir, &ctx.ledger, settings.retain_blocks, reporting) {
                Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "old block data removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention skipped"),
            }
        });
    }
}

/// How long a stop may take: the kill grace plus a margin for the group to die, and at least
/// what a coordinator job's cancel may take (`CANCEL_ON_SHUTDOWN`).
pub fn stop_timeout(grace: Duration) -> Duration {
    (grace + Duration::from_secs(5)).max(Duration::from_secs(15))
}

#[cfg(test)]
mod tests;
