//! The ledger: the block state machine and the EthProofs outbox, in SQLite (WAL). It is the
//! daemon's truth and its queue: every actor rebuilds its work from here when it starts, so a
//! `kill -9`, a lost network or an API outage loses nothing.
//!
//! - [`state`]: the block and report states and the one transition table.
//! - `tx`: one transaction per event (IMMEDIATE, behind `gate`, announced on commit) and the
//!   guarded move; `gate`: writes failing for now and their backoff.
//! - [`events`]: one method per block event; `outbox`: the EthProofs calls' events. Each is one
//!   SQLite transaction over every table it touches, refusing a move the table does not allow.
//! - `records`: the rows as the daemon reads them (a block's record, a call, an orphan);
//!   `reads`: the queries the actors rebuild their work from; [`lines`] and `story`: the read
//!   models of `report`, `/admin/blocks`, the dashboard and the block page.
//! - `schema`: one batch per schema version and the upgrade; `error`: [`StoreError`].
//! - this file: opening the file, the connection (off tokio's workers), the chain it belongs
//!   to, and settings that outlive a restart (pause, the schedule's cursor).
//!
//! Architecture invariant: only `store` knows SQL. A database that cannot be read, or a state
//! text this build does not know, is an error naming the file or row, never a silent default.

mod cohort;
mod error;
mod events;
mod gate;
mod job;
mod lines;
mod outbox;
mod program;
mod reads;
mod records;
mod run_end;
mod schema;
mod state;
mod story;
mod tx;

use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

pub use cohort::{SkippedFacts, TargetFacts};
pub use error::StoreError;
pub use events::{Accepted, CancelRequest, Enqueued, ExitRecord, Interrupted, OperatorProve, RunProcess};
pub use gate::WriteTrouble;
pub use job::RecordedJob;
pub use lines::ReportLine;
pub use outbox::Settle;
pub use program::ProgramRecord;
pub use records::{BlockRecord, JobInDoubt, Origin, Orphan, ProcessRecord, ReportKind, ReportRow, SkippedRange};
pub use run_end::Acceptance;
pub use state::{BlockState, Move, ReportState, Stage};
pub use story::{EarlierRun, Moment, Story, StoryCall};

/// Schema versions this build can read; `migrate` brings older ones up to the last.
pub const SCHEMA_VERSION: i64 = 10;

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

/// Which actors' queues commits changed, as counts of commits: the supervisor wakes an actor
/// only when its count moved. A commit that changed no queue (a process recorded, a call marked
/// in doubt, a write probe) wakes nobody.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    /// Commits that made a block a target to build (`seen`): the InputGenerator's queue.
    pub to_build: u64,
    /// Commits that queued a block to prove, or asked a run to stop: the Prover's.
    pub to_prove: u64,
    /// Commits that raised or replaced an EthProofs call: the Reporter's.
    pub to_report: u64,
}

impl Changes {
    fn count(&mut self, touched: Queues) {
        let bump = |n: &mut u64, q: Queues| *n = n.wrapping_add(u64::from(touched.0 & q.0 != 0));
        bump(&mut self.to_build, Queues::BUILD);
        bump(&mut self.to_prove, Queues::PROVE);
        bump(&mut self.to_report, Queues::REPORT);
    }
}

/// The queues one transaction changed, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queues(u8);

impl Queues {
    pub(crate) const BUILD: Queues = Queues(1);
    pub(crate) const PROVE: Queues = Queues(2);
    pub(crate) const REPORT: Queues = Queues(4);
    /// The operator's pause or resume: every actor looks again.
    pub(crate) const ALL: Queues = Queues(7);
}

pub struct Ledger {
    conn: Mutex<Connection>,
    path: String,
    /// Failed writes and their backoff: what `/health` shows and what refuses writes meanwhile.
    gate: gate::WriteGate,
    /// Which actors' queues commits changed: an actor wakes when its own counter moves and looks
    /// at its queue, so a ledger event needs no message to the actor concerned.
    changes: tokio::sync::watch::Sender<Changes>,
    /// The queues the transaction under way touched (`Queues` bits), gathered as it runs; the
    /// connection's mutex keeps it to one transaction at a time.
    touched: std::sync::atomic::AtomicU8,
    /// Every write fails as on a full disk (the chaos run's injected fault).
    #[cfg(test)]
    full: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.path).finish()
    }
}

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
            changes: tokio::sync::watch::Sender::new(Changes::default()),
            touched: Default::default(),
            #[cfg(test)]
            full: Default::default(),
        };
        ledger.migrate()?;
        Ok(ledger)
    }

    /// A ledger that lives in memory, for one process (a replay whose backend keeps no records
    /// writes no file).
    pub fn open_in_memory() -> Result<Ledger, StoreError> {
        Ledger::open(Path::new(":memory:"))
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
            changes: tokio::sync::watch::Sender::new(Changes::default()),
            touched: Default::default(),
            #[cfg(test)]
            full: Default::default(),
        })
    }

    fn sql(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |source| StoreError::Sql { path: self.path.clone(), source }
    }

    /// Runs `f` on the ledger's connection without holding a tokio worker: on a worker of a
    /// multi-threaded runtime the worker first hands its other tasks to a fresh one
    /// (`block_in_place`), so a slow disk, a busy lock or a long query stalls only the caller,
    /// never the runtime (probes, other actors). Elsewhere (a blocking-pool thread, a command,
    /// a current-thread runtime in tests) it simply runs.
    fn conn<T>(&self, f: impl FnOnce(&mut Connection) -> T) -> T {
        let run = || f(&mut self.conn.lock().unwrap_or_else(|p| p.into_inner()));
        match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
                tokio::task::block_in_place(run)
            }
            _ => run(),
        }
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.conn(|conn| {
            let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(self.sql())?;
            if version > SCHEMA_VERSION {
                return Err(StoreError::TooNew { path: self.path.clone(), found: version, known: SCHEMA_VERSION });
            }
            let tx = conn.transaction().map_err(self.sql())?;
            schema::upgrade(&tx, version).map_err(self.sql())?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(self.sql())?;
            tx.commit().map_err(self.sql())
        })
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
        self.conn(|conn| match self.meta(conn, "chain")? {
            Some(recorded) if recorded == identity => Ok(()),
            Some(recorded) => {
                Err(StoreError::OtherChain { path: self.path.clone(), recorded, found: identity.to_string() })
            }
            None => conn
                .execute("INSERT INTO meta (key, value) VALUES ('chain', ?1)", params![identity])
                .map(|_| ())
                .map_err(self.sql()),
        })
    }

    /// The operator's pause, which survives restarts.
    pub fn paused(&self) -> Result<bool, StoreError> {
        self.conn(|conn| Ok(self.meta(conn, "paused")?.as_deref() == Some("true")))
    }

    pub fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            self.touch(Queues::ALL);
            self.set_meta_in(tx, "paused", if paused { "true" } else { "false" })
        })
    }

    /// Makes every write fail as SQLite fails on a full disk (`SQLITE_FULL`), or stops.
    #[cfg(test)]
    pub(crate) fn disk_full(&self, full: bool) {
        self.full.store(full, std::sync::atomic::Ordering::SeqCst);
    }

    /// Announces which queues committed writes changed: what the actors wake on.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<Changes> {
        self.changes.subscribe()
    }

    /// Notes that the transaction under way changed `queues` (announced if it commits).
    pub(super) fn touch(&self, queues: Queues) {
        self.touched.fetch_or(queues.0, std::sync::atomic::Ordering::Relaxed);
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
        self.conn(|conn| Ok(self.meta(conn, "last_scheduled")?.and_then(|v| v.parse().ok())))
    }

    /// A v1 ledger did not say which of its blocks the schedule chose and which the operator
    /// asked for (a typo far above the head among them), so its cursor is settled only once a
    /// believed head is known: the newest block at or below it. Returns the cursor it set, if any.
    pub fn settle_legacy_cursor(&self, head: u64) -> Result<Option<u64>, StoreError> {
        // Every head asks; only an upgraded ledger, once, needs the write.
        if self.conn(|c| self.meta(c, "legacy_cursor"))?.is_none() {
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
}

#[cfg(test)]
mod tests;
