//! Which blocks to prove: every multiple of the interval, derived from the range since the last
//! handled target rather than from "is the head a multiple?", so a skipped poll, a lagging node
//! or a dropped WebSocket header never loses a target.

/// Targets due when the head is `head` and everything up to `last_handled` is already handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    /// Targets to prove, oldest first.
    pub prove: Vec<u64>,
    /// Targets older than the backfill window, recorded as skipped instead.
    pub skipped: Vec<u64>,
}

/// The newest multiple of `interval` at or below `head`.
pub fn newest_target(head: u64, interval: u64) -> u64 {
    head - head % interval
}

/// Multiples of `interval` in `(last_handled, head]`; those more than `max_backfill` blocks below
/// the head are skipped. With no `last_handled` (first start), the first target is `start` if given,
/// else the newest target at or below the head.
pub fn due(last_handled: Option<u64>, head: u64, interval: u64, max_backfill: u64, start: Option<u64>) -> Due {
    let first = match (last_handled, start) {
        (Some(last), _) => (last / interval + 1) * interval,
        (None, Some(start)) => start,
        (None, None) => newest_target(head, interval),
    };
    // The genesis block has no parent to execute from: it is never a target.
    let first = first.max(interval);
    let oldest_allowed = head.saturating_sub(max_backfill);
    let mut due = Due { prove: Vec::new(), skipped: Vec::new() };
    let mut n = first;
    while n <= head {
        if n < oldest_allowed {
            due.skipped.push(n);
        } else {
            due.prove.push(n);
        }
        n += interval;
    }
    // Never enumerate an unbounded range of skips (e.g. START_BLOCK far in the past): summarise.
    if due.skipped.len() > 1000 {
        due.skipped.drain(..due.skipped.len() - 1000);
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_start_takes_the_newest_target() {
        assert_eq!(due(None, 1234, 100, 1000, None), Due { prove: vec![1200], skipped: vec![] });
        assert_eq!(due(None, 1200, 100, 1000, None).prove, vec![1200]);
        assert_eq!(due(None, 1234, 100, 1000, Some(1000)).prove, vec![1000, 1100, 1200]);
    }

    #[test]
    fn a_jump_yields_every_target_in_between() {
        assert_eq!(due(Some(1000), 1350, 100, 1000, None).prove, vec![1100, 1200, 1300]);
        assert_eq!(due(Some(1000), 1099, 100, 1000, None).prove, Vec::<u64>::new());
        assert_eq!(due(Some(1050), 1100, 100, 1000, None).prove, vec![1100]);
    }

    #[test]
    fn beyond_the_backfill_window_is_skipped_not_lost() {
        let d = due(Some(1000), 5000, 100, 1000, None);
        assert_eq!(d.prove.first(), Some(&4000));
        assert_eq!(d.prove.last(), Some(&5000));
        assert_eq!(d.skipped.first(), Some(&1100));
        assert_eq!(d.skipped.last(), Some(&3900));
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
}
