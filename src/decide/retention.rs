//! Which folders under OUTPUT_DIR may be deleted: never one whose proof EthProofs has not
//! accepted, never a proof the verifier rejected (kept for a person to look at), and an
//! orphan's folder (`<n>.orphan-<hash>`) once it is older than what is retained.

use crate::store::{BlockState, ReportState, Stage};

/// `proved_report` is the state of the block's `proved` call, if one exists; `stage` where a
/// failed block failed.
pub fn deletable(state: BlockState, stage: Option<Stage>, proved_report: Option<ReportState>, reporting: bool) -> bool {
    match state {
        // A proof the verifier refused is evidence: README promises it stays.
        BlockState::Failed => stage != Some(Stage::Verify),
        BlockState::Skipped | BlockState::Executed => true,
        BlockState::Proved if !reporting => true,
        // A refused call (a 401 during a key rotation, a 400) keeps its proof for `resubmit`.
        BlockState::Proved => proved_report.is_some_and(ReportState::accepted),
        _ => false,
    }
}

/// A folder under OUTPUT_DIR that retention looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Folder {
    /// `<n>/`: a block's input and proof.
    Block(u64),
    /// `<n>.orphan-<hash>/`: what was done for a block that left the chain; never reported.
    Orphan(u64, String),
}

impl Folder {
    /// The folder a directory name is, if it is one of ours.
    pub fn parse(name: &str) -> Option<Folder> {
        match name.split_once(".orphan-") {
            Some((n, hash)) if !hash.is_empty() => Some(Folder::Orphan(n.parse().ok()?, hash.to_string())),
            Some(_) => None,
            None => name.parse().ok().map(Folder::Block),
        }
    }

    pub fn block(&self) -> u64 {
        match self {
            Folder::Block(n) | Folder::Orphan(n, _) => *n,
        }
    }

    pub fn name(&self) -> String {
        match self {
            Folder::Block(n) => n.to_string(),
            Folder::Orphan(n, hash) => format!("{n}.orphan-{hash}"),
        }
    }
}

/// Of the folders on disk, those beyond the newest `retain` blocks that may go: an orphan's
/// always, a block's when `may_delete` says so.
pub fn to_delete(mut on_disk: Vec<Folder>, retain: u64, may_delete: impl Fn(u64) -> bool) -> Vec<Folder> {
    on_disk.sort_by_key(|f| std::cmp::Reverse(f.block()));
    let mut newest = std::collections::BTreeSet::new();
    let retain = usize::try_from(retain).unwrap_or(usize::MAX);
    on_disk
        .into_iter()
        .filter(|f| {
            // The newest `retain` block numbers are kept, whatever their folders.
            if newest.contains(&f.block()) || newest.len() < retain {
                newest.insert(f.block());
                return false;
            }
            match f {
                Folder::Orphan(..) => true,
                Folder::Block(n) => may_delete(*n),
            }
        })
        .collect()
}

/// A file a crash left half-written (`.input.bin.tmp-<pid>`, `proof.partial`): no process of a
/// daemon that holds the instance lock is writing it.
pub fn is_leftover(name: &str) -> bool {
    (name.starts_with('.') && name.contains(".tmp-")) || name.ends_with(".partial")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unaccepted_proof_is_never_deleted() {
        for r in [None, Some(ReportState::Pending), Some(ReportState::Failed), Some(ReportState::Superseded)] {
            assert!(!deletable(BlockState::Proved, None, r, true), "{r:?}");
        }
        assert!(deletable(BlockState::Proved, None, Some(ReportState::Done), true));
        assert!(deletable(BlockState::Proved, None, Some(ReportState::AlreadyProved), true));
        assert!(deletable(BlockState::Proved, None, None, false), "nothing to report to");
    }

    #[test]
    fn work_in_flight_and_rejected_proofs_are_kept() {
        for s in [BlockState::Seen, BlockState::Queued, BlockState::Proving, BlockState::Exited] {
            assert!(!deletable(s, None, None, false), "{s}");
        }
        assert!(deletable(BlockState::Failed, Some(Stage::Prove), None, true));
        assert!(!deletable(BlockState::Failed, Some(Stage::Verify), None, true), "a rejected proof is kept");
    }

    #[test]
    fn keeps_the_newest_and_lets_old_orphans_go() {
        let blocks = |ns: &[u64]| ns.iter().map(|n| Folder::Block(*n)).collect::<Vec<_>>();
        assert_eq!(to_delete(blocks(&[100, 500, 300, 200, 400]), 2, |_| true), blocks(&[300, 200, 100]));
        assert_eq!(to_delete(blocks(&[100, 500, 300]), 2, |b| b != 100), Vec::<Folder>::new());
        let orphan = |n| Folder::Orphan(n, "abcdef".into());
        let on_disk = vec![Folder::Block(500), orphan(500), Folder::Block(400), orphan(100), Folder::Block(100)];
        // 500 (both folders) and 400 are the newest two; the old orphan goes even though its
        // block's own folder may not.
        assert_eq!(to_delete(on_disk, 2, |_| false), vec![orphan(100)]);
    }

    #[test]
    fn folder_names_and_leftovers_are_recognised() {
        assert_eq!(Folder::parse("1200"), Some(Folder::Block(1200)));
        assert_eq!(Folder::parse("1200.orphan-abcdef012345"), Some(Folder::Orphan(1200, "abcdef012345".into())));
        assert_eq!(Folder::parse("1200.orphan-"), None);
        assert_eq!(Folder::parse("ethproofs-daemon.db"), None);
        assert_eq!(Folder::Orphan(7, "ab".into()).name(), "7.orphan-ab");
        assert!(is_leftover(".input.bin.tmp-4242") && is_leftover("proof.partial"));
        assert!(!is_leftover("input.bin") && !is_leftover("proof.bin") && !is_leftover("guest-outputs.bin"));
    }
}
