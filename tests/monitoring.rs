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
