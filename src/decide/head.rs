//! The head rule: a height the node names (`eth_blockNumber`, `newHeads`) is believed only once
//! the node answers a block at that height, so one absurd answer schedules nothing.

/// What one head answer leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStep {
    /// The believed head again: only its age is refreshed.
    Same,
    /// Lower than the believed head, or a look-up of a head at least this high is under way.
    Nothing,
    /// Higher: ask the node for the block at this height, and believe it only if it answers one.
    LookUp,
}

/// `believed`: the head the daemon holds; `looking_up`: a height whose block is being asked for.
pub fn on_answer(believed: Option<u64>, looking_up: Option<u64>, answered: u64) -> HeadStep {
    match believed {
        Some(b) if answered == b => HeadStep::Same,
        Some(b) if answered < b => HeadStep::Nothing,
        _ if looking_up.is_some_and(|h| h >= answered) => HeadStep::Nothing,
        _ => HeadStep::LookUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_higher_head_is_looked_up_and_only_once() {
        assert_eq!(on_answer(None, None, 200_000_000), HeadStep::LookUp, "a fresh ledger believes nothing unchecked");
        assert_eq!(on_answer(Some(10), None, 10), HeadStep::Same);
        assert_eq!(on_answer(Some(10), None, 9), HeadStep::Nothing);
        assert_eq!(on_answer(Some(10), Some(12), 11), HeadStep::Nothing, "a higher look-up is under way");
        assert_eq!(on_answer(Some(10), Some(11), 12), HeadStep::LookUp, "a newer head replaces the look-up");
        assert_eq!(on_answer(Some(10), None, u64::MAX), HeadStep::LookUp);
    }
}
