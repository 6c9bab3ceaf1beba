//! The per-block read model: one row per target as `ethproofs-daemon report` prints it, and as
//! `/admin/blocks` and the dashboard list it, with the figures `/metrics` derives from the ledger.
//! An API boundary: `report` reads it from another process while the daemon runs.

use rusqlite::params;

use super::{BlockState, Ledger, StoreError, from_sql, sql_u64};

/// One target block as `ethproofs-daemon report` prints it, and as `/admin/blocks` and the
/// dashboard list it. This is an API boundary: `report` reads it while the daemon runs.
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
    /// The coordinator job of the latest attempt (coordinator backend).
    pub job_id: Option<String>,
    /// The guest's steps when it checked the input (`INPUT_CHECK=emulate`).
    pub guest_steps: Option<u64>,
}

/// When a block last moved: every transition stamps its new state's column (`tx::apply`), so the
/// latest of them. SQLite's `MAX(…)` of several values is NULL if any is, hence the zeros.
/// A block's latest transition. The ledger indexes exactly this expression (`schema`, v7): keep
/// the two the same, or every dashboard poll reads the whole ledger.
const LAST_MOVE: &str = "MAX(COALESCE(seen_at, 0), COALESCE(input_ready_at, 0),
    COALESCE(queued_at, 0), COALESCE(proving_at, 0), COALESCE(checked_at, 0), COALESCE(exited_at, 0),
    COALESCE(proved_at, 0), COALESCE(executed_at, 0), COALESCE(failed_at, 0), COALESCE(skipped_at, 0),
    COALESCE(orphaned_at, 0))";

/// The read model's query, filtered and ordered by `tail` (a WHERE body).
pub(super) fn lines_sql(tail: &str) -> String {
    format!(
        "SELECT b.number, b.state, b.stage, b.reason, b.gas_used, b.tx_count, b.input_ms, b.proving_ms,
                b.cycles, b.attempts, b.seen_at, b.proved_at, r.done_at, r.state, b.job_id, b.guest_steps
         FROM blocks b LEFT JOIN reports r ON r.block = b.number AND r.status = 'proved'
         WHERE {tail}"
    )
}

/// The recent lists: `?1` a state or NULL, `?2` how many.
pub(super) fn recent_tail() -> String {
    format!("(?1 IS NULL OR b.state = ?1) ORDER BY {LAST_MOVE} DESC, b.number DESC LIMIT ?2")
}

/// `(expected, done)` scheduled targets first seen since `?1` (through `blocks_first_seen`),
/// done meaning in state `?2`.
pub(super) const RELIABILITY_SQL: &str = "SELECT
        COUNT(*) + (SELECT COALESCE(SUM(count), 0) FROM skipped_ranges WHERE at >= ?1), COALESCE(SUM(state = ?2), 0)
    FROM blocks WHERE origin = 'schedule' AND COALESCE(seen_at, skipped_at, failed_at, 0) >= ?1";
/// Scheduled targets not in state `?1` newer than the newest one that is: a walk from that one.
pub(super) const TARGETS_BEHIND_SQL: &str = "SELECT COUNT(*) FROM blocks WHERE origin = 'schedule' AND state != ?1
    AND number > COALESCE(
        (SELECT number FROM blocks WHERE state = ?1 AND origin = 'schedule' ORDER BY number DESC LIMIT 1), -1)";
/// The newest block in state `?1`.
pub(super) const NEWEST_IN_SQL: &str = "SELECT MAX(number) FROM blocks WHERE state = ?1";
/// The newest block whose `proved` call EthProofs accepted, one index seek per accepted state.
pub(super) const LAST_REPORTED_SQL: &str = "SELECT MAX(b) FROM (
    SELECT MAX(block) AS b FROM reports WHERE status = 'proved' AND state = 'done'
    UNION ALL SELECT MAX(block) FROM reports WHERE status = 'proved' AND state = 'already_proved')";

impl Ledger {
    /// Every target first seen at or after `since_ms`, oldest first.
    pub fn report_lines(&self, since_ms: i64) -> Result<Vec<ReportLine>, StoreError> {
        self.query_lines("COALESCE(b.seen_at, b.skipped_at, b.failed_at, 0) >= ?1 ORDER BY b.number", &[&since_ms])
    }

    /// Blocks joined with their `proved` call, filtered and ordered by `tail` (a WHERE body).
    fn query_lines(&self, tail: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<ReportLine>, StoreError> {
        self.conn(|conn| {
            let mut stmt = conn.prepare(&lines_sql(tail)).map_err(self.sql())?;
            let opt_u64 = |v: Option<i64>| v.map(from_sql);
            let rows = stmt
                .query_map(values, |r| {
                    let report_state: Option<String> = r.get(13)?;
                    let done_at: Option<i64> = r.get(12)?;
                    Ok(ReportLine {
                        block: from_sql(r.get(0)?),
                        outcome: r.get(1)?,
                        stage: r.get(2)?,
                        reason: r.get(3)?,
                        gas_used: opt_u64(r.get(4)?),
                        tx_count: opt_u64(r.get(5)?),
                        input_ms: opt_u64(r.get(6)?),
                        proving_ms: opt_u64(r.get(7)?),
                        cycles: opt_u64(r.get(8)?),
                        attempts: u32::try_from(r.get::<_, i64>(9)?).unwrap_or(u32::MAX),
                        seen_at_ms: r.get(10)?,
                        proved_at_ms: r.get(11)?,
                        reported_at_ms: done_at.filter(|_| report_state.as_deref() == Some("done")),
                        report_state,
                        job_id: r.get(14)?,
                        guest_steps: opt_u64(r.get(15)?),
                    })
                })
                .map_err(self.sql())?;
            let lines = rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?;
            for line in &lines {
                if BlockState::parse(&line.outcome).is_none() {
                    return Err(StoreError::UnknownState {
                        path: self.path.clone(),
                        table: "blocks",
                        row: sql_u64(line.block),
                        text: line.outcome.clone(),
                    });
                }
            }
            Ok(lines)
        })
    }

    /// `(expected, done)` targets first seen at or after `since_ms` (skipped ones count as
    /// expected), `done` being those now in state `done`: `proved`, or `executed` in the modes
    /// that make no proofs.
    pub fn reliability(&self, since_ms: i64, done: BlockState) -> Result<(u64, u64), StoreError> {
        self.conn(|c| {
            c.query_row(RELIABILITY_SQL, params![since_ms, done.as_str()], |r| {
                Ok((from_sql(r.get(0)?), from_sql(r.get(1)?)))
            })
        })
        .map_err(self.sql())
    }

    /// How many scheduled targets are not done (`done`: proved, or executed in a mode without
    /// proofs) and newer than the newest done one: the prover's lag in targets. On a fresh
    /// ledger, the targets since the start; targets skipped by the backfill window are missed,
    /// not behind.
    pub fn targets_behind(&self, done: BlockState) -> Result<u64, StoreError> {
        self.conn(|c| c.query_row(TARGETS_BEHIND_SQL, params![done.as_str()], |r| r.get(0).map(from_sql)))
            .map_err(self.sql())
    }

    /// The newest block in `state` (`proved`, or `executed` in the modes that make no proofs).
    pub fn newest_in(&self, state: BlockState) -> Result<Option<u64>, StoreError> {
        self.conn(|c| c.query_row(NEWEST_IN_SQL, params![state.as_str()], |r| r.get::<_, Option<i64>>(0)))
            .map(|n| n.map(from_sql))
            .map_err(self.sql())
    }

    /// The newest block whose `proved` call EthProofs accepted.
    pub fn last_reported(&self) -> Result<Option<u64>, StoreError> {
        self.conn(|c| c.query_row(LAST_REPORTED_SQL, [], |r| r.get::<_, Option<i64>>(0)))
            .map(|n| n.map(from_sql))
            .map_err(self.sql())
    }

    /// Recent blocks, the most recently moved first (its latest transition), optionally of one
    /// state. Ordered by time, not by number: a block far above the head (an operator's typo,
    /// failed or waiting) would otherwise head every list for good.
    /// The dashboard polls this: a bounded query, not a scan of the whole ledger into memory.
    pub fn recent_blocks(&self, state: Option<&str>, limit: u32) -> Result<Vec<ReportLine>, StoreError> {
        self.query_lines(&recent_tail(), &[&state, &i64::from(limit)])
    }
}
