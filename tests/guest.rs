#![recursion_limit = "256"]
//! Knowing the guest before spending GPU time: the ELF's fingerprint (which ethrex and ziskos
//! it was built from) at start-up, in `/health`, `build_info` and `doctor`, and the refusal of
//! an ELF that reads another input layout. The ELFs are small synthetic files made here.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, base_env, mini_node};
use support::registry_path;
use support::synthetic_elf::synthetic_elf;

fn elf_file(dir: &std::path::Path, paths: &[&str]) -> std::path::PathBuf {
    let path = dir.join("guest.elf");
    std::fs::write(&path, synthetic_elf(paths)).unwrap();
    path
}

#[test]
fn an_elf_of_another_input_layout_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let elf = elf_file(dir.path(), &[&registry_path("ethrex-common", "30.0.1"), &registry_path("ziskos", "1.4.0")]);
    let mut env = base_env(&node, None);
    env.push(("ELF_PATH", elf.display().to_string()));
    let mut d = Daemon::start(&env);
    let status = d.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(2), "{}", d.logs());
    let logs = d.logs();
    assert!(logs.contains("ELF_PATH") && logs.contains("ethrex 30.0.1") && logs.contains("ethrex 31.0.0"), "{logs}");
    assert!(logs.contains("ALLOW_ELF_MISMATCH"), "says what to do: {logs}");

    env.push(("ALLOW_ELF_MISMATCH", "true".into()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("running", Duration::from_secs(30), |h| h["elf"]["ethrex"].is_string());
    assert_eq!(h["elf"]["ethrex"], "30.0.1");
    assert_eq!(h["elf"]["ziskos"], "1.4.0");
    assert!(d.terminate().0.success());
}

#[test]
fn the_fingerprint_is_shown_in_health_metrics_and_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(10);
    let elf = elf_file(
        dir.path(),
        &[
            &registry_path("ethrex-common", "31.0.0"),
            "/root/.cargo/git/checkouts/zisk-627550f4f7ac9ffb/790f9e2/ziskos/entrypoint/src/lib.rs",
        ],
    );
    let mut env = base_env(&node, None);
    env.push(("ELF_PATH", elf.display().to_string()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("running", Duration::from_secs(30), |h| h["elf"]["ethrex"].is_string());
    assert_eq!(h["elf"]["ethrex"], "31.0.0");
    assert_eq!(h["elf"]["ziskos"], "git 790f9e2 (version unknown)");
    assert_eq!(h["elf"]["sha256"].as_str().map(str::len), Some(64));
    let metrics = d.get_text("/metrics").unwrap();
    assert!(metrics.contains("elf_ethrex=\"31.0.0\""), "build_info names it");
    assert!(d.terminate().0.success());

    // doctor: the fingerprint, the layout, and a ziskos of another line than cargo-zisk (1.4.0).
    let doctor = |elf: &std::path::Path| {
        let mut cmd = support::daemon();
        cmd.arg("doctor").env_clear().env("PATH", std::env::var("PATH").unwrap());
        for (k, v) in base_env(&node, None) {
            cmd.env(k, v);
        }
        cmd.env("ELF_PATH", elf)
            .env("OUTPUT_DIR", dir.path().join("out"))
            .env("CARGO_ZISK", support::daemon::fake_zisk())
            .env("MIN_FREE_DISK_MB", "1");
        let out = cmd.output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
    };
    let (ok, text) = doctor(&elf);
    assert!(ok, "{text}");
    assert!(text.contains("built from ethrex 31.0.0") && text.contains("ok   layout"), "{text}");
    let old = elf_file(dir.path(), &[&registry_path("ethrex-common", "31.0.0"), &registry_path("ziskos", "0.15.0")]);
    let (ok, text) = doctor(&old);
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL ziskos") && text.contains("0.15.0") && text.contains("1.4.0"), "{text}");
}

/// `env` with the guest checking each input in the (fake) emulator, from block 10, the prover's
/// calls logged in `dir/zisk.log` and the output in `dir/output`.
fn emulating(dir: &std::path::Path, mut env: Vec<(&'static str, String)>) -> Vec<(&'static str, String)> {
    env.push(("START_BLOCK", "10".into()));
    env.push(("INPUT_CHECK", "emulate".into()));
    env.push(("ZISKEMU", support::repo_dir().join("tests/support/fake-ziskemu").display().to_string()));
    env.push(("FAKE_ZISK_LOG", dir.join("zisk.log").display().to_string()));
    env.push(("OUTPUT_DIR", dir.join("output").display().to_string()));
    env
}

/// Waits for block 10 proved and block 11 failed; block 11's failure as `/health` shows it.
fn ten_proved_eleven_failed(d: &mut Daemon) -> serde_json::Value {
    let h = d.wait_for("block 10 proved, block 11 failed", Duration::from_secs(60), |h| {
        support::daemon::counted_and_listed(h, "proved", 1) && support::daemon::counted_and_listed(h, "failed", 1)
    });
    h["components"]["prover"]["recent_failed"][0].clone()
}

#[test]
fn the_outputs_the_guest_commits_in_the_emulator_are_held_to_the_block_before_the_prover() {
    use ethproofs_daemon::block::commitment::{OutputLayout, words_for};
    let dir = tempfile::tempdir().unwrap();
    let committed = dir.path().join("committed");
    std::fs::create_dir_all(&committed).unwrap();
    let outputs_of = |n: u64| -> Vec<u8> {
        words_for(OutputLayout::Encoded, &support::daemon::mini_outputs(n))
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect()
    };
    // Block 10's input commits block 10's outputs; block 11's input comes out as block 10.
    std::fs::write(committed.join("10.bin"), outputs_of(10)).unwrap();
    std::fs::write(committed.join("11.bin"), outputs_of(10)).unwrap();
    let node = mini_node(11);
    let mut env = base_env(&node, None);
    env.push(("START_BLOCK", "10".into()));
    env.push(("INPUT_CHECK", "emulate".into()));
    env.push(("GUEST_OUTPUT", "encoded".into()));
    env.push(("ZISKEMU", support::repo_dir().join("tests/support/fake-ziskemu").display().to_string()));
    env.push(("FAKE_ZISKEMU_OUTPUTS", committed.display().to_string()));
    env.push(("FAKE_ZISK_LOG", dir.path().join("zisk.log").display().to_string()));
    env.push(("OUTPUT_DIR", dir.path().join("output").display().to_string()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 proved, block 11 failed", Duration::from_secs(60), |h| {
        support::daemon::counted_and_listed(h, "proved", 1) && support::daemon::counted_and_listed(h, "failed", 1)
    });
    let failed = &h["components"]["prover"]["recent_failed"][0];
    assert_eq!((failed["block"].as_u64(), failed["stage"].as_str()), (Some(11), Some("input_check")), "{failed}");
    let hash = |n: u64| format!("0x{}", hex::encode(support::daemon::mini_outputs(n).block_hash));
    let story = d.get("/api/blocks/11").unwrap().1;
    let reason = story["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(&format!("block hash {}, the block's is {}", hash(10), hash(11))), "{reason}");
    let zisk = std::fs::read_to_string(dir.path().join("zisk.log")).unwrap_or_default();
    assert!(!zisk.contains("/11/input.bin"), "no GPU time for it:\n{zisk}");
    assert!(d.terminate().0.success());
}

#[test]
fn the_real_guest_checks_each_input_before_the_prover_with_input_check_emulate() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = support::fake_api::FakeApi::start(support::daemon::KEY);
    let mut env = emulating(dir.path(), base_env(&node, Some(&api)));
    env.push(("FAKE_ZISKEMU_REJECT", "11".into()));
    env.push(("FAKE_ZISKEMU_LOG", dir.path().join("emu.log").display().to_string()));
    let mut d = Daemon::start(&env);
    let failed = ten_proved_eleven_failed(&mut d);
    assert_eq!(failed["block"], 11);
    assert_eq!(failed["stage"], "input_check");
    assert!(failed["reason"].as_str().unwrap().contains("gas used mismatch"), "the guest's words: {failed}");
    let zisk = std::fs::read_to_string(dir.path().join("zisk.log")).unwrap_or_default();
    assert!(!zisk.contains("/11/input.bin"), "the rejected input never reached the prover:\n{zisk}");
    assert!(zisk.contains("/10/input.bin"));
    let emu = std::fs::read_to_string(dir.path().join("emu.log")).unwrap();
    assert_eq!(emu.lines().count(), 2, "each input checked once: {emu}");
    assert!(d.terminate().0.success());

    // The guest's steps are in the ledger's report.
    let out = support::daemon()
        .args(["report", "--since", "1h", "--format", "json"])
        .env("OUTPUT_DIR", dir.path().join("output"))
        .output()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let b10 = rows.as_array().unwrap().iter().find(|r| r["block"] == 10).unwrap();
    assert_eq!(b10["guest_steps"], 4242);
}

fn dir_digest(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else if !e.file_name().to_string_lossy().starts_with(".lock") {
                files.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap_or_default()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn reproduce_replays_a_daemons_inputs_without_a_node_and_touches_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let output = dir.path().join("output");
    let mut env = base_env(&node, None);
    env.push(("START_BLOCK", "10".into()));
    env.push(("OUTPUT_DIR", output.display().to_string()));
    env.push(("ADMIN_TOKEN", "tok".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("two blocks proved", Duration::from_secs(60), |h| h["components"]["prover"]["proved_count"] == 2);

    // `prove --latest 2` asks for the two newest targets: both already proved here.
    let out = support::daemon()
        .args(["prove", "--latest", "2", "--url", &format!("http://127.0.0.1:{}", d.admin_port)])
        .env("ADMIN_TOKEN", "tok")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("already proved [11, 10]"), "{text}");
    assert!(d.terminate().0.success());
    let before = dir_digest(&output);

    let replay = |action: &str, out_dir: &str, extra: &[(&str, &str)]| {
        let mut cmd = support::daemon();
        cmd.args(["reproduce", "--inputs"])
            .arg(&output)
            .args(["--action", action, "--out"])
            .arg(dir.path().join(out_dir));
        cmd.arg("--report").arg(dir.path().join(format!("{out_dir}.csv")));
        if extra.iter().any(|(k, _)| *k == "ETHPROOFS_API_KEY") {
            cmd.arg("--report-to-ethproofs");
        }
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("ELF_PATH", dir.path().join("guest.elf"))
            .env("CARGO_ZISK", support::daemon::fake_zisk())
            .env("LOG_LEVEL", "warn");
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        let csv = std::fs::read_to_string(dir.path().join(format!("{out_dir}.csv"))).unwrap_or_default();
        (out.status.success(), text, csv)
    };
    std::fs::write(dir.path().join("guest.elf"), synthetic_elf(&[&registry_path("ethrex-common", "31.0.0")])).unwrap();
    // Proved again, and (asked to) reported to EthProofs: queued, proving, proved for each block.
    let api = support::fake_api::FakeApi::start(support::daemon::KEY);
    let reporting = [
        ("ETHPROOFS_RPC_URL", api.url.as_str()),
        ("ETHPROOFS_API_KEY", support::daemon::KEY),
        ("ETHPROOFS_CLUSTER_ID", "7"),
    ];
    // A replayed proof cannot be bound to its block: reported only on the operator's explicit off.
    let (ok, text, _) = replay("prove", "refused", &reporting);
    assert!(!ok && text.contains("VERIFY_PROOFS") && api.accepted().is_empty(), "{text}");
    let reporting = [reporting.as_slice(), &[("VERIFY_PROOFS", "off")]].concat();
    let (ok, text, csv) = replay("prove", "replay", &reporting);
    assert!(ok, "{text}");
    assert!(text.contains("2 block(s) reported to EthProofs"), "{text}");
    for b in [10, 11] {
        for call in ["queued", "proving", "proved"] {
            assert!(api.accepted().contains(&(call.to_string(), b)), "{call} {b}: {:?}", api.accepted());
        }
    }
    assert!(text.contains("[1/2] block 10: proved") && text.contains("[2/2] block 11: proved"), "{text}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "block,input_bytes,steps,proving_ms,outcome,reason");
    assert!(lines[1].starts_with("10,") && lines[1].contains(",5555,123,proved,"), "{csv}");
    assert!(dir.path().join("replay/11/proof.bin").is_file());
    assert_eq!(dir_digest(&output), before, "the daemon's directory and ledger are untouched");

    let ziskemu = support::repo_dir().join("tests/support/fake-ziskemu").display().to_string();
    let (ok, text, csv) = replay("emulate", "emulate", &[("ZISKEMU", &ziskemu), ("FAKE_ZISKEMU_REJECT", "11")]);
    assert!(!ok, "a rejected input fails the replay: {text}");
    assert!(csv.contains("10,") && csv.contains(",4242,") && csv.contains("checked"), "{csv}");
    assert!(
        csv.lines().any(|l| l.starts_with("11,") && l.contains("failed") && l.contains("gas used mismatch")),
        "{csv}"
    );
    assert_eq!(dir_digest(&output), before);
}

#[test]
fn reproduce_of_a_dev_run_needs_no_elf_leaves_no_empty_folders_and_sums_up() {
    // A native run's inputs where `run --dev` keeps them (output/dev under the working directory).
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let mut env = base_env(&node, None);
    env.push(("START_BLOCK", "10".into()));
    env.push(("ZISK_ACTION", "native".into()));
    env.push(("OUTPUT_DIR", dir.path().join("output/dev").display().to_string()));
    let mut d = Daemon::start(&env);
    d.wait_for("two blocks executed", Duration::from_secs(60), |h| h["components"]["prover"]["executed_count"] == 2);
    assert!(d.terminate().0.success());

    let replay = |args: &[&str]| {
        let out = support::daemon()
            .arg("reproduce")
            .args(args)
            .current_dir(dir.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .env("LOG_LEVEL", "warn")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // README's example without an ELF: refused with the way out, and nothing created.
    let (ok, _, err) = replay(&["--inputs", "output/dev"]);
    assert!(!ok && err.contains("ELF_PATH") && err.contains("ZISK_ACTION=native"), "{err}");
    assert!(!dir.path().join("reproduce").exists(), "a refused replay creates nothing");

    // `--dev`: the dev daemon's inputs, re-executed natively, with a summary.
    let (ok, text, err) = replay(&["--dev"]);
    assert!(ok, "{text}{err}");
    assert!(text.contains("[1/2] block 10: executed") && text.contains("[2/2] block 11: executed"), "{text}");
    assert!(text.contains("summary: 2 input(s): 2 executed"), "{text}");
    assert!(text.contains("time: ") && text.contains("median"), "{text}");
    assert!(!dir.path().join("reproduce").exists(), "nothing is written for a native replay: no empty folders");
}
