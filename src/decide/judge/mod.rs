//! Judging a prover run: the facts of its ending in, a verdict out. A cargo-zisk run is judged
//! by [`judge`], a coordinator job by [`judge_job`].

use std::time::Duration;

use crate::outside::coordinator::{Failure, JobEnd};
use crate::outside::process::Ending;
use crate::store::Stage;

/// The exit a completed coordinator job is recorded with.
const JOB_COMPLETED: &str = "job completed";
/// The exit recorded for a run whose end was never recorded, but whose proof is on disk.
const FOUND_AFTER_RESTART: &str = "proof found after a restart";

/// How a run ended, as the ledger records it the moment it is known (before its verdict), so a
/// restart in between can judge it again ([`rejudge`]). Typed everywhere but in the ledger's
/// text, which [`Exit::record`] writes and [`Exit::from_record`] reads back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// A local process ended (cargo-zisk, or native re-execution).
    Process(Ending),
    /// A coordinator job completed (a failed job is recorded failed at once, with its reason).
    JobCompleted,
    /// The daemon died between the run's end and its record, and the run's proof was found on
    /// disk at the next start (written after the run started, by no process still alive): the
    /// proof is judged like any other, never proved again.
    FoundAfterRestart,
}

impl Exit {
    /// `code 0`, `signal 9`, `timeout`, `cancelled` or `job completed`.
    pub fn record(self) -> String {
        match self {
            Exit::Process(ending) => ending.record(),
            Exit::JobCompleted => JOB_COMPLETED.to_string(),
            Exit::FoundAfterRestart => FOUND_AFTER_RESTART.to_string(),
        }
    }

    /// The exit a ledger row's text names; `None` for text this build never writes.
    pub fn from_record(text: &str) -> Option<Exit> {
        match text {
            JOB_COMPLETED => return Some(Exit::JobCompleted),
            FOUND_AFTER_RESTART => return Some(Exit::FoundAfterRestart),
            _ => {}
        }
        Ending::from_record(text).map(Exit::Process)
    }
}

/// What the daemon was asked to do with the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Prove,
    Execute,
    Native,
}

/// The proof file as found after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundProof {
    pub bytes: u64,
    /// Modified at or after this run started: a proof left by an earlier run does not count.
    pub written_by_this_run: bool,
}

/// Why a run that should have written a proof has none to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoProof {
    /// The run ended in a way that is judged before the proof is (a failure, a kill).
    #[error("not looked for")]
    NotLookedFor,
    /// The prover's outputs name no proof, or one that cannot be read.
    #[error(transparent)]
    Unnamed(#[from] crate::block::zisk::ZiskError),
    /// The file the outputs name cannot be looked at.
    #[error("{path}: {reason}")]
    Unreadable { path: String, reason: String },
}

/// Everything known about a run when it ended.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub action: Action,
    pub ending: Ending,
    pub elapsed: Duration,
    /// With `Prove`: where the version's outputs say the proof is, or why they say nothing.
    pub proof: Result<FoundProof, NoProof>,
    /// The prover's own proving time, when its outputs give one.
    pub reported_ms: Option<u64>,
    pub cycles: Option<u64>,
    /// The run's first output line: a native re-execution's failure says why there.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Proved {
        proving_ms: u64,
        cycles: Option<u64>,
    },
    Executed {
        ms: u64,
        cycles: Option<u64>,
    },
    Failed {
        stage: Stage,
        reason: String,
    },
    /// Stopped by the daemon's own shutdown: not the block's fault, proved again later.
    Stopped,
    /// The block left the canonical chain (found before the run, or before its proof was
    /// accepted): kept as an orphan, the canonical block is built instead. Not judged from a
    /// run: the Prover's canonical check says so.
    Orphaned(String),
}

pub fn judge(f: &RunFacts) -> Verdict {
    let wall_ms = u64::try_from(f.elapsed.as_millis()).unwrap_or(u64::MAX).max(1);
    let secs = f.elapsed.as_secs_f64();
    match f.ending {
        Ending::Cancelled => return Verdict::Stopped,
        Ending::Code(0) => {}
        ending if f.action == Action::Native => {
            let reason = f.detail.clone().unwrap_or_else(|| format!("native re-execution {}", ending.describe()));
            return Verdict::Failed { stage: Stage::NativeValidation, reason };
        }
        ending => {
            let stage = match ending {
                Ending::TimedOut => Stage::Timeout,
                Ending::Signal(_) => Stage::Crash,
                _ => Stage::ProverExit,
            };
            return Verdict::Failed { stage, reason: format!("cargo-zisk {} after {secs:.1}s", ending.describe()) };
        }
    }
    match f.action {
        Action::Execute | Action::Native => Verdict::Executed { ms: wall_ms, cycles: f.cycles },
        Action::Prove => match &f.proof {
            Err(why) => Verdict::Failed { stage: Stage::ProofOutput, reason: why.to_string() },
            Ok(p) if !p.written_by_this_run => Verdict::Failed {
                stage: Stage::ProofOutput,
                reason: "exited 0 but did not write a proof (the file there is older than this run)".into(),
            },
            Ok(p) if p.bytes == 0 => {
                Verdict::Failed { stage: Stage::ProofOutput, reason: "the proof file is empty".into() }
            }
            // The prover's own figure, unless it is longer than the process it ran in lived (a
            // garbage or absurd line): then the time the daemon measured is the true one.
            Ok(_) => Verdict::Proved {
                proving_ms: f.reported_ms.filter(|ms| *ms > 0 && *ms <= wall_ms).unwrap_or(wall_ms),
                cycles: f.cycles.filter(|c| *c > 0),
            },
        },
    }
}

/// Judges a run whose exit was recorded but whose verdict was not (the daemon died in
/// between), from the ledger alone. `proof_intact`: the proof is still there, of the recorded size.
pub fn rejudge(
    action: Action,
    exit: Result<Exit, &str>,
    proof_intact: bool,
    proving_ms: Option<u64>,
    cycles: Option<u64>,
) -> Verdict {
    let ms = proving_ms.filter(|m| *m > 0).unwrap_or(1);
    let ending = match exit {
        Ok(Exit::JobCompleted | Exit::FoundAfterRestart) => Some(Ending::Code(0)),
        Ok(Exit::Process(ending)) => Some(ending),
        Err(_) => None,
    };
    match (ending, action) {
        (Some(Ending::Code(0)), Action::Prove) if proof_intact => Verdict::Proved { proving_ms: ms, cycles },
        (Some(Ending::Code(0)), Action::Prove) => Verdict::Failed {
            stage: Stage::ProofOutput,
            reason: "the proof recorded when the prover exited is missing or has another size".into(),
        },
        (Some(Ending::Code(0)), Action::Execute | Action::Native) => Verdict::Executed { ms, cycles },
        // Only an operator's cancel records a cancelled exit (a shutdown records none): the
        // block ends cancelled, as it would have had the daemon not died between the writes.
        (Some(Ending::Cancelled), _) => {
            Verdict::Failed { stage: Stage::Cancelled, reason: "cancelled by the operator".into() }
        }
        (Some(ending), _) => {
            Verdict::Failed { stage: Stage::ProverExit, reason: format!("cargo-zisk {}", ending.describe()) }
        }
        (None, _) => Verdict::Failed {
            stage: Stage::ProverExit,
            reason: format!("unrecognised exit record {:?}", exit.err().unwrap_or_default()),
        },
    }
}

/// Why the daemon itself cancelled a coordinator job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelledBy {
    /// It ran past `PROVER_TIMEOUT_SECONDS`.
    Timeout,
    Operator,
}

/// Everything known about a coordinator job when it ended.
#[derive(Debug, Clone)]
pub struct JobFacts<'a> {
    pub action: Action,
    pub end: &'a JobEnd,
    /// The size of the proof file written from the job's `proof.data` (with `Prove`).
    pub proof_bytes: Option<u64>,
    pub cancelled_by: Option<CancelledBy>,
    /// From submission to the end, for a job that gives no time of its own.
    pub elapsed: Duration,
    pub timeout: Duration,
}

/// Judges a coordinator job: its own result and failure kinds, mapped to a verdict whose stage
/// says where it went wrong.
pub fn judge_job(f: &JobFacts<'_>) -> Verdict {
    let wall_ms = u64::try_from(f.elapsed.as_millis()).unwrap_or(u64::MAX).max(1);
    let failed = |stage: Stage, reason: String| Verdict::Failed { stage, reason };
    let cancelled = || match f.cancelled_by {
        Some(CancelledBy::Timeout) => failed(
            Stage::Timeout,
            format!("the job ran past PROVER_TIMEOUT_SECONDS = {} and was cancelled", f.timeout.as_secs()),
        ),
        Some(CancelledBy::Operator) => failed(Stage::Cancelled, "cancelled by the operator".into()),
        None => failed(Stage::Cancelled, "the job was cancelled on the coordinator (not by this daemon)".into()),
    };
    match (f.end, f.action) {
        (JobEnd::Proved { proving_ms, steps, .. }, Action::Prove) => match f.proof_bytes {
            Some(bytes) if bytes > 0 => {
                Verdict::Proved { proving_ms: proving_ms.filter(|ms| *ms > 0).unwrap_or(wall_ms), cycles: *steps }
            }
            Some(_) => failed(Stage::ProofOutput, "the coordinator completed the job with an empty proof".into()),
            None => failed(Stage::ProofOutput, "the coordinator's proof could not be written to disk".into()),
        },
        (JobEnd::Done { steps, ms, .. }, Action::Execute | Action::Native) => {
            Verdict::Executed { ms: ms.filter(|m| *m > 0).unwrap_or(wall_ms), cycles: *steps }
        }
        (JobEnd::Proved { .. } | JobEnd::Done { .. } | JobEnd::SetUp { .. }, _) => {
            failed(Stage::CoordinatorAnswer, "the coordinator completed the job with another kind of result".into())
        }
        (JobEnd::Failed(failure), _) => match failure {
            Failure::Timeout { phase, limit_secs } => failed(
                Stage::Timeout,
                format!(
                    "the coordinator's time limit{} ran out{}",
                    limit_secs.map_or(String::new(), |s| format!(" of {s}s")),
                    phase.map_or(String::new(), |p| format!(" in the {p} phase"))
                ),
            ),
            Failure::Input(reason) => failed(Stage::Input, format!("the coordinator refused the input: {reason}")),
            Failure::Execution(reason) => failed(Stage::Execution, format!("the guest failed: {reason}")),
            Failure::Internal { trace_id } => {
                failed(Stage::Coordinator, format!("internal coordinator error (trace id {trace_id})"))
            }
            Failure::Cancelled => cancelled(),
            Failure::Unspecified => failed(Stage::Coordinator, "the job failed without saying why".into()),
            Failure::NoResult => {
                failed(Stage::CoordinatorAnswer, "the coordinator said the job completed but sent no result".into())
            }
            Failure::Foreign(what) => {
                failed(Stage::CoordinatorAnswer, format!("the coordinator answered for another job or program: {what}"))
            }
        },
        (JobEnd::Cancelled, _) => cancelled(),
        (JobEnd::Unknown, _) => failed(Stage::Coordinator, "the coordinator no longer knows the job".into()),
    }
}

#[cfg(test)]
mod tests;
