//! The files shipped for operators (`config/`, the Dockerfile), read as a fresh host uses them.
//! The real tools run in `.ci/run` (`systemd-analyze verify`, `hadolint`, `kubernetes-validate`,
//! `promtool`); these checks catch what a schema cannot: an install step that names a file the
//! repository does not have, a user used before anything creates it, a Service a StatefulSet
//! names that the file never defines, a configuration error restarted forever.

mod support;

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(support::repo_dir().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every `config/…` path named in `text` (a comment's commands, an example).
fn config_paths(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '`' | '"' | '\'' | '(' | ')' | ','))
        .filter(|w| w.starts_with("config/"))
        .map(|w| w.trim_end_matches(['.', ':', ';']).to_string())
        .collect()
}

#[test]
fn each_systemd_unit_installs_in_order_on_a_fresh_host_and_ours_never_restarts_a_configuration_error() {
    for file in ["ethproofs-daemon.service", "zisk-coordinator.service", "zisk-worker@.service"] {
        let unit = read(&format!("config/{file}"));
        let steps: Vec<&str> =
            unit.lines().take_while(|l| l.starts_with('#')).filter(|l| l.contains("sudo ")).collect();
        let at = |what: &str| steps.iter().position(|s| s.contains(what));
        let user = unit.lines().find_map(|l| l.strip_prefix("User=")).expect("the unit names its user");
        let created = at("useradd --system").filter(|&i| steps[i].contains(user));
        let first_use = at(&format!("-o {user}"));
        assert!(
            created.is_some() && created < first_use,
            "{file}: user {user} is used by the install steps before anything creates it:\n{}",
            steps.join("\n")
        );
        for path in config_paths(&steps.join("\n")) {
            assert!(support::repo_dir().join(&path).exists(), "{file}: a step names {path}, which does not exist");
        }
        let installed = at(&format!("config/{file} /etc/systemd/system/"));
        let reloaded = at("systemctl daemon-reload");
        let enabled = at("systemctl enable");
        assert!(
            installed.is_some() && installed < reloaded && reloaded < enabled,
            "{file}: the unit is installed and loaded before it is enabled"
        );
    }
    // Exit 2 is a configuration error: restarting it every RestartSec would never end.
    let ours = read("config/ethproofs-daemon.service");
    assert!(ours.contains("Restart=on-failure") && ours.contains("RestartPreventExitStatus=2"), "{ours}");
}

#[test]
fn the_kubernetes_file_defines_every_service_it_names() {
    let text = read("config/kubernetes.yaml");
    let documents: Vec<&str> = text.split("\n---").collect();
    let field =
        |doc: &str, key: &str| doc.lines().find_map(|l| l.trim_start().strip_prefix(key).map(|v| v.trim().to_string()));
    let services: Vec<String> = documents
        .iter()
        .filter(|d| field(d, "kind:").as_deref() == Some("Service"))
        .filter_map(|d| field(d, "name:"))
        .collect();
    let named: Vec<String> = documents.iter().filter_map(|d| field(d, "serviceName:")).collect();
    assert!(!named.is_empty(), "the worker StatefulSet names its Service");
    for name in named {
        assert!(services.contains(&name), "a StatefulSet names Service {name}, which the file never defines");
    }
}

#[test]
fn the_docker_example_uses_only_files_that_exist_or_that_it_makes() {
    let dockerfile = read("Dockerfile");
    let comments: String = dockerfile.lines().filter(|l| l.starts_with('#')).collect::<Vec<_>>().join("\n");
    for path in config_paths(&comments) {
        assert!(support::repo_dir().join(&path).exists(), "the example names {path}, which does not exist");
    }
    let env_file = comments
        .split_whitespace()
        .skip_while(|w| *w != "--env-file")
        .nth(1)
        .expect("the example passes the settings with --env-file");
    let made = comments.lines().any(|l| l.contains("cp ") && l.trim_end().ends_with(env_file));
    assert!(
        Path::new(&support::repo_dir().join(env_file)).exists() || made,
        "--env-file {env_file}: neither in the repository nor made by a step"
    );
}
