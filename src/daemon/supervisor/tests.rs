//! The supervisor's restart path end to end: a Prover that dies mid-run loses no GPU time (its
//! run goes on and its successor adopts it), and past the budget everything stops.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::daemon::test_support::{context, enqueued, wait};

fn pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.lines().last()?.trim().parse().ok()
}

/// A "prover" that appends its pid to `pids` beside itself, runs `seconds`, then writes a proof
/// where `-o` says and prints cargo-zisk 1.x's summary.
fn slow_prover(dir: &Path, seconds: u32) -> std::path::PathBuf {
    let zisk = dir.join("slow-zisk");
    let script = format!(
        "#!/bin/sh\necho $$ >> \"$(dirname \"$0\")/pids\"\nout=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=\"$2\"; shift; done\n\
         sleep {seconds}\nmkdir -p \"$(dirname \"$out\")\"\nhead -c 256 /dev/urandom > \"$out\"\n\
         echo '--- PROVE SUMMARY'\necho 'Proof generated in 1.000s, steps: 5'\necho \"Proof saved to $out\"\n"
    );
    std::fs::write(&zisk, script).unwrap();
    std::fs::set_permissions(&zisk, std::fs::Permissions::from_mode(0o755)).unwrap();
    zisk
}

/// A supervisor over a ledger whose block 42 is queued, proving with `zisk`.
async fn supervised(
    dir: &Path,
    zisk: &Path,
) -> (Arc<Context>, ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>, Arc<AtomicBool>) {
    let input = dir.join("42").join("input.bin");
    std::fs::create_dir_all(input.parent().unwrap()).unwrap();
    std::fs::write(&input, [0u8; 16]).unwrap();
    let url = "http://127.0.0.1:9";
    let flags = ["--cargo-zisk", zisk.to_str().unwrap(), "--poll-interval-ms", "60000", "--max-prove-attempts", "100"];
    let (ctx, settings) = context(dir, url, &flags);
    ctx.ledger.targets_scheduled(&[42], None, 42).unwrap();
    ctx.ledger.input_built(42, &enqueued(&input, "0x1"), false).unwrap();
    let (sup, done, gave_up) = spawn(&ctx, settings, url).await;
    (ctx, sup, done, gave_up)
}

/// A supervisor over `ctx` whose node is `url`, restarting children at once: its address, its
/// end, and whether it gave up.
pub(super) async fn spawn(
    ctx: &Arc<Context>,
    settings: Settings,
    url: &str,
) -> (ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>, Arc<AtomicBool>) {
    spawn_backing_off(ctx, settings, url, Duration::from_millis(10)).await
}

/// [`spawn`], restarting a child `restart_backoff` after its first failure.
async fn spawn_backing_off(
    ctx: &Arc<Context>,
    settings: Settings,
    url: &str,
    restart_backoff: Duration,
) -> (ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>, Arc<AtomicBool>) {
    let gave_up = Arc::new(AtomicBool::new(false));
    let (sup, done) = Actor::spawn(
        None,
        Supervisor,
        SupervisorArgs {
            ctx: ctx.clone(),
            settings,
            poller: Arc::new(HeadPoller::new(url).unwrap()),
            restart_backoff,
            gave_up: gave_up.clone(),
            started_notice: None,
        },
    )
    .await
    .expect("the supervisor starts");
    (sup, done, gave_up)
}

/// One after the other: each run ends the prover's helpers that outlive it (the test process is
/// their subreaper), which would take the other scenario's prover down if they ran at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prover_that_dies_mid_run_loses_no_gpu_time_and_past_the_budget_everything_stops() {
    a_prover_that_dies_mid_run_loses_no_gpu_time_its_successor_adopts_the_run().await;
    past_the_budget_the_supervisor_stops_and_takes_the_prover_s_process_group_with_it().await;
}

async fn a_prover_that_dies_mid_run_loses_no_gpu_time_its_successor_adopts_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let zisk = slow_prover(dir.path(), 3);
    let (ctx, sup, _done, _) = supervised(dir.path(), &zisk).await;
    let (ledger, board) = (ctx.ledger.clone(), ctx.board.clone());
    let pids = dir.path().join("pids");
    let attempt = || board.prover.fresh().and_then(|p| p.proving_attempt.filter(|_| p.proving_block == Some(42)));
    wait("the run", || attempt() == Some(1) && pid(&pids).is_some()).await;
    let running = pid(&pids).unwrap();

    // The Prover dies as a panic would take it. The run is not its: it goes on.
    sup.cast(SupervisorMsg::Kill(Child::Prover)).unwrap();
    wait("the successor shows the same run", || {
        board.supervisor.fresh().is_some_and(|s| s.restarts >= 1) && attempt() == Some(1)
    })
    .await;
    // The actor died and its successor runs: the process it had started was never touched.
    assert!(crate::outside::process::process_alive(running), "the prover's process outlives the actor");
    let state = || ledger.block(42).unwrap().unwrap().state;
    for _ in 0..500 {
        if state() == BlockState::Proved {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let record = ledger.block(42).unwrap().unwrap();
    assert_eq!((record.state, record.attempts, record.interruptions), (BlockState::Proved, 1, 0), "{record:?}");
    let runs = std::fs::read_to_string(&pids).unwrap().lines().count();
    assert_eq!(runs, 1, "one prover run: no GPU time spent twice");
    sup.stop(None);
}

async fn past_the_budget_the_supervisor_stops_and_takes_the_prover_s_process_group_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let zisk = slow_prover(dir.path(), 60);
    let (ctx, sup, done, gave_up) = supervised(dir.path(), &zisk).await;
    let pids = dir.path().join("pids");
    wait("the run", || pid(&pids).is_some()).await;
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
    let last = pid(&pids).unwrap();
    wait("the prover group to die", || !crate::outside::process::process_alive(last)).await;
    assert_eq!(std::fs::read_to_string(&pids).unwrap().lines().count(), 1, "the run was never started twice");
    let record = || ctx.ledger.block(42).unwrap().unwrap();
    wait("the run's stop recorded", || record().state != BlockState::Proving).await;
    assert_ne!(record().state, BlockState::Failed, "a stop is not the block's failure: {:?}", record());
}

/// Waits in 1 ms steps of the paused clock, at most 100 s of it.
async fn until(what: &str, f: impl Fn() -> bool) {
    crate::daemon::test_support::wait_every(what, Duration::from_millis(1), Duration::from_secs(100), f).await
}

/// Kills the Notifier `crashes` times, each `apart` after the last successor came up (all on
/// tokio's paused clock); how long each successor took to come up. Stops at the supervisor's
/// end (its give-up).
async fn kill_notifier(
    sup: &ActorRef<SupervisorMsg>,
    board: &crate::runtime::status::Board,
    crashes: usize,
    apart: Duration,
) -> Vec<Duration> {
    let status = || board.supervisor.fresh().map_or((0, Vec::new()), |s| (s.restarts, s.children));
    let up = || status().1.contains(&"notifier");
    let mut waits = Vec::new();
    for n in 1..=crashes {
        until("the notifier up", up).await;
        tokio::time::sleep(apart).await;
        let killed = Instant::now();
        if sup.cast(SupervisorMsg::Kill(Child::Notifier)).is_err() {
            break;
        }
        // Counted (and shown gone) at once; up again after the backoff, unless this was one too many.
        until("the crash counted", || status().0 >= n as u64).await;
        until("a successor or the end", || up() || sup.get_status() != ractor::ActorStatus::Running).await;
        if up() {
            waits.push(killed.elapsed());
        }
    }
    waits
}

/// The daemon's own rhythm (1 s, doubling) on a paused clock: 31 s of backoff in no time.
#[tokio::test(start_paused = true)]
async fn restarts_back_off_doubling_and_one_crash_past_the_budget_in_the_window_stops_everything() {
    let dir = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:9";
    let (ctx, settings) = context(dir.path(), url, &["--poll-interval-ms", "60000"]);
    let (sup, done, gave_up) = spawn_backing_off(&ctx, settings, url, Duration::from_secs(1)).await;
    let waits = kill_notifier(&sup, &ctx.board, RESTART_BUDGET + 1, Duration::ZERO).await;
    let secs: Vec<f64> = waits.iter().map(|w| (w.as_secs_f64() * 100.0).round() / 100.0).collect();
    assert_eq!(secs, [1.0, 2.0, 4.0, 8.0, 16.0], "one successor per crash within the budget, backing off");
    tokio::time::timeout(Duration::from_secs(60), done).await.expect("the supervisor stopped").unwrap();
    assert!(gave_up.load(Ordering::SeqCst), "the crash past the budget ends the run");
}

/// Crashes further apart than the window never add up to the budget.
#[tokio::test(start_paused = true)]
async fn crashes_spread_wider_than_the_window_are_restarted_for_ever() {
    let dir = tempfile::tempdir().unwrap();
    let url = "http://127.0.0.1:9";
    let (ctx, settings) = context(dir.path(), url, &["--poll-interval-ms", "60000"]);
    let (sup, _done, gave_up) = spawn_backing_off(&ctx, settings, url, Duration::from_secs(1)).await;
    let waits = kill_notifier(&sup, &ctx.board, RESTART_BUDGET * 3, RESTART_WINDOW).await;
    assert_eq!(waits.len(), RESTART_BUDGET * 3, "every crash restarted: {waits:?}");
    assert!(waits.iter().all(|w| *w < Duration::from_millis(1100)), "each the first in its window: {waits:?}");
    assert!(!gave_up.load(Ordering::SeqCst));
    sup.stop(None);
}
