//! The outbox's events: a call about to go (in doubt until answered), the API's answer, a call
//! a later one makes unnecessary, and the operator's resubmit. A call moves only as the report
//! transition table allows ([`ReportState::can_settle_to`]); a resubmit keeps the calls it
//! replaces in `earlier_reports`.

use std::path::Path;

use rusqlite::{OptionalExtension, Transaction, params};

use super::state::{BlockState, ReportState};
use super::{Ledger, ReportKind, ReportRow, StoreError, now_ms, sql_u64};

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
    /// Not sent: the call waits for something other than the API (the node to confirm the
    /// block is still canonical), and is looked at again at `next_at_ms`. No attempt is counted,
    /// and a call in doubt stays in doubt.
    Wait {
        reason: String,
        next_at_ms: i64,
    },
}

impl Ledger {
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
                Settle::Wait { reason, next_at_ms } => {
                    tx.execute(
                        "UPDATE reports SET last_error = ?2, next_attempt_at = ?3
                         WHERE id = ?1 AND state = 'pending'",
                        params![row.id, reason, next_at_ms],
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
    pub(super) fn replace_calls(&self, tx: &Transaction<'_>, n: u64, which: &str) -> Result<(), StoreError> {
        self.touch(super::Queues::REPORT);
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
