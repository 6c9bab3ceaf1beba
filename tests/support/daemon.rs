//! Running the real daemon binary against the fakes, and reading its health endpoints.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::fake_api::FakeApi;
use super::fake_node::FakeNode;
use super::mini_chain_dir;

pub struct Daemon {
    child: Child,
    pub port: u16,
    /// The admin API's port (`ADMIN_PORT`, served when `ADMIN_TOKEN` is set).
    pub admin_port: u16,
    pub dir: tempfile::TempDir,
    pub log: PathBuf,
}

/// A port for a daemon to listen on. Taken below the kernel's ephemeral range (32768 and up), so
/// no outgoing connection of a test running alongside can take it between this check and the
/// daemon's bind; a counter keeps this test binary's picks apart, the pid other binaries'.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let offset = std::process::id() % 600 * 20;
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let port = u16::try_from(FIRST + (offset + n) % SPAN).expect("below 32768");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port in {FIRST}..{}", FIRST + SPAN);
}

pub fn fake_zisk() -> PathBuf {
    super::repo_dir().join("tests/support/fake-cargo-zisk")
}

impl Daemon {
    /// Starts `ethproofs-daemon run` with a clean environment plus `env`. An ELF file, an output
    /// directory and the fake cargo-zisk are provided unless `env` overrides them.
    pub fn start(env: &[(&str, String)]) -> Daemon {
        Daemon::start_with_args(&[], env)
    }

    /// As [`Daemon::start`], with command-line arguments (e.g. `run --dev`).
    pub fn start_with_args(args: &[&str], env: &[(&str, String)]) -> Daemon {
        Daemon::spawn(args, env, |_| {})
    }

    /// As [`Daemon::start`], after `prepare` has put files in the (default) output directory.
    pub fn start_with(env: &[(&str, String)], prepare: impl FnOnce(&Path)) -> Daemon {
        Daemon::spawn(&[], env, prepare)
    }

    fn spawn(args: &[&str], env: &[(&str, String)], prepare: impl FnOnce(&Path)) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        prepare(&dir.path().join("output"));
        let elf = dir.path().join("guest.elf");
        std::fs::write(&elf, super::synthetic_elf::riscv_elf(b"fake guest")).unwrap();
        let port = free_port();
        let admin_port = free_port();
        let log = dir.path().join("daemon.log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ethproofs-daemon"));
        cmd.args(args);
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ELF_PATH", &elf)
            .env("OUTPUT_DIR", dir.path().join("output"))
            .env("CARGO_ZISK", fake_zisk())
            .env("HEALTH_HOST", "127.0.0.1")
            .env("HEALTH_PORT", port.to_string())
            .env("ADMIN_PORT", admin_port.to_string())
            .env("POLL_INTERVAL_MS", "200")
            .env("PROVER_KILL_GRACE_SECONDS", "1")
            .env("LOG_LEVEL", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start ethproofs-daemon");
        Daemon { child, port, admin_port, dir, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> PathBuf {
        self.dir.path().join("output")
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `(HTTP status, JSON body)` of a GET, or `None` while the server is not up.
    pub fn get(&self, path: &str) -> Option<(u16, Value)> {
        self.request(path, "")
    }

    pub fn get_with_token(&self, path: &str, token: &str) -> Option<(u16, Value)> {
        self.request(path, &format!("Authorization: Bearer {token}\r\n"))
    }

    /// A GET on the admin address, with the token.
    pub fn admin_get(&self, path: &str, token: &str) -> Option<(u16, Value)> {
        let (status, body) = self.raw_get_on(self.admin_port, path, &format!("Authorization: Bearer {token}\r\n"))?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// The raw body of a GET (for `/metrics`).
    pub fn get_text(&self, path: &str) -> Option<String> {
        self.raw_get(path, "").map(|(_, body)| body)
    }

    fn request(&self, path: &str, extra_headers: &str) -> Option<(u16, Value)> {
        let (status, body) = self.raw_get(path, extra_headers)?;
        Some((status, serde_json::from_str(&body).unwrap_or(Value::Null)))
    }

    /// `(status, body)` of one GET over a fresh connection.
    fn raw_get(&self, path: &str, extra_headers: &str) -> Option<(u16, String)> {
        self.raw_get_on(self.port, path, extra_headers)
    }

    fn raw_get_on(&self, port: u16, path: &str, extra_headers: &str) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra_headers}Connection: close\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let status = text.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, text.split_once("\r\n\r\n")?.1.to_string()))
    }

    pub fn health(&self) -> Value {
        self.get("/health").map(|(_, v)| v).unwrap_or(Value::Null)
    }

    /// Polls `/health` until `done` holds, failing with the last document and the log otherwise.
    pub fn wait_for(&mut self, what: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("daemon exited ({status}) while waiting for {what}\n{}", self.logs());
            }
            last = self.health();
            if done(&last) {
                return last;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}; last /health: {last:#}\n--- log ---\n{}", self.logs());
    }

    /// Waits until the daemon has nothing left to do: no target to build, no block queued or
    /// proving, no EthProofs call pending, no Slack message queued. From then on nothing more
    /// happens without a new head or an operator's command, so a check that something did *not*
    /// happen (a second call, a second run) holds for good, with no sleep to hope it would.
    pub fn wait_idle(&mut self, timeout: Duration) -> Value {
        self.wait_for("the daemon idle", timeout, |h| {
            let c = &h["components"];
            let none = |v: &Value| v.as_array().is_some_and(|a| a.is_empty());
            c["input_generator"]["queue_length"] == 0
                && none(&c["input_generator"]["building"])
                && c["prover"]["queue_length"] == 0
                && none(&c["prover"]["in_flight"])
                && c["prover"]["state"] == "idle"
                && c["reporter"]["queue_length"] == 0
                && matches!(c["reporter"]["state"].as_str(), Some("idle" | "disabled"))
                && c["notifier"]["queue_length"] == 0
                && c["notifier"]["state"] == "idle"
        })
    }

    /// Waits until the InputGenerator has answered `n` more head polls (its `head_seen_at` moved
    /// on `n` times; it polls while paused too): it has had its turns since, each ending by
    /// looking for work, so a check that it started none means something.
    pub fn wait_for_polls(&mut self, n: usize, timeout: Duration) {
        let seen = |h: &Value| h["components"]["input_generator"]["head_seen_at"].as_str().map(str::to_string);
        let mut last = seen(&self.health());
        for _ in 0..n {
            let before = last.clone();
            let h = self.wait_for("a later head poll", timeout, |h| seen(h).is_some() && seen(h) != before);
            last = seen(&h);
        }
    }

    /// Polls `done` (which may read the daemon's log, `/metrics` or admin API) until it holds,
    /// failing with the log if the daemon exits or `timeout` passes.
    pub fn until(&mut self, what: &str, timeout: Duration, done: impl Fn(&Daemon) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.exited() {
                panic!("daemon exited ({status}) while waiting for {what}\n{}", self.logs());
            }
            if done(self) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("timed out waiting for {what}\n--- log ---\n{}", self.logs());
    }

    /// The exit status, if the daemon has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// SIGKILL: the daemon gets no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits for the exit: `(status, how long it took)`.
    pub fn terminate(&mut self) -> (ExitStatus, Duration) {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal` (SIGTERM, SIGHUP, SIGINT) and waits for the exit.
    pub fn stop_with(&mut self, signal: i32) -> (ExitStatus, Duration) {
        let start = Instant::now();
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            if start.elapsed() > Duration::from_secs(40) {
                let _ = self.child.kill();
                panic!("daemon did not exit within 40 s of signal {signal}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("daemon still running after {timeout:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether any pid listed in `file` (whitespace separated) still runs.
pub fn any_alive(file: &Path) -> Vec<i32> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .filter(|&p| ethproofs_daemon::outside::process::process_alive(p))
        .collect()
}

pub const KEY: &str = "test-api-key-SECRET";

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// A node serving the mini chain (blocks 10 and 11) with the head at `head`.
pub fn mini_node(head: u64) -> FakeNode {
    let node = FakeNode::start();
    let dir = mini_chain_dir();
    node.set_chain_id(1337);
    node.set_head(head);
    node.add_block(10, &read(&dir.join("eth_getBlockByNumber.json")), &read(&dir.join("debug_executionWitness.json")));
    let b11 = dir.join("block-11");
    node.add_block(11, &read(&b11.join("eth_getBlockByNumber.json")), &read(&b11.join("debug_executionWitness.json")));
    node
}

/// The node's answers for mini chain block `n` (10 or 11): the block's JSON and its witness's.
pub fn mini_block(n: u64) -> (String, String) {
    let dir = if n == 10 { mini_chain_dir() } else { mini_chain_dir().join(format!("block-{n}")) };
    (read(&dir.join("eth_getBlockByNumber.json")), read(&dir.join("debug_executionWitness.json")))
}

/// What a proof of mini chain block `n` (10 or 11) must commit to, computed from the same
/// answers the fake node serves.
pub fn mini_outputs(n: u64) -> ethproofs_daemon::block::commitment::BlockOutputs {
    let chain: ethrex_common::types::ChainConfig =
        serde_json::from_str(&read(&mini_chain_dir().join("chain.json"))).unwrap();
    let (block, witness) = mini_block(n);
    let raw = ethproofs_daemon::block::input::parse(block.as_bytes(), witness.as_bytes()).unwrap();
    let (_, summary) = raw.convert(&chain).unwrap();
    summary.outputs(chain.chain_id)
}

/// The 64 output words (as little-endian bytes) a guest committing mini chain block `n`'s
/// outputs in the `encoded` layout writes.
pub fn mini_output_bytes(n: u64) -> Vec<u8> {
    use ethproofs_daemon::block::commitment::{OutputLayout, words_for};
    words_for(OutputLayout::Encoded, &mini_outputs(n)).iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// The environment of a daemon on the mini chain, every block a target, reporting to `api`.
pub fn base_env(node: &FakeNode, api: Option<&FakeApi>) -> Vec<(&'static str, String)> {
    let mut env = vec![
        // A path on the node URL stands in for a provider key: it must never be logged.
        ("ETH_RPC_URL", format!("{}/NODE-SECRET-PATH", node.url)),
        ("CHAIN_CONFIG", mini_chain_dir().join("chain.json").display().to_string()),
        ("BLOCK_INTERVAL", "1".into()),
        // A block the fake node does not have is final at once (tests/hostile.rs retries).
        ("NODE_RETRY_SECONDS", "0".into()),
        // The fake prover's proofs are random bytes, which the verifier rightly refuses; the
        // tests of verification turn it on.
        ("VERIFY_PROOFS", "off".into()),
    ];
    if let Some(api) = api {
        env.push(("ETHPROOFS_RPC_URL", api.url.clone()));
        env.push(("ETHPROOFS_API_KEY", KEY.into()));
        env.push(("ETHPROOFS_CLUSTER_ID", "7".into()));
    }
    env
}

/// The Prover's counts (`proved_count`, `failed_count`, `executed_count`) and what its recent list
/// shows agree: `/health` counts blocks from the ledger, and the Prover lists them at its next
/// turn, so a check of `recent_*[0]` waits for both.
pub fn counted_and_listed(h: &Value, what: &str, n: u64) -> bool {
    let p = prover(h);
    p[format!("{what}_count")] == n && p[format!("recent_{what}")].as_array().is_some_and(|l| l.len() as u64 >= n)
}

/// The `/health` document's components, by name.
pub fn prover(h: &Value) -> &Value {
    &h["components"]["prover"]
}

pub fn reporter(h: &Value) -> &Value {
    &h["components"]["reporter"]
}

pub fn input_gen(h: &Value) -> &Value {
    &h["components"]["input_generator"]
}

/// Sets `key` in a daemon environment, replacing any earlier value.
pub fn set(env: &mut Vec<(&'static str, String)>, key: &'static str, value: impl Into<String>) {
    env.retain(|(k, _)| *k != key);
    env.push((key, value.into()));
}

/// An environment whose fake prover hangs, recording its pids in `pids`.
pub fn hanging(node: &FakeNode, pids: &Path, stuck_after_seconds: u64) -> Vec<(&'static str, String)> {
    let mut env = base_env(node, None);
    set(&mut env, "FAKE_ZISK_MODE", "hang");
    set(&mut env, "FAKE_ZISK_PIDS", pids.display().to_string());
    set(&mut env, "PROVER_STUCK_THRESHOLD_SECONDS", stuck_after_seconds.to_string());
    env
}
