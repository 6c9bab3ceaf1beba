//! Every block, in time: the release daemon against a dev chain that makes a block every
//! `COHORT_BENCH_BLOCK_MS` (default 400 ms: mainnet's 12 s at a 30th) and a fake coordinator
//! with `COHORT_BENCH_WORKERS` workers (default 4) whose proofs take 8–20 s at the same scale
//! (a different time each, the same sequence every run), run with 1 and with as many jobs in
//! flight as there are workers.
//!
//! For each run it prints the real-time cohort's figures over the blocks it proved — share
//! proved, share in time (proving under 10 s, scaled), paralyzed blocks (no proof 20 minutes,
//! scaled, after the daemon first saw the block), end to end (block seen → `proved` accepted) — and the
//! daemon's own time per block, p50/p99, in real milliseconds: head seen → input ready, prover
//! free → job submitted, the job's end heard → its proof fetched, written, fsynced, hashed and
//! recorded; then the job's end → heard (the fake's stream granularity) and → `proved` received by
//! the fake EthProofs (the outbox's pacing, scaled, included); and the
//! daemon's RSS after the first blocks and at the end. Times the daemon waits on the chain's
//! pace are scaled; its own work is not, so its overhead weighs 30 times more here than on
//! mainnet.
//!
//! `cargo bench --bench cohort` proves `COHORT_BENCH_BLOCKS` blocks (default 150, about two
//! minutes a run) in each run; `COHORT_BENCH_BLOCKS=10000 COHORT_BENCH_BLOCK_MS=60
//! COHORT_BENCH_IN_FLIGHT=4` watches memory over ten thousand. Under `cargo test` it does one short pass as a smoke test.
#![recursion_limit = "256"]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ethproofs_daemon::outside::devchain::{self, DevChain};
use support::daemon::{Daemon, KEY};
use support::fake_api::FakeApi;
use support::fake_coordinator::FakeCoordinator;

/// What one run is asked to do.
struct Run {
    blocks: u64,
    block_time: Duration,
    workers: usize,
    in_flight: usize,
    /// Mainnet seconds per benchmark second.
    scale: f64,
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn since_epoch_ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

/// `p50 / p99` of `values` (milliseconds), or `–` with none.
fn quantiles(mut values: Vec<f64>) -> String {
    if values.is_empty() {
        return "–".into();
    }
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() as f64 * q) as usize).min(values.len() - 1)];
    format!("p50 {:.1} ms, p99 {:.1} ms", at(0.5), at(0.99))
}

/// One line of `/proc/<pid>/status`, in MB.
fn status_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

fn rss_mb(pid: u32) -> f64 {
    status_mb(pid, "VmRSS:")
}

/// The RSS and what it is made of: anonymous memory (the heap, stacks) and file pages (the
/// binary's code as it is run, the ledger's shared memory).
fn rss_parts(pid: u32) -> String {
    format!(
        "RSS {:.1} MB (anonymous {:.1}, files {:.1})",
        rss_mb(pid),
        status_mb(pid, "RssAnon:"),
        status_mb(pid, "RssFile:") + status_mb(pid, "RssShmem:")
    )
}

fn run(r: &Run) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let chain: devchain::SharedChain = Arc::new(Mutex::new(DevChain::new().unwrap().with_wall_clock()));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let node_url = format!("http://{}", listener.local_addr().unwrap());
    rt.spawn(devchain::serve(chain.clone(), listener, r.block_time));
    let chain_file = dir.path().join("chain.json");
    std::fs::write(&chain_file, devchain::CONFIG_JSON).unwrap();

    let coordinator = FakeCoordinator::start();
    coordinator.set_capacity(Some(r.workers));
    coordinator.set_prove_times(Duration::from_secs_f64(8.0 / r.scale), Duration::from_secs_f64(20.0 / r.scale));
    let api = FakeApi::start(KEY);
    let scaled_ms = |mainnet_ms: f64| ((mainnet_ms / r.scale) as u64).max(1).to_string();
    let env: Vec<(&'static str, String)> = vec![
        ("ETH_RPC_URL", node_url),
        ("CHAIN_CONFIG", chain_file.display().to_string()),
        ("OUTPUT_DIR", dir.path().join("output").display().to_string()),
        ("BLOCK_INTERVAL", "1".into()),
        ("START_BLOCK", "1".into()),
        ("POLL_INTERVAL_MS", scaled_ms(1_000.0)),
        ("PROVER_BACKEND", "coordinator".into()),
        ("ZISK_COORDINATOR_URL", coordinator.url.clone()),
        ("CARGO_ZISK", "/nonexistent/cargo-zisk".into()),
        ("MAX_JOBS_IN_FLIGHT", r.in_flight.to_string()),
        ("VERIFY_PROOFS", "off".into()),
        ("ETHPROOFS_RPC_URL", api.url.clone()),
        ("ETHPROOFS_API_KEY", KEY.into()),
        ("ETHPROOFS_CLUSTER_ID", "7".into()),
        ("REPORT_PACING_MS", scaled_ms(1_100.0)),
        ("REPORT_MAX_BACKOFF_SECONDS", "1".into()),
        ("LOG_LEVEL", "warn".into()),
    ];
    let mut d = Daemon::start(&env);
    d.wait_for("up", Duration::from_secs(60), |h| h["status"].is_string());
    let pid = d.pid();
    let ledger = ethproofs_daemon::store::Ledger::open_read_only(&dir.path().join("output/ethproofs-daemon.db")).ok();
    let settled = |n: u64| {
        ledger.as_ref().and_then(|l| l.block(n).ok().flatten()).is_some_and(|b| {
            matches!(b.state, ethproofs_daemon::store::BlockState::Proved | ethproofs_daemon::store::BlockState::Failed)
        })
    };
    let started = Instant::now();
    let limit = r.block_time * u32::try_from(r.blocks * 3).unwrap_or(u32::MAX) + Duration::from_secs(60);
    let mut rss_early = None;
    let mut rss_max: f64 = 0.0;
    // Every block up to `done` is settled and its `proved` accepted (a cursor: no rescan).
    let mut done = 0;
    loop {
        let accepted: std::collections::HashSet<u64> =
            api.accepted().into_iter().filter(|(status, _)| status == "proved").map(|(_, n)| n).collect();
        while done < r.blocks && settled(done + 1) && accepted.contains(&(done + 1)) {
            done += 1;
            // Memory along the way: flat, or growing with the blocks.
            if r.blocks >= 1000 && done % (r.blocks / 10) == 0 {
                println!("  {done} blocks: {}", rss_parts(pid));
            }
        }
        if done == r.blocks {
            break;
        }
        assert!(started.elapsed() < limit, "the run did not finish in {limit:?}\n{}", d.logs());
        std::thread::sleep(Duration::from_millis(200));
        let rss = rss_mb(pid);
        rss_max = rss_max.max(rss);
        if rss_early.is_none() && settled(r.blocks.min(20)) {
            rss_early = Some(rss);
        }
    }
    let rss_end = rss_mb(pid);
    let received = api.received();
    let jobs = coordinator.prove_jobs();
    let ledger =
        ethproofs_daemon::store::Ledger::open_read_only(&dir.path().join("output/ethproofs-daemon.db")).unwrap();
    let (deadline_ms, paralyzed_ms) = (10_000.0 / r.scale, 20.0 * 60_000.0 / r.scale);
    let (mut proved, mut in_time, mut paralyzed) = (0u64, 0u64, 0u64);
    let (mut to_input, mut to_submit, mut to_hear, mut to_record, mut to_sent, mut end_to_end) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in 1..=r.blocks {
        let Some(story) = ledger.story(n).unwrap() else { continue };
        let at = |what: &str| story.moments.iter().rev().find(|m| m.what == what).map(|m| m.at_ms);
        // The dev chain's timestamps are whole seconds a block apart, ahead of a fast clock:
        // a block appears when the daemon first sees it (within a poll, on loopback).
        let appeared = at("seen").unwrap_or(0);
        if let (Some(seen), Some(ready)) = (at("seen"), at("queued")) {
            to_input.push((ready - seen) as f64);
        }
        let job = jobs.iter().rev().find(|j| j.block == Some(n));
        if let (Some(proving), Some(job)) = (at("proving"), job) {
            to_submit.push((since_epoch_ms(job.at) - proving) as f64);
        }
        // The proof's end as the coordinator has it, to its record in the ledger (fetched,
        // written, fsynced, hashed, recorded), then to the fake EthProofs receiving `proved`.
        let ended = job.and_then(|j| Some((coordinator.completes_at_wall(&j.id)?, coordinator.completes_at(&j.id)?)));
        if let (Some((ended_wall, _)), Some(heard)) = (ended, at("exited")) {
            to_hear.push((heard - since_epoch_ms(ended_wall)) as f64);
        }
        if let (Some(heard), Some(recorded)) = (at("exited"), at("proved")) {
            to_record.push((recorded - heard) as f64);
        }
        let sent = received.iter().find(|c| c.path.ends_with("/proved") && c.body["block_number"] == n);
        if let (Some((_, ended)), Some(sent)) = (ended, sent) {
            to_sent.push(ms(sent.at.saturating_duration_since(ended)));
        }
        if story.state == "proved" {
            proved += 1;
            if story.proving_ms.is_some_and(|p| (p as f64) < deadline_ms) {
                in_time += 1;
            }
            let accepted = story.calls.iter().rev().find(|c| c.kind == "proved").and_then(|c| c.done_at_ms);
            if let Some(accepted) = accepted {
                end_to_end.push((accepted - appeared) as f64 * r.scale);
                if (accepted - appeared) as f64 > paralyzed_ms {
                    paralyzed += 1;
                }
            }
        } else {
            paralyzed += 1;
        }
    }
    let share = |k: u64| 100.0 * k as f64 / r.blocks as f64;
    let e2e = quantiles(end_to_end).replace(" ms", " mainnet ms");
    println!(
        "{} job(s) in flight: proved {proved}/{} ({:.1} %), in time {:.1} %, paralyzed {paralyzed}; end to end {e2e}",
        r.in_flight,
        r.blocks,
        share(proved),
        share(in_time),
    );
    println!(
        "  daemon's own time per block: head seen → input ready {}; prover free → job submitted {}; job's end heard → proof recorded {}",
        quantiles(to_input),
        quantiles(to_submit),
        quantiles(to_record),
    );
    println!("  job ended → its end heard (the fake coordinator's stream looks every 20 ms) {}", quantiles(to_hear));
    println!(
        "  proof ended → `proved` received by EthProofs {} (the outbox sends one call per {} ms, three a block)",
        quantiles(to_sent),
        (1_100.0 / r.scale) as u64,
    );
    println!(
        "  RSS: {:.1} MB after the first 20 blocks, {rss_end:.1} MB at the end, {rss_max:.1} MB at most; {:.0} s",
        rss_early.unwrap_or(rss_end),
        started.elapsed().as_secs_f64()
    );
    assert!(d.terminate().0.success());
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let blocks = env_u64("COHORT_BENCH_BLOCKS", if benching { 150 } else { 6 });
    let block_ms = env_u64("COHORT_BENCH_BLOCK_MS", 400).max(20);
    let workers = usize::try_from(env_u64("COHORT_BENCH_WORKERS", 4)).unwrap_or(4).clamp(1, 64);
    let scale = 12_000.0 / block_ms as f64;
    println!(
        "dev chain: a block every {block_ms} ms (mainnet's 12 s at 1/{scale:.0}); coordinator: {workers} workers, proofs {:.0}–{:.0} ms (8–20 s); {blocks} blocks a run",
        8_000.0 / scale,
        20_000.0 / scale
    );
    // `COHORT_BENCH_IN_FLIGHT=4` runs only that one (a long memory run need not be made twice).
    let mut runs: Vec<usize> = match std::env::var("COHORT_BENCH_IN_FLIGHT") {
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if benching => vec![1, workers],
        // The smoke test: one run, with every lane.
        Err(_) => vec![workers],
    };
    runs.dedup();
    for in_flight in runs {
        run(&Run { blocks, block_time: Duration::from_millis(block_ms), workers, in_flight, scale });
    }
}
