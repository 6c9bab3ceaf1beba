//! What a running attempt has told so far, for the Prover's status: the coordinator job, its
//! phase and the phases it went through, and the coordinator's passing trouble. Its
//! [`Recorder`] implementation writes what must survive a crash (the process, the job id) to
//! the ledger first.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::backend::{NotRecorded, Recorder};
use crate::outside::coordinator::{CoordError, Phase};
use crate::store::Ledger;
use crate::store::{JobInDoubt, RecordedJob};

/// At most this many phases are kept per run.
const MAX_PHASES: usize = 32;

/// The coordinator's trouble, as last heard.
#[derive(Debug, Clone)]
pub struct Trouble {
    pub error: String,
    pub since: Instant,
}

#[derive(Debug, Default, Clone)]
pub struct Progress {
    pub job_id: Option<String>,
    /// The phase the job is in, since when.
    pub phase: Option<(Phase, Instant)>,
    /// Phases already left, with their durations, in order.
    pub done: Vec<(Phase, Duration)>,
    pub trouble: Option<Trouble>,
    /// The guest's steps on the input, when `INPUT_CHECK=emulate` ran it.
    pub guest_steps: Option<u64>,
}

/// One run's progress, shared by the run (which writes it) and the Prover (which reads it).
#[derive(Default)]
pub struct RunProgress {
    state: Mutex<Progress>,
}

impl RunProgress {
    /// A run re-attaching to a recorded job knows its job from the start.
    pub fn new(job_id: Option<String>) -> RunProgress {
        RunProgress { state: Mutex::new(Progress { job_id, ..Progress::default() }) }
    }

    /// The run is over: the phase it was in ends now (and is measured).
    pub fn finish(&self) {
        let mut s = self.lock();
        if let Some((left, since)) = s.phase.take() {
            let took = since.elapsed();
            crate::runtime::telemetry::job_phase(left.as_str(), took);
            s.done.push((left, took));
        }
    }

    pub fn snapshot(&self) -> Progress {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The [`Recorder`] of one attempt: the ledger first, then the shared progress.
pub struct Recording<'a> {
    pub block: u64,
    pub attempt: u32,
    pub ledger: &'a Ledger,
    pub progress: &'a RunProgress,
}

impl Recording<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Progress> {
        self.progress.lock()
    }
}

impl Recorder for Recording<'_> {
    fn process(&self, pgid: u32) {
        // Recorded before anything else happens, so a later start can end it (and only it).
        if let Some(record) = crate::outside::instance::identify(pgid)
            && let Err(e) = self.ledger.prover_process(self.block, self.attempt, &record)
        {
            tracing::error!(error = %e, "cannot record the prover's process");
        }
    }

    fn job(&self, job_id: &str) -> Result<RecordedJob, NotRecorded> {
        match self.ledger.job_submitted(self.block, self.attempt, job_id) {
            Ok(Some(job)) => {
                tracing::Span::current().record("job", job_id);
                self.lock().job_id = Some(job_id.to_string());
                Ok(job)
            }
            Ok(None) => {
                Err(NotRecorded::Refused(format!("block {} is no longer in attempt {}", self.block, self.attempt)))
            }
            Err(e) => Err(NotRecorded::from_store(&e)),
        }
    }

    fn in_doubt(&self, doubt: &JobInDoubt) -> Result<(), NotRecorded> {
        match self.ledger.job_in_doubt(self.block, self.attempt, doubt) {
            Ok(true) => Ok(()),
            Ok(false) => {
                Err(NotRecorded::Refused(format!("block {} is no longer in attempt {}", self.block, self.attempt)))
            }
            Err(e) => Err(NotRecorded::from_store(&e)),
        }
    }

    fn phase(&self, phase: Phase) {
        let mut s = self.lock();
        if s.phase.is_some_and(|(p, _)| p == phase) {
            return;
        }
        if let Some((left, since)) = s.phase.take() {
            let took = since.elapsed();
            crate::runtime::telemetry::job_phase(left.as_str(), took);
            // A coordinator that flips phases endlessly does not grow the status without bound.
            if s.done.len() < MAX_PHASES {
                s.done.push((left, took));
            }
        }
        tracing::info!(phase = phase.as_str(), "coordinator job phase");
        s.phase = Some((phase, Instant::now()));
    }

    fn checked(&self, steps: Option<u64>) {
        tracing::info!(steps = ?steps, "the guest accepts the input");
        if let Err(e) = self.ledger.input_checked(self.block, self.attempt, steps) {
            tracing::error!(error = %e, "cannot record the input check");
        }
        self.lock().guest_steps = steps;
    }

    fn trouble(&self, error: Option<&CoordError>) {
        let mut s = self.lock();
        match error {
            Some(e) => {
                crate::runtime::telemetry::coordinator_error(e.label());
                let error = e.to_string();
                match &mut s.trouble {
                    Some(t) => t.error = error,
                    None => s.trouble = Some(Trouble { error, since: Instant::now() }),
                }
            }
            None => {
                if let Some(t) = s.trouble.take() {
                    tracing::info!(after_s = t.since.elapsed().as_secs(), "the coordinator answers again");
                }
            }
        }
    }
}
