//! The operators' monitoring shipped in `config/`: the Grafana dashboard and the Prometheus
//! alert rules name only metrics the daemon exports (the coordinator's own `coordinator_*`
//! metrics aside), and the daemon's `/metrics` really has each of them after a proved block.
//! (`promtool check rules` runs in `.ci/run`.)

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::daemon::{Daemon, KEY, base_env, mini_node};
use support::fake_api::FakeApi;
use support::fake_coordinator::FakeCoordinator;

/// The `ethproofs_*` metric names in `text`, with histogram suffixes taken off.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(at) = text[i..].find("ethproofs_") {
        let start = i + at;
        let end = start + bytes[start..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
        let name = &text[start..end];
        let base = ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name);
        names.insert(base.to_string());
        i = end;
    }
    names
}

#[test]
fn the_dashboard_and_the_alert_rules_name_only_metrics_the_daemon_exports() {
    let dashboard = std::fs::read_to_string(support::repo_dir().join("config/grafana/ethproofs-daemon.json")).unwrap();
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("the Grafana dashboard is JSON");
    let rules = std::fs::read_to_string(support::repo_dir().join("config/prometheus/alerts.yml")).unwrap();
    let named: BTreeSet<String> = metric_names(&dashboard).into_iter().chain(metric_names(&rules)).collect();
    assert!(named.len() > 15, "{named:?}");

    // A daemon that proved and reported a block through the coordinator has every series.
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    // Down at first, so the coordinator-error counter exists too.
    let mut coordinator = FakeCoordinator::start_down();
    let mut env = base_env(&node, Some(&api));
    env.push(("PROVER_BACKEND", "coordinator".into()));
    env.push(("ZISK_COORDINATOR_URL", coordinator.url.clone()));
    let mut d = Daemon::start(&env);
    d.wait_for("running", Duration::from_secs(30), |h| h["components"]["input_generator"]["head"] == 10);
    // A few failed head polls on the way, so the node-error counter exists too.
    node.answer("eth_blockNumber", support::fake_node::Answer::Error { code: -32000, message: "busy".into() });
    d.until("a failed head poll counted", Duration::from_secs(30), |d| {
        d.get_text("/metrics").is_some_and(|m| m.contains("ethproofs_rpc_errors_total"))
    });
    d.wait_for("the coordinator's trouble", Duration::from_secs(30), |h| {
        h["components"]["prover"]["coordinator"]["error"].is_string()
    });
    node.clear_answer("eth_blockNumber");
    coordinator.up();
    d.wait_for("block 10 reported", Duration::from_secs(60), |h| h["components"]["reporter"]["delivered_count"] == 3);
    let exported = metric_names(&d.get_text("/metrics").unwrap());
    let missing: Vec<&String> = named.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(missing.is_empty(), "named in config/ but not exported: {missing:?}\nexported: {exported:?}");
    assert!(d.terminate().0.success());
}

/// The value of the unlabelled series `name` in a `/metrics` text.
fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[test]
fn metrics_exist_from_start_up_and_the_figures_fit_the_mode() {
    let rules = std::fs::read_to_string(support::repo_dir().join("config/prometheus/alerts.yml")).unwrap();
    // Every series an alert reads is there before the first record (the coordinator's only with it).
    let node = mini_node(11);
    let mut env = base_env(&node, None);
    env.push(("ZISK_ACTION", "native".into()));
    env.push(("START_BLOCK", "1000".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("running", Duration::from_secs(30), |h| h["components"]["input_generator"]["head"] == 11);
    let text = d.get_text("/metrics").unwrap();
    let exported = metric_names(&text);
    let missing: Vec<String> =
        metric_names(&rules).into_iter().filter(|n| n != "ethproofs_coordinator_up" && !exported.contains(n)).collect();
    assert!(missing.is_empty(), "not exported before the first record: {missing:?}\n{text}");
    assert!(text.contains("ethproofs_blocks_total{outcome=\"executed\",stage=\"execute\"} 0"), "{text}");
    // The series EthproofsReportsFailing reads, before any call failed.
    assert!(text.contains("result=\"permanent\"") && text.contains("result=\"transient\""), "{text}");
    assert_eq!(gauge(&text, "ethproofs_targets_behind"), Some(0.0), "{text}");
    assert_eq!(gauge(&text, "ethproofs_reliability_ratio_6h"), Some(1.0), "nothing due yet: {text}");
    assert!(d.terminate().0.success());

    // Native mode: executed targets are the mode's done ones, not "0 % proved".
    let mut env = base_env(&node, None);
    env.push(("ZISK_ACTION", "native".into()));
    env.push(("START_BLOCK", "10".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("two executed", Duration::from_secs(60), |h| h["components"]["prover"]["executed_count"] == 2);
    let text = d.get_text("/metrics").unwrap();
    assert_eq!(gauge(&text, "ethproofs_expected_targets_6h"), Some(2.0), "{text}");
    // "Head vs last done" reads the newest executed block here, not a 0 (nothing is proved).
    assert_eq!(gauge(&text, "ethproofs_last_done_block"), Some(11.0), "{text}");
    assert_eq!(gauge(&text, "ethproofs_last_proved_block"), Some(0.0), "{text}");
    assert_eq!(gauge(&text, "ethproofs_reliability_ratio_6h"), Some(1.0), "{text}");
    assert_eq!(gauge(&text, "ethproofs_targets_behind"), Some(0.0), "{text}");
    assert!(d.terminate().0.success());
}

#[test]
fn the_shipped_alerts_stay_quiet_on_a_fresh_deploy_and_fire_on_a_stalled_prover() {
    let have = std::process::Command::new("promtool").arg("--version").output().is_ok_and(|o| o.status.success());
    if !have {
        assert!(std::env::var("CI").is_err(), "promtool is missing under CI: .ci/run installs it");
        eprintln!("SKIPPED: promtool is not installed (Debian's prometheus package has it)");
        return;
    }
    let out = std::process::Command::new("promtool")
        .args(["test", "rules"])
        .arg(support::repo_dir().join("config/prometheus/alerts_test.yml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
