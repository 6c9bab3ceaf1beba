use std::path::Path;

use super::*;

#[test]
fn a_proof_recorded_for_another_block_is_refused_in_the_same_transaction() {
    let (_d, l) = ledger();
    prove(&l, 100);
    l.targets_scheduled(&[200], None, 200).unwrap();
    l.input_built(200, &built(Path::new("/out/i")), true).unwrap();
    l.proof_started(200, true).unwrap();
    l.prover_exited(200, &exit(Some((Path::new("/out/p2"), 2048)))).unwrap();
    let same = digest(100);
    let said = l.proof_accepted(200, &Accepted { sha256: &same, ..accepted() }, true).unwrap();
    let Acceptance::Duplicate { block: 100, reason } = said else { panic!("accepted: {said:?}") };
    let b = l.block(200).unwrap().unwrap();
    assert_eq!(
        (b.state, b.stage.as_deref(), b.reason.as_deref()),
        (BlockState::Failed, Some("verify"), Some(reason.as_str()))
    );
    assert!(reason.contains("block 100"), "{reason}");
    assert!(l.reports_of(200).unwrap().iter().all(|r| r.kind != ReportKind::Proved), "no proved raised for it");
    assert_eq!(l.block(100).unwrap().unwrap().state, BlockState::Proved, "the first block keeps its proof");
}

#[test]
fn a_proved_block_that_left_the_chain_is_built_again_and_its_unsent_proved_kept_in_history() {
    let (_d, l) = ledger();
    prove(&l, 100);
    l.block_reorged(100, Some("0xab"), Some(Path::new("/out/100.orphan-ab")), "no longer canonical").unwrap();
    let b = l.block(100).unwrap().unwrap();
    assert_eq!((b.state, b.proof_sha256, b.expected_output), (BlockState::Seen, None, None));
    assert!(l.reports_of(100).unwrap().iter().all(|r| r.kind != ReportKind::Proved), "the orphan's proved never goes");
    assert_eq!(l.orphans(10).unwrap().len(), 1);
    // The replacement is proved and its own `proved` is raised (the orphan's did not block it).
    l.input_built(100, &built(Path::new("/out/i")), true).unwrap();
    l.proof_started(100, true).unwrap();
    l.prover_exited(100, &exit(Some((Path::new("/out/p"), 2048)))).unwrap();
    let other = digest(101);
    l.proof_accepted(100, &Accepted { sha256: &other, ..accepted() }, true).unwrap();
    let proved: Vec<_> = l.reports_of(100).unwrap().into_iter().filter(|r| r.kind == ReportKind::Proved).collect();
    assert_eq!(proved.len(), 1);
    assert_eq!(proved[0].proof_sha256.as_deref(), Some(other.as_str()));
}
