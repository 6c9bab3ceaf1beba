#![recursion_limit = "256"]
//! The end-to-end fault suite: the dev chain, the fake EthProofs API and the fake cargo-zisk,
//! with the daemon under injected faults: the node down for 30 s, an API 500 storm, 429s, a
//! prover crash, a prover hang, and SIGKILLs at (seeded) random moments, restarted each time as
//! systemd would. Afterwards the invariants are checked: every target proved and reported exactly
//! once or recorded failed with a reason, no orphaned prover process, the ledger intact.
//! It prints its figures and a closing `N passed, M failed` line.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ethproofs_daemon::devchain::{self, DevChain};
use serde_json::Value;
use support::daemon::{Daemon, KEY};
use support::fake_api::FakeApi;
use support::http::{self, Response};

/// A tiny deterministic generator: the run is reproducible from its seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo + 1)
    }
}

fn say(line: &str) {
    // Past libtest's capture: the figures belong in the CI log.
    let _ = writeln!(std::io::stderr(), "{line}");
}

struct Checks {
    passed: usize,
    failed: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: &str) {
        if ok {
            self.passed += 1;
            say(&format!("  ok    {what}"));
        } else {
            self.failed.push(what.to_string());
            say(&format!("  FAIL  {what}"));
        }
    }
}

#[test]
fn the_pipeline_keeps_its_promises_under_faults() {
    let seed: u64 = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261121);
    let mut rng = Lcg(seed);
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("output");
    let chain_config = work.path().join("dev-chain.json");
    std::fs::write(&chain_config, devchain::CONFIG_JSON).unwrap();
    let pids = work.path().join("zisk.pids");
    let zisk_log = work.path().join("zisk.log");

    // The dev chain, one block a second, behind a node that can go down.
    let chain = Arc::new(Mutex::new(DevChain::new().unwrap()));
    let producing = Arc::new(AtomicBool::new(true));
    let node_down = Arc::new(AtomicBool::new(false));
    {
        let (chain, producing) = (chain.clone(), producing.clone());
        std::thread::spawn(move || {
            while producing.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_secs(1));
                if producing.load(Ordering::SeqCst) {
                    chain.lock().unwrap().produce().unwrap();
                }
            }
        });
    }
    let node_url = {
        let (chain, down) = (chain.clone(), node_down.clone());
        http::serve(move |req| {
            if down.load(Ordering::SeqCst) {
                return Response::json(503, "node down");
            }
            let request: Value = serde_json::from_slice(&req.body).unwrap_or_default();
            Response::json(200, devchain::handle_rpc(&chain, &request).to_string())
        })
    };
    let api = FakeApi::start(KEY);

    let env: Vec<(&str, String)> = vec![
        ("ETH_RPC_URL", node_url),
        ("CHAIN_CONFIG", chain_config.display().to_string()),
        ("OUTPUT_DIR", output.display().to_string()),
        ("BLOCK_INTERVAL", "5".into()),
        ("POLL_INTERVAL_MS", "500".into()),
        ("ETHPROOFS_RPC_URL", api.url.clone()),
        ("ETHPROOFS_API_KEY", KEY.into()),
        ("ETHPROOFS_CLUSTER_ID", "7".into()),
        ("REPORT_MAX_BACKOFF_SECONDS", "2".into()),
        ("MAX_PROVE_ATTEMPTS", "4".into()),
        ("PROVER_TIMEOUT_SECONDS", "3".into()),
        ("PROVER_STUCK_THRESHOLD_SECONDS", "2".into()),
        ("FAKE_ZISK_SECONDS", "0.5".into()),
        ("FAKE_ZISK_MODES", "15=crash,30=hang".into()),
        ("FAKE_ZISK_PIDS", pids.display().to_string()),
        ("FAKE_ZISK_LOG", zisk_log.display().to_string()),
        ("LOG_LEVEL", "info".into()),
    ];

    // The schedule (seconds from the start).
    let kills: Vec<u64> = [(6, 14), (24, 32), (44, 52), (64, 72)].iter().map(|&(a, b)| rng.next(a, b)).collect();
    let (node_down_at, node_up_at) = (20, 50);
    let (storm_at, storm_end) = (55, 70);
    let rate_limits_at = 35;
    let stop_chain_at = 80;
    say(&format!(
        "fault suite: seed {seed}, SIGKILLs at {kills:?} s, node down {node_down_at}-{node_up_at} s, API 503 storm {storm_at}-{storm_end} s, two 429s at {rate_limits_at} s, prover crash on block 15, hang on block 30"
    ));

    let start = Instant::now();
    let mut daemon = Daemon::start(&env);
    let (mut restarts, mut kills_done, mut exits) = (0u32, 0usize, 0u32);
    let mut rate_limited = false;
    while start.elapsed() < Duration::from_secs(stop_chain_at) {
        let t = start.elapsed().as_secs();
        node_down.store((node_down_at..node_up_at).contains(&t), Ordering::SeqCst);
        api.set_down((storm_at..storm_end).contains(&t));
        if t >= rate_limits_at && !rate_limited {
            rate_limited = true;
            for _ in 0..2 {
                api.script("proved", 429, &[("Retry-After", "1")], r#"{"error":"Rate limit exceeded","retryAfter":1}"#);
            }
        }
        if kills_done < kills.len() && t >= kills[kills_done] {
            daemon.kill9();
            kills_done += 1;
            std::thread::sleep(Duration::from_millis(500));
            daemon = Daemon::start(&env);
            restarts += 1;
        }
        // A start-up refused while the node is down exits non-zero: restart like systemd.
        if let Some(status) = daemon.exited() {
            assert!(!status.success(), "the daemon exited 0 on its own\n{}", daemon.logs());
            exits += 1;
            std::thread::sleep(Duration::from_secs(2));
            daemon = Daemon::start(&env);
            restarts += 1;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    node_down.store(false, Ordering::SeqCst);
    api.set_down(false);
    producing.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200));
    let final_head = chain.lock().unwrap().head_number();
    let targets: Vec<u64> = (1..=final_head / 5).map(|k| k * 5).collect();

    // Settle: every target terminal, nothing queued, every report settled.
    let settle = Instant::now();
    let mut last = Value::Null;
    while settle.elapsed() < Duration::from_secs(120) {
        if daemon.exited().is_some() {
            daemon = Daemon::start(&env);
            restarts += 1;
        }
        last = daemon.health();
        let c = &last["components"];
        let idle = c["prover"]["state"] == "idle"
            && c["prover"]["queue_length"] == 0
            && c["input_generator"]["queue_length"] == 0
            && c["input_generator"]["building_block"].is_null()
            && c["reporter"]["queue_length"] == 0
            && c["input_generator"]["head"] == final_head;
        if idle {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (status, took) = daemon.terminate();
    std::thread::sleep(Duration::from_millis(300));

    // The ledger, read the way an operator would.
    let report = support::daemon()
        .args(["report", "--since", "1d", "--format", "json"])
        .env("OUTPUT_DIR", &output)
        .output()
        .unwrap();
    let rows: Vec<Value> = serde_json::from_slice(&report.stdout).unwrap_or_default();
    let by_block: BTreeMap<u64, &Value> = rows.iter().map(|r| (r["block"].as_u64().unwrap_or(0), r)).collect();
    let ok_calls = |endpoint: &str, block: u64| {
        api.received()
            .iter()
            .filter(|r| r.path.ends_with(&format!("/{endpoint}")) && r.body["block_number"] == block && r.status == 200)
            .count()
    };

    say("checks:");
    let mut checks = Checks { passed: 0, failed: vec![] };
    checks.check(report.status.success(), "the ledger opens and reports after the run");
    checks.check(status.success() && took < Duration::from_secs(30), "the last daemon exits 0 on SIGTERM within 30 s");
    checks.check(
        targets.iter().all(|t| by_block.contains_key(t)),
        &format!("every target up to the final head {final_head} is in the ledger ({} targets)", targets.len()),
    );
    let terminal = |r: &Value| matches!(r["outcome"].as_str(), Some("proved" | "failed" | "skipped"));
    checks.check(
        targets.iter().all(|t| by_block.get(t).is_some_and(|r| terminal(r))),
        "every target ended proved or failed",
    );
    checks.check(
        rows.iter().filter(|r| r["outcome"] != "proved").all(|r| r["reason"].as_str().is_some_and(|s| !s.is_empty())),
        "every failed target has its reason",
    );
    let proved: Vec<u64> =
        rows.iter().filter(|r| r["outcome"] == "proved").filter_map(|r| r["block"].as_u64()).collect();
    checks.check(!proved.is_empty(), &format!("blocks were proved despite the faults ({})", proved.len()));
    checks.check(
        proved.iter().all(|&b| ok_calls("proved", b) == 1),
        "each proved block was accepted by the API exactly once",
    );
    checks.check(
        rows.iter()
            .filter(|r| r["outcome"] != "proved")
            .all(|r| ok_calls("proved", r["block"].as_u64().unwrap_or(0)) == 0),
        "no failed block was reported proved",
    );
    checks.check(
        targets.iter().all(|&b| ok_calls("queued", b) <= 1 && ok_calls("proving", b) <= 1),
        "queued and proving were each accepted at most once per block",
    );
    checks.check(
        by_block.get(&15).is_some_and(|r| r["outcome"] == "failed" && r["stage"] == "crash"),
        "the crashing block was failed as a crash",
    );
    checks.check(
        by_block.get(&30).is_some_and(|r| r["outcome"] == "failed" && r["stage"] == "timeout"),
        "the hanging block was killed at the timeout and failed",
    );
    let alive = support::daemon::any_alive(&pids);
    let stray: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|&pid| ethproofs_daemon::process::process_alive(pid))
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|c| (pid, c)))
        .filter(|(_, c)| String::from_utf8_lossy(c).contains(&*output.to_string_lossy()))
        .map(|(pid, c)| format!("{pid}: {}", String::from_utf8_lossy(&c).replace('\0', " ")))
        .collect();
    checks.check(alive.is_empty() && stray.is_empty(), &format!("no orphaned prover process ({alive:?} {stray:?})"));

    let delivered = api.received().iter().filter(|r| r.status == 200).count();
    let refused = api.received().iter().filter(|r| r.status != 200).count();
    say(&format!(
        "figures: {} SIGKILLs, {} start-up exits restarted, {restarts} restarts in all; node down 30 s; API storm 15 s ({refused} calls refused); 2 x 429; targets {}, proved {}, failed {}; {delivered} API calls accepted",
        kills.len(),
        exits,
        targets.len(),
        proved.len(),
        rows.iter().filter(|r| r["outcome"] != "proved").count(),
    ));
    say(&format!("{} passed, {} failed", checks.passed, checks.failed.len()));
    assert!(checks.failed.is_empty(), "failed: {:?}\nlast health: {last:#}\nlog:\n{}", checks.failed, daemon.logs());
}
