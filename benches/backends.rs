//! The two prover backends side by side: `cli` (one cargo-zisk per block, paying the prover's
//! start-up — loading the proving key — every time) and `coordinator` (a job per block on a
//! coordinator whose workers loaded the key once), with the same proving time.
//!
//! For each backend: blocks proved per hour with a backlog (every block waiting at the start:
//! first block seen → last block proved, from the ledger), and
//! head-to-proved latency with blocks arriving one at a time. For the coordinator also the
//! daemon's own overhead per block: head seen → job submitted, job completed → `proved`
//! accepted by EthProofs (the fake API answers at once).
//!
//! `cargo bench --bench backends`; `BACKENDS_BENCH_STARTUP` (s, default 4), `BACKENDS_BENCH_PROVE`
//! (s, default 2), `BACKENDS_BENCH_BLOCKS` (default 6). Under `cargo test` a short smoke pass.
#![recursion_limit = "256"]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ethproofs_daemon::outside::devchain::{self, DevChain};
use serde_json::Value;
use support::daemon::{Daemon, KEY};
use support::fake_api::FakeApi;
use support::fake_coordinator::FakeCoordinator;
use support::http::{self, Response};

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// A dev chain whose head the bench moves: blocks are produced on demand, and the node serves
/// only up to `visible` (so a block "arrives" when the bench says).
struct Node {
    url: String,
    visible: Arc<AtomicU64>,
}

impl Node {
    fn start(blocks: u64) -> Node {
        let chain = Arc::new(Mutex::new(DevChain::new().unwrap()));
        for _ in 0..blocks {
            chain.lock().unwrap().produce().unwrap();
        }
        let visible = Arc::new(AtomicU64::new(0));
        let (c, v) = (chain.clone(), visible.clone());
        let url = http::serve(move |req| {
            let request: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            if request["method"] == "eth_blockNumber" {
                let head = v.load(Ordering::SeqCst);
                return Response::json(
                    200,
                    serde_json::json!({"jsonrpc": "2.0", "id": request["id"], "result": format!("{head:#x}")})
                        .to_string(),
                );
            }
            Response::json(200, devchain::handle_rpc(&c, &request).to_string())
        });
        Node { url, visible }
    }

    fn show(&self, head: u64) {
        self.visible.store(head, Ordering::SeqCst);
    }
}

struct Run {
    backend: &'static str,
    blocks: usize,
    backlog_elapsed: Duration,
    latencies_ms: Vec<i64>,
    /// Coordinator only: head seen → job submitted, job completed → `proved` in the ledger,
    /// job completed → `proved` accepted by EthProofs (ms).
    submit_ms: Vec<i64>,
    accept_ms: Vec<i64>,
    report_ms: Vec<u128>,
}

fn ledger_rows(output: &std::path::Path) -> Vec<ethproofs_daemon::store::ReportLine> {
    let ledger = ethproofs_daemon::store::Ledger::open(&output.join("ethproofs-daemon.db")).unwrap();
    ledger.report_lines(0).unwrap()
}

fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn run(backend: &'static str, startup: f64, prove: f64, blocks: u64) -> Run {
    let work = tempfile::tempdir().unwrap();
    let chain_config = work.path().join("dev-chain.json");
    std::fs::write(&chain_config, devchain::CONFIG_JSON).unwrap();
    let output = work.path().join("output");
    // Backlog: blocks 1..=n at once; then n+1..=2n one at a time.
    let node = Node::start(blocks * 2);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs_f64(prove));
    let mut env: Vec<(&str, String)> = vec![
        ("ETH_RPC_URL", node.url.clone()),
        ("CHAIN_CONFIG", chain_config.display().to_string()),
        ("OUTPUT_DIR", output.display().to_string()),
        ("BLOCK_INTERVAL", "1".into()),
        ("START_BLOCK", "1".into()),
        ("POLL_INTERVAL_MS", "200".into()),
        ("ETHPROOFS_RPC_URL", api.url.clone()),
        ("ETHPROOFS_API_KEY", KEY.into()),
        ("ETHPROOFS_CLUSTER_ID", "7".into()),
        ("LOG_LEVEL", "warn".into()),
        ("FAKE_ZISK_STARTUP_SECONDS", format!("{startup}")),
        ("FAKE_ZISK_SECONDS", format!("{prove}")),
        // The fakes' proofs are random bytes, which the verifier rightly refuses.
        ("VERIFY_PROOFS", "off".into()),
    ];
    if backend == "coordinator" {
        env.push(("PROVER_BACKEND", "coordinator".into()));
        env.push(("ZISK_COORDINATOR_URL", coordinator.url.clone()));
    }
    let proved = |api: &FakeApi, upto: u64| {
        api.accepted().iter().filter(|(e, b)| e == "proved" && (1..=upto).contains(b)).count() as u64
    };
    node.show(blocks);
    let mut daemon = Daemon::start(&env);
    let limit = Duration::from_secs_f64((startup + prove + 5.0) * blocks as f64 * 2.0 + 60.0);
    daemon.wait_for("the backlog proved", limit, |_| proved(&api, blocks) == blocks);

    // One block at a time, each shown once the previous one is reported.
    for n in blocks + 1..=blocks * 2 {
        node.show(n);
        daemon.wait_for("the block proved", limit, |_| proved(&api, n) == n);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(daemon.terminate().0.success());

    let rows = ledger_rows(&output);
    // Proving throughput from the ledger: first backlog block seen → last one proved (what
    // EthProofs hears is paced at one call a second, three calls a block).
    let backlog: Vec<_> = rows.iter().filter(|r| r.block <= blocks).collect();
    let first_seen = backlog.iter().filter_map(|r| r.seen_at_ms).min().unwrap_or(0);
    let last_proved = backlog.iter().filter_map(|r| r.proved_at_ms).max().unwrap_or(0);
    let backlog_elapsed = Duration::from_millis(u64::try_from(last_proved - first_seen).unwrap_or(1).max(1));
    let arriving: Vec<_> = rows.iter().filter(|r| r.block > blocks).collect();
    let latencies_ms = arriving.iter().filter_map(|r| Some(r.proved_at_ms? - r.seen_at_ms?)).collect::<Vec<i64>>();
    let (mut submit_ms, mut accept_ms, mut report_ms) = (Vec::new(), Vec::new(), Vec::new());
    if backend == "coordinator" {
        let jobs = coordinator.prove_jobs();
        let received = api.received();
        for r in &arriving {
            let Some(job) = jobs.iter().find(|j| j.block == Some(r.block)) else { continue };
            if let Some(seen) = r.seen_at_ms {
                submit_ms.push(ms(job.at) - seen);
            }
            if let (Some(done), Some(proved_at)) = (coordinator.completes_at_wall(&job.id), r.proved_at_ms) {
                accept_ms.push(proved_at - ms(done));
            }
            let done = coordinator.completes_at(&job.id);
            let accepted = received
                .iter()
                .find(|x| x.path.ends_with("/proved") && x.body["block_number"] == r.block && x.status == 200);
            if let (Some(done), Some(accepted)) = (done, accepted) {
                report_ms.push(accepted.at.saturating_duration_since(done).as_millis());
            }
        }
    }
    Run { backend, blocks: blocks as usize, backlog_elapsed, latencies_ms, submit_ms, accept_ms, report_ms }
}

fn median<T: Copy + Ord>(v: &[T]) -> Option<T> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (startup, prove, blocks) = if benching {
        (
            env_f64("BACKENDS_BENCH_STARTUP", 4.0),
            env_f64("BACKENDS_BENCH_PROVE", 2.0),
            env_f64("BACKENDS_BENCH_BLOCKS", 6.0) as u64,
        )
    } else {
        (0.3, 0.2, 2)
    };
    let runs = [run("cli", startup, prove, blocks), run("coordinator", startup, prove, blocks)];
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!(
        "backends: {profile} build, prover start-up {startup} s (cargo-zisk only: the coordinator's workers keep the key), proving {prove} s, {blocks} blocks backlogged then {blocks} arriving one at a time"
    );
    println!("| backend | blocks/hour (backlog) | head→proved median | head→proved max |");
    println!("|---|---|---|---|");
    for r in &runs {
        let per_hour = r.blocks as f64 / r.backlog_elapsed.as_secs_f64() * 3600.0;
        println!(
            "| {} | {per_hour:.0} | {} ms | {} ms |",
            r.backend,
            median(&r.latencies_ms).unwrap_or(-1),
            r.latencies_ms.iter().max().copied().unwrap_or(-1)
        );
    }
    let c = &runs[1];
    println!(
        "coordinator, the daemon's own overhead per block: head seen → job submitted median {} ms (max {}); job completed → proof accepted in the ledger median {} ms (max {}); → `proved` accepted by EthProofs median {} ms (max {}, the outbox paces calls at most one a second)",
        median(&c.submit_ms).unwrap_or(-1),
        c.submit_ms.iter().max().copied().unwrap_or(-1),
        median(&c.accept_ms).unwrap_or(-1),
        c.accept_ms.iter().max().copied().unwrap_or(-1),
        median(&c.report_ms).unwrap_or(0),
        c.report_ms.iter().max().copied().unwrap_or(0),
    );
}
