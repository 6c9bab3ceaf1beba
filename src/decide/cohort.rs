//! EthProofs' cohort rules as the daemon's own scoreboard
//! (`../shared/reference/proofs-and-cohorts.md`): of the cohort's blocks that appeared in a
//! window, the share proved under the deadline, the share proved at all, how many were
//! "paralyzed" (no proof 20 minutes after the block appeared), and the average cost per proof
//! as EthProofs computes it (a GPU's hourly price × the cluster's GPUs × proving time).
//!
//! The deadline is held against the proving time a proof reports (what EthProofs is told and
//! scores); the end-to-end time is on each block's page. A block younger than the paralysis
//! mark that is still on its way counts in no share yet: it is pending, not failed.

use crate::config::Cohort;
use crate::store::{SkippedFacts, TargetFacts};

/// A block without a proof this long after it appeared is "paralyzed".
pub const PARALYZED_AFTER_MS: i64 = 20 * 60 * 1000;

/// One cohort's bars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rules {
    /// Every how many blocks the cohort proves.
    pub every: u64,
    /// A proof counts as in time under this proving time.
    pub deadline_ms: u64,
    /// The least share of blocks proved in time.
    pub in_time_bar: f64,
    /// The least share of blocks proved at all, when the cohort has one.
    pub proved_bar: Option<f64>,
}

pub fn rules(cohort: Cohort) -> Rules {
    match cohort {
        Cohort::OneInTen => Rules { every: 10, deadline_ms: 120_000, in_time_bar: 0.80, proved_bar: None },
        Cohort::RealTime => Rules { every: 1, deadline_ms: 10_000, in_time_bar: 0.70, proved_bar: Some(0.95) },
    }
}

/// What the cost per proof is computed from: a GPU's hourly price and the GPUs it is paid for.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub gpu_hourly_price: f64,
    pub gpus: u32,
}

/// The figures over one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Score {
    /// The cohort's blocks that appeared in the window and are settled: proved, given up, or
    /// past the paralysis mark.
    pub counted: u64,
    /// Blocks still on their way, younger than the paralysis mark: in no share yet.
    pub pending: u64,
    pub proved: u64,
    pub in_time: u64,
    pub paralyzed: u64,
    /// `in_time / counted`; `None` with nothing counted.
    pub share_in_time: Option<f64>,
    /// `proved / counted`.
    pub share_proved: Option<f64>,
    pub avg_proving_ms: Option<f64>,
    pub avg_cost_per_proof: Option<f64>,
}

/// A header's timestamp later than the daemon's first sight of the block by more than this is
/// a clock or a header that lies.
const CLOCK_SLACK_MS: i64 = 2 * 60 * 1000;
/// A block first seen more than this after its timestamp was replayed (a dev chain, an old
/// block asked for by hand), not followed live.
const LIVE_WITHIN_MS: i64 = 24 * 3_600_000;

/// When a block appeared: its own timestamp when that is credible (not after the daemon first
/// saw it, give or take clocks; not a day before it), else when the daemon first saw it.
fn appeared(t: &TargetFacts) -> i64 {
    let stamp = t.block_timestamp.and_then(|ts| i64::try_from(ts).ok()).and_then(|ts| ts.checked_mul(1000));
    match stamp {
        Some(ms)
            if ms <= t.first_seen_ms.saturating_add(CLOCK_SLACK_MS)
                && ms >= t.first_seen_ms.saturating_sub(LIVE_WITHIN_MS) =>
        {
            ms
        }
        _ => t.first_seen_ms,
    }
}

/// The score of the blocks that appeared in `[now_ms - window_ms, now_ms]` ([`appeared`]).
pub fn score(
    rules: &Rules,
    targets: &[TargetFacts],
    skipped: &[SkippedFacts],
    now_ms: i64,
    window_ms: i64,
    pricing: Option<Pricing>,
) -> Score {
    let since = now_ms.saturating_sub(window_ms);
    let every = rules.every.max(1);
    let mut s = Score::default();
    let mut proving_total: u128 = 0;
    for t in targets.iter().filter(|t| t.number % every == 0) {
        let appeared = appeared(t);
        if appeared < since || appeared > now_ms {
            continue;
        }
        let mark = appeared.saturating_add(PARALYZED_AFTER_MS);
        match t.proved_at_ms {
            Some(at) => {
                s.counted += 1;
                s.proved += 1;
                let took = t.proving_ms.unwrap_or(u64::MAX);
                if took < rules.deadline_ms {
                    s.in_time += 1;
                }
                proving_total = proving_total.saturating_add(u128::from(t.proving_ms.unwrap_or(0)));
                if at > mark {
                    s.paralyzed += 1;
                }
            }
            None if t.given_up || now_ms > mark => {
                s.counted += 1;
                if now_ms > mark {
                    s.paralyzed += 1;
                }
            }
            None => s.pending += 1,
        }
    }
    // Skipped targets were never proved: counted, and paralyzed once past the mark.
    for r in skipped.iter().filter(|r| r.at_ms >= since && r.at_ms <= now_ms) {
        let in_cohort = multiples(r.first, r.last, every);
        s.counted = s.counted.saturating_add(in_cohort);
        if now_ms > r.at_ms.saturating_add(PARALYZED_AFTER_MS) {
            s.paralyzed = s.paralyzed.saturating_add(in_cohort);
        }
    }
    if s.counted > 0 {
        s.share_in_time = Some(s.in_time as f64 / s.counted as f64);
        s.share_proved = Some(s.proved as f64 / s.counted as f64);
    }
    if s.proved > 0 {
        let avg_ms = proving_total as f64 / s.proved as f64;
        s.avg_proving_ms = Some(avg_ms);
        s.avg_cost_per_proof = pricing.map(|p| p.gpu_hourly_price * f64::from(p.gpus) * avg_ms / 3_600_000.0);
    }
    s
}

/// How many multiples of `every` lie in `first..=last`.
fn multiples(first: u64, last: u64, every: u64) -> u64 {
    if last < first {
        return 0;
    }
    (last / every).saturating_sub(first.saturating_sub(1) / every) + u64::from(first == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    /// Block `n`, appearing at minute `at` (its timestamp), proved `proved_after` minutes later
    /// with `proving_s` seconds of proving, or not (yet).
    fn block(n: u64, at: i64, proved: Option<(i64, u64)>) -> TargetFacts {
        TargetFacts {
            number: n,
            block_timestamp: Some(u64::try_from(at * MIN / 1000).unwrap()),
            first_seen_ms: at * MIN + 500,
            proved_at_ms: proved.map(|(after, _)| (at + after) * MIN),
            proving_ms: proved.map(|(_, s)| s * 1000),
            given_up: false,
        }
    }

    #[test]
    fn a_known_hour_of_real_time_proving_scores_as_ethproofs_would() {
        let now = 1_000 * MIN;
        let rules = rules(Cohort::RealTime);
        let mut history = vec![
            block(1, 950, Some((1, 8))),  // in time
            block(2, 951, Some((1, 9))),  // in time
            block(3, 952, Some((1, 12))), // proved, late
            block(4, 953, Some((25, 9))), // proved in time, but 25 minutes after it appeared: paralyzed meanwhile
            block(5, 954, None),          // never proved, 46 minutes old: paralyzed
            block(6, 995, None),          // on its way, 5 minutes old: pending
            block(7, 900, Some((1, 5))),  // before the window
        ];
        history.push(TargetFacts { given_up: true, ..block(8, 990, None) }); // failed, 10 minutes old
        let pricing = Pricing { gpu_hourly_price: 2.0, gpus: 16 };
        let s = score(&rules, &history, &[], now, 60 * MIN, Some(pricing));
        assert_eq!((s.counted, s.pending, s.proved, s.in_time, s.paralyzed), (6, 1, 4, 3, 2));
        assert_eq!(s.share_in_time, Some(0.5));
        assert!((s.share_proved.unwrap() - 4.0 / 6.0).abs() < 1e-9);
        assert_eq!(s.avg_proving_ms, Some(9_500.0));
        // 2.0 an hour × 16 GPUs × 9.5 s.
        assert!((s.avg_cost_per_proof.unwrap() - 2.0 * 16.0 * 9.5 / 3600.0).abs() < 1e-12);
    }

    #[test]
    fn one_in_ten_counts_every_tenth_block_against_two_minutes() {
        let now = 1_000 * MIN;
        let history = [block(10, 990, Some((1, 119))), block(11, 990, None), block(20, 991, Some((1, 121)))];
        let s = score(&rules(Cohort::OneInTen), &history, &[], now, 60 * MIN, None);
        assert_eq!((s.counted, s.pending, s.in_time), (2, 0, 1), "block 11 is not the cohort's");
        assert_eq!(s.avg_cost_per_proof, None, "no price, no cost");
    }

    #[test]
    fn skipped_targets_count_as_never_proved_and_nothing_counted_is_no_share() {
        let now = 1_000 * MIN;
        let skipped = [SkippedFacts { first: 95, last: 140, at_ms: 970 * MIN }];
        let s = score(&rules(Cohort::OneInTen), &[], &skipped, now, 60 * MIN, None);
        assert_eq!((s.counted, s.paralyzed, s.share_proved), (5, 5, Some(0.0)), "100, 110, 120, 130, 140");
        let empty = score(&rules(Cohort::RealTime), &[], &[], now, 60 * MIN, None);
        assert_eq!((empty.share_in_time, empty.share_proved), (None, None), "a fresh deploy is neither 0 % nor 100 %");
        assert_eq!(multiples(0, 0, 10), 1);
        assert_eq!(multiples(u64::MAX - 5, u64::MAX, 1), 6, "no overflow at the top");
    }

    #[test]
    fn absurd_or_replayed_header_timestamps_fall_back_to_when_the_daemon_saw_the_block() {
        let now = 3_000 * MIN;
        let seen_at = |ts: u64| TargetFacts { block_timestamp: Some(ts), ..block(1, 2_990, Some((1, 5))) };
        for ts in [u64::MAX, 0, 1_700_000_012, 3_000 * 60] {
            let s = score(&rules(Cohort::RealTime), &[seen_at(ts)], &[], now, 60 * MIN, None);
            assert_eq!((s.counted, s.paralyzed), (1, 0), "timestamp {ts}: seen 10 minutes ago, proved a minute later");
        }
        // A live block seen late (the daemon was down) is judged from its own time.
        let late = TargetFacts { first_seen_ms: 2_990 * MIN, ..block(1, 2_950, Some((41, 5))) };
        assert_eq!(score(&rules(Cohort::RealTime), &[late], &[], now, 60 * MIN, None).paralyzed, 1);
    }
}
