//! One method per business event, each one SQLite transaction over every table it touches.
//! A move the transition table ([`super::state::allowed`]) does not allow is an error and
//! changes nothing.

use std::path::Path;

use rusqlite::{OptionalExtension, Transaction, params};

use super::state::{BlockState, Move, ReportState, allowed};
use super::{Ledger, Origin, ProcessRecord, ReportKind, ReportRow, StoreError, now_ms, sql_u64};

/// What an operator's `prove` did to each block asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OperatorProve {
    /// New to the ledger, or taken back from failed / executed / skipped.
    pub added: Vec<u64>,
    /// Already being built or proved: not started twice.
    pub in_progress: Vec<u64>,
    pub already_proved: Vec<u64>,
}

/// The process of a run, recorded as soon as it exists.
pub type RunProcess = ProcessRecord;

/// How a prover run ended, recorded the moment it ended.
#[derive(Debug, Clone)]
pub struct ExitRecord<'a> {
    /// `code 0`, `signal 9`, `timeout`, `spawn failed: …`.
    pub exit: &'a str,
    /// The proof this run wrote, and its size.
    pub proof: Option<(&'a Path, u64)>,
    /// The run's proving time and cycles as its outputs gave them (or its wall time).
    pub proving_ms: u64,
    pub cycles: Option<u64>,
}

/// A proof as accepted: its figures and the digest of the durable file.
#[derive(Debug, Clone, Copy)]
pub struct Accepted<'a> {
    pub proving_ms: u64,
    pub cycles: Option<u64>,
    pub sha256: &'a str,
}

/// What an operator's cancel found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelRequest {
    /// The running attempt is asked to stop; the block ends failed at stage `cancelled`.
    Requested,
    /// Not being proved: the block's state, if it is in the ledger at all.
    NotProving(Option<String>),
}

/// What became of an interrupted run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interrupted {
    Requeued,
    GaveUp(String),
}

/// A block whose input is ready, with what the `queued` call needs.
#[derive(Debug, Clone)]
pub struct Enqueued<'a> {
    pub input_path: &'a Path,
    pub gas_used: u64,
    pub tx_count: u64,
    pub block_hash: &'a str,
    pub input_ms: u64,
    /// The block's own timestamp (seconds since the epoch).
    pub timestamp: u64,
}

/// How the API's answer settles a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settle {
    Done,
    /// 409: the block is proved there; its other pending calls are not needed any more.
    AlreadyProved,
    Failed(String),
    /// Try again at `next_at_ms`.
    Retry {
        error: String,
        next_at_ms: i64,
    },
}

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
            Ok(_) => {
                self.changes.send_modify(|n| *n = n.wrapping_add(1));
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
        result
    }

    fn transact<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let mut conn = self.lock();
        // IMMEDIATE: the write lock is taken (waiting up to the busy timeout) before anything is
        // read, so a lock held elsewhere is a plain "busy", never a stale snapshot half-way.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).map_err(self.sql())?;
        let value = f(&tx)?;
        tx.commit().map_err(self.sql())?;
        Ok(value)
    }

    /// The block's state, checked: unknown text is an error naming the row.
    fn current(&self, tx: &Transaction<'_>, n: u64) -> Result<Option<BlockState>, StoreError> {
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
    fn apply(
        &self,
        tx: &Transaction<'_>,
        n: u64,
        mv: Move,
        extra: &str,
        values: &[&dyn rusqlite::ToSql],
    ) -> Result<BlockState, StoreError> {
        let from = self.current(tx, n)?;
        let to = allowed(from, mv).ok_or(StoreError::IllegalMove { block: n, from, mv })?;
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
        let sql = format!("UPDATE blocks SET state = '{state}', {column} = ?2 {extra} WHERE number = ?1");
        tx.execute(&sql, all.as_slice()).map_err(self.sql())?;
        Ok(to)
    }

    /// `SELECT COUNT(*) … WHERE block = ?1 …` for one block.
    fn count(&self, tx: &Transaction<'_>, sql: &str, block: u64) -> Result<i64, StoreError> {
        tx.query_row(sql, params![sql_u64(block)], |r| r.get(0)).map_err(self.sql())
    }

    fn insert_seen(&self, tx: &Transaction<'_>, n: u64, origin: Origin) -> Result<(), StoreError> {
        tx.execute(
            "INSERT INTO blocks (number, state, origin, seen_at) VALUES (?1, 'seen', ?2, ?3)",
            params![sql_u64(n), origin.as_str(), now_ms()],
        )
        .map(|_| ())
        .map_err(self.sql())
    }

    /// Writes a call to the outbox unless it exists, or unless it is a `queued` for a block whose
    /// `proving` or `proved` is already there (a late `queued` moves the site's row back).
    fn raise(
        &self,
        tx: &Transaction<'_>,
        block: u64,
        kind: ReportKind,
        proved: Option<(u64, Option<u64>, &Path)>,
    ) -> Result<(), StoreError> {
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

    // ── blocks ──────────────────────────────────────────────────────────────

    /// The schedule handled every target up to `cursor`: `targets` become `seen` (a block the
    /// operator already added keeps its row), a range given up is one record, and the cursor
    /// moves. Returns the targets that are new to the ledger.
    pub fn targets_scheduled(
        &self,
        targets: &[u64],
        skipped: Option<(u64, u64, u64, &str)>,
        cursor: u64,
    ) -> Result<Vec<u64>, StoreError> {
        self.write(|tx| {
            let mut new = Vec::new();
            for &n in targets {
                if self.current(tx, n)?.is_none() {
                    self.insert_seen(tx, n, Origin::Schedule)?;
                    new.push(n);
                }
            }
            if let Some((first, last, count, reason)) = skipped {
                tx.execute(
                    "INSERT INTO skipped_ranges (first, last, count, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![sql_u64(first), sql_u64(last), sql_u64(count), reason, now_ms()],
                )
                .map_err(self.sql())?;
            }
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('last_scheduled', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = ?1 WHERE CAST(value AS INTEGER) < CAST(?1 AS INTEGER)",
                params![cursor.to_string()],
            )
            .map_err(self.sql())?;
            Ok(new)
        })
    }

    /// The operator asks for blocks: new ones and settled-but-unproved ones start over; blocks
    /// in flight or proved are left alone. Never moves the schedule's cursor.
    pub fn operator_prove(&self, blocks: &[u64]) -> Result<OperatorProve, StoreError> {
        self.write(|tx| {
            let mut out = OperatorProve::default();
            for &n in blocks {
                match self.current(tx, n)? {
                    None => {
                        self.insert_seen(tx, n, Origin::Operator)?;
                        out.added.push(n);
                    }
                    Some(BlockState::Proved) => out.already_proved.push(n),
                    Some(s) if s.in_flight() => out.in_progress.push(n),
                    Some(_) => {
                        self.apply(tx, n, Move::Reprove, ", stage = NULL, reason = NULL, interruptions = 0", &[])?;
                        out.added.push(n);
                    }
                }
            }
            Ok(out)
        })
    }

    /// In prove mode, blocks that were only executed are proved after all.
    pub fn reopen_executed(&self) -> Result<Vec<u64>, StoreError> {
        self.write(|tx| {
            let executed: Vec<i64> = {
                let mut stmt = tx
                    .prepare("SELECT number FROM blocks WHERE state = 'executed' ORDER BY number")
                    .map_err(self.sql())?;
                let rows = stmt.query_map([], |r| r.get(0)).map_err(self.sql())?;
                rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?
            };
            let mut reopened = Vec::new();
            for n in executed.into_iter().filter_map(|n| u64::try_from(n).ok()) {
                self.apply(tx, n, Move::Reprove, ", stage = NULL, reason = NULL, interruptions = 0", &[])?;
                reopened.push(n);
            }
            Ok(reopened)
        })
    }

    /// A queued block's input file is missing: build it again.
    pub fn input_lost(&self, n: u64) -> Result<(), StoreError> {
        self.write(|tx| self.apply(tx, n, Move::InputLost, "", &[]).map(|_| ()))
    }

    /// The input is on disk: the block waits for the prover, and `queued` is raised.
    pub fn input_built(&self, n: u64, built: &Enqueued<'_>, report: bool) -> Result<(), StoreError> {
        self.write(|tx| {
            let path = built.input_path.display().to_string();
            self.apply(
                tx,
                n,
                Move::InputBuilt,
                ", input_path = ?3, gas_used = ?4, tx_count = ?5, block_hash = ?6, input_ms = ?7, block_timestamp = ?8",
                &[
                    &path,
                    &sql_u64(built.gas_used),
                    &sql_u64(built.tx_count),
                    &built.block_hash,
                    &sql_u64(built.input_ms),
                    &sql_u64(built.timestamp),
                ],
            )?;
            if report {
                self.raise(tx, n, ReportKind::Queued, None)?;
            }
            Ok(())
        })
    }

    pub fn input_failed(&self, n: u64, stage: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            self.apply(tx, n, Move::InputFailed, ", stage = ?3, reason = ?4", &[&stage, &reason]).map(|_| ())
        })
    }

    /// A prover run starts: its attempt number is returned, and `proving` is raised.
    pub fn proof_started(&self, n: u64, report: bool) -> Result<u32, StoreError> {
        self.write(|tx| {
            self.apply(
                tx,
                n,
                Move::ProofStarted,
                ", attempts = attempts + 1, run_started_at = ?2, exit = NULL, proof_sha256 = NULL, proof_bytes = NULL,
                 pgid = NULL, pgid_start_ticks = NULL, boot_id = NULL, job_id = NULL, cancel_requested = 0",
                &[],
            )?;
            if report {
                self.raise(tx, n, ReportKind::Proving, None)?;
            }
            let attempts: i64 = tx
                .query_row("SELECT attempts FROM blocks WHERE number = ?1", params![sql_u64(n)], |r| r.get(0))
                .map_err(self.sql())?;
            Ok(u32::try_from(attempts).unwrap_or(u32::MAX))
        })
    }

    /// The run's process exists: recorded so that a later start can recognise (and end) it.
    pub fn prover_process(&self, n: u64, attempt: u32, process: &RunProcess) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE blocks SET pgid = ?3, pgid_start_ticks = ?4, boot_id = ?5
                 WHERE number = ?1 AND attempts = ?2 AND state = 'proving'",
                params![
                    sql_u64(n),
                    i64::from(attempt),
                    i64::from(process.pgid),
                    sql_u64(process.start_ticks),
                    process.boot_id
                ],
            )
            .map(|_| ())
            .map_err(self.sql())
        })
    }

    /// The coordinator accepted the attempt's job: recorded before anything else happens to it,
    /// so a restart re-attaches rather than proving again. `false` if the block is no longer in
    /// that attempt (nothing is changed).
    pub fn job_submitted(&self, n: u64, attempt: u32, job_id: &str) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE blocks SET job_id = ?3 WHERE number = ?1 AND attempts = ?2 AND state = 'proving'",
                    params![sql_u64(n), i64::from(attempt), job_id],
                )
                .map_err(self.sql())?;
            Ok(changed == 1)
        })
    }

    /// The guest ran the attempt's input and accepted it, in `steps` (`INPUT_CHECK=emulate`).
    pub fn input_checked(&self, n: u64, attempt: u32, steps: Option<u64>) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE blocks SET checked_at = ?3, guest_steps = ?4 WHERE number = ?1 AND attempts = ?2 AND state = 'proving'",
                params![sql_u64(n), i64::from(attempt), now_ms(), steps.map(sql_u64)],
            )
            .map(|_| ())
            .map_err(self.sql())
        })
    }

    /// The operator asks to cancel the block's running attempt; only a block being proved can be.
    pub fn operator_cancel(&self, n: u64) -> Result<CancelRequest, StoreError> {
        self.write(|tx| {
            let state: Option<String> = tx
                .query_row("SELECT state FROM blocks WHERE number = ?1", params![sql_u64(n)], |r| r.get(0))
                .optional()
                .map_err(self.sql())?;
            match state.as_deref() {
                Some("proving") => {
                    tx.execute("UPDATE blocks SET cancel_requested = 1 WHERE number = ?1", params![sql_u64(n)])
                        .map_err(self.sql())?;
                    Ok(CancelRequest::Requested)
                }
                other => Ok(CancelRequest::NotProving(other.map(str::to_string))),
            }
        })
    }

    /// The run ended: how, and the proof it wrote, before anything is judged.
    pub fn prover_exited(&self, n: u64, exit: &ExitRecord<'_>) -> Result<(), StoreError> {
        self.write(|tx| {
            let (path, bytes) = match exit.proof {
                Some((p, b)) => (Some(p.display().to_string()), Some(sql_u64(b))),
                None => (None, None),
            };
            self.apply(
                tx,
                n,
                Move::ProverExited,
                ", exit = ?3, proof_path = ?4, proof_bytes = ?5, proving_ms = ?6, cycles = ?7,
                 pgid = NULL, pgid_start_ticks = NULL, boot_id = NULL",
                &[&exit.exit, &path, &bytes, &sql_u64(exit.proving_ms), &exit.cycles.map(sql_u64)],
            )
            .map(|_| ())
        })
    }

    /// The judged run is a proof, fsynced with its directory and hashed: the block is proved
    /// and `proved` is raised with it.
    pub fn proof_accepted(&self, n: u64, accepted: &Accepted<'_>, report: bool) -> Result<(), StoreError> {
        let Accepted { proving_ms, cycles, sha256 } = *accepted;
        self.write(|tx| {
            self.apply(
                tx,
                n,
                Move::ProofAccepted,
                ", proving_ms = ?3, cycles = ?4, proof_sha256 = ?5, stage = NULL, reason = NULL",
                &[&sql_u64(proving_ms), &cycles.map(sql_u64), &sha256],
            )?;
            if report {
                let path: Option<String> = tx
                    .query_row("SELECT proof_path FROM blocks WHERE number = ?1", params![sql_u64(n)], |r| r.get(0))
                    .map_err(self.sql())?;
                if let Some(path) = path {
                    self.raise(tx, n, ReportKind::Proved, Some((proving_ms, cycles, Path::new(&path))))?;
                }
            }
            Ok(())
        })
    }

    /// The run (or its start) failed with a stage and a reason.
    pub fn proof_failed(&self, n: u64, stage: &str, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            self.apply(tx, n, Move::ProofFailed, ", stage = ?3, reason = ?4, pgid = NULL", &[&stage, &reason])
                .map(|_| ())
        })
    }

    /// `native` / `execute` ran: recorded as executed, never as proved.
    pub fn executed(&self, n: u64, ms: u64, cycles: Option<u64>) -> Result<(), StoreError> {
        self.write(|tx| {
            self.apply(
                tx,
                n,
                Move::ExecutedNatively,
                ", proving_ms = ?3, cycles = ?4, stage = NULL, reason = NULL",
                &[&sql_u64(ms), &cycles.map(sql_u64)],
            )
            .map(|_| ())
        })
    }

    /// A run that did not end by itself. A graceful stop (`counted = false`) puts the block back
    /// without counting; a run the daemon died under counts, and past `max` the block fails.
    pub fn proof_interrupted(&self, n: u64, counted: bool, max: u32) -> Result<Interrupted, StoreError> {
        self.write(|tx| {
            let interruptions: i64 = tx
                .query_row("SELECT interruptions FROM blocks WHERE number = ?1", params![sql_u64(n)], |r| r.get(0))
                .optional()
                .map_err(self.sql())?
                .unwrap_or(0);
            let interruptions = interruptions + i64::from(counted);
            if counted && interruptions >= i64::from(max) {
                let reason = format!(
                    "interrupted while proving {interruptions} time(s) (MAX_PROVE_ATTEMPTS = {max}); not tried again"
                );
                self.apply(
                    tx,
                    n,
                    Move::GaveUp,
                    ", interruptions = ?3, stage = 'prove', reason = ?4, pgid = NULL",
                    &[&interruptions, &reason],
                )?;
                return Ok(Interrupted::GaveUp(reason));
            }
            self.apply(
                tx,
                n,
                Move::ProofInterrupted,
                ", interruptions = ?3, pgid = NULL, job_id = NULL, cancel_requested = 0",
                &[&interruptions],
            )?;
            Ok(Interrupted::Requeued)
        })
    }

    /// The block the input was built from left the canonical chain: it is recorded as an orphan
    /// (its files kept in `dir`), and the block at this height is built and proved afresh. A
    /// proof of the orphan is never accepted, so no `proved` is ever raised for it.
    pub fn block_reorged(
        &self,
        n: u64,
        old_hash: Option<&str>,
        dir: Option<&Path>,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            self.apply(
                tx,
                n,
                Move::Reorged,
                ", input_path = NULL, proof_path = NULL, proof_sha256 = NULL, proof_bytes = NULL, exit = NULL,
                 block_hash = NULL, pgid = NULL, pgid_start_ticks = NULL, boot_id = NULL, stage = NULL, reason = ?3",
                &[&reason],
            )?;
            tx.execute(
                "INSERT INTO orphans (block, hash, dir, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sql_u64(n), old_hash, dir.map(|d| d.display().to_string()), reason, now_ms()],
            )
            .map_err(self.sql())?;
            Ok(())
        })
    }

    // ── outbox ──────────────────────────────────────────────────────────────

    /// A send is about to start: until its answer is recorded the call is in doubt.
    pub fn report_sending(&self, id: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute("UPDATE reports SET in_doubt = 1 WHERE id = ?1 AND state = 'pending'", params![id])
                .map(|_| ())
                .map_err(self.sql())
        })
    }

    /// The API answered (or the call is given up).
    pub fn report_settled(&self, row: &ReportRow, settle: &Settle) -> Result<(), StoreError> {
        self.write(|tx| {
            let (state, error) = match settle {
                Settle::Done => (ReportState::Done, None),
                Settle::AlreadyProved => (ReportState::AlreadyProved, None),
                Settle::Failed(reason) => (ReportState::Failed, Some(reason.as_str())),
                Settle::Retry { error, next_at_ms } => {
                    tx.execute(
                        "UPDATE reports SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3, in_doubt = 0
                         WHERE id = ?1 AND state = 'pending'",
                        params![row.id, error, next_at_ms],
                    )
                    .map_err(self.sql())?;
                    return Ok(());
                }
            };
            // Settled meanwhile (superseded by a 409 on another call): nothing to move.
            if !self.settle_call(tx, row.id, state, error)? {
                return Ok(());
            }
            if state == ReportState::AlreadyProved {
                // "Stop for this block": its other queued/proving calls would only be refused.
                let others: Vec<i64> = {
                    let mut stmt = tx
                        .prepare("SELECT id FROM reports WHERE block = ?1 AND status IN ('queued', 'proving')")
                        .map_err(self.sql())?;
                    let ids = stmt.query_map(params![sql_u64(row.block)], |r| r.get(0)).map_err(self.sql())?;
                    ids.collect::<Result<_, _>>().map_err(self.sql())?
                };
                for id in others {
                    self.settle_call(tx, id, ReportState::Superseded, None)?;
                }
            }
            Ok(())
        })
    }

    /// An earlier call a later one makes unnecessary (a `queued` once `proving` is pending).
    pub fn report_superseded(&self, id: i64) -> Result<(), StoreError> {
        self.write(|tx| self.settle_call(tx, id, ReportState::Superseded, None).map(|_| ()))
    }

    /// Moves call `id` to `to` if the report transition table allows it from where the call is
    /// ([`ReportState::can_settle_to`], the one place that rule lives); `false` when it does
    /// not (the call was settled meanwhile), which changes nothing.
    fn settle_call(
        &self,
        tx: &Transaction<'_>,
        id: i64,
        to: ReportState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let text: Option<String> = tx
            .query_row("SELECT state FROM reports WHERE id = ?1", params![id], |r| r.get(0))
            .optional()
            .map_err(self.sql())?;
        let Some(text) = text else { return Ok(false) };
        let from = ReportState::parse(&text).ok_or_else(|| StoreError::UnknownState {
            path: self.path.clone(),
            table: "reports",
            row: id,
            text: text.clone(),
        })?;
        if !from.can_settle_to(to) {
            return Ok(false);
        }
        // An answer counts as an attempt; a call superseded unsent was never made.
        let answered = i64::from(to != ReportState::Superseded);
        tx.execute(
            "UPDATE reports SET state = ?2, last_error = COALESCE(?3, last_error), done_at = ?4,
             attempts = attempts + ?5, in_doubt = 0 WHERE id = ?1",
            params![id, to.as_str(), error, now_ms(), answered],
        )
        .map_err(self.sql())?;
        Ok(true)
    }

    /// The calls matching `which` (an SQL condition on `reports`) for block `n` leave the outbox
    /// for `earlier_reports`, with when they were replaced: a resubmit keeps the history.
    fn replace_calls(&self, tx: &Transaction<'_>, n: u64, which: &str) -> Result<(), StoreError> {
        tx.execute(
            &format!(
                "INSERT INTO earlier_reports (id, block, status, state, created_at, done_at, attempts, last_error, replaced_at)
                 SELECT id, block, status, state, created_at, done_at, attempts, last_error, ?2 FROM reports
                 WHERE block = ?1 AND {which}"
            ),
            params![sql_u64(n), now_ms()],
        )
        .map_err(self.sql())?;
        tx.execute(&format!("DELETE FROM reports WHERE block = ?1 AND {which}"), params![sql_u64(n)])
            .map_err(self.sql())?;
        Ok(())
    }

    /// The operator's resubmit: a proved block's settled `proved` call goes out again from the
    /// saved proof (with a `proving` first if the API never accepted one, so it has a row).
    pub fn operator_resubmit(&self, n: u64) -> Result<Option<()>, StoreError> {
        self.write(|tx| {
            if self.current(tx, n)? != Some(BlockState::Proved) {
                return Ok(None);
            }
            let (ms, cycles, path): (Option<i64>, Option<i64>, Option<String>) = tx
                .query_row(
                    "SELECT proving_ms, cycles, proof_path FROM blocks WHERE number = ?1",
                    params![sql_u64(n)],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(self.sql())?;
            let Some(path) = path else { return Ok(None) };
            let pending = self.count(
                tx,
                "SELECT COUNT(*) FROM reports WHERE block = ?1 AND status = 'proved' AND state = 'pending'",
                n,
            )?;
            if pending > 0 {
                return Ok(None);
            }
            let accepted = self.count(
                tx,
                "SELECT COUNT(*) FROM reports WHERE block = ?1 AND status IN ('queued', 'proving')
                 AND state IN ('done', 'already_proved')",
                n,
            )?;
            if accepted == 0 {
                self.replace_calls(tx, n, "status = 'proving' AND state != 'pending'")?;
                self.raise(tx, n, ReportKind::Proving, None)?;
            }
            self.replace_calls(tx, n, "status = 'proved'")?;
            let ms = ms.and_then(|v| u64::try_from(v).ok()).unwrap_or(1);
            let cycles = cycles.and_then(|v| u64::try_from(v).ok());
            self.raise(tx, n, ReportKind::Proved, Some((ms, cycles, Path::new(&path))))?;
            Ok(Some(()))
        })
    }

    /// A v1 ledger could hold a proved block whose `proved` call was never written (two writes
    /// then); v2 writes both in one transaction. Raises the missing ones; returns their blocks.
    pub fn repair_missing_proved_reports(&self) -> Result<Vec<u64>, StoreError> {
        self.write(|tx| {
            let missing: Vec<(i64, Option<i64>, Option<i64>, String)> = {
                let mut stmt = tx
                    .prepare(
                        "SELECT number, proving_ms, cycles, proof_path FROM blocks b
                         WHERE state = 'proved' AND proof_path IS NOT NULL
                           AND NOT EXISTS (SELECT 1 FROM reports r WHERE r.block = b.number AND r.status = 'proved')
                           AND EXISTS (SELECT 1 FROM reports r WHERE r.block = b.number AND r.status IN ('queued', 'proving'))
                         ORDER BY number",
                    )
                    .map_err(self.sql())?;
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))).map_err(self.sql())?;
                rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?
            };
            let mut added = Vec::new();
            for (n, ms, cycles, path) in missing {
                let Ok(n) = u64::try_from(n) else { continue };
                let ms = ms.and_then(|v| u64::try_from(v).ok()).unwrap_or(1);
                self.raise(tx, n, ReportKind::Proved, Some((ms, cycles.and_then(|c| u64::try_from(c).ok()), Path::new(&path))))?;
                added.push(n);
            }
            Ok(added)
        })
    }
}
