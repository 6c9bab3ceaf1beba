#![recursion_limit = "256"]
//! Knowing the guest before spending GPU time: the ELF's fingerprint (which ethrex and ziskos
//! it was built from) at start-up, in `/health`, `build_info` and `doctor`, and the refusal of
//! an ELF that reads another input layout. The ELFs are small synthetic files made here.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, base_env, mini_node};
use support::{registry_path, synthetic_elf};

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

#[test]
fn the_real_guest_checks_each_input_before_the_prover_with_input_check_emulate() {
    let dir = tempfile::tempdir().unwrap();
    let node = mini_node(11);
    let api = support::fake_api::FakeApi::start(support::daemon::KEY);
    let mut env = base_env(&node, Some(&api));
    env.push(("START_BLOCK", "10".into()));
    env.push(("INPUT_CHECK", "emulate".into()));
    env.push(("ZISKEMU", support::repo_dir().join("tests/support/fake-ziskemu").display().to_string()));
    env.push(("FAKE_ZISKEMU_REJECT", "11".into()));
    env.push(("FAKE_ZISKEMU_LOG", dir.path().join("emu.log").display().to_string()));
    env.push(("FAKE_ZISK_LOG", dir.path().join("zisk.log").display().to_string()));
    env.push(("OUTPUT_DIR", dir.path().join("output").display().to_string()));
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 proved, block 11 failed", Duration::from_secs(60), |h| {
        let p = &h["components"]["prover"];
        p["proved_count"] == 1 && p["failed_count"] == 1
    });
    let failed = &h["components"]["prover"]["recent_failed"][0];
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
