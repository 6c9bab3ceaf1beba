//! The machinery every ledger event runs on: one transaction (taken IMMEDIATE, behind the
//! write gate, announced on commit), the block's checked state, the one guarded move of the
//! transition table, and raising an EthProofs call.

use std::path::Path;

use rusqlite::{OptionalExtension, Transaction, params};

use super::state::{BlockState, Move, allowed};
use super::{Ledger, Origin, Queues, ReportKind, StoreError, now_ms, sql_u64};

fn state_of(tx: &Transaction<'_>, n: u64) -> rusqlite::Result<Option<String>> {
    tx.query_row("SELECT state FROM blocks WHERE number = ?1", params![sql_u64(n)], |r| r.get(0)).optional()
}

impl Ledger {
    pub(super) fn meta_in(&self, tx: &Transaction<'_>, key: &str) -> Result<Option<String>, StoreError> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", params![key], |r| r.get(0)).optional().map_err(self.sql())
    }

    pub(super) fn set_meta_in(&self, tx: &Transaction<'_>, key: &str, value: &str) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
            params![key, value],
        )
        .map(|_| ())
        .map_err(self.sql())
    }

    /// One transaction, or none: a failure that may pass (see [`StoreError::is_transient`])
    /// starts a backoff during which writes are refused at once ([`super::gate`]).
    pub(super) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        if let Err((error, wait)) = self.gate.admit(std::time::Instant::now()) {
            let retry_in_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
            return Err(StoreError::Deferred { path: self.path.clone(), error, retry_in_ms });
        }
        let result = self.transact(f);
        match &result {
            Ok((_, touched)) => {
                if touched.0 != 0 {
                    self.changes.send_modify(|c| c.count(*touched));
                }
                if let Some(trouble) = self.gate.succeeded() {
                    let failing_s = trouble.since.elapsed().map_or(0, |d| d.as_secs());
                    tracing::warn!(failures = trouble.failures, failing_s, "the ledger is written again");
                }
            }
            Err(e) if e.is_transient() => {
                let error = match e {
                    StoreError::Sql { source, .. } => source.to_string(),
                    other => other.to_string(),
                };
                // The backoff counts from the failure, not from before the busy wait.
                if self.gate.failed(error, std::time::Instant::now()) {
                    tracing::error!(error = %e, "a ledger write failed; retrying with backoff, the daemon is not ready meanwhile");
                }
            }
            Err(_) => {}
        }
        result.map(|(value, _)| value)
    }

    /// Runs `f` in one transaction; with its value, the queues it touched.
    fn transact<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<(T, Queues), StoreError> {
        #[cfg(test)]
        if self.full.load(std::sync::atomic::Ordering::SeqCst) {
            let full = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL);
            let source = rusqlite::Error::SqliteFailure(full, Some("database or disk is full".into()));
            return Err(StoreError::Sql { path: self.path.clone(), source });
        }
        self.conn(|conn| {
            // IMMEDIATE: the write lock is taken (waiting up to the busy timeout) before anything is
            // read, so a lock held elsewhere is a plain "busy", never a stale snapshot half-way.
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(self.sql())?;
            self.touched.store(0, std::sync::atomic::Ordering::Relaxed);
            let value = f(&tx)?;
            tx.commit().map_err(self.sql())?;
            Ok((value, Queues(self.touched.swap(0, std::sync::atomic::Ordering::Relaxed))))
        })
    }

    /// The block's state, checked: unknown text is an error naming the row.
    pub(super) fn current(&self, tx: &Transaction<'_>, n: u64) -> Result<Option<BlockState>, StoreError> {
        match state_of(tx, n).map_err(self.sql())? {
            None => Ok(None),
            Some(text) => BlockState::parse(&text).map(Some).ok_or(StoreError::UnknownState {
                path: self.path.clone(),
                table: "blocks",
                row: sql_u64(n),
                text,
            }),
        }
    }

    /// Applies `mv` to block `n` (which must exist) and sets `extra` (`, col = ?3 …`).
    pub(super) fn apply(
        &self,
        tx: &Transaction<'_>,
        n: u64,
        mv: Move,
        extra: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<BlockState, StoreError> {
        let from = self.current(tx, n)?;
        let to = allowed(from, mv).ok_or(StoreError::IllegalMove { block: n, from, mv })?;
        match to {
            BlockState::Seen => self.touch(Queues::BUILD),
            BlockState::Queued => self.touch(Queues::PROVE),
            _ => {}
        }
        let column = match to {
            BlockState::Seen => "seen_at",
            BlockState::InputReady => "input_ready_at",
            BlockState::Queued => "queued_at",
            BlockState::Proving => "proving_at",
            BlockState::Exited => "exited_at",
            BlockState::Proved => "proved_at",
            BlockState::Executed => "executed_at",
            BlockState::Failed => "failed_at",
            BlockState::Skipped => "skipped_at",
        };
        let (number, at) = (sql_u64(n), now_ms());
        let mut all: Vec<&dyn rusqlite::ToSql> = vec![&number, &at];
        all.extend_from_slice(values);
        let state = to.as_str();
        // `seen_at` is when the block first became a target (`report --since` counts from it): a
        // block run again or built again after a reorg keeps it.
        let stamp = if to == BlockState::Seen { "COALESCE(seen_at, ?2)" } else { "?2" };
        let sql = format!("UPDATE blocks SET state = '{state}', {column} = {stamp} {extra} WHERE number = ?1");
        tx.execute(&sql, all.as_slice()).map_err(self.sql())?;
        Ok(to)
    }

    /// Keeps the block's finished run in `earlier_runs` before it is run again, saying who asked.
    pub(super) fn keep_run(&self, tx: &Transaction<'_>, n: u64, by: &str) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO earlier_runs (block, outcome, stage, reason, attempts, proving_ms, cycles, started_at, ended_at,
                                       replaced_at, replaced_by)
             SELECT number, state, stage, reason, attempts, proving_ms, cycles, proving_at,
                    COALESCE(proved_at, executed_at, failed_at, skipped_at), ?2, ?3
             FROM blocks WHERE number = ?1",
            params![sql_u64(n), now_ms(), by],
        )
        .map(|_| ())
        .map_err(self.sql())
    }

    /// `SELECT COUNT(*) … WHERE block = ?1 …` for one block.
    pub(super) fn count(&self, tx: &Transaction<'_>, sql: &str, block: u64) -> Result<i64, StoreError> {
        tx.query_row(sql, params![sql_u64(block)], |r| r.get(0)).map_err(self.sql())
    }

    pub(super) fn insert_seen(&self, tx: &Transaction<'_>, n: u64, origin: Origin) -> Result<(), StoreError> {
        self.touch(Queues::BUILD);
        tx.execute(
            "INSERT INTO blocks (number, state, origin, seen_at) VALUES (?1, 'seen', ?2, ?3)",
            params![sql_u64(n), origin.as_str(), now_ms()],
        )
        .map(|_| ())
        .map_err(self.sql())
    }

    /// Writes a call to the outbox unless it exists, or unless it is a `queued` for a block whose
    /// `proving` or `proved` is already there (a late `queued` moves the site's row back).
    pub(super) fn raise(
        &self,
        tx: &Transaction<'_>,
        block: u64,
        kind: ReportKind,
        proved: Option<(u64, Option<u64>, &Path)>,
    ) -> Result<(), StoreError> {
        self.touch(Queues::REPORT);
        if kind == ReportKind::Queued {
            let later = self.count(
                tx,
                "SELECT COUNT(*) FROM reports WHERE block = ?1 AND status IN ('proving', 'proved')",
                block,
            )?;
            if later > 0 {
                return Ok(());
            }
        }
        let (ms, cycles, path) = match proved {
            Some((ms, cycles, path)) => (Some(sql_u64(ms)), cycles.map(sql_u64), Some(path.display().to_string())),
            None => (None, None, None),
        };
        tx.execute(
            "INSERT OR IGNORE INTO reports (block, status, state, created_at, proving_ms, cycles, proof_path)
             VALUES (?1, ?2, 'pending', ?3, ?4, ?5, ?6)",
            params![sql_u64(block), kind.as_str(), now_ms(), ms, cycles, path],
        )
        .map_err(self.sql())?;
        Ok(())
    }
}
