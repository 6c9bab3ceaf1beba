//! Start-up validation as an operator meets it: a setting this machine alone can judge (a word
//! that is not a version or a level, a cargo-zisk or ziskemu that is not there, an ELF that is missing) stops
//! the daemon with exit 2 naming the variable before the node is asked anything; an empty
//! variable from a template is the same as unset.

mod support;

use std::time::Duration;

use support::daemon::{Daemon, base_env, input_gen, mini_node, set};

/// Starts a daemon with `changes` over the usual settings; it must exit 2 naming `variable`
/// (and saying `words`) without one call to the node.
fn refused(changes: &[(&'static str, &str)], variable: &str, words: &str) {
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    for (k, v) in changes {
        set(&mut env, k, *v);
    }
    let mut d = Daemon::start(&env);
    let status = d.wait_exit(Duration::from_secs(20));
    let logs = d.logs();
    assert_eq!(status.code(), Some(2), "{changes:?}: {logs}");
    let said = logs.lines().find(|l| l.starts_with("error:")).unwrap_or_else(|| panic!("{changes:?}: {logs}"));
    assert!(said.contains(variable) && said.contains(words), "{changes:?}: {said}");
    assert!(node.calls().is_empty(), "{changes:?}: the node was asked {:?} first", node.calls());
}

#[test]
fn a_setting_this_machine_can_judge_is_exit_2_before_the_node_is_asked() {
    refused(&[("LOG_LEVEL", "verbose")], "LOG_LEVEL", "\"verbose\" is not a level");
    refused(&[("LOG_LEVEL", "ethproofs_daemon=loud")], "LOG_LEVEL", "target=level");
    refused(&[("ZISK_VERSION", "0.19")], "ZISK_VERSION", "0.19");
    // A fixed version spares the `--version` call, not the binary.
    refused(&[("ZISK_VERSION", "1"), ("CARGO_ZISK", "/nonexistent/cargo-zisk")], "CARGO_ZISK", "not an executable");
    refused(&[("CARGO_ZISK", "/nonexistent/cargo-zisk")], "CARGO_ZISK", "cannot run");
    refused(&[("ZISK_VERSION", "1"), ("CARGO_ZISK", "no-such-cargo-zisk")], "CARGO_ZISK", "not on PATH");
    refused(&[("ELF_PATH", "/nonexistent/guest.elf")], "ELF_PATH", "not a readable file");
    refused(&[("INPUT_CHECK", "emulate"), ("ZISKEMU", "/nonexistent/ziskemu")], "ZISKEMU", "not an executable");
}

#[test]
fn an_empty_variable_is_unset_and_every_documented_zisk_line_is_accepted() {
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    // As an env file made from the template leaves them.
    for empty in ["START_BLOCK", "ETH_WS_URL", "SLACK_WEBHOOK", "DASHBOARD_URL", "ADMIN_TOKEN"] {
        set(&mut env, empty, "");
    }
    // 0.17 is a ZisK release line (the `-o FILE` dialect of 0.17/0.18).
    set(&mut env, "ZISK_VERSION", "0.17");
    let mut d = Daemon::start(&env);
    d.wait_for("running", Duration::from_secs(30), |h| input_gen(h)["head"] == 10);
    let metrics = d.get_text("/metrics").unwrap_or_default();
    assert!(metrics.contains("zisk=\"0.17.0\""), "{metrics}");
    assert!(d.terminate().0.success());
}
