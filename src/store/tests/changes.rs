//! Which actors a commit wakes: only those whose queue it changed.

use super::*;

/// The counts that moved since `before`, as (build, prove, report).
fn moved(l: &Ledger, before: &mut Changes) -> (u64, u64, u64) {
    let now = *l.changes().borrow();
    let d = (now.to_build - before.to_build, now.to_prove - before.to_prove, now.to_report - before.to_report);
    *before = now;
    d
}

#[test]
fn each_event_wakes_only_the_actors_whose_queue_it_changed() {
    let (_dir, l) = ledger();
    let mut c = *l.changes().borrow();
    l.targets_scheduled(&[10, 11], None, 11).unwrap();
    assert_eq!(moved(&l, &mut c), (1, 0, 0), "new targets: the InputGenerator's queue, once per commit");
    l.input_built(10, &built(Path::new("/out/i")), true).unwrap();
    assert_eq!(moved(&l, &mut c), (0, 1, 1), "an input built: the Prover's queue and a `queued` call");
    l.input_built(11, &built(Path::new("/out/i")), false).unwrap();
    assert_eq!(moved(&l, &mut c), (0, 1, 0), "reporting off: no call, no Reporter");
    l.proof_started(10, true).unwrap();
    assert_eq!(moved(&l, &mut c), (0, 0, 1), "a run started: its `proving` call");
    l.proof_interrupted(10, false, 3).unwrap();
    assert_eq!(moved(&l, &mut c), (0, 1, 0), "an interrupted run queues its block again");
    let attempt = l.proof_started(10, true).unwrap();
    moved(&l, &mut c);
    let process = RunProcess { pgid: 1, start_ticks: 2, boot_id: "b".into() };
    l.prover_process(10, attempt, &process).unwrap();
    l.prover_exited(10, &exit(Some((Path::new("/out/p"), 2048)))).unwrap();
    assert_eq!(moved(&l, &mut c), (0, 0, 0), "the run's own records wake nobody");
    assert_eq!(l.operator_cancel(10).unwrap(), CancelRequest::NotProving(Some("exited".into())));
    assert_eq!(moved(&l, &mut c), (0, 0, 0), "a cancel that asks nothing wakes nobody");
    let sha256 = digest(10);
    l.proof_accepted(10, &Accepted { sha256: &sha256, ..accepted() }, true).unwrap();
    assert_eq!(moved(&l, &mut c), (0, 0, 1), "a proof accepted: its `proved` call");
    l.probe_write().unwrap();
    assert_eq!(moved(&l, &mut c), (0, 0, 0), "the heartbeat's write probe wakes nobody");
    l.set_paused(true).unwrap();
    assert_eq!(moved(&l, &mut c), (1, 1, 1), "a pause: every actor looks again");
    l.proof_started(11, true).unwrap();
    moved(&l, &mut c);
    assert_eq!(l.operator_cancel(11).unwrap(), CancelRequest::Requested);
    assert_eq!(moved(&l, &mut c), (0, 1, 0), "a cancel asked of a run: the Prover");
}
