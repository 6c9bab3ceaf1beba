//! What stays on disk: the inputs and proofs of the last `RETAIN_BLOCKS` blocks, and every proof
//! EthProofs has not yet accepted, whatever its age. The rule is [`crate::decide::retention`];
//! this is the I/O around it.

use std::path::Path;

use crate::decide::retention::{deletable, to_delete};
use crate::store::{Ledger, ReportKind, StoreError};

/// Removes the directories of blocks beyond the newest `retain` that may go; returns them.
pub fn prune(output_dir: &Path, ledger: &Ledger, retain: u64, reporting: bool) -> Result<Vec<u64>, StoreError> {
    let on_disk: Vec<u64> = match std::fs::read_dir(output_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    // Decide from one read of the ledger per block; a read error keeps the block.
    let may_delete = |block: u64| -> bool {
        let Ok(Some(record)) = ledger.block(block) else { return false };
        let Ok(report) = ledger.report_state(block, ReportKind::Proved) else { return false };
        deletable(record.state, report, reporting)
    };
    let mut removed = Vec::new();
    for block in to_delete(on_disk, retain, may_delete) {
        let dir = output_dir.join(block.to_string());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => removed.push(block),
            Err(e) => tracing::warn!(block, error = %e, dir = %dir.display(), "cannot remove old block data"),
        }
    }
    Ok(removed)
}
