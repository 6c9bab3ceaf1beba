//! How a prover run ends, one method per event and one transaction each: its exit recorded
//! before anything is judged, then the verdict (accepted, failed, executed, interrupted).

use std::path::Path;

use rusqlite::{OptionalExtension, params};

use super::events::{Accepted, ExitRecord, Interrupted};
use super::state::{Move, Stage};
use super::{Ledger, ReportKind, StoreError, sql_u64};

/// What became of a proof offered for acceptance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// The block is proved.
    Accepted,
    /// The same bytes are another block's recorded proof: the block failed at `verify`.
    Duplicate { block: u64, reason: String },
}

impl Ledger {
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
    /// and `proved` is raised with it. A proof whose bytes are already recorded as another
    /// block's proves that block, not this one: the block fails at `verify` instead, in the same
    /// transaction, whatever the verification setting.
    pub fn proof_accepted(&self, n: u64, accepted: &Accepted<'_>, report: bool) -> Result<Acceptance, StoreError> {
        let Accepted { proving_ms, cycles, sha256, checked_for } = *accepted;
        self.write(|tx| {
            let other: Option<i64> = tx
                .query_row(
                    "SELECT number FROM blocks WHERE proof_sha256 = ?1 AND number != ?2 LIMIT 1",
                    params![sha256, sql_u64(n)],
                    |r| r.get(0),
                )
                .optional()
                .map_err(self.sql())?;
            if let Some(other) = other.and_then(|b| u64::try_from(b).ok()) {
                let reason = format!(
                    "the proof's bytes (SHA-256 {sha256}) are the proof already recorded for block {other}: it proves that block, not this one"
                );
                self.apply(tx, n, Move::ProofFailed, ", stage = 'verify', reason = ?3, pgid = NULL", &[&reason])?;
                return Ok(Acceptance::Duplicate { block: other, reason });
            }
            self.apply(
                tx,
                n,
                Move::ProofAccepted,
                ", proving_ms = ?3, cycles = ?4, proof_sha256 = ?5, proof_checked = ?6, stage = NULL, reason = NULL",
                &[&sql_u64(proving_ms), &cycles.map(sql_u64), &sha256, &checked_for],
            )?;
            if report {
                let path: Option<String> = tx
                    .query_row("SELECT proof_path FROM blocks WHERE number = ?1", params![sql_u64(n)], |r| r.get(0))
                    .map_err(self.sql())?;
                if let Some(path) = path {
                    self.raise(tx, n, ReportKind::Proved, Some((proving_ms, cycles, Path::new(&path))))?;
                }
            }
            Ok(Acceptance::Accepted)
        })
    }

    /// The run (or its start) failed with a stage and a reason.
    pub fn proof_failed(&self, n: u64, stage: Stage, reason: &str) -> Result<(), StoreError> {
        self.write(|tx| {
            self.apply(tx, n, Move::ProofFailed, ", stage = ?3, reason = ?4, pgid = NULL", &[&stage.as_str(), &reason])
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
}
