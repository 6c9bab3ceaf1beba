//! The ledger: what happened to every target block and to every EthProofs call about it, in
//! SQLite (WAL), so a `kill -9`, a lost network or an API outage loses nothing.
//!
//! Blocks move `seen → input_ready → queued → proving → proved`, or end `failed` (with stage,
//! reason and attempts) or `skipped`; each transition is timestamped. `proved` is terminal: no
//! later write moves a block out of it. Reports are an outbox: a call is written here before it
//! is sent, and its outcome after; `UNIQUE(block, status)` makes each call exist once.
//!
//! Architecture invariant: only `store` knows SQL. A database that cannot be read is an error
//! at start-up, never a silent reset.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

/// Schema versions this build can read; `migrate` brings older ones up to the last.
pub const SCHEMA_VERSION: i64 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the ledger {path} is unreadable or corrupt ({reason}); move it aside to start afresh, or restore it")]
    Corrupt { path: String, reason: String },
    #[error("the ledger {path} has schema version {found}, newer than this build knows ({known}); run a newer daemon")]
    TooNew { path: String, found: i64, known: i64 },
    #[error("ledger {path}: {source}")]
    Sql { path: String, source: rusqlite::Error },
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockState {
    Seen,
    InputReady,
    Queued,
    Proving,
    Proved,
    Failed,
    Skipped,
}

impl BlockState {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockState::Seen => "seen",
            BlockState::InputReady => "input_ready",
            BlockState::Queued => "queued",
            BlockState::Proving => "proving",
            BlockState::Proved => "proved",
            BlockState::Failed => "failed",
            BlockState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> BlockState {
        match s {
            "input_ready" => BlockState::InputReady,
            "queued" => BlockState::Queued,
            "proving" => BlockState::Proving,
            "proved" => BlockState::Proved,
            "failed" => BlockState::Failed,
            "skipped" => BlockState::Skipped,
            _ => BlockState::Seen,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BlockRecord {
    pub number: u64,
    pub state: BlockState,
    pub stage: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub input_path: Option<PathBuf>,
    pub proof_path: Option<PathBuf>,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
}

/// One EthProofs call in the outbox.
#[derive(Debug, Clone)]
pub struct ReportRow {
    pub id: i64,
    pub block: u64,
    pub status: String,
    pub created_at_ms: i64,
    pub attempts: u32,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub proof_path: Option<PathBuf>,
}

pub struct Ledger {
    conn: Mutex<Connection>,
    path: String,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

const SCHEMA_V1: &str = "
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

impl Ledger {
    /// Opens (creating if absent) and migrates the ledger. Refuses a file that is not a healthy
    /// database of a schema this build knows.
    pub fn open(path: &Path) -> Result<Ledger, StoreError> {
        let display = path.display().to_string();
        let corrupt = |reason: String| StoreError::Corrupt { path: display.clone(), reason };
        let conn = Connection::open(path).map_err(|e| corrupt(e.to_string()))?;
        let check: String =
            conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| corrupt(e.to_string()))?;
        if check != "ok" {
            return Err(corrupt(check));
        }
        conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| corrupt(e.to_string()))?;
        // NORMAL is durable against a killed process (the WAL is in the OS), which is the
        // failure this ledger exists for; FULL would add an fsync per transition.
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| corrupt(e.to_string()))?;
        let ledger = Ledger { conn: Mutex::new(conn), path: display };
        ledger.migrate()?;
        Ok(ledger)
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql { path: self.path.clone(), source }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.sql())?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: self.path.clone(), found: version, known: SCHEMA_VERSION });
        }
        let tx = conn.transaction().map_err(self.sql())?;
        if version < 1 {
            tx.execute_batch(SCHEMA_V1).map_err(self.sql())?;
        }
        // Later schema versions add their steps here, each `if version < N`.
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(self.sql())?;
        tx.commit().map_err(self.sql())
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// A new target. Does nothing if the block is already known.
    pub fn mark_seen(&self, n: u64) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "INSERT OR IGNORE INTO blocks (number, state, seen_at) VALUES (?1, 'seen', ?2)",
                params![n as i64, now_ms()],
            )
            .map(|_| ())
            .map_err(self.sql())
    }

    fn transition(
        &self,
        n: u64,
        state: BlockState,
        extra: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<(), StoreError> {
        let column = format!("{}_at", state.as_str());
        let sql = format!(
            "INSERT INTO blocks (number, state, {column}) VALUES (?1, ?2, ?3)
             ON CONFLICT(number) DO UPDATE SET state = ?2, {column} = ?3 {extra}
             WHERE blocks.state != 'proved'"
        );
        let (number, name, at) = (n as i64, state.as_str(), now_ms());
        let mut all: Vec<&dyn rusqlite::ToSql> = vec![&number, &name, &at];
        all.extend_from_slice(values);
        self.lock().execute(&sql, all.as_slice()).map(|_| ()).map_err(self.sql())
    }

    pub fn mark_skipped(&self, n: u64, reason: &str) -> Result<(), StoreError> {
        self.transition(n, BlockState::Skipped, ", reason = ?4", &[&reason])
    }

    pub fn mark_input_ready(
        &self,
        n: u64,
        input_path: &Path,
        gas_used: u64,
        tx_count: usize,
        block_hash: &str,
        input_ms: u64,
    ) -> Result<(), StoreError> {
        let path = input_path.display().to_string();
        self.transition(
            n,
            BlockState::InputReady,
            ", input_path = ?4, gas_used = ?5, tx_count = ?6, block_hash = ?7, input_ms = ?8",
            &[&path, &(gas_used as i64), &(tx_count as i64), &block_hash, &(input_ms as i64)],
        )
    }

    pub fn mark_queued(&self, n: u64) -> Result<(), StoreError> {
        self.transition(n, BlockState::Queued, "", &[])
    }

    /// Returns the attempt number this proving run is.
    pub fn mark_proving(&self, n: u64) -> Result<u32, StoreError> {
        self.transition(n, BlockState::Proving, ", attempts = blocks.attempts + 1", &[])?;
        Ok(self.block(n)?.map_or(1, |b| b.attempts))
    }

    pub fn mark_proved(
        &self,
        n: u64,
        proof_path: Option<&Path>,
        proving_ms: u64,
        cycles: Option<u64>,
    ) -> Result<(), StoreError> {
        let path = proof_path.map(|p| p.display().to_string());
        self.transition(
            n,
            BlockState::Proved,
            ", proof_path = ?4, proving_ms = ?5, cycles = ?6, stage = NULL, reason = NULL",
            &[&path, &(proving_ms as i64), &cycles.map(|c| c as i64)],
        )
    }

    pub fn mark_failed(&self, n: u64, stage: &str, reason: &str) -> Result<(), StoreError> {
        self.transition(n, BlockState::Failed, ", stage = ?4, reason = ?5", &[&stage, &reason])
    }

    pub fn block(&self, n: u64) -> Result<Option<BlockRecord>, StoreError> {
        self.lock()
            .query_row(
                "SELECT number, state, stage, reason, attempts, input_path, proof_path, proving_ms, cycles
                 FROM blocks WHERE number = ?1",
                params![n as i64],
                row_to_block,
            )
            .optional()
            .map_err(self.sql())
    }

    /// The newest target the ledger knows: where backfill resumes from.
    pub fn last_target(&self) -> Result<Option<u64>, StoreError> {
        self.lock()
            .query_row("SELECT MAX(number) FROM blocks", [], |r| r.get::<_, Option<i64>>(0))
            .map(|v| v.map(|n| n as u64))
            .map_err(self.sql())
    }

    /// Blocks a previous run left unfinished, oldest first.
    pub fn unfinished(&self) -> Result<Vec<BlockRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT number, state, stage, reason, attempts, input_path, proof_path, proving_ms, cycles
                 FROM blocks WHERE state IN ('seen', 'input_ready', 'queued', 'proving') ORDER BY number",
            )
            .map_err(self.sql())?;
        let rows = stmt.query_map([], row_to_block).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Counts by state, for health and reports.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT state, COUNT(*) FROM blocks GROUP BY state ORDER BY state").map_err(self.sql())?;
        let rows =
            stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    // ── outbox ──────────────────────────────────────────────────────────────

    /// Writes a call to the outbox; `None` if this (block, status) call already exists, or if it
    /// is a `queued` for a block whose `proving` is already there (that would move the block back).
    pub fn add_report(
        &self,
        block: u64,
        status: &str,
        proving_ms: Option<u64>,
        cycles: Option<u64>,
        proof_path: Option<&Path>,
    ) -> Result<Option<ReportRow>, StoreError> {
        let conn = self.lock();
        if status == "queued" {
            let later: i64 = conn
                .query_row(
                    "SELECT COUNT(*) FROM reports WHERE block = ?1 AND status IN ('proving', 'proved')",
                    params![block as i64],
                    |r| r.get(0),
                )
                .map_err(self.sql())?;
            if later > 0 {
                return Ok(None);
            }
        }
        let created = now_ms();
        let path = proof_path.map(|p| p.display().to_string());
        let inserted = conn
            .execute(
                "INSERT OR IGNORE INTO reports (block, status, state, created_at, proving_ms, cycles, proof_path)
                 VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6)",
                params![block as i64, status, created, proving_ms.map(|v| v as i64), cycles.map(|v| v as i64), path],
            )
            .map_err(self.sql())?;
        if inserted == 0 {
            return Ok(None);
        }
        Ok(Some(ReportRow {
            id: conn.last_insert_rowid(),
            block,
            status: status.to_string(),
            created_at_ms: created,
            attempts: 0,
            proving_ms,
            cycles,
            proof_path: proof_path.map(Path::to_path_buf),
        }))
    }

    /// Writes the `proved` call for proved blocks that were being reported (queued or proving is
    /// in the outbox) but have none: the process died between recording the proof and its call.
    pub fn add_missing_proved_reports(&self) -> Result<Vec<u64>, StoreError> {
        // (block, proving ms, cycles, proof path)
        type Missing = (u64, Option<u64>, Option<u64>, Option<PathBuf>);
        let missing: Vec<Missing> = {
            let conn = self.lock();
            let mut stmt = conn
                .prepare(
                    "SELECT number, proving_ms, cycles, proof_path FROM blocks b
                     WHERE state = 'proved' AND proof_path IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.block = b.number AND r.status = 'proved')
                       AND EXISTS (SELECT 1 FROM reports r WHERE r.block = b.number AND r.status IN ('queued', 'proving'))
                     ORDER BY number",
                )
                .map_err(self.sql())?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, i64>(0)? as u64,
                        r.get::<_, Option<i64>>(1)?.map(|v| v as u64),
                        r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                        r.get::<_, Option<String>>(3)?.map(PathBuf::from),
                    ))
                })
                .map_err(self.sql())?;
            rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?
        };
        let mut added = Vec::new();
        for (block, ms, cycles, path) in missing {
            if self.add_report(block, "proved", ms, cycles, path.as_deref())?.is_some() {
                added.push(block);
            }
        }
        Ok(added)
    }

    /// Every call not yet settled, in the order they were raised.
    pub fn pending_reports(&self) -> Result<Vec<ReportRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT id, block, status, created_at, attempts, proving_ms, cycles, proof_path
                 FROM reports WHERE state = 'pending' ORDER BY id",
            )
            .map_err(self.sql())?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ReportRow {
                    id: r.get(0)?,
                    block: r.get::<_, i64>(1)? as u64,
                    status: r.get(2)?,
                    created_at_ms: r.get(3)?,
                    attempts: r.get::<_, i64>(4)? as u32,
                    proving_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    cycles: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                    proof_path: r.get::<_, Option<String>>(7)?.map(PathBuf::from),
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Settles a call: `done`, `already_proved` or `failed` (with the reason).
    pub fn settle_report(&self, id: i64, state: &str, error: Option<&str>) -> Result<(), StoreError> {
        self.lock()
            .execute(
                "UPDATE reports SET state = ?2, last_error = COALESCE(?3, last_error), done_at = ?4,
                 attempts = attempts + 1 WHERE id = ?1",
                params![id, state, error, now_ms()],
            )
            .map(|_| ())
            .map_err(self.sql())
    }

    /// Records a failed attempt that will be retried.
    pub fn retry_report(&self, id: i64, error: &str) -> Result<u32, StoreError> {
        let conn = self.lock();
        conn.execute("UPDATE reports SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1", params![id, error])
            .map_err(self.sql())?;
        conn.query_row("SELECT attempts FROM reports WHERE id = ?1", params![id], |r| r.get::<_, i64>(0))
            .map(|a| a as u32)
            .map_err(self.sql())
    }

    /// The state of a block's call, if it exists (`pending`, `done`, `already_proved`, `failed`).
    pub fn report_state(&self, block: u64, status: &str) -> Result<Option<String>, StoreError> {
        self.lock()
            .query_row(
                "SELECT state FROM reports WHERE block = ?1 AND status = ?2",
                params![block as i64, status],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.sql())
    }
}

/// One target block as `ethproofs-daemon report` prints it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReportLine {
    pub block: u64,
    pub outcome: String,
    pub stage: Option<String>,
    pub reason: Option<String>,
    pub gas_used: Option<u64>,
    pub tx_count: Option<u64>,
    pub input_ms: Option<u64>,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub attempts: u32,
    pub seen_at_ms: Option<i64>,
    pub proved_at_ms: Option<i64>,
    /// When EthProofs accepted the `proved` call.
    pub reported_at_ms: Option<i64>,
    /// State of the `proved` call in the outbox, if any.
    pub report_state: Option<String>,
}

impl Ledger {
    /// Every target first seen at or after `since_ms`, oldest first.
    pub fn report_lines(&self, since_ms: i64) -> Result<Vec<ReportLine>, StoreError> {
        self.query_lines("COALESCE(b.seen_at, b.skipped_at, b.failed_at, 0) >= ?1 ORDER BY b.number", &[&since_ms])
    }

    /// Blocks joined with their `proved` call, filtered and ordered by `tail` (a WHERE body).
    fn query_lines(&self, tail: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<ReportLine>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT b.number, b.state, b.stage, b.reason, b.gas_used, b.tx_count, b.input_ms, b.proving_ms,
                        b.cycles, b.attempts, b.seen_at, b.proved_at, r.done_at, r.state
                 FROM blocks b LEFT JOIN reports r ON r.block = b.number AND r.status = 'proved'
                 WHERE {tail}"
            ))
            .map_err(self.sql())?;
        let opt_u64 = |v: Option<i64>| v.map(|v| v as u64);
        let rows = stmt
            .query_map(values, |r| {
                let report_state: Option<String> = r.get(13)?;
                let done_at: Option<i64> = r.get(12)?;
                Ok(ReportLine {
                    block: r.get::<_, i64>(0)? as u64,
                    outcome: r.get(1)?,
                    stage: r.get(2)?,
                    reason: r.get(3)?,
                    gas_used: opt_u64(r.get(4)?),
                    tx_count: opt_u64(r.get(5)?),
                    input_ms: opt_u64(r.get(6)?),
                    proving_ms: opt_u64(r.get(7)?),
                    cycles: opt_u64(r.get(8)?),
                    attempts: r.get::<_, i64>(9)? as u32,
                    seen_at_ms: r.get(10)?,
                    proved_at_ms: r.get(11)?,
                    reported_at_ms: done_at.filter(|_| report_state.as_deref() == Some("done")),
                    report_state,
                })
            })
            .map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// `(expected, proved)` targets first seen at or after `since_ms` (skipped ones count as expected).
    pub fn reliability(&self, since_ms: i64) -> Result<(u64, u64), StoreError> {
        self.lock()
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(state = 'proved'), 0) FROM blocks
                 WHERE COALESCE(seen_at, skipped_at, failed_at, 0) >= ?1",
                params![since_ms],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
            )
            .map_err(self.sql())
    }

    /// The newest proved block, and the newest whose `proved` call EthProofs accepted.
    pub fn last_proved_and_reported(&self) -> Result<(Option<u64>, Option<u64>), StoreError> {
        let conn = self.lock();
        let proved: Option<i64> = conn
            .query_row("SELECT MAX(number) FROM blocks WHERE state = 'proved'", [], |r| r.get(0))
            .map_err(self.sql())?;
        let reported: Option<i64> = conn
            .query_row(
                "SELECT MAX(block) FROM reports WHERE status = 'proved' AND state IN ('done', 'already_proved')",
                [],
                |r| r.get(0),
            )
            .map_err(self.sql())?;
        Ok((proved.map(|v| v as u64), reported.map(|v| v as u64)))
    }

    /// Recent blocks for the admin API, newest first, optionally of one state.
    /// The dashboard polls this: a bounded query, not a scan of the whole ledger into memory.
    pub fn recent_blocks(&self, state: Option<&str>, limit: u32) -> Result<Vec<ReportLine>, StoreError> {
        self.query_lines("(?1 IS NULL OR b.state = ?1) ORDER BY b.number DESC LIMIT ?2", &[&state, &i64::from(limit)])
    }

    /// Forgets a block's `proved` call so it can be sent again (admin resubmit). The call must
    /// have been settled; a pending one is already going out.
    pub fn reopen_proved_report(&self, block: u64) -> Result<Option<ReportRow>, StoreError> {
        let record = self.block(block)?;
        let Some(record) = record.filter(|b| b.state == BlockState::Proved) else { return Ok(None) };
        {
            let conn = self.lock();
            conn.execute(
                "DELETE FROM reports WHERE block = ?1 AND status = 'proved' AND state != 'pending'",
                params![block as i64],
            )
            .map_err(self.sql())?;
        }
        self.add_report(block, "proved", record.proving_ms, record.cycles, record.proof_path.as_deref())
    }
}

fn row_to_block(r: &rusqlite::Row<'_>) -> rusqlite::Result<BlockRecord> {
    Ok(BlockRecord {
        number: r.get::<_, i64>(0)? as u64,
        state: BlockState::parse(&r.get::<_, String>(1)?),
        stage: r.get(2)?,
        reason: r.get(3)?,
        attempts: r.get::<_, i64>(4)? as u32,
        input_path: r.get::<_, Option<String>>(5)?.map(PathBuf::from),
        proof_path: r.get::<_, Option<String>>(6)?.map(PathBuf::from),
        proving_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
        cycles: r.get::<_, Option<i64>>(8)?.map(|v| v as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger() -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let l = Ledger::open(&dir.path().join("l.db")).unwrap();
        (dir, l)
    }

    #[test]
    fn a_block_moves_through_its_states_and_proved_is_final() {
        let (_d, l) = ledger();
        l.mark_seen(100).unwrap();
        l.mark_input_ready(100, Path::new("out/100/input.bin"), 21000, 1, "0xab", 12).unwrap();
        l.mark_queued(100).unwrap();
        assert_eq!(l.mark_proving(100).unwrap(), 1);
        l.mark_proved(100, Some(Path::new("out/100/proof.bin")), 1234, Some(99)).unwrap();
        l.mark_failed(100, "prove", "late failure").unwrap();
        let b = l.block(100).unwrap().unwrap();
        assert_eq!(b.state, BlockState::Proved);
        assert_eq!((b.proving_ms, b.cycles, b.attempts), (Some(1234), Some(99), 1));
        assert!(l.unfinished().unwrap().is_empty());
        assert_eq!(l.last_target().unwrap(), Some(100));
    }

    #[test]
    fn survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.db");
        {
            let l = Ledger::open(&path).unwrap();
            l.mark_seen(200).unwrap();
            l.mark_proving(200).unwrap();
            l.add_report(200, "queued", None, None, None).unwrap();
        }
        let l = Ledger::open(&path).unwrap();
        let un = l.unfinished().unwrap();
        assert_eq!(un.len(), 1);
        assert_eq!((un[0].state, un[0].attempts), (BlockState::Proving, 1));
        assert_eq!(l.pending_reports().unwrap().len(), 1);
    }

    #[test]
    fn the_outbox_holds_each_call_once_and_never_queued_after_proving() {
        let (_d, l) = ledger();
        assert!(l.add_report(300, "proving", None, None, None).unwrap().is_some());
        assert!(l.add_report(300, "proving", None, None, None).unwrap().is_none());
        assert!(l.add_report(300, "queued", None, None, None).unwrap().is_none());
        let proved = l.add_report(300, "proved", Some(5), Some(6), Some(Path::new("p"))).unwrap().unwrap();
        let pending = l.pending_reports().unwrap();
        assert_eq!(pending.iter().map(|r| r.status.as_str()).collect::<Vec<_>>(), ["proving", "proved"]);
        assert_eq!(l.retry_report(proved.id, "HTTP 500").unwrap(), 1);
        l.settle_report(proved.id, "done", None).unwrap();
        assert_eq!(l.report_state(300, "proved").unwrap().as_deref(), Some("done"));
        assert_eq!(l.pending_reports().unwrap().len(), 1);
    }

    #[test]
    fn report_lines_join_the_proved_call() {
        let (_d, l) = ledger();
        l.mark_seen(10).unwrap();
        l.mark_input_ready(10, Path::new("i"), 21000, 1, "0x1", 7).unwrap();
        l.mark_proving(10).unwrap();
        l.mark_proved(10, Some(Path::new("p")), 1500, Some(42)).unwrap();
        let r = l.add_report(10, "proved", Some(1500), Some(42), Some(Path::new("p"))).unwrap().unwrap();
        l.settle_report(r.id, "done", None).unwrap();
        l.mark_seen(11).unwrap();
        l.mark_failed(11, "input", "no witness").unwrap();
        let lines = l.report_lines(0).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            (lines[0].outcome.as_str(), lines[0].proving_ms, lines[0].input_ms),
            ("proved", Some(1500), Some(7))
        );
        assert!(lines[0].reported_at_ms.is_some());
        assert_eq!((lines[1].outcome.as_str(), lines[1].stage.as_deref()), ("failed", Some("input")));
        assert!(l.report_lines(i64::MAX).unwrap().is_empty());
        let newest: Vec<u64> = l.recent_blocks(None, 1).unwrap().iter().map(|b| b.block).collect();
        assert_eq!(newest, vec![11]);
        let proved: Vec<u64> = l.recent_blocks(Some("proved"), 10).unwrap().iter().map(|b| b.block).collect();
        assert_eq!(proved, vec![10]);
        let again = l.reopen_proved_report(10).unwrap().expect("reopened");
        assert_eq!(again.status, "proved");
        assert!(l.reopen_proved_report(11).unwrap().is_none(), "only proved blocks");
    }

    #[test]
    fn a_proved_block_that_lost_its_report_gets_it_back() {
        let (_d, l) = ledger();
        l.mark_proving(40).unwrap();
        l.add_report(40, "proving", None, None, None).unwrap();
        l.mark_proved(40, Some(Path::new("p40")), 9, None).unwrap();
        l.mark_proving(41).unwrap();
        l.mark_proved(41, Some(Path::new("p41")), 9, None).unwrap();
        assert_eq!(l.add_missing_proved_reports().unwrap(), vec![40], "41 was never being reported");
        assert!(l.add_missing_proved_reports().unwrap().is_empty());
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
}
