//! The queries the actors rebuild their work from, and the checked reading of a row: a state
//! text this build does not know is an error naming the row, never a default.

use std::path::PathBuf;

use rusqlite::params;

use super::state::{BlockState, ReportState};
use super::{
    BlockRecord, JobInDoubt, Ledger, Origin, Orphan, ProcessRecord, RecordedJob, ReportKind, ReportRow, SkippedRange,
    StoreError, from_sql, sql_u64,
};

const BLOCK_COLUMNS: &str = "number, state, origin, stage, reason, attempts, interruptions, input_path, proof_path,
    proof_sha256, exit, run_started_at, pgid, pgid_start_ticks, boot_id, proving_ms, cycles, block_hash, seen_at, block_timestamp, proof_bytes,
    job_id, cancel_requested, guest_steps, expected_output, proof_checked, job_submission, job_in_doubt_until";

const REPORT_COLUMNS: &str = "id, block, status, state, created_at, attempts, next_attempt_at, in_doubt, proving_ms, cycles, proof_path, last_error,
    (SELECT proof_sha256 FROM blocks WHERE blocks.number = reports.block)";

/// Counts by state (from the counts the triggers keep), skipped ranges counting their blocks.
pub(super) const COUNTS_SQL: &str = "SELECT state, SUM(n) FROM (
        SELECT state, n FROM state_counts
        UNION ALL SELECT 'skipped', COALESCE(SUM(count), 0) FROM skipped_ranges)
    GROUP BY state HAVING SUM(n) > 0 ORDER BY state";

impl Ledger {
    fn blocks_where(&self, tail: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<BlockRecord>, StoreError> {
        self.conn(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {BLOCK_COLUMNS} FROM blocks {tail}")).map_err(self.sql())?;
            let rows = stmt.query_map(values, raw_block).map_err(self.sql())?;
            let raw = rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?;
            raw.into_iter().map(|r| r.check(&self.path)).collect()
        })
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
    /// The lowest (`newest`: the highest) block waiting for a prover that is not one of
    /// `running` (whose runs have started but not yet raised `proving`).
    pub fn next_to_prove(&self, running: &[u64], newest: bool) -> Result<Option<BlockRecord>, StoreError> {
        let limit = i64::try_from(running.len()).unwrap_or(i64::MAX).saturating_add(1);
        let tail = if newest {
            "WHERE state IN ('queued', 'input_ready') ORDER BY number DESC LIMIT ?1"
        } else {
            "WHERE state IN ('queued', 'input_ready') ORDER BY number LIMIT ?1"
        };
        let rows = self.blocks_where(tail, &[&limit])?;
        Ok(rows.into_iter().find(|r| !running.contains(&r.number)))
    }

    /// Counts by state, for health and reports (skipped ranges count their blocks): the counts
    /// the ledger keeps with every move, never a scan of its blocks.
    pub fn counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.conn(|conn| {
            let mut stmt = conn.prepare(COUNTS_SQL).map_err(self.sql())?;
            let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?)))).map_err(self.sql())?;
            rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
        })
    }

    /// Rows of `sql` (which takes the limit as `?1`), mapped.
    fn newest<T>(
        &self,
        sql: &str,
        limit: u32,
        map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        self.conn(|conn| {
            let mut stmt = conn.prepare(sql).map_err(self.sql())?;
            let rows = stmt.query_map(params![i64::from(limit)], map).map_err(self.sql())?;
            rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())
        })
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
        self.conn(|conn| {
            let mut stmt = conn.prepare(&format!("SELECT {REPORT_COLUMNS} FROM reports {tail}")).map_err(self.sql())?;
            let rows = stmt.query_map(values, raw_report).map_err(self.sql())?;
            let raw = rows.collect::<Result<Vec<_>, _>>().map_err(self.sql())?;
            raw.into_iter().map(|r| r.check(&self.path)).collect()
        })
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
            job_id: r.get::<_, Option<String>>(21)?.map(RecordedJob::minted),
            cancel_requested: r.get::<_, i64>(22)? != 0,
            guest_steps: opt_u64(r.get(23)?),
            expected_output: r.get(24)?,
            proof_checked: r.get(25)?,
            job_in_doubt: match (r.get::<_, Option<String>>(26)?, r.get::<_, Option<i64>>(27)?) {
                (Some(submission), Some(until_ms)) => Some(JobInDoubt { submission, until_ms }),
                _ => None,
            },
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
