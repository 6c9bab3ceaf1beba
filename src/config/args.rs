//! The variables themselves: `ethproofs-daemon run`'s settings as clap reads them from the
//! environment or flags (their docs are the `--help` text), the value types they take, and the
//! parsers that refuse a typo before [`super::Config`] is built.

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::lanes::{CohortSetting, GpuList, ProveOrder};
use super::{Secret, ValueError};

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

/// The release lines `ZISK_VERSION` may name (besides `auto`), each with the version it stands for:
/// the one list the parser, its error, `--help` and the docs use.
pub const ZISK_VERSION_LINES: &[(&str, u64, u64)] =
    &[("0.14", 0, 14), ("0.15", 0, 15), ("0.16", 0, 16), ("0.17", 0, 17), ("0.18", 0, 18), ("1", 1, 0)];

impl FromStr for ZiskVersionSetting {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            return Ok(ZiskVersionSetting::Auto);
        }
        match ZISK_VERSION_LINES.iter().find(|(name, _, _)| *name == s) {
            Some(&(_, major, minor)) => Ok(ZiskVersionSetting::Fixed { major, minor }),
            None => {
                let names: Vec<&str> = ZISK_VERSION_LINES.iter().map(|(n, _, _)| *n).collect();
                Err(format!("{s:?} is not one of auto, {}", names.join(", ")))
            }
        }
    }
}

/// `ZISK_VERSION`'s parser: clap shows (and refuses) by the same list.
fn zisk_version_setting() -> impl clap::builder::TypedValueParser<Value = ZiskVersionSetting> {
    let names = std::iter::once("auto").chain(ZISK_VERSION_LINES.iter().map(|(n, _, _)| *n));
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(names).try_map(|s| s.parse::<ZiskVersionSetting>())
}

/// `LOG_LEVEL`: a level, or comma-separated `target=level` directives. A bare word that is not a
/// level (`verbose`) would be taken by tracing as a target name and silence the daemon: refused.
pub fn check_log_filter(s: &str) -> Result<(), ValueError> {
    const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];
    let is_level = |l: &str| LEVELS.contains(&l.trim().to_ascii_lowercase().as_str());
    let directives: Vec<&str> = s.split(',').map(str::trim).filter(|d| !d.is_empty()).collect();
    if directives.is_empty() {
        return Err(ValueError::EmptyLogFilter);
    }
    let levels = || LEVELS.join(", ");
    for d in directives {
        match d.rsplit_once('=') {
            Some((target, level)) if !target.trim().is_empty() && is_level(level) => {}
            Some(_) => return Err(ValueError::NotTargetLevel { directive: d.to_string(), levels: levels() }),
            None if is_level(d) => {}
            None => return Err(ValueError::NotALevel { directive: d.to_string(), levels: levels() }),
        }
    }
    Ok(())
}

/// `90s`, `30m`, `24h`, `7d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, ValueError> {
    let s = s.trim();
    let (digits, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = digits.parse().map_err(|_| ValueError::NotADuration(s.to_string()))?;
    let per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(ValueError::UnknownUnit { value: s.to_string(), unit: unit.to_string() }),
    };
    let secs = n.checked_mul(per).ok_or_else(|| ValueError::DurationTooLong(s.to_string()))?;
    Ok(Duration::from_secs(secs))
}

/// A number of seconds from 1 to 30 days: a timeout past that is a typo, and would overflow the
/// clock arithmetic of deadlines.
fn timeout_seconds(s: &str) -> Result<u64, ValueError> {
    match positive_u64(s)? {
        v if v > 30 * 86_400 => Err(ValueError::MoreThan30Days(v)),
        v => Ok(v),
    }
}

/// An address to listen on: an IP, or a host name this machine resolves (`localhost`), taken
/// as the first address it resolves to. Resolved once, at start-up.
fn listen_host(s: &str) -> Result<IpAddr, ValueError> {
    use std::net::ToSocketAddrs;
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip);
    }
    let mut addrs =
        (s, 0).to_socket_addrs().map_err(|e| ValueError::UnknownHost { host: s.to_string(), reason: e.to_string() })?;
    addrs.next().map(|a| a.ip()).ok_or_else(|| ValueError::NoAddress(s.to_string()))
}

fn positive_u64(s: &str) -> Result<u64, ValueError> {
    match s.parse::<u64>() {
        Ok(0) => Err(ValueError::Zero),
        Ok(v) => Ok(v),
        Err(e) => Err(ValueError::NotAWholeNumber { value: s.to_string(), reason: e.to_string() }),
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
    /// Required (except with --dev): the Ethereum node's JSON-RPC URL; it must serve `debug_executionWitness`.
    #[arg(long, env = "ETH_RPC_URL", hide_env_values = true)]
    pub eth_rpc_url: Option<Secret>,
    /// Optional WebSocket URL for a `newHeads` subscription (lower latency); polling stays on as the safety net.
    #[arg(long, env = "ETH_WS_URL", hide_env_values = true)]
    pub eth_ws_url: Option<Secret>,
    /// Genesis or config JSON for a chain without an embedded config (mainnet, Hoodi and Sepolia are built in);
    /// its chain id must match `eth_chainId`.
    #[arg(long, env = "CHAIN_CONFIG")]
    pub chain_config: Option<PathBuf>,
    /// The ethrex v31 ZisK guest: a 64-bit RISC-V ELF of at most 256 MiB, checked at start-up before the node is
    /// asked anything (anything else is exit 2). Not read with ZISK_ACTION=native.
    #[arg(long, env = "ELF_PATH", default_value = "guest-elf/zec-ethrex.elf")]
    pub elf_path: PathBuf,
    /// `prove` (a GPU proof, reported to EthProofs), `execute` (ZisK runs the guest and records its steps; nothing
    /// reported) or `native` (no ZisK at all: each input re-executed in-process; nothing reported).
    #[arg(long, env = "ZISK_ACTION", value_enum, default_value = "prove")]
    pub zisk_action: ZiskAction,
    /// `on` or `off`: check every proof with zisk-verifier before it is accepted and reported (README: "Every
    /// proof verified"). Default: on in prove mode when the prover is ZisK 1.x (the only proofs the verifier reads).
    #[arg(long, env = "VERIFY_PROOFS", value_enum)]
    pub verify_proofs: Option<OnOff>,
    /// The guest program's verification key (its ROM root) that every proof must be for: 64 hex
    /// characters or the path of the 32-byte key file. Unset: the key cargo-zisk's set-up cached for this ELF, or the
    /// coordinator's set-up answer; with reporting on and neither, the start is refused (VERIFY_PROOFS=off reports
    /// proofs unchecked).
    #[arg(long, env = "PROGRAM_VK")]
    pub program_vk: Option<String>,
    /// How the guest commits its outputs, when its ELF does not say (README: "What a verified proof proves"): `encoded`
    /// (the 160-byte ProgramOutput, ziskos 1.x), `prefixed` (behind a u64 length, ziskos 0.16) or `sha256` (its
    /// digest, ziskos 0.15 and older). Default: from the ziskos the ELF was built with; unknown refuses reporting.
    #[arg(long, env = "GUEST_OUTPUT")]
    pub guest_output: Option<String>,
    /// Start even when the ELF was built from an ethrex whose input layout differs from this build's (README: "Which
    /// guest is this?").
    #[arg(long, env = "ALLOW_ELF_MISMATCH", default_value = "false", action = clap::ArgAction::Set)]
    pub allow_elf_mismatch: bool,
    /// `cli` (cargo-zisk on this machine) or `coordinator` (ZisK's distributed prover; README: "Choosing a prover
    /// backend").
    #[arg(long, env = "PROVER_BACKEND", value_enum, default_value = "cli")]
    pub prover_backend: ProverBackend,
    /// The coordinator's API (gRPC), with PROVER_BACKEND=coordinator.
    #[arg(long, env = "ZISK_COORDINATOR_URL", default_value = "http://127.0.0.1:7000")]
    pub zisk_coordinator_url: String,
    /// With the coordinator: on a graceful stop, cancel the running job (default: leave it running
    /// and re-attach to it at the next start).
    #[arg(long, env = "CANCEL_ON_SHUTDOWN", default_value = "false", action = clap::ArgAction::Set)]
    pub cancel_on_shutdown: bool,
    /// Input past this many bytes (default 127 MiB) is streamed to the coordinator after the job is accepted (lower
    /// it when a proxy in front of the coordinator limits gRPC messages).
    #[arg(long, env = "COORDINATOR_INLINE_LIMIT_BYTES", default_value = "133169152", value_parser = positive_u64)]
    pub coordinator_inline_limit_bytes: u64,
    /// `native`: each input is re-executed natively when built; `emulate`: the real guest runs it before any proof
    /// (`ziskemu`, else `cargo-zisk execute`; with the coordinator an execute job), and a block it rejects fails at
    /// `input_check` with the guest's own words and its steps recorded, never reaching the prover (not with
    /// ZISK_ACTION=native); `both`; `none`.
    #[arg(long, env = "INPUT_CHECK", value_enum, default_value = "native")]
    pub input_check: InputCheck,
    /// ZisK's emulator for INPUT_CHECK=emulate with the CLI backend. Default: `ziskemu` beside CARGO_ZISK, else on
    /// PATH; without one, `cargo-zisk execute`.
    #[arg(long, env = "ZISKEMU")]
    pub ziskemu: Option<PathBuf>,
    /// How long the guest may take to check one input.
    #[arg(long, env = "INPUT_CHECK_TIMEOUT_SECONDS", default_value = "600", value_parser = timeout_seconds)]
    pub input_check_timeout_seconds: u64,
    /// The cargo-zisk executable (a path, or a name looked up on PATH); checked at start-up with the CLI backend
    /// in prove or execute mode (missing is exit 2). Not needed with the coordinator or ZISK_ACTION=native.
    #[arg(long, env = "CARGO_ZISK", default_value = "cargo-zisk")]
    pub cargo_zisk: PathBuf,
    /// `auto` (ask `cargo-zisk --version`) or a release line: picks the flags, the output parsing and the input
    /// framing.
    #[arg(long, env = "ZISK_VERSION", default_value = "auto", value_parser = zisk_version_setting())]
    pub zisk_version: ZiskVersionSetting,
    /// Extra arguments appended to every cargo-zisk call, split on whitespace (e.g. `-g -k /keys`).
    #[arg(long, env = "ZISK_EXTRA_ARGS", default_value = "", allow_hyphen_values = true)]
    pub zisk_extra_args: String,
    /// Prove every block whose number is a multiple of this.
    #[arg(long, env = "BLOCK_INTERVAL", default_value = "100", value_parser = positive_u64)]
    pub block_interval: u64,
    /// How often to poll `eth_blockNumber`, in milliseconds.
    #[arg(long, env = "POLL_INTERVAL_MS", default_value = "2000", value_parser = positive_u64)]
    pub poll_interval_ms: u64,
    /// Targets further than this below the head are recorded as skipped (a range is one record) instead of proved.
    #[arg(long, env = "MAX_BACKFILL_BLOCKS", default_value = "1000")]
    pub max_backfill_blocks: u64,
    /// Build a target only once the head is this many blocks past it (0: at once).
    #[arg(long, env = "CONFIRMATIONS", default_value = "0")]
    pub confirmations: u64,
    /// How long a node answer that means "not yet" or "slow down" (a null block, a rate-limit error even with HTTP
    /// 200, 429, 5xx) is retried within one build; after it the target waits and is asked for again (5 s doubling to
    /// 5 min) until the node serves it or it leaves MAX_BACKFILL_BLOCKS.
    #[arg(long, env = "NODE_RETRY_SECONDS", default_value = "120")]
    pub node_retry_seconds: u64,
    /// No node answer is read past this size (the largest mainnet witnesses are tens of MB); a block's answer stops
    /// at 64 MB and a header's at 1 MB whatever this says.
    #[arg(long, env = "MAX_RESPONSE_MB", default_value = "1024", value_parser = positive_u64)]
    pub max_response_mb: u64,
    /// First target on a first start, a multiple of BLOCK_INTERVAL. Default: the newest target at or below the
    /// head.
    #[arg(long, env = "START_BLOCK")]
    pub start_block: Option<u64>,
    /// Where inputs and proofs go (`OUTPUT_DIR/<block>/input.bin` and the proof), and the ledger by default.
    #[arg(long, env = "OUTPUT_DIR", default_value = "output")]
    pub output_dir: PathBuf,
    /// Address of the public server: health, metrics, the dashboard and the block pages (an IP, or a host name such
    /// as localhost, resolved at start-up.)
    #[arg(long, env = "HEALTH_HOST", default_value = "0.0.0.0", value_parser = listen_host)]
    pub health_host: IpAddr,
    /// Port of the public server (`status` reads `/health` here).
    #[arg(long, env = "HEALTH_PORT", default_value = "4000")]
    pub health_port: u16,
    /// Address of the admin API (and a copy of `/health`), served only with ADMIN_TOKEN; loopback by default (an IP,
    /// or a host name resolved at start-up.)
    #[arg(long, env = "ADMIN_HOST", default_value = "127.0.0.1", value_parser = listen_host)]
    pub admin_host: IpAddr,
    /// Port of the admin API.
    #[arg(long, env = "ADMIN_PORT", default_value = "4001")]
    pub admin_port: u16,
    /// A proof running longer than this makes the daemon degraded (readiness 503) and alerts once.
    #[arg(long, env = "PROVER_STUCK_THRESHOLD_SECONDS", default_value = "3600", value_parser = timeout_seconds)]
    pub prover_stuck_threshold_seconds: u64,
    /// A proof running longer than this is killed (whole process group) and its block failed; with the
    /// coordinator, the job's deadline (a job past it is cancelled).
    #[arg(long, env = "PROVER_TIMEOUT_SECONDS", default_value = "7200", value_parser = timeout_seconds)]
    pub prover_timeout_seconds: u64,
    /// With the CLI backend on a machine with several GPUs: the GPUs to prove on, comma-separated (indices or `GPU-…`
    /// UUIDs, as CUDA_VISIBLE_DEVICES takes them). One cargo-zisk runs per GPU at once, each seeing only its own.
    /// Empty: one run at a time, on whatever GPUs cargo-zisk sees.
    #[arg(long, env = "GPUS", default_value = "", value_parser = super::lanes::gpu_list)]
    pub gpus: GpuList,
    /// With the coordinator backend (or ZISK_ACTION=native): how many blocks' jobs run at once (1–64). The coordinator
    /// spreads them over its workers; how many workers a job takes is the coordinator's own setting
    /// (`default_compute_units`). Not for the CLI backend: there GPUS says how many.
    #[arg(long, env = "MAX_JOBS_IN_FLIGHT", default_value = "1", value_parser = clap::value_parser!(u8).range(1..=64))]
    pub max_jobs_in_flight: u8,
    /// How many blocks' inputs are fetched and built at once (1–16): a slow `debug_executionWitness` for one block does
    /// not hold the next. Each build holds its block's witness in memory (tens of MB on mainnet).
    #[arg(long, env = "MAX_INPUT_BUILDS", default_value = "2", value_parser = clap::value_parser!(u8).range(1..=16))]
    pub max_input_builds: u8,
    /// Which waiting block goes first, to the input builds and to a free prover: `oldest` (default: no block is left
    /// behind to be counted "paralyzed", EthProofs' 20-minute mark) or `newest` (when behind, the newest blocks still have
    /// their deadline ahead of them; the oldest may be left for long).
    #[arg(long, env = "PROVE_ORDER", value_enum, default_value = "oldest")]
    pub prove_order: ProveOrder,
    /// Which EthProofs cohort's rules the scoreboard keeps (`/health`, `status`, the dashboard, `/metrics`): `one-in-ten`
    /// (every 10th block, each under 2 min, for 80 %), `real-time` (every block, under 10 s for 70 %, 95 % proved at all)
    /// or `none`. Default `auto`: `real-time` with BLOCK_INTERVAL=1, `one-in-ten` with 10, else none.
    #[arg(long, env = "COHORT", value_enum, default_value = "auto")]
    pub cohort: CohortSetting,
    /// What one GPU costs an hour (in any currency, e.g. 2.5): the scoreboard's average cost per proof is this × CLUSTER_GPUS
    /// × proving time, as EthProofs computes it. Unset: no cost shown.
    #[arg(long, env = "GPU_HOURLY_PRICE", value_parser = super::lanes::price)]
    pub gpu_hourly_price: Option<f64>,
    /// The GPUs the EthProofs cluster declares (its `num_gpus`), for the cost per proof. Default: how many GPUS name, else 1.
    #[arg(long, env = "CLUSTER_GPUS", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub cluster_gpus: Option<u32>,
    /// After SIGTERM to cargo-zisk's process group (timeout, cancel, shutdown), how long to wait before SIGKILL.
    #[arg(long, env = "PROVER_KILL_GRACE_SECONDS", default_value = "10")]
    pub prover_kill_grace_seconds: u64,
    /// EthProofs API base URL, e.g. https://ethproofs.org/api/v0. Set all three ETHPROOFS_* or none: none means
    /// reporting off, said once at start-up.
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
    /// A report still failing after this many hours is given up and alerted.
    #[arg(long, env = "REPORT_MAX_AGE_HOURS", default_value = "24", value_parser = positive_u64)]
    pub report_max_age_hours: u64,
    /// Least time between two EthProofs calls, in milliseconds: the API allows a team 60 calls a minute. Lower it only
    /// when EthProofs has raised your limit (or in a time-scaled benchmark).
    #[arg(long, env = "REPORT_PACING_MS", default_value = "1100", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub report_pacing_ms: u64,
    /// Longest wait between retries of a failing report; caps `Retry-After` too.
    #[arg(long, env = "REPORT_MAX_BACKOFF_SECONDS", default_value = "300", value_parser = positive_u64)]
    pub report_max_backoff_seconds: u64,
    /// The ledger (SQLite, WAL). Default: `OUTPUT_DIR/ethproofs-daemon.db`.
    #[arg(long, env = "DB_PATH")]
    pub db_path: Option<PathBuf>,
    /// How many times a block may be interrupted mid-proof by the daemon dying (kill -9, OOM, crash) before it is
    /// failed; a graceful stop (SIGTERM, a deploy) never counts.
    #[arg(long, env = "MAX_PROVE_ATTEMPTS", default_value = "2", value_parser = positive_u64)]
    pub max_prove_attempts: u64,
    /// Slack incoming-webhook URL for alerts (unset: alerts are only logged).
    #[arg(long, env = "SLACK_WEBHOOK", hide_env_values = true)]
    pub slack_webhook: Option<Secret>,
    /// Inputs and proofs of this many most recent blocks are kept (unreported proofs always are).
    #[arg(long, env = "RETAIN_BLOCKS", default_value = "50")]
    pub retain_blocks: u64,
    /// Below this much free space in OUTPUT_DIR, new work pauses (with an alert) until space returns.
    #[arg(long, env = "MIN_FREE_DISK_MB", default_value = "2048")]
    pub min_free_disk_mb: u64,
    /// Enables the admin API (`/admin/*`, and the `prove`, `cancel`, `pause` … commands), which then requires
    /// `Authorization: Bearer <token>`; the commands read the same variable.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Where operators reach this daemon's pages (e.g. https://prover-1.example.org:4000): Slack
    /// alerts then link to the block's page.
    #[arg(long, env = "DASHBOARD_URL")]
    pub dashboard_url: Option<String>,
    /// Also post each proved block to Slack, with its ethproofs.org link.
    #[arg(long, env = "SLACK_NOTIFY_PROVED", default_value = "false", action = clap::ArgAction::Set)]
    pub slack_notify_proved: bool,
    /// trace, debug, info, warn, error or off for the daemon (dependencies stay at warn), or a tracing filter of
    /// `target=level` directives such as `ethproofs_daemon=debug,tower=info`.
    #[arg(long, env = "LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// `text` or `json` log lines.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
