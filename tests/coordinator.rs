#![recursion_limit = "256"]
//! The coordinator backend (`PROVER_BACKEND=coordinator`), driven through the real binary
//! against the fake node, the fake EthProofs API and a fake ZisK coordinator that speaks the
//! 1.x gRPC contract.

mod support;

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use support::daemon::{Daemon, KEY, base_env, mini_node, prover, set};
use support::fake_api::FakeApi;
use support::fake_coordinator::{FailKind, FakeCoordinator};
use support::fake_node::FakeNode;

const TOKEN: &str = "admin-token-SECRET";

fn env_in(
    dir: &Path,
    node: &FakeNode,
    api: Option<&FakeApi>,
    coordinator: &FakeCoordinator,
) -> Vec<(&'static str, String)> {
    let mut env = base_env(node, api);
    env.push(("OUTPUT_DIR", dir.join("output").display().to_string()));
    env.push(("PROVER_BACKEND", "coordinator".into()));
    env.push(("ZISK_COORDINATOR_URL", coordinator.url.clone()));
    // cargo-zisk is not needed with the coordinator: a path that does not exist proves it.
    env.push(("CARGO_ZISK", "/nonexistent/cargo-zisk".into()));
    env.push(("REPORT_MAX_BACKOFF_SECONDS", "1".into()));
    env.push(("ADMIN_TOKEN", TOKEN.into()));
    env
}

fn cli(d: &Daemon, args: &[&str]) -> Output {
    let mut cmd = support::daemon();
    cmd.args(args).arg("--url").arg(format!("http://127.0.0.1:{}", d.admin_port)).env("ADMIN_TOKEN", TOKEN);
    cmd.output().unwrap()
}

fn accepted(api: &FakeApi, endpoint: &str, block: u64) -> usize {
    api.accepted().iter().filter(|(e, b)| e == endpoint && *b == block).count()
}

/// The ledger's row for `block`, through the admin API.
fn row(d: &Daemon, block: u64) -> Value {
    let (_, blocks) = d.admin_get("/admin/blocks?limit=100", TOKEN).unwrap_or_default();
    blocks["blocks"].as_array().and_then(|b| b.iter().find(|r| r["block"] == block).cloned()).unwrap_or(Value::Null)
}

/// Every component confirmed its stop within its own bound: nothing waited on the coordinator.
fn stopped_in_time(d: &Daemon) {
    let logs = d.logs();
    assert!(
        !logs.contains("did not record its end in time") && !logs.contains("shutdown did not complete in time"),
        "a component outlived its stop bound\n{logs}"
    );
}

fn outcome(d: &Daemon, block: u64) -> String {
    row(d, block)["outcome"].as_str().unwrap_or("").to_string()
}

#[test]
fn blocks_are_proved_through_the_coordinator_and_reported_with_its_proof() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    // A believable proving time (the daemon does not believe one under a second).
    coordinator.set_prove_time(Duration::from_millis(1500));
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.wait_for("blocks 10 and 11 reported", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1 && accepted(&api, "proved", 11) == 1
    });

    // The run's block span carries into the backend: the set-up, done by a block's run, names it.
    let logs = d.logs();
    let registered = logs.lines().find(|l| l.contains("guest program registered")).unwrap_or_else(|| panic!("{logs}"));
    assert!(registered.contains("block{block=1"), "the line names no block: {registered}");
    // Once the run has its attempt and its job, every line names them too.
    let submitted = logs.lines().find(|l| l.contains("coordinator job submitted")).unwrap_or_else(|| panic!("{logs}"));
    assert!(submitted.contains("attempt=1") && submitted.contains("job=\""), "{submitted}");

    // The ELF was registered and set up once; one prove job per block, with its input inline,
    // its block in the metadata and a deadline PROVER_TIMEOUT_SECONDS (7200) away.
    assert_eq!((coordinator.registers(), coordinator.setups()), (1, 1));
    // Inputs build side by side: either block's job may come first.
    let mut jobs = coordinator.prove_jobs();
    jobs.sort_by_key(|j| j.block);
    assert_eq!(jobs.iter().map(|j| j.block).collect::<Vec<_>>(), vec![Some(10), Some(11)]);
    let input = std::fs::read(dir.path().join("output/10/input.bin")).unwrap();
    assert_eq!(jobs[0].input_bytes, input.len(), "the framed input file, whole");
    assert_eq!(jobs[0].metadata["attempt"], "1");
    let ahead = jobs[0].deadline.unwrap().duration_since(std::time::SystemTime::now()).unwrap();
    assert!(ahead > Duration::from_secs(7000) && ahead <= Duration::from_secs(7200), "{ahead:?}");

    // What EthProofs got is the coordinator's proof.data, its steps and its own proving time.
    let proved =
        api.received().into_iter().find(|r| r.path.ends_with("/proved") && r.body["block_number"] == 10).unwrap();
    let proof = base64::engine::general_purpose::STANDARD.decode(proved.body["proof"].as_str().unwrap()).unwrap();
    assert_eq!(proof, FakeCoordinator::proof_of(10));
    assert_eq!(proved.body["proving_cycles"], 123_456_789);
    assert_eq!(proved.body["proving_time"], 1500, "the job's completed_at - started_at");
    assert_eq!(std::fs::read(dir.path().join("output/10/proof.bin")).unwrap(), FakeCoordinator::proof_of(10));

    // The status shows the backend and the program; the ledger keeps each block's job id.
    let h = d.admin_get("/admin/status", TOKEN).unwrap().1;
    assert_eq!(prover(&h)["backend"], "coordinator");
    let hash_id = prover(&h)["coordinator"]["hash_id"].as_str().unwrap().to_string();
    assert_eq!(prover(&h)["coordinator"]["set_up"], true);
    assert_eq!(row(&d, 10)["job_id"].as_str(), Some(jobs[0].id.as_str()));
    // The block's page: its job, the phases' calls, every EthProofs call answered.
    let (code, story) = d.get("/api/blocks/10").unwrap();
    assert_eq!(code, 200);
    assert_eq!(story["job_id"].as_str(), Some(jobs[0].id.as_str()));
    let events: Vec<&str> = story["timeline"].as_array().unwrap().iter().filter_map(|e| e["what"].as_str()).collect();
    for expected in ["target seen", "input built", "proving started", "proof accepted", "EthProofs accepted `proved`"] {
        assert!(events.contains(&expected), "{expected:?} missing from {events:?}");
    }
    assert!(story["where_the_time_went"].as_array().is_some_and(|s| !s.is_empty()));
    assert_eq!(d.get("/api/blocks/12345").unwrap().0, 404);
    let metrics = d.get_text("/metrics").unwrap();
    assert!(metrics.contains(&format!("elf_hash_id=\"{hash_id}\"")), "build_info names the program");
    assert!(metrics.contains("ethproofs_job_phase_seconds_count{phase=\"recurse\"}"), "phase durations are measured");
    assert!(d.terminate().0.success());

    // A restart does not register or set the program up again: the ledger remembers it.
    node.set_head(11);
    let mut d = Daemon::start(&env);
    d.wait_for("running again", Duration::from_secs(30), |h| prover(h)["state"] == "idle");
    d.wait_idle(Duration::from_secs(60));
    assert_eq!((coordinator.registers(), coordinator.setups()), (1, 1));
    assert!(d.terminate().0.success());
}

#[test]
fn a_paused_daemon_still_reattaches_to_the_job_it_paid_for() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(4));
    let env = env_in(dir.path(), &node, Some(&api), &coordinator);
    let mut d = Daemon::start(&env);
    d.wait_for("the job in its prove phase", Duration::from_secs(60), |h| prover(h)["phase"] == "prove");
    assert!(cli(&d, &["pause"]).status.success());
    d.kill9();
    // The pause outlives the daemon; following the job already running is not new work.
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 reported while paused", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(d.health()["paused"], true);
    assert_eq!(coordinator.prove_jobs_for(10), 1, "one job for the block");
    assert!(d.terminate().0.success());
}

#[test]
fn a_coordinator_proof_that_cannot_be_written_yet_is_kept_until_it_can() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(3));
    let env = env_in(dir.path(), &node, Some(&api), &coordinator);
    let mut d = Daemon::start(&env);
    d.wait_for("the job in its prove phase", Duration::from_secs(60), |h| prover(h)["phase"] == "prove");
    // Where the proof is written first is taken (as a full or failing disk would refuse it).
    let blocker = dir.path().join("output/10/proof.partial");
    std::fs::create_dir_all(blocker.join("x")).unwrap();
    d.until("the write refused", Duration::from_secs(30), |d| {
        d.logs().contains("cannot write the coordinator's proof")
    });
    assert_eq!(accepted(&api, "proved", 10), 0);
    std::fs::remove_dir_all(&blocker).unwrap();
    d.wait_for("block 10 reported once the disk takes it", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1
    });
    assert_eq!(coordinator.prove_jobs_for(10), 1, "the cluster's proof was kept, not made again");
    assert_eq!(row(&d, 10)["attempts"], 1);
    assert!(d.terminate().0.success());
}

#[test]
fn a_daemon_killed_mid_job_reattaches_to_it_and_proves_the_block_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(6));
    let env = env_in(dir.path(), &node, Some(&api), &coordinator);
    let mut d = Daemon::start(&env);
    d.wait_for("the job in its prove phase", Duration::from_secs(60), |h| prover(h)["phase"] == "prove");
    d.kill9();
    assert!(coordinator.running(10), "the job outlives the daemon");

    let mut d = Daemon::start(&env);
    let h = d.wait_for("re-attached", Duration::from_secs(30), |h| prover(h)["job_id"].is_string());
    assert_eq!(prover(&h)["proving_block"], 10);
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(coordinator.prove_jobs_for(10), 1, "one job for the block");
    assert!(coordinator.cancels().is_empty());
    assert_eq!(row(&d, 10)["attempts"], 1, "re-attaching is not another attempt");
    assert!(d.logs().contains("re-attaching"), "{}", d.logs());

    // A graceful stop mid-job leaves the job running too (CANCEL_ON_SHUTDOWN=false).
    node.set_head(11);
    d.wait_for("block 11 proving", Duration::from_secs(60), |h| prover(h)["phase"] == "prove");
    let (status, _) = d.terminate();
    assert!(status.success());
    stopped_in_time(&d);
    assert!(coordinator.running(11) && coordinator.cancels().is_empty());
    let mut d = Daemon::start(&env);
    d.wait_for("block 11 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 11) == 1);
    assert_eq!(coordinator.prove_jobs_for(11), 1);
    assert_eq!(accepted(&api, "proved", 10), 1, "reported once");
    assert!(d.terminate().0.success());
}

#[test]
fn two_jobs_in_flight_are_both_reattached_after_a_kill_9_and_each_block_is_proved_once() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(6));
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    env.push(("MAX_JOBS_IN_FLIGHT", "2".into()));
    let runs = |h: &Value, all: fn(&Value) -> bool| {
        prover(h)["in_flight"].as_array().is_some_and(|r| r.len() == 2 && r.iter().all(all))
    };
    let mut d = Daemon::start(&env);
    d.wait_for("both jobs proving", Duration::from_secs(60), |h| runs(h, |r| r["phase"] == "prove"));
    d.kill9();
    assert!(coordinator.running(10) && coordinator.running(11), "both jobs outlive the daemon");

    let mut d = Daemon::start(&env);
    d.wait_for("both followed again", Duration::from_secs(30), |h| runs(h, |r| r["job_id"].is_string()));
    d.wait_for("both reported", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1 && accepted(&api, "proved", 11) == 1
    });
    d.wait_idle(Duration::from_secs(30));
    for block in [10, 11] {
        assert_eq!(coordinator.prove_jobs_for(block), 1, "one job for block {block}");
        assert_eq!(row(&d, block)["attempts"], 1, "re-attaching is not another attempt (block {block})");
        assert_eq!(accepted(&api, "proved", block), 1, "block {block} reported once");
    }
    assert!(coordinator.cancels().is_empty());
    assert!(d.terminate().0.success());
}

#[test]
fn each_job_failure_lands_on_its_stage_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_millis(900));
    let env = env_in(dir.path(), &node, None, &coordinator);
    let mut d = Daemon::start(&env);
    let cases = [
        (FailKind::Input("input is not framed for ZisK 0.16+".into()), "input", "not framed"),
        (FailKind::Execution("guest panicked: state root mismatch".into()), "execution", "state root mismatch"),
        (FailKind::Internal("trace-4711".into()), "coordinator", "trace id trace-4711"),
        (FailKind::Timeout, "timeout", "600s ran out in the recurse phase"),
        (FailKind::Cancelled, "cancelled", "not by this daemon"),
    ];
    for (i, (kind, stage, words)) in cases.into_iter().enumerate() {
        coordinator.fail_next(kind);
        if i > 0 {
            let out = cli(&d, &["prove", "10"]);
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        let what = format!("block 10 failed at {stage}");
        d.until(&what, Duration::from_secs(60), |d| outcome(d, 10) == "failed" && row(d, 10)["stage"] == stage);
        let reason = row(&d, 10)["reason"].as_str().unwrap_or("").to_string();
        assert!(reason.contains(words), "{stage}: {reason}");
    }
    assert_eq!(coordinator.prove_jobs_for(10), 5);
    assert!(d.terminate().0.success());
}

#[test]
fn a_job_past_its_timeout_is_cancelled_and_the_operator_can_cancel_one() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(120));
    let mut env = env_in(dir.path(), &node, None, &coordinator);
    set(&mut env, "PROVER_TIMEOUT_SECONDS", "2");
    set(&mut env, "PROVER_STUCK_THRESHOLD_SECONDS", "1");
    let mut d = Daemon::start(&env);
    d.until("block 10 failed by its timeout", Duration::from_secs(60), |d| outcome(d, 10) == "failed");
    assert_eq!(row(&d, 10)["stage"], "timeout");
    let jobs = coordinator.prove_jobs();
    assert_eq!(coordinator.cancels(), vec![jobs[0].id.clone()], "the job was cancelled on the coordinator");
    assert!(d.terminate().0.success());

    // The operator's cancel: `cancel 10` ends the running job, and the block is failed as cancelled.
    set(&mut env, "PROVER_TIMEOUT_SECONDS", "600");
    set(&mut env, "PROVER_STUCK_THRESHOLD_SECONDS", "600");
    let mut d = Daemon::start(&env);
    d.wait_for("the daemon up", Duration::from_secs(30), |h| prover(h)["state"] == "idle");
    let out = cli(&d, &["prove", "10"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.wait_for("block 10 proving again", Duration::from_secs(60), |h| prover(h)["phase"].is_string());
    let out = cli(&d, &["cancel", "10"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.until("block 10 cancelled", Duration::from_secs(30), |d| outcome(d, 10) == "failed");
    assert_eq!(row(&d, 10)["stage"], "cancelled");
    assert_eq!(row(&d, 10)["reason"], "cancelled by the operator");
    assert_eq!(coordinator.cancels().len(), 2);
    let out = cli(&d, &["cancel", "10"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && text.contains("not being proved"), "{text}");
    assert!(d.terminate().0.success());
}

#[test]
fn a_coordinator_that_is_down_or_full_delays_the_block_and_never_fails_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut coordinator = FakeCoordinator::start_down();
    let env = env_in(dir.path(), &node, Some(&api), &coordinator);
    let mut d = Daemon::start(&env);
    let h = d.wait_for("the coordinator's trouble shown", Duration::from_secs(60), |h| {
        prover(h)["coordinator"]["unreachable_seconds"].as_u64().is_some_and(|s| s >= 3)
    });
    assert_eq!(prover(&h)["coordinator"]["reachable"], false);
    assert_eq!(outcome(&d, 10), "proving", "waiting, not failed");
    // A stop while waiting for the coordinator is prompt, and the block waits in the queue.
    let (status, _) = d.terminate();
    assert!(status.success());
    stopped_in_time(&d);
    let mut d = Daemon::start(&env);
    d.wait_for("waiting again", Duration::from_secs(60), |h| prover(h)["coordinator"]["error"].is_string());
    assert_eq!(row(&d, 10)["stage"], Value::Null, "not failed by the stop");

    // Up, but without free capacity: still waiting.
    coordinator.set_no_capacity(true);
    coordinator.up();
    d.wait_for("no capacity shown", Duration::from_secs(60), |h| {
        prover(h)["coordinator"]["error"].as_str().is_some_and(|e| e.contains("no free capacity"))
    });
    assert_eq!(outcome(&d, 10), "proving");
    coordinator.set_no_capacity(false);
    d.wait_for("block 10 reported", Duration::from_secs(90), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(coordinator.prove_jobs_for(10), 1, "one job: none was submitted while it was down or full");
    // One attempt before the stop and one after it; neither failed for the cluster's trouble.
    assert_eq!(row(&d, 10)["attempts"], 2);
    assert!(d.terminate().0.success());
}

#[test]
fn coordinator_restarts_and_broken_streams_are_ridden_out() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(4));
    coordinator.break_streams_after(Some(1));
    let env = env_in(dir.path(), &node, Some(&api), &coordinator);
    let mut d = Daemon::start(&env);

    // A restart that keeps its jobs: the daemon follows the same job to its end.
    d.wait_for("block 10's job running", Duration::from_secs(60), |_| coordinator.running(10));
    coordinator.restart(false);
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(coordinator.prove_jobs_for(10), 1);

    // A restart that forgets everything: the job is proved again (an attempt), and the
    // program is registered and set up again first.
    node.set_head(11);
    d.wait_for("block 11's job running", Duration::from_secs(60), |_| coordinator.running(11));
    coordinator.restart(true);
    d.wait_for("block 11 reported", Duration::from_secs(90), |_| accepted(&api, "proved", 11) == 1);
    assert_eq!(coordinator.prove_jobs_for(11), 2);
    assert_eq!(row(&d, 11)["attempts"], 2);
    assert_eq!((coordinator.registers(), coordinator.setups()), (2, 2));
    assert!(d.terminate().0.success());
}

#[test]
fn the_guest_checks_the_input_before_any_proof_with_input_check_emulate() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.reject_execute(11, "guest: invalid block: gas used mismatch");
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "INPUT_CHECK", "emulate");
    set(&mut env, "START_BLOCK", "10");
    // Big inputs go in chunks after the job is accepted (a proxy with a small message limit).
    set(&mut env, "COORDINATOR_INLINE_LIMIT_BYTES", "1024");
    let mut d = Daemon::start(&env);
    d.until("block 10 reported, block 11 failed", Duration::from_secs(60), |d| {
        accepted(&api, "proved", 10) == 1 && outcome(d, 11) == "failed"
    });
    assert_eq!(row(&d, 11)["stage"], "input_check");
    let reason = row(&d, 11)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("gas used mismatch"), "the guest's own words: {reason}");
    assert_eq!(coordinator.prove_jobs_for(11), 0, "no proof is attempted for a rejected input");
    assert_eq!(coordinator.execute_jobs().len(), 2);
    assert!(coordinator.pushes() > 0, "the input past the inline limit was pushed");
    assert_eq!(coordinator.prove_jobs()[0].input_bytes, 1024);
    assert!(d.terminate().0.success());
}

#[test]
fn the_guest_s_outputs_on_the_input_check_are_held_to_the_block_before_any_gpu_time() {
    use ethproofs_daemon::block::commitment::{OutputLayout, words_for};
    let bytes = |n: u64| -> Vec<u8> {
        words_for(OutputLayout::Encoded, &support::daemon::mini_outputs(n))
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    };
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    // The guest ran block 10's input as block 10; block 11's input came out as block 10 (an
    // ELF and input that do not belong together).
    coordinator.execute_outputs(10, bytes(10));
    coordinator.execute_outputs(11, bytes(10));
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "INPUT_CHECK", "emulate");
    set(&mut env, "START_BLOCK", "10");
    env.push(("GUEST_OUTPUT", "encoded".into()));
    let mut d = Daemon::start(&env);
    d.until("block 10 reported, block 11 failed", Duration::from_secs(60), |d| {
        accepted(&api, "proved", 10) == 1 && outcome(d, 11) == "failed"
    });
    assert_eq!(row(&d, 11)["stage"], "input_check");
    let reason = row(&d, 11)["reason"].as_str().unwrap().to_string();
    let hash = |n: u64| format!("0x{}", hex::encode(support::daemon::mini_outputs(n).block_hash));
    assert!(reason.contains(&format!("block hash {}, the block's is {}", hash(10), hash(11))), "{reason}");
    assert_eq!(coordinator.prove_jobs_for(11), 0, "no GPU time for an input whose outputs are another block's");
    assert!(d.terminate().0.success());
}

#[test]
fn cancel_on_shutdown_cancels_the_job_and_the_block_is_proved_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(3));
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "CANCEL_ON_SHUTDOWN", "true");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10's job running", Duration::from_secs(60), |h| prover(h)["phase"].is_string());
    let (status, _) = d.terminate();
    assert!(status.success());
    stopped_in_time(&d);
    assert_eq!(coordinator.cancels(), vec![coordinator.prove_jobs()[0].id.clone()]);
    assert!(!coordinator.running(10));

    let mut d = Daemon::start(&env);
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert_eq!(coordinator.prove_jobs_for(10), 2, "a new job after the cancelled one");
    assert!(d.terminate().0.success());
}

#[test]
fn doctor_checks_the_coordinator_and_the_program() {
    let node = mini_node(10);
    let coordinator = FakeCoordinator::start();
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("guest.elf");
    std::fs::write(&elf, support::synthetic_elf::riscv_elf(b"fake guest")).unwrap();
    let run = |url: &str| {
        let mut cmd = support::daemon();
        cmd.arg("doctor").env_clear().env("PATH", std::env::var("PATH").unwrap());
        for (k, v) in base_env(&node, None) {
            cmd.env(k, v);
        }
        cmd.env("ELF_PATH", &elf)
            .env("OUTPUT_DIR", dir.path().join("out"))
            .env("PROVER_BACKEND", "coordinator")
            .env("ZISK_COORDINATOR_URL", url)
            .env("MIN_FREE_DISK_MB", "1");
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (ok, text) = run(&coordinator.url);
    assert!(ok, "{text}");
    assert!(text.contains("ok   coordinator") && text.contains("SERVING"), "{text}");
    assert!(text.contains("ok   program") && text.contains("ELF registered as "), "{text}");
    assert!(text.contains("skip cargo-zisk"), "cargo-zisk is not needed: {text}");

    let down = FakeCoordinator::start_down();
    let (ok, text) = run(&down.url);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL coordinator") && text.contains("unreachable"), "{text}");
}

#[test]
fn a_job_left_waiting_for_input_by_a_killed_daemon_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.stall_pushes(true);
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "COORDINATOR_INLINE_LIMIT_BYTES", "1024");
    let mut d = Daemon::start(&env);
    d.wait_for("the job recorded, its input half sent", Duration::from_secs(60), |h| prover(h)["job_id"].is_string());
    d.kill9();
    coordinator.stall_pushes(false);
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let jobs = coordinator.prove_jobs();
    assert_eq!(jobs.len(), 2, "the starved job was replaced");
    assert!(coordinator.cancels().contains(&jobs[0].id), "and cancelled");
    assert_eq!(row(&d, 10)["attempts"], 2);
    assert!(d.terminate().0.success());
}

#[test]
fn an_elf_replaced_after_start_up_is_not_registered_under_the_old_identity() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let mut coordinator = FakeCoordinator::start_down();
    let env = env_in(dir.path(), &node, None, &coordinator);
    let mut d = Daemon::start(&env);
    d.wait_for("waiting for the coordinator", Duration::from_secs(60), |h| {
        prover(h)["coordinator"]["error"].is_string()
    });
    std::fs::write(d.dir.path().join("guest.elf"), support::synthetic_elf::riscv_elf(b"another guest")).unwrap();
    coordinator.up();
    d.until("block 10 failed", Duration::from_secs(60), |d| outcome(d, 10) == "failed");
    let reason = row(&d, 10)["reason"].as_str().unwrap_or("").to_string();
    assert!(reason.contains("changed on disk since start-up"), "{reason}");
    assert_eq!(coordinator.registers(), 0, "the new file was never registered");
    assert!(d.terminate().0.success());
}

/// The input-check and set-up jobs the ledger recorded: `(job id, kind, block)`.
fn recorded_jobs(dir: &Path) -> Vec<(String, String, Option<i64>)> {
    let path = dir.join("output/ethproofs-daemon.db");
    let Ok(conn) = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return vec![];
    };
    let Ok(mut stmt) = conn.prepare("SELECT job_id, kind, block FROM coordinator_jobs") else { return vec![] };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap().map(Result::unwrap).collect()
}

#[test]
fn answers_about_another_job_never_become_the_blocks_proof() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.until("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);

    // From now on every question about a prove job is answered with block 10's job: its events,
    // its completion, its proof.
    let job10 = coordinator.prove_jobs()[0].id.clone();
    coordinator.answer_with(Some(job10.clone()));
    node.set_head(11);
    d.until("block 11 failed", Duration::from_secs(60), |d| outcome(d, 11) == "failed");
    assert_eq!(accepted(&api, "proved", 11), 0, "block 11 is never reported with block 10's proof");
    assert_eq!(row(&d, 11)["stage"], "coordinator_answer");
    let reason = row(&d, 11)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains(&job10) && reason.contains("another job"), "named: {reason}");
    assert!(
        std::fs::read(dir.path().join("output/11/proof.bin")).map_or(true, |p| p != FakeCoordinator::proof_of(10)),
        "block 10's proof is not kept as block 11's"
    );
    // Block 11's own job is not left running on the cluster.
    let job11 = coordinator.prove_jobs().into_iter().find(|j| j.block == Some(11)).unwrap().id;
    assert!(coordinator.cancels().contains(&job11), "{:?}", coordinator.cancels());
    assert!(d.terminate().0.success());
}

#[test]
fn a_proof_of_another_program_is_never_the_blocks_proof() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.foreign_hash_ids(true);
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.until("block 10 failed", Duration::from_secs(60), |d| outcome(d, 10) == "failed");
    assert_eq!(accepted(&api, "proved", 10), 0);
    assert_eq!(row(&d, 10)["stage"], "coordinator_answer");
    let reason = row(&d, 10)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("not of the registered program"), "named: {reason}");
    assert!(d.terminate().0.success());
}

#[test]
fn input_check_and_set_up_jobs_are_in_the_ledger_before_they_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "INPUT_CHECK", "emulate");
    set(&mut env, "START_BLOCK", "10");
    // The input goes partly by PushJobInput, which hangs: the check job is accepted, not yet
    // fed nor followed.
    set(&mut env, "COORDINATOR_INLINE_LIMIT_BYTES", "1024");
    coordinator.stall_pushes(true);
    let mut d = Daemon::start(&env);
    d.until("the input check submitted", Duration::from_secs(60), |_| coordinator.execute_jobs().len() == 1);
    let check = coordinator.execute_jobs()[0].id.clone();
    d.until("the input check's id in the ledger", Duration::from_secs(20), |_| {
        recorded_jobs(dir.path())
            .iter()
            .any(|(id, kind, block)| *id == check && kind == "input_check" && *block == Some(10))
    });
    assert_eq!(coordinator.pushes(), 0, "recorded before its input was pushed");
    // The set-up job, which came before it, too.
    let others: Vec<String> = coordinator.job_ids().into_iter().filter(|id| *id != check).collect();
    assert_eq!(others.len(), 1, "one set-up job: {others:?}");
    assert!(
        recorded_jobs(dir.path())
            .iter()
            .any(|(id, kind, block)| *id == others[0] && kind == "setup" && block.is_none())
    );
    coordinator.stall_pushes(false);
    d.until("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert!(d.terminate().0.success());
}

#[test]
fn a_job_accepted_under_an_odd_id_is_cancelled_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.odd_job_ids(true);
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.until("block 10 failed", Duration::from_secs(60), |d| outcome(d, 10) == "failed");
    let odd = coordinator.job_ids();
    assert_eq!(odd.len(), 1, "{odd:?}");
    assert!(coordinator.cancels().contains(&odd[0]), "the job the odd id names is cancelled");
    let reason = row(&d, 10)["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("odd id"), "named: {reason}");
    assert!(!reason.contains('\n') && !d.logs().contains("\nforged log line"), "the odd id forges no line");
    assert_eq!(accepted(&api, "proved", 10), 0);
    assert!(d.terminate().0.success());
}

#[test]
fn a_coordinator_proving_time_of_1_ms_is_not_believed() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_millis(1500));
    coordinator.one_ms_proofs(true);
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.until("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let proved =
        api.received().into_iter().find(|r| r.path.ends_with("/proved") && r.body["block_number"] == 10).unwrap();
    let ms = proved.body["proving_time"].as_u64().unwrap();
    assert!(ms >= 1500, "the daemon's own measure of the 1.5 s job, not the proof's 1 ms: {ms}");
    assert!(d.logs().contains("not believed"), "the log says why");
    assert!(d.terminate().0.success());
}

#[test]
fn a_coordinator_proof_that_does_not_verify_fails_its_block_and_is_never_reported() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_millis(1500));
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    // The default with the coordinator (ZisK 1.x): every proof is verified, for the program key
    // the coordinator's set-up answered.
    env.retain(|(k, _)| *k != "VERIFY_PROOFS");
    env.push(("GUEST_OUTPUT", "encoded".into()));
    let mut d = Daemon::start(&env);
    d.until("block 10 failed at verify", Duration::from_secs(60), |d| outcome(d, 10) == "failed");
    let health = d.health();
    assert_eq!(health["verify"]["key_from"], "the coordinator's set-up job", "{:#}", health["verify"]);
    let r = row(&d, 10);
    assert_eq!(r["stage"], "verify", "{r}");
    assert!(r["reason"].as_str().is_some_and(|s| s.contains("the proof does not verify")), "{r}");
    assert_eq!(std::fs::read(dir.path().join("output/10/proof.bin")).unwrap(), FakeCoordinator::proof_of(10), "kept");
    assert_eq!(accepted(&api, "proved", 10), 0, "never reported");
    assert!(d.terminate().0.success());
}

/// The submission the ledger holds in doubt for `block`, if any: `(submission, until_ms)`.
fn in_doubt(dir: &Path, block: i64) -> Option<(String, i64)> {
    let path = dir.join("output/ethproofs-daemon.db");
    let conn = rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
    conn.query_row(
        "SELECT job_submission, job_in_doubt_until FROM blocks WHERE number = ?1 AND job_submission IS NOT NULL",
        [block],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .ok()
}

#[test]
fn a_job_whose_answer_was_lost_is_waited_out_across_a_restart_and_never_runs_beside_another() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut coordinator = FakeCoordinator::start();
    coordinator.honour_deadlines(true);
    // The lost job would run far past its deadline: only the deadline ends it.
    coordinator.set_prove_time(Duration::from_secs(300));
    coordinator.lose_next_prove_answer();
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "PROVER_TIMEOUT_SECONDS", "6");
    set(&mut env, "PROVER_STUCK_THRESHOLD_SECONDS", "6");
    let mut d = Daemon::start(&env);
    d.until("the first job accepted", Duration::from_secs(60), |_| coordinator.prove_jobs_for(10) == 1);
    coordinator.set_prove_time(Duration::from_secs(1));
    // The answer is lost on the way: the connection is cut before it is sent.
    coordinator.down();
    coordinator.up();
    d.until("the submission recorded in doubt", Duration::from_secs(30), |_| in_doubt(dir.path(), 10).is_some());
    let (submission, until_ms) = in_doubt(dir.path(), 10).unwrap();
    let first = coordinator.prove_jobs()[0].clone();
    assert_eq!(first.metadata["submission"], submission, "the job is found by its metadata");
    assert_eq!(first.metadata["block"], "10");
    // A crash while it is waited out: the next start waits for the same deadline.
    d.kill9();
    let mut d = Daemon::start(&env);
    d.until("block 10 reported", Duration::from_secs(90), |_| accepted(&api, "proved", 10) == 1);
    let jobs = coordinator.prove_jobs_for(10);
    assert_eq!(jobs, 2, "the lost job, then one more");
    let second = coordinator.prove_jobs()[1].clone();
    let first_ended = first.deadline.expect("the job carried its deadline");
    assert!(second.at >= first_ended, "the block was submitted again while the lost job could still run");
    assert!(
        second.at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64 >= until_ms,
        "the recorded deadline was waited out"
    );
    assert_ne!(second.metadata["submission"], submission, "each submission has its own identity");
    assert_eq!(in_doubt(dir.path(), 10), None, "settled once a job was recorded");
    assert!(d.terminate().0.success());
}

#[test]
fn several_jobs_run_at_once_and_a_full_cluster_is_waited_for_never_a_failure() {
    let in_flight = |h: &Value| prover(h)["in_flight"].as_array().cloned().unwrap_or_default();
    // Workers enough for two: both blocks' jobs run on the coordinator at once.
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(3));
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    set(&mut env, "MAX_JOBS_IN_FLIGHT", "2");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("two jobs in flight", Duration::from_secs(60), |h| {
        let runs = in_flight(h);
        runs.len() == 2 && runs.iter().all(|r| r["job_id"].is_string())
    });
    assert_eq!(prover(&h)["lanes"], 2, "{h:#}");
    assert!(coordinator.running(10) && coordinator.running(11), "both jobs run on the cluster at once");
    d.wait_for("both reported", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1 && accepted(&api, "proved", 11) == 1
    });
    assert_eq!((coordinator.prove_jobs_for(10), coordinator.prove_jobs_for(11)), (1, 1));
    assert_eq!(coordinator.most_at_once(), 2);
    assert!(d.terminate().0.success());

    // Workers for one: the second job waits its turn. That is our own load, not the cluster's
    // trouble: no coordinator error, no alert, no new set-up, no failed attempt.
    let dir = tempfile::tempdir().unwrap();
    let coordinator = FakeCoordinator::start();
    coordinator.set_prove_time(Duration::from_secs(2));
    coordinator.set_capacity(Some(1));
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, Some(&api), &coordinator);
    set(&mut env, "START_BLOCK", "10");
    set(&mut env, "MAX_JOBS_IN_FLIGHT", "2");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("one job running, one waiting for a worker", Duration::from_secs(60), |h| {
        in_flight(h).len() == 2 && in_flight(h).iter().filter(|r| r["job_id"].is_string()).count() == 1
    });
    assert!(prover(&h)["coordinator"]["error"].is_null(), "waiting for our own job is no trouble: {h:#}");
    d.wait_for("both reported", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1 && accepted(&api, "proved", 11) == 1
    });
    assert_eq!(coordinator.most_at_once(), 1, "never more jobs than the cluster's workers take");
    assert_eq!((coordinator.prove_jobs_for(10), coordinator.prove_jobs_for(11)), (1, 1));
    assert_eq!(coordinator.setups(), 1, "waiting for a worker is not a lost set-up");
    assert_eq!((row(&d, 10)["attempts"].clone(), row(&d, 11)["attempts"].clone()), (1.into(), 1.into()));
    assert!(!d.logs().contains("coordinator unreachable"), "{}", d.logs());
    assert!(d.terminate().0.success());
}
