//! Which block directories may be deleted: never one whose proof EthProofs has not accepted.

use crate::store::{BlockState, ReportState};

/// `proved_report` is the state of the block's `proved` call, if one exists.
pub fn deletable(state: BlockState, proved_report: Option<ReportState>, reporting: bool) -> bool {
    match state {
        BlockState::Failed | BlockState::Skipped | BlockState::Executed => true,
        BlockState::Proved if !reporting => true,
        // A refused call (a 401 during a key rotation, a 400) keeps its proof for `resubmit`.
        BlockState::Proved => proved_report.is_some_and(ReportState::accepted),
        _ => false,
    }
}

/// Of the block directories on disk, those beyond the newest `retain` that may go.
pub fn to_delete(mut on_disk: Vec<u64>, retain: u64, may_delete: impl Fn(u64) -> bool) -> Vec<u64> {
    on_disk.sort_unstable_by(|a, b| b.cmp(a));
    on_disk.into_iter().skip(usize::try_from(retain).unwrap_or(usize::MAX)).filter(|b| may_delete(*b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unaccepted_proof_is_never_deleted() {
        for r in [None, Some(ReportState::Pending), Some(ReportState::Failed), Some(ReportState::Superseded)] {
            assert!(!deletable(BlockState::Proved, r, true), "{r:?}");
        }
        assert!(deletable(BlockState::Proved, Some(ReportState::Done), true));
        assert!(deletable(BlockState::Proved, Some(ReportState::AlreadyProved), true));
        assert!(deletable(BlockState::Proved, None, false), "nothing to report to");
    }

    #[test]
    fn work_in_flight_is_kept() {
        for s in [BlockState::Seen, BlockState::Queued, BlockState::Proving, BlockState::Exited] {
            assert!(!deletable(s, None, false), "{s}");
        }
        assert!(deletable(BlockState::Failed, None, true));
    }

    #[test]
    fn keeps_the_newest() {
        assert_eq!(to_delete(vec![100, 500, 300, 200, 400], 2, |_| true), vec![300, 200, 100]);
        assert_eq!(to_delete(vec![100, 500, 300], 2, |b| b != 100), Vec::<u64>::new());
    }
}
