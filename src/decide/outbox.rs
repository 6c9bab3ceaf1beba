//! The outbox policy: which pending EthProofs call goes next, and what an answer means for it.
//!
//! Order is kept per block (queued, then proving, then proved), never across blocks: one
//! block's failing call waits on its own backoff while other blocks' calls go out.

use std::collections::HashSet;
use std::time::Duration;

use crate::outside::ethproofs::Outcome;
use crate::runtime::backoff::Backoff;
use crate::store::{ReportKind, ReportRow, Settle};

/// What the Reporter does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this call now.
    Send(i64),
    /// This call is not needed: a later call for its block does its work.
    Supersede(i64),
    /// This call can never succeed; give it up with the reason.
    GiveUp(i64, String),
    /// Nothing can go before this time (ms since the epoch).
    WaitUntil(i64),
    Idle,
}

/// What the outbox needs to know about a block beyond its pending calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlockFacts {
    /// The API accepted a `queued` or `proving` for it, so it has the row a `proved` needs.
    pub row_accepted: bool,
    /// The block ended without a proof (failed, skipped): nothing more will follow.
    pub ended_unproved: bool,
}

/// `pending` in the order raised; `facts` answers for any block among them.
///
/// A call that is *in doubt* (its send started and its answer was never recorded, because the
/// daemon died) may already be on the site. Sending it again would be a duplicate, so an
/// in-doubt `queued` or `proving` goes again only when something needs it: it is superseded by
/// a later call that does its work (`proving` creates the row as `queued` does; `proved` needs
/// only a row that an accepted call already made), held while nothing follows it, and dropped
/// once its block ended without a proof.
pub fn next(pending: &[ReportRow], facts: impl Fn(u64) -> BlockFacts, now_ms: i64) -> Next {
    let mut seen_blocks = HashSet::new();
    let mut earliest: Option<i64> = None;
    for row in pending {
        // Only a block's first pending call may go: per-block order.
        if !seen_blocks.insert(row.block) {
            continue;
        }
        let block = facts(row.block);
        if row.in_doubt && row.kind != ReportKind::Proved {
            let later = |kind| pending.iter().any(|r| r.block == row.block && r.id != row.id && r.kind == kind);
            let superseded = match row.kind {
                ReportKind::Queued => later(ReportKind::Proving),
                _ => later(ReportKind::Proved) && block.row_accepted,
            };
            if superseded || block.ended_unproved {
                return Next::Supersede(row.id);
            }
            if !later(ReportKind::Proving) && !later(ReportKind::Proved) {
                continue;
            }
        }
        if row.kind == ReportKind::Proved && !block.row_accepted {
            return Next::GiveUp(
                row.id,
                "neither queued nor proving was accepted for this block, so the API has no row to prove".into(),
            );
        }
        if row.next_attempt_at_ms <= now_ms {
            return Next::Send(row.id);
        }
        earliest = Some(earliest.map_or(row.next_attempt_at_ms, |e| e.min(row.next_attempt_at_ms)));
    }
    earliest.map_or(Next::Idle, Next::WaitUntil)
}

/// Retry policy.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The wait between tries of a failing call: 2 s doubling, up to `REPORT_MAX_BACKOFF_SECONDS`
    /// (which caps a `Retry-After` too, so one absurd header cannot stop reporting), spread by up
    /// to half a second so that daemons sharing one key do not retry in step.
    pub backoff: Backoff,
    /// A call still failing this long after it was raised is given up.
    pub max_age: Duration,
}

impl Policy {
    pub fn new(max_backoff: Duration, max_age: Duration) -> Policy {
        let backoff = Backoff::new(Duration::from_secs(2), max_backoff).with_jitter(Duration::from_millis(500));
        Policy { backoff, max_age }
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What an answer means for `row`, sent at `now_ms`; `draw` (0..1000, `runtime::backoff::draw`)
/// picks the backoff's jitter.
pub fn settle(row: &ReportRow, outcome: &Outcome, policy: Policy, now_ms: i64, draw: u32) -> Settle {
    let age = now_ms.saturating_sub(row.created_at_ms).max(0);
    match outcome {
        Outcome::Done => Settle::Done,
        Outcome::AlreadyProved => Settle::AlreadyProved,
        Outcome::Permanent { reason, .. } => Settle::Failed(reason.clone()),
        Outcome::RetryAfter(wait) => {
            let wait = (*wait).min(policy.backoff.max);
            Settle::Retry {
                error: format!("rate limited for {}s", wait.as_secs()),
                next_at_ms: now_ms.saturating_add(ms(wait)),
            }
        }
        Outcome::Transient { reason, .. } if age > ms(policy.max_age) => {
            let hours = policy.max_age.as_secs() / 3600;
            Settle::Failed(format!("still failing after {hours} h: {reason}"))
        }
        Outcome::Transient { reason, .. } => {
            let wait = policy.backoff.at(row.attempts.saturating_add(1), draw);
            Settle::Retry { error: reason.clone(), next_at_ms: now_ms.saturating_add(ms(wait)) }
        }
    }
}

/// How long a `proved` waits before the node is asked again whether its block is still
/// canonical, after `waited_ms` of waiting: a quarter of the wait so far, between 2 s and 60 s —
/// soon after a blip, rarely during a long outage.
pub fn canonical_wait_ms(waited_ms: i64) -> i64 {
    (waited_ms / 4).clamp(2_000, 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ReportState;

    fn row(id: i64, block: u64, kind: ReportKind, next_at: i64) -> ReportRow {
        ReportRow {
            id,
            block,
            kind,
            state: ReportState::Pending,
            created_at_ms: 0,
            attempts: 0,
            next_attempt_at_ms: next_at,
            in_doubt: false,
            proving_ms: None,
            cycles: None,
            proof_path: None,
            last_error: None,
            proof_sha256: None,
        }
    }

    const ROW: BlockFacts = BlockFacts { row_accepted: true, ended_unproved: false };
    const NO_ROW: BlockFacts = BlockFacts { row_accepted: false, ended_unproved: false };

    #[test]
    fn one_blocks_backoff_does_not_hold_back_another() {
        let pending = [row(1, 100, ReportKind::Proved, 5_000), row(2, 200, ReportKind::Queued, 0)];
        assert_eq!(next(&pending, |_| ROW, 1_000), Next::Send(2));
        assert_eq!(next(&pending[..1], |_| ROW, 1_000), Next::WaitUntil(5_000));
        assert_eq!(next(&[], |_| ROW, 1_000), Next::Idle);
    }

    #[test]
    fn within_a_block_the_order_is_kept() {
        let pending = [row(1, 100, ReportKind::Proving, 5_000), row(2, 100, ReportKind::Proved, 0)];
        assert_eq!(next(&pending, |_| ROW, 1_000), Next::WaitUntil(5_000), "proved waits for proving");
        assert!(matches!(next(&[row(3, 100, ReportKind::Proved, 0)], |_| NO_ROW, 0), Next::GiveUp(3, _)));
    }

    #[test]
    fn a_call_in_doubt_is_not_sent_again_unless_something_needs_it() {
        let mut pending = [row(1, 100, ReportKind::Queued, 0), row(2, 100, ReportKind::Proving, 0)];
        assert_eq!(next(&pending, |_| NO_ROW, 0), Next::Send(1), "in order while nothing is in doubt");
        pending[0].in_doubt = true;
        assert_eq!(next(&pending, |_| NO_ROW, 0), Next::Supersede(1), "proving makes the row as well");

        let mut proving = row(3, 200, ReportKind::Proving, 0);
        proving.in_doubt = true;
        assert_eq!(next(std::slice::from_ref(&proving), |_| ROW, 0), Next::Idle, "held: nothing follows it yet");
        let ended = BlockFacts { ended_unproved: true, ..NO_ROW };
        assert_eq!(next(std::slice::from_ref(&proving), |_| ended, 0), Next::Supersede(3), "its block ended");
        let with_proved = [proving.clone(), row(4, 200, ReportKind::Proved, 0)];
        assert_eq!(next(&with_proved, |_| ROW, 0), Next::Supersede(3), "queued made the row: proved can go");
        assert_eq!(next(&with_proved, |_| NO_ROW, 0), Next::Send(3), "no row known: proving must go again");
    }

    #[test]
    fn answers_settle_and_waits_are_capped_without_overflow() {
        let policy = Policy::new(Duration::from_secs(300), Duration::from_secs(3600));
        let r = row(1, 100, ReportKind::Proved, 0);
        let huge = Outcome::RetryAfter(Duration::from_secs(u64::MAX));
        assert_eq!(
            settle(&r, &huge, policy, 1_000, 0),
            Settle::Retry { error: "rate limited for 300s".into(), next_at_ms: 301_000 }
        );
        let transient = Outcome::Transient { http: Some(500), reason: "HTTP 500".into() };
        assert!(matches!(settle(&r, &transient, policy, 1_000, 0), Settle::Retry { next_at_ms: 3_000, .. }));
        assert!(matches!(settle(&r, &transient, policy, 4_000_000, 0), Settle::Failed(m) if m.contains("1 h")));
        assert_eq!(policy.backoff.after(u32::MAX), Duration::from_secs(300), "no overflow");
        let refused = Outcome::Permanent { http: Some(401), reason: "HTTP 401".into() };
        assert_eq!(settle(&r, &refused, policy, 0, 0), Settle::Failed("HTTP 401".into()));
    }

    #[test]
    fn a_proved_waiting_for_the_canonical_check_backs_off_between_2_and_60_seconds() {
        assert_eq!(canonical_wait_ms(0), 2_000);
        assert_eq!(canonical_wait_ms(40_000), 10_000);
        assert_eq!(canonical_wait_ms(3_600_000), 60_000);
        assert_eq!(canonical_wait_ms(-5), 2_000, "a clock that stepped back");
    }
}
