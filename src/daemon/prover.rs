//! The Prover actor: a FIFO of ready inputs and one `cargo-zisk` at a time.
//!
//! It decides when a block starts and what its ending means; `process` runs the child and
//! `zisk` knows the flags and outputs. A crash, an OOM kill, a non-zero exit, a timeout or a
//! missing proof fails that block with the reason (and the prover's last lines), and the next
//! block proceeds.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;
use tokio::sync::watch;

use super::notifier::NotifierHandle;
use super::reporter::{ProvedReport, ReporterHandle};
use super::{Context, PROVER, Shared, deliver, rfc3339, send};
use crate::config::ZiskAction;
use crate::ethproofs::Status;
use crate::notify::AlertKind;
use crate::process::{self, Ending, RunOutcome, RunSpec};
use crate::store::{BlockState, Ledger};
use crate::zisk;

/// An input ready to prove.
#[derive(Debug, Clone)]
pub struct Job {
    pub block: u64,
    pub input_path: PathBuf,
    /// When the daemon first saw a head at or past this block.
    pub head_seen_at: Instant,
    /// The block's own timestamp, for block-to-proof latency (unknown after a resume).
    pub block_timestamp: Option<u64>,
}

struct InFlight {
    job: Job,
    started: Instant,
    started_at: SystemTime,
    pgid: Option<u32>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProvedBlock {
    pub block: u64,
    pub proving_time_ms: u64,
    pub cycles: Option<u64>,
    pub proof_path: Option<String>,
    /// From first seeing the head to cargo-zisk starting.
    pub head_to_prover_ms: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedBlock {
    pub block: u64,
    pub stage: &'static str,
    pub reason: String,
    pub last_lines: Vec<String>,
}

pub struct ProverState {
    queue: VecDeque<Job>,
    in_flight: Option<InFlight>,
    proved: VecDeque<ProvedBlock>,
    proved_count: u64,
    failed: VecDeque<FailedBlock>,
    failed_count: u64,
    cancel: watch::Sender<bool>,
    stopping: bool,
    stuck_alerted: bool,
}

impl ProverState {
    /// Puts a block straight into the queue (resume after a restart: no new `queued` report).
    pub fn resume(&mut self, job: Job) {
        if !self.queue.iter().any(|j| j.block == job.block) {
            self.queue.push_back(job);
        }
    }
}

impl Default for ProverState {
    fn default() -> Self {
        ProverState {
            queue: VecDeque::new(),
            in_flight: None,
            proved: VecDeque::new(),
            proved_count: 0,
            failed: VecDeque::new(),
            failed_count: 0,
            cancel: watch::channel(false).0,
            stopping: false,
            stuck_alerted: false,
        }
    }
}

impl ProverState {
    /// Ends the running prover's process group now (used when the supervisor gives up).
    pub fn cancel_now(&mut self) -> Option<u32> {
        self.stopping = true;
        let _ = self.cancel.send(true);
        let pgid = self.in_flight.as_ref().and_then(|f| f.pgid);
        if let Some(pgid) = pgid {
            crate::process::signal_group(pgid, libc::SIGKILL);
        }
        pgid
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ProverStatus {
    pub status: &'static str,
    pub state: &'static str,
    pub queue_length: usize,
    pub queued_blocks: Vec<u64>,
    pub proving_block: Option<u64>,
    pub proving_since: Option<String>,
    pub proving_duration_seconds: Option<u64>,
    pub proving_pgid: Option<u32>,
    pub zisk_version: String,
    pub action: &'static str,
    pub proved_count: u64,
    pub failed_count: u64,
    pub recent_proved: Vec<ProvedBlock>,
    pub recent_failed: Vec<FailedBlock>,
}

pub enum ProverMsg {
    Wake,
    /// Periodic look at the running proof (stuck detection).
    Check,
    Started {
        block: u64,
        pgid: u32,
    },
    Finished {
        block: u64,
        result: Result<RunOutcome, String>,
    },
    Status(RpcReplyPort<ProverStatus>),
    /// Stop taking work and end the running prover; answers once nothing runs.
    Stop(RpcReplyPort<()>),
}

#[derive(Clone)]
pub struct ProverHandle {
    state: Shared<ProverState>,
    reporter: ReporterHandle,
    ledger: Arc<Ledger>,
}

impl ProverHandle {
    pub fn new(state: Shared<ProverState>, reporter: ReporterHandle, ledger: Arc<Ledger>) -> ProverHandle {
        ProverHandle { state, reporter, ledger }
    }

    /// Puts a ready input in the queue and reports it `queued`. A block already proved is never
    /// queued again.
    pub fn enqueue(&self, job: Job, report: bool) -> Result<(), crate::store::StoreError> {
        let block = job.block;
        if self.ledger.block(block)?.is_some_and(|b| b.state == BlockState::Proved) {
            tracing::warn!(block, "already proved; not proving it again");
            return Ok(());
        }
        {
            let mut s = self.state.lock();
            if s.stopping || s.queue.iter().any(|j| j.block == block) {
                return Ok(());
            }
            self.ledger.mark_queued(block)?;
            s.queue.push_back(job);
        }
        if report {
            self.reporter.report(block, Status::Queued, None)?;
        }
        let _ = send(PROVER, ProverMsg::Wake);
        Ok(())
    }
}

pub struct Prover {
    pub ctx: Arc<Context>,
    pub reporter: ReporterHandle,
    pub notifier: NotifierHandle,
}

impl Actor for Prover {
    type Msg = ProverMsg;
    type State = Shared<ProverState>;
    type Arguments = Shared<ProverState>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        {
            let mut s = state.lock();
            // A run whose task ended while no incarnation was alive lost its result: run it again.
            if s.in_flight.as_ref().is_some_and(|f| f.task.is_finished())
                && let Some(f) = s.in_flight.take()
            {
                tracing::warn!(
                    block = f.job.block,
                    "prover restarted after its run ended unseen; proving the block again"
                );
                s.queue.push_front(f.job);
            }
        }
        myself.send_interval(Duration::from_secs(5), || ProverMsg::Check);
        let _ = myself.cast(ProverMsg::Wake);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ProverMsg::Wake => self.start_next(state)?,
            ProverMsg::Check => {
                self.check_stuck(state);
                self.prune();
                self.start_next(state)?;
            }
            ProverMsg::Started { block, pgid } => {
                // If this process is killed, the next start reaps the group (PDEATHSIG reaches
                // only cargo-zisk itself, not what it started).
                let _ = std::fs::write(pgid_file(&self.ctx.config.output_dir), format!("{pgid}\n"));
                let mut s = state.lock();
                if let Some(f) = s.in_flight.as_mut().filter(|f| f.job.block == block) {
                    f.pgid = Some(pgid);
                }
            }
            ProverMsg::Finished { block, result } => {
                let in_flight = {
                    let mut s = state.lock();
                    match s.in_flight.take() {
                        Some(f) if f.job.block == block => Some(f),
                        other => {
                            s.in_flight = other;
                            None
                        }
                    }
                };
                if let Some(f) = in_flight {
                    self.finish(state, f, result)?;
                }
                self.start_next(state)?;
            }
            ProverMsg::Status(reply) => {
                let _ = reply.send(self.status(state));
            }
            ProverMsg::Stop(reply) => {
                let task = {
                    let mut s = state.lock();
                    s.stopping = true;
                    let _ = s.cancel.send(true);
                    s.in_flight.take().map(|f| (f.job.block, f.task))
                };
                // Wait for the run to end (process::run terminates its group) outside the mailbox.
                let pgid_path = pgid_file(&self.ctx.config.output_dir);
                tokio::spawn(async move {
                    if let Some((block, task)) = task {
                        tracing::info!(block, "shutdown: stopping the running prover");
                        let _ = task.await;
                    }
                    let _ = std::fs::remove_file(pgid_path);
                    let _ = reply.send(());
                });
            }
        }
        Ok(())
    }
}

impl Prover {
    fn status(&self, state: &Shared<ProverState>) -> ProverStatus {
        let s = state.lock();
        let threshold = self.ctx.config.prover_stuck_threshold;
        let (proving_block, since, duration, pgid) = match &s.in_flight {
            Some(f) => (Some(f.job.block), Some(rfc3339(f.started_at)), Some(f.started.elapsed().as_secs()), f.pgid),
            None => (None, None, None, None),
        };
        let stuck = s.in_flight.as_ref().is_some_and(|f| f.started.elapsed() > threshold);
        ProverStatus {
            status: if stuck { "degraded" } else { "healthy" },
            state: if stuck {
                "stuck"
            } else if s.in_flight.is_some() {
                "proving"
            } else if s.stopping {
                "stopped"
            } else if self.ctx.is_paused() {
                "paused"
            } else {
                "idle"
            },
            queue_length: s.queue.len(),
            queued_blocks: s.queue.iter().map(|j| j.block).collect(),
            proving_block,
            proving_since: since,
            proving_duration_seconds: duration,
            proving_pgid: pgid,
            zisk_version: self.ctx.zisk_version.to_string(),
            action: match self.ctx.config.zisk_action {
                ZiskAction::Prove => "prove",
                ZiskAction::Execute => "execute",
                ZiskAction::Native => "native",
            },
            proved_count: s.proved_count,
            failed_count: s.failed_count,
            recent_proved: s.proved.iter().cloned().collect(),
            recent_failed: s.failed.iter().cloned().collect(),
        }
    }

    fn check_stuck(&self, state: &Shared<ProverState>) {
        let mut s = state.lock();
        let threshold = self.ctx.config.prover_stuck_threshold;
        let Some((block, running)) =
            s.in_flight.as_ref().map(|f| (f.job.block, f.started.elapsed())).filter(|(_, e)| *e > threshold)
        else {
            return;
        };
        if !s.stuck_alerted {
            s.stuck_alerted = true;
            let detail = format!(
                "block {block} has been proving for {}s (PROVER_STUCK_THRESHOLD_SECONDS = {}); it is killed at PROVER_TIMEOUT_SECONDS = {}",
                running.as_secs(),
                threshold.as_secs(),
                self.ctx.config.prover_timeout.as_secs()
            );
            self.notifier.alert(AlertKind::ProverStuck, format!("Prover stuck on block {block}"), detail);
        }
    }

    fn start_next(&self, state: &Shared<ProverState>) -> Result<(), ActorProcessingErr> {
        let mut s = state.lock();
        if s.in_flight.is_some() || s.stopping || self.ctx.is_paused() {
            return Ok(());
        }
        let Some(job) = s.queue.pop_front() else { return Ok(()) };
        let cfg = &self.ctx.config;
        let block_dir = job.input_path.parent().map(PathBuf::from).unwrap_or_else(|| cfg.output_dir.clone());
        let invocation = match cfg.zisk_action {
            ZiskAction::Prove => {
                zisk::prove(self.ctx.dialect, &cfg.elf_path, &job.input_path, &block_dir, &cfg.zisk_extra_args)
            }
            ZiskAction::Execute | ZiskAction::Native => {
                zisk::execute(&cfg.elf_path, &job.input_path, &cfg.zisk_extra_args)
            }
        };
        let spec = RunSpec {
            program: cfg.cargo_zisk.clone(),
            args: invocation.args.clone(),
            timeout: cfg.prover_timeout,
            kill_grace: cfg.prover_kill_grace,
        };
        let block = job.block;
        let cancel = s.cancel.subscribe();
        let attempt = self.ctx.ledger.mark_proving(block)?;
        if cfg.zisk_action == ZiskAction::Prove {
            self.reporter.report(block, Status::Proving, None)?;
        }
        if cfg.zisk_action == ZiskAction::Native {
            tracing::info!(block, attempt, "native re-execution started");
            let (path, framing) = (job.input_path.clone(), self.ctx.zisk_version.framing());
            let task = tokio::spawn(async move {
                let result = tokio::task::spawn_blocking(move || native_run(&path, framing))
                    .await
                    .map_err(|e| format!("native run panicked: {e}"));
                deliver(PROVER, ProverMsg::Finished { block, result }).await;
            });
            s.in_flight =
                Some(InFlight { job, started: Instant::now(), started_at: SystemTime::now(), pgid: None, task });
            return Ok(());
        }
        tracing::info!(block, attempt, program = %cfg.cargo_zisk.display(), "prover started");
        let task = tokio::spawn(async move {
            let result = process::run(&spec, cancel, |pgid| {
                let _ = send(PROVER, ProverMsg::Started { block, pgid });
            })
            .await
            .map_err(|e| format!("cannot start {}: {e}", spec.program.display()));
            deliver(PROVER, ProverMsg::Finished { block, result }).await;
        });
        s.in_flight = Some(InFlight { job, started: Instant::now(), started_at: SystemTime::now(), pgid: None, task });
        Ok(())
    }

    fn finish(
        &self,
        state: &Shared<ProverState>,
        f: InFlight,
        result: Result<RunOutcome, String>,
    ) -> Result<(), ActorProcessingErr> {
        let block = f.job.block;
        let head_to_prover_ms = f.started.saturating_duration_since(f.job.head_seen_at).as_millis() as u64;
        let outcome = match result {
            Err(reason) => Err(("spawn", reason, Vec::new())),
            Ok(run) => self.judge(&f, run),
        };
        self.prune();
        let _ = std::fs::remove_file(pgid_file(&self.ctx.config.output_dir));
        let mut s = state.lock();
        if std::mem::take(&mut s.stuck_alerted) {
            self.notifier.resolve(
                AlertKind::ProverStuck,
                format!("the run of block {block} ended after {}s", f.started.elapsed().as_secs()),
            );
        }
        match outcome {
            Ok(proved) => {
                tracing::info!(block, proving_time_ms = proved.proving_time_ms, cycles = ?proved.cycles, head_to_prover_ms, "block proved");
                crate::telemetry::block_outcome("proved", "prove");
                crate::telemetry::proved(proved.proving_time_ms as f64 / 1000.0, f.job.block_timestamp);
                let proof = proved.proof_path.as_ref().map(PathBuf::from);
                self.ctx.ledger.mark_proved(block, proof.as_deref(), proved.proving_time_ms, proved.cycles)?;
                if let Some(path) = proof {
                    self.reporter.report(
                        block,
                        Status::Proved,
                        Some(ProvedReport {
                            proving_time_ms: proved.proving_time_ms,
                            cycles: proved.cycles,
                            proof_path: path,
                        }),
                    )?;
                }
                self.notifier.resolve(AlertKind::ProofFailed, format!("block {block} proved"));
                if self.ctx.config.slack_notify_proved {
                    self.notifier.info(
                        format!("Block {block} proved"),
                        format!(
                            "proving time {} ms, cycles {}\nhttps://ethproofs.org/blocks/{block}",
                            proved.proving_time_ms,
                            proved.cycles.map_or("unknown".to_string(), |c| c.to_string())
                        ),
                    );
                }
                s.proved_count += 1;
                s.proved.push_back(ProvedBlock { head_to_prover_ms, ..proved });
                if s.proved.len() > 50 {
                    s.proved.pop_front();
                }
            }
            Err((stage, reason, last_lines)) if !s.stopping => {
                self.ctx.ledger.mark_failed(block, stage, &reason)?;
                crate::telemetry::block_outcome("failed", stage);
                self.notifier.alert(
                    AlertKind::ProofFailed,
                    format!("Proof failed: block {block} ({stage})"),
                    format!("{reason}\n{}", last_lines.join("\n")),
                );
                s.failed_count += 1;
                s.failed.push_back(FailedBlock { block, stage, reason, last_lines });
                if s.failed.len() > 50 {
                    s.failed.pop_front();
                }
            }
            // Left `proving` in the ledger: the next start proves it again (within MAX_PROVE_ATTEMPTS).
            Err((_, reason, _)) => tracing::info!(block, %reason, "prover stopped for shutdown"),
        }
        Ok(())
    }

    /// Drops old inputs and proofs in the background (never an unreported proof).
    fn prune(&self) {
        let ctx = self.ctx.clone();
        tokio::task::spawn_blocking(move || {
            let reporting = ctx.config.ethproofs.is_some();
            match crate::retention::prune(&ctx.config.output_dir, &ctx.ledger, ctx.config.retain_blocks, reporting) {
                Ok(removed) if !removed.is_empty() => tracing::info!(?removed, "old block data removed"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "retention skipped"),
            }
        });
    }

    /// Success needs exit 0 and, when proving, the proof the version promises.
    fn judge(&self, f: &InFlight, run: RunOutcome) -> Result<ProvedBlock, (&'static str, String, Vec<String>)> {
        let wall_ms = run.elapsed.as_millis().max(1) as u64;
        if self.ctx.config.zisk_action == ZiskAction::Native && run.ending != Ending::Code(0) {
            let reason = run.tail.first().cloned().unwrap_or_else(|| "native re-execution failed".into());
            return Err(("native_validation", reason, run.tail));
        }
        if run.ending != Ending::Code(0) {
            let stage = match run.ending {
                Ending::TimedOut => "timeout",
                Ending::Cancelled => "shutdown",
                Ending::Signal(_) => "crash",
                _ => "prover_exit",
            };
            return Err((
                stage,
                format!("cargo-zisk {} after {:.1}s", run.ending.describe(), run.elapsed.as_secs_f64()),
                run.tail,
            ));
        }
        let cfg = &self.ctx.config;
        match cfg.zisk_action {
            ZiskAction::Execute | ZiskAction::Native => Ok(ProvedBlock {
                block: f.job.block,
                proving_time_ms: wall_ms,
                cycles: zisk::parse_steps(&run.tail),
                proof_path: None,
                head_to_prover_ms: 0,
            }),
            ZiskAction::Prove => {
                let block_dir = f.job.input_path.parent().map(PathBuf::from).unwrap_or_else(|| cfg.output_dir.clone());
                let location =
                    match zisk::prove(self.ctx.dialect, &cfg.elf_path, &f.job.input_path, &block_dir, &[]).proof {
                        Some(l) => l,
                        None => return Err(("proof_output", "no proof location for this version".into(), run.tail)),
                    };
                match zisk::read_prove_result(self.ctx.dialect, &location, &run.tail) {
                    Ok(r) => Ok(ProvedBlock {
                        block: f.job.block,
                        proving_time_ms: r.proving_time_ms.unwrap_or(wall_ms),
                        cycles: r.cycles,
                        proof_path: Some(r.proof_path.display().to_string()),
                        head_to_prover_ms: 0,
                    }),
                    Err(e) => Err(("proof_output", e.to_string(), run.tail)),
                }
            }
        }
    }
}

/// Where the running prover's process group id is recorded while it runs.
pub fn pgid_file(output_dir: &std::path::Path) -> PathBuf {
    output_dir.join(".prover-pgid")
}

/// Ends what a killed predecessor's prover left running, from the recorded group id.
pub fn reap_leftover(output_dir: &std::path::Path) {
    let path = pgid_file(output_dir);
    let Ok(text) = std::fs::read_to_string(&path) else { return };
    if let Ok(pgid) = text.trim().parse::<u32>()
        && pgid > 1
    {
        tracing::warn!(pgid, "ending the process group a previous run's prover left behind");
        process::signal_group(pgid, libc::SIGKILL);
    }
    let _ = std::fs::remove_file(&path);
}

/// The `native` action: the input read back and re-executed as the guest would, in-process.
fn native_run(path: &std::path::Path, framing: crate::input::Framing) -> RunOutcome {
    let started = Instant::now();
    let outcome = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display())).and_then(|file| {
        let payload =
            framing.payload(&file).ok_or_else(|| format!("{} is not a well-formed {framing} input", path.display()))?;
        crate::input::validate::validate(payload).map_err(|e| format!("native re-execution failed: {e}"))
    });
    match outcome {
        Ok(report) => RunOutcome {
            ending: Ending::Code(0),
            tail: vec![format!(
                "native re-execution ok: state root {:#x}, gas {}",
                report.state_root_after, report.gas_used
            )],
            elapsed: started.elapsed(),
        },
        Err(reason) => RunOutcome { ending: Ending::Code(1), tail: vec![reason], elapsed: started.elapsed() },
    }
}

/// How long a stop may take: the kill grace plus a margin for the group to die.
pub fn stop_timeout(grace: Duration) -> Duration {
    grace + Duration::from_secs(5)
}
