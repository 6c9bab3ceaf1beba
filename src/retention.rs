//! What stays on disk: the inputs and proofs of the last `RETAIN_BLOCKS` blocks, and every proof
//! EthProofs has not yet accepted, whatever its age.

use std::path::Path;

use crate::store::{BlockState, Ledger, StoreError};

/// Whether `OUTPUT_DIR/<block>` may go: the block is settled and, when reporting, its proof was
/// accepted (or never will be sent).
fn deletable(ledger: &Ledger, block: u64, reporting: bool) -> Result<bool, StoreError> {
    let Some(record) = ledger.block(block)? else { return Ok(false) };
    Ok(match record.state {
        BlockState::Failed | BlockState::Skipped => true,
        BlockState::Proved if !reporting => true,
        BlockState::Proved => {
            matches!(ledger.report_state(block, "proved")?.as_deref(), Some("done" | "already_proved" | "failed"))
        }
        _ => false,
    })
}

/// Removes the directories of blocks beyond the newest `retain` that are safe to remove;
/// returns the blocks removed.
pub fn prune(output_dir: &Path, ledger: &Ledger, retain: u64, reporting: bool) -> Result<Vec<u64>, StoreError> {
    let mut blocks: Vec<u64> = match std::fs::read_dir(output_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    blocks.sort_unstable_by(|a, b| b.cmp(a));
    let mut removed = Vec::new();
    for block in blocks.into_iter().skip(retain as usize) {
        if deletable(ledger, block, reporting)? {
            let dir = output_dir.join(block.to_string());
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => removed.push(block),
                Err(e) => tracing::warn!(block, error = %e, dir = %dir.display(), "cannot remove old block data"),
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_every_unreported_proof() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(&dir.path().join("l.db")).unwrap();
        let out = dir.path().join("out");
        for b in [100, 200, 300, 400, 500] {
            std::fs::create_dir_all(out.join(b.to_string())).unwrap();
            ledger.mark_proving(b).unwrap();
            ledger.mark_proved(b, None, 1, None).unwrap();
        }
        // 100: reported; 200: report pending; 300: failed block; 400, 500: the newest two.
        let r = ledger.add_report(100, "proved", Some(1), None, None).unwrap().unwrap();
        ledger.settle_report(r.id, "done", None).unwrap();
        ledger.add_report(200, "proved", Some(1), None, None).unwrap();
        ledger.mark_seen(300).unwrap();
        let mut removed = prune(&out, &ledger, 2, true).unwrap();
        removed.sort();
        assert_eq!(removed, vec![100]);
        assert!(out.join("200").is_dir(), "an unreported proof is never deleted");
        assert!(out.join("400").is_dir() && out.join("500").is_dir());
    }
}
