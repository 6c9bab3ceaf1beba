//! What becomes of the runs a predecessor left behind, decided from the ledger's rows alone: the
//! Prover carries the plan out at start-up (and after its own restart).

use crate::store::{BlockRecord, ProcessRecord, RecordedJob};

/// One left-behind run and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// A coordinator job outlived the daemon: follow the same job again, as the same attempt.
    Follow { block: u64, attempt: u32, job: RecordedJob },
    /// The run died with the daemon: end what is left of its process group (when one was
    /// recorded), then count the interruption; the ledger queues it again or, past
    /// MAX_PROVE_ATTEMPTS, gives it up.
    Interrupted { block: u64, process: Option<ProcessRecord> },
    /// The run's exit was recorded before the daemon went: judge it from the record, never run
    /// it again.
    Rejudge { block: u64 },
}

impl Recovery {
    /// The block the step is about.
    pub fn block(&self) -> u64 {
        match self {
            Recovery::Follow { block, .. } | Recovery::Interrupted { block, .. } | Recovery::Rejudge { block } => {
                *block
            }
        }
    }
}

/// The plan for the `proving` and `exited` rows a start finds, in that order. A recorded job is
/// followed only when the backend can re-attach to it (the coordinator); otherwise its run
/// counts as interrupted like a local process.
pub fn plan(proving: &[BlockRecord], exited: &[BlockRecord], reattaches: bool) -> Vec<Recovery> {
    let left = proving.iter().map(|row| match row.job_id.clone().filter(|_| reattaches) {
        Some(job) => Recovery::Follow { block: row.number, attempt: row.attempts, job },
        None => Recovery::Interrupted { block: row.number, process: row.process.clone() },
    });
    left.chain(exited.iter().map(|row| Recovery::Rejudge { block: row.number })).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::BlockState;

    fn row(number: u64, state: BlockState, job: Option<&str>, process: Option<ProcessRecord>) -> BlockRecord {
        BlockRecord {
            number,
            state,
            attempts: 2,
            job_id: job.map(RecordedJob::for_tests),
            process,
            ..BlockRecord::default()
        }
    }

    #[test]
    fn a_job_is_followed_again_only_by_a_backend_that_reattaches_and_an_exit_is_judged_not_rerun() {
        let process = ProcessRecord { pgid: 77, start_ticks: 1, boot_id: "b".into() };
        let proving = [
            row(10, BlockState::Proving, Some("job-10"), None),
            row(11, BlockState::Proving, None, Some(process.clone())),
        ];
        let exited = [row(12, BlockState::Exited, None, None)];
        assert_eq!(
            plan(&proving, &exited, true),
            vec![
                Recovery::Follow { block: 10, attempt: 2, job: RecordedJob::for_tests("job-10") },
                Recovery::Interrupted { block: 11, process: Some(process.clone()) },
                Recovery::Rejudge { block: 12 },
            ]
        );
        assert_eq!(
            plan(&proving[..1], &[], false),
            vec![Recovery::Interrupted { block: 10, process: None }],
            "the CLI cannot re-attach to a job"
        );
    }
}
