//! The variables themselves: `ethproofs-daemon run`'s settings as clap reads them from the
//! environment or flags (their docs are the `--help` text), the value types they take, and the
//! parsers that refuse a typo before [`super::Config`] is built.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZiskAction {
    Prove,
    Execute,
    /// No ZisK: re-execute each input natively (the prover stage stands in; nothing is reported).
    Native,
}

/// `PROVER_BACKEND`: what proves each block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProverBackend {
    /// `cargo-zisk prove` on this machine, one process per block.
    Cli,
    /// A job per block on ZisK's coordinator (`ZISK_COORDINATOR_URL`), which spreads it over its workers.
    Coordinator,
}

/// A switch given as `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

/// `INPUT_CHECK`: how an input is checked before a prover spends time on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum InputCheck {
    /// Re-executed natively (ethrex in-process) when it is built.
    Native,
    /// Run by the real guest before it is proved: `ziskemu` (or `cargo-zisk execute`), or an
    /// execute job on the coordinator.
    Emulate,
    /// Both of the above.
    Both,
    /// Neither: the prover is the first to read the input.
    None,
}

impl InputCheck {
    pub fn native(self) -> bool {
        matches!(self, InputCheck::Native | InputCheck::Both)
    }

    pub fn emulate(self) -> bool {
        matches!(self, InputCheck::Emulate | InputCheck::Both)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `ZISK_VERSION`: `auto` asks `cargo-zisk --version`; otherwise the release line whose CLI to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZiskVersionSetting {
    Auto,
    Fixed { major: u64, minor: u64 },
}

impl FromStr for ZiskVersionSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(ZiskVersionSetting::Auto),
            "0.14" => Ok(ZiskVersionSetting::Fixed { major: 0, minor: 14 }),
            "0.15" => Ok(ZiskVersionSetting::Fixed { major: 0, minor: 15 }),
            "0.16" => Ok(ZiskVersionSetting::Fixed { major: 0, minor: 16 }),
            "0.17" => Ok(ZiskVersionSetting::Fixed { major: 0, minor: 17 }),
            "0.18" => Ok(ZiskVersionSetting::Fixed { major: 0, minor: 18 }),
            "1" => Ok(ZiskVersionSetting::Fixed { major: 1, minor: 0 }),
            other => Err(format!("{other:?} is not one of auto, 0.14, 0.15, 0.16, 0.18, 1")),
        }
    }
}

/// `90s`, `30m`, `24h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| format!("{s:?} is not a duration like 90s, 30m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (use s, m, h or d)")),
    };
    Ok(Duration::from_secs(secs))
}

/// A number of seconds from 1 to 30 days: a timeout past that is a typo, and would overflow the
/// clock arithmetic of deadlines.
fn timeout_seconds(s: &str) -> Result<u64, String> {
    match positive_u64(s)? {
        v if v > 30 * 86_400 => Err(format!("{v} s is more than 30 days")),
        v => Ok(v),
    }
}

fn positive_u64(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("must be greater than 0".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{s:?} is not a whole number: {e}")),
    }
}

/// `ethproofs-daemon run` settings. Field docs are the `--help` text.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Start an offline dev chain and run against it, re-executing natively (no node, no ZisK, no config).
    #[arg(long)]
    pub dev: bool,
    /// With --dev: seconds between dev chain blocks.
    #[arg(long, env = "DEV_BLOCK_TIME", default_value = "2", value_parser = positive_u64)]
    pub dev_block_time: u64,
    /// Ethereum node JSON-RPC URL (must serve debug_executionWitness).
    #[arg(long, env = "ETH_RPC_URL", hide_env_values = true)]
    pub eth_rpc_url: Option<Secret>,
    /// Optional WebSocket URL for newHeads; polling stays on as the safety net.
    #[arg(long, env = "ETH_WS_URL", hide_env_values = true)]
    pub eth_ws_url: Option<Secret>,
    /// Genesis or config JSON for a chain without an embedded config (its chain id must match the node's).
    #[arg(long, env = "CHAIN_CONFIG")]
    pub chain_config: Option<PathBuf>,
    /// The ethrex v31 ZisK guest ELF.
    #[arg(long, env = "ELF_PATH", default_value = "guest-elf/zec-ethrex.elf")]
    pub elf_path: PathBuf,
    /// `prove` (GPU proof), `execute` (emulation only, records steps) or `native` (no ZisK: re-execute natively).
    #[arg(long, env = "ZISK_ACTION", value_enum, default_value = "prove")]
    pub zisk_action: ZiskAction,
    /// `on` or `off`: check every proof with zisk-verifier before it is accepted and reported.
    /// Default: on in prove mode when the prover is ZisK 1.x (the only proofs the verifier reads).
    #[arg(long, env = "VERIFY_PROOFS", value_enum)]
    pub verify_proofs: Option<OnOff>,
    /// The guest program's verification key (its ROM root) that every proof must be for: 64 hex
    /// characters or the path of the 32-byte key file. Unset: a proof of any program verifies.
    #[arg(long, env = "PROGRAM_VK")]
    pub program_vk: Option<String>,
    /// Start even when the ELF was built from an ethrex whose input layout differs from this build's.
    #[arg(long, env = "ALLOW_ELF_MISMATCH", default_value = "false", action = clap::ArgAction::Set)]
    pub allow_elf_mismatch: bool,
    /// `cli` (cargo-zisk on this machine) or `coordinator` (ZisK's distributed prover).
    #[arg(long, env = "PROVER_BACKEND", value_enum, default_value = "cli")]
    pub prover_backend: ProverBackend,
    /// The coordinator's API (gRPC) with PROVER_BACKEND=coordinator.
    #[arg(long, env = "ZISK_COORDINATOR_URL", default_value = "http://127.0.0.1:7000")]
    pub zisk_coordinator_url: String,
    /// With the coordinator: on a graceful stop, cancel the running job (default: leave it running
    /// and re-attach to it at the next start).
    #[arg(long, env = "CANCEL_ON_SHUTDOWN", default_value = "false", action = clap::ArgAction::Set)]
    pub cancel_on_shutdown: bool,
    /// Input past this many bytes is streamed to the coordinator after the job is accepted (lower
    /// it when a proxy in front of the coordinator limits gRPC messages).
    #[arg(long, env = "COORDINATOR_INLINE_LIMIT_BYTES", default_value = "133169152", value_parser = positive_u64)]
    pub coordinator_inline_limit_bytes: u64,
    /// `native` (re-execute each input as it is built), `emulate` (run the real guest on it before
    /// proving), `both` or `none`.
    #[arg(long, env = "INPUT_CHECK", value_enum, default_value = "native")]
    pub input_check: InputCheck,
    /// ZisK's emulator for INPUT_CHECK=emulate with the CLI backend (default: `ziskemu` beside
    /// CARGO_ZISK, else `cargo-zisk execute`).
    #[arg(long, env = "ZISKEMU")]
    pub ziskemu: Option<PathBuf>,
    /// How long the guest may take to check one input.
    #[arg(long, env = "INPUT_CHECK_TIMEOUT_SECONDS", default_value = "600", value_parser = timeout_seconds)]
    pub input_check_timeout_seconds: u64,
    /// The cargo-zisk executable.
    #[arg(long, env = "CARGO_ZISK", default_value = "cargo-zisk")]
    pub cargo_zisk: PathBuf,
    /// `auto` (ask `cargo-zisk --version`) or 0.14, 0.15, 0.16, 0.18, 1.
    #[arg(long, env = "ZISK_VERSION", default_value = "auto")]
    pub zisk_version: ZiskVersionSetting,
    /// Extra arguments appended to every cargo-zisk call, split on whitespace (e.g. `-g -k /keys`).
    #[arg(long, env = "ZISK_EXTRA_ARGS", default_value = "", allow_hyphen_values = true)]
    pub zisk_extra_args: String,
    /// Prove every block whose number is a multiple of this.
    #[arg(long, env = "BLOCK_INTERVAL", default_value = "100", value_parser = positive_u64)]
    pub block_interval: u64,
    /// How often to poll eth_blockNumber, in milliseconds.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value = "2000", value_parser = positive_u64)]
    pub poll_interval_ms: u64,
    /// Targets further than this below the head are recorded as skipped instead of proved.
    #[arg(long, env = "MAX_BACKFILL_BLOCKS", default_value = "1000")]
    pub max_backfill_blocks: u64,
    /// Build a target only once the head is this many blocks past it (0: at once).
    #[arg(long, env = "CONFIRMATIONS", default_value = "0")]
    pub confirmations: u64,
    /// How long a node answer that means "not yet" or "slow down" (a null block, a rate-limit
    /// error, a 5xx) is retried, with backoff, before the target fails.
    #[arg(long, env = "NODE_RETRY_SECONDS", default_value = "120")]
    pub node_retry_seconds: u64,
    /// No node answer is read past this size (the largest mainnet witnesses are tens of MB).
    #[arg(long, env = "MAX_RESPONSE_MB", default_value = "1024", value_parser = positive_u64)]
    pub max_response_mb: u64,
    /// First target on a first start (default: the newest target at or below the head).
    #[arg(long, env = "START_BLOCK")]
    pub start_block: Option<u64>,
    /// Where inputs and proofs go (`<dir>/<block>/`).
    #[arg(long, env = "OUTPUT_DIR", default_value = "output")]
    pub output_dir: PathBuf,
    /// Address the health server listens on.
    #[arg(long, env = "HEALTH_HOST", default_value = "0.0.0.0")]
    pub health_host: IpAddr,
    /// Port of the health server.
    #[arg(long, env = "HEALTH_PORT", default_value = "4000")]
    pub health_port: u16,
    /// Address the admin API (and a copy of `/health`) listens on, with `ADMIN_TOKEN`.
    #[arg(long, env = "ADMIN_HOST", default_value = "127.0.0.1")]
    pub admin_host: IpAddr,
    /// Port of the admin API.
    #[arg(long, env = "ADMIN_PORT", default_value = "4001")]
    pub admin_port: u16,
    /// A proof running longer than this makes the daemon degraded (readiness 503).
    #[arg(long, env = "PROVER_STUCK_THRESHOLD_SECONDS", default_value = "3600", value_parser = timeout_seconds)]
    pub prover_stuck_threshold_seconds: u64,
    /// A proof running longer than this is killed (whole process group) and the block failed.
    #[arg(long, env = "PROVER_TIMEOUT_SECONDS", default_value = "7200", value_parser = timeout_seconds)]
    pub prover_timeout_seconds: u64,
    /// After SIGTERM to cargo-zisk's process group, how long to wait before SIGKILL.
    #[arg(long, env = "PROVER_KILL_GRACE_SECONDS", default_value = "10")]
    pub prover_kill_grace_seconds: u64,
    /// EthProofs API base URL, e.g. https://ethproofs.org/api/v0 (set all three ETHPROOFS_* or none).
    #[arg(long, env = "ETHPROOFS_RPC_URL", hide_env_values = true)]
    pub ethproofs_rpc_url: Option<Secret>,
    /// EthProofs API key.
    #[arg(long, env = "ETHPROOFS_API_KEY", hide_env_values = true)]
    pub ethproofs_api_key: Option<Secret>,
    /// EthProofs cluster id (the small integer `id` from GET /clusters).
    #[arg(long, env = "ETHPROOFS_CLUSTER_ID")]
    pub ethproofs_cluster_id: Option<u64>,
    /// At start-up, stop unless GET /clusters shows ETHPROOFS_CLUSTER_ID for the key (`false`: warn and go on).
    #[arg(long, env = "ETHPROOFS_STRICT_STARTUP", default_value = "true", action = clap::ArgAction::Set)]
    pub ethproofs_strict_startup: bool,
    /// A report still failing after this many hours is given up (and alerted).
    #[arg(long, env = "REPORT_MAX_AGE_HOURS", default_value = "24", value_parser = positive_u64)]
    pub report_max_age_hours: u64,
    /// Longest wait between retries of a failing report.
    #[arg(long, env = "REPORT_MAX_BACKOFF_SECONDS", default_value = "300", value_parser = positive_u64)]
    pub report_max_backoff_seconds: u64,
    /// The ledger (SQLite); default `OUTPUT_DIR/ethproofs-daemon.db`.
    #[arg(long, env = "DB_PATH")]
    pub db_path: Option<PathBuf>,
    /// How often a block interrupted while proving (daemon killed) is proved again before it is failed.
    #[arg(long, env = "MAX_PROVE_ATTEMPTS", default_value = "2", value_parser = positive_u64)]
    pub max_prove_attempts: u64,
    /// Slack incoming-webhook URL for alerts.
    #[arg(long, env = "SLACK_WEBHOOK", hide_env_values = true)]
    pub slack_webhook: Option<Secret>,
    /// Inputs and proofs of this many most recent blocks are kept (unreported proofs always are).
    #[arg(long, env = "RETAIN_BLOCKS", default_value = "50")]
    pub retain_blocks: u64,
    /// Below this much free space in OUTPUT_DIR, new work pauses (with an alert) until space returns.
    #[arg(long, env = "MIN_FREE_DISK_MB", default_value = "2048")]
    pub min_free_disk_mb: u64,
    /// Enables the admin API (`/admin/*`), which then requires `Authorization: Bearer <token>`.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Where operators reach this daemon's pages (e.g. https://prover-1.example.org:4000): Slack
    /// alerts then link to the block's page.
    #[arg(long, env = "DASHBOARD_URL")]
    pub dashboard_url: Option<String>,
    /// Also post each proved block to Slack, with its ethproofs.org link.
    #[arg(long, env = "SLACK_NOTIFY_PROVED", default_value = "false", action = clap::ArgAction::Set)]
    pub slack_notify_proved: bool,
    /// trace, debug, info, warn or error (or a tracing filter such as `ethproofs_daemon=debug`).
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// `text` or `json` log lines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
