//! Which blocks to prove: every multiple of the interval, derived from the range since the last
//! scheduled target rather than from "is the head a multiple?", so a skipped poll, a lagging node
//! or a dropped WebSocket header never loses a target. A range too far below the head is given
//! up as one record, never materialised block by block.

use crate::runtime::backoff::Backoff;

/// Targets due when the head is `head` and everything up to the cursor is already handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Targets to prove, oldest first (at most `max_backfill / interval + 1` of them).
    pub prove: Vec<u64>,
    /// Targets older than the backfill window: `(first, last, count)`, recorded as one skip.
    pub skipped: Option<(u64, u64, u64)>,
    /// The newest target handled by this decision: where the next one resumes.
    pub cursor: Option<u64>,
}

/// The newest multiple of `interval` at or below `head`.
pub fn newest_target(head: u64, interval: u64) -> u64 {
    head - head % interval
}

/// The first multiple of `interval` strictly above `n`, if it fits in a u64.
fn next_multiple(n: u64, interval: u64) -> Option<u64> {
    (n / interval).checked_add(1)?.checked_mul(interval)
}

/// Multiples of `interval` in `(last, head]`; those more than `max_backfill` blocks below the
/// head are skipped. With no `last` (first start), the first target is `start` if given, else
/// the newest target at or below the head. Genesis is never a target.
pub fn due(last: Option<u64>, head: u64, interval: u64, max_backfill: u64, start: Option<u64>) -> Due {
    let none = Due { prove: Vec::new(), skipped: None, cursor: None };
    let interval = interval.max(1);
    let first = match (last, start) {
        (Some(last), _) => match next_multiple(last, interval) {
            Some(f) => f,
            None => return none,
        },
        // A START_BLOCK that is not a multiple begins at the next one.
        (None, Some(start)) if start % interval == 0 => start,
        (None, Some(start)) => match next_multiple(start, interval) {
            Some(f) => f,
            None => return none,
        },
        (None, None) => newest_target(head, interval),
    };
    // The genesis block has no parent to execute from.
    let first = first.max(interval);
    if first > head {
        return none;
    }
    let last_target = newest_target(head, interval);
    let oldest_allowed = head.saturating_sub(max_backfill);
    // The first multiple inside the window.
    let window_first = if oldest_allowed <= first {
        first
    } else {
        match next_multiple(oldest_allowed - 1, interval) {
            Some(f) => f,
            None => return none,
        }
    };
    let skipped = (window_first > first).then(|| {
        let skip_last = window_first - interval;
        (first, skip_last, (skip_last - first) / interval + 1)
    });
    let prove = (window_first..=last_target).step_by(usize::try_from(interval).unwrap_or(usize::MAX)).collect();
    Due { prove, skipped, cursor: Some(last_target) }
}

/// Which `seen` block to build next, given the newest head the node has shown a block for and
/// the blocks already building: the oldest (or, `newest` for `PROVE_ORDER=newest`, the newest) one at or
/// below that head. Blocks above it (an operator's far block, a typo) wait for the chain without
/// holding back those the node already has; with no believed head yet, nothing is built.
/// `seen` is oldest first.
pub fn next_to_build(seen: &[u64], head: Option<u64>, building: &[u64], newest: bool) -> Option<u64> {
    let head = head?;
    let mut candidates = seen.iter().copied().filter(|b| *b <= head && !building.contains(b));
    if newest { candidates.next_back() } else { candidates.next() }
}

/// How long a target the node did not serve waits before it is asked for again, after `tries`
/// answers of "not yet": 5 s doubling to 5 minutes.
pub fn not_served_retry(tries: u32) -> std::time::Duration {
    use std::time::Duration;
    const NOT_SERVED: Backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(300));
    NOT_SERVED.after(tries.saturating_add(1))
}

/// Whether a target `block` has left the backfill window at `head`: the node is no longer asked
/// for it, and it is failed.
pub fn out_of_window(block: u64, head: u64, max_backfill: u64) -> bool {
    head.saturating_sub(block) > max_backfill
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_beyond_the_head_waits_without_holding_back_the_others() {
        let next = |seen: &[u64], head| next_to_build(seen, head, &[], false);
        assert_eq!(next(&[10, 15, 1_000_000], Some(20)), Some(10));
        assert_eq!(next(&[15, 1_000_000], Some(20)), Some(15));
        assert_eq!(next(&[1_000_000], Some(20)), None, "waits for the chain");
        assert_eq!(next(&[5, 1_000_000], Some(1_000_000)), Some(5));
        assert_eq!(next(&[10], None), None, "no head believed yet: nothing is built");
        assert_eq!(next(&[], Some(20)), None);
    }

    #[test]
    fn builds_side_by_side_take_the_next_block_in_the_operators_order() {
        let seen = [10, 11, 12, 13, 1_000_000];
        assert_eq!(next_to_build(&seen, Some(20), &[10], false), Some(11), "10 is building already");
        assert_eq!(next_to_build(&seen, Some(20), &[10, 11, 12, 13], false), None);
        assert_eq!(next_to_build(&seen, Some(20), &[], true), Some(13), "never above the head");
        assert_eq!(next_to_build(&seen, Some(20), &[13], true), Some(12));
    }

    #[test]
    fn first_start_takes_the_newest_target() {
        assert_eq!(due(None, 1234, 100, 1000, None).prove, vec![1200]);
        assert_eq!(due(None, 1200, 100, 1000, None).prove, vec![1200]);
        assert_eq!(due(None, 1234, 100, 1000, Some(1000)).prove, vec![1000, 1100, 1200]);
        assert_eq!(due(None, 1234, 100, 1000, Some(1050)).prove, vec![1100, 1200]);
        assert_eq!(due(None, 1234, 100, 1000, None).cursor, Some(1200));
    }

    #[test]
    fn a_jump_yields_every_target_in_between() {
        assert_eq!(due(Some(1000), 1350, 100, 1000, None).prove, vec![1100, 1200, 1300]);
        assert_eq!(due(Some(1000), 1099, 100, 1000, None), Due { prove: vec![], skipped: None, cursor: None });
        assert_eq!(due(Some(1050), 1100, 100, 1000, None).prove, vec![1100]);
    }

    #[test]
    fn beyond_the_backfill_window_is_one_skipped_range() {
        let d = due(Some(1000), 5000, 100, 1000, None);
        assert_eq!(d.prove.first(), Some(&4000));
        assert_eq!(d.prove.last(), Some(&5000));
        assert_eq!(d.skipped, Some((1100, 3900, 29)));
        assert_eq!(d.cursor, Some(5000));
        // Every multiple is either proved or in the skipped range.
        let (first, last, count) = d.skipped.unwrap();
        assert_eq!(count + d.prove.len() as u64, (5000 - 1000) / 100);
        assert_eq!((first, last + 100), (1100, d.prove[0]));
    }

    #[test]
    fn an_absurd_head_costs_no_memory() {
        let d = due(Some(1000), u64::MAX, 100, 1000, None);
        assert!(d.prove.len() <= 11, "{}", d.prove.len());
        let (_, _, count) = d.skipped.unwrap();
        assert!(count > 1_000_000_000);
        assert_eq!(due(Some(u64::MAX - 5), u64::MAX, 100, 1000, None).prove, Vec::<u64>::new());
    }

    #[test]
    fn genesis_is_never_a_target() {
        assert_eq!(due(None, 0, 100, 1000, None).prove, Vec::<u64>::new());
        assert_eq!(due(None, 7, 5, 1000, None).prove, vec![5]);
        assert_eq!(due(None, 3, 5, 1000, None).prove, Vec::<u64>::new());
    }

    #[test]
    fn interval_one_proves_every_block() {
        assert_eq!(due(Some(10), 13, 1, 1000, None).prove, vec![11, 12, 13]);
    }

    #[test]
    fn a_target_the_node_does_not_serve_backs_off_and_leaves_with_the_window() {
        assert_eq!(not_served_retry(0).as_secs(), 5);
        assert_eq!(not_served_retry(1).as_secs(), 10);
        assert_eq!(not_served_retry(6).as_secs(), 300);
        assert_eq!(not_served_retry(u32::MAX).as_secs(), 300, "never overflows");
        assert!(!out_of_window(1000, 2000, 1000));
        assert!(out_of_window(1000, 2001, 1000));
        assert!(!out_of_window(5000, 10, 1000), "a block above the head is not behind it");
    }
}
