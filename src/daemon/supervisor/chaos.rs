//! The seeded chaos run: many blocks proved and reported while actor panics and kills, a write
//! lock held by another process, a full disk and graceful stops (SIGTERM's path: the drain, then
//! a new daemon on the same ledger) land at random moments. Afterwards: every block proved and
//! its `proved` accepted exactly once, no prover run started for a block whose proof was already
//! written, no row left mid-way, and every start started. `CHAOS_SEED=<n>` replays one run.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::*;
use crate::daemon::ReporterSettings;
use crate::daemon::test_support::{Calls, context, enqueued, ethproofs, node};

/// A tiny deterministic generator: a run is reproducible from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo + 1)
    }
}

/// The hash the node answers at every height, and the one each block was built from.
const HASH: &str = "0x2222222222222222222222222222222222222222222222222222222222222222";

/// A cargo-zisk 1.x that logs `start <proof path>` when it starts and `done <proof path>` once its
/// (whole) proof is written, then prints its summary. Each block's proof is its own
/// (`proofs/<n>.bin`): the ledger rightly refuses one proof for two blocks.
fn prover(dir: &Path) -> PathBuf {
    let zisk = dir.join("chaos-zisk");
    let script = "#!/bin/sh\nout=\"\"\nwhile [ $# -gt 0 ]; do [ \"$1\" = -o ] && out=\"$2\"; shift; done\n\
         log=\"$(dirname \"$0\")/runs\"\necho \"start $out\" >> \"$log\"\nsleep 0.3\nmkdir -p \"$(dirname \"$out\")\"\n\
         cp \"$(dirname \"$0\")/proofs/$(basename \"$(dirname \"$out\")\").bin\" \"$out\"\n\
         echo \"done $out\" >> \"$log\"\n\
         echo '--- PROVE SUMMARY'\necho 'Proof generated in 0.300s, steps: 5'\necho \"Proof saved to $out\"\n";
    std::fs::write(&zisk, script).unwrap();
    std::fs::set_permissions(&zisk, std::fs::Permissions::from_mode(0o755)).unwrap();
    zisk
}

/// One daemon's life on the shared ledger: a fresh context and supervisor, as after a restart.
async fn start(
    dir: &Path,
    flags: &[&str],
    url: &str,
) -> (Arc<Context>, ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>) {
    let (ctx, mut settings) = context(dir, url, flags);
    settings.reporter =
        Arc::new(ReporterSettings { pacing: Duration::from_millis(20), ..(*settings.reporter).clone() });
    let (sup, done, _) = super::tests::spawn(&ctx, settings, url).await;
    (ctx, sup, done)
}

/// Each block's runs in order: `(started, finished)` events from the prover's log.
fn runs(dir: &Path) -> Vec<(bool, u64)> {
    let log = std::fs::read_to_string(dir.join("runs")).unwrap_or_default();
    log.lines()
        .filter_map(|l| {
            let (what, path) = l.split_once(' ')?;
            let block = Path::new(path).parent()?.file_name()?.to_str()?.parse().ok()?;
            Some((what == "done", block))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_chaos_run_loses_no_proof_runs_none_twice_and_always_starts() {
    let seed: u64 = std::env::var("CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261207);
    let mut rng = Lcg(seed);
    let dir = tempfile::tempdir().unwrap();
    let zisk = prover(dir.path());
    let calls: Calls = Default::default();
    let api = ethproofs(calls.clone()).await;
    let url = node(Arc::new(Mutex::new(Some(HASH.into())))).await;
    let flags = [
        "--cargo-zisk",
        zisk.to_str().unwrap(),
        "--poll-interval-ms",
        "60000",
        "--max-prove-attempts",
        "1000",
        "--ethproofs-rpc-url",
        &api,
        "--ethproofs-api-key",
        "chaos-key",
        "--ethproofs-cluster-id",
        "1",
        "--report-max-backoff-seconds",
        "1",
    ];
    let blocks: Vec<u64> = (1..=8).map(|n| n * 100).collect();
    {
        let (ctx, _) = context(dir.path(), &url, &flags);
        ctx.ledger.targets_scheduled(&blocks, None, *blocks.last().unwrap()).unwrap();
        for &n in &blocks {
            let input = dir.path().join(format!("{n}/input.bin"));
            std::fs::create_dir_all(dir.path().join("proofs")).unwrap();
            std::fs::write(
                dir.path().join(format!("proofs/{n}.bin")),
                crate::block::verify::tests::forged(&[n; 4], &[0; 64]),
            )
            .unwrap();
            std::fs::create_dir_all(input.parent().unwrap()).unwrap();
            std::fs::write(&input, [0u8; 16]).unwrap();
            ctx.ledger.input_built(n, &enqueued(&input, HASH), true).unwrap();
        }
    }
    let db = dir.path().join("ethproofs-daemon.db");
    let children = [Child::Prover, Child::Reporter, Child::InputGenerator];
    let mut faults: BTreeMap<&str, u32> = BTreeMap::new();
    let mut starts = 0;
    // Lives of a few seconds each, ended by a graceful stop; the last one runs to the end.
    for life in 0..6 {
        let (ctx, sup, done) = start(dir.path(), &flags, &url).await;
        starts += 1;
        let last = life == 5;
        let until = tokio::time::Instant::now() + Duration::from_millis(rng.next(800, 2500));
        while !last && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(rng.next(50, 300))).await;
            let child = children[rng.next(0, 2) as usize];
            match rng.next(0, 4) {
                0 => {
                    *faults.entry("actor killed").or_default() += 1;
                    let _ = sup.cast(SupervisorMsg::Kill(child));
                }
                1 => {
                    *faults.entry("actor panicked").or_default() += 1;
                    let _ = sup.cast(SupervisorMsg::Crash(child));
                }
                2 => {
                    *faults.entry("write lock held elsewhere").or_default() += 1;
                    let (db, hold) = (db.clone(), Duration::from_millis(rng.next(100, 700)));
                    tokio::task::spawn_blocking(move || {
                        let mut c = rusqlite::Connection::open(db).unwrap();
                        c.busy_timeout(Duration::from_secs(10)).unwrap();
                        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate).unwrap();
                        std::thread::sleep(hold);
                        drop(tx);
                    });
                }
                3 => {
                    *faults.entry("disk full").or_default() += 1;
                    ctx.ledger.disk_full(true);
                    tokio::time::sleep(Duration::from_millis(rng.next(100, 700))).await;
                    ctx.ledger.disk_full(false);
                }
                _ => {}
            }
        }
        if last {
            let proved = |ctx: &Context| {
                blocks.iter().all(|&n| ctx.ledger.block(n).unwrap().is_some_and(|b| b.state == BlockState::Proved))
                    && ctx.ledger.pending_reports().unwrap().is_empty()
            };
            for _ in 0..1500 {
                if proved(&ctx) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        // SIGTERM's path: the drain, then the supervisor waits for the work in flight.
        ctx.drain.signal();
        let _ = sup.cast(SupervisorMsg::Drain);
        tokio::time::timeout(Duration::from_secs(30), done).await.expect("a graceful stop ends").unwrap();
        *faults.entry("graceful stop").or_default() += u32::from(!last);
    }
    let (ctx, _) = context(dir.path(), &url, &flags);
    let ledger = &ctx.ledger;
    let report = format!("seed {seed}, faults {faults:?}, starts {starts}");
    for &n in &blocks {
        let row = ledger.block(n).unwrap().unwrap();
        assert_eq!(row.state, BlockState::Proved, "block {n} is not proved ({row:?}); {report}");
    }
    let pending = ledger.pending_reports().unwrap();
    assert!(pending.is_empty(), "calls left unsent: {pending:?}; {report}");
    let calls = calls.lock().unwrap().clone();
    for &n in &blocks {
        let proved = calls.iter().filter(|(s, b)| s == "proved" && *b == n).count();
        assert_eq!(proved, 1, "block {n}'s proof reported {proved} times; {report}");
    }
    // A run that wrote its proof is the block's last: never proved again.
    let runs = runs(dir.path());
    for &n in &blocks {
        let of_n: Vec<bool> = runs.iter().filter(|(_, b)| *b == n).map(|(done, _)| *done).collect();
        let first_done = of_n.iter().position(|d| *d).unwrap_or_else(|| panic!("block {n} never finished; {report}"));
        assert!(
            !of_n[first_done + 1..].contains(&false),
            "block {n} was proved again after its proof was written ({of_n:?}); {report}"
        );
    }
    assert!(faults.len() >= 4, "the seed injected too few kinds of fault: {report}");
}
