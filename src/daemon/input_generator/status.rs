//! What the InputGenerator publishes for `/health` every turn (the head, its age, the queue,
//! missed targets), and the chain's block time as observed from head advances.

use super::*;

impl InputGenerator {
    pub(super) fn publish(&self, s: &InputGenState) -> Result<(), StoreError> {
        let interval = self.settings.block_interval;
        let head_age = s.head_seen_at.map(|(i, _)| i.elapsed());
        let stale = head_age.is_some_and(|a| a > HEAD_STALE_AFTER);
        // The single-build fields tell of the oldest build; `building` lists them all.
        let oldest = s.building.iter().min_by_key(|(_, (started, _))| *started);
        let building = oldest.map(|(b, _)| *b);
        let (rpc_error, rpc_error_detail) = s.node.last_error();
        self.ctx.board.input.publish(InputStatus {
            status: if stale { "degraded" } else { "healthy" },
            state: if self.ctx.drain.is_draining() {
                "stopped"
            } else if self.ctx.is_paused() {
                "paused"
            } else if building.is_some() {
                "building"
            } else if rpc_error.is_some() {
                "rpc_error"
            } else {
                "polling"
            },
            building_block: building,
            building_seconds: oldest.map(|(_, (started, _))| started.elapsed().as_secs()),
            building: s
                .building
                .iter()
                .map(|(block, (started, _))| BuildInFlight { block: *block, seconds: started.elapsed().as_secs() })
                .collect(),
            processed_count: s.processed_count,
            head: s.head,
            block_time_ms: s.block_time_ms,
            head_seen_at: s.head_seen_at.map(|(_, t)| rfc3339(t)),
            head_age_seconds: head_age.map(|a| a.as_secs()),
            next_target: s.head.and_then(|h| schedule::newest_target(h, interval).checked_add(interval)),
            missed_count: s.missed_count,
            missed_blocks: s.missed.to_vec(),
            not_served: s
                .not_served
                .iter()
                .map(|(block, w)| NotServedBlock {
                    block: *block,
                    stage: w.stage.as_str(),
                    reason: w.reason.clone(),
                    waiting_seconds: w.since.elapsed().as_secs(),
                    retry_in_seconds: w.retry_at.saturating_duration_since(Instant::now()).as_secs(),
                })
                .collect(),
            rpc_error,
            rpc_failing_seconds: s.node.failing_for().map(|d| d.as_secs()),
            rpc_error_detail,
        });
        Ok(())
    }
}

/// The chain's block time from one head advance of `blocks` after `took`, averaged with what
/// was seen before. Jumps of many blocks at once (a restart, a backfill) say nothing about it.
pub(super) fn observed_block_time(before: Option<u64>, blocks: u64, took: Duration) -> Option<u64> {
    if blocks == 0 || blocks > 16 {
        return before;
    }
    let sample = u64::try_from(took.as_millis()).unwrap_or(u64::MAX) / blocks;
    Some(match before {
        None => sample,
        Some(avg) => (avg.saturating_mul(4).saturating_add(sample)) / 5,
    })
}
