#![recursion_limit = "256"]
//! The end-to-end fault suite: the dev chain, the fake EthProofs API and the fake cargo-zisk,
//! with the daemon under injected faults: the node down for 30 s, an API 500 storm, 429s, a
//! prover crash, a prover hang, and SIGKILLs at (seeded) random moments, restarted each time as
//! systemd would. Afterwards the invariants are checked: every target proved and reported exactly
//! once or recorded failed with a reason, no orphaned prover process, the ledger intact.
//! It prints its figures and a closing `N passed, M failed` line.
//!
//! The coordinator variant runs the same pipeline with `PROVER_BACKEND=coordinator` against a
//! fake ZisK coordinator that is restarted (keeping and forgetting its jobs), goes down and
//! fails a job, while the daemon is SIGKILLed and SIGTERMed mid-job.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ethproofs_daemon::outside::devchain::{self, DevChain};
use serde_json::Value;
use support::daemon::{Daemon, KEY};
use support::fake_api::FakeApi;
use support::fake_coordinator::{FailKind, FakeCoordinator};
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

/// How long the fake API takes to answer in the first scenario: a kill inside it loses the answer.
const API_DELAY: Duration = Duration::from_millis(300);

/// The two scenarios run one after the other: each is timing-sensitive and loads both cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn the_pipeline_keeps_its_promises_under_faults() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let seed: u64 = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261121);
    let mut rng = Lcg(seed);
    let work = tempfile::tempdir().unwrap();
    // FAULT_KEEP=1 keeps the run's directory (ledger, outputs, every daemon's log) for a post-mortem.
    let keep = std::env::var_os("FAULT_KEEP").is_some();
    let logs = work.path().join("daemons.log");
    let save_log = |d: &Daemon| {
        if keep {
            let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&logs).unwrap();
            let _ = writeln!(f, "===== daemon pid {} =====\n{}", d.pid(), d.logs());
        }
    };
    let output = work.path().join("output");
    let chain_config = work.path().join("dev-chain.json");
    std::fs::write(&chain_config, devchain::CONFIG_JSON).unwrap();
    let pids = work.path().join("zisk.pids");
    let zisk_log = work.path().join("zisk.log");

    // The dev chain, one block a second, behind a node that can go down.
    let (node_url, chain, producing, node_down) = dev_node();
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
        // The fakes' proofs are random bytes, which the verifier rightly refuses.
        ("VERIFY_PROOFS", "off".into()),
    ];

    // The schedule (seconds from the start). Besides SIGKILLs at random moments, some land on
    // events: just after the prover exits (a proof completed, not yet recorded perhaps) and just
    // after the API accepted a call (its answer not yet read: the API answers slowly). Two
    // SIGTERMs land while a block is proving, as a deploy would.
    let kills: Vec<u64> = [(6, 9), (11, 14), (22, 26), (28, 32), (38, 42), (44, 48), (50, 53), (60, 64), (66, 70)]
        .iter()
        .map(|&(a, b)| rng.next(a, b))
        .collect();
    let after_exit: Vec<u64> = [(8, 18), (56, 66)].iter().map(|&(a, b)| rng.next(a, b)).collect();
    let after_accept: Vec<u64> = [(10, 19), (36, 46), (71, 76)].iter().map(|&(a, b)| rng.next(a, b)).collect();
    let sigterms: Vec<u64> = [(15, 19), (58, 63)].iter().map(|&(a, b)| rng.next(a, b)).collect();
    let (node_down_at, node_up_at) = (20, 50);
    let (storm_at, storm_end) = (55, 70);
    let rate_limits_at = 35;
    let stop_chain_at = 80;
    api.set_delay(API_DELAY);
    say(&format!(
        "fault suite: seed {seed}, SIGKILLs at {kills:?} s, just after a prover exit from {after_exit:?} s, just after an accepted API call from {after_accept:?} s, SIGTERM during a proof from {sigterms:?} s; API answers in 300 ms; node down {node_down_at}-{node_up_at} s, API 503 storm {storm_at}-{storm_end} s, two 429s at {rate_limits_at} s, prover crash on block 15, hang on block 30"
    ));

    let completed = |log: &std::path::Path| -> usize {
        std::fs::read_to_string(log).unwrap_or_default().lines().filter(|l| l.starts_with("done ")).count()
    };
    let accepted_now = || api.received().iter().filter(|r| r.status == 200 && r.path.contains("/proofs/")).count();
    let start = Instant::now();
    let mut daemon = Daemon::start(&env);
    let (mut restarts, mut exits) = (0u32, 0u32);
    let (mut kills_done, mut exit_kills_done, mut accept_kills_done, mut terms_done) = (0usize, 0usize, 0usize, 0usize);
    let mut proving_now: Option<u64> = None;
    let mut rate_limited = false;
    let mut armed_exit: Option<usize> = None;
    let mut armed_accept: Option<usize> = None;
    let mut last_poll = Instant::now();
    // When each SIGKILL landed: a call whose answer was under way then was lost with the daemon.
    let killed_at = std::cell::RefCell::new(Vec::<Instant>::new());
    let kill = |daemon: &mut Daemon| {
        killed_at.borrow_mut().push(Instant::now());
        daemon.kill9();
        save_log(daemon);
        std::thread::sleep(Duration::from_millis(500));
        *daemon = Daemon::start(&env);
    };
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
        if last_poll.elapsed() >= Duration::from_millis(200) {
            last_poll = Instant::now();
            proving_now = daemon.health()["components"]["prover"]["proving_block"].as_u64();
        }
        if kills_done < kills.len() && t >= kills[kills_done] {
            kill(&mut daemon);
            kills_done += 1;
            restarts += 1;
            proving_now = None;
        }
        // Event kills: armed at their time, fired on the event (polled every 10 ms).
        if exit_kills_done < after_exit.len() && t >= after_exit[exit_kills_done] && armed_exit.is_none() {
            armed_exit = Some(completed(&zisk_log));
        }
        if let Some(before) = armed_exit
            && completed(&zisk_log) > before
        {
            // A few ms for the prover to exit after its last line, then a random moment after that.
            std::thread::sleep(Duration::from_millis(rng.next(5, 40)));
            // The run wrote its proof and exited: a re-proof of it would be a real duplicate.
            kill(&mut daemon);
            armed_exit = None;
            exit_kills_done += 1;
            restarts += 1;
            proving_now = None;
        }
        if accept_kills_done < after_accept.len() && t >= after_accept[accept_kills_done] && armed_accept.is_none() {
            armed_accept = Some(accepted_now());
        }
        if let Some(before) = armed_accept
            && accepted_now() > before
        {
            kill(&mut daemon);
            armed_accept = None;
            accept_kills_done += 1;
            restarts += 1;
            proving_now = None;
        }
        if terms_done < sigterms.len() && t >= sigterms[terms_done] && proving_now.is_some() {
            let (status, _) = daemon.terminate();
            save_log(&daemon);
            assert!(status.success(), "SIGTERM during a proof must exit 0\n{}", daemon.logs());
            terms_done += 1;
            daemon = Daemon::start(&env);
            restarts += 1;
            proving_now = None;
        }
        // A start-up refused while the node is down exits non-zero: restart like systemd.
        if let Some(status) = daemon.exited() {
            assert!(!status.success(), "the daemon exited 0 on its own\n{}", daemon.logs());
            exits += 1;
            save_log(&daemon);
            std::thread::sleep(Duration::from_secs(2));
            daemon = Daemon::start(&env);
            restarts += 1;
            proving_now = None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    node_down.store(false, Ordering::SeqCst);
    api.set_down(false);
    producing.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200));
    let final_head = chain.lock().unwrap().head_number();
    let targets: Vec<u64> = (1..=final_head / 5).map(|k| k * 5).collect();

    // Settle: every target terminal, nothing queued, every report settled.
    let last = settle(&mut daemon, &env, final_head, &mut restarts);
    let (status, took) = daemon.terminate();
    save_log(&daemon);
    if keep {
        say(&format!("kept {}", work.keep().display()));
    }
    std::thread::sleep(Duration::from_millis(300));

    // The ledger, read the way an operator would.
    let (report_ok, rows) = ledger_report(&output);
    let by_block: BTreeMap<u64, &Value> = rows.iter().map(|r| (r["block"].as_u64().unwrap_or(0), r)).collect();
    let ok_calls = |endpoint: &str, block: u64| accepted_calls(&api, endpoint, block);

    say("checks:");
    let mut checks = Checks { passed: 0, failed: vec![] };
    checks.check(report_ok, "the ledger opens and reports after the run");
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
    let duplicated: Vec<(&str, u64)> = ["queued", "proving", "proved"]
        .iter()
        .flat_map(|e| targets.iter().map(move |&b| (*e, b)))
        .filter(|&(e, b)| ok_calls(e, b) > 1)
        .collect();
    let duplicates: usize = duplicated.iter().map(|&(e, b)| ok_calls(e, b) - 1).sum();
    // A call the API accepted but whose answer no daemon could record (SIGKILLed while the API
    // took its 300 ms to answer, or before the answer was written down) is in doubt; the ledger
    // re-sends one only when no later call can stand in for it. Judged from the fake API's record
    // of when each call arrived and the moments this test killed a daemon, not from any log line:
    // a duplicate of a call with no kill inside its answer's window is a defect.
    let kills_at = killed_at.borrow().clone();
    // The answer leaves 300 ms after the call arrived; writing it down takes a few ms here, but a
    // slow disk (a CI runner) may take longer: 700 ms of margin.
    let answer_window = API_DELAY + Duration::from_millis(700);
    let in_doubt = |endpoint: &str, block: u64| {
        // Every acceptance but the last was re-sent: each must have lost its answer to a kill.
        let arrivals = acceptances(&api, endpoint, block);
        arrivals[..arrivals.len().saturating_sub(1)]
            .iter()
            .all(|&at| kills_at.iter().any(|&k| k >= at && k <= at + answer_window))
    };
    let unexplained_dups: Vec<(&str, u64)> = duplicated.iter().copied().filter(|&(e, b)| !in_doubt(e, b)).collect();
    checks.check(
        unexplained_dups.is_empty() && duplicated.iter().all(|&(e, b)| e != "proved" && ok_calls(e, b) == 2),
        &format!(
            "no call was accepted twice unless its answer was lost to a kill ({duplicates} duplicates {duplicated:?}, of which not in doubt: {unexplained_dups:?})"
        ),
    );
    let zisk_lines = std::fs::read_to_string(&zisk_log).unwrap_or_default();
    let runs = |block: u64| {
        zisk_lines.lines().filter(|l| l.starts_with("prove ") && l.contains(&format!("/{block}/input.bin"))).count()
    };
    // A run killed mid-way never wrote "done": proving such a block again is expected. A block
    // with two completed proofs was proved again after its proof was already made.
    let completed_twice = |block: u64| zisk_lines.lines().filter(|l| **l == *format!("done {block}")).count() > 1;
    let reproved: Vec<u64> = targets.iter().copied().filter(|&b| runs(b) > 1).collect();
    let unexplained: Vec<u64> = reproved.iter().copied().filter(|&b| completed_twice(b)).collect();
    checks.check(
        unexplained.is_empty(),
        &format!(
            "only blocks whose run was killed mid-way were proved again (re-proved {reproved:?}, proved twice after completing {unexplained:?})"
        ),
    );
    let by_interruption: Vec<u64> = rows
        .iter()
        .filter(|r| r["reason"].as_str().is_some_and(|s| s.contains("interrupted")))
        .filter_map(|r| r["block"].as_u64())
        .collect();
    checks.check(by_interruption.is_empty(), &format!("no block failed by interruption ({by_interruption:?})"));
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
        .filter(|&pid| ethproofs_daemon::outside::process::process_alive(pid))
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok().map(|c| (pid, c)))
        .filter(|(_, c)| String::from_utf8_lossy(c).contains(&*output.to_string_lossy()))
        .map(|(pid, c)| format!("{pid}: {}", String::from_utf8_lossy(&c).replace('\0', " ")))
        .collect();
    checks.check(alive.is_empty() && stray.is_empty(), &format!("no orphaned prover process ({alive:?} {stray:?})"));

    let delivered = api.received().iter().filter(|r| r.status == 200).count();
    let refused = api.received().iter().filter(|r| r.status != 200).count();
    say(&format!(
        "figures: {} SIGKILLs ({} at random moments, {exit_kills_done} just after a prover exit, {accept_kills_done} just after an accepted call), {terms_done} SIGTERMs during a proof, {} start-up exits restarted, {restarts} restarts in all; duplicate accepted calls {duplicates}; re-proofs {} (all of blocks killed mid-run: {}); blocks failed by interruption {}; node down 30 s; API storm 15 s ({refused} calls refused); 2 x 429; targets {}, proved {}, failed {}; {delivered} API calls accepted",
        kills_done + exit_kills_done + accept_kills_done,
        kills_done,
        exits,
        reproved.len(),
        unexplained.is_empty(),
        by_interruption.len(),
        targets.len(),
        proved.len(),
        rows.iter().filter(|r| r["outcome"] != "proved").count(),
    ));
    say(&format!("{} passed, {} failed", checks.passed, checks.failed.len()));
    assert!(checks.failed.is_empty(), "failed: {:?}\nlast health: {last:#}\nlog:\n{}", checks.failed, daemon.logs());
}

/// Waits (up to 2 minutes) until every target is terminal, nothing is queued and every report
/// is settled, restarting a daemon that exited; the last `/health`.
fn settle(daemon: &mut Daemon, env: &[(&str, String)], final_head: u64, restarts: &mut u32) -> Value {
    let settle = Instant::now();
    let mut last = Value::Null;
    while settle.elapsed() < Duration::from_secs(120) {
        if daemon.exited().is_some() {
            *daemon = Daemon::start(env);
            *restarts += 1;
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
    last
}

/// `ethproofs-daemon report --format json` over the run's ledger: whether it worked, and its rows.
fn ledger_report(output: &std::path::Path) -> (bool, Vec<Value>) {
    let report = support::daemon()
        .args(["report", "--since", "1d", "--format", "json"])
        .env("OUTPUT_DIR", output)
        .output()
        .unwrap();
    (report.status.success(), serde_json::from_slice(&report.stdout).unwrap_or_default())
}

/// How many `endpoint` calls for `block` the API accepted.
fn accepted_calls(api: &FakeApi, endpoint: &str, block: u64) -> usize {
    acceptances(api, endpoint, block).len()
}

/// When each call of `endpoint` for `block` that the API accepted arrived.
fn acceptances(api: &FakeApi, endpoint: &str, block: u64) -> Vec<Instant> {
    api.received()
        .iter()
        .filter(|r| r.path.ends_with(&format!("/{endpoint}")) && r.body["block_number"] == block && r.status == 200)
        .map(|r| r.at)
        .collect()
}

/// The dev chain, one block a second, behind a node that can go down: `(url, chain, producing, down)`.
fn dev_node() -> (String, Arc<Mutex<DevChain>>, Arc<AtomicBool>, Arc<AtomicBool>) {
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
    let (c, down) = (chain.clone(), node_down.clone());
    let url = http::serve(move |req| {
        if down.load(Ordering::SeqCst) {
            return Response::json(503, "node down");
        }
        let request: Value = serde_json::from_slice(&req.body).unwrap_or_default();
        Response::json(200, devchain::handle_rpc(&c, &request).to_string())
    });
    (url, chain, producing, node_down)
}

#[test]
fn the_coordinator_pipeline_keeps_its_promises_under_faults() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let seed: u64 = std::env::var("FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261130);
    let mut rng = Lcg(seed);
    let work = tempfile::tempdir().unwrap();
    let output = work.path().join("output");
    let chain_config = work.path().join("dev-chain.json");
    std::fs::write(&chain_config, devchain::CONFIG_JSON).unwrap();
    let (node_url, chain, producing, _node_down) = dev_node();
    let api = FakeApi::start(KEY);
    let mut coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_millis(2500));
    let env: Vec<(&str, String)> = vec![
        ("ETH_RPC_URL", node_url),
        ("CHAIN_CONFIG", chain_config.display().to_string()),
        ("OUTPUT_DIR", output.display().to_string()),
        ("BLOCK_INTERVAL", "5".into()),
        ("POLL_INTERVAL_MS", "500".into()),
        ("PROVER_BACKEND", "coordinator".into()),
        ("ZISK_COORDINATOR_URL", coordinator.url.clone()),
        ("ETHPROOFS_RPC_URL", api.url.clone()),
        ("ETHPROOFS_API_KEY", KEY.into()),
        ("ETHPROOFS_CLUSTER_ID", "7".into()),
        ("REPORT_MAX_BACKOFF_SECONDS", "2".into()),
        ("MAX_PROVE_ATTEMPTS", "4".into()),
        ("LOG_LEVEL", "info".into()),
        // The fakes' proofs are random bytes, which the verifier rightly refuses.
        ("VERIFY_PROOFS", "off".into()),
    ];
    let kills: Vec<u64> =
        [(5, 8), (14, 17), (27, 30), (41, 44), (52, 55)].iter().map(|&(a, b)| rng.next(a, b)).collect();
    let sigterms: Vec<u64> = [(10, 13), (35, 38)].iter().map(|&(a, b)| rng.next(a, b)).collect();
    let (restart_keep_at, restart_forget_at) = (20, 47);
    let (down_at, up_at) = (30, 40);
    let (storm_at, storm_end) = (56, 62);
    let fail_at = 24;
    let stop_chain_at = 65;
    say(&format!(
        "coordinator fault suite: seed {seed}, SIGKILLs at {kills:?} s, SIGTERMs during a job at {sigterms:?} s; coordinator restarted keeping its jobs at {restart_keep_at} s and forgetting them at {restart_forget_at} s, down {down_at}-{up_at} s, one job failing (execution) from {fail_at} s; API 503 storm {storm_at}-{storm_end} s; proofs take 2.5 s"
    ));
    let start = Instant::now();
    let mut daemon = Daemon::start(&env);
    let (mut kills_done, mut terms_done, mut restarts) = (0usize, 0usize, 0u32);
    let (mut kept, mut forgot, mut failing) = (false, false, false);
    // Blocks whose job the coordinator forgot: proving them again is expected.
    let mut forgotten: Vec<u64> = Vec::new();
    let mut proving_now: Option<u64> = None;
    let mut last_poll = Instant::now();
    while start.elapsed() < Duration::from_secs(stop_chain_at) {
        let t = start.elapsed().as_secs();
        api.set_down((storm_at..storm_end).contains(&t));
        if last_poll.elapsed() >= Duration::from_millis(200) {
            last_poll = Instant::now();
            proving_now = daemon.health()["components"]["prover"]["proving_block"].as_u64();
        }
        if kills_done < kills.len() && t >= kills[kills_done] {
            daemon.kill9();
            std::thread::sleep(Duration::from_millis(300));
            daemon = Daemon::start(&env);
            kills_done += 1;
            restarts += 1;
        }
        if terms_done < sigterms.len() && t >= sigterms[terms_done] && proving_now.is_some() {
            let (status, _) = daemon.terminate();
            // Prompt: every component confirmed its stop within its own bound (the job is left
            // running on the coordinator, never waited for).
            let logs = daemon.logs();
            assert!(
                status.success() && !logs.contains("did not record its end in time"),
                "SIGTERM mid-job: {status}\n{logs}"
            );
            daemon = Daemon::start(&env);
            terms_done += 1;
            restarts += 1;
        }
        if t >= restart_keep_at && !kept {
            kept = true;
            coordinator.restart(false);
        }
        if t >= restart_forget_at && !forgot {
            forgot = true;
            forgotten.extend(
                coordinator
                    .prove_jobs()
                    .iter()
                    .filter(|j| coordinator.running(j.block.unwrap_or(0)))
                    .filter_map(|j| j.block),
            );
            coordinator.restart(true);
        }
        if t >= fail_at && !failing {
            failing = true;
            coordinator.fail_next(FailKind::Execution("guest panicked: fault suite".into()));
        }
        if (down_at..up_at).contains(&t) {
            coordinator.down();
        } else {
            coordinator.up();
        }
        if let Some(status) = daemon.exited() {
            panic!("the daemon exited ({status}) on its own\n{}", daemon.logs());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    api.set_down(false);
    coordinator.up();
    producing.store(false, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(1200));
    let final_head = chain.lock().unwrap().head_number();
    settle(&mut daemon, &env, final_head, &mut restarts);
    let (status, took) = daemon.terminate();
    let (report_ok, rows) = ledger_report(&output);
    let by_block: BTreeMap<u64, &Value> = rows.iter().map(|r| (r["block"].as_u64().unwrap_or(0), r)).collect();
    let ok_calls = |endpoint: &str, block: u64| accepted_calls(&api, endpoint, block);
    let targets: Vec<u64> = (1..=final_head / 5).map(|k| k * 5).collect();
    let proved: Vec<u64> =
        rows.iter().filter(|r| r["outcome"] == "proved").filter_map(|r| r["block"].as_u64()).collect();
    let failed: Vec<(u64, String)> = rows
        .iter()
        .filter(|r| r["outcome"] == "failed")
        .map(|r| (r["block"].as_u64().unwrap_or(0), r["stage"].as_str().unwrap_or("").to_string()))
        .collect();
    let jobs = coordinator.prove_jobs();
    let jobs_of = |b: u64| jobs.iter().filter(|j| j.block == Some(b)).count();
    let twice: Vec<u64> = targets.iter().copied().filter(|&b| jobs_of(b) > 1).collect();
    let unexplained: Vec<u64> = twice.iter().copied().filter(|b| !forgotten.contains(b)).collect();

    say("checks:");
    let mut checks = Checks { passed: 0, failed: vec![] };
    checks.check(report_ok, "the ledger opens and reports after the run");
    checks.check(status.success() && took < Duration::from_secs(30), "the last daemon exits 0 on SIGTERM within 30 s");
    checks.check(
        targets
            .iter()
            .all(|t| by_block.get(t).is_some_and(|r| matches!(r["outcome"].as_str(), Some("proved" | "failed")))),
        &format!("every target up to the final head {final_head} ended proved or failed ({} targets)", targets.len()),
    );
    checks.check(
        rows.iter().filter(|r| r["outcome"] != "proved").all(|r| r["reason"].as_str().is_some_and(|s| !s.is_empty())),
        "every failed target has its reason",
    );
    checks.check(
        failed.len() == 1 && failed[0].1 == "execution",
        &format!("only the job the coordinator failed is failed, at stage execution ({failed:?})"),
    );
    checks.check(
        !proved.is_empty() && proved.iter().all(|&b| ok_calls("proved", b) == 1),
        &format!("each proved block was accepted by the API exactly once ({} proved)", proved.len()),
    );
    checks.check(
        unexplained.is_empty(),
        &format!("one coordinator job per block, except where the coordinator forgot it (twice: {twice:?}, forgotten: {forgotten:?})"),
    );
    checks.check(
        proved.iter().all(|b| {
            std::fs::read(output.join(format!("{b}/proof.bin"))).is_ok_and(|p| p == FakeCoordinator::proof_of(*b))
        }),
        "every proved block's proof on disk is the coordinator's proof.data",
    );
    say(&format!(
        "figures: {kills_done} SIGKILLs, {terms_done} SIGTERMs during a job, {restarts} daemon restarts; coordinator: 2 restarts (one forgetting {} running job(s)), down 10 s, {} prove jobs, {} cancels, {} registrations, {} set-ups; targets {}, proved {}, failed {}",
        forgotten.len(),
        jobs.len(),
        coordinator.cancels().len(),
        coordinator.registers(),
        coordinator.setups(),
        targets.len(),
        proved.len(),
        failed.len(),
    ));
    say(&format!("{} passed, {} failed", checks.passed, checks.failed.len()));
    assert!(checks.failed.is_empty(), "failed: {:?}\nlog:\n{}", checks.failed, daemon.logs());
}
