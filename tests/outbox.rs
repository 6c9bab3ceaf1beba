#![recursion_limit = "256"]
//! Nothing lost: the ledger and the EthProofs outbox, driven through the real binary. The daemon
//! is SIGKILLed mid-proof and mid-report and restarted; the fake API fails in every way the real
//! one does; at the end every target is proved and reported exactly once, or recorded as failed.

mod support;

use std::path::Path;
use std::time::Duration;

use support::daemon::{Daemon, KEY, base_env, mini_node, prover, reporter, set};
use support::fake_api::FakeApi;
use support::fake_slack::FakeSlack;

/// Environment for a daemon whose ledger and outputs live in `dir` (so a restart finds them).
fn env_in(
    dir: &Path,
    node: &support::fake_node::FakeNode,
    api: &FakeApi,
    zisk_log: &Path,
) -> Vec<(&'static str, String)> {
    let mut env = base_env(node, Some(api));
    env.push(("OUTPUT_DIR", dir.join("output").display().to_string()));
    env.push(("FAKE_ZISK_LOG", zisk_log.display().to_string()));
    env.push(("REPORT_MAX_BACKOFF_SECONDS", "1".into()));
    env
}

fn completed_proofs(zisk_log: &Path, block: u64) -> usize {
    std::fs::read_to_string(zisk_log).unwrap_or_default().lines().filter(|l| *l == format!("done {block}")).count()
}

fn accepted(api: &FakeApi, endpoint: &str, block: u64) -> usize {
    api.accepted().iter().filter(|(e, b)| e == endpoint && *b == block).count()
}

#[test]
fn sigkill_while_proving_then_restart_proves_once_and_reports_once() {
    let dir = tempfile::tempdir().unwrap();
    let zisk_log = dir.path().join("zisk.log");
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = env_in(dir.path(), &node, &api, &zisk_log);
    env.push(("FAKE_ZISK_SECONDS", "30".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proving", Duration::from_secs(60), |h| prover(h)["proving_block"] == 10);
    d.kill9();

    env.push(("FAKE_ZISK_SECONDS", "0.1".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(accepted(&api, "proved", 10), 1);
    assert_eq!(accepted(&api, "queued", 10), 1, "queued is not sent again after a restart");
    assert_eq!(completed_proofs(&zisk_log, 10), 1, "the interrupted proof was completed once");
    let h = d.health();
    assert_eq!(prover(&h)["proved_count"], 1);
    assert!(d.terminate().0.success());
}

#[test]
fn sigkill_while_reporting_then_restart_resubmits_the_saved_proof() {
    let dir = tempfile::tempdir().unwrap();
    let zisk_log = dir.path().join("zisk.log");
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    for _ in 0..50 {
        api.script("proved", 500, &[], "Internal server error");
    }
    let env = env_in(dir.path(), &node, &api, &zisk_log);
    let mut d = Daemon::start(&env);
    d.wait_for("proved failing", Duration::from_secs(60), |_| {
        api.received().iter().filter(|r| r.path.ends_with("/proved")).count() >= 2
    });
    d.kill9();
    api.clear_script();

    let mut d = Daemon::start(&env);
    d.wait_for("proved delivered", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(accepted(&api, "proved", 10), 1);
    assert_eq!(completed_proofs(&zisk_log, 10), 1, "the block was not proved again");
    assert_eq!(prover(&d.health())["runs"]["proved"], 0, "this run proved nothing: it only re-sent");
    assert!(d.terminate().0.success());
}

#[test]
fn five_hundreds_are_retried_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    for _ in 0..3 {
        api.script("proved", 500, &[], "Internal server error");
    }
    let mut d = Daemon::start(&env_in(dir.path(), &node, &api, &dir.path().join("z.log")));
    d.wait_for("proved delivered", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let statuses: Vec<u16> = api.received().iter().filter(|r| r.path.ends_with("/proved")).map(|r| r.status).collect();
    assert_eq!(statuses, vec![500, 500, 500, 200]);
    let order: Vec<(String, u64)> = api.accepted();
    assert_eq!(order, vec![("queued".into(), 10), ("proving".into(), 10), ("proved".into(), 10)]);
    assert!(d.terminate().0.success());
}

#[test]
fn a_429_waits_for_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    api.script(
        "proved",
        429,
        &[("Retry-After", "2")],
        r#"{"error":"Rate limit exceeded","message":"Too many requests","retryAfter":2}"#,
    );
    let mut env = env_in(dir.path(), &node, &api, &dir.path().join("z.log"));
    // Retry-After is honoured up to REPORT_MAX_BACKOFF_SECONDS.
    set(&mut env, "REPORT_MAX_BACKOFF_SECONDS", "5");
    let mut d = Daemon::start(&env);
    d.wait_for("proved delivered", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let proved: Vec<_> = api.received().into_iter().filter(|r| r.path.ends_with("/proved")).collect();
    assert_eq!(proved.iter().map(|r| r.status).collect::<Vec<_>>(), vec![429, 200]);
    let waited = proved[1].at.duration_since(proved[0].at);
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}, before Retry-After");
    assert!(d.terminate().0.success());
}

#[test]
fn a_409_on_proved_is_success_and_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    api.script("proved", 409, &[], "Proof already proved");
    let mut d = Daemon::start(&env_in(dir.path(), &node, &api, &dir.path().join("z.log")));
    d.wait_for("three reports settled", Duration::from_secs(60), |h| reporter(h)["delivered_count"] == 3);
    d.wait_idle(Duration::from_secs(30));
    let proved: Vec<u16> = api.received().iter().filter(|r| r.path.ends_with("/proved")).map(|r| r.status).collect();
    assert_eq!(proved, vec![409], "one call, taken as success");
    assert_eq!(reporter(&d.health())["failed"].as_array().unwrap().len(), 0);
    assert!(d.terminate().0.success());
}

#[test]
fn a_401_is_not_retried_and_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let slack = FakeSlack::start();
    for endpoint in ["queued", "proving", "proved"] {
        api.script(endpoint, 401, &[], "Invalid API key");
    }
    let mut env = env_in(dir.path(), &node, &api, &dir.path().join("z.log"));
    env.push(("SLACK_WEBHOOK", slack.url.clone()));
    let mut d = Daemon::start(&env);
    d.wait_for("block proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    d.wait_for("reports settled", Duration::from_secs(30), |h| reporter(h)["queue_length"] == 0);
    d.wait_idle(Duration::from_secs(30));
    let calls: Vec<(String, u16)> =
        api.received().iter().map(|r| (r.path.rsplit('/').next().unwrap().to_string(), r.status)).collect();
    assert_eq!(calls, vec![("queued".to_string(), 401), ("proving".to_string(), 401)], "nothing retried");
    let failed = reporter(&d.health())["failed"].as_array().unwrap().clone();
    assert_eq!(failed.len(), 3, "queued and proving refused, proved never sendable: {failed:?}");
    d.wait_for("the alert reached Slack", Duration::from_secs(10), |_| slack.count("report failed permanently") >= 1);
    assert!(d.terminate().0.success());
    assert!(!d.logs().contains("SLACKSECRET"), "the webhook URL leaked into the logs");
}

#[test]
fn an_api_outage_across_backed_off_retries_ends_with_every_report_delivered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    api.set_down(true);
    let mut env = env_in(dir.path(), &node, &api, &dir.path().join("z.log"));
    env.push(("START_BLOCK", "10".into()));
    env.push(("REPORT_MAX_BACKOFF_SECONDS", "5".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("both blocks proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 2);
    // The outage lasts until every first call has been refused and retried with backoff a few
    // times (the length of an outage is only its number of refused retries to the daemon).
    d.wait_for("calls refused and retried", Duration::from_secs(120), |_| {
        let refused = api.received();
        [10u64, 11].iter().all(|b| refused.iter().filter(|r| r.body["block_number"] == *b).count() >= 3)
    });
    assert!(api.accepted().is_empty());
    api.set_down(false);
    d.wait_for("six reports delivered", Duration::from_secs(60), |h| reporter(h)["delivered_count"] == 6);
    let accepted = api.accepted();
    assert_eq!(accepted.len(), 6, "{accepted:?}");
    for block in [10, 11] {
        let order: Vec<&str> = accepted.iter().filter(|(_, b)| *b == block).map(|(e, _)| e.as_str()).collect();
        assert_eq!(order, vec!["queued", "proving", "proved"], "block {block}");
    }
    assert!(d.terminate().0.success());
}

#[test]
fn a_corrupt_ledger_stops_start_up_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    std::fs::create_dir_all(dir.path().join("output")).unwrap();
    let db = dir.path().join("output/ethproofs-daemon.db");
    std::fs::write(&db, vec![0x5a; 8192]).unwrap();
    let mut env = base_env(&node, None);
    env.push(("OUTPUT_DIR", dir.path().join("output").display().to_string()));
    let mut d = Daemon::start(&env);
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(1));
    let logs = d.logs();
    assert!(logs.contains("ethproofs-daemon.db") && logs.contains("corrupt"), "{logs}");
    assert_eq!(std::fs::read(&db).unwrap(), vec![0x5a; 8192], "the database was not reset");
}

#[test]
fn the_start_up_check_names_a_bad_key_or_an_unknown_cluster() {
    let node = mini_node(10);
    let api = FakeApi::start("another-key");
    let mut d = Daemon::start(&base_env(&node, Some(&api)));
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(1));
    assert!(d.logs().contains("API key was refused"), "{}", d.logs());

    let api = FakeApi::start(KEY);
    api.set_clusters(&[1, 2]);
    let mut d = Daemon::start(&base_env(&node, Some(&api)));
    assert_eq!(d.wait_exit(Duration::from_secs(20)).code(), Some(1));
    assert!(d.logs().contains("cluster id 7 is not one of this key's clusters (it has: 1, 2)"), "{}", d.logs());

    let mut env = base_env(&node, Some(&api));
    env.push(("ETHPROOFS_STRICT_STARTUP", "false".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("running anyway", Duration::from_secs(30), |h| h["status"] == "healthy");
    assert!(d.terminate().0.success());
}

#[test]
fn slack_hears_each_kind_once_per_window_and_when_it_is_resolved() {
    let slack = FakeSlack::start();
    // Four input failures in a row: one message. The node answers another block for each
    // target (a failure, not a "not yet").
    let node = mini_node(1000);
    let (block_10, witness) = support::daemon::mini_block(10);
    for n in [1000, 1100, 1200, 1300] {
        node.add_block(n, &block_10, &witness);
    }
    let mut env = base_env(&node, None);
    set(&mut env, "BLOCK_INTERVAL", "100");
    env.push(("SLACK_WEBHOOK", slack.url.clone()));
    let mut d = Daemon::start(&env);
    d.wait_for("target 1000 missed", Duration::from_secs(30), |h| {
        h["components"]["input_generator"]["missed_count"] == 1
    });
    node.set_head(1350);
    d.wait_for("four targets missed", Duration::from_secs(30), |h| {
        h["components"]["input_generator"]["missed_count"] == 4
    });
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(slack.count("Input failed"), 1, "{:#?}", slack.messages());
    assert_eq!(slack.count("ethproofs-daemon started"), 1, "{:#?}", slack.messages());
    assert!(slack.messages().iter().any(|m| m.contains("ELF sha256")), "{:#?}", slack.messages());
    assert!(d.terminate().0.success());

    // A failed proof, then a proved block: the alert, then its resolution, and the proved notice.
    let slack = FakeSlack::start();
    let node = mini_node(11);
    // Inputs build side by side: block 11's comes later, so its proof follows block 10's failure.
    node.slow_witness(11, Duration::from_secs(2));
    let mut env = base_env(&node, None);
    env.push(("START_BLOCK", "10".into()));
    env.push(("FAKE_ZISK_MODES", "10=fail".into()));
    env.push(("SLACK_WEBHOOK", slack.url.clone()));
    env.push(("SLACK_NOTIFY_PROVED", "true".into()));
    env.push(("DASHBOARD_URL", "https://prover.example.org:4000/".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("resolved", Duration::from_secs(60), |_| slack.count("Resolved: proof failed") == 1);
    let messages = slack.messages();
    let alert = messages.iter().position(|m| m.contains("Proof failed: block 10")).expect("the alert");
    let resolved = messages.iter().position(|m| m.contains("Resolved: proof failed")).unwrap();
    assert!(alert < resolved, "{messages:#?}");
    assert!(messages[alert].contains("https://prover.example.org:4000/blocks/10"), "the alert links the block's page");
    d.wait_for("proved notice", Duration::from_secs(10), |_| {
        slack.count("Block 11 proved") == 1 && slack.count("https://prover.example.org:4000/blocks/11") == 1
    });
    // Reporting is off (and the chain is a dev chain): ethproofs.org never hears of the block.
    assert_eq!(slack.count("ethproofs.org/blocks"), 0, "{:#?}", slack.messages());
    assert!(d.terminate().0.success());
}
