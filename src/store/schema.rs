//! The ledger's schema, one batch per version, and the upgrade from any older version (run in
//! the caller's transaction, so an upgrade is whole or not at all).

use rusqlite::Transaction;

pub(super) const SCHEMA_V1: &str = "
CREATE TABLE blocks (
    number INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    stage TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    seen_at INTEGER, input_ready_at INTEGER, queued_at INTEGER, proving_at INTEGER,
    proved_at INTEGER, failed_at INTEGER, skipped_at INTEGER,
    input_path TEXT, proof_path TEXT,
    cycles INTEGER, proving_ms INTEGER, input_ms INTEGER,
    gas_used INTEGER, tx_count INTEGER, block_hash TEXT
);
CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    block INTEGER NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    done_at INTEGER,
    proving_ms INTEGER, cycles INTEGER, proof_path TEXT,
    UNIQUE(block, status)
);
CREATE INDEX reports_pending ON reports(state, id);
";

/// v2: the state machine's bookkeeping (origin, exit, proof digest, the running process, the
/// interruption count), the outbox's backoff and in-doubt mark, settings and skipped ranges.
const SCHEMA_V2: &str = "
ALTER TABLE blocks ADD COLUMN origin TEXT NOT NULL DEFAULT 'schedule';
ALTER TABLE blocks ADD COLUMN interruptions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE blocks ADD COLUMN exit TEXT;
ALTER TABLE blocks ADD COLUMN proof_sha256 TEXT;
ALTER TABLE blocks ADD COLUMN proof_bytes INTEGER;
ALTER TABLE blocks ADD COLUMN run_started_at INTEGER;
ALTER TABLE blocks ADD COLUMN pgid INTEGER;
ALTER TABLE blocks ADD COLUMN pgid_start_ticks INTEGER;
ALTER TABLE blocks ADD COLUMN boot_id TEXT;
ALTER TABLE blocks ADD COLUMN exited_at INTEGER;
ALTER TABLE blocks ADD COLUMN executed_at INTEGER;
ALTER TABLE blocks ADD COLUMN orphaned_at INTEGER;
ALTER TABLE blocks ADD COLUMN block_timestamp INTEGER;
ALTER TABLE reports ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE reports ADD COLUMN in_doubt INTEGER NOT NULL DEFAULT 0;
CREATE INDEX blocks_state ON blocks(state);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE orphans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    block INTEGER NOT NULL, hash TEXT, dir TEXT, reason TEXT NOT NULL, at INTEGER NOT NULL
);
CREATE TABLE skipped_ranges (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    first INTEGER NOT NULL, last INTEGER NOT NULL, count INTEGER NOT NULL,
    reason TEXT NOT NULL, at INTEGER NOT NULL
);
INSERT INTO meta (key, value) SELECT 'legacy_cursor', 'pending' WHERE EXISTS (SELECT 1 FROM blocks);
";

/// v3: the coordinator backend's job per attempt, and the operator's cancel.
const SCHEMA_V3: &str = "
ALTER TABLE blocks ADD COLUMN job_id TEXT;
ALTER TABLE blocks ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
";

/// v4: the guest's own check of the input (`INPUT_CHECK=emulate`): when, and its step count.
const SCHEMA_V4: &str = "
ALTER TABLE blocks ADD COLUMN checked_at INTEGER;
ALTER TABLE blocks ADD COLUMN guest_steps INTEGER;
";

/// Every coordinator job other than a block's prove job (input checks, set-ups), recorded
/// before it is pushed or followed, so none runs on the cluster unknown to the ledger.
const SCHEMA_V5: &str = "
CREATE TABLE IF NOT EXISTS coordinator_jobs (
    job_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    hash_id TEXT NOT NULL,
    block INTEGER,
    attempt INTEGER,
    submitted_at INTEGER NOT NULL
);
";

/// v6: the calls an operator's resubmit replaced, kept with when they were replaced, so a
/// block's history of EthProofs calls is never lost.
const SCHEMA_V6: &str = "
CREATE TABLE IF NOT EXISTS earlier_reports (
    id INTEGER PRIMARY KEY,
    block INTEGER NOT NULL,
    status TEXT NOT NULL,
    state TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    done_at INTEGER,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    replaced_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS earlier_reports_block ON earlier_reports(block);
";

/// v7: the lists of recent blocks (the dashboard, `/admin/blocks`) are ordered by each block's
/// latest transition; indexed on that expression, so a poll reads `LIMIT` rows, not the ledger.
/// The expression must stay the one `lines::LAST_MOVE` orders by.
const SCHEMA_V7: &str = "
CREATE INDEX IF NOT EXISTS blocks_last_move ON blocks(MAX(COALESCE(seen_at, 0), COALESCE(input_ready_at, 0),
    COALESCE(queued_at, 0), COALESCE(proving_at, 0), COALESCE(checked_at, 0), COALESCE(exited_at, 0),
    COALESCE(proved_at, 0), COALESCE(executed_at, 0), COALESCE(failed_at, 0), COALESCE(skipped_at, 0),
    COALESCE(orphaned_at, 0)));
";

/// v8: what the block's proof must commit to (`commitment::BlockOutputs`, hex), recorded when
/// its input is built; what an accepted proof was checked for (`verify::ProofCheck::fingerprint`); proofs found by their digest (a proof's bytes recorded for another block
/// are refused).
const SCHEMA_V8: &str = "
ALTER TABLE blocks ADD COLUMN expected_output TEXT;
ALTER TABLE blocks ADD COLUMN proof_checked TEXT;
CREATE INDEX IF NOT EXISTS blocks_proof_sha256 ON blocks(proof_sha256);
";

/// v9: what the pages read on every poll stays cheap on a ledger of millions of blocks. The
/// count of blocks per state is kept by triggers in the same transaction as the move (so it is
/// never a scan of the ledger, and never out of step with it); the targets first seen since a
/// time are read through an index on that expression (it must stay the one `lines` filters
/// on); the newest accepted `proved` call through an index on its status. A prove job whose
/// submission's answer was lost is remembered (its identity, and the deadline by which the
/// coordinator has ended it), so the block is not submitted again before then.
const SCHEMA_V9: &str = "
CREATE TABLE IF NOT EXISTS state_counts (state TEXT PRIMARY KEY, n INTEGER NOT NULL);
DELETE FROM state_counts;
INSERT INTO state_counts (state, n) SELECT state, COUNT(*) FROM blocks GROUP BY state;
CREATE TRIGGER IF NOT EXISTS blocks_counted_in AFTER INSERT ON blocks BEGIN
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT(state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS blocks_counted_out AFTER DELETE ON blocks BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER IF NOT EXISTS blocks_counted_move AFTER UPDATE OF state ON blocks WHEN OLD.state IS NOT NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    INSERT INTO state_counts (state, n) VALUES (NEW.state, 1) ON CONFLICT(state) DO UPDATE SET n = n + 1;
END;
CREATE INDEX IF NOT EXISTS blocks_first_seen ON blocks(COALESCE(seen_at, skipped_at, failed_at, 0));
CREATE INDEX IF NOT EXISTS reports_by_status ON reports(status, state, block);
ALTER TABLE blocks ADD COLUMN job_submission TEXT;
ALTER TABLE blocks ADD COLUMN job_in_doubt_until INTEGER;
";

/// v10: a block run again (the operator's `prove`, prove mode taking back executed blocks) keeps
/// the run it replaces: its outcome, times and figures, and who asked for the new one.
const SCHEMA_V10: &str = "
CREATE TABLE IF NOT EXISTS earlier_runs (
    block INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    stage TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL,
    proving_ms INTEGER,
    cycles INTEGER,
    started_at INTEGER,
    ended_at INTEGER,
    replaced_at INTEGER NOT NULL,
    replaced_by TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS earlier_runs_block ON earlier_runs(block);
";

/// Brings a ledger of schema `from` up to the newest, in `tx`.
pub(super) fn upgrade(tx: &Transaction<'_>, from: i64) -> rusqlite::Result<()> {
    for (version, batch) in
        [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_V4, SCHEMA_V5, SCHEMA_V6, SCHEMA_V7, SCHEMA_V8, SCHEMA_V9, SCHEMA_V10]
            .into_iter()
            .enumerate()
    {
        if from <= version as i64 {
            tx.execute_batch(batch)?;
        }
    }
    Ok(())
}
