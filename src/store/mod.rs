//! The ledger: the block state machine and the EthProofs outbox, in SQLite (WAL). It is the
//! daemon's truth and its queue: every actor rebuilds its work from here when it starts, so a
//! `kill -9`, a lost network or an API outage loses nothing.
//!
//! - [`state`]: the block and report states and the one transition table.
//! - [`events`]: one method per business event, each one SQLite transaction over every table it
//!   touches, refusing a move the table does not allow.
//! - [`lines`]: the per-block read model that `report`, `/admin/blocks` and the dashboard read.
//! - this file: opening and migrating the file, the chain it belongs to, settings that outlive a
//!   restart (pause, the schedule's cursor), and the queries the actors rebuild their work from.
//!
//! Architecture invariant: only `store` knows SQL. A database that cannot be read, or a state
//! text this build does not know, is an error naming the file or row, never a silent default.

mod events;
mod gate;
mod lines;
mod program;
pub mod state;
mod story;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use events::{Accepted, CancelRequest, Enqueued, ExitRecord, Interrupted, OperatorProve, RunProcess, Settle};
pub use gate::WriteTrouble;
pub use lines::ReportLine;
pub use program::ProgramRecord;
pub use state::{BlockState, Move, ReportState};
pub use story::{Call, Moment, Story};

/// Schema versions this build can read; `migrate` brings older ones up to the last.
pub const SCHEMA_VERSION: i64 = 6;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the ledger {path} is unreadable or corrupt ({reason}); move it aside to start afresh, or restore it")]
    Corrupt { path: String, reason: String },
    #[error("the ledger {path} has schema version {found}, newer than this build knows ({known}); run a newer daemon")]
    TooNew { path: String, found: i64, known: i64 },
    #[error(
        "the ledger {path} has schema version {found}, older than this build's ({known}); a read-only command never upgrades it: start the daemon once"
    )]
    TooOld { path: String, found: i64, known: i64 },
    #[error("ledger {path}: {source}")]
    Sql { path: String, source: rusqlite::Error },
    /// Refused without trying: the last write failed for a reason that may pass, and its
    /// backoff has not run out.
    #[error("ledger {path}: not written, the last write failed ({error}); trying again in {retry_in_ms} ms")]
    Deferred { path: String, error: String, retry_in_ms: u64 },
    #[error("ledger {path}: {table} row {row} has state {text:?}, which this build does not know")]
    UnknownState { path: String, table: &'static str, row: i64, text: String },
    #[error("block {block}: {mv:?} is not allowed from {}", from.map_or("(unknown block)", |s| s.as_str()))]
    IllegalMove { block: u64, from: Option<BlockState>, mv: Move },
    #[error(
        "the ledger {path} belongs to chain {recorded}, but the node serves chain {found}; point OUTPUT_DIR (or DB_PATH) elsewhere for this chain"
    )]
    OtherChain { path: String, recorded: String, found: String },
}

impl StoreError {
    /// Whether the same write may succeed later: the database's lock held by another process,
    /// a full disk, an I/O error, a filesystem gone read-only. Such a failure is retried with
    /// backoff, never a reason to restart an actor or to give a block up.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::Deferred { .. } => true,
            StoreError::Sql { source: rusqlite::Error::SqliteFailure(e, _), .. } => {
                matches!(e.code, DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | ReadOnly)
            }
            _ => false,
        }
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

/// SQLite integers are signed: block numbers above `i64::MAX` cannot be stored, so they are
/// clamped (and such a block can never be fetched from a real node anyway).
pub(crate) fn sql_u64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn from_sql(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Who put a block in the ledger. Only the schedule's own targets move where scheduling resumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Schedule,
    Operator,
}

impl Origin {
    fn as_str(self) -> &'static str {
        match self {
            Origin::Schedule => "schedule",
            Origin::Operator => "operator",
        }
    }
}

/// What kind of EthProofs call a report row is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportKind {
    Queued,
    Proving,
    Proved,
}

impl ReportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Queued => "queued",
            ReportKind::Proving => "proving",
            ReportKind::Proved => "proved",
        }
    }

    fn parse(s: &str) -> Option<ReportKind> {
        [ReportKind::Queued, ReportKind::Proving, ReportKind::Proved].into_iter().find(|k| k.as_str() == s)
    }
}

/// The recorded process of a running proof, enough to recognise it (and only it) later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessRecord {
    pub pgid: u32,
    /// Start time of the group leader in clock ticks since boot (`/proc/<pid>/stat` field 22).
    pub start_ticks: u64,
    /// `/proc/sys/kernel/random/boot_id` when it started: ticks mean nothing across a reboot.
    pub boot_id: String,
}

#[derive(Debug, Clone)]
pub struct BlockRecord {
    pub number: u64,
    pub state: BlockState,
    pub origin: Origin,
    pub stage: Option<String>,
    pub reason: Option<String>,
    /// Prover runs started for this block.
    pub attempts: u32,
    /// Runs that ended because the daemon died under them (a graceful stop does not count).
    pub interruptions: u32,
    pub input_path: Option<PathBuf>,
    pub proof_path: Option<PathBuf>,
    /// SHA-256 of the proof, recorded with its acceptance, after the proof was fsynced.
    pub proof_sha256: Option<String>,
    /// The proof's size when the prover exited: a restart judges the run again against it.
    pub proof_bytes: Option<u64>,
    /// How the last prover run ended, as recorded the moment it ended.
    pub exit: Option<String>,
    pub run_started_at_ms: Option<i64>,
    pub process: Option<ProcessRecord>,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub block_hash: Option<String>,
    /// When the block became a target (the head was first seen at or past it).
    pub seen_at_ms: Option<i64>,
    /// The block's own timestamp (seconds), for block-to-proof latency.
    pub block_timestamp: Option<u64>,
    /// The coordinator's job for the current attempt, recorded before anything else happens to
    /// it: a restart re-attaches to it instead of proving again.
    pub job_id: Option<String>,
    /// The operator asked to cancel the running attempt.
    pub cancel_requested: bool,
    /// The guest's steps when it checked the input (`INPUT_CHECK=emulate`).
    pub guest_steps: Option<u64>,
}

/// One EthProofs call in the outbox.
#[derive(Debug, Clone)]
pub struct ReportRow {
    pub id: i64,
    pub block: u64,
    pub kind: ReportKind,
    pub state: ReportState,
    pub created_at_ms: i64,
    pub attempts: u32,
    /// Not to be sent before this time (backoff that survives a restart).
    pub next_attempt_at_ms: i64,
    /// A send was started and its answer never recorded: the API may already hold it.
    pub in_doubt: bool,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub proof_path: Option<PathBuf>,
    pub last_error: Option<String>,
    /// The SHA-256 the ledger recorded for the block's proof when it was accepted: the file
    /// sent must still hash to it.
    pub proof_sha256: Option<String>,
}

/// A block that left the canonical chain after work was done for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orphan {
    pub block: u64,
    /// The hash of the block the work was for.
    pub hash: Option<String>,
    /// Where its input and proof were kept.
    pub dir: Option<PathBuf>,
    pub reason: String,
}

/// A range of targets given up as one record (never one row per block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRange {
    pub first: u64,
    pub last: u64,
    pub count: u64,
    pub reason: String,
    pub at_ms: i64,
}

pub struct Ledger {
    conn: Mutex<Connection>,
    path: String,
    /// Failed writes and their backoff: what `/health` shows and what refuses writes meanwhile.
    gate: gate::WriteGate,
    /// Bumped by every committed write: the actors wake on it and look at their queues, so a
    /// ledger event needs no message to the actor concerned.
    changes: tokio::sync::watch::Sender<u64>,
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

const BLOCK_COLUMNS: &str = "number, state, origin, stage, reason, attempts, interruptions, input_path, proof_path,
    proof_sha256, exit, run_started_at, pgid, pgid_start_ticks, boot_id, proving_ms, cycles, block_hash, seen_at, block_timestamp, proof_bytes,
    job_id, cancel_requested, guest_steps";

const REPORT_COLUMNS: &str = "id, block, status, state, created_at, attempts, next_attempt_at, in_doubt, proving_ms, cycles, proof_path, last_error,
    (SELECT proof_sha256 FROM blocks WHERE blocks.number = reports.block)";

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
        // FULL: every commit is on the disk before the daemon acts on it (a call marked in doubt,
        // a proof accepted), so a power loss costs no committed transition, only the one under
        // way. NORMAL would be durable against a killed process but could lose the newest
        // commits to a power loss; a few fsyncs per block is no cost next to a proof.
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| corrupt(e.to_string()))?;
        let ledger = Ledger {
            conn: Mutex::new(conn),
            path: display,
            gate: Default::default(),
            changes: tokio::sync::watch::Sender::new(0),
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// Opens the ledger for reading only (`report`, `doctor`): never created, migrated or
    /// written, so a command run beside the daemon (or against an old ledger) changes nothing.
    /// A schema other than this build's is refused, naming it.
    pub fn open_read_only(path: &Path) -> Result<Ledger, StoreError> {
        let display = path.display().to_string();
        let corrupt = |reason: String| StoreError::Corrupt { path: display.clone(), reason };
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| corrupt(e.to_string()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(|e| corrupt(e.to_string()))?;
        let version: i64 =
            conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| corrupt(e.to_string()))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew { path: display, found: version, known: SCHEMA_VERSION });
        }
        if version < SCHEMA_VERSION {
            return Err(StoreError::TooOld { path: display, found: version, known: SCHEMA_VERSION });
        }
        Ok(Ledger {
            conn: Mutex::new(conn),
            path: display,
            gate: Default::default(),
            changes: tokio::sync::watch::Sender::new(0),
        })
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
        if version < 2 {
            tx.execute_batch(SCHEMA_V2).map_err(self.sql())?;
        }
        if version < 3 {
            tx.execute_batch(SCHEMA_V3).map_err(self.sql())?;
        }
        if version < 4 {
            tx.execute_batch(SCHEMA_V4).map_err(self.sql())?;
        }
        if version < 5 {
            tx.execute_batch(SCHEMA_V5).map_err(self.sql())?;
        }
        if version < 6 {
            tx.execute_batch(SCHEMA_V6).map_err(self.sql())?;
        }
        tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(self.sql())?;
        tx.commit().map_err(self.sql())
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    // ── settings that outlive a restart ────────────────────────────────────

    fn meta(&self, conn: &Connection, key: &str) -> Result<Option<String>, StoreError> {
        conn.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0))
            .optional()
            .map_err(self.sql())
    }

    /// Binds the ledger to a chain on first use, and refuses another chain afterwards.
    /// `identity` is the chain id and the genesis hash (or first block seen) as one string.
    pub fn bind_chain(&self, identity: &str) -> Result<(), StoreError> {
        let conn = self.lock();
        match self.meta(&conn, "chain")? {
            Some(recorded) if recorded == identity => Ok(()),
            Some(recorded) => {
                Err(StoreError::OtherChain { path: self.path.clone(), recorded, found: identity.to_string() })
            }
            None => conn
                .execute("INSERT INTO meta (key, value) VALUES ('chain', ?1)", params![identity])
                .map(|_| ())
                .map_err(self.sql()),
        }
    }

    /// The operator's pause, which survives restarts.
    pub fn paused(&self) -> Result<bool, StoreError> {
        let conn = self.lock();
        Ok(self.meta(&conn, "paused")?.as_deref() == Some("true"))
    }

    pub fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.write(|tx| self.set_meta_in(tx, "paused", if paused { "true" } else { "false" }))
    }

    /// Announces every committed write (a counter): what the actors wake on.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Writes failing for now (the lock held elsewhere, a full disk), if they are.
    pub fn write_trouble(&self) -> Option<WriteTrouble> {
        self.gate.trouble()
    }

    /// While writes are failing and their backoff has run out, an empty write transaction: the
    /// ledger's write lock taken and released, which ends the trouble if it has passed.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        if self.gate.trouble().is_none() || !self.write_retry_in().is_zero() {
            return Ok(());
        }
        self.write(|_| Ok(()))
    }

    /// How long until a write is tried for real again (zero when writes go through).
    pub fn write_retry_in(&self) -> std::time::Duration {
        self.gate.retry_in(std::time::Instant::now())
    }

    /// The newest target the schedule has handled (seen or skipped): where it resumes. Blocks the
    /// operator added and the outcomes of targets never move it.
    pub fn last_scheduled(&self) -> Result<Option<u64>, StoreError> {
        let conn = self.lock();
        Ok(self.meta(&conn, "last_scheduled")?.and_then(|v| v.parse().ok()))
    }

    /// A v1 ledger did not say which of its blocks the schedule chose and which the operator
    /// asked for (a typo far above the head among them), so its cursor is settled only once a
    /// believed head is known: the newest block at or below it. Returns the cursor it set, if any.
    pub fn settle_legacy_cursor(&self, head: u64) -> Result<Option<u64>, StoreError> {
        // Every head asks; only an upgraded ledger, once, needs the write.
        if self.meta(&self.lock(), "legacy_cursor")?.is_none() {
            return Ok(None);
        }
        self.write(|tx| {
            if self.meta(tx, "legacy_cursor")?.is_none() {
                return Ok(None);
            }
            let newest: Option<i64> = tx
                .query_row("SELECT MAX(number) FROM blocks WHERE number <= ?1", params![sql_u64(head)], |r| r.get(0))
                .map_err(self.sql())?;
            let cursor = newest.and_then(|n| u64::try_from(n).ok());
            if let Some(c) = cursor {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('last_scheduled', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = ?1 WHERE CAST(value AS INTEGER) < CAST(?1 AS INTEGER)",
                    params![c.to_string()],
                )
                .map_err(self.sql())?;
            }
            tx.execute("DELETE FROM meta WHERE key = 'legacy_cursor'", []).map_err(self.sql())?;
            Ok(cursor)
        })
    }

    // ── reads ───────────────────────────────────────────────────────────────

    fn blocks_where(&self, tail: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<BlockRecord>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("SELECT {BLOCK_COLUMNS} FROM blocks {tail}")).map_err(self.sql())?;
        let rows = stmt.query_map(values, raw_block).map_err(self.sql())?;
        let raw = rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?;
        raw.into_iter().map(|r| r.check(&self.path)).collect()
    }

    pub fn block(&self, n: u64) -> Result<Option<BlockRecord>, StoreError> {
        Ok(self.blocks_where("WHERE number = ?1", &[&sql_u64(n)])?.pop())
    }

    /// Blocks in any of `states`, oldest first.
    pub fn blocks_in(&self, states: &[BlockState]) -> Result<Vec<BlockRecord>, StoreError> {
        let list = states.iter().map(|s| format!("'{}'", s.as_str())).collect::<Vec<_>>().join(",");
        self.blocks_where(&format!("WHERE state IN ({list}) ORDER BY number"), &[])
    }

    /// The next input to prove: the oldest queued block.
    pub fn next_to_prove(&self) -> Result<Option<BlockRecord>, StoreError> {
        Ok(self.blocks_where("WHERE state IN ('queued', 'input_ready') ORDER BY number LIMIT 1", &[])?.pop())
    }

    /// Counts by state, for health and reports (skipped ranges count their blocks).
    pub fn counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(
                "SELECT state, SUM(n) FROM (
                     SELECT state, COUNT(*) AS n FROM blocks GROUP BY state
                     UNION ALL SELECT 'skipped', COALESCE(SUM(count), 0) FROM skipped_ranges)
                 GROUP BY state HAVING SUM(n) > 0 ORDER BY state",
            )
            .map_err(self.sql())?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?)))).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Rows of `sql` (which takes the limit as `?1`), mapped.
    fn newest<T>(
        &self,
        sql: &str,
        limit: u32,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(sql).map_err(self.sql())?;
        let rows = stmt.query_map(params![i64::from(limit)], map).map_err(self.sql())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
    }

    /// Blocks that left the canonical chain, newest first.
    pub fn orphans(&self, limit: u32) -> Result<Vec<Orphan>, StoreError> {
        self.newest("SELECT block, hash, dir, reason FROM orphans ORDER BY id DESC LIMIT ?1", limit, |r| {
            Ok(Orphan {
                block: from_sql(r.get(0)?),
                hash: r.get(1)?,
                dir: r.get::<_, Option<String>>(2)?.map(PathBuf::from),
                reason: r.get(3)?,
            })
        })
    }

    pub fn skipped_ranges(&self, limit: u32) -> Result<Vec<SkippedRange>, StoreError> {
        self.newest("SELECT first, last, count, reason, at FROM skipped_ranges ORDER BY id DESC LIMIT ?1", limit, |r| {
            Ok(SkippedRange {
                first: from_sql(r.get(0)?),
                last: from_sql(r.get(1)?),
                count: from_sql(r.get(2)?),
                reason: r.get(3)?,
                at_ms: r.get(4)?,
            })
        })
    }

    /// Every call not yet settled, in the order they were raised.
    pub fn pending_reports(&self) -> Result<Vec<ReportRow>, StoreError> {
        self.reports_where("WHERE state = 'pending' ORDER BY id", &[])
    }

    /// Every call about one block, in the order they were raised.
    pub fn reports_of(&self, block: u64) -> Result<Vec<ReportRow>, StoreError> {
        self.reports_where("WHERE block = ?1 ORDER BY id", &[&sql_u64(block)])
    }

    fn reports_where(&self, tail: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<ReportRow>, StoreError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!("SELECT {REPORT_COLUMNS} FROM reports {tail}")).map_err(self.sql())?;
        let rows = stmt.query_map(values, raw_report).map_err(self.sql())?;
        let raw = rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?;
        raw.into_iter().map(|r| r.check(&self.path)).collect()
    }

    /// The state of a block's call of one kind, if it exists.
    pub fn report_state(&self, block: u64, kind: ReportKind) -> Result<Option<ReportState>, StoreError> {
        Ok(self.reports_of(block)?.into_iter().find(|r| r.kind == kind).map(|r| r.state))
    }
}

/// A blocks row as read, before its state text is checked.
struct RawBlock {
    state: String,
    record: BlockRecord,
    origin: String,
}

impl RawBlock {
    fn check(self, path: &str) -> Result<BlockRecord, StoreError> {
        let unknown = |text: String| StoreError::UnknownState {
            path: path.to_string(),
            table: "blocks",
            row: sql_u64(self.record.number),
            text,
        };
        let state = BlockState::parse(&self.state).ok_or_else(|| unknown(self.state.clone()))?;
        let origin = match self.origin.as_str() {
            "schedule" => Origin::Schedule,
            "operator" => Origin::Operator,
            other => return Err(unknown(format!("origin {other}"))),
        };
        Ok(BlockRecord { state, origin, ..self.record })
    }
}

fn raw_block(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawBlock> {
    let opt_u64 = |v: Option<i64>| v.map(from_sql);
    let pgid: Option<i64> = r.get(12)?;
    let ticks: Option<i64> = r.get(13)?;
    let boot: Option<String> = r.get(14)?;
    let process = match (pgid, ticks, boot) {
        (Some(pgid), Some(ticks), Some(boot_id)) => {
            Some(ProcessRecord { pgid: u32::try_from(pgid).unwrap_or(0), start_ticks: from_sql(ticks), boot_id })
        }
        _ => None,
    };
    Ok(RawBlock {
        state: r.get(1)?,
        origin: r.get(2)?,
        record: BlockRecord {
            number: from_sql(r.get(0)?),
            state: BlockState::Seen,
            origin: Origin::Schedule,
            stage: r.get(3)?,
            reason: r.get(4)?,
            attempts: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
            interruptions: u32::try_from(r.get::<_, i64>(6)?).unwrap_or(u32::MAX),
            input_path: r.get::<_, Option<String>>(7)?.map(PathBuf::from),
            proof_path: r.get::<_, Option<String>>(8)?.map(PathBuf::from),
            proof_sha256: r.get(9)?,
            exit: r.get(10)?,
            run_started_at_ms: r.get(11)?,
            process,
            proving_ms: opt_u64(r.get(15)?),
            cycles: opt_u64(r.get(16)?),
            block_hash: r.get(17)?,
            seen_at_ms: r.get(18)?,
            block_timestamp: opt_u64(r.get(19)?),
            proof_bytes: opt_u64(r.get(20)?),
            job_id: r.get(21)?,
            cancel_requested: r.get::<_, i64>(22)? != 0,
            guest_steps: opt_u64(r.get(23)?),
        },
    })
}

struct RawReport {
    kind: String,
    state: String,
    row: ReportRow,
}

impl RawReport {
    fn check(self, path: &str) -> Result<ReportRow, StoreError> {
        let unknown = |text: String| StoreError::UnknownState {
            path: path.to_string(),
            table: "reports",
            row: self.row.id,
            text,
        };
        let kind = ReportKind::parse(&self.kind).ok_or_else(|| unknown(format!("status {}", self.kind)))?;
        let state = ReportState::parse(&self.state).ok_or_else(|| unknown(self.state.clone()))?;
        Ok(ReportRow { kind, state, ..self.row })
    }
}

fn raw_report(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawReport> {
    Ok(RawReport {
        kind: r.get(2)?,
        state: r.get(3)?,
        row: ReportRow {
            id: r.get(0)?,
            block: from_sql(r.get(1)?),
            kind: ReportKind::Queued,
            state: ReportState::Pending,
            created_at_ms: r.get(4)?,
            attempts: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
            next_attempt_at_ms: r.get(6)?,
            in_doubt: r.get::<_, i64>(7)? != 0,
            proving_ms: r.get::<_, Option<i64>>(8)?.map(from_sql),
            cycles: r.get::<_, Option<i64>>(9)?.map(from_sql),
            proof_path: r.get::<_, Option<String>>(10)?.map(PathBuf::from),
            last_error: r.get(11)?,
            proof_sha256: r.get(12)?,
        },
    })
}

#[cfg(test)]
mod tests;
