use std::path::Path;

use super::*;
use std::path::PathBuf;

/// Which actors a commit wakes.
mod changes;
/// The ledger file: its chain, its schema and upgrades, durability, locks and full disks, and
/// the runtime while it waits.
mod file;
/// The read models: the report's lines, the recent lists, the figures.
mod lines;
/// What a proof may be recorded as: another block's bytes, a block that left the chain.
mod proofs;

fn ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::open(&dir.path().join("l.db")).unwrap();
    (dir, l)
}

/// What a proof of the test's blocks must commit to (160 bytes, hex).
const OUTPUTS: &str = concat!(
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000000"
);

fn built(path: &Path) -> Enqueued<'_> {
    Enqueued {
        input_path: path,
        gas_used: 21000,
        tx_count: 1,
        block_hash: "0xab",
        input_ms: 12,
        timestamp: 1,
        expected_output: Some(OUTPUTS),
    }
}

fn exit(proof: Option<(&Path, u64)>) -> ExitRecord<'_> {
    ExitRecord { exit: "code 0", proof, proving_ms: 1234, cycles: Some(99) }
}

/// Drives block `n` from nothing to proved (reporting on).
fn prove(l: &Ledger, n: u64) {
    l.targets_scheduled(&[n], None, n).unwrap();
    l.input_built(n, &built(Path::new("/out/i")), true).unwrap();
    l.proof_started(n, true).unwrap();
    l.prover_exited(n, &exit(Some((Path::new("/out/p"), 2048)))).unwrap();
    let sha256 = digest(n);
    let accepted = Accepted { sha256: &sha256, ..accepted() };
    assert_eq!(l.proof_accepted(n, &accepted, true).unwrap(), Acceptance::Accepted);
}

fn accepted() -> Accepted<'static> {
    Accepted { proving_ms: 1234, cycles: Some(99), sha256: "beef", checked_for: None }
}

/// A proof digest of its own for each block.
fn digest(n: u64) -> String {
    format!("{n:064x}")
}

#[test]
fn a_block_moves_through_its_states_and_proved_is_final() {
    let (_d, l) = ledger();
    prove(&l, 100);
    let b = l.block(100).unwrap().unwrap();
    assert_eq!(b.state, BlockState::Proved);
    assert_eq!((b.proving_ms, b.cycles, b.attempts), (Some(1234), Some(99), 1));
    assert_eq!((b.proof_sha256.as_deref(), b.proof_bytes), (Some(digest(100).as_str()), Some(2048)));
    assert!(matches!(l.proof_failed(100, Stage::Prove, "late"), Err(StoreError::IllegalMove { .. })));
    assert!(matches!(l.proof_started(100, true), Err(StoreError::IllegalMove { .. })));
    assert_eq!(l.block(100).unwrap().unwrap().state, BlockState::Proved, "an illegal move changes nothing");
    let kinds: Vec<_> = l.pending_reports().unwrap().iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [ReportKind::Queued, ReportKind::Proving, ReportKind::Proved], "each raised with its event");
}

#[test]
fn operator_blocks_and_outcomes_never_move_the_schedule() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[100], None, 100).unwrap();
    let asked = l.operator_prove(&[99_999_900, 100]).unwrap();
    assert_eq!(asked.added, vec![99_999_900]);
    assert_eq!(asked.in_progress, vec![100]);
    l.input_failed(100, Stage::FetchBlock, "no").unwrap();
    assert_eq!(l.last_scheduled().unwrap(), Some(100), "a typo far above the head does not move it");
    l.targets_scheduled(&[], Some((200, 5000, 49, "too old")), 5100).unwrap();
    assert_eq!(l.last_scheduled().unwrap(), Some(5100));
    l.targets_scheduled(&[], None, 300).unwrap();
    assert_eq!(l.last_scheduled().unwrap(), Some(5100), "the cursor never goes back");
    let skipped = l.skipped_ranges(10).unwrap();
    assert_eq!(skipped.len(), 1, "a range is one record");
    assert_eq!((skipped[0].first, skipped[0].last, skipped[0].count), (200, 5000, 49));
    assert!(l.counts().unwrap().contains(&("skipped".to_string(), 49)));
    // A failed block can be asked for again; that is its own move.
    assert_eq!(l.operator_prove(&[100]).unwrap().added, vec![100]);
    assert_eq!(l.block(100).unwrap().unwrap().origin, Origin::Schedule);
}

#[test]
fn native_runs_are_executed_never_proved_and_prove_mode_takes_them_back() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[10], None, 10).unwrap();
    l.input_built(10, &built(Path::new("/i")), false).unwrap();
    l.proof_started(10, false).unwrap();
    l.prover_exited(10, &exit(None)).unwrap();
    l.executed(10, 5, None).unwrap();
    assert_eq!(l.block(10).unwrap().unwrap().state, BlockState::Executed);
    assert_eq!((l.newest_in(BlockState::Proved).unwrap(), l.last_reported().unwrap()), (None, None));
    assert_eq!(l.newest_in(BlockState::Executed).unwrap(), Some(10), "the newest done block in a mode without proofs");
    assert_eq!(l.reopen_executed().unwrap(), vec![10]);
    assert_eq!(l.block(10).unwrap().unwrap().state, BlockState::Seen);
}

#[test]
fn a_graceful_stop_is_not_an_interruption_and_a_crash_is() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[7], None, 7).unwrap();
    l.input_built(7, &built(Path::new("/i")), false).unwrap();
    for _ in 0..5 {
        l.proof_started(7, false).unwrap();
        assert_eq!(l.proof_interrupted(7, false, 2).unwrap(), Interrupted::Requeued);
    }
    l.proof_started(7, false).unwrap();
    assert_eq!(l.proof_interrupted(7, true, 2).unwrap(), Interrupted::Requeued);
    l.proof_started(7, false).unwrap();
    assert!(matches!(l.proof_interrupted(7, true, 2).unwrap(), Interrupted::GaveUp(r) if r.contains("2 time(s)")));
    let b = l.block(7).unwrap().unwrap();
    assert_eq!((b.state, b.attempts, b.interruptions), (BlockState::Failed, 7, 2));
}

#[test]
fn the_running_process_is_recorded_for_its_attempt_only() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[5], None, 5).unwrap();
    l.input_built(5, &built(Path::new("/i")), false).unwrap();
    let attempt = l.proof_started(5, false).unwrap();
    let p = ProcessRecord { pgid: 4242, start_ticks: 77, boot_id: "b".into() };
    l.prover_process(5, attempt + 1, &p).unwrap();
    assert_eq!(l.block(5).unwrap().unwrap().process, None, "a stale attempt writes nothing");
    l.prover_process(5, attempt, &p).unwrap();
    assert_eq!(l.block(5).unwrap().unwrap().process, Some(p));
    l.prover_exited(5, &exit(None)).unwrap();
    assert_eq!(l.block(5).unwrap().unwrap().process, None, "cleared the moment it exits");
}

#[test]
fn the_outbox_holds_each_call_once_and_a_409_stops_the_block() {
    let (_d, l) = ledger();
    prove(&l, 300);
    let pending = l.pending_reports().unwrap();
    l.report_sending(pending[0].id).unwrap();
    assert!(l.pending_reports().unwrap()[0].in_doubt, "marked before it goes");
    l.report_settled(&pending[0], &Settle::Retry { error: "HTTP 500".into(), next_at_ms: 99 }).unwrap();
    let again = l.pending_reports().unwrap();
    assert_eq!((again[0].attempts, again[0].next_attempt_at_ms, again[0].in_doubt), (1, 99, false));
    l.report_settled(&again[0], &Settle::AlreadyProved).unwrap();
    let left: Vec<_> = l.pending_reports().unwrap().iter().map(|r| r.kind).collect();
    assert_eq!(left, [ReportKind::Proved], "the block's other queued/proving calls are superseded");
    assert_eq!(l.report_state(300, ReportKind::Proving).unwrap(), Some(ReportState::Superseded));
}

#[test]
fn a_settled_call_is_never_settled_again() {
    let (_d, l) = ledger();
    prove(&l, 10);
    let proved = l.pending_reports().unwrap().into_iter().find(|r| r.kind == ReportKind::Proved).unwrap();
    l.report_settled(&proved, &Settle::Done).unwrap();
    // A late answer for the same call (a retry that raced it) moves nothing.
    l.report_settled(&proved, &Settle::Failed("late".into())).unwrap();
    l.report_superseded(proved.id).unwrap();
    assert_eq!(l.report_state(10, ReportKind::Proved).unwrap(), Some(ReportState::Done));
}

#[test]
fn resubmit_is_its_own_move_from_the_saved_proof() {
    let (_d, l) = ledger();
    prove(&l, 10);
    assert_eq!(l.operator_resubmit(10).unwrap(), None, "still pending");
    for r in l.pending_reports().unwrap() {
        l.report_settled(&r, &Settle::Failed("HTTP 401".into())).unwrap();
    }
    assert_eq!(l.operator_resubmit(10).unwrap(), Some(()));
    let pending: Vec<_> = l.pending_reports().unwrap().iter().map(|r| (r.kind, r.proof_path.clone())).collect();
    assert!(pending.contains(&(ReportKind::Proved, Some(PathBuf::from("/out/p")))));
    assert!(pending.iter().any(|(k, _)| *k == ReportKind::Proving), "no row was ever accepted: proving first");
    // The refused calls the resubmit replaced stay in the block's history, before the new ones.
    let calls: Vec<(String, String)> =
        l.story(10).unwrap().unwrap().calls.into_iter().map(|c| (c.kind, c.state)).collect();
    let failed = |k: &str| (k.to_string(), "failed".to_string());
    let pending = |k: &str| (k.to_string(), "pending".to_string());
    assert_eq!(
        calls,
        vec![failed("queued"), failed("proving"), failed("proved"), pending("proving"), pending("proved")]
    );
    l.targets_scheduled(&[11], None, 11).unwrap();
    assert_eq!(l.operator_resubmit(11).unwrap(), None, "only proved blocks");
}

#[test]
fn unknown_state_text_is_an_error_naming_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    Ledger::open(&path).unwrap().targets_scheduled(&[42], None, 42).unwrap();
    Connection::open(&path).unwrap().execute("UPDATE blocks SET state = 'provd' WHERE number = 42", []).unwrap();
    let l = Ledger::open(&path).unwrap();
    let err = l.block(42).unwrap_err().to_string();
    assert!(err.contains("row 42") && err.contains("provd"), "{err}");
    assert!(l.report_lines(0).is_err());
}

/// A ledger as the first release wrote it, with `rows` as `(number, state)` SQL values.
#[test]
fn a_reorged_block_is_recorded_as_an_orphan_and_built_again() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[9], None, 9).unwrap();
    l.input_built(9, &built(Path::new("/out/9/input.bin")), true).unwrap();
    l.proof_started(9, true).unwrap();
    l.prover_exited(9, &exit(Some((Path::new("/out/9/proof.bin"), 64)))).unwrap();
    l.block_reorged(9, Some("0xab"), Some(Path::new("/out/9.orphan-ab")), "no longer canonical").unwrap();
    let b = l.block(9).unwrap().unwrap();
    assert_eq!((b.state, b.proof_path, b.block_hash), (BlockState::Seen, None, None));
    let orphans = l.orphans(10).unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!((orphans[0].block, orphans[0].hash.as_deref()), (9, Some("0xab")));
    assert!(matches!(l.proof_accepted(9, &accepted(), true), Err(StoreError::IllegalMove { .. })), "never proved");
    assert!(!l.pending_reports().unwrap().iter().any(|r| r.kind == ReportKind::Proved));
}

/// A write waiting on SQLite (another process holding the write lock, a slow disk) holds up the
/// actor that asked, never the runtime: probes and the other actors keep turning. One worker, so
/// a write that blocked it would stop everything else.
#[test]
fn a_block_run_again_keeps_its_earlier_run_and_when_it_was_first_seen() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[10], None, 10).unwrap();
    let first_seen = l.block(10).unwrap().unwrap().seen_at_ms;
    l.input_built(10, &built(Path::new("/i")), false).unwrap();
    l.proof_started(10, false).unwrap();
    l.prover_exited(10, &exit(None)).unwrap();
    l.executed(10, 1500, Some(42)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(l.operator_prove(&[10]).unwrap().added, vec![10]);
    let row = l.block(10).unwrap().unwrap();
    assert_eq!((row.state, row.seen_at_ms), (BlockState::Seen, first_seen), "first seen stays when it was first seen");
    let story = l.story(10).unwrap().unwrap();
    assert_eq!(story.earlier_runs.len(), 1, "the run it replaced is kept");
    let run = &story.earlier_runs[0];
    assert_eq!((run.outcome.as_str(), run.proving_ms, run.cycles), ("executed", Some(1500), Some(42)));
    assert_eq!(run.replaced_by, "operator");
    assert!(run.started_at_ms.is_some() && run.ended_at_ms.is_some());
    let lines = l.report_lines(0).unwrap();
    assert_eq!(lines[0].seen_at_ms, first_seen, "report --since counts from the first sighting");
}
