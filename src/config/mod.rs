//! Daemon configuration: every setting is an environment variable, also accepted as a
//! `--kebab-case` flag, parsed and checked once at start-up.
//!
//! A missing or invalid value stops the daemon with exit code 2 and a message naming the
//! variable. Secrets (the EthProofs API key, the Slack webhook, and the node URLs, which often
//! embed provider keys) are wrapped in [`Secret`], whose `Debug` and `Display` never show them.

mod args;
mod lanes;
pub mod reference;
mod value;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

pub use args::*;
pub use lanes::{Cohort, CohortSetting, GpuList, ProveOrder};
pub use value::ValueError;

/// A value that must never reach a log line, an error message or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it (an HTTP header, a URL to dial).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err("must not be empty".into());
        }
        Ok(Secret(s.trim().to_string()))
    }
}

/// A secret-bearing URL is taken as given by clap (whose own error would quote the value) and
/// checked in `into_config`, whose error names the variable and never the value.
fn check_url(variable: &'static str, secret: Option<&Secret>, schemes: &[&str]) -> Result<(), ConfigError> {
    let Some(secret) = secret else { return Ok(()) };
    let wanted = schemes.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(" or ");
    let message = match reqwest::Url::parse(secret.expose()) {
        Err(e) => format!("is not a URL ({e}); the value is not shown because it may hold a key"),
        Ok(url) if !schemes.contains(&url.scheme()) => format!("must be a {wanted} URL"),
        Ok(_) => return Ok(()),
    };
    Err(ConfigError { variable, message })
}

/// Where to report, when reporting is configured.
#[derive(Debug, Clone)]
pub struct EthProofsConfig {
    pub base_url: Secret,
    pub api_key: Secret,
    pub cluster_id: u64,
}

/// The checked configuration the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub eth_rpc_url: Secret,
    pub eth_ws_url: Option<Secret>,
    pub chain_config: Option<PathBuf>,
    pub elf_path: PathBuf,
    pub zisk_action: ZiskAction,
    pub cargo_zisk: PathBuf,
    pub zisk_version: ZiskVersionSetting,
    pub zisk_extra_args: Vec<String>,
    pub allow_elf_mismatch: bool,
    /// `VERIFY_PROOFS` as given (`None`: the default for the mode and prover).
    pub verify_proofs: Option<bool>,
    /// `PROGRAM_VK`, decoded.
    pub program_vk: Option<crate::block::verify::ProgramVk>,
    /// `GUEST_OUTPUT`: how the guest commits its outputs, when the operator names it.
    pub guest_output: Option<crate::block::commitment::OutputLayout>,
    pub prover_backend: ProverBackend,
    pub coordinator_url: String,
    pub cancel_on_shutdown: bool,
    pub coordinator_inline_limit: usize,
    pub input_check: InputCheck,
    pub ziskemu: Option<PathBuf>,
    pub input_check_timeout: Duration,
    pub block_interval: u64,
    pub poll_interval: Duration,
    pub max_backfill_blocks: u64,
    pub confirmations: u64,
    pub node_retry: Duration,
    pub max_response_mb: u64,
    pub start_block: Option<u64>,
    pub output_dir: PathBuf,
    pub health_host: IpAddr,
    pub health_port: u16,
    pub admin_host: IpAddr,
    pub admin_port: u16,
    pub prover_stuck_threshold: Duration,
    pub prover_timeout: Duration,
    pub prover_kill_grace: Duration,
    /// `GPUS`: one CLI run per GPU at once.
    pub gpus: Vec<String>,
    /// `MAX_JOBS_IN_FLIGHT`: coordinator jobs (or native runs) at once.
    pub max_jobs_in_flight: usize,
    /// `MAX_INPUT_BUILDS`: inputs built at once.
    pub max_input_builds: usize,
    pub prove_order: ProveOrder,
    /// The cohort whose rules the scoreboard keeps (`None`: no scoreboard).
    pub cohort: Option<Cohort>,
    pub gpu_hourly_price: Option<f64>,
    /// GPUs in the EthProofs cluster, for the cost per proof.
    pub cluster_gpus: u32,
    pub ethproofs: Option<EthProofsConfig>,
    pub ethproofs_strict_startup: bool,
    pub report_max_age: Duration,
    pub report_max_backoff: Duration,
    /// `REPORT_PACING_MS`: the least time between two EthProofs calls.
    pub report_pacing: Duration,
    pub db_path: PathBuf,
    pub max_prove_attempts: u32,
    pub slack_webhook: Option<Secret>,
    pub slack_notify_proved: bool,
    pub dashboard_url: Option<String>,
    pub admin_token: Option<Secret>,
    pub retain_blocks: u64,
    pub min_free_disk_mb: u64,
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Config {
    /// Whether the EthProofs outbox is served: reporting is configured. Calls raised by an
    /// earlier run (in prove mode) are still delivered, and their proofs kept until accepted.
    pub fn reports_to_ethproofs(&self) -> bool {
        self.ethproofs.is_some()
    }

    /// Whether a block raises EthProofs calls (queued, proving, proved): reporting is configured
    /// and the daemon makes proofs. Execute and native runs report nothing, since `queued`
    /// without a proof to follow would leave the block hanging on the site.
    pub fn raises_reports(&self) -> bool {
        self.reports_to_ethproofs() && self.zisk_action == ZiskAction::Prove
    }

    /// The runs the Prover may have going at once, each with the GPU it is given: one per GPU
    /// of `GPUS`, else `MAX_JOBS_IN_FLIGHT` without one (a single run sees every GPU).
    pub fn lanes(&self) -> Vec<Option<String>> {
        if self.gpus.is_empty() {
            vec![None; self.max_jobs_in_flight.max(1)]
        } else {
            self.gpus.iter().cloned().map(Some).collect()
        }
    }
}

/// A setting that is missing or wrong, named by its environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{variable}: {message}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl RunArgs {
    pub fn into_config(self) -> Result<Config, ConfigError> {
        let err = |variable, message: &str| ConfigError { variable, message: message.to_string() };
        check_url("ETH_RPC_URL", self.eth_rpc_url.as_ref(), &["http", "https"])?;
        check_url("ETH_WS_URL", self.eth_ws_url.as_ref(), &["ws", "wss"])?;
        check_url("ETHPROOFS_RPC_URL", self.ethproofs_rpc_url.as_ref(), &["http", "https"])?;
        check_url("SLACK_WEBHOOK", self.slack_webhook.as_ref(), &["http", "https"])?;
        let eth_rpc_url =
            self.eth_rpc_url.ok_or_else(|| err("ETH_RPC_URL", "is required (the node's JSON-RPC URL)"))?;
        let ethproofs = match (self.ethproofs_rpc_url, self.ethproofs_api_key, self.ethproofs_cluster_id) {
            (Some(base_url), Some(api_key), Some(cluster_id)) => {
                Some(EthProofsConfig { base_url, api_key, cluster_id })
            }
            (None, None, None) => None,
            (url, key, cluster) => {
                let missing: Vec<&str> = [
                    url.is_none().then_some("ETHPROOFS_RPC_URL"),
                    key.is_none().then_some("ETHPROOFS_API_KEY"),
                    cluster.is_none().then_some("ETHPROOFS_CLUSTER_ID"),
                ]
                .into_iter()
                .flatten()
                .collect();
                return Err(ConfigError {
                    variable: missing[0],
                    message: format!(
                        "is missing: set all of ETHPROOFS_RPC_URL, ETHPROOFS_API_KEY and ETHPROOFS_CLUSTER_ID, or none (missing: {})",
                        missing.join(", ")
                    ),
                });
            }
        };
        if self.prover_stuck_threshold_seconds > self.prover_timeout_seconds {
            return Err(err(
                "PROVER_STUCK_THRESHOLD_SECONDS",
                "must not exceed PROVER_TIMEOUT_SECONDS (a proof is killed before it could be called stuck)",
            ));
        }
        if self.max_backfill_blocks < self.block_interval {
            return Err(err(
                "MAX_BACKFILL_BLOCKS",
                "must be at least BLOCK_INTERVAL, or no missed target could be backfilled",
            ));
        }
        if let Some(start) = self.start_block
            && start % self.block_interval != 0
        {
            return Err(err("START_BLOCK", "must be a multiple of BLOCK_INTERVAL"));
        }
        if self.prover_backend == ProverBackend::Coordinator {
            let scheme = self.zisk_coordinator_url.split("://").next().unwrap_or("");
            if !matches!(scheme, "http" | "https") || !self.zisk_coordinator_url.contains("://") {
                return Err(err(
                    "ZISK_COORDINATOR_URL",
                    "must be an http:// or https:// URL (the coordinator's API port, 7000 by default)",
                ));
            }
        }
        let on_cli = self.prover_backend == ProverBackend::Cli && self.zisk_action != ZiskAction::Native;
        if !self.gpus.0.is_empty() && !on_cli {
            return Err(err(
                "GPUS",
                "is for the CLI backend (cargo-zisk on this machine); with the coordinator its workers have the GPUs, and MAX_JOBS_IN_FLIGHT says how many jobs run at once",
            ));
        }
        if self.max_jobs_in_flight > 1 && on_cli {
            return Err(err(
                "MAX_JOBS_IN_FLIGHT",
                "is for the coordinator backend; with the CLI backend set GPUS (one cargo-zisk per GPU)",
            ));
        }
        if self.input_check.emulate() && self.zisk_action == ZiskAction::Native {
            return Err(err("INPUT_CHECK", "emulate runs the guest with ZisK, which ZISK_ACTION=native does not use"));
        }
        if let Some(url) = &self.dashboard_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(err(
                "DASHBOARD_URL",
                "must be an http:// or https:// URL (where this daemon's pages are reached)",
            ));
        }
        let cohort = lanes::cohort(self.cohort, self.block_interval).map_err(|e| err("COHORT", &e.to_string()))?;
        let cluster_gpus = self.cluster_gpus.unwrap_or_else(|| u32::try_from(self.gpus.0.len().max(1)).unwrap_or(1));
        args::check_log_filter(&self.log_level).map_err(|e| err("LOG_LEVEL", &e.to_string()))?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| err("LOG_LEVEL", &format!("is not a level or tracing filter: {e}")))?;
        // Absolute from here on: the ledger records paths, and they must resolve whatever the
        // working directory of a later start (or of `report`) is.
        let absolute = |variable, p: &std::path::Path| {
            std::path::absolute(p).map_err(|e| err(variable, &format!("cannot be made absolute: {e}")))
        };
        let output_dir = absolute("OUTPUT_DIR", &self.output_dir)?;
        let db_path = match self.db_path {
            Some(p) => absolute("DB_PATH", &p)?,
            None => output_dir.join("ethproofs-daemon.db"),
        };
        let elf_path = absolute("ELF_PATH", &self.elf_path)?;
        let program_vk = self
            .program_vk
            .as_deref()
            .map(crate::block::verify::parse_program_vk)
            .transpose()
            .map_err(|e| err("PROGRAM_VK", &e.to_string()))?;
        let guest_output = self.guest_output.as_deref().map(crate::block::commitment::OutputLayout::from_setting);
        let guest_output = guest_output.transpose().map_err(|e| err("GUEST_OUTPUT", &e.to_string()))?;
        Ok(Config {
            eth_rpc_url,
            eth_ws_url: self.eth_ws_url,
            chain_config: self.chain_config,
            elf_path,
            zisk_action: self.zisk_action,
            cargo_zisk: self.cargo_zisk,
            zisk_version: self.zisk_version,
            zisk_extra_args: self.zisk_extra_args.split_whitespace().map(str::to_string).collect(),
            allow_elf_mismatch: self.allow_elf_mismatch,
            verify_proofs: self.verify_proofs.map(|v| v == OnOff::On),
            program_vk,
            guest_output,
            prover_backend: self.prover_backend,
            coordinator_url: self.zisk_coordinator_url,
            cancel_on_shutdown: self.cancel_on_shutdown,
            coordinator_inline_limit: usize::try_from(self.coordinator_inline_limit_bytes).unwrap_or(usize::MAX),
            input_check: self.input_check,
            ziskemu: self.ziskemu,
            input_check_timeout: Duration::from_secs(self.input_check_timeout_seconds),
            block_interval: self.block_interval,
            poll_interval: Duration::from_millis(self.poll_interval_ms),
            max_backfill_blocks: self.max_backfill_blocks,
            confirmations: self.confirmations,
            node_retry: Duration::from_secs(self.node_retry_seconds),
            max_response_mb: self.max_response_mb,
            start_block: self.start_block,
            output_dir,
            health_host: self.health_host,
            health_port: self.health_port,
            admin_host: self.admin_host,
            admin_port: self.admin_port,
            prover_stuck_threshold: Duration::from_secs(self.prover_stuck_threshold_seconds),
            prover_timeout: Duration::from_secs(self.prover_timeout_seconds),
            prover_kill_grace: Duration::from_secs(self.prover_kill_grace_seconds),
            gpus: self.gpus.0,
            max_jobs_in_flight: usize::from(self.max_jobs_in_flight),
            max_input_builds: usize::from(self.max_input_builds),
            prove_order: self.prove_order,
            cohort,
            gpu_hourly_price: self.gpu_hourly_price,
            cluster_gpus,
            ethproofs,
            ethproofs_strict_startup: self.ethproofs_strict_startup,
            report_max_age: Duration::from_secs(self.report_max_age_hours * 3600),
            report_max_backoff: Duration::from_secs(self.report_max_backoff_seconds),
            report_pacing: Duration::from_millis(self.report_pacing_ms),
            db_path,
            max_prove_attempts: self.max_prove_attempts.min(u64::from(u32::MAX)) as u32,
            slack_webhook: self.slack_webhook,
            slack_notify_proved: self.slack_notify_proved,
            dashboard_url: self.dashboard_url.map(|u| u.trim_end_matches('/').to_string()),
            admin_token: self.admin_token,
            retain_blocks: self.retain_blocks,
            min_free_disk_mb: self.min_free_disk_mb,
            log_level: self.log_level,
            log_format: self.log_format,
        })
    }
}

/// Parses `RunArgs` from flags alone, for tests across the crate.
#[cfg(test)]
pub(crate) fn test_args(args: &[&str]) -> Result<RunArgs, String> {
    use clap::Parser;
    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: RunArgs,
    }
    T::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|t| t.args).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
