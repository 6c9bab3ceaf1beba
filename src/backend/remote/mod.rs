//! The coordinator backend: each block is a job on ZisK's coordinator, which splits it across
//! its workers (each with its proving key already loaded).
//!
//! Before the first job the guest program is registered and set up, once per ELF (the
//! coordinator's hash id and the set-up are kept in the ledger). A job's id is recorded before
//! anything else happens to it, so a restarted daemon re-attaches to it ([`RunRequest::resume_job`]).
//! The cluster's passing trouble (unreachable, no free capacity, a restart that forgot the
//! program) is waited out with backoff and reported through [`Recorder::trouble`]; it never
//! fails a block. The job's own end is judged by [`judge::judge_job`].

mod job;
mod program;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{
    Backend, BackendOutcome, Ended, Recorder, RunFuture, RunRequest, ServiceFacts, StopSignal, checked, write_whole,
};
use crate::decide::judge::{self, Action, CancelledBy, Exit, JobFacts};
use crate::outside::coordinator::{CoordError, Coordinator, JobEnd, Phase, Work};
use crate::runtime::backoff::Backoff;
use crate::store::RecordedJob;
use crate::store::Stage;
use crate::store::{Ledger, ProgramRecord};

/// What the configuration says about the coordinator backend.
#[derive(Debug, Clone)]
pub struct RemoteSettings {
    pub elf: PathBuf,
    /// `Prove` (a prove job per block) or `Execute` (an execute job: the guest runs, no proof).
    pub action: Action,
    /// `PROVER_TIMEOUT_SECONDS`: the job's deadline, sent with it and enforced here too.
    pub timeout: Duration,
    /// `INPUT_CHECK=emulate`: the guest runs on the input (an execute job) before it is proved.
    pub emulate_first: bool,
    /// How the guest commits its outputs: the input check's outputs are compared with the
    /// block's (`None`: not known, not compared).
    pub output_layout: Option<crate::block::commitment::OutputLayout>,
    /// `INPUT_CHECK_TIMEOUT_SECONDS`: the input check's own deadline.
    pub check_timeout: Duration,
    /// `CANCEL_ON_SHUTDOWN`: a graceful stop cancels the job instead of leaving it to be re-attached.
    pub cancel_on_shutdown: bool,
}

pub struct Remote {
    client: Coordinator,
    /// Where the program's registration and set-up are remembered.
    ledger: Arc<Ledger>,
    settings: RemoteSettings,
    /// The ELF's SHA-256 at start-up: a registration recorded for another ELF is not reused.
    elf_sha256: String,
    /// This daemon's jobs the coordinator has accepted and not yet ended: while one runs, "no
    /// capacity" for another is our own load (backpressure), not the cluster's trouble.
    jobs_running: Arc<AtomicUsize>,
    /// Held while the program is registered and set up, so runs side by side do it once.
    setting_up: tokio::sync::Mutex<()>,
}

/// Counts one accepted job for as long as it lives.
struct JobRunning(Arc<AtomicUsize>);

impl JobRunning {
    fn new(count: &Arc<AtomicUsize>) -> JobRunning {
        count.fetch_add(1, Ordering::SeqCst);
        JobRunning(count.clone())
    }
}

impl Drop for JobRunning {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Backend for Remote {
    fn name(&self) -> &'static str {
        "coordinator"
    }

    fn describe(&self) -> String {
        "coordinator (1.x API)".to_string()
    }

    fn makes_proofs(&self) -> bool {
        self.settings.action == Action::Prove
    }

    fn run<'a>(
        &'a self,
        req: &'a RunRequest,
        stop: StopSignal,
        rec: &'a dyn Recorder,
    ) -> RunFuture<'a, BackendOutcome> {
        Box::pin(self.run_block(req, stop, rec))
    }

    fn check<'a>(
        &'a self,
        req: &'a RunRequest,
        stop: StopSignal,
        rec: &'a dyn Recorder,
    ) -> RunFuture<'a, BackendOutcome> {
        Box::pin(async move {
            let started = Instant::now();
            checked(started, self.check_only(req, stop, rec).await)
        })
    }

    fn reattaches(&self) -> bool {
        true
    }

    fn service(&self) -> Option<ServiceFacts> {
        let program = self.program();
        Some(ServiceFacts {
            url: self.client().url().to_string(),
            hash_id: program.as_ref().map(|p| p.hash_id.clone()),
            set_up: program.is_some_and(|p| p.set_up),
        })
    }
}

impl Remote {
    /// The coordinator is not dialled until the first block; `elf_sha256` is the ELF checked at
    /// start-up, the only one this backend registers.
    pub fn new(client: Coordinator, ledger: Arc<Ledger>, settings: RemoteSettings, elf_sha256: String) -> Remote {
        Remote { client, ledger, settings, elf_sha256, jobs_running: Arc::default(), setting_up: Default::default() }
    }

    pub fn client(&self) -> &Coordinator {
        &self.client
    }

    /// The program as the ledger remembers it, if it is for this ELF.
    pub fn program(&self) -> Option<ProgramRecord> {
        self.ledger.coordinator_program().ok().flatten().filter(|p| p.elf_sha256 == self.elf_sha256)
    }

    async fn run_block(&self, req: &RunRequest, stop: StopSignal, rec: &dyn Recorder) -> BackendOutcome {
        let (job, kind) = match &req.resume_job {
            Some(job) => {
                tracing::info!(job_id = job.id(), "re-attaching to the block's coordinator job");
                (job.clone(), self.main_kind())
            }
            None => {
                let input = match read_input(&req.input) {
                    Ok(input) => input,
                    Err(e) => return BackendOutcome::Ended(Ended::failed(Stage::Input, e.to_string())),
                };
                if self.settings.emulate_first
                    && self.main_kind() == Work::Prove
                    && let Err(outcome) = self.check_input(req, &input, &stop, rec).await
                {
                    return outcome;
                }
                match self.submit(req, &input, self.main_kind(), &stop, rec).await {
                    Ok(job) => (job, self.main_kind()),
                    Err(outcome) => return outcome,
                }
            }
        };
        let _running = JobRunning::new(&self.jobs_running);
        let started = Instant::now();
        let resumed = req.resume_job.is_some();
        let (end, cancelled_by) = match self.await_end(&job, self.settings.timeout, resumed, true, &stop, rec).await {
            Ok(end) => end,
            Err(outcome) => return outcome,
        };
        let proof = match &end {
            JobEnd::Proved { data, .. } if kind == Work::Prove => match keep_proof(req, data, &stop).await {
                Ok(written) => Some(written),
                Err(outcome) => return outcome,
            },
            _ => None,
        };
        self.ended(job.id(), end, proof, cancelled_by, started.elapsed())
    }

    /// Only the guest's check of the input (an execute job): its steps if it accepts it.
    async fn check_only(
        &self,
        req: &RunRequest,
        stop: StopSignal,
        rec: &dyn Recorder,
    ) -> Result<Option<u64>, BackendOutcome> {
        let input =
            read_input(&req.input).map_err(|e| BackendOutcome::Ended(Ended::failed(Stage::Input, e.to_string())))?;
        let steps = std::sync::Mutex::new(None);
        let tap = Tap { inner: rec, steps: &steps };
        self.check_input(req, &input, &stop, &tap).await?;
        Ok(*steps.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn main_kind(&self) -> Work {
        if self.settings.action == Action::Prove { Work::Prove } else { Work::Execute }
    }

    /// Runs the guest on the input (an execute job) before it is proved: a guest that rejects it
    /// fails the block at `input_check` with its own words, and no GPU time is spent on it.
    async fn check_input(
        &self,
        req: &RunRequest,
        input: &[u8],
        stop: &StopSignal,
        rec: &dyn Recorder,
    ) -> Result<(), BackendOutcome> {
        let job = self.submit(req, input, Work::Execute, stop, rec).await?;
        let _running = JobRunning::new(&self.jobs_running);
        let started = Instant::now();
        let (end, cancelled_by) = self.await_end(&job, self.settings.check_timeout, false, false, stop, rec).await?;
        match end {
            JobEnd::Done { steps, outputs, .. } => {
                tracing::debug!(ms = started.elapsed().as_millis() as u64, "input check job done");
                if let Err(e) = super::outputs_are_the_block_s(self.settings.output_layout, req, &outputs) {
                    return Err(BackendOutcome::Ended(Ended::failed(Stage::InputCheck, e.to_string())));
                }
                rec.checked(steps);
                Ok(())
            }
            JobEnd::Unknown => Err(BackendOutcome::Lost(format!("the coordinator forgot the input check job {job}"))),
            end => {
                let facts = JobFacts {
                    action: Action::Execute,
                    end: &end,
                    proof_bytes: None,
                    cancelled_by,
                    elapsed: started.elapsed(),
                    timeout: self.settings.check_timeout,
                };
                match judge::judge_job(&facts) {
                    judge::Verdict::Failed { stage: Stage::Cancelled, reason } => {
                        Err(BackendOutcome::Ended(Ended::failed(Stage::Cancelled, reason)))
                    }
                    judge::Verdict::Failed { reason, .. } => Err(BackendOutcome::Ended(Ended::failed(
                        Stage::InputCheck,
                        format!("the guest rejected the input (emulation on the coordinator): {reason}"),
                    ))),
                    _ => Err(BackendOutcome::Ended(Ended::failed(
                        Stage::InputCheck,
                        "the coordinator answered the input check with another kind of result".into(),
                    ))),
                }
            }
        }
    }

    /// A job's end as the ledger will hold it, with the proof written from `proof.data`, judged.
    fn ended(
        &self,
        job_id: &str,
        end: JobEnd,
        proof: Option<(PathBuf, u64)>,
        cancelled_by: Option<CancelledBy>,
        elapsed: Duration,
    ) -> BackendOutcome {
        if end == JobEnd::Unknown {
            return BackendOutcome::Lost(format!("the coordinator no longer knows job {job_id}"));
        }
        let facts = JobFacts {
            action: self.settings.action,
            end: &end,
            proof_bytes: proof.as_ref().map(|(_, b)| *b),
            cancelled_by,
            elapsed,
            timeout: self.settings.timeout,
        };
        let verdict = judge::judge_job(&facts);
        // Only a completed job has an exit to judge again after a crash; a failed one is
        // recorded as failed at once (its reason is the record).
        let (exit, said) = match &end {
            JobEnd::Proved { .. } | JobEnd::Done { .. } | JobEnd::SetUp { .. } => {
                (Some(Exit::JobCompleted), "job completed")
            }
            JobEnd::Cancelled => (None, "job cancelled"),
            _ => (None, "job failed"),
        };
        let last_lines = vec![format!("coordinator job {job_id}: {said}")];
        BackendOutcome::Ended(Ended { verdict, exit, proof, last_lines })
    }
}

/// How long a proof that cannot be written waits before the next try.
const KEEP_PROOF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));

/// Writes the cluster's proof as the block's proof file, trying again (1 s doubling to 30 s)
/// while the disk refuses it (full, read-only for a moment): hours of GPU time are never
/// dropped for a write. A shutdown meanwhile leaves the job to be followed again at the next
/// start (the coordinator answers a completed job again); the operator's cancel ends the run.
async fn keep_proof(req: &RunRequest, data: &[u8], stop: &StopSignal) -> Result<(PathBuf, u64), BackendOutcome> {
    let path = req.block_dir.join("proof.bin");
    let mut failures = 0u32;
    loop {
        failures = failures.saturating_add(1);
        let wait = KEEP_PROOF.after(failures);
        match write_whole(&path, data) {
            Ok(bytes) => return Ok((path, bytes)),
            Err(e) => {
                tracing::error!(error = %e, retry_in_s = wait.as_secs(), "cannot write the coordinator's proof; keeping it and trying again");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            stopped = stop.requested() => {
                return Err(match stopped {
                    super::Stop::Operator => BackendOutcome::Ended(Ended::failed(Stage::Cancelled, "cancelled by the operator".into())),
                    _ => BackendOutcome::Detached,
                });
            }
        }
    }
}

/// Passes everything on, keeping the guest's steps for the caller.
struct Tap<'a> {
    inner: &'a dyn Recorder,
    steps: &'a std::sync::Mutex<Option<u64>>,
}

impl Recorder for Tap<'_> {
    fn process(&self, pgid: u32) {
        self.inner.process(pgid)
    }
    fn job(&self, job_id: &str) -> Result<RecordedJob, super::NotRecorded> {
        self.inner.job(job_id)
    }
    fn in_doubt(&self, doubt: &crate::store::JobInDoubt) -> Result<(), super::NotRecorded> {
        self.inner.in_doubt(doubt)
    }
    fn phase(&self, phase: Phase) {
        self.inner.phase(phase)
    }
    fn trouble(&self, error: Option<&CoordError>) {
        self.inner.trouble(error)
    }
    fn checked(&self, steps: Option<u64>) {
        *self.steps.lock().unwrap_or_else(|p| p.into_inner()) = steps;
        self.inner.checked(steps)
    }
}

fn local(e: crate::store::StoreError) -> CoordError {
    CoordError::Refused { code: "ledger".into(), message: e.to_string() }
}

/// Job metadata: which block and attempt, so the coordinator's own logs and metrics name them.
fn job_metadata(req: &RunRequest, submission: &str) -> HashMap<String, String> {
    HashMap::from([
        ("block".to_string(), req.block.to_string()),
        ("attempt".to_string(), req.attempt.to_string()),
        ("submission".to_string(), submission.to_string()),
        ("client".to_string(), format!("ethproofs-daemon/{}", env!("CARGO_PKG_VERSION"))),
    ])
}

/// Why a job's input cannot be sent (the block fails at `input`).
#[derive(Debug, thiserror::Error)]
enum InputFileError {
    #[error("cannot read {path}: {source}")]
    Unreadable { path: String, source: std::io::Error },
    #[error("{path} is {len} bytes, more than the 1 GiB a job's input may be")]
    TooLarge { path: String, len: u64 },
}

/// The input file, which the daemon wrote itself; still capped like anything held in memory.
fn read_input(path: &std::path::Path) -> Result<Vec<u8>, InputFileError> {
    const MAX_INPUT: u64 = 1 << 30;
    let unreadable = |source| InputFileError::Unreadable { path: path.display().to_string(), source };
    let len = std::fs::metadata(path).map_err(unreadable)?.len();
    if len > MAX_INPUT {
        return Err(InputFileError::TooLarge { path: path.display().to_string(), len });
    }
    std::fs::read(path).map_err(unreadable)
}
