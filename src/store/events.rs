//! One method per business event, each one SQLite transaction over every table it touches.
//! A move the transition table ([`super::state::allowed`]) does not allow is an error and
//! changes nothing.

use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::state::{BlockState, Move, Stage};
use super::{JobInDoubt, Ledger, Origin, ProcessRecord, RecordedJob, ReportKind, StoreError, now_ms, sql_u64};

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
    /// What the proof was checked for (`verify::ProofCheck::fingerprint`), `None` unchecked: a
    /// `proved` about to go is checked again only if the check in force differs.
    pub checked_for: Option<&'a str>,
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
    /// What its proof must commit to (`commitment::BlockOutputs::to_hex`).
    pub expected_output: Option<&'a str>,
}

impl Ledger {
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
                        self.keep_run(tx, n, "operator")?;
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
                self.keep_run(tx, n, "prove mode")?;
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
                ", input_path = ?3, gas_used = ?4, tx_count = ?5, block_hash = ?6, input_ms = ?7, block_timestamp = ?8,
                 expected_output = ?9",
                &[
                    &path,
                    &sql_u64(built.gas_used),
                    &sql_u64(built.tx_count),
                    &built.block_hash,
                    &sql_u64(built.input_ms),
                    &sql_u64(built.timestamp),
                    &built.expected_output,
                ],
            )?;
            if report {
                self.raise(tx, n, ReportKind::Queued, None)?;
            }
            Ok(())
        })
    }

    pub fn input_failed(&self, n: u64, stage: Stage, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            self.apply(tx, n, Move::InputFailed, ", stage = ?3, reason = ?4", &[&stage.as_str(), &reason]).map(|_| ())
        })
    }

    /// A prover run starts: its attempt number is returned, and `proving` is raised.
    pub fn proof_started(&self, n: u64, report: bool) -> Result<u32, StoreError> {
        self.write(|tx| {
            self.apply(
                tx,
                n,
                Move::ProofStarted,
                ", attempts = attempts + 1, run_started_at = ?2, exit = NULL, proof_sha256 = NULL, proof_checked = NULL, proof_bytes = NULL,
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
    /// so a restart re-attaches rather than proving again. The job, now followable; `None` if the
    /// block is no longer in that attempt (nothing is changed).
    pub fn job_submitted(&self, n: u64, attempt: u32, job_id: &str) -> Result<Option<RecordedJob>, StoreError> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE blocks SET job_id = ?3, job_submission = NULL, job_in_doubt_until = NULL
                     WHERE number = ?1 AND attempts = ?2 AND state = 'proving'",
                    params![sql_u64(n), i64::from(attempt), job_id],
                )
                .map_err(self.sql())?;
            Ok((changed == 1).then(|| RecordedJob::minted(job_id)))
        })
    }

    /// The attempt's prove job was submitted and its answer lost: the coordinator may be running
    /// it until `until_ms`. Whether the attempt is still the block's.
    pub fn job_in_doubt(&self, n: u64, attempt: u32, doubt: &JobInDoubt) -> Result<bool, StoreError> {
        self.write(|tx| {
            let changed = tx
                .execute(
                    "UPDATE blocks SET job_submission = ?3, job_in_doubt_until = ?4
                     WHERE number = ?1 AND attempts = ?2 AND state = 'proving'",
                    params![sql_u64(n), i64::from(attempt), doubt.submission, doubt.until_ms],
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
                    self.touch(super::Queues::PROVE);
                    tx.execute("UPDATE blocks SET cancel_requested = 1 WHERE number = ?1", params![sql_u64(n)])
                        .map_err(self.sql())?;
                    Ok(CancelRequest::Requested)
                }
                other => Ok(CancelRequest::NotProving(other.map(str::to_string))),
            }
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
                ", input_path = NULL, proof_path = NULL, proof_sha256 = NULL, proof_checked = NULL, proof_bytes = NULL, exit = NULL,
                 block_hash = NULL, expected_output = NULL, pgid = NULL, pgid_start_ticks = NULL, boot_id = NULL, stage = NULL, reason = ?3",
                &[&reason],
            )?;
            // A `proved` call for the orphan's proof is never sent; kept with the block's history,
            // and out of the way of the replacement's own `proved`.
            self.replace_calls(tx, n, "status = 'proved'")?;
            tx.execute(
                "INSERT INTO orphans (block, hash, dir, reason, at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sql_u64(n), old_hash, dir.map(|d| d.display().to_string()), reason, now_ms()],
            )
            .map_err(self.sql())?;
            Ok(())
        })
    }
}
