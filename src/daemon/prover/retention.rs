//! What stays on disk: the inputs and proofs of the last `RETAIN_BLOCKS` blocks, every proof
//! EthProofs has not yet accepted whatever its age, and every proof the verifier rejected;
//! orphans' folders go with age, and what a crash left half-written goes at start-up. The rules
//! are [`crate::decide::retention`]; this is the I/O around them.

use std::path::Path;

use crate::decide::retention::{Folder, deletable, is_leftover, to_delete};
use crate::store::{Ledger, ReportKind, Stage, StoreError};

/// Removes the folders beyond the newest `retain` blocks that may go; returns the blocks whose
/// own folders went.
pub fn prune(output_dir: &Path, ledger: &Ledger, retain: u64, reporting: bool) -> Result<Vec<u64>, StoreError> {
    // Runs side by side each prune after their end: one prune at a time, and the others leave
    // the work to it.
    static PRUNING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = match PRUNING.try_lock() {
        Ok(guard) => guard,
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        Err(std::sync::TryLockError::WouldBlock) => return Ok(Vec::new()),
    };
    let on_disk: Vec<Folder> = match std::fs::read_dir(output_dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().to_str().and_then(Folder::parse))
            .collect(),
        Err(_) => return Ok(Vec::new()),
    };
    // Decide from one read of the ledger per block; a read error keeps the block.
    let may_delete = |block: u64| -> bool {
        let Ok(Some(record)) = ledger.block(block) else { return false };
        let Ok(report) = ledger.report_state(block, ReportKind::Proved) else { return false };
        let stage = record.stage.as_deref().and_then(Stage::parse);
        deletable(record.state, stage, report, reporting)
    };
    let mut removed = Vec::new();
    for folder in to_delete(on_disk, retain, may_delete) {
        let dir = output_dir.join(folder.name());
        match std::fs::remove_dir_all(&dir) {
            Ok(()) if matches!(folder, Folder::Block(_)) => removed.push(folder.block()),
            Ok(()) => crate::runtime::block_span!(block = folder.block()).in_scope(|| {
                tracing::info!(dir = %dir.display(), "an old orphan's folder removed");
            }),
            // Gone already (removed by hand, or by a prune of an earlier daemon): nothing to do.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => crate::runtime::block_span!(block = folder.block()).in_scope(|| {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot remove old block data");
            }),
        }
    }
    Ok(removed)
}

/// Removes what a crash left half-written in the blocks' folders (an input's temporary file, a
/// proof being written): called at start-up under the instance lock, when no writer of ours
/// can exist. Returns how many files went.
pub fn sweep_leftovers(output_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(output_dir) else { return 0 };
    let mut swept = 0;
    for folder in entries.filter_map(|e| e.ok()).filter(|e| e.path().is_dir()) {
        if folder.file_name().to_str().and_then(Folder::parse).is_none() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(folder.path()) else { continue };
        for file in files.filter_map(|e| e.ok()) {
            let name = file.file_name();
            if name.to_str().is_some_and(is_leftover) && file.path().is_file() {
                match std::fs::remove_file(file.path()) {
                    Ok(()) => swept += 1,
                    Err(e) => {
                        let block = folder.file_name().to_str().and_then(Folder::parse).map(|f| f.block());
                        crate::runtime::block_span!(block).in_scope(|| {
                            tracing::warn!(file = %file.path().display(), error = %e, "cannot remove a crash's leftover");
                        });
                    }
                }
            }
        }
    }
    swept
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Enqueued;

    #[test]
    fn old_orphans_and_crash_leftovers_go_and_a_rejected_proof_stays() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        let ledger = Ledger::open_in_memory().unwrap();
        for n in [100u64, 200, 300, 400] {
            std::fs::create_dir_all(out.join(n.to_string())).unwrap();
            std::fs::write(out.join(n.to_string()).join("proof.bin"), b"p").unwrap();
        }
        std::fs::create_dir_all(out.join("100.orphan-abcdef")).unwrap();
        std::fs::create_dir_all(out.join("400.orphan-012345")).unwrap();
        std::fs::write(out.join("400").join(".input.bin.tmp-77"), b"half").unwrap();
        std::fs::write(out.join("400").join("proof.partial"), b"half").unwrap();
        let input = out.join("i");
        let built = Enqueued {
            input_path: &input,
            gas_used: 1,
            tx_count: 1,
            block_hash: "0x1",
            input_ms: 1,
            timestamp: 1,
            expected_output: None,
        };
        ledger.targets_scheduled(&[100, 200], None, 200).unwrap();
        for n in [100, 200] {
            ledger.input_built(n, &built, false).unwrap();
            ledger.proof_started(n, false).unwrap();
        }
        ledger.proof_failed(100, Stage::Verify, "the proof commits to block hash 0x…").unwrap();
        ledger.proof_failed(200, Stage::Prove, "gave up").unwrap();

        assert_eq!(sweep_leftovers(out), 2);
        assert!(out.join("400/proof.bin").is_file() && !out.join("400/proof.partial").exists());
        let removed = prune(out, &ledger, 2, true).unwrap();
        assert_eq!(removed, vec![200], "the failed block's folder goes");
        assert!(out.join("100/proof.bin").is_file(), "a proof the verifier rejected stays");
        assert!(!out.join("100.orphan-abcdef").exists(), "an old orphan goes");
        assert!(out.join("400.orphan-012345").exists(), "a recent orphan stays");
    }
}
