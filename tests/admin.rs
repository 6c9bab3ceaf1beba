#![recursion_limit = "256"]
//! The operator's surface on a running daemon: the admin API and its CLI (token required, and a
//! refused call changes nothing), and `report` over the ledger.

mod support;

use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use support::daemon::{Daemon, KEY, base_env, input_gen, mini_node, set};
use support::fake_api::FakeApi;

const TOKEN: &str = "admin-token-SECRET";

fn cli(d: &Daemon, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = support::daemon();
    cmd.args(args).arg("--url").arg(format!("http://127.0.0.1:{}", d.admin_port)).env_remove("ADMIN_TOKEN");
    if let Some(t) = token {
        cmd.env("ADMIN_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn ok_json(out: &Output) -> Value {
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The node never serves target 1000 (its head says it exists): it waits, asked for again.
fn target_1000_not_served(d: &mut Daemon) {
    d.wait_for("target 1000 waiting for the node", Duration::from_secs(30), |h| {
        input_gen(h)["not_served"][0]["block"] == 1000 && input_gen(h)["missed_count"] == 0
    });
}

#[test]
fn the_admin_api_needs_its_token_and_drives_the_daemon() {
    // Heads just past the targets: the node has a header at its head, and no target block.
    let node = mini_node(1001);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "BLOCK_INTERVAL", "100");
    env.push(("MAX_BACKFILL_BLOCKS", "100".into()));
    env.push(("ADMIN_TOKEN", TOKEN.into()));
    let mut d = Daemon::start(&env);
    target_1000_not_served(&mut d);

    // Refused: nothing changes.
    let out = cli(&d, None, &["pause"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("set ADMIN_TOKEN"));
    let out = cli(&d, Some("wrong"), &["pause"]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("refused the admin token"));
    assert_eq!(d.health()["paused"], false);

    // Paused: a new target is recorded but not built until resumed.
    assert_eq!(ok_json(&cli(&d, Some(TOKEN), &["pause"]))["paused"], true);
    node.set_head(1101);
    d.wait_for("target 1100 waiting", Duration::from_secs(30), |h| {
        input_gen(h)["queued_blocks"] == serde_json::json!([1000, 1100])
    });
    d.wait_for_polls(2, Duration::from_secs(30));
    assert_eq!(input_gen(&d.health())["missed_count"], 0, "nothing moves while paused");
    let h = d.health();
    assert_eq!(input_gen(&h)["state"], "paused");
    // The operator's own pause is said as theirs, and is not ill health.
    assert_eq!((&h["pause"]["by"], &h["status"]), (&"operator".into(), &"healthy".into()), "{h:#}");
    assert!(h["pause"]["reason"].as_str().unwrap().contains("`ethproofs-daemon resume`"), "{h:#}");
    assert_eq!(ok_json(&cli(&d, Some(TOKEN), &["resume"]))["paused"], false);
    assert_eq!(d.health()["pause"], Value::Null, "resumed: no pause left to explain");
    // 1000 is now more than MAX_BACKFILL_BLOCKS behind: missed; 1100 is asked for.
    d.wait_for("target 1000 missed, 1100 attempted", Duration::from_secs(30), |h| {
        input_gen(h)["missed_count"] == 1 && input_gen(h)["not_served"][0]["block"] == 1100
    });

    // A block the ledger cannot hold is refused, never clamped into another block.
    for args in [&["prove", "9223372036854775808"][..], &["prove", "--start", "9223372036854775807", "--count", "2"]] {
        let out = cli(&d, Some(TOKEN), args);
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success() && said.contains("above the largest block number"), "{args:?}: {said}");
    }
    let (_, all) = d.admin_get("/admin/blocks?limit=100", TOKEN).unwrap();
    let huge = all["blocks"].as_array().unwrap().iter().filter(|b| b["block"].as_u64().unwrap() > 1_000_000).count();
    assert_eq!(huge, 0, "nothing written: {all}");

    // Any block, not only multiples of the interval.
    let added = ok_json(&cli(&d, Some(TOKEN), &["prove", "10"]));
    assert_eq!(added["added"], 1);
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| api.accepted().contains(&("proved".into(), 10)));
    let added = ok_json(&cli(&d, Some(TOKEN), &["prove", "--start", "10", "--count", "2"]));
    assert_eq!((added["added"].clone(), added["already_proved"].clone()), (1.into(), serde_json::json!([10])));
    d.wait_for("block 11 reported", Duration::from_secs(60), |_| api.accepted().contains(&("proved".into(), 11)));

    // Resubmit sends the saved proof again (the API answers 409: already proved, which is success).
    ok_json(&cli(&d, Some(TOKEN), &["resubmit", "10"]));
    d.wait_for("second proved call", Duration::from_secs(30), |_| {
        api.received().iter().filter(|r| r.path.ends_with("/proved") && r.body["block_number"] == 10).count() == 2
    });
    let out = cli(&d, Some(TOKEN), &["resubmit", "1000"]);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("nothing done") && said.contains("not proved"), "{said}");

    let status = ok_json(&cli(&d, None, &["status", "--json"]));
    assert_eq!(status["components"]["prover"]["proved_count"], 2);
    // Without --json: a few lines a person reads.
    let out = cli(&d, Some(TOKEN), &["status"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success() && text.lines().count() <= 8, "{text}");
    assert!(text.contains("proved 2") && text.contains("EthProofs: ") && text.contains("head 1101"), "{text}");
    assert_eq!(d.get_with_token("/admin/blocks", TOKEN).map(|r| r.0), Some(404), "not on the public port");
    let (code, blocks) = d.admin_get("/admin/blocks?state=proved&limit=10", TOKEN).unwrap();
    assert_eq!(code, 200);
    let numbers: Vec<u64> = blocks["blocks"].as_array().unwrap().iter().map(|b| b["block"].as_u64().unwrap()).collect();
    assert_eq!(numbers, vec![11, 10]);
    assert_eq!(d.admin_get("/admin/blocks", "wrong").unwrap().0, 401);

    // The report reads the same ledger, while the daemon runs.
    let out = support::daemon()
        .args(["report", "--since", "1h", "--format", "csv"])
        .env("OUTPUT_DIR", d.output())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("block,outcome,stage,reason,gas_used,tx_count,input_ms,proving_ms,cycles"), "{csv}");
    assert!(lines[0].ends_with(",guest_steps,job_id"), "the coordinator job has its column, named as in JSON: {csv}");
    let row10 = lines.iter().find(|l| l.starts_with("10,")).expect("block 10 row");
    assert!(row10.starts_with("10,proved,,,21000,1,"), "{row10}");
    let row1000 = lines.iter().find(|l| l.starts_with("1000,")).expect("block 1000 row");
    assert!(row1000.contains("failed,backfill_window") && row1000.contains("did not serve"), "{row1000}");
    let json_out = support::daemon()
        .args(["report", "--since", "1h", "--format", "json"])
        .env("OUTPUT_DIR", d.output())
        .output()
        .unwrap();
    let rows: Value = serde_json::from_slice(&json_out.stdout).unwrap();
    // A window longer than the epoch is every row (never an overflow); one no clock counts is
    // refused in words.
    let report = |since: &str| {
        support::daemon().args(["report", "--since", since, "--format", "json"]).env("OUTPUT_DIR", d.output()).output()
    };
    let all = report("200000000000d").unwrap();
    let all_rows: Value = serde_json::from_slice(&all.stdout).unwrap_or_default();
    assert_eq!(all_rows, rows, "{}", String::from_utf8_lossy(&all.stderr));
    let typo = report("213503982334602d").unwrap();
    let said = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{said}");
    assert!(said.contains("longer than any clock counts"), "{said}");
    let r11 = rows.as_array().unwrap().iter().find(|r| r["block"] == 11).unwrap();
    assert_eq!(r11["proving_ms"], 123);
    assert_eq!(r11["cycles"], 5555);
    assert!(r11["reported_at"].as_str().unwrap().ends_with('Z'));
    // What has not happened is null, like every other absent value, never "".
    let r1000 = rows.as_array().unwrap().iter().find(|r| r["block"] == 1000).unwrap();
    assert_eq!(
        (&r1000["proved_at"], &r1000["reported_at"], &r1000["job_id"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    // Every operator action leaves a line in the log, the ones that changed nothing included.
    let logs = d.logs();
    for action in ["operator: pause", "operator: resume", "operator: prove", "operator: resubmit"] {
        assert!(logs.contains(action), "no log line for {action:?}");
    }
    assert!(logs.contains("already_proved=[10]") && logs.contains("NotProvedOrPending"), "refusals are logged too");
    assert!(d.terminate().0.success());
    assert!(!d.logs().contains(TOKEN), "the admin token leaked into the logs");
}

#[test]
fn without_a_token_there_is_no_admin_api() {
    let node = mini_node(10);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("up", Duration::from_secs(30), |h| h["status"].is_string());
    assert_eq!(d.get_with_token("/admin/blocks", "anything").map(|r| r.0), Some(404));
    // The CLI says what is wrong, not "HTTP 404".
    let out = support::daemon()
        .args(["pause", "--url", &format!("http://127.0.0.1:{}", d.port)])
        .env("ADMIN_TOKEN", "anything")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("no admin API") && said.contains("ADMIN_TOKEN"), "{said}");
    assert!(d.terminate().0.success());
}

#[test]
fn status_works_out_of_the_box_and_shows_missed_targets() {
    // As after README's dev run: no ADMIN_TOKEN, so no admin API; `status` reads the public
    // /health on HEALTH_PORT, with no --url and no token.
    let node = mini_node(1001);
    let mut env = base_env(&node, None);
    set(&mut env, "BLOCK_INTERVAL", "100");
    env.push(("MAX_BACKFILL_BLOCKS", "100".into()));
    let mut d = Daemon::start(&env);
    target_1000_not_served(&mut d);
    node.set_head(1101);
    d.wait_for("target 1000 missed", Duration::from_secs(30), |h| input_gen(h)["missed_count"] == 1);
    let status = |port: u16| {
        support::daemon()
            .arg("status")
            .env_remove("ADMIN_TOKEN")
            .env_remove("ETHPROOFS_DAEMON_URL")
            .env("HEALTH_PORT", port.to_string())
            .output()
            .unwrap()
    };
    let out = status(d.port);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let missed = text.lines().find(|l| l.starts_with("missed targets:")).unwrap_or_else(|| panic!("{text}"));
    assert!(missed.contains("missed targets: 1") && missed.contains("block 1000 at backfill_window"), "{missed}");
    assert!(text.contains("head 1101"), "{text}");

    // Nobody there: it says what to set, not just "error sending request".
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = status(free);
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("HEALTH_PORT") && said.contains("--url"), "{said}");
    // An admin command without a token says where the token comes from.
    let out = support::daemon().arg("pause").env_remove("ADMIN_TOKEN").output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success() && said.contains("set ADMIN_TOKEN") && said.contains("run --dev"), "{said}");
    assert!(d.terminate().0.success());
}

#[test]
fn doctor_says_what_is_fine_and_what_is_not() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let dir = tempfile::tempdir().unwrap();
    let elf = dir.path().join("guest.elf");
    std::fs::write(&elf, support::synthetic_elf::riscv_elf(b"fake")).unwrap();
    let run = |extra: &[(&str, String)]| {
        let mut cmd = support::daemon();
        cmd.arg("doctor").env_clear().env("PATH", std::env::var("PATH").unwrap());
        for (k, v) in base_env(&node, Some(&api)) {
            cmd.env(k, v);
        }
        cmd.env("ELF_PATH", &elf)
            .env("OUTPUT_DIR", dir.path().join("out"))
            .env("CARGO_ZISK", support::daemon::fake_zisk())
            .env("MIN_FREE_DISK_MB", "1");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    // The mini chain serves blocks 10 and 11 only: with BLOCK_INTERVAL=1 the latest target is 10.
    let out = run(&[]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    for line in
        ["ok   node", "ok   chain", "ok   witness", "ok   cargo-zisk", "ok   elf", "ok   ethproofs", "ok   output"]
    {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("1.4.0") && text.contains("sha256"), "{text}");
    assert!(text.contains("skip verify") && text.contains("without being verified"), "VERIFY_PROOFS=off: {text}");
    let vk = "ab".repeat(32);
    let out = run(&[("VERIFY_PROOFS", "on".into()), ("PROGRAM_VK", vk.clone()), ("GUEST_OUTPUT", "encoded".into())]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("ok   verify") && text.contains(&format!("program {vk} (from PROGRAM_VK)")), "{text}");
    assert!(text.contains("outputs compared with each block (encoded layout)"), "{text}");
    // Reporting on and no key anywhere: doctor says which setting the start would refuse.
    let out =
        run(&[("VERIFY_PROOFS", "on".into()), ("GUEST_OUTPUT", "encoded".into()), ("HOME", "/nonexistent".into())]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("FAIL verify") && text.contains("PROGRAM_VK: no program key"), "{text}");

    let out = run(&[("CARGO_ZISK", "/nonexistent/cargo-zisk".into()), ("ETHPROOFS_API_KEY", "wrong".into())]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("FAIL cargo-zisk") && text.contains("/nonexistent/cargo-zisk"), "{text}");
    assert!(text.contains("FAIL ethproofs") && text.contains("API key was refused"), "{text}");
    assert!(text.contains("2 check(s) failed"), "{text}");
    assert!(!text.contains(KEY) && !text.contains("wrong"), "a secret was printed:\n{text}");

    // A configuration refused: still one line per check, each other check named as not run.
    let out = run(&[("ETH_RPC_URL", String::new())]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.starts_with("FAIL config") && text.contains("ETH_RPC_URL"), "{text}");
    for check in ["node", "chain", "witness", "cargo-zisk", "elf", "verify", "ethproofs", "output", "slack"] {
        assert!(text.contains(&format!("skip {check:<10} not checked")), "no line for {check}:\n{text}");
    }
}

#[test]
fn old_block_data_goes_and_low_disk_pauses_new_work() {
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    env.push(("START_BLOCK", "10".into()));
    env.push(("RETAIN_BLOCKS", "1".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("both reported", Duration::from_secs(60), |h| h["components"]["reporter"]["delivered_count"] == 6);
    let block10 = d.output().join("10");
    d.wait_for("block 10's data removed", Duration::from_secs(20), |_| !block10.exists());
    assert!(d.output().join("11/proof.bin").is_file(), "the newest block is kept");
    assert!(d.terminate().0.success());

    let slack = support::fake_slack::FakeSlack::start();
    let mut env = base_env(&mini_node(10), None);
    env.push(("MIN_FREE_DISK_MB", "999999999999".into()));
    env.push(("SLACK_WEBHOOK", slack.url.clone()));
    let mut d = Daemon::start(&env);
    d.wait_for("paused for disk", Duration::from_secs(30), |h| input_gen(h)["state"] == "paused");
    d.wait_for("alerted", Duration::from_secs(10), |_| slack.count("Disk low") == 1);
    // Every screen says who paused and why, and a pause the daemon imposed is not "healthy".
    let h = d.health();
    assert_eq!(
        (&h["status"], &h["paused"], &h["pause"]["by"]),
        (&"degraded".into(), &true.into(), &"disk".into()),
        "{h:#}"
    );
    let reason = h["pause"]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("MIN_FREE_DISK_MB = 999999999999") && reason.contains("paused by the daemon"), "{reason}");
    let (code, ready) = d.get("/health/ready").unwrap();
    assert_eq!(code, 503, "{ready}");
    assert!(ready["reason"].as_str().unwrap_or("").contains("MIN_FREE_DISK_MB"), "{ready}");
    let (_, board) = d.get("/api/dashboard").unwrap();
    assert_eq!((&board["status"], &board["pause"]["by"]), (&"degraded".into(), &"disk".into()), "{board}");
    let out = support::daemon().args(["status", "--url", &format!("http://127.0.0.1:{}", d.port)]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.starts_with("degraded") && said.contains("PAUSED by disk") && said.contains(&reason), "{said}");
    d.wait_for_polls(2, Duration::from_secs(30));
    assert_eq!(input_gen(&d.health())["processed_count"], 0, "no input was built while the disk is low");
    assert!(d.terminate().0.success());
}

#[test]
fn the_operator_cancels_a_running_cargo_zisk_proof() {
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    env.push(("FAKE_ZISK_SECONDS", "60".into()));
    env.push(("ADMIN_TOKEN", TOKEN.into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proving", Duration::from_secs(60), |h| h["components"]["prover"]["proving_block"] == 10);
    let out = support::daemon()
        .args(["cancel", "10", "--url", &format!("http://127.0.0.1:{}", d.admin_port)])
        .env("ADMIN_TOKEN", TOKEN)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let h = d.wait_for("block 10 cancelled", Duration::from_secs(20), |h| {
        h["components"]["prover"]["recent_failed"][0]["stage"] == "cancelled"
    });
    assert_eq!(h["components"]["prover"]["state"], "idle", "the run is over, not waiting out its 60 s");
    assert_eq!(h["components"]["prover"]["recent_failed"][0]["reason"], "cancelled by the operator");
    assert!(d.terminate().0.success());
}

#[test]
fn doctor_and_report_follow_dev() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::daemon()
        .arg("doctor")
        .arg("--dev")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "doctor --dev checks what run --dev runs:\n{text}");
    assert!(text.contains("ok   chain      dev chain (chain id 1337)") && text.contains("ok   witness"), "{text}");
    assert!(text.contains("skip cargo-zisk") && !text.contains("FAIL"), "native mode needs no prover:\n{text}");

    let missing = support::daemon().args(["report", "--dev"]).current_dir(dir.path()).env_clear().output().unwrap();
    let said = String::from_utf8_lossy(&missing.stderr).to_string();
    assert!(
        !missing.status.success() && said.contains("output/dev/ethproofs-daemon.db"),
        "report --dev reads the dev ledger: {said}"
    );
}

#[test]
fn a_health_port_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    env.push(("HEALTH_PORT", port.to_string()));
    // Native mode announces its dashboard's URL: only once the port is ours.
    env.push(("ZISK_ACTION", "native".into()));
    let mut d = Daemon::start(&env);
    let status = d.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    let logs = d.logs();
    assert!(logs.contains("HEALTH_PORT") && logs.contains(&port.to_string()), "{logs}");
    assert_eq!(logs.matches("cannot listen on HEALTH_HOST:HEALTH_PORT").count(), 1, "the error is said once: {logs}");
    assert!(!logs.contains("dashboard"), "no dashboard announced on a port that is not ours: {logs}");
}

#[test]
fn a_word_means_one_thing_on_every_screen_blocks_are_blocks_and_runs_are_runs() {
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    env.push(("ZISK_ACTION", "native".into()));
    env.push(("ADMIN_TOKEN", TOKEN.into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 executed", Duration::from_secs(60), |h| h["components"]["prover"]["runs"]["executed"] == 1);
    let seen_at = |d: &Daemon| {
        let out = support::daemon()
            .args(["report", "--since", "1h", "--format", "json"])
            .env("OUTPUT_DIR", d.output())
            .output()
            .unwrap();
        let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
        rows.as_array().unwrap().iter().find(|r| r["block"] == 10).unwrap()["seen_at"].clone()
    };
    let first_seen = seen_at(&d);
    // The operator runs block 10 twice more: three runs, still one executed block.
    for runs in [2, 3] {
        assert_eq!(ok_json(&cli(&d, Some(TOKEN), &["prove", "10"]))["added"], 1);
        d.wait_for("the run", Duration::from_secs(60), |h| h["components"]["prover"]["runs"]["executed"] == runs);
    }
    let h = d.health();
    assert_eq!(h["components"]["prover"]["executed_count"], 1, "blocks, as the ledger counts them: {h:#}");
    let (_, board) = d.get("/api/dashboard").unwrap();
    assert_eq!(board["executed"], 1, "the dashboard counts the same blocks");
    let out = support::daemon().args(["status", "--url", &format!("http://127.0.0.1:{}", d.port)]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(said.contains("blocks proved 0 · executed 1 ·") && said.contains("runs since start 3"), "{said}");
    // A re-run keeps the history: the block page shows both earlier runs and who asked for the
    // next, and `report` still counts from when the target was first seen.
    let (_, page) = d.get("/api/blocks/10").unwrap();
    let earlier = page["earlier_runs"].as_array().unwrap();
    assert_eq!(earlier.len(), 2, "{page:#}");
    assert!(earlier.iter().all(|r| r["outcome"] == "executed" && r["replaced_by"] == "operator"), "{page:#}");
    let asked = page["timeline"].as_array().unwrap().iter().filter(|e| e["what"] == "run again, asked by the operator");
    assert_eq!(asked.count(), 2, "{page:#}");
    assert_eq!(seen_at(&d), first_seen, "report's seen_at moved with the re-run");
    assert!(d.terminate().0.success());
}
