//! One block's story, read from the ledger: its row (every transition's time, sizes, gas,
//! transactions, attempts, the prover's exit, the coordinator job), each EthProofs call and
//! what became of it, and the orphans at its height. The block page renders it.

use rusqlite::{OptionalExtension, params};

use super::{Ledger, StoreError, from_sql, sql_u64};

/// A moment in a block's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    pub at_ms: i64,
    /// `seen`, `queued`, `proving`, `checked`, `exited`, `proved`, `executed`, `failed`, `skipped`.
    pub what: &'static str,
}

/// One EthProofs call of the block.
#[derive(Debug, Clone)]
pub struct StoryCall {
    pub kind: String,
    pub state: String,
    pub created_at_ms: i64,
    pub done_at_ms: Option<i64>,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// A run of the block that a later run replaced: what it came to, and who asked for the next.
#[derive(Debug, Clone)]
pub struct EarlierRun {
    pub outcome: String,
    pub stage: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub started_at_ms: Option<i64>,
    pub ended_at_ms: Option<i64>,
    pub replaced_at_ms: i64,
    /// `operator` (`prove`) or `prove mode` (executed blocks proved after all).
    pub replaced_by: String,
}

#[derive(Debug, Clone)]
pub struct Story {
    pub block: u64,
    pub state: String,
    pub origin: String,
    pub stage: Option<String>,
    pub reason: Option<String>,
    pub attempts: u32,
    pub interruptions: u32,
    pub gas_used: Option<u64>,
    pub tx_count: Option<u64>,
    pub input_ms: Option<u64>,
    pub proving_ms: Option<u64>,
    pub cycles: Option<u64>,
    pub guest_steps: Option<u64>,
    pub exit: Option<String>,
    pub proof_bytes: Option<u64>,
    pub input_path: Option<String>,
    pub job_id: Option<String>,
    pub block_hash: Option<String>,
    pub block_timestamp: Option<u64>,
    /// Each transition's latest time, in order.
    pub moments: Vec<Moment>,
    pub calls: Vec<StoryCall>,
    /// Blocks at this height that left the chain: their hash and why.
    pub orphans: Vec<(Option<String>, String, i64)>,
    /// The runs that came before this one, oldest first.
    pub earlier_runs: Vec<EarlierRun>,
}

impl Ledger {
    /// The block's story, or `None` if the ledger has never heard of it.
    pub fn story(&self, n: u64) -> Result<Option<Story>, StoreError> {
        self.conn(|conn| {
            let row = conn
                .query_row(
                    "SELECT state, origin, stage, reason, attempts, interruptions, gas_used, tx_count, input_ms, proving_ms,
                            cycles, guest_steps, exit, proof_bytes, input_path, job_id, block_hash, block_timestamp,
                            seen_at, queued_at, proving_at, checked_at, exited_at, proved_at, executed_at, failed_at, skipped_at
                     FROM blocks WHERE number = ?1",
                    params![sql_u64(n)],
                    |r| {
                        let u = |i: usize| r.get::<_, Option<i64>>(i).map(|v| v.map(from_sql));
                        let names = [
                            "seen", "queued", "proving", "checked", "exited", "proved", "executed", "failed", "skipped",
                        ];
                        let mut moments = Vec::new();
                        for (i, what) in names.into_iter().enumerate() {
                            if let Some(at_ms) = r.get::<_, Option<i64>>(18 + i)? {
                                moments.push(Moment { at_ms, what });
                            }
                        }
                        moments.sort_by_key(|m| m.at_ms);
                        Ok(Story {
                            block: n,
                            state: r.get(0)?,
                            origin: r.get(1)?,
                            stage: r.get(2)?,
                            reason: r.get(3)?,
                            attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                            interruptions: u32::try_from(r.get::<_, i64>(5)?).unwrap_or(u32::MAX),
                            gas_used: u(6)?,
                            tx_count: u(7)?,
                            input_ms: u(8)?,
                            proving_ms: u(9)?,
                            cycles: u(10)?,
                            guest_steps: u(11)?,
                            exit: r.get(12)?,
                            proof_bytes: u(13)?,
                            input_path: r.get(14)?,
                            job_id: r.get(15)?,
                            block_hash: r.get(16)?,
                            block_timestamp: u(17)?,
                            moments,
                            calls: Vec::new(),
                            orphans: Vec::new(),
                            earlier_runs: Vec::new(),
                        })
                    },
                )
                .optional()
                .map_err(self.sql())?;
            let Some(mut story) = row else { return Ok(None) };
            let mut stmt = conn
                .prepare(
                    // The calls a resubmit replaced first, then the live ones: the whole history.
                    "SELECT status, state, created_at, done_at, attempts, last_error FROM (
                         SELECT id, status, state, created_at, done_at, attempts, last_error FROM earlier_reports WHERE block = ?1
                         UNION ALL
                         SELECT id, status, state, created_at, done_at, attempts, last_error FROM reports WHERE block = ?1
                     ) ORDER BY id",
                )
                .map_err(self.sql())?;
            story.calls = stmt
                .query_map(params![sql_u64(n)], |r| {
                    Ok(StoryCall {
                        kind: r.get(0)?,
                        state: r.get(1)?,
                        created_at_ms: r.get(2)?,
                        done_at_ms: r.get(3)?,
                        attempts: u32::try_from(r.get::<_, i64>(4)?).unwrap_or(u32::MAX),
                        last_error: r.get(5)?,
                    })
                })
                .map_err(self.sql())?
                .collect::<Result<_, _>>()
                .map_err(self.sql())?;
            let mut stmt =
                conn.prepare("SELECT hash, reason, at FROM orphans WHERE block = ?1 ORDER BY at").map_err(self.sql())?;
            story.orphans = stmt
                .query_map(params![sql_u64(n)], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(self.sql())?
                .collect::<Result<_, _>>()
                .map_err(self.sql())?;
            let mut stmt = conn
                .prepare(
                    "SELECT outcome, stage, reason, attempts, proving_ms, cycles, started_at, ended_at, replaced_at, replaced_by
                     FROM earlier_runs WHERE block = ?1 ORDER BY replaced_at, rowid",
                )
                .map_err(self.sql())?;
            story.earlier_runs = stmt
                .query_map(params![sql_u64(n)], |r| {
                    Ok(EarlierRun {
                        outcome: r.get(0)?,
                        stage: r.get(1)?,
                        reason: r.get(2)?,
                        attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                        proving_ms: r.get::<_, Option<i64>>(4)?.map(from_sql),
                        cycles: r.get::<_, Option<i64>>(5)?.map(from_sql),
                        started_at_ms: r.get(6)?,
                        ended_at_ms: r.get(7)?,
                        replaced_at_ms: r.get(8)?,
                        replaced_by: r.get(9)?,
                    })
                })
                .map_err(self.sql())?
                .collect::<Result<_, _>>()
                .map_err(self.sql())?;
            Ok(Some(story))
        })
    }
}
