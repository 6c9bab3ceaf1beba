use ractor::Actor;

use super::*;
use crate::daemon::test_support::{context, enqueued, wait};
use crate::store::ExitRecord;

/// A Prover over `ctx`, its mailbox pointed at it.
async fn start(ctx: &Arc<Context>, settings: Arc<ProverSettings>) -> Result<ActorRef<ProverMsg>, ractor::SpawnErr> {
    let mailbox = Mailbox::default();
    let prover = Prover {
        ctx: ctx.clone(),
        settings,
        alerts: Alerts::default(),
        mailbox: mailbox.clone(),
        runs: RunSlot::default(),
    };
    let (actor, _) = Actor::spawn(None, prover, ()).await?;
    mailbox.set(Some(actor.clone()));
    Ok(actor)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_exited_before_a_crash_is_judged_from_the_ledger_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    // Any run would fail: the prover binary does not exist.
    let (ctx, settings) = context(dir.path(), "http://127.0.0.1:9", &["--cargo-zisk", "/nonexistent/cargo-zisk"]);
    let ledger = ctx.ledger.clone();
    let (input, proof) = (dir.path().join("input.bin"), dir.path().join("proof.bin"));
    std::fs::write(&input, [0u8; 16]).unwrap();
    std::fs::write(&proof, [9u8; 100]).unwrap();
    let built = enqueued(&input, "0x1");
    ledger.targets_scheduled(&[10, 11], None, 11).unwrap();
    for (n, size) in [(10, 100), (11, 4096)] {
        ledger.input_built(n, &built, false).unwrap();
        ledger.proof_started(n, false).unwrap();
        let exit = ExitRecord { exit: "code 0", proof: Some((&proof, size)), proving_ms: 777, cycles: Some(5) };
        ledger.prover_exited(n, &exit).unwrap();
    }

    let actor = start(&ctx, settings.prover).await.expect("the Prover starts");
    let state_of = |n| ledger.block(n).ok().flatten().map(|b| b.state);
    wait("both judged", || state_of(10) == Some(BlockState::Proved) && state_of(11) == Some(BlockState::Failed)).await;
    let proved = ledger.block(10).unwrap().unwrap();
    assert_eq!((proved.attempts, proved.proving_ms, proved.cycles), (1, Some(777), Some(5)), "not run again");
    assert_eq!(proved.proof_sha256.as_deref().map(str::len), Some(64), "hashed once durable");
    let failed = ledger.block(11).unwrap().unwrap();
    assert_eq!(failed.stage.as_deref(), Some("proof_output"), "a proof of another size is not the one recorded");
    actor.stop(None);
}

/// Every state a crash can leave a block's row in — each business event's rows, and the
/// points between the two writes of every two-write sequence (a cancel's exit and its failure,
/// a run's exit and its verdict, a start and its process record, an interruption at the last
/// attempt) — walked at once: the Prover always starts, and each block ends proved, failed with
/// a reason, or waiting in the queue; none is left `proving` or `exited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_settles_every_state_a_crash_can_leave_and_always_starts() {
    use crate::store::{Accepted, RunProcess};
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--cargo-zisk", "/nonexistent/cargo-zisk", "--max-prove-attempts", "2"];
    let (ctx, settings) = context(dir.path(), "http://127.0.0.1:9", &flags);
    let ledger = ctx.ledger.clone();
    let (input, proof) = (dir.path().join("input.bin"), dir.path().join("proof.bin"));
    std::fs::write(&input, [0u8; 16]).unwrap();
    std::fs::write(&proof, [9u8; 100]).unwrap();
    let built = enqueued(&input, "0x1");
    let exited = |n: u64, exit: &str, proof_bytes: Option<u64>| {
        ledger.input_built(n, &built, false).unwrap();
        ledger.proof_started(n, false).unwrap();
        let exit = ExitRecord { exit, proof: proof_bytes.map(|b| (proof.as_path(), b)), proving_ms: 5, cycles: None };
        ledger.prover_exited(n, &exit).unwrap();
    };
    let blocks: Vec<u64> = (1..=16).collect();
    ledger.targets_scheduled(&blocks, None, 16).unwrap();
    // 1 seen; 2 queued.
    ledger.input_built(2, &built, false).unwrap();
    // 3: started, crashed before its process was recorded; 4: with a process that is long gone.
    ledger.input_built(3, &built, false).unwrap();
    ledger.proof_started(3, false).unwrap();
    ledger.input_built(4, &built, false).unwrap();
    ledger.proof_started(4, false).unwrap();
    let gone = RunProcess { pgid: 999_999, start_ticks: 1, boot_id: "another boot".into() };
    ledger.prover_process(4, 1, &gone).unwrap();
    // 5: a proof recorded at exit, its verdict not yet; 6: the same, its proof gone since.
    exited(5, "code 0", Some(100));
    exited(6, "code 0", Some(4096));
    // 7: an operator's cancel whose failure was never written (issue N's start that refused).
    exited(7, "cancelled", None);
    // 8: killed by a signal; 9: timed out; 10: an exit text this build never writes.
    exited(8, "signal 9", None);
    exited(9, "timed out", None);
    exited(10, "a record from another build", None);
    // 11: interrupted once already, at the last attempt: the next interruption gives it up.
    ledger.input_built(11, &built, false).unwrap();
    ledger.proof_started(11, false).unwrap();
    assert_eq!(ledger.proof_interrupted(11, true, 2).unwrap(), Interrupted::Requeued);
    ledger.proof_started(11, false).unwrap();
    // 12 proved, 13 failed, 14 executed: settled already.
    exited(12, "code 0", Some(100));
    let digest = "ab".repeat(32);
    ledger
        .proof_accepted(12, &Accepted { proving_ms: 5, cycles: None, sha256: &digest, checked_for: None }, false)
        .unwrap();
    ledger.input_built(13, &built, false).unwrap();
    ledger.proof_started(13, false).unwrap();
    ledger.proof_failed(13, Stage::Spawn, "no prover").unwrap();
    exited(14, "code 0", None);
    ledger.executed(14, 5, None).unwrap();
    // 15: its prover finished and wrote its proof, and the daemon died before the exit was
    // recorded (the ledger locked, a stop): the proof is judged, not proved again. 16: the
    // daemon died while the prover was writing: half a proof, proved again.
    let whole = crate::verify::tests::forged(&[1, 2, 3, 4], &[0; 64]);
    for (n, proof) in [(15u64, whole.clone()), (16, whole[..whole.len() / 2].to_vec())] {
        let own = dir.path().join(n.to_string());
        std::fs::create_dir_all(&own).unwrap();
        std::fs::write(own.join("input.bin"), [0u8; 16]).unwrap();
        let own_input = own.join("input.bin");
        ledger.input_built(n, &enqueued(&own_input, "0x1"), false).unwrap();
        ledger.proof_started(n, false).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(own.join("proof.bin"), proof).unwrap();
    }

    let actor = start(&ctx, settings.prover).await.expect("the Prover always starts");
    let row = |n| ledger.block(n).unwrap().unwrap();
    // Queued blocks are run (and fail: there is no prover); wait until every block has ended
    // or waits for an input no one builds here.
    let ended = |n: &u64| {
        matches!(row(*n).state, BlockState::Proved | BlockState::Executed | BlockState::Failed | BlockState::Seen)
    };
    wait("every block ended", || blocks.iter().all(ended)).await;
    for n in &blocks {
        let b = row(*n);
        match b.state {
            BlockState::Proved | BlockState::Executed | BlockState::Seen | BlockState::Queued => {}
            BlockState::Failed => {
                assert!(b.reason.as_deref().is_some_and(|r| !r.is_empty()), "{n}: failed without a reason")
            }
            other => panic!("block {n} left {other}"),
        }
    }
    assert_eq!(row(5).state, BlockState::Proved, "a recorded proof is judged, not proved again");
    assert_eq!((row(7).state, row(7).stage.as_deref()), (BlockState::Failed, Some("cancelled")));
    assert_eq!((row(11).state, row(11).stage.as_deref()), (BlockState::Failed, Some("prove")));
    assert_eq!(row(12).state, BlockState::Proved);
    let found = row(15);
    assert_eq!((found.state, found.attempts, found.interruptions), (BlockState::Proved, 1, 0), "{found:?}");
    assert_eq!(found.exit.as_deref(), Some("proof found after a restart"));
    let half = row(16);
    assert_eq!(half.interruptions, 1, "half a proof is an interrupted run, never a proof: {half:?}");
    assert_ne!(half.state, BlockState::Proved);
    actor.stop(None);
}
