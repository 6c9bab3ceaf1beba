use ractor::Actor;

use super::*;
use crate::daemon::test_support::{context, enqueued, wait};
use crate::store::ExitRecord;

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

    let mailbox = Mailbox::default();
    let prover =
        Prover { ctx: ctx.clone(), settings: settings.prover, alerts: Alerts::default(), mailbox: mailbox.clone() };
    let (actor, _) = Actor::spawn(None, prover, ()).await.unwrap();
    mailbox.set(Some(actor.clone()));
    let state_of = |n| ledger.block(n).ok().flatten().map(|b| b.state);
    wait("both judged", || state_of(10) == Some(BlockState::Proved) && state_of(11) == Some(BlockState::Failed)).await;
    let proved = ledger.block(10).unwrap().unwrap();
    assert_eq!((proved.attempts, proved.proving_ms, proved.cycles), (1, Some(777), Some(5)), "not run again");
    assert_eq!(proved.proof_sha256.as_deref().map(str::len), Some(64), "hashed once durable");
    let failed = ledger.block(11).unwrap().unwrap();
    assert_eq!(failed.stage.as_deref(), Some("proof_output"), "a proof of another size is not the one recorded");
    actor.stop(None);
}
