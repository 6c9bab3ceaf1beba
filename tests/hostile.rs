#![recursion_limit = "256"]
//! A hostile world, through the real binary: a node that answers the wrong block, `null` before
//! it has the block, "slow down" as a JSON-RPC error with HTTP 200, a huge answer and an absurd
//! head; an API that answers a proxy's HTML page with 200, an absurd `Retry-After`, or fails for
//! one block only; a prover that prints garbage, or exits 0 without a proof after an earlier
//! run left one. Each fault must leave the daemon running, lose nothing done, report nothing
//! false. Each scenario is a test of its own, run six at a time.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::daemon::{Daemon, KEY, base_env, counted_and_listed, mini_node, prover, read, set};
use support::fake_api::FakeApi;
use support::fake_node::Answer;

fn accepted(api: &FakeApi, endpoint: &str, block: u64) -> usize {
    api.accepted().iter().filter(|(e, b)| e == endpoint && *b == block).count()
}

fn missed(h: &Value) -> Vec<Value> {
    h["components"]["input_generator"]["missed_blocks"].as_array().cloned().unwrap_or_default()
}

fn alive_and_healthy(d: &mut Daemon) {
    assert!(d.exited().is_none(), "the daemon died\n{}", d.logs());
    assert_eq!(d.get("/health/live").map(|(s, _)| s), Some(200));
}

fn wrong_block() {
    let node = mini_node(10);
    let b11 = support::mini_chain_dir().join("block-11");
    // A proxy's cache answers block 11 when asked for block 10.
    node.add_block(10, &read(&b11.join("eth_getBlockByNumber.json")), &read(&b11.join("debug_executionWitness.json")));
    let api = FakeApi::start(KEY);
    let mut d = Daemon::start(&base_env(&node, Some(&api)));
    let h = d.wait_for("block 10 missed", Duration::from_secs(30), |h| !missed(h).is_empty());
    let reason = missed(&h)[0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("asked the node for block 10, it answered block 11"), "{reason}");
    assert_eq!(accepted(&api, "proved", 10), 0, "nothing proved for the wrong block");
    alive_and_healthy(&mut d);
}

fn null_then_available() {
    // Block 11 is the head; target 10 answers `null` at first.
    let node = mini_node(11);
    let (block, witness) = support::daemon::mini_block(10);
    node.add_block(10, "null", "null");
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "NODE_RETRY_SECONDS", "30");
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    // Asked, answered null, and asked again: the daemon keeps waiting for it.
    d.wait_for("block 10 asked for again", Duration::from_secs(30), |_| {
        node.calls().iter().filter(|c| c.starts_with("eth_getBlockByNumber 10")).count() >= 2
    });
    node.add_block(10, &block, &witness);
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    assert!(missed(&d.health()).is_empty(), "a block the node did not have yet is not a missed target");
}

fn rate_limited_with_http_200() {
    let node = mini_node(10);
    node.answer("debug_executionWitness", Answer::Error { code: -32005, message: "limit exceeded".into() });
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "NODE_RETRY_SECONDS", "30");
    let mut d = Daemon::start(&env);
    // Refused, and asked again: a rate limit is waited out, not taken for the answer.
    d.wait_for("the rate-limited fetch asked again", Duration::from_secs(30), |_| {
        node.calls().iter().filter(|c| c.starts_with("debug_executionWitness")).count() >= 2
    });
    node.clear_answer("debug_executionWitness");
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
}

fn huge_answer() {
    let node = mini_node(10);
    let dir = support::mini_chain_dir();
    let witness = format!(r#"{{"state":[],"codes":[],"keys":[],"headers":[],"padding":"{}"}}"#, "x".repeat(3_000_000));
    node.add_block(10, &read(&dir.join("eth_getBlockByNumber.json")), &witness);
    let mut env = base_env(&node, None);
    set(&mut env, "MAX_RESPONSE_MB", "1");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 missed", Duration::from_secs(30), |h| !missed(h).is_empty());
    let reason = missed(&h)[0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("larger than MAX_RESPONSE_MB"), "{reason}");
    alive_and_healthy(&mut d);
}

/// The daemon's peak resident memory so far, in MiB.
fn peak_rss_mib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok());
    kb.unwrap_or(0) / 1024
}

fn a_300_mb_block_answer() {
    let node = mini_node(11);
    // Block 10's answer is 300 MB of padding around a block; block 11 is a real one.
    let dir = support::mini_chain_dir();
    let block = read(&dir.join("eth_getBlockByNumber.json"));
    let huge = format!(r#"{{"padding":"{}","block":{block}}}"#, "0".repeat(300_000_000));
    node.add_block(10, &huge, &read(&dir.join("debug_executionWitness.json")));
    drop(huge);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 missed", Duration::from_secs(60), |h| missed(h).iter().any(|m| m["block"] == 10));
    let m = missed(&h).into_iter().find(|m| m["block"] == 10).unwrap();
    assert_eq!(m["stage"], "fetch_block", "{m}");
    assert!(m["reason"].as_str().unwrap_or_default().contains("the cap for a block's answer"), "named: {m}");
    d.wait_for("block 11 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 11) == 1);
    let peak = peak_rss_mib(d.pid());
    assert!(peak > 0 && peak < 200, "the daemon's peak memory is {peak} MiB");
    alive_and_healthy(&mut d);
}

fn absurd_head() {
    let node = mini_node(10);
    let mut env = base_env(&node, None);
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved", Duration::from_secs(30), |h| prover(h)["proved_count"] == 1);
    node.lie_head(u64::MAX);
    let refused = format!("head {} is not believed", u64::MAX);
    d.until("the absurd head refused", Duration::from_secs(30), |d| d.logs().contains(&refused));
    let h = d.health();
    assert_eq!(h["components"]["input_generator"]["head"], 10, "the absurd head was not believed: {h:#}");
    node.set_head(11);
    d.wait_for("block 11 proved", Duration::from_secs(30), |h| prover(h)["proved_count"] == 2);
    alive_and_healthy(&mut d);
}

/// A fresh ledger's first head answer is 200,000,000, a height the node has no block for.
fn an_absurd_first_head() {
    let node = mini_node(11);
    node.lie_head(200_000_000);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "START_BLOCK", "10");
    let mut d = Daemon::start(&env);
    d.wait_for("the absurd head looked up", Duration::from_secs(30), |_| {
        node.calls().iter().any(|c| c == "eth_getBlockByNumber 200000000")
    });
    node.set_head(11);
    d.wait_for("blocks 10 and 11 reported", Duration::from_secs(60), |_| {
        accepted(&api, "proved", 10) == 1 && accepted(&api, "proved", 11) == 1
    });
    let h = d.health();
    assert_eq!(h["components"]["input_generator"]["head"], 11, "{h:#}");
    assert!(missed(&h).is_empty(), "no target given up: {h:#}");
    assert_eq!(d.get("/api/blocks/200000000").map(|(s, _)| s), Some(404), "the absurd block is not in the ledger");
    assert!(d.logs().contains("head 200000000 is not believed"), "the log names the block");
    alive_and_healthy(&mut d);
}

/// An operator asks for block 1,000,000 on a chain at block 10: it waits, block 11 does not.
fn a_typo_waits_without_holding_back_targets() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "START_BLOCK", "10");
    // Before the head rule, the typo's fetch was retried this long while block 11 waited.
    set(&mut env, "NODE_RETRY_SECONDS", "600");
    env.push(("ADMIN_TOKEN", "hostile-admin-token".into()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    let out = support::daemon()
        .args(["prove", "1000000", "--url", &format!("http://127.0.0.1:{}", d.admin_port)])
        .env("ADMIN_TOKEN", "hostile-admin-token")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    d.until("the typo named as waiting", Duration::from_secs(30), |d| {
        d.logs().contains("block 1000000 waits: the node's head is 10")
    });
    node.set_head(11);
    d.wait_for("block 11 reported", Duration::from_secs(60), |_| accepted(&api, "proved", 11) == 1);
    assert!(!node.calls().iter().any(|c| c == "eth_getBlockByNumber 1000000"), "the typo was never fetched");
    alive_and_healthy(&mut d);
}

/// Block 10 of the mini chain after a one-block reorg at the tip: the same height, another
/// hash (`byte` repeated), and its witness.
fn block_10_reorged(byte: &str) -> (Value, String) {
    let (block, witness) = support::daemon::mini_block(10);
    let mut other: Value = serde_json::from_str(&block).unwrap();
    let header = if other.get("result").is_some() { &mut other["result"] } else { &mut other };
    header["hash"] = Value::String(format!("0x{}", byte.repeat(32)));
    (other, witness)
}

fn reorg_while_proving() {
    let node = mini_node(10);
    let (other, witness) = block_10_reorged("ab");
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "FAKE_ZISK_SECONDS", "2");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proving", Duration::from_secs(30), |h| prover(h)["proving_block"] == 10);
    node.add_block(10, &other.to_string(), &witness);
    let out = d.output();
    let orphan_kept = || {
        std::fs::read_dir(&out)
            .map(|e| e.flatten().any(|e| e.file_name().to_string_lossy().starts_with("10.orphan-")))
            .unwrap_or(false)
    };
    d.wait_for("the orphan's proof kept aside", Duration::from_secs(30), |_| orphan_kept());
    // The block now at height 10 is built again; this fake one does not hash to its `hash`, so
    // it fails there, with its reason, and nothing is ever reported proved for height 10.
    let h = d.wait_for("block 10 rebuilt from the new chain", Duration::from_secs(30), |h| !missed(h).is_empty());
    let reason = missed(&h)[0]["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason.contains("hash mismatch"), "{reason}");
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(accepted(&api, "proved", 10), 0, "the orphan's proof is never reported");
    alive_and_healthy(&mut d);
}

fn node_fails_across_the_exit_then_reorgs_across_a_kill_9() {
    let node = mini_node(10);
    let (other, witness) = block_10_reorged("cd");
    let api = FakeApi::start(KEY);
    let out = tempfile::tempdir().unwrap();
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "FAKE_ZISK_SECONDS", "2");
    env.push(("OUTPUT_DIR", out.path().display().to_string()));
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proving", Duration::from_secs(30), |h| prover(h)["proving_block"] == 10);
    // The node cannot say which block is at height 10 when the proof comes out.
    node.answer("eth_getBlockByNumber", Answer::Error { code: -32000, message: "header not found".into() });
    d.wait_for("proved held for the canonical check", Duration::from_secs(30), |h| {
        h["components"]["reporter"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("waiting for the node to confirm block 10"))
    });
    assert_eq!(accepted(&api, "proved", 10), 0, "never sent on hope");
    d.kill9();
    // Meanwhile height 10 reorganised. The next start sends nothing for the orphan.
    node.clear_answer("eth_getBlockByNumber");
    node.add_block(10, &other.to_string(), &witness);
    let mut d = Daemon::start(&env);
    let orphan_kept = || {
        std::fs::read_dir(out.path())
            .map(|e| e.flatten().any(|e| e.file_name().to_string_lossy().starts_with("10.orphan-")))
            .unwrap_or(false)
    };
    d.wait_for("the orphan's proof kept aside", Duration::from_secs(30), |_| orphan_kept());
    d.wait_for("block 10 rebuilt from the new chain", Duration::from_secs(30), |h| !missed(h).is_empty());
    assert_eq!(accepted(&api, "proved", 10), 0, "the orphan's proof is never reported");
    alive_and_healthy(&mut d);
}

fn html_200_is_not_delivery() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    api.script("proved", 200, &[], "<html><body>Bad gateway</body></html>");
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "REPORT_MAX_BACKOFF_SECONDS", "1");
    let mut d = Daemon::start(&env);
    let proved_calls = || api.received().iter().filter(|r| r.path.ends_with("/proved")).count();
    // The fake records the HTML answer as a 200; the daemon must not take it for delivery.
    d.wait_for("proved sent again after the HTML page", Duration::from_secs(60), |_| proved_calls() == 2);
    let h = d.wait_for("the real answer settled", Duration::from_secs(30), |h| {
        h["components"]["reporter"]["queue_length"] == 0
    });
    assert_eq!(h["components"]["reporter"]["delivered_count"], 3, "{h:#}");
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(proved_calls(), 2, "settled by the real answer, not sent a third time");
    alive_and_healthy(&mut d);
}

fn absurd_retry_after() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    api.script("proved", 429, &[("Retry-After", "18446744073709551615")], r#"{"error":"Rate limit exceeded"}"#);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "REPORT_MAX_BACKOFF_SECONDS", "2");
    let mut d = Daemon::start(&env);
    d.wait_for("proved delivered despite the header", Duration::from_secs(30), |_| accepted(&api, "proved", 10) == 1);
    alive_and_healthy(&mut d);
}

fn one_blocks_failures_hold_back_no_other() {
    let node = mini_node(11);
    let api = FakeApi::start(KEY);
    api.fail_block(10, Some(503));
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "START_BLOCK", "10");
    set(&mut env, "REPORT_MAX_BACKOFF_SECONDS", "1");
    let mut d = Daemon::start(&env);
    d.wait_for("block 11 reported while 10 fails", Duration::from_secs(60), |_| accepted(&api, "proved", 11) == 1);
    assert_eq!(accepted(&api, "proved", 10), 0);
    api.fail_block(10, None);
    d.wait_for("block 10 reported too", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
}

fn garbage_prover_output() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "FAKE_ZISK_MODE", "binary");
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved and reported", Duration::from_secs(60), |_| accepted(&api, "proved", 10) == 1);
    alive_and_healthy(&mut d);
}

fn a_stale_proof_never_counts() {
    let node = mini_node(10);
    let api = FakeApi::start(KEY);
    let mut env = base_env(&node, Some(&api));
    set(&mut env, "FAKE_ZISK_MODE", "silent");
    let mut d = Daemon::start_with(&env, |output| {
        // An earlier run's proof is where this run's should be.
        std::fs::create_dir_all(output.join("10")).unwrap();
        std::fs::write(output.join("10/proof.bin"), [1u8; 2048]).unwrap();
    });
    let h = d.wait_for("block 10 failed", Duration::from_secs(60), |h| counted_and_listed(h, "failed", 1));
    assert_eq!(prover(&h)["recent_failed"][0]["stage"], "proof_output", "{h:#}");
    d.wait_idle(Duration::from_secs(30));
    assert_eq!(accepted(&api, "proved", 10), 0, "a stale proof is never reported");
    alive_and_healthy(&mut d);
}

fn escaped_grandchild() {
    let node = mini_node(10);
    let pids = tempfile::NamedTempFile::new().unwrap();
    let mut env = base_env(&node, None);
    set(&mut env, "FAKE_ZISK_MODE", "escape");
    set(&mut env, "FAKE_ZISK_PIDS", pids.path().display().to_string());
    let mut d = Daemon::start(&env);
    d.wait_for("block 10 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    let mut alive = support::daemon::any_alive(pids.path());
    for _ in 0..50 {
        if alive.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        alive = support::daemon::any_alive(pids.path());
    }
    assert!(alive.is_empty(), "the prover's helper outside its group outlived the run: {alive:?}");
    alive_and_healthy(&mut d);
}

fn hung_head_poll() {
    let node = mini_node(9);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("up", Duration::from_secs(30), |h| h["status"] == "healthy");
    // One eth_blockNumber that never answers (for longer than the poll's 30 s timeout).
    node.answer("eth_blockNumber", Answer::Hang(Duration::from_secs(300)));
    d.wait_for("a poll that hangs", Duration::from_secs(30), |_| node.hung() >= 1);
    node.clear_answer("eth_blockNumber");
    node.set_head(10);
    d.wait_for("polling resumed and block 10 proved", Duration::from_secs(60), |h| prover(h)["proved_count"] == 1);
    alive_and_healthy(&mut d);
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

fn half_open_flood() {
    use std::io::Write as _;
    let node = mini_node(9);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("up", Duration::from_secs(30), |h| h["status"] == "healthy");
    let before = open_fds(d.pid());
    // 300 clients that start a request and never finish its headers.
    let flood: Vec<std::net::TcpStream> = (0..300)
        .filter_map(|_| {
            let mut s = std::net::TcpStream::connect(("127.0.0.1", d.port)).ok()?;
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = open_fds(d.pid());
    assert!(during <= before + 70, "descriptors held: {before} before, {during} during the flood");
    d.wait_for("health answers again", Duration::from_secs(15), |h| h["status"] == "healthy");
    drop(flood);
    alive_and_healthy(&mut d);
}

/// A probe as the kubelet makes it: one GET, answered within its 1 s timeout or failed.
fn probe(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// A connection to the daemon's port from another loopback address (127.0.0.2): another client
/// than the kubelet's probes, which come from 127.0.0.1.
fn connect_from_elsewhere(rt: &tokio::runtime::Runtime, port: u16) -> Option<std::net::TcpStream> {
    rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().ok()?;
        socket.bind("127.0.0.2:0".parse().ok()?).ok()?;
        let stream = socket.connect(([127, 0, 0, 1], port).into()).await.ok()?;
        let stream = stream.into_std().ok()?;
        stream.set_nonblocking(false).ok()?;
        Some(stream)
    })
}

fn probes_answer_through_a_flood() {
    use std::io::{Read as _, Write as _};
    let node = mini_node(9);
    let mut d = Daemon::start(&base_env(&node, None));
    d.wait_for("up", Duration::from_secs(30), |h| h["status"] == "healthy");
    let port = d.port;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
    // 1,000 clients that start a request and never finish its headers.
    let slow: Vec<std::net::TcpStream> = (0..1000)
        .filter_map(|_| {
            let mut s = connect_from_elsewhere(&rt, port)?;
            let _ = s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n");
            Some(s)
        })
        .collect();
    assert!(slow.len() > 900, "the flood opened {} connections", slow.len());
    // And the dashboard polled as fast as it answers, from four clients there too.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Some(mut s) = connect_from_elsewhere(&rt, port) {
                        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = s.write_all(b"GET /api/dashboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                        let _ = s.read_to_end(&mut Vec::new());
                    }
                }
            })
        })
        .collect();
    let mut failed = Vec::new();
    for round in 0..20 {
        for path in ["/health/live", "/health/ready"] {
            match probe(port, path) {
                Some(200) => {}
                other => failed.push(format!("round {round} {path}: {other:?}")),
            }
        }
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for p in pollers {
        let _ = p.join();
    }
    assert!(failed.is_empty(), "{} of 40 probes not answered within 1 s: {failed:?}", failed.len());
    drop(slow);
    alive_and_healthy(&mut d);
}

fn key_bearing_url_in_any_spelling() {
    let node = mini_node(9);
    let mut env = base_env(&node, None);
    // Upper-case scheme and host, an explicit port, and a key in the path.
    let url = node.url.replace("http://127.0.0.1", "HTTP://LOCALHOST");
    set(&mut env, "ETH_RPC_URL", format!("{url}/NODE-SECRET-PATH"));
    let mut d = Daemon::start(&env);
    d.wait_for("up", Duration::from_secs(30), |h| h["status"] == "healthy");
    node.answer("eth_blockNumber", Answer::Http { status: 500, body: "upstream down".into() });
    let h = d.wait_for("the poll failure shown", Duration::from_secs(30), |h| {
        h["components"]["input_generator"]["rpc_error"].is_string()
    });
    let logs = d.logs();
    assert!(!logs.contains("NODE-SECRET-PATH") && !h.to_string().contains("NODE-SECRET-PATH"), "{logs}\n{h:#}");
    node.clear_answer("eth_blockNumber");
    alive_and_healthy(&mut d);
}

fn forged_error_text() {
    let node = mini_node(10);
    let said = "boom\nFAKE LOG LINE level=error from https://user:PASSWORD@node.example/v3/SECRET?key=SECRET \
                at /var/lib/hidden-dir/10/witness.json\r\u{1b}[2J";
    node.answer("debug_executionWitness", Answer::Error { code: -32602, message: said.into() });
    let mut env = base_env(&node, None);
    set(&mut env, "NODE_RETRY_SECONDS", "1");
    let mut d = Daemon::start(&env);
    let h = d.wait_for("block 10 missed", Duration::from_secs(60), |h| !missed(h).is_empty());
    let (code, page) = d.get("/api/blocks/10").expect("the block page answers");
    assert_eq!(code, 200, "{page}");
    for (what, text) in [("/health", h.to_string()), ("/api/blocks/10", page.to_string())] {
        for secret in ["PASSWORD", "SECRET", "/var/lib", "hidden-dir", "\\u001b"] {
            assert!(!text.contains(secret), "{what} shows {secret}: {text}");
        }
    }
    let logs = d.logs();
    assert!(logs.contains("FAKE LOG LINE"), "the node's words are logged: {logs}");
    let forged: Vec<&str> = logs.lines().filter(|l| l.trim_start().starts_with("FAKE LOG LINE")).collect();
    assert!(forged.is_empty(), "a log line forged by the node: {forged:?}");
    assert!(!logs.contains('\u{1b}'), "a terminal escape reached the log");
    alive_and_healthy(&mut d);
}

/// How many scenarios run side by side unless `--test-threads` says otherwise: every scenario
/// runs a daemon (and some a 300 MB answer), and this machine has two cores; a scenario starved
/// of CPU would time out for no fault of the daemon's.
const SCENARIOS_AT_ONCE: usize = 6;

/// Each scenario is a test of its own (`cargo test --test hostile wrong_block` runs one alone);
/// all of them run 21 in all, six at a time.
fn main() -> std::process::ExitCode {
    let scenarios: Vec<(&str, &str, fn())> = vec![
        ("wrong_block", "the node answers another block than the one asked for", wrong_block),
        ("null_then_available", "the node answers null until it has the block", null_then_available),
        (
            "rate_limited_with_http_200",
            "the node says `limit exceeded` as a JSON-RPC error with HTTP 200",
            rate_limited_with_http_200,
        ),
        ("huge_answer", "the node's answer is larger than MAX_RESPONSE_MB", huge_answer),
        ("a_300_mb_block_answer", "the node answers 300 MB for a block", a_300_mb_block_answer),
        ("absurd_head", "the node reports an absurd head (u64::MAX)", absurd_head),
        (
            "an_absurd_first_head",
            "a fresh ledger's first head is 200,000,000 with no block there",
            an_absurd_first_head,
        ),
        (
            "a_typo_waits_without_holding_back_targets",
            "an operator's `prove 1000000` on a chain at block 10",
            a_typo_waits_without_holding_back_targets,
        ),
        ("reorg_while_proving", "the node's block changes while it is being proved (a reorg)", reorg_while_proving),
        (
            "node_fails_across_the_exit_then_reorgs_across_a_kill_9",
            "the node fails across the prover's exit, then reorgs across a kill -9",
            node_fails_across_the_exit_then_reorgs_across_a_kill_9,
        ),
        ("html_200_is_not_delivery", "the API (a proxy) answers an HTML page with 200", html_200_is_not_delivery),
        ("absurd_retry_after", "the API sends Retry-After: 18446744073709551615", absurd_retry_after),
        (
            "one_blocks_failures_hold_back_no_other",
            "the API fails for one block only",
            one_blocks_failures_hold_back_no_other,
        ),
        (
            "garbage_prover_output",
            "the prover prints bytes that are not UTF-8 and a 100 kB line",
            garbage_prover_output,
        ),
        (
            "a_stale_proof_never_counts",
            "the prover exits 0 without a proof after an earlier run left one",
            a_stale_proof_never_counts,
        ),
        ("half_open_flood", "300 half-open connections on the daemon's port", half_open_flood),
        (
            "probes_answer_through_a_flood",
            "1,000 slow connections and a dashboard poll flood: the probes still answer",
            probes_answer_through_a_flood,
        ),
        ("hung_head_poll", "one eth_blockNumber call never answers", hung_head_poll),
        ("escaped_grandchild", "the prover leaves a helper running outside its process group", escaped_grandchild),
        (
            "key_bearing_url_in_any_spelling",
            "a key-bearing node URL in non-canonical spelling",
            key_bearing_url_in_any_spelling,
        ),
        ("forged_error_text", "the node's error text forges a log line, carries keys and paths", forged_error_text),
    ];
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads = args.test_threads.or(Some(SCENARIOS_AT_ONCE));
    let trials = scenarios
        .into_iter()
        .map(|(name, what, f)| {
            libtest_mimic::Trial::test(name, move || {
                std::panic::catch_unwind(f).map_err(|panic| {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into());
                    format!("{what}: {why}").into()
                })
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}
