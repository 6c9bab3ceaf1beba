//! The running daemon: latency from seeing a target at the head to cargo-zisk starting, and the
//! cost of idling (RSS, CPU) while it polls.
//!
//! `cargo bench --bench daemon` runs the release binary against the fake node (serving the
//! largest fixture of `../shared/fixtures`, else the in-repo mini chain) and the fake
//! cargo-zisk, then lets it poll an unmoving head for `DAEMON_BENCH_IDLE_SECONDS` (default 60).
//! Under `cargo test` it does one short pass as a smoke test.
#![recursion_limit = "256"]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::daemon::Daemon;
use support::fake_node::FakeNode;

fn largest_fixture() -> (std::path::PathBuf, u64, u64, Option<std::path::PathBuf>) {
    let root = support::repo_dir().join("../shared/fixtures");
    let best = std::fs::read_dir(&root).ok().and_then(|entries| {
        entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("debug_executionWitness.json").is_file())
            .max_by_key(|p| std::fs::metadata(p.join("debug_executionWitness.json")).map(|m| m.len()).unwrap_or(0))
    });
    let read_json =
        |p: &std::path::Path| -> serde_json::Value { serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap() };
    match best {
        Some(dir) => {
            let expected = read_json(&dir.join("expected.json"));
            let chain = read_json(&dir.join("chain.json"));
            let number = expected["block_number"].as_u64().unwrap();
            let chain_id = chain["chainId"].as_u64().unwrap();
            let chain_file = dir.join("chain.json");
            (dir, number, chain_id, Some(chain_file))
        }
        None => {
            eprintln!("*** ../shared/fixtures not found: measuring with the in-repo mini chain ***");
            let dir = support::mini_chain_dir();
            let chain_file = dir.join("chain.json");
            (dir, 10, 1337, Some(chain_file))
        }
    }
}

/// User + system CPU time of a process, from /proc.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    // After the command: state is field 0, utime 11, stime 12 (in clock ticks).
    let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let idle = if benching {
        Duration::from_secs(std::env::var("DAEMON_BENCH_IDLE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(60))
    } else {
        Duration::from_secs(2)
    };
    let (dir, number, chain_id, chain_file) = largest_fixture();
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let node = FakeNode::start();
    node.set_chain_id(chain_id);
    node.set_head(number);
    node.add_block(number, &read("eth_getBlockByNumber.json"), &read("debug_executionWitness.json"));

    let mut env = vec![
        ("ETH_RPC_URL", node.url.clone()),
        ("BLOCK_INTERVAL", "1".to_string()),
        ("POLL_INTERVAL_MS", "2000".to_string()),
        ("LOG_LEVEL", "info".to_string()),
        ("FAKE_ZISK_SECONDS", "0".to_string()),
        // The fakes' proofs are random bytes, which the verifier rightly refuses.
        ("VERIFY_PROOFS", "off".to_string()),
    ];
    if let Some(chain) = chain_file {
        env.push(("CHAIN_CONFIG", chain.display().to_string()));
    }
    let started = Instant::now();
    let mut daemon = Daemon::start(&env);
    let health = daemon
        .wait_for("the block proved", Duration::from_secs(120), |h| h["components"]["prover"]["proved_count"] == 1);
    let to_proof = started.elapsed();
    let proved = &health["components"]["prover"]["recent_proved"][0];
    let head_to_prover = proved["head_to_prover_ms"].as_u64().unwrap_or(0);

    let pid = daemon.pid();
    // Let the allocator settle after the proof before sampling the idle state.
    std::thread::sleep(Duration::from_secs(1));
    let (cpu0, t0) = (cpu_time(pid), Instant::now());
    let rss_start = rss_mib(pid);
    std::thread::sleep(idle);
    let cpu_pct = (cpu_time(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64() * 100.0;
    let rss_end = rss_mib(pid);
    let polls = node.calls().iter().filter(|c| c.starts_with("eth_blockNumber")).count();

    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    println!("daemon: {} (block {number}), {profile} build, fake cargo-zisk (0 s proofs)", dir.display());
    println!("head seen → cargo-zisk started: {head_to_prover} ms (fetch + build + validate + write the input)");
    println!("daemon start → block proved:    {} ms", to_proof.as_millis());
    println!(
        "idle for {:.0} s polling every 2 s: CPU {cpu_pct:.2} %, RSS {rss_start:.1} → {rss_end:.1} MiB, {polls} eth_blockNumber calls in all",
        idle.as_secs_f64()
    );
    assert!(daemon.terminate().0.success());
}
