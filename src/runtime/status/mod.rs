//! The status board: what each actor publishes about itself, and what the HTTP surface
//! (`/health`, `/metrics`, the dashboard) reads. These types are an API boundary — they are the
//! `/health` JSON — so they are their own types, not the actors' internals with `Serialize`.
//!
//! Each actor republishes at least once a second; a slot not refreshed for [`STALE_AFTER`]
//! reads as "not responding", which is what makes a wedged actor show up as unhealthy.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

mod cohort;
mod time;

pub use cohort::{CohortFigures, Scoreboard};
pub use time::{human_ms, rfc3339, rfc3339_ms};

/// A slot older than this reads as not responding.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// A bounded list of recent events: the one place the daemon keeps history in memory.
#[derive(Debug, Clone)]
pub struct Recent<T> {
    items: VecDeque<T>,
    cap: usize,
}

impl<T: Clone> Recent<T> {
    pub fn new(cap: usize) -> Recent<T> {
        Recent { items: VecDeque::with_capacity(cap.min(64)), cap }
    }

    pub fn push(&mut self, item: T) {
        if self.items.len() == self.cap {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }

    pub fn to_vec(&self) -> Vec<T> {
        self.items.iter().cloned().collect()
    }
}

/// One actor's latest status and when it was published.
#[derive(Debug)]
pub struct Slot<T>(Mutex<Option<(Instant, T)>>);

impl<T: Clone> Default for Slot<T> {
    fn default() -> Self {
        Slot(Mutex::new(None))
    }
}

impl<T: Clone> Slot<T> {
    pub fn publish(&self, status: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), status));
    }

    /// The status, unless it is older than [`STALE_AFTER`].
    pub fn fresh(&self) -> Option<T> {
        self.within(STALE_AFTER)
    }

    /// The status, unless it is older than `age`.
    pub fn within(&self, age: Duration) -> Option<T> {
        let slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        slot.as_ref().filter(|(at, _)| at.elapsed() < age).map(|(_, s)| s.clone())
    }
}

/// Every actor's slot.
#[derive(Debug, Default)]
pub struct Board {
    pub input: Slot<InputStatus>,
    pub prover: Slot<ProverStatus>,
    pub reporter: Slot<ReporterStatus>,
    pub notifier: Slot<NotifierStatus>,
    pub supervisor: Slot<SupervisorStatus>,
}

/// Fields with these names carry third-party text (the node's, the API's, the prover's) or
/// detail only the operator should see: `/health` drops them, `/admin/status` keeps them.
pub const DETAIL_FIELDS: [&str; 4] = ["detail", "last_lines", "rpc_error_detail", "last_error_detail"];

#[derive(Debug, Clone, Serialize)]
pub struct MissedBlock {
    pub block: u64,
    pub stage: String,
    /// Ours: the stage's failure in our words.
    pub reason: String,
    /// The whole error, with whatever the node said.
    pub detail: Option<String>,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputStatus {
    pub status: &'static str,
    pub state: &'static str,
    pub building_block: Option<u64>,
    /// How long the block's input has been building: a build that never ends shows here.
    pub building_seconds: Option<u64>,
    /// Every build in flight (`MAX_INPUT_BUILDS`); the two fields above tell of the oldest.
    pub building: Vec<BuildInFlight>,
    pub processed_count: u64,
    pub head: Option<u64>,
    /// The chain's block time as observed from the head's advances.
    pub block_time_ms: Option<u64>,
    pub head_seen_at: Option<String>,
    pub head_age_seconds: Option<u64>,
    pub next_target: Option<u64>,
    pub missed_count: u64,
    pub missed_blocks: Vec<MissedBlock>,
    /// Targets the node has not served yet though its head says they exist: asked for again
    /// with backoff until they leave the backfill window.
    pub not_served: Vec<NotServedBlock>,
    /// The last head poll's failure, in our words.
    pub rpc_error: Option<String>,
    /// How long the head poll has been failing (since its first failure in a row).
    pub rpc_failing_seconds: Option<u64>,
    pub rpc_error_detail: Option<String>,
}

/// A target waiting for the node to serve it.
#[derive(Debug, Clone, Serialize)]
pub struct NotServedBlock {
    pub block: u64,
    pub stage: &'static str,
    /// The node's last answer, in our words.
    pub reason: String,
    pub waiting_seconds: u64,
    pub retry_in_seconds: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProvedBlock {
    pub block: u64,
    pub proving_time_ms: u64,
    pub cycles: Option<u64>,
    /// From first seeing the head to the prover starting (unknown after a restart).
    pub head_to_prover_ms: Option<u64>,
}

/// A block re-executed (`native`) or emulated (`execute`): there is no proof.
#[derive(Debug, Clone, Serialize)]
pub struct ExecutedBlock {
    pub block: u64,
    pub ms: u64,
    pub cycles: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedBlock {
    pub block: u64,
    pub stage: String,
    pub reason: String,
    pub last_lines: Vec<String>,
}

/// A coordinator job's phase left behind, and how long it took.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseTime {
    pub phase: &'static str,
    pub seconds: f64,
}

/// The coordinator backend as the Prover sees it.
#[derive(Debug, Clone, Serialize)]
pub struct CoordinatorStatus {
    /// Without credentials.
    pub url: String,
    /// The coordinator's id of the guest program (blake3 of the ELF), once registered.
    pub hash_id: Option<String>,
    pub set_up: bool,
    /// Whether the running job's coordinator answers (`None` when no job runs).
    pub reachable: Option<bool>,
    pub unreachable_seconds: Option<u64>,
    pub error: Option<String>,
}

/// Prover runs since this process started, by outcome: runs, not blocks.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RunCounts {
    pub proved: u64,
    /// Re-executed (`native`) or emulated (`execute`): never counted as proved.
    pub executed: u64,
    pub failed: u64,
}

/// One input build in flight, as `/health` tells it.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInFlight {
    pub block: u64,
    pub seconds: u64,
}

/// One run in flight, as `/health` tells it.
#[derive(Debug, Clone, Serialize)]
pub struct RunInFlight {
    pub block: u64,
    /// `None` until the run has checked the block is still canonical and raised `proving`.
    pub attempt: Option<u32>,
    pub lane: usize,
    /// The GPU the run was given (`GPUS`).
    pub gpu: Option<String>,
    pub since: String,
    pub seconds: u64,
    /// Past PROVER_STUCK_THRESHOLD_SECONDS.
    pub stuck: bool,
    pub job_id: Option<String>,
    pub phase: Option<&'static str>,
    pub phase_seconds: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProverStatus {
    pub status: &'static str,
    pub state: &'static str,
    pub proving_block: Option<u64>,
    pub proving_attempt: Option<u32>,
    pub proving_since: Option<String>,
    pub proving_duration_seconds: Option<u64>,
    /// How many runs may go at once (`GPUS`, `MAX_JOBS_IN_FLIGHT`).
    pub lanes: usize,
    /// Every run in flight, by lane (the `proving_*` fields above tell of the oldest).
    pub in_flight: Vec<RunInFlight>,
    pub zisk_version: String,
    pub action: &'static str,
    /// `cli`, `coordinator` or `native`.
    pub backend: &'static str,
    /// The running block's coordinator job.
    pub job_id: Option<String>,
    /// The running job's phase (contributions, prove, recurse, …) and how long it has been in it.
    pub phase: Option<&'static str>,
    pub phase_seconds: Option<u64>,
    /// The phases the running job has been through.
    pub phases: Vec<PhaseTime>,
    pub coordinator: Option<CoordinatorStatus>,
    /// This process's prover runs by how they ended: a block proved again counts again. The
    /// block counts (`proved_count`, …) are the ledger's, added by `/health`.
    pub runs: RunCounts,
    pub recent_proved: Vec<ProvedBlock>,
    pub recent_executed: Vec<ExecutedBlock>,
    pub recent_failed: Vec<FailedBlock>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveredReport {
    pub block: u64,
    pub status: &'static str,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedReport {
    pub block: u64,
    pub status: &'static str,
    pub reason: String,
    /// The API's answer as it came.
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReporterStatus {
    pub enabled: bool,
    pub state: &'static str,
    pub delivered_count: u64,
    pub recent_delivered: Vec<DeliveredReport>,
    pub failed: Vec<FailedReport>,
    pub last_error: Option<String>,
    pub last_error_detail: Option<String>,
}

/// Whether ethproofs.org can know this chain's blocks: only when this daemon reports them, and
/// never a dev chain's. The one rule behind every ethproofs.org link (alerts, dashboard, block page).
pub fn on_ethproofs(reporting: bool, dev_chain: bool) -> bool {
    reporting && !dev_chain
}

/// A proved block's page on ethproofs.org, when there is one.
pub fn ethproofs_url(block: u64, proved: bool, reporting: bool, dev_chain: bool) -> Option<String> {
    (proved && on_ethproofs(reporting, dev_chain)).then(|| format!("https://ethproofs.org/blocks/{block}"))
}

/// What of an EthProofs failure may be shown without the token: the part before the API's own
/// words (`HTTP 401`), and no file path.
pub fn public_reason(reason: &str) -> String {
    let head = reason.split(": ").next().unwrap_or(reason);
    if head.contains('/') { "the call could not be made".to_string() } else { head.chars().take(160).collect() }
}

#[derive(Debug, Clone, Serialize)]
pub struct NotifierStatus {
    pub enabled: bool,
    pub state: &'static str,
    pub queue_length: usize,
    pub sent: u64,
    pub failed: u64,
    pub last_error: Option<String>,
    pub active_alerts: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupervisorStatus {
    pub restarts: u64,
    pub children: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recent_keeps_only_the_newest() {
        let mut r = Recent::new(3);
        for i in 0..5 {
            r.push(i);
        }
        assert_eq!(r.to_vec(), vec![2, 3, 4]);
    }

    #[test]
    fn an_unpublished_slot_is_not_responding() {
        let slot: Slot<u32> = Slot::default();
        assert_eq!(slot.fresh(), None);
        slot.publish(7);
        assert_eq!(slot.fresh(), Some(7));
    }
}
