//! The read models' tests: the report's lines, the recent lists and their index, the figures.

use std::path::Path;

use super::*;

#[test]
fn report_lines_join_the_proved_call() {
    let (_d, l) = ledger();
    prove(&l, 10);
    for r in l.pending_reports().unwrap() {
        l.report_settled(&r, &Settle::Done).unwrap();
    }
    l.targets_scheduled(&[11], None, 11).unwrap();
    l.input_failed(11, Stage::Input, "no witness").unwrap();
    let lines = l.report_lines(0).unwrap();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0].outcome.as_str(), lines[0].proving_ms, lines[0].input_ms), ("proved", Some(1234), Some(12)));
    assert!(lines[0].reported_at_ms.is_some());
    assert_eq!((lines[1].outcome.as_str(), lines[1].stage.as_deref()), ("failed", Some("input")));
    assert!(l.report_lines(i64::MAX).unwrap().is_empty());
    let newest: Vec<u64> = l.recent_blocks(None, 1).unwrap().iter().map(|b| b.block).collect();
    assert_eq!(newest, vec![11]);
}

#[test]
fn recent_blocks_are_ordered_by_their_last_move_not_their_number() {
    let (_d, l) = ledger();
    // An operator's typo far above the head, failed first; targets move after it.
    l.operator_prove(&[1_000_000_000]).unwrap();
    l.input_failed(1_000_000_000, Stage::FetchBlock, "no such block").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    l.targets_scheduled(&[10, 11], None, 11).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    l.input_failed(10, Stage::Input, "bad witness").unwrap();
    let order: Vec<u64> = l.recent_blocks(None, 10).unwrap().iter().map(|b| b.block).collect();
    assert_eq!(order, vec![10, 11, 1_000_000_000], "the latest move first, the old typo last");
    let failed: Vec<u64> = l.recent_blocks(Some("failed"), 1).unwrap().iter().map(|b| b.block).collect();
    assert_eq!(failed, vec![10]);
}

#[test]
fn the_recent_lists_read_the_last_move_index_not_the_whole_ledger() {
    let (_d, l) = ledger();
    let conn = l.lock();
    let sql = format!("EXPLAIN QUERY PLAN {}", crate::store::lines::lines_sql(&crate::store::lines::recent_tail()));
    let plan: Vec<String> = conn
        .prepare(&sql)
        .unwrap()
        .query_map(rusqlite::params![Option::<String>::None, 20], |r| r.get::<_, String>(3))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(plan.iter().any(|step| step.contains("blocks_last_move")), "{plan:?}");
    assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE FOR ORDER BY")), "sorted in memory: {plan:?}");
}

#[test]
fn targets_behind_counts_from_the_newest_done_target_and_not_an_operators_block() {
    let (_d, l) = ledger();
    assert_eq!(l.targets_behind(BlockState::Executed).unwrap(), 0, "a fresh ledger is behind nothing");
    l.targets_scheduled(&[10, 11, 12], None, 12).unwrap();
    assert_eq!(l.targets_behind(BlockState::Executed).unwrap(), 3, "none done since the start");
    l.input_built(10, &built(Path::new("/i")), false).unwrap();
    l.proof_started(10, false).unwrap();
    l.prover_exited(10, &exit(None)).unwrap();
    l.executed(10, 5, None).unwrap();
    assert_eq!(l.targets_behind(BlockState::Executed).unwrap(), 2);
    assert_eq!(l.targets_behind(BlockState::Proved).unwrap(), 3, "prove mode counts proofs only");
    // An operator's block done above the failing targets does not hide them.
    l.operator_prove(&[50]).unwrap();
    l.input_built(50, &built(Path::new("/i")), false).unwrap();
    l.proof_started(50, false).unwrap();
    l.prover_exited(50, &exit(None)).unwrap();
    l.executed(50, 5, None).unwrap();
    assert_eq!(l.targets_behind(BlockState::Executed).unwrap(), 2);
}

#[test]
fn reliability_counts_the_outcome_the_mode_makes() {
    let (_d, l) = ledger();
    assert_eq!(l.reliability(0, BlockState::Proved).unwrap(), (0, 0), "no targets yet");
    l.targets_scheduled(&[10, 11], None, 11).unwrap();
    l.input_built(10, &built(Path::new("/i")), false).unwrap();
    l.proof_started(10, false).unwrap();
    l.prover_exited(10, &exit(None)).unwrap();
    l.executed(10, 5, None).unwrap();
    assert_eq!(l.reliability(0, BlockState::Executed).unwrap(), (2, 1));
    assert_eq!(l.reliability(0, BlockState::Proved).unwrap(), (2, 0));
}
