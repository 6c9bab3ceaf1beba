//! The states a block and an EthProofs call can be in, and the one table of moves between them.
//!
//! ```text
//!            ┌──────────────── operator re-prove ───────────────┐
//!            ▼                                                  │
//! (none) ─▶ seen ─▶ queued ─▶ proving ─▶ exited ─▶ proved       │   (terminal)
//!            │  ▲      ▲         │  │       ├──▶ executed ──────┤   (native / execute)
//!            │  │      └─────────┘  │       └──▶ failed ────────┤
//!            │  │   stopped for     └─▶ failed (interrupted     │
//!            │  │   shutdown /          too often)              │
//!            │  │   interrupted                                 │
//!            └──┼──▶ failed (input) ────────────────────────────┤
//!               └── skipped (v1) ──── reorged / input lost: back to seen ─┘
//! ```
//!
//! `input_ready` is a v1 state read from older ledgers; it moves on as `queued` does.

use std::fmt;

/// Where a block is. Stored as the text of [`BlockState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BlockState {
    /// A target (or an operator's block) whose input is still to be built: where every block starts.
    #[default]
    Seen,
    /// Written by v1 ledgers between building and queueing; treated as `Queued`.
    InputReady,
    /// Input on disk, waiting for the prover.
    Queued,
    /// A prover run (attempt `attempts`) has started.
    Proving,
    /// The run ended; its ending and its proof (path, size) are recorded, the verdict is not yet.
    Exited,
    /// Proof accepted. Terminal.
    Proved,
    /// Re-executed (`native`) or emulated (`execute`): no proof exists.
    Executed,
    /// Ended with a stage and a reason.
    Failed,
    /// Not attempted (v1 ledgers; v2 records skips as ranges).
    Skipped,
}

impl BlockState {
    pub const ALL: [BlockState; 9] = [
        BlockState::Seen,
        BlockState::InputReady,
        BlockState::Queued,
        BlockState::Proving,
        BlockState::Exited,
        BlockState::Proved,
        BlockState::Executed,
        BlockState::Failed,
        BlockState::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Seen => "seen",
            BlockState::InputReady => "input_ready",
            BlockState::Queued => "queued",
            BlockState::Proving => "proving",
            BlockState::Exited => "exited",
            BlockState::Proved => "proved",
            BlockState::Executed => "executed",
            BlockState::Failed => "failed",
            BlockState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> Option<BlockState> {
        BlockState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Work is under way: the operator cannot start it again.
    pub fn in_flight(self) -> bool {
        matches!(
            self,
            BlockState::Seen | BlockState::InputReady | BlockState::Queued | BlockState::Proving | BlockState::Exited
        )
    }
}

impl fmt::Display for BlockState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a block moves: each business event names its move, so the table below is the whole story.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    TargetSeen,
    InputBuilt,
    InputFailed,
    ProofStarted,
    /// The run was stopped by a graceful shutdown, or found dead after a crash: back in the queue.
    ProofInterrupted,
    /// Interrupted more often than `MAX_PROVE_ATTEMPTS`.
    GaveUp,
    ProverExited,
    ProofAccepted,
    ProofFailed,
    ExecutedNatively,
    /// The operator asked for this block again (or prove mode takes back an executed block).
    Reprove,
    /// A queued block's input is gone from disk (deleted by hand): it is built again.
    InputLost,
    /// The block at this height is no longer the one the input was built from: the old one is
    /// recorded as an orphan and the canonical block is built again.
    Reorged,
}

/// The transition table. `None` for `from` is a block the ledger does not know yet.
pub fn allowed(from: Option<BlockState>, mv: Move) -> Option<BlockState> {
    use BlockState::*;
    let to = match (from, mv) {
        (None, Move::TargetSeen) => Seen,
        (None, Move::Reprove) => Seen,
        (Some(Seen), Move::InputBuilt) => Queued,
        (Some(Seen), Move::InputFailed) => Failed,
        (Some(Queued | InputReady), Move::ProofStarted) => Proving,
        (Some(Proving), Move::ProofInterrupted) => Queued,
        (Some(Proving), Move::GaveUp) => Failed,
        (Some(Proving), Move::ProverExited) => Exited,
        // A run that could not even start has no exit to record.
        (Some(Proving | Exited), Move::ProofFailed) => Failed,
        (Some(Exited), Move::ProofAccepted) => Proved,
        (Some(Exited), Move::ExecutedNatively) => Executed,
        (Some(Failed | Executed | Skipped), Move::Reprove) => Seen,
        (Some(Queued | InputReady), Move::InputLost) => Seen,
        (Some(Seen | Queued | InputReady | Proving | Exited), Move::Reorged) => Seen,
        // Checked again before `proved` is sent: a proved block that left the chain is proved
        // afresh; its proof of the orphan is kept, never reported.
        (Some(Proved), Move::Reorged) => Seen,
        _ => return None,
    };
    Some(to)
}

/// The step at which a block failed (or was given up): the ledger's `stage` text, what
/// `/health`, the dashboard, Slack and `report` show, and a metric label. One vocabulary, so a
/// typo cannot invent a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// More than MAX_BACKFILL_BLOCKS below the head when it was seen.
    BackfillWindow,
    /// Fetching the block from the node.
    FetchBlock,
    /// Fetching its execution witness.
    FetchWitness,
    /// Building or writing the guest input.
    Input,
    /// Re-executing the block natively (ethrex) refused the input.
    NativeValidation,
    /// The real guest's own check of the input (emulator or execute job).
    InputCheck,
    /// The prover could not be started.
    Spawn,
    /// Proving gave up (interrupted too often).
    Prove,
    /// The prover exited unsuccessfully.
    ProverExit,
    /// The prover was killed by a signal.
    Crash,
    /// The prover ran past PROVER_TIMEOUT_SECONDS.
    Timeout,
    /// The proof is missing, empty, unreadable or could not be made durable.
    ProofOutput,
    /// The proof did not verify.
    Verify,
    /// The operator cancelled the run.
    Cancelled,
    /// The coordinator failed the job (internal error, input refused).
    Coordinator,
    /// The coordinator's answer was not about this job or program.
    CoordinatorAnswer,
    /// The guest failed while executing on the coordinator.
    Execution,
}

impl Stage {
    const ALL: [Stage; 17] = [
        Stage::BackfillWindow,
        Stage::FetchBlock,
        Stage::FetchWitness,
        Stage::Input,
        Stage::NativeValidation,
        Stage::InputCheck,
        Stage::Spawn,
        Stage::Prove,
        Stage::ProverExit,
        Stage::Crash,
        Stage::Timeout,
        Stage::ProofOutput,
        Stage::Verify,
        Stage::Cancelled,
        Stage::Coordinator,
        Stage::CoordinatorAnswer,
        Stage::Execution,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::BackfillWindow => "backfill_window",
            Stage::FetchBlock => "fetch_block",
            Stage::FetchWitness => "fetch_witness",
            Stage::Input => "input",
            Stage::NativeValidation => "native_validation",
            Stage::InputCheck => "input_check",
            Stage::Spawn => "spawn",
            Stage::Prove => "prove",
            Stage::ProverExit => "prover_exit",
            Stage::Crash => "crash",
            Stage::Timeout => "timeout",
            Stage::ProofOutput => "proof_output",
            Stage::Verify => "verify",
            Stage::Cancelled => "cancelled",
            Stage::Coordinator => "coordinator",
            Stage::CoordinatorAnswer => "coordinator_answer",
            Stage::Execution => "execution",
        }
    }

    /// The stage a ledger row names, if this build knows it.
    pub fn parse(s: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an EthProofs call is. Stored as the text of [`ReportState::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportState {
    /// Written, not yet accepted: the outbox sends it.
    Pending,
    /// The API answered 200.
    Done,
    /// The API answered 409: the block is already proved there.
    AlreadyProved,
    /// Given up with a reason (a permanent refusal, or too old).
    Failed,
    /// Not needed any more: a later call for the block does its work.
    Superseded,
}

impl ReportState {
    const ALL: [ReportState; 5] = [
        ReportState::Pending,
        ReportState::Done,
        ReportState::AlreadyProved,
        ReportState::Failed,
        ReportState::Superseded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportState::Pending => "pending",
            ReportState::Done => "done",
            ReportState::AlreadyProved => "already_proved",
            ReportState::Failed => "failed",
            ReportState::Superseded => "superseded",
        }
    }

    pub fn parse(s: &str) -> Option<ReportState> {
        ReportState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The API holds what this call said.
    pub fn accepted(self) -> bool {
        matches!(self, ReportState::Done | ReportState::AlreadyProved)
    }

    /// Settling moves only out of `pending`. The one place this rule lives: every settling event
    /// in `store::events` asks it. An operator's resubmit never moves a call back: it files the
    /// old calls in `earlier_reports` and raises new ones.
    pub fn can_settle_to(self, to: ReportState) -> bool {
        self == ReportState::Pending && to != ReportState::Pending
    }
}

impl fmt::Display for ReportState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proved_is_terminal_but_for_a_reorg() {
        for mv in [
            Move::TargetSeen,
            Move::InputBuilt,
            Move::InputFailed,
            Move::ProofStarted,
            Move::ProofInterrupted,
            Move::GaveUp,
            Move::ProverExited,
            Move::ProofAccepted,
            Move::ProofFailed,
            Move::ExecutedNatively,
            Move::Reprove,
            Move::InputLost,
        ] {
            assert_eq!(allowed(Some(BlockState::Proved), mv), None, "{mv:?} out of proved");
        }
        // Checked again before `proved` is sent: a block that left the chain is proved afresh.
        assert_eq!(allowed(Some(BlockState::Proved), Move::Reorged), Some(BlockState::Seen));
    }

    #[test]
    fn the_happy_path_and_its_forks() {
        let mut s = allowed(None, Move::TargetSeen).unwrap();
        for (mv, want) in [
            (Move::InputBuilt, BlockState::Queued),
            (Move::ProofStarted, BlockState::Proving),
            (Move::ProofInterrupted, BlockState::Queued),
            (Move::ProofStarted, BlockState::Proving),
            (Move::ProverExited, BlockState::Exited),
            (Move::ProofAccepted, BlockState::Proved),
        ] {
            s = allowed(Some(s), mv).unwrap_or_else(|| panic!("{mv:?} from {s}"));
            assert_eq!(s, want);
        }
        assert_eq!(allowed(Some(BlockState::Exited), Move::ExecutedNatively), Some(BlockState::Executed));
        assert_eq!(allowed(Some(BlockState::Executed), Move::Reprove), Some(BlockState::Seen));
        assert_eq!(allowed(Some(BlockState::Failed), Move::Reprove), Some(BlockState::Seen));
    }

    #[test]
    fn in_flight_work_cannot_be_started_twice() {
        for s in [BlockState::Seen, BlockState::Queued, BlockState::Proving, BlockState::Exited] {
            assert_eq!(allowed(Some(s), Move::Reprove), None, "{s}");
            assert_eq!(allowed(Some(s), Move::TargetSeen), None, "{s}");
        }
        assert_eq!(allowed(Some(BlockState::Proving), Move::ProofStarted), None);
        assert_eq!(allowed(Some(BlockState::Seen), Move::ProofAccepted), None);
    }

    #[test]
    fn states_round_trip_and_unknown_text_is_none() {
        for s in BlockState::ALL {
            assert_eq!(BlockState::parse(s.as_str()), Some(s));
        }
        assert_eq!(BlockState::parse("provd"), None);
        assert_eq!(ReportState::parse("done"), Some(ReportState::Done));
        for stage in Stage::ALL {
            assert_eq!(Stage::parse(stage.as_str()), Some(stage), "{stage:?} reads back");
        }
        assert_eq!(Stage::parse("proof output"), None);
        assert_eq!(ReportState::parse(""), None);
        assert!(ReportState::Pending.can_settle_to(ReportState::Done));
        assert!(!ReportState::Done.can_settle_to(ReportState::Failed));
    }
}
