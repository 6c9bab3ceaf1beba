//! The cohort scoreboard, worked out from the ledger by `decide::cohort` and kept a few seconds:
//! `/health`, `/metrics` and the dashboard all read this one.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::decide::cohort::{self, PARALYZED_AFTER_MS, Pricing, Rules, Score};
use crate::http::surface::Surface;
use crate::runtime::status::{CohortFigures, Scoreboard};
use crate::store::BlockState;

/// How often the scoreboard is worked out again, in the background: the figures move by the block.
const EVERY: Duration = Duration::from_secs(5);
/// A scoreboard older than this (its keeper stopped) is worked out by the request itself.
const STALE_AFTER: Duration = Duration::from_secs(15);
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// The scoreboard of the cohort the daemon keeps (`COHORT`), or `None` without one: the one
/// [`keep`] works out, so no request pays for reading the day's blocks. Blocking (only when the
/// keeper has not run yet): call it off the runtime's workers.
pub fn scoreboard(s: &Surface) -> Option<Scoreboard> {
    s.info.cohort?;
    s.scoreboard.within(STALE_AFTER).or_else(|| work_out(s))
}

/// Works the scoreboard out every few seconds until `stopped` resolves (nothing without a cohort).
pub async fn keep(s: Arc<Surface>, stopped: impl Future<Output = ()>) {
    if s.info.cohort.is_none() {
        return;
    }
    let keeping = async {
        loop {
            let s = s.clone();
            let _ = tokio::task::spawn_blocking(move || work_out(&s)).await;
            tokio::time::sleep(EVERY).await;
        }
    };
    tokio::select! {
        _ = stopped => {}
        _ = keeping => {}
    }
}

/// Reads the day's targets and scores them; the result is kept for the requests.
fn work_out(s: &Surface) -> Option<Scoreboard> {
    let cohort = s.info.cohort?;
    let rules = cohort::rules(cohort);
    let now = crate::store::now_ms();
    let done = if s.info.proves { BlockState::Proved } else { BlockState::Executed };
    let (targets, skipped) = s.control.reads().targets_since(now.saturating_sub(DAY_MS), done).ok()?;
    let pricing =
        s.info.gpu_hourly_price.map(|gpu_hourly_price| Pricing { gpu_hourly_price, gpus: s.info.cluster_gpus });
    let figures = |window| figures(&rules, &cohort::score(&rules, &targets, &skipped, now, window, pricing));
    let board = Scoreboard {
        cohort: cohort.as_str(),
        every: rules.every,
        deadline_seconds: rules.deadline_ms as f64 / 1000.0,
        in_time_bar: rules.in_time_bar,
        proved_bar: rules.proved_bar,
        paralyzed_after_seconds: u64::try_from(PARALYZED_AFTER_MS / 1000).unwrap_or(0),
        last_hour: figures(HOUR_MS),
        last_day: figures(DAY_MS),
    };
    s.scoreboard.publish(board.clone());
    Some(board)
}

fn figures(rules: &Rules, score: &Score) -> CohortFigures {
    let meets = score.share_in_time.map(|in_time| {
        in_time >= rules.in_time_bar && rules.proved_bar.is_none_or(|bar| score.share_proved.is_some_and(|p| p >= bar))
    });
    CohortFigures {
        counted: score.counted,
        pending: score.pending,
        proved: score.proved,
        in_time: score.in_time,
        paralyzed: score.paralyzed,
        share_in_time: score.share_in_time,
        share_proved: score.share_proved,
        avg_proving_seconds: score.avg_proving_ms.map(|ms| ms / 1000.0),
        avg_cost_per_proof: score.avg_cost_per_proof,
        meets_bars: meets,
    }
}
