//! The ledger file: bound to one chain, its schema refused or upgraded, every commit durable,
//! read-only opens that change nothing, and writes meeting a lock or a full disk.

use std::path::Path;

use super::super::schema::SCHEMA_V1;
use super::*;

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
