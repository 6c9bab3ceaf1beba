//! A job's life on the coordinator: submitting it (waiting out the cluster's trouble, the id
//! recorded before anything else happens to it, the input pushed past the inline part) and
//! following it to its end (the deadline, the operator's cancel, a shutdown, a re-attached job
//! left waiting for input).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::{Remote, job_metadata};
use crate::backend::{BackendOutcome, Ended, NotRecorded, Recorder, RunRequest, Stop, StopSignal};
use crate::decide::judge::CancelledBy;
use crate::outside::coordinator::{CoordError, Failure, Followed, JobEnd, Phase, Submitted, Work, follow};
use crate::runtime::backoff::Backoff;
use crate::store::RecordedJob;
use crate::store::Stage;

/// The coordinator's own deadline is the job's; ours comes a little later (up to this, and at
/// most a quarter of the timeout), so that its failure (which names the phase) is the one
/// normally seen.
const DEADLINE_SLACK: Duration = Duration::from_secs(30);
const SUBMIT_BACKOFF: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
/// How often a job waiting behind our own other jobs asks for a worker again (steady: the wait is
/// for our own jobs, not for a coordinator in trouble).
const BACKPRESSURE_RETRY: Backoff = Backoff::steady(Duration::from_secs(1));
/// A cancel that cannot reach the coordinator is tried again this often.
const CANCEL_RETRY: Backoff = Backoff::steady(Duration::from_secs(15));
/// On shutdown with `CANCEL_ON_SHUTDOWN`, how long the cancel may take.
const SHUTDOWN_CANCEL: Duration = Duration::from_secs(10);
/// After a successful cancel, how long the job's end is waited for.
const AFTER_CANCEL: Duration = Duration::from_secs(300);
/// A re-attached job waiting for input this long was abandoned mid-push.
const STARVED_AFTER: Duration = Duration::from_secs(10);
/// Past a lost job's deadline, how long the coordinator is given to have ended it.
const IN_DOUBT_GRACE: Duration = Duration::from_secs(5);
/// Sending a job's input may fail this often before the block fails.
const MAX_PUSH_FAILURES: u32 = 5;
/// "No capacity" this long makes the daemon set the program up again.
const SETUP_AGAIN_AFTER: Duration = Duration::from_secs(600);
/// "Never", for deadlines that do not fit in the clock.
const FAR: Duration = Duration::from_secs(365 * 24 * 3600);

impl Remote {
    /// Submits a job, waiting out the cluster's trouble. A prove job's id is recorded before
    /// its input is pushed or anything else happens to it. A prove job whose answer was lost
    /// (it may be running under an id nobody heard) is remembered in the ledger and waited out
    /// to its deadline before the block is submitted again: never two jobs for one block.
    pub(super) async fn submit(
        &self,
        req: &RunRequest,
        input: &[u8],
        kind: Work,
        stop: &StopSignal,
        rec: &dyn Recorder,
    ) -> Result<RecordedJob, BackendOutcome> {
        let mut failures = 0u32;
        let mut metadata = true;
        let mut push_failures = 0u32;
        let main = kind == self.main_kind();
        let mut in_doubt = req.in_doubt.clone().filter(|_| main);
        // "No capacity" for long while the ledger says the program is set up: the workers may
        // have lost the set-up (a "set-up not done" reads as no capacity), so it is done again.
        let mut no_capacity_since: Option<Instant> = None;
        let mut refused = false;
        loop {
            match stop.now() {
                Stop::Shutdown => return Err(BackendOutcome::Stopped),
                Stop::Operator => return Err(cancelled()),
                Stop::No => {}
            }
            if let Some(doubt) = &in_doubt {
                let left = Duration::from_millis(u64::try_from(doubt.until_ms - crate::store::now_ms()).unwrap_or(0));
                if !left.is_zero() {
                    tracing::warn!(
                        submission = %doubt.submission,
                        wait_s = (left + IN_DOUBT_GRACE).as_secs(),
                        "a job whose answer was lost may still run; the block is submitted again once it has ended"
                    );
                    tokio::select! {
                        _ = tokio::time::sleep(left + IN_DOUBT_GRACE) => {}
                        _ = stop.requested() => continue,
                    }
                }
                in_doubt = None;
            }
            // Registration and set-up (minutes, once per ELF) give way to a stop; the submission
            // itself does not, so that a job the coordinator accepts is always recorded.
            let ready = tokio::select! {
                ready = self.ready_program(rec) => ready,
                request = stop.requested() => {
                    return Err(match request {
                        Stop::Operator => cancelled(),
                        _ => BackendOutcome::Stopped,
                    });
                }
            };
            let limit = if main { self.settings.timeout } else { self.settings.check_timeout };
            let deadline = SystemTime::now() + limit;
            let submission = submission_id(req);
            let attempt = async {
                let hash_id = ready?;
                let meta = if metadata { job_metadata(req, &submission) } else { HashMap::new() };
                self.client.submit_work(kind, &hash_id, input, deadline, meta).await
            };
            let error = match attempt.await {
                Ok(Submitted { job_id, pending_input }) => {
                    rec.trouble(None);
                    let job = self.record_job(req, kind, &job_id, stop, rec).await?;
                    tracing::info!(job_id, %submission, kind = ?kind, "coordinator job submitted");
                    if pending_input == 0 {
                        return Ok(job);
                    }
                    match self.client.push_rest(job.id(), input).await {
                        Ok(()) => return Ok(job),
                        Err(e) => {
                            // A job without its whole input is no use: it goes, and a new one is
                            // submitted, whatever the error was (a few times).
                            let _ = self.client.cancel(&job_id).await;
                            push_failures += 1;
                            if push_failures >= MAX_PUSH_FAILURES {
                                let reason = format!("the input could not be sent {push_failures} times: {e}");
                                return Err(BackendOutcome::Ended(Ended::failed(Stage::Coordinator, reason)));
                            }
                            tracing::warn!(job_id, error = %e, "the input could not be sent; submitting again");
                            CoordError::Failing { code: "push".into(), message: e.to_string() }
                        }
                    }
                }
                Err(e) => e,
            };
            if main && error.maybe_accepted() {
                let until_ms = deadline
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(i64::MAX, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
                let doubt = crate::store::JobInDoubt { submission, until_ms };
                tracing::error!(
                    submission = %doubt.submission,
                    error = %error,
                    "the job's answer was lost: the coordinator may run it under an id never heard (find it by its metadata)"
                );
                self.until_recorded(stop, || rec.in_doubt(&doubt)).await.map_err(|e| {
                    tracing::error!(error = %e, "cannot record the submission in doubt");
                    BackendOutcome::Stopped
                })?;
                in_doubt = Some(doubt);
            }
            // Our own other jobs hold the workers: this one waits its turn, and a worker that
            // frees is taken within a second or two (the cluster is not in trouble). A first
            // refusal is asked again before it counts as trouble: a job of ours accepted the
            // same moment may not be counted yet.
            let ours_running = self.jobs_running.load(Ordering::SeqCst) > 0;
            if matches!(error, CoordError::NoCapacity(_)) && (ours_running || !std::mem::replace(&mut refused, true)) {
                tracing::debug!("every worker is busy; asking again for one");
                if ours_running {
                    rec.trouble(None);
                    no_capacity_since = None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(BACKPRESSURE_RETRY.after(1)) => {}
                    _ = stop.requested() => {}
                }
                continue;
            }
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
                e if e.is_transient() => {}
                e => {
                    let stage = if kind == Work::Execute && self.main_kind() == Work::Prove {
                        Stage::InputCheck
                    } else {
                        Stage::Coordinator
                    };
                    return Err(BackendOutcome::Ended(Ended::failed(stage, e.to_string())));
                }
            }
            failures = failures.saturating_add(1);
            let backoff = SUBMIT_BACKOFF.after(failures);
            tracing::warn!(error = %error, retry_in_s = backoff.as_secs(), "cannot submit the job yet");
            rec.trouble(Some(&error));
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                // The loop's top acts on the stop.
                _ = stop.requested() => {}
            }
        }
    }

    /// Puts an accepted job in the ledger before anything else happens to it: the prove job on
    /// its block, an input check among the coordinator's jobs. A ledger that cannot be written
    /// for now is waited for (the job runs meanwhile); a job that cannot be recorded at all, or
    /// before a stop, is cancelled: nobody could follow it.
    async fn record_job(
        &self,
        req: &RunRequest,
        kind: Work,
        job_id: &str,
        stop: &StopSignal,
        rec: &dyn Recorder,
    ) -> Result<RecordedJob, BackendOutcome> {
        let recorded = self
            .until_recorded(stop, || {
                if kind == self.main_kind() {
                    rec.job(job_id)
                } else {
                    let hash_id = self.program().map(|p| p.hash_id).unwrap_or_default();
                    self.ledger
                        .coordinator_job("input_check", &hash_id, Some((req.block, req.attempt)), job_id)
                        .map_err(|e| NotRecorded::from_store(&e))
                }
            })
            .await;
        match recorded {
            Ok(job) => Ok(job),
            Err(e) => {
                tracing::error!(job_id, error = %e, "cannot record the job; cancelling it");
                let _ = tokio::time::timeout(SHUTDOWN_CANCEL, self.client.cancel(job_id)).await;
                Err(if stop.now() == Stop::Operator { cancelled() } else { BackendOutcome::Stopped })
            }
        }
    }

    /// Repeats a record the ledger cannot take for now until it goes through, is refused, or a
    /// stop comes (`Ledger::until_written`).
    async fn until_recorded<T>(
        &self,
        stop: &StopSignal,
        write: impl Fn() -> Result<T, NotRecorded>,
    ) -> Result<T, NotRecorded> {
        let for_now = |e: &NotRecorded| matches!(e, NotRecorded::ForNow(_));
        self.ledger.until_written(|| stop.now() != Stop::No, for_now, write).await
    }

    /// Follows the job to its end, cancelling it past the deadline or when the operator asks.
    /// A shutdown leaves a `detachable` job running (unless `CANCEL_ON_SHUTDOWN`). A `resumed` job
    /// found waiting for input was left half-sent by the previous daemon: it is cancelled and
    /// the block proved again.
    pub(super) async fn await_end(
        &self,
        job: &RecordedJob,
        timeout: Duration,
        resumed: bool,
        detachable: bool,
        stop: &StopSignal,
        rec: &dyn Recorder,
    ) -> Result<(JobEnd, Option<CancelledBy>), BackendOutcome> {
        let slack = DEADLINE_SLACK.min(timeout / 4);
        let now = tokio::time::Instant::now();
        let mut deadline = now.checked_add(timeout + slack).unwrap_or(now + FAR);
        let mut cancelled_by: Option<CancelledBy> = None;
        // A cancel is tried when it is due (the deadline, the operator, a retry's time), not on
        // every wake-up; once one succeeded, the job's end is waited for a bounded time.
        let mut cancel_due = false;
        let mut cancelled = false;
        // The stop last acted on: an operator's cancel is acted on once, a shutdown after it still is.
        let mut heard = Stop::No;
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
        // A proof must be of the program this daemon registered.
        let hash_id = self.program().map(|p| p.hash_id);
        let job_id = job.id();
        let following = follow(&self.client, job, hash_id.as_deref(), on_phase, |t| rec.trouble(t));
        tokio::pin!(following);
        let mut look = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                Followed::End(end) = &mut following => {
                    if let JobEnd::Failed(Failure::Foreign(what)) = &end {
                        // The block fails on the coordinator's mix-up; its own job is not left
                        // running on the cluster (best effort).
                        tracing::warn!(job_id, what, "the coordinator answered for another job; cancelling this one");
                        let _ = tokio::time::timeout(SHUTDOWN_CANCEL, self.client.cancel(job_id)).await;
                    }
                    return Ok((end, cancelled_by));
                }
                _ = look.tick(), if resumed => {
                    let waiting = *latest.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((Phase::WaitingForInput, since)) = waiting
                        && since.elapsed() >= STARVED_AFTER
                    {
                        let _ = self.client.cancel(job_id).await;
                        return Err(BackendOutcome::Lost(format!(
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
                request = stop.beyond(heard) => {
                    heard = request;
                    match request {
                        Stop::Shutdown if detachable && !self.settings.cancel_on_shutdown => {
                            tracing::info!(job_id, "shutdown: the job keeps running on the coordinator and is re-attached at the next start");
                            return Err(BackendOutcome::Detached);
                        }
                        Stop::Shutdown => {
                            return match tokio::time::timeout(SHUTDOWN_CANCEL, self.client.cancel(job_id)).await {
                                Ok(Ok(_)) => {
                                    tracing::info!(job_id, "shutdown: the job was cancelled");
                                    Err(BackendOutcome::Stopped)
                                }
                                // Still running somewhere: keep its id, so the next start follows it.
                                _ if detachable => {
                                    tracing::warn!(job_id, "shutdown: the job could not be cancelled; it is re-attached at the next start");
                                    Err(BackendOutcome::Detached)
                                }
                                _ => Err(BackendOutcome::Stopped),
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
                        deadline = tokio::time::Instant::now() + CANCEL_RETRY.after(1);
                    }
                }
            }
        }
    }
}

fn cancelled() -> BackendOutcome {
    BackendOutcome::Ended(Ended::failed(Stage::Cancelled, "cancelled by the operator".into()))
}

/// A fresh identity for one `JobRequest`, sent as its `submission` metadata: how a job whose
/// answer was lost is told apart in the coordinator's logs.
fn submission_id(req: &RunRequest) -> String {
    static SENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = blake3::Hasher::new();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    h.update(&now.as_nanos().to_le_bytes());
    h.update(&std::process::id().to_le_bytes());
    h.update(&SENT.fetch_add(1, std::sync::atomic::Ordering::Relaxed).to_le_bytes());
    h.update(&req.block.to_le_bytes());
    h.finalize().to_hex()[..32].to_string()
}
