//! The supervisor's restart path end to end: a killed Prover's run is ended and proved again,
//! and past the budget everything stops.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::daemon::test_support::{context, enqueued, wait};

fn pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_prover_ends_its_run_and_proves_again_and_the_budget_ends_everything() {
    let dir = tempfile::tempdir().unwrap();
    // A "prover" that runs long whatever its arguments, and says which process it is.
    let zisk = dir.path().join("slow-zisk");
    std::fs::write(&zisk, "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/pid\"\nexec sleep 30\n").unwrap();
    std::fs::set_permissions(&zisk, std::fs::Permissions::from_mode(0o755)).unwrap();
    let input = dir.path().join("42").join("input.bin");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::write(&input, [0u8; 16]).unwrap();
    let url = "http://127.0.0.1:9";
    let flags = ["--cargo-zisk", zisk.to_str().unwrap(), "--poll-interval-ms", "60000", "--max-prove-attempts", "100"];
    let (ctx, settings) = context(dir.path(), url, &flags);
    let (ledger, board) = (ctx.ledger.clone(), ctx.board.clone());
    ledger.targets_scheduled(&[42], None, 42).unwrap();
    let built = enqueued(&input, "0x1");
    ledger.input_built(42, &built, false).unwrap();
    let gave_up = Arc::new(AtomicBool::new(false));
    let (sup, done) = Actor::spawn(
        None,
        Supervisor,
        SupervisorArgs {
            ctx,
            settings,
            poller: Arc::new(HeadPoller::new(url).unwrap()),
            restart_backoff: Duration::from_millis(10),
            gave_up: gave_up.clone(),
            started_notice: None,
        },
    )
    .await
    .unwrap();
    let pid_file = dir.path().join("pid");
    let attempt = || board.prover.fresh().and_then(|p| p.proving_attempt.filter(|_| p.proving_block == Some(42)));
    wait("the first run", || attempt() == Some(1) && pid(&pid_file).is_some()).await;
    let first = pid(&pid_file).unwrap();

    // A crashed Prover: its successor ends the recorded run (verified as ours) and runs the
    // block again, as a new attempt: never two runs of one block at once.
    sup.cast(SupervisorMsg::Kill(Child::Prover)).unwrap();
    wait("a second attempt", || attempt() == Some(2)).await;
    wait("the first run ended", || !crate::process::process_alive(first)).await;
    let record = ledger.block(42).unwrap().unwrap();
    assert_eq!((record.state, record.interruptions), (BlockState::Proving, 1));

    // Past the budget the supervisor gives up and takes the prover's process group with it.
    // (A kill that lands while the Prover is between incarnations does nothing; keep going.)
    for _ in 0..(RESTART_BUDGET * 10) {
        let _ = sup.cast(SupervisorMsg::Kill(Child::Prover));
        tokio::time::sleep(Duration::from_millis(400)).await;
        if gave_up.load(Ordering::SeqCst) {
            break;
        }
    }
    tokio::time::timeout(Duration::from_secs(10), done).await.expect("supervisor stopped").unwrap();
    assert!(gave_up.load(Ordering::SeqCst), "the budget must end the run");
    let last = pid(&pid_file).unwrap();
    wait("the prover group to die", || !crate::process::process_alive(last)).await;
}
