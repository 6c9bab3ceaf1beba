use std::path::Path;

use super::schema::SCHEMA_V1;
use super::*;

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
    assert_eq!(l.last_proved_and_reported().unwrap(), (None, None));
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

#[test]
fn a_ledger_belongs_to_one_chain_and_remembers_the_pause() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    {
        let l = Ledger::open(&path).unwrap();
        l.bind_chain("chain id 1, genesis 0xaa").unwrap();
        l.set_paused(true).unwrap();
    }
    let l = Ledger::open(&path).unwrap();
    assert!(l.paused().unwrap(), "pause survives a restart");
    l.bind_chain("chain id 1, genesis 0xaa").unwrap();
    let err = l.bind_chain("chain id 1337, genesis 0xbb").unwrap_err().to_string();
    assert!(err.contains("0xaa") && err.contains("0xbb"), "names both: {err}");
}

/// A ledger as the first release wrote it, with `rows` as `(number, state)` SQL values.
fn v1_ledger(path: &Path, rows: &str) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(SCHEMA_V1).unwrap();
    conn.execute(&format!("INSERT INTO blocks (number, state) VALUES {rows}"), []).unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
}

#[test]
fn a_v1_ledger_is_migrated_and_its_cursor_settled_by_a_believed_head() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    // 200,000,000 is an operator's typo that v1 kept as a row like any target.
    v1_ledger(&path, "(500, 'proving'), (400, 'proved'), (200000000, 'failed')");
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.last_scheduled().unwrap(), None, "no cursor before a head is believed");
    // v5: the coordinator's other jobs have their table.
    l.coordinator_job("setup", "h-1", None, "job-1").unwrap();
    l.coordinator_job("input_check", "h-1", Some((500, 1)), "job-2").unwrap();
    assert_eq!(
        l.coordinator_jobs().unwrap(),
        vec![("job-1".into(), "setup".into(), None), ("job-2".into(), "input_check".into(), Some(500))]
    );
    assert_eq!(l.blocks_in(&[BlockState::Proving]).unwrap()[0].number, 500);
    assert_eq!(l.settle_legacy_cursor(650).unwrap(), Some(500), "the newest block at or below the head");
    assert_eq!(l.last_scheduled().unwrap(), Some(500));
    assert_eq!(l.settle_legacy_cursor(900_000_000).unwrap(), None, "settled once");
    assert_eq!(l.last_scheduled().unwrap(), Some(500));
    drop(l);
    let l = Ledger::open(&path).unwrap();
    assert_eq!(l.last_scheduled().unwrap(), Some(500), "survives a restart");
}

#[test]
fn a_fresh_ledger_has_no_legacy_cursor_to_settle() {
    let (_d, l) = ledger();
    l.targets_scheduled(&[100], None, 100).unwrap();
    assert_eq!(l.settle_legacy_cursor(10_000).unwrap(), None);
    assert_eq!(l.last_scheduled().unwrap(), Some(100));
}

#[test]
fn a_corrupt_file_is_refused_not_reset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let garbage = b"this is not a database, it is a text file of some length....".to_vec();
    std::fs::write(&path, &garbage).unwrap();
    let err = Ledger::open(&path).unwrap_err().to_string();
    assert!(err.contains("l.db") && err.contains("corrupt"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), garbage, "the file was left untouched");
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let err = Ledger::open(&path).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

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

#[test]
fn every_commit_is_synced_to_disk() {
    let (_d, l) = ledger();
    let (journal, synchronous): (String, i64) = l.conn(|conn| {
        (
            conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap(),
            conn.query_row("PRAGMA synchronous", [], |r| r.get(0)).unwrap(),
        )
    });
    assert_eq!((journal.as_str(), synchronous), ("wal", 2), "WAL with synchronous=FULL: a power loss loses no commit");
}

#[test]
fn a_read_only_open_never_migrates_nor_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    v1_ledger(&path, "(500, 'proved')");
    let before = std::fs::read(&path).unwrap();
    let err = Ledger::open_read_only(&path).unwrap_err().to_string();
    assert!(err.contains("schema version 1") && err.contains("start the daemon once"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), before, "the old ledger is byte for byte as it was");
    let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 1);
    assert!(Ledger::open_read_only(&dir.path().join("absent.db")).is_err(), "never created");
    assert!(!dir.path().join("absent.db").exists());

    // A current ledger reads, and cannot be written through the read-only handle.
    let current = dir.path().join("current.db");
    prove(&Ledger::open(&current).unwrap(), 100);
    let l = Ledger::open_read_only(&current).unwrap();
    assert_eq!(l.block(100).unwrap().unwrap().state, BlockState::Proved);
    assert!(l.set_paused(true).is_err(), "read only");
}

#[test]
fn a_write_refused_by_a_lock_held_elsewhere_backs_off_and_is_not_a_refusal_of_the_move() {
    let (dir, l) = ledger();
    l.targets_scheduled(&[100], None, 100).unwrap();
    let other = Connection::open(dir.path().join("l.db")).unwrap();
    other.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let locked = l.input_built(100, &built(Path::new("/out/i")), true).unwrap_err();
    assert!(locked.is_transient(), "{locked:?}");
    let trouble = l.write_trouble().expect("the failure is kept for /health");
    assert!(trouble.error.contains("locked"), "{trouble:?}");
    // During the backoff the write is refused without waiting on the lock.
    let deferred = l.input_built(100, &built(Path::new("/out/i")), true).unwrap_err();
    assert!(matches!(deferred, StoreError::Deferred { .. }) && deferred.is_transient(), "{deferred}");
    assert!(l.write_retry_in() > std::time::Duration::ZERO);

    other.execute_batch("ROLLBACK").unwrap();
    std::thread::sleep(l.write_retry_in());
    l.input_built(100, &built(Path::new("/out/i")), true).unwrap();
    assert_eq!(l.write_trouble(), None, "a write that goes through ends the trouble");
    assert_eq!(l.block(100).unwrap().unwrap().state, BlockState::Queued);
    let illegal = l.input_built(100, &built(Path::new("/out/i")), true).unwrap_err();
    assert!(!illegal.is_transient() && l.write_trouble().is_none(), "a refused move is not a failing disk");
}

#[test]
fn a_full_disk_or_a_read_only_filesystem_is_retried_and_a_corrupt_file_is_not() {
    let failure = |code, errno| StoreError::Sql {
        path: "l.db".into(),
        source: rusqlite::Error::SqliteFailure(rusqlite::ffi::Error { code, extended_code: errno }, None),
    };
    use rusqlite::ErrorCode::*;
    for code in [DiskFull, DatabaseBusy, DatabaseLocked, SystemIoFailure, ReadOnly] {
        assert!(failure(code, 0).is_transient(), "{code:?}");
    }
    for code in [DatabaseCorrupt, NotADatabase, ConstraintViolation] {
        assert!(!failure(code, 0).is_transient(), "{code:?}");
    }
    let illegal = StoreError::IllegalMove { block: 1, from: None, mv: Move::ProofAccepted };
    assert!(!illegal.is_transient());
}

/// A write waiting on SQLite (another process holding the write lock, a slow disk) holds up the
/// actor that asked, never the runtime: probes and the other actors keep turning. One worker, so
/// a write that blocked it would stop everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_ledger_write_waiting_on_the_lock_never_holds_up_the_runtime() {
    let (d, l) = ledger();
    let l = std::sync::Arc::new(l);
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (turned_tx, turned_rx) = std::sync::mpsc::channel::<()>();
    let path = d.path().join("l.db");
    let holder = std::thread::spawn(move || {
        let mut c = rusqlite::Connection::open(path).unwrap();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
        locked_tx.send(()).unwrap();
        // The lock is held until the runtime shows it still turns, or for 3 s if it never does
        // (under the 5 s busy timeout: the write then goes through either way).
        let turned = turned_rx.recv_timeout(std::time::Duration::from_secs(3)).is_ok();
        drop(tx);
        turned
    });
    locked_rx.recv().unwrap();
    let writer = tokio::spawn({
        let l = l.clone();
        async move { l.set_paused(true) }
    });
    let ticker = tokio::spawn(async move {
        for _ in 0..10 {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let _ = turned_tx.send(());
    });
    let turned = tokio::task::spawn_blocking(move || holder.join().unwrap()).await.unwrap();
    assert!(turned, "the runtime stood still while a ledger write waited on the lock");
    writer.await.unwrap().unwrap();
    ticker.await.unwrap();
    assert!(l.paused().unwrap(), "the write went through once the lock was released");
}

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
