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
    let sql = format!("EXPLAIN QUERY PLAN {}", crate::store::lines::lines_sql(&crate::store::lines::recent_tail()));
    let plan = plan_of(&l, &sql, rusqlite::params![Option::<String>::None, 20]);
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

#[test]
fn the_figures_every_poll_reads_seek_indexes_never_scan_the_ledger() {
    let (_d, l) = ledger();
    for n in 1..=50 {
        prove(&l, n * 10);
    }
    let done = BlockState::Proved.as_str();
    let queries: [(&str, Vec<String>); 5] = [
        ("counts", plan_of(&l, super::super::reads::COUNTS_SQL, [])),
        ("reliability", plan_of(&l, super::super::lines::RELIABILITY_SQL, rusqlite::params![0, done])),
        ("targets behind", plan_of(&l, super::super::lines::TARGETS_BEHIND_SQL, rusqlite::params![done])),
        ("newest done", plan_of(&l, super::super::lines::NEWEST_IN_SQL, rusqlite::params![done])),
        ("last reported", plan_of(&l, super::super::lines::LAST_REPORTED_SQL, [])),
    ];
    for (what, plan) in queries {
        let scans: Vec<&String> =
            plan.iter().filter(|s| s.starts_with("SCAN blocks") || s.starts_with("SCAN reports")).collect();
        assert!(scans.is_empty(), "{what} reads the whole ledger on every poll: {plan:?}");
    }
}

#[test]
fn the_counts_the_ledger_keeps_are_a_count_of_its_blocks_after_every_move_and_an_upgrade() {
    let (d, l) = ledger();
    let by_scan = |l: &Ledger| -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = l.conn(|c| {
            c.prepare("SELECT state, COUNT(*) FROM blocks GROUP BY state")
                .unwrap()
                .query_map([], |r| Ok((r.get::<_, String>(0)?, from_sql(r.get(1)?))))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        });
        counts.sort();
        counts
    };
    prove(&l, 10);
    l.targets_scheduled(&[20, 30, 40], None, 40).unwrap();
    l.input_failed(20, Stage::Input, "bad witness").unwrap();
    l.input_built(30, &built(Path::new("/i")), false).unwrap();
    let kept = l.counts().unwrap();
    assert_eq!(kept, by_scan(&l), "kept with every move");
    assert_eq!(kept.iter().map(|(_, n)| n).sum::<u64>(), 4);
    // A ledger written before the counts were kept gets them counted when it is upgraded.
    l.conn(|c| {
        c.execute_batch(
            "DROP TRIGGER blocks_counted_in; DROP TRIGGER blocks_counted_out; DROP TRIGGER blocks_counted_move;
             DROP TABLE state_counts; DROP INDEX blocks_first_seen; DROP INDEX reports_by_status;
             ALTER TABLE blocks DROP COLUMN job_submission; ALTER TABLE blocks DROP COLUMN job_in_doubt_until;
             INSERT INTO blocks (number, state, origin) VALUES (50, 'seen', 'schedule');
             PRAGMA user_version = 8;",
        )
        .unwrap()
    });
    drop(l);
    let l = Ledger::open(&d.path().join("l.db")).unwrap();
    assert_eq!(l.counts().unwrap(), by_scan(&l));
    assert_eq!(l.counts().unwrap().iter().map(|(_, n)| n).sum::<u64>(), 5);
}

/// The steps SQLite plans for `sql` (`EXPLAIN QUERY PLAN`): whether it reads an index or the
/// whole table is what keeps a page fast on a ledger of millions of blocks.
pub(super) fn plan_of(l: &crate::store::Ledger, sql: &str, params: impl rusqlite::Params) -> Vec<String> {
    l.conn(|conn| {
        let sql = if sql.starts_with("EXPLAIN") { sql.to_string() } else { format!("EXPLAIN QUERY PLAN {sql}") };
        conn.prepare(&sql).unwrap().query_map(params, |r| r.get::<_, String>(3)).unwrap().map(Result::unwrap).collect()
    })
}
