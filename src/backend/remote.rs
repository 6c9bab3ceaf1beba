//! The coordinator backend: each block is a job on ZisK's coordinator, which splits it across
//! its workers (each with its proving key already loaded).
//!
//! Before the first job the guest program is registered and set up, once per ELF (the
//! coordinator's hash id and the set-up are kept in the ledger). A job's id is recorded before
//! anything else happens to it, so a restarted daemon re-attaches to it ([`RunRequest::resume_job`]).
//! The cluster's passing trouble (unreachable, no free capacity, a restart that forgot the
//! program) is waited out with backoff and reported through [`Recorder::trouble`]; it never
//! fails a block. The job's own end is judged by [`judge::judge_job`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sha2::Digest;
use tokio::sync::watch;

use super::{Ended, Outcome, Recorder, RunRequest, Stop, stop_requested, write_whole};
use crate::coordinator::{
    CoordError, Coordinator, Failure, Followed, JobEnd, MAX_MESSAGE_BYTES, Phase, Submitted, Work, follow,
};
use crate::decide::judge::{self, Action, CancelledBy, JOB_COMPLETED, JobFacts};
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
}

/// The coordinator's own deadline is the job's; ours comes a little later (up to this, and at
/// most a quarter of the timeout), so that its failure (which names the phase) is the one
/// normally seen.
const DEADLINE_SLACK: Duration = Duration::from_secs(30);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A cancel that cannot reach the coordinator is tried again this often.
const CANCEL_RETRY: Duration = Duration::from_secs(15);
/// On shutdown with `CANCEL_ON_SHUTDOWN`, how long the cancel may take.
const SHUTDOWN_CANCEL: Duration = Duration::from_secs(10);
/// After a successful cancel, how long the job's end is waited for.
const AFTER_CANCEL: Duration = Duration::from_secs(300);
/// A re-attached job waiting for input this long was abandoned mid-push.
const STARVED_AFTER: Duration = Duration::from_secs(10);
/// Sending a job's input may fail this often before the block fails.
const MAX_PUSH_FAILURES: u32 = 5;
/// "No capacity" this long makes the daemon set the program up again.
const SETUP_AGAIN_AFTER: Duration = Duration::from_secs(600);
/// "Never", for deadlines that do not fit in the clock.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

impl Remote {
    /// The coordinator is not dialled until the first block; `elf_sha256` is the ELF checked at
    /// start-up, the only one this backend registers.
    pub fn new(client: Coordinator, ledger: Arc<Ledger>, settings: RemoteSettings, elf_sha256: String) -> Remote {
        Remote { client, ledger, settings, elf_sha256 }
    }

    pub fn client(&self) -> &Coordinator {
        &self.client
    }

    /// The program as the ledger remembers it, if it is for this ELF.
    pub fn program(&self) -> Option<ProgramRecord> {
        self.ledger.coordinator_program().ok().flatten().filter(|p| p.elf_sha256 == self.elf_sha256)
    }

    pub async fn run(&self, req: &RunRequest, mut stop: watch::Receiver<Stop>, rec: &dyn Recorder) -> Outcome {
        let (job_id, kind) = match &req.resume_job {
            Some(id) => {
                tracing::info!(block = req.block, job_id = %id, "re-attaching to the block's coordinator job");
                (id.clone(), self.main_kind())
            }
            None => {
                let input = match read_input(&req.input) {
                    Ok(input) => input,
                    Err(reason) => return Outcome::Ended(Ended::failed("input", reason)),
                };
                if self.settings.emulate_first
                    && self.main_kind() == Work::Prove
                    && let Err(outcome) = self.check_input(req, &input, &mut stop, rec).await
                {
                    return outcome;
                }
                match self.submit(req, &input, self.main_kind(), &mut stop, rec).await {
                    Ok(id) => (id, self.main_kind()),
                    Err(outcome) => return outcome,
                }
            }
        };
        let started = Instant::now();
        let resumed = req.resume_job.is_some();
        let (end, cancelled_by) =
            match self.await_end(&job_id, self.settings.timeout, resumed, true, &mut stop, rec).await {
                Ok(end) => end,
                Err(outcome) => return outcome,
            };
        self.ended(req, &job_id, kind, end, cancelled_by, started.elapsed())
    }

    /// Only the guest's check of the input (an execute job): its steps if it accepts it.
    pub async fn check_only(
        &self,
        req: &RunRequest,
        mut stop: watch::Receiver<Stop>,
        rec: &dyn Recorder,
    ) -> Result<Option<u64>, Outcome> {
        let input = read_input(&req.input).map_err(|reason| Outcome::Ended(Ended::failed("input", reason)))?;
        let steps = std::sync::Mutex::new(None);
        let tap = Tap { inner: rec, steps: &steps };
        self.check_input(req, &input, &mut stop, &tap).await?;
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
        stop: &mut watch::Receiver<Stop>,
        rec: &dyn Recorder,
    ) -> Result<(), Outcome> {
        let job_id = self.submit(req, input, Work::Execute, stop, rec).await?;
        let started = Instant::now();
        let (end, cancelled_by) = self.await_end(&job_id, self.settings.check_timeout, false, false, stop, rec).await?;
        match end {
            JobEnd::Done { steps, .. } => {
                tracing::debug!(block = req.block, ms = started.elapsed().as_millis() as u64, "input check job done");
                rec.checked(steps);
                Ok(())
            }
            JobEnd::Unknown => Err(Outcome::Lost(format!("the coordinator forgot the input check job {job_id}"))),
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
                    judge::Verdict::Failed { stage: "cancelled", reason } => {
                        Err(Outcome::Ended(Ended::failed("cancelled", reason)))
                    }
                    judge::Verdict::Failed { reason, .. } => Err(Outcome::Ended(Ended::failed(
                        "input_check",
                        format!("the guest rejected the input (emulation on the coordinator): {reason}"),
                    ))),
                    _ => Err(Outcome::Ended(Ended::failed(
                        "input_check",
                        "the coordinator answered the input check with another kind of result".into(),
                    ))),
                }
            }
        }
    }

    /// The program's hash id once it is registered and set up (once per ELF; remembered).
    async fn ready_program(&self, rec: &dyn Recorder) -> Result<String, CoordError> {
        if let Some(p) = self.program().filter(|p| p.set_up) {
            return Ok(p.hash_id);
        }
        let elf = std::fs::read(&self.settings.elf).map_err(|e| CoordError::Refused {
            code: "local".into(),
            message: format!("cannot read the ELF {}: {e}", self.settings.elf.display()),
        })?;
        if elf.len() > MAX_MESSAGE_BYTES {
            return Err(CoordError::Refused { code: "local".into(), message: "the ELF is larger than 256 MiB".into() });
        }
        // The ELF checked at start-up is the one registered: a file replaced since would be
        // proved under the old one's identity (and past its layout check).
        if hex::encode(sha2::Sha256::digest(&elf)) != self.elf_sha256 {
            return Err(CoordError::Refused {
                code: "local".into(),
                message: format!(
                    "the ELF {} changed on disk since start-up; restart the daemon to use it",
                    self.settings.elf.display()
                ),
            });
        }
        let hash_id = self.client.register(elf).await?;
        let record = self.ledger.program_registered(&self.elf_sha256, &hash_id).map_err(local)?;
        tracing::info!(hash_id, "guest program registered with the coordinator");
        if record.set_up {
            return Ok(hash_id);
        }
        tracing::info!(hash_id, "setting the guest program up on the coordinator (once per ELF)");
        let job_id = self.client.setup(&hash_id).await?;
        let (end, _) = match self
            .await_end(&job_id, self.settings.timeout, false, false, &mut watch::channel(Stop::No).1, rec)
            .await
        {
            Ok(end) => end,
            Err(_) => return Err(CoordError::Failing { code: "setup".into(), message: "set-up stopped".into() }),
        };
        match end {
            JobEnd::Done { .. } => {
                self.ledger.program_set_up(&self.elf_sha256, &hash_id).map_err(local)?;
                tracing::info!(hash_id, "guest program set up");
                Ok(hash_id)
            }
            // The guest itself is refused (a bad ELF): every block would fail the same way.
            JobEnd::Failed(Failure::Input(reason) | Failure::Execution(reason)) => Err(CoordError::Refused {
                code: "setup".into(),
                message: format!("the coordinator could not set the guest program up: {reason}"),
            }),
            other => {
                Err(CoordError::Failing { code: "setup".into(), message: format!("the set-up job ended {other:?}") })
            }
        }
    }

    /// Submits a job, waiting out the cluster's trouble. A prove job's id is recorded before
    /// its input is pushed or anything else happens to it.
    async fn submit(
        &self,
        req: &RunRequest,
        input: &[u8],
        kind: Work,
        stop: &mut watch::Receiver<Stop>,
        rec: &dyn Recorder,
    ) -> Result<String, Outcome> {
        let mut backoff = Duration::from_secs(1);
        let mut metadata = true;
        let mut push_failures = 0u32;
        // "No capacity" for long while the ledger says the program is set up: the workers may
        // have lost the set-up (a "set-up not done" reads as no capacity), so it is done again.
        let mut no_capacity_since: Option<Instant> = None;
        loop {
            match *stop.borrow() {
                Stop::Shutdown => return Err(Outcome::Stopped),
                Stop::Operator => {
                    return Err(Outcome::Ended(Ended::failed("cancelled", "cancelled by the operator".into())));
                }
                Stop::No => {}
            }
            // Registration and set-up (minutes, once per ELF) give way to a stop; the submission
            // itself does not, so that a job the coordinator accepts is always recorded.
            let ready = tokio::select! {
                ready = self.ready_program(rec) => ready,
                request = stop_requested(stop) => {
                    return Err(match request {
                        Stop::Operator => Outcome::Ended(Ended::failed("cancelled", "cancelled by the operator".into())),
                        _ => Outcome::Stopped,
                    });
                }
            };
            let attempt = async {
                let hash_id = ready?;
                let limit = if kind == self.main_kind() { self.settings.timeout } else { self.settings.check_timeout };
                let deadline = SystemTime::now() + limit;
                let meta = if metadata { job_metadata(req) } else { HashMap::new() };
                self.client.submit_work(kind, &hash_id, input, deadline, meta).await
            };
            let error = match attempt.await {
                Ok(Submitted { job_id, pending_input }) => {
                    rec.trouble(None);
                    if kind == self.main_kind()
                        && let Err(e) = rec.job(&job_id)
                    {
                        tracing::error!(block = req.block, job_id, error = %e, "cannot record the job; cancelling it");
                        let _ = self.client.cancel(&job_id).await;
                        return Err(Outcome::Stopped);
                    }
                    tracing::info!(block = req.block, job_id, kind = ?kind, "coordinator job submitted");
                    if pending_input == 0 {
                        return Ok(job_id);
                    }
                    match self.client.push_rest(&job_id, input).await {
                        Ok(()) => return Ok(job_id),
                        Err(e) => {
                            // A job without its whole input is no use: it goes, and a new one is
                            // submitted, whatever the error was (a few times).
                            let _ = self.client.cancel(&job_id).await;
                            push_failures += 1;
                            if push_failures >= MAX_PUSH_FAILURES {
                                let reason = format!("the input could not be sent {push_failures} times: {e}");
                                return Err(Outcome::Ended(Ended::failed("coordinator", reason)));
                            }
                            tracing::warn!(block = req.block, job_id, error = %e, "the input could not be sent; submitting again");
                            CoordError::Failing { code: "push".into(), message: e.to_string() }
                        }
                    }
                }
                Err(e) => e,
            };
            match (&error, no_capacity_since) {
                (CoordError::NoCapacity(_), None) => no_capacity_since = Some(Instant::now()),
                (CoordError::NoCapacity(_), Some(since)) if since.elapsed() > SETUP_AGAIN_AFTER => {
                    tracing::warn!("no capacity for long: setting the guest program up again (idempotent)");
                    let _ = self.ledger.program_forgotten();
                    no_capacity_since = None;
                }
                (CoordError::NoCapacity(_), _) => {}
                _ => no_capacity_since = None,
            }
            match &error {
                CoordError::ProgramUnknown(_) => {
                    tracing::warn!(error = %error, "the coordinator forgot the guest program; registering it again");
                    let _ = self.ledger.program_forgotten();
                }
                CoordError::Refused { message, .. }
                    if metadata && message.to_ascii_lowercase().contains("metadata") =>
                {
                    tracing::warn!(error = %error, "the coordinator takes no job metadata; submitting without");
                    metadata = false;
                    continue;
                }
                e if e.transient() => {}
                e => {
                    let stage = if kind == Work::Execute && self.main_kind() == Work::Prove {
                        "input_check"
                    } else {
                        "coordinator"
                    };
                    return Err(Outcome::Ended(Ended::failed(stage, e.to_string())));
                }
            }
            tracing::warn!(block = req.block, error = %error, retry_in_s = backoff.as_secs(), "cannot submit the job yet");
            rec.trouble(Some(&error));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                changed = stop.changed() => if changed.is_err() {
                    // Nobody can ask this run to stop any more; just wait the backoff out.
                    tokio::time::sleep(backoff).await;
                },
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Follows the job to its end, cancelling it past the deadline or when the operator asks.
    /// A shutdown leaves a `detachable` job running (unless `CANCEL_ON_SHUTDOWN`). A `resumed` job
    /// found waiting for input was left half-sent by the previous daemon: it is cancelled and
    /// the block proved again.
    async fn await_end(
        &self,
        job_id: &str,
        timeout: Duration,
        resumed: bool,
        detachable: bool,
        stop: &mut watch::Receiver<Stop>,
        rec: &dyn Recorder,
    ) -> Result<(JobEnd, Option<CancelledBy>), Outcome> {
        let slack = DEADLINE_SLACK.min(timeout / 4);
        let now = tokio::time::Instant::now();
        let mut deadline = now.checked_add(timeout + slack).unwrap_or(now + FAR);
        let mut cancelled_by: Option<CancelledBy> = None;
        // A cancel is tried when it is due (the deadline, the operator, a retry's time), not on
        // every wake-up; once one succeeded, the job's end is waited for a bounded time.
        let mut cancel_due = false;
        let mut cancelled = false;
        let mut stop_open = true;
        // The phase last heard, and since when: a re-attached job that stays waiting for input
        // was left half-sent by the previous daemon (an old event replayed is not enough).
        let latest: std::sync::Mutex<Option<(Phase, Instant)>> = std::sync::Mutex::new(None);
        let on_phase = |p: Phase| {
            let mut l = latest.lock().unwrap_or_else(|e| e.into_inner());
            if l.is_none_or(|(q, _)| q != p) {
                *l = Some((p, Instant::now()));
            }
            rec.phase(p);
        };
        let following = follow(&self.client, job_id, on_phase, |t| rec.trouble(t));
        tokio::pin!(following);
        let mut look = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Followed::End(end) = &mut following => return Ok((end, cancelled_by)),
                _ = look.tick(), if resumed => {
                    let waiting = *latest.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((Phase::WaitingForInput, since)) = waiting
                        && since.elapsed() >= STARVED_AFTER
                    {
                        let _ = self.client.cancel(job_id).await;
                        return Err(Outcome::Lost(format!(
                            "job {job_id} was left waiting for the input a previous run did not finish sending"
                        )));
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if cancelled {
                        // Cancelled, and still no end heard: it is over for this daemon.
                        tracing::warn!(job_id, "no end heard after the cancel; the job is taken as cancelled");
                        return Ok((JobEnd::Cancelled, cancelled_by));
                    }
                    if cancelled_by.is_none() {
                        tracing::warn!(job_id, timeout_s = timeout.as_secs(), "the job ran past its timeout; cancelling it");
                        cancelled_by = Some(CancelledBy::Timeout);
                    }
                    cancel_due = true;
                }
                changed = stop.changed(), if stop_open => {
                    if changed.is_err() {
                        stop_open = false;
                        continue;
                    }
                    let request = *stop.borrow();
                    match request {
                        Stop::Shutdown if detachable && !self.settings.cancel_on_shutdown => {
                            tracing::info!(job_id, "shutdown: the job keeps running on the coordinator and is re-attached at the next start");
                            return Err(Outcome::Detached);
                        }
                        Stop::Shutdown => {
                            return match tokio::time::timeout(SHUTDOWN_CANCEL, self.client.cancel(job_id)).await {
                                Ok(Ok(_)) => {
                                    tracing::info!(job_id, "shutdown: the job was cancelled");
                                    Err(Outcome::Stopped)
                                }
                                // Still running somewhere: keep its id, so the next start follows it.
                                _ if detachable => {
                                    tracing::warn!(job_id, "shutdown: the job could not be cancelled; it is re-attached at the next start");
                                    Err(Outcome::Detached)
                                }
                                _ => Err(Outcome::Stopped),
                            };
                        }
                        Stop::Operator if !cancelled => {
                            tracing::warn!(job_id, "the operator cancels the job");
                            cancelled_by = Some(CancelledBy::Operator);
                            cancel_due = true;
                        }
                        _ => {}
                    }
                }
            }
            if std::mem::take(&mut cancel_due) {
                match self.client.cancel(job_id).await {
                    // Its end (cancelled, or completed if it won the race) comes through the follow.
                    Ok(_) => {
                        cancelled = true;
                        deadline = tokio::time::Instant::now() + AFTER_CANCEL;
                    }
                    Err(CoordError::JobUnknown(_)) => return Ok((JobEnd::Unknown, cancelled_by)),
                    Err(e) => {
                        tracing::warn!(job_id, error = %e, "cannot cancel the job yet");
                        rec.trouble(Some(&e));
                        deadline = tokio::time::Instant::now() + CANCEL_RETRY;
                    }
                }
            }
        }
    }

    /// A job's end as the ledger will hold it: the proof written from `proof.data`, judged.
    fn ended(
        &self,
        req: &RunRequest,
        job_id: &str,
        kind: Work,
        end: JobEnd,
        cancelled_by: Option<CancelledBy>,
        elapsed: Duration,
    ) -> Outcome {
        if end == JobEnd::Unknown {
            return Outcome::Lost(format!("the coordinator no longer knows job {job_id}"));
        }
        let mut proof = None;
        if let JobEnd::Proved { data, .. } = &end
            && kind == Work::Prove
        {
            let path = req.block_dir.join("proof.bin");
            match write_whole(&path, data) {
                Ok(bytes) => proof = Some((path, bytes)),
                Err(e) => tracing::error!(block = req.block, error = %e, "cannot write the coordinator's proof"),
            }
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
            JobEnd::Proved { .. } | JobEnd::Done { .. } => (Some(JOB_COMPLETED.to_string()), JOB_COMPLETED),
            JobEnd::Cancelled => (None, "job cancelled"),
            _ => (None, "job failed"),
        };
        let last_lines = vec![format!("coordinator job {job_id}: {said}")];
        Outcome::Ended(Ended { verdict, exit, proof, last_lines })
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
    fn job(&self, job_id: &str) -> Result<(), String> {
        self.inner.job(job_id)
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
fn job_metadata(req: &RunRequest) -> HashMap<String, String> {
    HashMap::from([
        ("block".to_string(), req.block.to_string()),
        ("attempt".to_string(), req.attempt.to_string()),
        ("client".to_string(), format!("ethproofs-daemon/{}", env!("CARGO_PKG_VERSION"))),
    ])
}

/// The input file, which the daemon wrote itself; still capped like anything held in memory.
fn read_input(path: &std::path::Path) -> Result<Vec<u8>, String> {
    const MAX_INPUT: u64 = 1 << 30;
    let len = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?.len();
    if len > MAX_INPUT {
        return Err(format!("{} is {len} bytes, more than the 1 GiB a job's input may be", path.display()));
    }
    std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}
