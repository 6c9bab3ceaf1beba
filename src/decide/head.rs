//! The head rule: a height the node names (`eth_blockNumber`, `newHeads`) is believed only once
//! the node answers a block at that height, so one absurd answer schedules nothing.

/// What one head answer leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadStep {
    /// The believed head again: only its age is refreshed.
    Same,
    /// Lower than the believed head: nothing.
    Nothing,
    /// Higher: ask the node for the block at this height, and believe it only if it answers one.
    LookUp,
}

/// `believed`: the head the daemon holds. The look-up is asked in the same task as the answer
/// (the poll's, the subscription's), so none is ever under way between two answers.
pub fn on_answer(believed: Option<u64>, answered: u64) -> HeadStep {
    match believed {
        Some(b) if answered == b => HeadStep::Same,
        Some(b) if answered < b => HeadStep::Nothing,
        _ => HeadStep::LookUp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_higher_head_is_looked_up() {
        assert_eq!(on_answer(None, 200_000_000), HeadStep::LookUp, "a fresh ledger believes nothing unchecked");
        assert_eq!(on_answer(Some(10), 10), HeadStep::Same);
        assert_eq!(on_answer(Some(10), 9), HeadStep::Nothing);
        assert_eq!(on_answer(Some(10), 0), HeadStep::Nothing);
        assert_eq!(on_answer(Some(10), 11), HeadStep::LookUp);
        assert_eq!(on_answer(Some(10), u64::MAX), HeadStep::LookUp);
    }
}
