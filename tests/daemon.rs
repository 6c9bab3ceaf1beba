#![recursion_limit = "256"]
//! The daemon end to end: the real binary against a fake node, a fake EthProofs API and a fake
//! cargo-zisk (`tests/support/fake-cargo-zisk`), observed through its health endpoints and the
//! calls the fakes received.

mod support;

use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use support::daemon::{Daemon, KEY, any_alive, base_env, counted_and_listed, hanging, mini_node, prover, read, set};

/// The admin token of the tests that read `/admin/status`.
const ADMIN: &str = "admin-token-SECRET";
use support::fake_api::FakeApi;
use support::fake_node::FakeNode;
use support::*;

#[test]
fn a_target_is_proved_and_reported_queued_proving_proved() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    env.push(("FAKE_ZISK_VERSION", "1.4.0".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    d.wait_for("three reports delivered", Duration::from_secs(30), |h| {
        h["components"]["reporter"]["delivered_count"] == 3
    });
    let accepted = api.accepted();
    assert_eq!(
        accepted,
        vec![("queued".into(), 10), ("proving".into(), 10), ("proved".into(), 10)],
        "calls: {:?}",
        api.received()
    );
    let proved = api.received().into_iter().find(|r| r.path.ends_with("/proved")).unwrap().body;
    assert_eq!(proved["cluster_id"], 7);
    assert_eq!(proved["proving_time"], 123, "the prover's own figure, in ms");
    assert_eq!(proved["proving_cycles"], 5555);
    let proof = std::fs::read(d.output().join("10/proof.bin")).unwrap();
    assert_eq!(proved["proof"], base64::engine::general_purpose::STANDARD.encode(proof));
    // The input the prover got is the framed one 1.x reads (the fake refuses anything else).
    let input = std::fs::read(d.output().join("10/input.bin")).unwrap();
    let payload_len = u64::from_le_bytes(input[..8].try_into().unwrap()) as usize;
    assert_eq!(8 + payload_len.next_multiple_of(8), input.len());

    let health = d.health();
    assert_eq!(health["status"], "healthy", "{health:#}");
    assert_eq!(health["ledger"]["blocks"]["proved"], 1, "{health:#}");
    assert_eq!(health["components"]["prover"]["zisk_version"], "1.4.0");
    assert_eq!(d.get("/health/ready").unwrap().0, 200);
    assert_eq!(d.get("/health/live").unwrap().0, 200);

    let metrics = d.get_text("/metrics").unwrap();
    for line in [
        "ethproofs_blocks_total{outcome=\"proved\",stage=\"prove\"} 1",
        "ethproofs_chain_head 10",
        "ethproofs_last_proved_block 10",
        "ethproofs_reliability_ratio_6h 1",
        "ethproofs_queue_length{queue=\"prover\"} 0",
        "ethproofs_proof_in_progress 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "/metrics lacks {line:?}:\n{metrics}");
    }
    for prefix in [
        "ethproofs_build_info{version=",
        "ethproofs_proving_seconds_bucket{le=\"10\"} 1",
        "ethproofs_input_generation_seconds_count 1",
        "ethproofs_block_to_proof_seconds_count 1",
        "ethproofs_head_to_input_seconds_count 1",
        "ethproofs_input_to_proving_seconds_count 1",
        "ethproofs_end_to_end_seconds_count 1",
        "ethproofs_api_responses_total{endpoint=\"queued\",result=\"done\",status=\"2xx\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l.starts_with(prefix)), "/metrics lacks {prefix:?}:\n{metrics}");
    }
    // BLOCK_INTERVAL=1 keeps the real-time cohort's scoreboard: one block, proved in 123 ms.
    // The scoreboard is worked out again every few seconds.
    let h = d.wait_for("the block counted", Duration::from_secs(30), |h| h["cohort"]["last_hour"]["counted"] == 1);
    let cohort = &h["cohort"];
    assert_eq!(cohort["cohort"], "real-time", "{cohort:#}");
    let hour = &cohort["last_hour"];
    assert_eq!(
        (hour["counted"].as_u64(), hour["in_time"].as_u64(), hour["paralyzed"].as_u64()),
        (Some(1), Some(1), Some(0))
    );
    assert_eq!((hour["share_in_time"].as_f64(), hour["meets_bars"].as_bool()), (Some(1.0), Some(true)), "{cohort:#}");
    let metrics = d.get_text("/metrics").unwrap();
    assert!(metrics.lines().any(|l| l == "ethproofs_cohort_blocks{window=\"1h\"} 1"), "{metrics}");
    // The block's time, end to end: each stretch known, and they add up from the block's own
    // timestamp to EthProofs accepting the proof.
    let latency = d.get("/api/blocks/10").unwrap().1["latency"].clone();
    let ms = |k: &str| latency[k].as_u64().unwrap_or_else(|| panic!("{k} unknown: {latency:#}"));
    let stretches = ["block_to_seen_ms", "seen_to_input_ms", "input_to_proving_ms", "proving_ms"];
    let after = ["proof_to_verified_ms", "verified_to_accepted_ms"];
    let sum: u64 = stretches.iter().chain(&after).map(|k| ms(k)).sum();
    assert_eq!(sum, ms("end_to_end_ms"), "{latency:#}");

    let (status, took) = d.terminate();
    assert!(status.success(), "exit {status}");
    assert!(took < Duration::from_secs(30));
    let logs = d.logs();
    for secret in [KEY, "NODE-SECRET-PATH"] {
        let leaks: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        assert!(leaks.is_empty(), "{secret} appears in the logs: {leaks:#?}");
    }
}

#[test]
fn a_real_mainnet_block_is_proved_with_the_v014_cli() {
    let Some(dirs) = shared_fixtures("a_real_mainnet_block_is_proved_with_the_v014_cli") else { return };
    let dir = dirs.iter().find(|d| d.ends_with("mainnet-25229957")).expect("mainnet fixture");
    let node = FakeNode::start();
    node.set_chain_id(1);
    node.set_head(25229957);
    node.add_block(
        25229957,
        &read(&dir.join("eth_getBlockByNumber.json")),
        &read(&dir.join("debug_executionWitness.json")),
    );
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    env.retain(|(k, _)| *k != "CHAIN_CONFIG"); // the embedded mainnet config
    env.push(("FAKE_ZISK_VERSION", "0.14.0".into()));
    let zisk_log = tempfile::NamedTempFile::new().unwrap();
    env.push(("FAKE_ZISK_LOG", zisk_log.path().display().to_string()));
    let mut d = Daemon::start(&env);
    d.wait_for("three reports delivered", Duration::from_secs(60), |h| {
        h["components"]["reporter"]["delivered_count"] == 3
    });
    let proved = api.received().into_iter().find(|r| r.path.ends_with("/proved")).unwrap().body;
    assert_eq!(proved["block_number"], 25229957u64);
    assert_eq!(proved["proving_time"], 123, "result.json time 0.1225 s, rounded up to whole ms");
    assert_eq!(proved["proving_cycles"], 5555);
    let compressed = std::fs::read(d.output().join("25229957/proof/vadcop_final_proof.compressed.bin")).unwrap();
    assert_eq!(proved["proof"], base64::engine::general_purpose::STANDARD.encode(compressed));
    // v0.14 reads the raw rkyv bytes: the golden raw hash, not the framed one.
    let expected: Value = serde_json::from_str(&read(&dir.join("expected.json"))).unwrap();
    assert_eq!(sha256_file(&d.output().join("25229957/input.bin")), expected["input_rkyv_sha256"].as_str().unwrap());
    let invocations = std::fs::read_to_string(zisk_log.path()).unwrap();
    let prove = invocations.lines().find(|l| l.starts_with("prove")).expect("a prove invocation");
    assert!(prove.ends_with("25229957/proof -a -u"), "v0.14 needs -o DIR -a -u: {prove}");
    assert!(d.terminate().0.success());
}

#[test]
fn a_target_the_node_answers_null_for_is_asked_again_until_served_never_missed() {
    // Head 11 believed; block 10 answered null past NODE_RETRY_SECONDS (0 here).
    let node = mini_node(11);
    let (block, witness) = support::daemon::mini_block(10);
    node.add_block(10, "null", "null");
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 waiting for the node", Duration::from_secs(30), |h| {
        h["components"]["input_generator"]["not_served"][0]["block"] == 10
    });
    assert!(h["components"]["input_generator"]["not_served"][0]["retry_in_seconds"].as_u64().is_some(), "{h:#}");
    assert_eq!(h["components"]["input_generator"]["missed_count"], 0, "not yet is not never");
    node.add_block(10, &block, &witness);
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| {
        api.accepted().contains(&("proved".to_string(), 10))
    });
    let h = d.health();
    assert_eq!(h["components"]["input_generator"]["missed_count"], 0);
    assert_eq!(h["components"]["input_generator"]["not_served"], serde_json::json!([]));
    assert!(d.terminate().0.success());
}

#[test]
fn a_head_jump_attempts_every_target_in_between() {
    // Heads just past the targets: the node has a header at its head, and no target block.
    let node = mini_node(1050);
    let mut env = base_env(&node, None);
    set(&mut env, "BLOCK_INTERVAL", "100");
    env.push(("MAX_BACKFILL_BLOCKS", "300".into()));
    let mut d = Daemon::start(&env);
    let not_served = |h: &Value| -> Vec<u64> {
        h["components"]["input_generator"]["not_served"]
            .as_array()
            .map_or(Vec::new(), |a| a.iter().filter_map(|w| w["block"].as_u64()).collect())
    };
    let h = d.wait_for("target 1000 waiting for the node", Duration::from_secs(30), |h| not_served(h) == [1000]);
    let waiting = &h["components"]["input_generator"]["not_served"][0];
    assert_eq!(waiting["stage"], "fetch_block", "{waiting}");
    assert!(waiting["reason"].as_str().unwrap().contains("null result"), "not a missed target yet: {waiting}");
    assert_eq!(h["components"]["input_generator"]["missed_count"], 0);
    node.set_head(1350);
    // 1100, 1200 and 1300 wait for the node too; 1000 is now 350 blocks behind: out of the
    // window, missed with the node's last answer.
    let h = d.wait_for("targets 1100, 1200, 1300 accounted for", Duration::from_secs(30), |h| {
        not_served(h) == [1100, 1200, 1300] && h["components"]["input_generator"]["missed_count"] == 1
    });
    let missed = &h["components"]["input_generator"]["missed_blocks"][0];
    assert_eq!((missed["block"].as_u64(), missed["stage"].as_str()), (Some(1000), Some("backfill_window")), "{missed}");
    assert!(missed["reason"].as_str().unwrap().contains("did not serve it"), "{missed}");
    for block in [1100, 1200, 1300] {
        assert!(node.calls().contains(&format!("eth_getBlockByNumber {block}")), "{block} never fetched");
    }
    assert_eq!(h["components"]["input_generator"]["next_target"], 1400);
    assert!(d.terminate().0.success());
}

#[test]
fn a_crash_fails_one_block_and_the_next_proceeds() {
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    env.push(("START_BLOCK", "10".into()));
    env.push(("FAKE_ZISK_MODES", "10=crash".into()));
    env.push(("ADMIN_TOKEN", ADMIN.into()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 failed and block 11 proved", Duration::from_secs(60), |h| {
        counted_and_listed(h, "failed", 1) && counted_and_listed(h, "proved", 1)
    });
    let failed = &prover(&h)["recent_failed"][0];
    assert_eq!(failed["block"], 10);
    assert_eq!(failed["stage"], "crash");
    assert!(failed["reason"].as_str().unwrap().contains("signal 11"), "{failed}");
    assert!(failed.get("last_lines").is_none(), "the prover's output is not public: {failed}");
    let (_, detail) = d.admin_get("/admin/status", ADMIN).unwrap();
    let failed = &prover(&detail)["recent_failed"][0];
    assert!(failed["last_lines"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("about to crash")));
    assert_eq!(prover(&h)["recent_proved"][0]["block"], 11);
    d.wait_for("block 11 reported", Duration::from_secs(30), |_| api.accepted().contains(&("proved".into(), 11)));
    assert!(!api.accepted().contains(&("proved".into(), 10)));
    // A block's task started in the turn that heard of another's end names its own block alone:
    // never the other's span around it (nor, one after another, every block's before it).
    let logs = d.logs();
    let nested: Vec<&str> = logs.lines().filter(|l| l.matches("block{").count() > 1).collect();
    assert!(nested.is_empty(), "lines inside two blocks' spans: {nested:#?}");
    assert!(logs.lines().any(|l| l.contains("block{block=11")), "block 11's lines carry its span: {logs}");
    // The actors' own lines about a block (a run's end heard, an answer recorded) are in its span
    // too, and none names a block by hand beside it.
    let said = |span: &str, what: &str| logs.lines().any(|l| l.contains(span) && l.contains(what));
    assert!(said("block{block=10", "proof failed"), "{logs}");
    assert!(said("block{block=11", "block proved"), "{logs}");
    assert!(said(r#"block{block=11 call="proved"}"#, "reported to EthProofs"), "{logs}");
    let by_hand: Vec<&str> = logs.lines().filter(|l| l.contains(" block=")).collect();
    assert!(by_hand.is_empty(), "lines naming a block outside its span: {by_hand:#?}");
    assert!(d.terminate().0.success());
}

#[test]
fn a_slow_witness_for_one_block_does_not_hold_back_the_next() {
    let node = mini_node(11);
    node.slow_witness(10, Duration::from_secs(4));
    let mut env = base_env(&node, None);
    env.push(("START_BLOCK", "10".into()));
    let mut d = Daemon::start(&env);
    let building = |h: &Value| {
        let builds = h["components"]["input_generator"]["building"].as_array().cloned().unwrap_or_default();
        builds.iter().map(|b| b["block"].as_u64().unwrap_or(0)).collect::<Vec<u64>>()
    };
    let h = d.wait_for("block 11 proved while block 10's witness is still coming", Duration::from_secs(60), |h| {
        prover(h)["recent_proved"][0]["block"] == 11
    });
    assert_eq!(building(&h), [10], "block 10 still building: {h:#}");
    d.wait_for("block 10 proved too", Duration::from_secs(60), |h| prover(h)["proved_count"] == 2);
    assert!(d.terminate().0.success());
}

#[test]
fn a_hang_is_killed_at_the_timeout_with_no_orphan() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let mut env = hanging(&mini_node(10), pids.path(), 1);
    set(&mut env, "PROVER_TIMEOUT_SECONDS", "2");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("the hung proof failed", Duration::from_secs(60), |h| counted_and_listed(h, "failed", 1));
    let failed = &prover(&h)["recent_failed"][0];
    assert_eq!(failed["stage"], "timeout", "{failed}");
    assert!(std::fs::metadata(pids.path()).unwrap().len() > 0, "the fake prover never started");
    // Killed with its group; the kernel may take a moment to tear the last one down.
    d.until("the prover's processes gone", Duration::from_secs(5), |_| any_alive(pids.path()).is_empty());
    assert_eq!(prover(&d.health())["state"], "idle");
    assert!(d.terminate().0.success());
}

#[test]
fn a_stuck_prover_turns_readiness_503_and_sigterm_leaves_no_orphan() {
    let pids = tempfile::NamedTempFile::new().unwrap();
    let mut d = Daemon::start(&hanging(&mini_node(10), pids.path(), 1));
    let h = d.wait_for("prover stuck", Duration::from_secs(60), |h| prover(h)["state"] == "stuck");
    assert_eq!(h["status"], "degraded");
    assert_eq!(d.get("/health/ready").unwrap().0, 503);
    assert_eq!(d.get("/health").unwrap().0, 503);
    assert_eq!(d.get("/health/live").unwrap().0, 200);
    assert!(!any_alive(pids.path()).is_empty(), "the hung prover should be running now");

    let (status, took) = d.terminate();
    assert!(status.success(), "exit {status}\n{}", d.logs());
    assert!(took < Duration::from_secs(30), "took {took:?}");
    assert_eq!(any_alive(pids.path()), Vec::<i32>::new(), "prover processes survived shutdown");
}

#[test]
fn execute_mode_records_steps_and_reports_nothing() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    env.push(("ZISK_ACTION", "execute".into()));
    env.push(("FAKE_ZISK_VERSION", "0.14.0".into()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block executed", Duration::from_secs(60), |h| counted_and_listed(h, "executed", 1));
    assert_eq!(prover(&h)["recent_executed"][0]["cycles"], 7777);
    assert_eq!(prover(&h)["proved_count"], 0, "an emulation is not a proof");
    assert_eq!(prover(&h)["action"], "execute");
    d.wait_idle(Duration::from_secs(30));
    assert!(api.received().is_empty(), "execute mode must not report: {:?}", api.received());
    assert!(d.terminate().0.success());
}

#[test]
fn configuration_errors_exit_2_naming_the_variable() {
    let mut d = Daemon::start(&[]);
    let status = d.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(2));
    assert!(d.logs().contains("ETH_RPC_URL"), "{}", d.logs());

    let mut d = Daemon::start(&[("ETH_RPC_URL", "http://127.0.0.1:9".into()), ("ETHPROOFS_API_KEY", KEY.into())]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(2));
    assert!(d.logs().contains("ETHPROOFS_RPC_URL") && !d.logs().contains(KEY), "{}", d.logs());

    let mut d = Daemon::start(&[("ETH_RPC_URL", "http://127.0.0.1:9".into()), ("BLOCK_INTERVAL", "ten".into())]);
    assert_eq!(d.wait_exit(Duration::from_secs(10)).code(), Some(2));
    assert!(d.logs().to_lowercase().contains("block-interval"), "{}", d.logs());

    let node = mini_node(10);
    let mut env = base_env(&node, None);
    env.push(("ELF_PATH", "/nonexistent/guest.elf".into()));
    let mut d = Daemon::start(&env);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(2));
    assert!(d.logs().contains("ELF_PATH"), "{}", d.logs());

    // A host program is not a guest: refused at start-up by its header, not at the first target.
    let mut env = base_env(&node, None);
    env.push(("ELF_PATH", "/bin/true".into()));
    let mut d = Daemon::start(&env);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(2));
    assert!(d.logs().contains("ELF_PATH") && d.logs().contains("not RISC-V"), "{}", d.logs());

    // A config for another chain than the node's is refused at start-up.
    let node = mini_node(10);
    node.set_chain_id(1);
    let mut d = Daemon::start(&base_env(&node, None));
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(2), "only CHAIN_CONFIG can fix it");
    assert!(d.logs().contains("CHAIN_CONFIG") && d.logs().contains("chain id 1337"), "{}", d.logs());
}

#[test]
fn help_lists_every_variable() {
    let out = daemon().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for var in [
        "ETH_RPC_URL",
        "ETH_WS_URL",
        "CHAIN_CONFIG",
        "ELF_PATH",
        "ZISK_ACTION",
        "CARGO_ZISK",
        "ZISK_VERSION",
        "ZISK_EXTRA_ARGS",
        "BLOCK_INTERVAL",
        "POLL_INTERVAL_MS",
        "MAX_BACKFILL_BLOCKS",
        "START_BLOCK",
        "OUTPUT_DIR",
        "HEALTH_HOST",
        "HEALTH_PORT",
        "PROVER_STUCK_THRESHOLD_SECONDS",
        "PROVER_TIMEOUT_SECONDS",
        "PROVER_KILL_GRACE_SECONDS",
        "ETHPROOFS_RPC_URL",
        "ETHPROOFS_API_KEY",
        "ETHPROOFS_CLUSTER_ID",
        "SLACK_WEBHOOK",
        "SLACK_NOTIFY_PROVED",
        "DB_PATH",
        "MAX_PROVE_ATTEMPTS",
        "REPORT_MAX_AGE_HOURS",
        "REPORT_MAX_BACKOFF_SECONDS",
        "ETHPROOFS_STRICT_STARTUP",
        "ADMIN_TOKEN",
        "RETAIN_BLOCKS",
        "MIN_FREE_DISK_MB",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "VERIFY_PROOFS",
        "PROGRAM_VK",
    ] {
        assert!(help.contains(var), "--help lacks {var}");
    }
}

/// A prover that fails, writes nothing, or writes a garbage result fails its block with the
/// reason, for both CLI dialects.
#[test]
fn a_failed_run_or_a_missing_proof_fails_the_block_with_its_reason() {
    for (version, modes, expect) in [
        ("1.4.0", "10=fail,11=nothing", [("prover_exit", "exited with code 1"), ("proof_output", "No final proof")]),
        (
            "0.14.0",
            "10=garbage,11=nothing",
            [("proof_output", "unreadable result file"), ("proof_output", "result.json")],
        ),
    ] {
        let node = mini_node(11);
        let api = FakeApi::start(KEY);
        let mut env = base_env(&node, Some(&api));
        env.push(("START_BLOCK", "10".into()));
        env.push(("FAKE_ZISK_VERSION", version.into()));
        env.push(("FAKE_ZISK_MODES", modes.into()));
        env.push(("ADMIN_TOKEN", ADMIN.into()));
        let mut d = Daemon::start(&env);
        // The recent list is the Prover's, published at its next turn after the ledger's count.
        let h = d.wait_for("both blocks failed", Duration::from_secs(60), |h| {
            prover(h)["failed_count"] == 2 && prover(h)["recent_failed"].as_array().is_some_and(|f| f.len() == 2)
        });
        // Inputs build side by side: either block may be first to run.
        let failed = prover(&h)["recent_failed"].as_array().unwrap().clone();
        let of = |failed: &[Value], n: u64| failed.iter().find(|f| f["block"] == n).cloned().unwrap_or_default();
        for (n, (stage, reason)) in [10, 11].into_iter().zip(expect) {
            let f = of(&failed, n);
            assert_eq!(f["stage"], stage, "{version}: {f}");
            assert!(f["reason"].as_str().unwrap().contains(reason), "{version}: {f}");
        }
        if version == "1.4.0" {
            let (_, detail) = d.admin_get("/admin/status", ADMIN).unwrap();
            let failed = prover(&detail)["recent_failed"].as_array().unwrap().clone();
            let lines = of(&failed, 10)["last_lines"].as_array().unwrap().clone();
            assert!(lines.iter().any(|l| l.as_str().unwrap().contains("Error: proving failed")), "{lines:?}");
        }
        assert_eq!(prover(&h)["proved_count"], 0);
        assert!(!api.accepted().iter().any(|(status, _)| status == "proved"), "{:?}", api.accepted());
        assert!(d.terminate().0.success());
    }
}

#[test]
fn new_heads_over_websocket_bring_targets_without_waiting_for_a_poll() {
    let node = mini_node(10);
    let ws = support::fake_ws::FakeWs::start();
    let mut env = base_env(&node, None);
    env.push(("ETH_WS_URL", ws.url.clone()));
    // Polling only at start-up: block 11 can only arrive through newHeads.
    env.push(("POLL_INTERVAL_MS", "600000".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    let mut header: Value =
        serde_json::from_str(&read(&mini_chain_dir().join("block-11/eth_getBlockByNumber.json"))).unwrap();
    header.as_object_mut().unwrap().remove("transactions");
    // The subscription may still be starting: push until the daemon sees the head.
    let start = std::time::Instant::now();
    while d.health()["components"]["input_generator"]["head"] != 11 {
        assert!(start.elapsed() < Duration::from_secs(30), "newHeads never arrived\n{}", d.logs());
        ws.push_head(&header.to_string());
        std::thread::sleep(Duration::from_millis(300));
    }
    d.wait_for("block 11 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 2);
    let polls = node.calls().iter().filter(|c| c.starts_with("eth_blockNumber")).count();
    assert_eq!(polls, 1, "only the start-up poll: {:?}", node.calls());
    assert!(d.terminate().0.success());
}

#[test]
fn native_mode_needs_no_zisk_and_reports_nothing() {
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    env.push(("START_BLOCK", "10".into()));
    env.push(("ZISK_ACTION", "native".into()));
    env.push(("CARGO_ZISK", "/nonexistent/cargo-zisk".into()));
    env.push(("ELF_PATH", "/nonexistent/guest.elf".into()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("both blocks re-executed", Duration::from_secs(60), |h| prover(h)["executed_count"] == 2);
    assert_eq!(prover(&h)["proved_count"], 0, "a re-execution is not a proof");
    assert_eq!(prover(&h)["action"], "native");
    d.wait_idle(Duration::from_secs(30));
    assert!(api.received().is_empty(), "native mode must not report: {:?}", api.received());
    assert!(d.terminate().0.success());
}

#[test]
fn run_dev_proves_dev_chain_blocks_with_no_configuration() {
    let env = [("DEV_BLOCK_TIME", "1".into()), ("LOG_FORMAT", "json".into())];
    let mut d = Daemon::start_with_args(&["run", "--dev"], &env);
    let h = d.wait_for("two dev blocks executed natively", Duration::from_secs(90), |h| {
        prover(h)["executed_count"].as_u64().unwrap_or(0) >= 2
    });
    assert_eq!(prover(&h)["action"], "native");
    assert_eq!(h["components"]["input_generator"]["missed_count"], 0, "{h:#}");
    let proved: Vec<u64> =
        prover(&h)["recent_executed"].as_array().unwrap().iter().map(|p| p["block"].as_u64().unwrap()).collect();
    assert!(proved.iter().all(|b| b % 5 == 0), "targets are every 5th block: {proved:?}");
    let page = d.get_text("/").unwrap();
    assert!(page.contains("<title>ethproofs-daemon</title>"));
    assert!(d.terminate().0.success());
    // LOG_FORMAT=json: every line is JSON, the dev chain's announcement first among them.
    let logs = d.logs();
    for line in logs.lines().filter(|l| !l.trim().is_empty()) {
        assert!(serde_json::from_str::<Value>(line).is_ok(), "not a JSON line: {line}");
    }
    assert!(logs.contains("dev chain serving JSON-RPC"), "{logs}");
    // An unknown figure is left out of the line, never logged as `None`.
    assert!(!logs.contains("None"), "{logs}");
}

#[test]
fn dev_chain_blocks_can_be_written_as_fixtures() {
    let dir = tempfile::tempdir().unwrap();
    let out = daemon().args(["devchain", "--blocks", "2", "--out"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let fixture = dir.path().join("dev-2");
    let expected: Value = serde_json::from_str(&read(&fixture.join("expected.json"))).unwrap();
    let input = dir.path().join("input.bin");
    let line = success_line(&generate(
        &[
            "--block",
            fixture.join("eth_getBlockByNumber.json").to_str().unwrap(),
            "--witness",
            fixture.join("debug_executionWitness.json").to_str().unwrap(),
            "--chain",
            fixture.join("chain.json").to_str().unwrap(),
            "--framing",
            "framed",
        ],
        &input,
    ));
    assert_eq!(line["input_sha256"], expected["input_framed_sha256"]);
    assert_eq!(line["validation"], "ok");
    assert_eq!(line["tx_count"], 3);
}

/// A proof in `cargo-zisk prove`'s saved layout, every field well formed (a compressed
/// Poseidon2 proof of program `vk` committing `outputs`), whose STARK is made up: what a prover
/// that lies, or a corrupted file, looks like to the verifier.
fn forged_proof(vk: [u64; 4], outputs: &[u32; 64]) -> Vec<u8> {
    let hash = "Poseidon2";
    let stark_words = zisk_verifier::proof_size(hash, true).unwrap().max_bytes() / 8;
    let mut words: Vec<u64> = vec![1, 68];
    words.extend(vk);
    words.extend(outputs.iter().map(|w| u64::from(*w)));
    words.extend((0..stark_words as u64).map(|i| i.wrapping_mul(0x9E37_79B9) % 0xFFFF_FFFF_0000_0001));
    words.extend(zisk_verifier::vadcop_vk(hash, true).unwrap());
    words.push(zisk_verifier::hash_tag(hash).unwrap());
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

#[test]
fn a_proof_that_does_not_verify_or_is_of_another_block_is_kept_failed_alerted_and_never_reported() {
    use ethproofs_daemon::block::commitment::{OutputLayout, words_for};
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let slack = support::fake_slack::FakeSlack::start();
    let dir = tempfile::tempdir().unwrap();
    let vk = [11, 22, 33, 44];
    // Block 10's proof commits to block 10 (its STARK is what fails); block 11's "proof" is a
    // proof of block 10 too: valid or not, it is not block 11's.
    let block_10 = words_for(OutputLayout::Encoded, &support::daemon::mini_outputs(10));
    let proofs = dir.path().join("proofs");
    std::fs::create_dir_all(&proofs).unwrap();
    std::fs::write(proofs.join("10.bin"), forged_proof(vk, &block_10)).unwrap();
    std::fs::write(proofs.join("11.bin"), forged_proof(vk, &block_10)).unwrap();
    let program_vk: String = vk.iter().flat_map(|w| w.to_le_bytes()).map(|b| format!("{b:02x}")).collect();
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "START_BLOCK", "10");
    env.retain(|(k, _)| *k != "VERIFY_PROOFS"); // the default in prove mode with ZisK 1.x: on
    env.push(("PROGRAM_VK", program_vk));
    env.push(("GUEST_OUTPUT", "encoded".into()));
    env.push(("SLACK_WEBHOOK", slack.url.clone()));
    env.push(("FAKE_ZISK_PROOF_DIR", proofs.display().to_string()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("blocks 10 and 11 failed", Duration::from_secs(90), |h| prover(h)["failed_count"] == 2);
    let failed: Vec<&Value> = prover(&h)["recent_failed"].as_array().unwrap().iter().collect();
    let of = |n: u64| failed.iter().find(|f| f["block"] == n).unwrap_or_else(|| panic!("{h:#}"));
    assert_eq!(of(10)["stage"], "verify", "{h:#}");
    assert!(of(10)["reason"].as_str().unwrap().contains("STARK verification failed"), "{}", of(10));
    assert_eq!(of(11)["stage"], "verify", "{h:#}");
    let block_hash = |n: u64| format!("0x{}", hex::encode(support::daemon::mini_outputs(n).block_hash));
    let story = d.get("/api/blocks/11").unwrap().1;
    let reason = story["reason"].as_str().unwrap_or_default().to_string();
    assert!(
        reason.contains(&format!(
            "the proof commits to block hash {}, the block's is {}",
            block_hash(10),
            block_hash(11)
        )),
        "the reason names the field and both values: {reason}"
    );
    assert!(
        d.output().join("10/proof.bin").is_file() && d.output().join("11/proof.bin").is_file(),
        "rejected proofs are kept"
    );
    // One alert while the trouble lasts: it names whichever block failed first (both build and
    // prove side by side, in either order).
    d.wait_for("the rejection on Slack", Duration::from_secs(30), |_| slack.count("(verify)") == 1);
    let rejection = slack.messages().into_iter().find(|m| m.contains("(verify)")).unwrap();
    assert!(
        rejection.contains("Proof failed: block 10 (verify)") || rejection.contains("Proof failed: block 11 (verify)"),
        "{rejection}"
    );
    let metrics = d.get_text("/metrics").unwrap();
    assert!(metrics.lines().any(|l| l == "ethproofs_proofs_rejected_total 2"), "{metrics}");
    assert!(api.accepted().iter().all(|(e, _)| e != "proved"), "nothing proved was reported: {:?}", api.accepted());
    assert!(d.logs().contains("proof rejected by the verifier"));
    let health = d.health();
    assert_eq!(health["verify"]["key_from"], "PROGRAM_VK", "{:#}", health["verify"]);
    assert_eq!(health["verify"]["output_layout"], "encoded");
    assert!(d.terminate().0.success());
}

#[test]
fn reporting_without_a_program_key_or_a_known_output_layout_stops_at_start_naming_the_variable() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    for (extra, variable) in [
        (vec![("GUEST_OUTPUT", "encoded")], "PROGRAM_VK"),
        (vec![("PROGRAM_VK", "ab")], "PROGRAM_VK"),
        (vec![("PROGRAM_VK", "abababababababababababababababababababababababababababababababab")], "GUEST_OUTPUT"),
        (vec![("GUEST_OUTPUT", "raw")], "GUEST_OUTPUT"),
    ] {
        let mut env = base_env(&node, Some(&api));
        env.retain(|(k, _)| *k != "VERIFY_PROOFS");
        env.push(("HOME", "/nonexistent".into()));
        for (k, v) in &extra {
            env.push((k, v.to_string()));
        }
        let mut d = Daemon::start(&env);
        let status = d.wait_exit(Duration::from_secs(30));
        assert_eq!(status.code(), Some(2), "{extra:?}: {}", d.logs());
        assert!(d.logs().contains(variable), "{extra:?} names {variable}: {}", d.logs());
    }
    // The operator's explicit off: proofs go out unchecked, and /health says so.
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "VERIFY_PROOFS", "off");
    env.push(("HOME", "/nonexistent".into()));
    let mut d = Daemon::start(&env);
    let health = d.wait_for("/health", Duration::from_secs(30), |h| h["verify"].is_object());
    assert_eq!(
        (health["verify"]["enabled"].as_bool(), health["verify"]["unchecked"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(d.logs().contains("proofs are not verified"), "{}", d.logs());
    assert!(d.terminate().0.success());
}

#[test]
fn verify_proofs_on_with_a_zisk_0x_prover_stops_at_start_naming_the_variable() {
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    set(&mut env, "VERIFY_PROOFS", "on");
    env.push(("FAKE_ZISK_VERSION", "0.16.0".into()));
    let mut d = Daemon::start(&env);
    let status = d.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2));
    let logs = d.logs();
    assert!(logs.contains("VERIFY_PROOFS") && logs.contains("ZisK 0.x"), "{logs}");
}
