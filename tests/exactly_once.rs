#![recursion_limit = "256"]
//! Exactly once by construction: each defect the ledger-as-state-machine redesign removed, driven
//! through the real binary against the fake node, API and cargo-zisk.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::daemon::{Daemon, KEY, base_env, mini_node, prover, set};
use support::fake_api::FakeApi;

const TOKEN: &str = "admin-token-SECRET";

fn cli(d: &Daemon, args: &[&str]) -> Output {
    let mut cmd = support::daemon();
    cmd.args(args).arg("--url").arg(format!("http://127.0.0.1:{}", d.admin_port)).env("ADMIN_TOKEN", TOKEN);
    cmd.output().unwrap()
}

fn env_in(dir: &Path, node: &support::fake_node::FakeNode, api: Option<&FakeApi>) -> Vec<(&'static str, String)> {
    let mut env = base_env(node, api);
    env.push(("OUTPUT_DIR", dir.join("output").display().to_string()));
    env.push(("FAKE_ZISK_LOG", dir.join("zisk.log").display().to_string()));
    env.push(("REPORT_MAX_BACKOFF_SECONDS", "1".into()));
    env.push(("ADMIN_TOKEN", TOKEN.into()));
    env
}

fn prove_runs(dir: &Path, block: u64) -> usize {
    let log = std::fs::read_to_string(dir.join("zisk.log")).unwrap_or_default();
    log.lines().filter(|l| l.starts_with("prove ") && l.contains(&format!("/{block}/input.bin"))).count()
}

fn accepted(api: &FakeApi, endpoint: &str, block: u64) -> usize {
    api.accepted().iter().filter(|(e, b)| e == endpoint && *b == block).count()
}

#[test]
fn blocks_only_executed_natively_are_proved_when_the_same_output_runs_in_prove_mode() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, Some(&api));
    set(&mut env, "ZISK_ACTION", "native");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 executed", Duration::from_secs(60), |h| prover(h)["executed_count"] == 1);
    assert_eq!(prover(&h)["proved_count"], 0);
    assert!(d.terminate().0.success());
    assert!(api.accepted().is_empty(), "native mode reports nothing");

    set(&mut env, "ZISK_ACTION", "prove");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(prove_runs(dir.path(), 10), 1);
    assert!(d.terminate().0.success());
}

#[test]
fn asking_for_the_block_being_proved_starts_no_second_run() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, Some(&api));
    set(&mut env, "FAKE_ZISK_SECONDS", "3");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proving", Duration::from_secs(60), |h| prover(h)["proving_block"] == 10);
    let out = cli(&d, &["prove", "10"]);
    assert!(!out.status.success(), "a block in flight is refused");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("in progress") && text.contains("nothing done"), "{text}");
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let out = cli(&d, &["prove", "10"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("already proved"));
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(prove_runs(dir.path(), 10), 1, "one prover run per block per attempt");
    assert!(d.terminate().0.success());
}

#[test]
fn a_sigterm_or_sighup_during_a_proof_is_not_a_failed_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, Some(&api));
    // One interruption by a crash would fail the block; deploys must not.
    set(&mut env, "MAX_PROVE_ATTEMPTS", "1");
    set(&mut env, "FAKE_ZISK_SECONDS", "30");
    // A closed terminal or `systemctl reload` sends SIGHUP: a graceful stop like SIGTERM.
    for (deploy, signal) in [libc::SIGTERM, libc::SIGHUP].into_iter().enumerate() {
        let mut d = Daemon::start(&env);
        d.wait_for("block 10 proving", Duration::from_secs(60), |h| prover(h)["proving_block"] == 10);
        let (status, _) = d.stop_with(signal);
        assert!(status.success(), "deploy {deploy} (signal {signal}): {status}");
    }
    set(&mut env, "FAKE_ZISK_SECONDS", "0.1");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    assert_eq!(prover(&h)["failed_count"], 0, "{h:#}");
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(accepted(&api, "proving", 10), 1, "proving sent once however often the proof restarted");
    assert!(d.terminate().0.success());
}

#[test]
fn the_operators_pause_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(9);
    let env = env_in(dir.path(), &node, None);
    let mut d = Daemon::start(&env);
    d.wait_for("up", Duration::from_secs(60), |h| h["status"] == "healthy");
    assert!(cli(&d, &["pause"]).status.success());
    assert!(d.terminate().0.success());

    let mut d = Daemon::start(&env);
    let h = d.wait_for("up", Duration::from_secs(60), |h| h["components"]["prover"]["state"].is_string());
    assert_eq!(h["paused"], true, "{h:#}");
    node.set_head(10);
    d.wait_for("target 10 waiting", Duration::from_secs(30), |h| {
        h["components"]["input_generator"]["queued_blocks"].as_array().is_some_and(|q| q.contains(&10.into()))
    });
    d.wait_for_polls(2, Duration::from_secs(30));
    assert_eq!(prove_runs(dir.path(), 10), 0, "nothing starts while paused");
    assert!(cli(&d, &["resume"]).status.success());
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    assert!(d.terminate().0.success());
}

#[test]
fn a_second_instance_on_the_same_output_changes_nothing_and_names_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let mut env = env_in(dir.path(), &node, None);
    set(&mut env, "FAKE_ZISK_MODE", "hang");
    let pids = dir.path().join("pids");
    set(&mut env, "FAKE_ZISK_PIDS", pids.display().to_string());
    let mut first = Daemon::start(&env);
    first.wait_for("block 10 proving", Duration::from_secs(60), |h| prover(h)["proving_block"] == 10);
    let ledger = dir.path().join("output/ethproofs-daemon.db");
    let before = std::fs::read(&ledger).unwrap();

    let mut second = Daemon::start(&env);
    let status = second.wait_exit(Duration::from_secs(20));
    assert!(!status.success());
    let logs = second.logs();
    assert!(logs.contains(&format!("pid {}", first.pid())) && logs.contains("another ethproofs-daemon"), "{logs}");
    assert!(!support::daemon::any_alive(&pids).is_empty(), "the first one's prover was not touched");
    assert_eq!(std::fs::read(&ledger).unwrap(), before, "the ledger was not touched");
    assert_eq!(first.health()["components"]["prover"]["proving_block"], 10);
    assert!(first.terminate().0.success());
}

#[test]
fn a_ledger_refuses_another_chain_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(9);
    let env = env_in(dir.path(), &node, None);
    let mut d = Daemon::start(&env);
    d.wait_for("up", Duration::from_secs(60), |h| h["status"] == "healthy");
    assert!(d.terminate().0.success());

    // The same chain id, but now the node says which genesis it has: another chain.
    let genesis = format!("{{\"number\":\"0x0\",\"hash\":\"0x{}\"}}", "ab".repeat(32));
    node.add_block(0, &genesis, "{}");
    let mut d = Daemon::start(&env);
    let status = d.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    let logs = d.logs();
    assert!(logs.contains("genesis unknown") && logs.contains(&"ab".repeat(32)), "{logs}");
}

#[test]
fn run_dev_started_again_proves_within_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dev");
    let env = [("DEV_BLOCK_TIME", "1".to_string()), ("OUTPUT_DIR", out.display().to_string())];
    for run in 0..2 {
        let mut d = Daemon::start_with_args(&["run", "--dev"], &env);
        let h = d.wait_for("a dev block executed", Duration::from_secs(30), |h| {
            prover(h)["executed_count"].as_u64().unwrap_or(0) >= 1
        });
        let first: Vec<u64> =
            prover(&h)["recent_executed"].as_array().unwrap().iter().filter_map(|b| b["block"].as_u64()).collect();
        assert!(first.iter().all(|b| *b <= 10), "run {run} starts from the new chain's first targets: {first:?}");
        assert!(d.terminate().0.success());
    }
    let ledger = ethproofs_daemon::store::Ledger::open(&out.join("ethproofs-daemon.db")).unwrap();
    let lines: Vec<Value> = ledger.report_lines(0).unwrap().iter().map(|l| serde_json::json!(l.block)).collect();
    assert!(lines.len() <= 3, "only the second run's blocks are in its ledger: {lines:?}");
}

#[test]
fn a_ledger_locked_when_a_proof_ends_records_it_once_released_and_never_proves_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, Some(&api));
    set(&mut env, "FAKE_ZISK_SECONDS", "5");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proving, and said so", Duration::from_secs(60), |h| {
        prover(h)["proving_block"] == 10 && accepted(&api, "proving", 10) == 1
    });
    // Another process (a backup, an operator's sqlite3) holds the ledger's write lock while the
    // proof ends, longer than the daemon's busy timeout.
    let ledger = rusqlite::Connection::open(dir.path().join("output/ethproofs-daemon.db")).unwrap();
    ledger.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let h = d.wait_for("not ready, saying why", Duration::from_secs(60), |h| h["ledger"]["write_error"].is_string());
    assert_ne!(h["status"], "healthy", "{h:#}");
    let (code, ready) = d.get("/health/ready").unwrap();
    assert_eq!(code, 503);
    assert!(ready["reason"].as_str().is_some_and(|r| r.contains("the ledger cannot be written")), "{ready}");
    assert!(dir.path().join("output/10/proof.bin").is_file(), "the proof is kept");
    assert_eq!(accepted(&api, "proved", 10), 0, "nothing reported before it is recorded");

    ledger.execute_batch("ROLLBACK").unwrap();
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let h = d.wait_for("ready again", Duration::from_secs(30), |h| h["status"] == "healthy");
    assert_eq!(h["components"]["supervisor"]["restarts"], 0, "no actor crashed: {h:#}");
    assert!(d.terminate().0.success());

    let mut d = Daemon::start(&env);
    d.wait_for("up again", Duration::from_secs(60), |h| h["status"] == "healthy");
    assert!(d.terminate().0.success());
    assert_eq!(prove_runs(dir.path(), 10), 1, "proved once, also across the restart");
    assert_eq!(accepted(&api, "proved", 10), 1);
}

#[test]
fn a_kill_9_in_the_middle_of_several_runs_loses_none_and_reports_each_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, Some(&api));
    let runs_log = dir.path().join("runs");
    set(&mut env, "START_BLOCK", "10");
    set(&mut env, "GPUS", "0,1");
    set(&mut env, "FAKE_ZISK_RUNS", runs_log.display().to_string());
    set(&mut env, "FAKE_ZISK_SECONDS", "30");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("both blocks proving at once", Duration::from_secs(60), |h| {
        let runs = prover(h)["in_flight"].as_array().cloned().unwrap_or_default();
        runs.len() == 2 && runs.iter().all(|r| r["attempt"] == 1)
    });
    let gpus: Vec<&Value> = prover(&h)["in_flight"].as_array().unwrap().iter().map(|r| &r["gpu"]).collect();
    assert_eq!(gpus, ["0", "1"], "each run on its own GPU: {h:#}");
    // Killed once both provers run (`proving` is raised a moment before the process starts).
    d.until("both provers started", Duration::from_secs(30), |_| {
        let log = std::fs::read_to_string(&runs_log).unwrap_or_default();
        log.lines().filter(|l| l.starts_with("start ")).count() == 2
    });
    d.kill9();

    set(&mut env, "FAKE_ZISK_SECONDS", "0.2");
    let mut d = Daemon::start(&env);
    d.wait_for("both reported", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1 && accepted(&api, "proved", 11) == 1
    });
    let log = std::fs::read_to_string(&runs_log).unwrap();
    for block in [10, 11] {
        assert_eq!(accepted(&api, "proving", block), 1, "proving sent once for block {block}");
        // The killed run never ended; the run after the restart did, and none came after it.
        let of_block: Vec<&str> = log
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(&block.to_string()))
            .map(|l| l.split(' ').next().unwrap_or(""))
            .collect();
        assert_eq!(of_block, ["start", "start", "end"], "block {block}:\n{log}");
    }
    d.wait_idle(Duration::from_secs(30));
    assert_eq!((accepted(&api, "proved", 10), accepted(&api, "proved", 11)), (1, 1), "reported once");
    assert!(d.terminate().0.success());
}
