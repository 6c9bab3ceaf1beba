//! The ledger's rows as the rest of the daemon reads them: a block's record, an EthProofs call,
//! an orphan, a skipped range, and the small types they are made of. Typed here, checked on
//! the way out of SQL (`reads`): an unknown state text is an error, never a default.

use std::path::PathBuf;

use super::{BlockState, RecordedJob, ReportState};

/// Who put a block in the ledger. Only the schedule's own targets move where scheduling resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    #[default]
    Schedule,
    Operator,
}

impl Origin {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Origin::Schedule => "schedule",
            Origin::Operator => "operator",
        }
    }
}

/// What kind of EthProofs call a report row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Queued,
    Proving,
    Proved,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Queued => "queued",
            ReportKind::Proving => "proving",
            ReportKind::Proved => "proved",
        }
    }

    pub(super) fn parse(s: &str) -> Option<ReportKind> {
        [ReportKind::Queued, ReportKind::Proving, ReportKind::Proved].into_iter().find(|k| k.as_str() == s)
    }
}

/// The recorded process of a running proof, enough to recognise it (and only it) later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    pub pgid: u32,
    /// Start time of the group leader in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when it started: ticks mean nothing across a reboot.
    pub boot_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct BlockRecord {
    pub number: u64,
    pub state: BlockState,
    pub origin: Origin,
    pub stage: Option<String>,
    pub reason: Option<String>,
    /// Prover runs started for this block.
    pub attempts: u32,
    /// Runs that ended because the daemon died under them (a graceful stop does not count).
    pub interruptions: u32,
    pub input_path: Option<PathBuf>,
    pub proof_path: Option<PathBuf>,
    /// SHA-256 of the proof, recorded with its acceptance, after the proof was fsynced.
    pub proof_sha256: Option<String>,
    /// The proof's size when the prover exited: a restart judges the run again against it.
    pub proof_bytes: Option<u64>,
    /// How the last prover run ended, as recorded the moment it ended.
    pub exit: Option<String>,
    pub run_started_at_ms: Option<i64>,
    pub process: Option<ProcessRecord>,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub block_hash: Option<String>,
    /// When the block became a target (the head was first seen at or past it).
    pub seen_at_ms: Option<i64>,
    /// The block's own timestamp (seconds), for block-to-proof latency.
    pub block_timestamp: Option<u64>,
    /// The coordinator's job for the current attempt, recorded before anything else happens to
    /// it: a restart re-attaches to it instead of proving again.
    pub job_id: Option<RecordedJob>,
    /// The operator asked to cancel the running attempt.
    pub cancel_requested: bool,
    /// The guest's steps when it checked the input (`INPUT_CHECK=emulate`).
    pub guest_steps: Option<u64>,
    /// What the block's proof must commit to (`commitment::BlockOutputs::to_hex`), recorded
    /// with its input; `None` for an input built by a daemon before schema 8.
    pub expected_output: Option<String>,
    /// What its accepted proof was checked for (`verify::ProofCheck::fingerprint`).
    pub proof_checked: Option<String>,
    /// A prove job submitted for the block whose answer was lost: the coordinator may be
    /// running it, under an id nobody knows. The block is not submitted again before it ends.
    pub job_in_doubt: Option<JobInDoubt>,
}

/// A submission the coordinator may have accepted without the daemon hearing its job id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInDoubt {
    /// The identity sent in the job's metadata (`submission`): what the operator finds it by
    /// in the coordinator's logs.
    pub submission: String,
    /// The deadline sent with it: the coordinator has ended any such job by then.
    pub until_ms: i64,
}

/// One EthProofs call in the outbox.
#[derive(Debug, Clone)]
pub struct ReportRow {
    pub id: i64,
    pub block: u64,
    pub kind: ReportKind,
    pub state: ReportState,
    pub created_at_ms: i64,
    pub attempts: u32,
    /// Not to be sent before this time (backoff that survives a restart).
    pub next_attempt_at_ms: i64,
    /// A send was started and its answer never recorded: the API may already hold it.
    pub in_doubt: bool,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub proof_path: Option<PathBuf>,
    pub last_error: Option<String>,
    /// The SHA-256 the ledger recorded for the block's proof when it was accepted: the file
    /// sent must still hash to it.
    pub proof_sha256: Option<String>,
}

/// A block that left the canonical chain after work was done for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub block: u64,
    /// The hash of the block the work was for.
    pub hash: Option<String>,
    /// Where its input and proof were kept.
    pub dir: Option<PathBuf>,
    pub reason: String,
}

/// A range of targets given up as one record (never one row per block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRange {
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub reason: String,
    pub at_ms: i64,
}
