use std::path::Path;

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
        runs: RunSlots::default(),
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
    let whole = crate::block::verify::tests::forged(&[1, 2, 3, 4], &[0; 64]);
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

/// The hash the lanes tests' node answers at every height, and each block's input was built from.
const HASH: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

/// A cargo-zisk 1.x that logs `start <block> <gpu>` and `end <block> <gpu>` (its
/// CUDA_VISIBLE_DEVICES) around each run in `runs`. A block with a file `crash/<n>` crashes; one
/// with `slow/<n>` takes 1.5 s, one with `hold/<n>` runs until it is stopped; others 0.3 s.
fn gpu_prover(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let zisk = dir.join("gpu-zisk");
    let script = r#"#!/bin/bash
out=""; while [ $# -gt 0 ]; do [ "$1" = -o ] && out="$2"; shift; done
d="$(dirname "$0")"; b="$(basename "$(dirname "$out")")"; g="${CUDA_VISIBLE_DEVICES:--}"
echo "start $b $g" >> "$d/runs"
trap 'echo "end $b $g" >> "$d/runs"' EXIT
[ -e "$d/crash/$b" ] && kill -SEGV $$
if [ -e "$d/hold/$b" ]; then sleep 60 & wait $!; fi
if [ -e "$d/slow/$b" ]; then sleep 1.5; else sleep 0.3; fi
mkdir -p "$(dirname "$out")"; head -c 256 /dev/urandom > "$out"
echo '--- PROVE SUMMARY'; echo 'Proof generated in 0.300s, steps: 5'; echo "Proof saved to $out"
"#;
    std::fs::write(&zisk, script).unwrap();
    std::fs::set_permissions(&zisk, std::fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["crash", "slow", "hold"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    zisk
}

/// `blocks` queued with inputs built from [`HASH`] in a Prover with two GPUs; its context.
async fn two_gpus(dir: &Path, blocks: &[u64]) -> (Arc<Context>, Arc<ProverSettings>) {
    let zisk = gpu_prover(dir);
    let url = crate::daemon::test_support::node(Arc::new(std::sync::Mutex::new(Some(HASH.into())))).await;
    let (ctx, settings) = context(dir, &url, &["--cargo-zisk", zisk.to_str().unwrap(), "--gpus", "0,1"]);
    ctx.ledger.targets_scheduled(blocks, None, *blocks.last().unwrap()).unwrap();
    for &n in blocks {
        let input = dir.join(format!("{n}/input.bin"));
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        std::fs::write(&input, [0u8; 16]).unwrap();
        ctx.ledger.input_built(n, &enqueued(&input, HASH), false).unwrap();
    }
    (ctx, settings.prover)
}

/// The prover's `(start?, block, gpu)` events in order.
fn gpu_runs(dir: &Path) -> Vec<(bool, u64, String)> {
    let log = std::fs::read_to_string(dir.join("runs")).unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            let mut words = l.split(' ');
            let (what, block, gpu) = (words.next()?, words.next()?.parse().ok()?, words.next()?.to_string());
            Some((what == "start", block, gpu))
        })
        .collect()
}

fn runs_in_flight(ctx: &Context) -> usize {
    ctx.board.prover.fresh().map_or(0, |p| p.in_flight.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gpus_prove_two_blocks_at_once_each_on_its_own_and_a_gpu_whose_run_crashed_takes_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = [100, 200, 300, 400, 500, 600];
    let (ctx, settings) = two_gpus(dir.path(), &blocks).await;
    std::fs::write(dir.path().join("crash/200"), "").unwrap();
    let actor = start(&ctx, settings).await.expect("the Prover starts");
    wait("two runs at once", || runs_in_flight(&ctx) == 2).await;
    let state_of = |n| ctx.ledger.block(n).ok().flatten().map(|b| b.state);
    let settled = || blocks.iter().all(|&n| matches!(state_of(n), Some(BlockState::Proved | BlockState::Failed)));
    wait("every block settled", settled).await;
    assert_eq!(state_of(200), Some(BlockState::Failed), "the crashed run's block fails");
    for n in [100, 300, 400, 500, 600] {
        assert_eq!(state_of(n), Some(BlockState::Proved), "block {n}");
    }
    let runs = gpu_runs(dir.path());
    // Each GPU runs one prover at a time: its starts and ends alternate.
    for gpu in ["0", "1"] {
        let on: Vec<bool> = runs.iter().filter(|(_, _, g)| g == gpu).map(|(start, _, _)| *start).collect();
        assert!(on.len() >= 4, "GPU {gpu} took part: {runs:?}");
        assert!(on.chunks(2).all(|p| p == [true, false]), "GPU {gpu} ran two provers at once: {runs:?}");
    }
    // The two GPUs worked at the same time.
    let (mut open, mut most) = (0i32, 0);
    for (start, _, _) in &runs {
        open += if *start { 1 } else { -1 };
        most = most.max(open);
    }
    assert_eq!(most, 2, "{runs:?}");
    // The GPU whose run crashed went on to the next block.
    let crashed = runs.iter().position(|(start, b, _)| !*start && *b == 200).expect("block 200's run ended");
    let gpu = runs[crashed].2.clone();
    assert!(runs[crashed..].iter().any(|(start, b, g)| *start && *g == gpu && *b != 200), "{runs:?}");
    actor.stop(None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_one_run_leaves_the_run_beside_it_going() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, settings) = two_gpus(dir.path(), &[100, 200]).await;
    std::fs::write(dir.path().join("hold/100"), "").unwrap();
    std::fs::write(dir.path().join("slow/200"), "").unwrap();
    let actor = start(&ctx, settings).await.expect("the Prover starts");
    let state_of = |n| ctx.ledger.block(n).ok().flatten().map(|b| b.state);
    wait("both proving", || state_of(100) == Some(BlockState::Proving) && state_of(200) == Some(BlockState::Proving))
        .await;
    ctx.ledger.operator_cancel(100).unwrap();
    wait("block 100 cancelled", || state_of(100) == Some(BlockState::Failed)).await;
    let row = ctx.ledger.block(100).unwrap().unwrap();
    assert_eq!(row.stage.as_deref(), Some("cancelled"), "{row:?}");
    assert_eq!(state_of(200), Some(BlockState::Proving), "the other run goes on");
    wait("block 200 proved", || state_of(200) == Some(BlockState::Proved)).await;
    let of_200: Vec<bool> = gpu_runs(dir.path()).iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
    assert_eq!(of_200, [true, false], "block 200 ran once, to its end");
    actor.stop(None);
}
