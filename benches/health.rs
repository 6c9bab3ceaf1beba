//! `/health` and the dashboard's API while the ledger's disk is slow: their latency (p50, p99,
//! max) with a large ledger whose write lock another process holds for long stretches, as a slow
//! or busy disk (or a backup holding the database) does to the actors' writes.
//!
//! `cargo bench --bench health` builds a ledger of `HEALTH_BENCH_BLOCKS` blocks (default
//! 1,000,000, all settled, one every 12 s up to now: the newest 7,200 are the last day's, as
//! proving every block makes them), starts the release daemon on it (`BLOCK_INTERVAL=1`, so it
//! keeps the real-time cohort's scoreboard over the last day) against the fake node (the in-repo
//! mini chain, so its actors also build, prove and write), and from a second connection holds
//! the ledger's write lock for 200 ms of every 250 ms while it asks `/health` 500 times and
//! `/api/dashboard` 200 times. Both read through their own read-only connection on the blocking
//! pool: the targets are a p99 under 5 ms for `/health` and under 50 ms for the dashboard's API.
//! It also asks `/health` once every 0.6 s for 12 s, as probes do, while the scoreboard is worked
//! out again in the background (every 5 s, from the day's blocks). Under `cargo test` it does one short pass (10,000 blocks, 50
//! and 20 requests) as a smoke test, with no target asserted.
#![recursion_limit = "256"]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::daemon::{Daemon, base_env, mini_node};

/// A ledger at `path` holding `blocks` settled blocks (proved, with their `proved` calls done),
/// made the way a long-running daemon's looks, but written in one go.
fn large_ledger(path: &std::path::Path, blocks: u64) {
    drop(ethproofs_daemon::store::Ledger::open(path).unwrap());
    let mut conn = rusqlite::Connection::open(path).unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut block = tx
            .prepare(
                "INSERT INTO blocks (number, state, attempts, seen_at, input_ready_at, queued_at, proving_at, exited_at,
                 proved_at, proving_ms, cycles, gas_used, tx_count, block_hash, proof_sha256)
                 VALUES (?1, 'proved', 1, ?2, ?2, ?2, ?2, ?2, ?2, 60000, 1000000, 15000000, 150, ?3, ?4)",
            )
            .unwrap();
        let mut report = tx
            .prepare(
                "INSERT INTO reports (block, status, state, created_at, attempts, done_at) VALUES (?1, 'proved', 'done', ?2, 1, ?2)",
            )
            .unwrap();
        let now =
            i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis())
                .unwrap();
        for n in 1..=blocks {
            let at = now - i64::try_from(blocks - n).unwrap() * 12_000;
            let number = i64::try_from(n * 100).unwrap();
            block.execute(rusqlite::params![number, at, format!("0x{n:064x}"), format!("{n:064x}")]).unwrap();
            report.execute(rusqlite::params![number, at]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// One GET of `path` over a fresh connection: how long until the whole answer was read.
fn get(port: u16, path: &str) -> Duration {
    let started = Instant::now();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut body = Vec::new();
    let _ = s.read_to_end(&mut body);
    assert!(body.starts_with(b"HTTP/1.1 "), "no answer");
    started.elapsed()
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let default_blocks = if benching { 1_000_000 } else { 10_000 };
    let blocks = std::env::var("HEALTH_BENCH_BLOCKS").ok().and_then(|v| v.parse().ok()).unwrap_or(default_blocks);
    let (requests, dashboard_requests) = if benching { (500, 200) } else { (50, 20) };
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("output");
    std::fs::create_dir_all(&output).unwrap();
    let db = output.join("ethproofs-daemon.db");
    let built = Instant::now();
    large_ledger(&db, blocks);
    let bytes = std::fs::metadata(&db).map_or(0, |m| m.len());
    println!(
        "ledger of {blocks} blocks built in {:.1} s: {:.0} MB, {} bytes a block",
        built.elapsed().as_secs_f64(),
        bytes as f64 / 1e6,
        bytes / blocks.max(1)
    );

    let node = mini_node(11);
    let mut env = base_env(&node, None);
    env.push(("OUTPUT_DIR", output.display().to_string()));
    env.push(("START_BLOCK", "10".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("up", Duration::from_secs(120), |h| h["status"].is_string());

    // The slow disk: another connection holds the write lock 200 ms of every 250 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let holder = {
        let (stop, db) = (stop.clone(), db.clone());
        std::thread::spawn(move || {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.busy_timeout(Duration::from_secs(5)).unwrap();
            while !stop.load(Ordering::SeqCst) {
                if conn.execute_batch("BEGIN IMMEDIATE").is_ok() {
                    std::thread::sleep(Duration::from_millis(200));
                    let _ = conn.execute_batch("COMMIT");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let cohort = d.health()["cohort"].clone();
    assert_eq!(cohort["cohort"], "real-time", "the scoreboard is kept: {cohort}");
    let health: Vec<Duration> = (0..requests).map(|_| get(d.port, "/health")).collect();
    let dashboard: Vec<Duration> = (0..dashboard_requests).map(|_| get(d.port, "/api/dashboard")).collect();
    // As probes come: one every 0.6 s while the scoreboard is worked out again in the background.
    let sparse: Vec<Duration> = (0..if benching { 20 } else { 2 })
        .map(|_| {
            std::thread::sleep(Duration::from_millis(600));
            get(d.port, "/health")
        })
        .collect();
    stop.store(true, Ordering::SeqCst);
    let _ = holder.join();
    let day = &d.health()["cohort"]["last_day"];
    println!("scoreboard over the last day: {} blocks counted", day["counted"]);
    report("/health", requests, health, 5);
    report("/api/dashboard", dashboard_requests, dashboard, 50);
    let slowest = sparse.iter().max().copied().unwrap_or_default();
    println!("/health one every 0.6 s for 12 s (the scoreboard worked out meanwhile): max {:.2} ms", ms(slowest));
    assert!(d.terminate().0.success());
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(path: &str, requests: usize, mut times: Vec<Duration>, target_ms: u64) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    println!(
        "{path} over {requests} requests, ledger write-locked 80% of the time: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms (target p99 < {target_ms} ms)",
        at(0.50).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        times[times.len() - 1].as_secs_f64() * 1000.0,
    );
}
