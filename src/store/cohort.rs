//! What the cohort scoreboard reads: each scheduled target that appeared since a moment, with
//! when it appeared and how its proof went, and the skipped ranges since then. One read of the
//! `blocks_first_seen` index range, never the whole ledger.

use rusqlite::params;

use super::{BlockState, Ledger, StoreError, from_sql};

/// One scheduled target, as the scoreboard sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetFacts {
    pub number: u64,
    /// The block's own timestamp (seconds), as the chain says it.
    pub block_timestamp: Option<u64>,
    /// When the daemon first recorded it (seen, or skipped or failed without being seen).
    pub first_seen_ms: i64,
    /// Proved (its proof recorded; executed, in a mode without proofs), and when.
    pub proved_at_ms: Option<i64>,
    /// The proving time of its proof (what EthProofs is told).
    pub proving_ms: Option<u64>,
    /// Given up: failed or skipped.
    pub given_up: bool,
}

/// Targets skipped without a row each: `count` of them, from `first`, recorded at `at_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedFacts {
    pub first: u64,
    pub last: u64,
    pub at_ms: i64,
}

pub(super) const TARGETS_SQL: &str =
    "SELECT number, block_timestamp, COALESCE(seen_at, skipped_at, failed_at, 0), state,
        COALESCE(proved_at, executed_at), proving_ms
    FROM blocks WHERE origin = 'schedule' AND COALESCE(seen_at, skipped_at, failed_at, 0) >= ?1";

impl Ledger {
    /// The scheduled targets first recorded at or after `since_ms`, and the skipped ranges. A
    /// target counts as proved when it is in `done` (proved; executed in a mode without proofs).
    pub fn targets_since(
        &self,
        since_ms: i64,
        done: BlockState,
    ) -> Result<(Vec<TargetFacts>, Vec<SkippedFacts>), StoreError> {
        self.conn(|c| {
            let mut stmt = c.prepare_cached(TARGETS_SQL).map_err(self.sql())?;
            let targets = stmt
                .query_map(params![since_ms], |r| {
                    let state: String = r.get(3)?;
                    let proved = state == done.as_str();
                    Ok(TargetFacts {
                        number: from_sql(r.get(0)?),
                        block_timestamp: r.get::<_, Option<i64>>(1)?.map(from_sql),
                        first_seen_ms: r.get(2)?,
                        proved_at_ms: if proved { r.get(4)? } else { None },
                        proving_ms: if proved { r.get::<_, Option<i64>>(5)?.map(from_sql) } else { None },
                        given_up: matches!(state.as_str(), "failed" | "skipped"),
                    })
                })
                .map_err(self.sql())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.sql())?;
            let mut stmt =
                c.prepare_cached("SELECT first, last, at FROM skipped_ranges WHERE at >= ?1").map_err(self.sql())?;
            let skipped = stmt
                .query_map(params![since_ms], |r| {
                    Ok(SkippedFacts { first: from_sql(r.get(0)?), last: from_sql(r.get(1)?), at_ms: r.get(2)? })
                })
                .map_err(self.sql())?
                .collect::<Result<Vec<_>, _>>()
                .map_err(self.sql())?;
            Ok((targets, skipped))
        })
    }
}
