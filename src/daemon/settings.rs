//! Each component's own settings, cut from the configuration once at start-up. An actor (and
//! the tasks it starts) sees only its own: the Reporter never learns the prover's timeout, the
//! InputGenerator never the Slack webhook. "Is reporting on" is still decided only by
//! [`Config::raises_reports`] and [`Config::reports_to_ethproofs`]; the settings carry the answer.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, EthProofsConfig, Secret, ZiskAction};
use crate::decide::outbox::Policy;

/// What the InputGenerator, its builds and its watches need.
#[derive(Debug, Clone)]
pub struct InputSettings {
    /// How often the head is asked for (`eth_blockNumber`).
    pub poll_interval: Duration,
    /// `newHeads` over WebSocket, when the operator gave one.
    pub ws_url: Option<Secret>,
    /// Every how many blocks a target falls.
    pub block_interval: u64,
    /// How far behind the head a target must be before it is built.
    pub confirmations: u64,
    /// Targets further below the head than this are one skipped range, not built.
    pub max_backfill_blocks: u64,
    /// Where scheduling starts on a fresh ledger (`None`: at the head).
    pub start_block: Option<u64>,
    /// How long a block or witness fetch is retried on transient errors.
    pub node_retry: Duration,
    /// Where `<block>/input.bin` is written.
    pub output_dir: PathBuf,
    /// `INPUT_CHECK` includes re-executing the input natively before it is queued.
    pub validate_natively: bool,
    /// Whether a built input raises the `queued` call.
    pub raises_reports: bool,
    /// Below this much free space in `output_dir`, no new work starts.
    pub min_free_disk_mb: u64,
    /// How many inputs are built at once.
    pub max_builds: usize,
    /// Which waiting block is built first.
    pub order: crate::config::ProveOrder,
}

/// What the Prover and its runs need.
#[derive(Debug, Clone)]
pub struct ProverSettings {
    /// Prove, execute or native: what a run's verdict is judged as.
    pub action: ZiskAction,
    /// How many interrupted attempts a block gets before it is failed.
    pub max_prove_attempts: u32,
    /// A run older than this makes the daemon not ready and alerts once.
    pub stuck_threshold: Duration,
    /// The run's own deadline (said in the stuck alert).
    pub timeout: Duration,
    /// TERM to KILL for the prover's process group: bounds how long a stop takes.
    pub kill_grace: Duration,
    /// `SLACK_NOTIFY_PROVED`: every proved block is news.
    pub notify_proved: bool,
    /// Where each block's directory lives (and orphans are kept aside).
    pub output_dir: PathBuf,
    /// How many proved blocks' files retention keeps.
    pub retain_blocks: u64,
    /// Whether a run raises `proving` and `proved` calls.
    pub raises_reports: bool,
    /// Whether EthProofs hears of proofs at all (retention keeps a proof until it is accepted).
    pub reports_to_ethproofs: bool,
    /// The runs that may go at once, each with its GPU (`GPUS`) or none (`MAX_JOBS_IN_FLIGHT`):
    /// a run's lane is its index here.
    pub lanes: Vec<Option<String>>,
    /// Which waiting block a free lane takes.
    pub order: crate::config::ProveOrder,
}

/// What the Reporter needs.
#[derive(Debug, Clone)]
pub struct ReporterSettings {
    /// Where to report (`None`: reporting is off and the outbox is not served).
    pub ethproofs: Option<EthProofsConfig>,
    /// The retry policy of the outbox.
    pub policy: Policy,
    /// The least time between two calls: EthProofs rate-limits a cluster's calls.
    pub pacing: Duration,
}

/// What the Notifier needs.
#[derive(Debug, Clone)]
pub struct NotifierSettings {
    /// Slack's incoming webhook (`None`: alerts are only logged).
    pub slack_webhook: Option<Secret>,
}

/// How an alert links to a block: this daemon's page, and ethproofs.org's when it is there.
#[derive(Debug, Clone)]
pub struct Links {
    /// `DASHBOARD_URL`: where operators reach this daemon's pages.
    pub dashboard_url: Option<String>,
    /// Whether EthProofs hears of this daemon's proofs.
    pub reports_to_ethproofs: bool,
    /// A dev chain is never on ethproofs.org.
    pub dev_chain: bool,
}

impl Links {
    /// A line for an alert about `block`: its page on this daemon (with `DASHBOARD_URL`), and its
    /// ethproofs.org page when it is proved and reported there.
    pub fn block(&self, block: u64, proved: bool) -> String {
        let mut lines = Vec::new();
        if let Some(base) = &self.dashboard_url {
            lines.push(format!("{base}/blocks/{block}"));
        }
        lines.extend(crate::runtime::status::ethproofs_url(block, proved, self.reports_to_ethproofs, self.dev_chain));
        lines.join("\n")
    }
}

/// Every component's settings, as the supervisor hands them out.
#[derive(Debug, Clone)]
pub struct Settings {
    pub input: Arc<InputSettings>,
    pub prover: Arc<ProverSettings>,
    pub reporter: Arc<ReporterSettings>,
    pub notifier: Arc<NotifierSettings>,
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            input: Arc::new(InputSettings {
                poll_interval: c.poll_interval,
                ws_url: c.eth_ws_url.clone(),
                block_interval: c.block_interval,
                confirmations: c.confirmations,
                max_backfill_blocks: c.max_backfill_blocks,
                start_block: c.start_block,
                node_retry: c.node_retry,
                output_dir: c.output_dir.clone(),
                validate_natively: c.input_check.native(),
                raises_reports: c.raises_reports(),
                min_free_disk_mb: c.min_free_disk_mb,
                max_builds: c.max_input_builds,
                order: c.prove_order,
            }),
            prover: Arc::new(ProverSettings {
                action: c.zisk_action,
                max_prove_attempts: c.max_prove_attempts,
                stuck_threshold: c.prover_stuck_threshold,
                timeout: c.prover_timeout,
                kill_grace: c.prover_kill_grace,
                notify_proved: c.slack_notify_proved,
                output_dir: c.output_dir.clone(),
                retain_blocks: c.retain_blocks,
                raises_reports: c.raises_reports(),
                reports_to_ethproofs: c.reports_to_ethproofs(),
                lanes: c.lanes(),
                order: c.prove_order,
            }),
            reporter: Arc::new(ReporterSettings {
                ethproofs: c.ethproofs.clone(),
                policy: Policy::new(c.report_max_backoff, c.report_max_age),
                pacing: c.report_pacing,
            }),
            notifier: Arc::new(NotifierSettings { slack_webhook: c.slack_webhook.clone() }),
        }
    }
}
