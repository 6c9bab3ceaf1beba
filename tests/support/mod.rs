//! Shared helpers for the integration tests: where the data is, and how to run the binary.
#![allow(dead_code)]

pub mod daemon;
pub mod fake_api;
pub mod fake_coordinator;
pub mod fake_node;
pub mod fake_slack;
pub mod fake_ws;
pub mod http;
pub mod mini_chain;
pub mod proxy;
pub mod synthetic_elf;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn mini_chain_dir() -> PathBuf {
    repo_dir().join("tests/data/mini-chain")
}

/// The real fixtures in `../shared/fixtures`, one directory per block, or `None` when this
/// machine has no `../shared`. Absence is announced on the terminal (past the test harness's
/// output capture) and is a failure under CI, where `../shared` is always present.
pub fn shared_fixtures(test: &str) -> Option<Vec<PathBuf>> {
    let root = repo_dir().join("../shared/fixtures");
    let mut dirs: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(entries) => {
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("expected.json").is_file()).collect()
        }
        Err(_) => Vec::new(),
    };
    if dirs.is_empty() {
        assert!(
            std::env::var("CI").is_err(),
            "{test}: ../shared/fixtures is missing or empty under CI ({})",
            root.display()
        );
        let _ = writeln!(
            std::io::stderr(),
            "\n*** {test}: SKIPPED, ../shared/fixtures not found at {} — the real-block checks did not run ***\n",
            root.display()
        );
        return None;
    }
    dirs.sort();
    Some(dirs)
}

pub fn daemon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ethproofs-daemon"))
}

/// Runs `generate-input` with the given arguments plus `--out`.
pub fn generate(args: &[&str], out: &Path) -> Output {
    daemon().arg("generate-input").args(args).arg("--out").arg(out).output().expect("run ethproofs-daemon")
}

/// The one JSON line a successful `generate-input` prints.
pub fn success_line(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "generate-input failed: {stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "expected exactly one stdout line, got {stdout:?}");
    serde_json::from_str(lines[0]).expect("stdout line is JSON")
}

/// The one-line error of a failed `generate-input`, after checking it failed cleanly.
pub fn failure_message(output: &Output, out: &Path) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(!output.status.success(), "expected failure, got success: {}", String::from_utf8_lossy(&output.stdout));
    assert!(output.stdout.is_empty(), "nothing on stdout after an error");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one-line error, got {stderr:?}");
    assert!(!out.exists(), "no input file may be written after an error");
    if let Some(dir) = out.parent() {
        let leftovers: Vec<_> = std::fs::read_dir(dir).unwrap().filter_map(|e| e.ok()).collect();
        assert!(
            leftovers.iter().all(|e| !e.file_name().to_string_lossy().contains(".tmp-")),
            "no temporary file may be left behind"
        );
    }
    stderr
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

/// A crates.io source path of `krate` at `version`, as cargo writes it into a guest.
pub fn registry_path(krate: &str, version: &str) -> String {
    format!("/home/ci/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/{krate}-{version}/src/lib.rs")
}
