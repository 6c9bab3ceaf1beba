//! The Prover actor: prover runs taken from the ledger's queued blocks, lowest first, one per
//! lane at once (a lane is a GPU of `GPUS`, or one of `MAX_JOBS_IN_FLIGHT` coordinator jobs). It
//! starts runs ([`super::proof_run`]) and hears how they went; the runs record their own outcome. When
//! it starts it settles what a predecessor left: a coordinator job still recorded is followed
//! again (re-attached, first of all); any other run the daemon died under is ended (only if its
//! recorded process is verifiably ours) and queued again, counted as an interruption; a
//! recorded exit that was never judged is judged from the ledger. An operator's cancel is a
//! ledger flag the Prover turns into a stop of the running attempt.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{Alerts, Context, Mailbox, ProverSettings, rfc3339};
use crate::backend::{Stop, StopSignal};
use crate::block::commitment::BlockOutputs;
use crate::config::ZiskAction;
use crate::decide::judge::Exit;
use crate::decide::judge::{self, Verdict};
use crate::decide::recovery::{self, Recovery};
use crate::outside::notify::AlertKind;
use crate::runtime::drain::Hold;
use crate::runtime::status::{
    CoordinatorStatus, ExecutedBlock, FailedBlock, PhaseTime, ProvedBlock, ProverStatus, Recent, RunInFlight,
};
use crate::store::Stage;
use crate::store::{BlockRecord, BlockState, Interrupted, StoreError};
use proof_run::{Resume, RunJob, RunReport};
use run_progress::RunProgress;

mod ended;
mod proof_run;
mod recover;
pub(super) mod retention;
mod run_progress;
mod slot;
mod status;

pub use slot::RunSlots;

pub enum ProverMsg {
    /// The queue may have changed.
    Wake,
    /// Heartbeat: stuck detection, status.
    Tick,
    /// A run ended: its report is in the [`RunSlots`] (a message lost with a dying
    /// incarnation loses nothing; the next heartbeat finds the report there).
    Finished,
    /// Panics, as a bug would (tests of the restart path).
    #[cfg(test)]
    Crash,
}

/// A run in flight.
#[derive(Clone)]
pub struct InFlight {
    block: u64,
    /// Its place among the runs at once (`ProverSettings::lanes`): the GPU it was given.
    lane: usize,
    started: Instant,
    started_at: SystemTime,
    /// Cancels the run for the operator; the daemon's drain reaches it by itself.
    stop: StopSignal,
    /// What the run has told so far (its job, phase, the coordinator's trouble).
    progress: Arc<RunProgress>,
    /// The running block's own timestamp, for block-to-proof latency.
    timestamp: Option<u64>,
    /// From the block becoming a target to this run starting (a block's first run only).
    head_to_prover_ms: Option<i64>,
}

/// How long the coordinator may be unreachable during a run before Slack hears of it and
/// readiness degrades.
const COORDINATOR_ALERT_AFTER: Duration = Duration::from_secs(120);

pub struct ProverState {
    /// The runs in flight, by lane.
    in_flight: BTreeMap<usize, InFlight>,
    proved_count: u64,
    executed_count: u64,
    failed_count: u64,
    proved: Recent<ProvedBlock>,
    executed: Recent<ExecutedBlock>,
    failed: Recent<FailedBlock>,
    /// Blocks whose runs were alerted as stuck (resolved when each ends).
    stuck_alerted: BTreeSet<u64>,
    coordinator_alerted: bool,
    /// Attempts whose coordinator jobs outlived the previous daemon: followed before anything new.
    resume: VecDeque<(u64, Resume)>,
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
    /// The runs in flight, shared with the incarnations before and after this one.
    pub runs: RunSlots,
}

impl Actor for Prover {
    type Msg = ProverMsg;
    type State = ProverState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        // Runs the previous incarnation started go on: adopted, never counted as interrupted.
        let adopted = self.runs.all();
        for run in adopted.values() {
            crate::runtime::block_span!(block = run.block, lane = run.lane).in_scope(|| {
                tracing::warn!("the Prover restarted during a run; the run goes on and is adopted");
            });
        }
        let mut s = ProverState {
            in_flight: adopted,
            proved_count: 0,
            executed_count: 0,
            failed_count: 0,
            proved: Recent::new(50),
            executed: Recent::new(50),
            failed: Recent::new(50),
            stuck_alerted: BTreeSet::new(),
            coordinator_alerted: false,
            resume: VecDeque::new(),
            ticks: 0,
            unsettled: false,
        };
        self.recover(&mut s);
        myself.send_interval(Duration::from_secs(1), || ProverMsg::Tick);
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
            ProverMsg::Tick => {
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
        for (report, run) in self.runs.take_finished() {
            if let Some(run) = &run {
                s.in_flight.remove(&run.lane);
            }
            self.finished(s, &report, run.as_ref());
        }
        self.honour_cancel(s);
        super::survive(self.start_next(s))?;
        super::survive(self.publish(s))?;
        Ok(())
    }
}

impl Prover {
    /// Fills every free lane: the jobs that outlived a predecessor first, then the lowest queued
    /// blocks not already running.
    fn start_next(&self, s: &mut ProverState) -> Result<(), StoreError> {
        while let Some(lane) = (0..self.settings.lanes.len()).find(|l| !s.in_flight.contains_key(l)) {
            if !self.start_one(s, lane)? {
                break;
            }
        }
        Ok(())
    }

    /// Starts a run in `lane` if there is one to start; `false` when nothing more can start now.
    fn start_one(&self, s: &mut ProverState, lane: usize) -> Result<bool, StoreError> {
        // Held before the drain is looked at: a stop that begins after this look waits for the
        // run to record its end (taken after, a stop could settle in between and abort the run).
        let hold = self.ctx.drain.hold();
        // A run whose start cannot be recorded is not started: none while ledger writes back off.
        if self.ctx.drain.is_draining() || !self.ctx.ledger.write_retry_in().is_zero() {
            return Ok(false);
        }
        let ledger = &self.ctx.ledger;
        let gpu = self.settings.lanes.get(lane).cloned().flatten();
        if let Some((block, resume)) = s.resume.pop_front() {
            let Some(row) = ledger.block(block)?.filter(|r| r.state == BlockState::Proving) else { return Ok(true) };
            let input_path = row.input_path.clone().unwrap_or_default();
            let job = RunJob {
                block,
                input_path,
                block_hash: row.block_hash.clone(),
                resume: Some(resume.clone()),
                expected: row.expected_output.as_deref().and_then(BlockOutputs::from_hex),
                in_doubt: row.job_in_doubt.clone(),
                gpu,
            };
            let times = (row.block_timestamp, None);
            self.spawn_run(s, lane, job, Some(resume.job.id().to_string()), times, hold);
            return Ok(true);
        }
        // Re-attaching above is following work already paid for; a pause or a full disk holds
        // back only new work.
        if self.ctx.is_paused() {
            return Ok(false);
        }
        let running: Vec<u64> = s.in_flight.values().map(|f| f.block).collect();
        let newest = self.settings.order == crate::config::ProveOrder::Newest;
        let Some(row) = ledger.next_to_prove(&running, newest)? else { return Ok(false) };
        let _in = crate::runtime::block_span!(block = row.number, lane).entered();
        let Some(input_path) = row.input_path.clone().filter(|p| p.is_file()) else {
            tracing::warn!("the input is gone from disk; building it again");
            ledger.input_lost(row.number)?;
            return Ok(true);
        };
        // Seen to prover is a block's first run: one run again keeps when it was first seen.
        let head_to_prover_ms =
            row.seen_at_ms.filter(|_| row.attempts == 0).map(|seen| crate::store::now_ms().saturating_sub(seen).max(0));
        tracing::debug!(?head_to_prover_ms, "run starting");
        // The run records `proof started` itself, once the block is known to be canonical.
        // An input built before outputs were recorded (an older daemon) is built again: its proof
        // could not be bound to the block.
        let Some(expected) = row.expected_output.as_deref().and_then(BlockOutputs::from_hex) else {
            tracing::warn!("no outputs recorded with the input; building it again");
            ledger.input_lost(row.number)?;
            return Ok(true);
        };
        let job = RunJob {
            block: row.number,
            input_path,
            block_hash: row.block_hash.clone(),
            resume: None,
            expected: Some(expected),
            in_doubt: row.job_in_doubt.clone(),
            gpu,
        };
        self.spawn_run(s, lane, job, None, (row.block_timestamp, head_to_prover_ms), hold);
        Ok(true)
    }

    /// Starts the run in `lane`; `hold` keeps the daemon's stop waiting until the run has
    /// recorded its end.
    fn spawn_run(
        &self,
        s: &mut ProverState,
        lane: usize,
        job: RunJob,
        job_id: Option<String>,
        (timestamp, head_to_prover_ms): (Option<u64>, Option<i64>),
        hold: Hold,
    ) {
        let stop = StopSignal::for_run(&self.ctx.drain);
        let progress = Arc::new(RunProgress::new(job_id));
        let (ctx, settings) = (self.ctx.clone(), self.settings.clone());
        let (mailbox, shared, run_stop) = (self.mailbox.clone(), progress.clone(), stop.clone());
        let block = job.block;
        // Not the actor's task: it runs to its end whatever becomes of this incarnation, and
        // its end reaches whichever incarnation is alive.
        let slots = self.runs.clone();
        // Every line the run writes, the backend's and the coordinator client's included, names its block.
        // The attempt and the coordinator's job id are filled in once the run knows them.
        let span =
            crate::runtime::block_span!(block, lane, attempt = tracing::field::Empty, job = tracing::field::Empty);
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let report = proof_run::run(ctx, settings, job, run_stop, shared).await;
                slots.finish(lane, report);
                // Its end is recorded: a stop need not wait for an actor to hear of it.
                drop(hold);
                mailbox.deliver(ProverMsg::Finished).await;
            },
            span,
        ));
        let (started, started_at) = (Instant::now(), SystemTime::now());
        let run = InFlight { block, lane, started, started_at, stop, progress, timestamp, head_to_prover_ms };
        self.runs.set(run.clone());
        s.in_flight.insert(lane, run);
    }

    /// The operator's cancel, recorded in the ledger, reaches the running attempt.
    fn honour_cancel(&self, s: &ProverState) {
        for f in s.in_flight.values() {
            let requested = self.ctx.ledger.block(f.block).ok().flatten().is_some_and(|b| b.cancel_requested);
            if requested && f.stop.now() == Stop::No {
                crate::runtime::block_span!(block = f.block, lane = f.lane).in_scope(|| {
                    tracing::warn!("the operator cancels the running attempt");
                    f.stop.cancel();
                });
            }
        }
    }

    /// A coordinator that stays unreachable during a run is alerted once, and resolved when it answers.
    fn check_coordinator(&self, s: &mut ProverState) {
        // One coordinator serves every run: any run's trouble is its trouble.
        let trouble = s.in_flight.values().find_map(|f| f.progress.snapshot().trouble);
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

    fn check_stuck(&self, s: &mut ProverState) {
        let threshold = self.settings.stuck_threshold;
        let stuck: Vec<(u64, Duration)> = s
            .in_flight
            .values()
            .map(|f| (f.block, f.started.elapsed()))
            .filter(|(block, running)| *running > threshold && !s.stuck_alerted.contains(block))
            .collect();
        for (block, running) in stuck {
            s.stuck_alerted.insert(block);
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
            match retention::prune(&settings.output_dir, &ctx.ledger, settings.retain_blocks, reporting) {
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
