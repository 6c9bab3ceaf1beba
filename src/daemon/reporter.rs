//! The Reporter actor: sends queued / proving / proved to EthProofs, one call at a time, in the
//! order they were raised (so per block: queued, then proving, then proved), paced under the
//! API's 60 calls per minute, retrying what the API says is worth retrying.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::notifier::NotifierHandle;
use super::{Context, REPORTER, Shared, deliver, send};
use crate::ethproofs::{Call, EthProofsClient, Outcome, Proved, Status};
use crate::notify::Severity;

/// Calls are spaced at least this far apart: 60/min is the team-wide limit.
const PACING: Duration = Duration::from_millis(1100);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A report still failing after this long is given up (and alerted).
const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// One report waiting to be sent. A `proved` report carries the proof's path, not its bytes:
/// the proof is read when the call is made.
#[derive(Debug, Clone)]
pub struct Report {
    pub block: u64,
    pub status: Status,
    pub proved: Option<ProvedReport>,
    raised_at: Instant,
    attempts: u32,
}

#[derive(Debug, Clone)]
pub struct ProvedReport {
    pub proving_time_ms: u64,
    pub cycles: Option<u64>,
    pub proof_path: PathBuf,
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
}

#[derive(Default)]
pub struct ReporterState {
    queue: VecDeque<Report>,
    sending: bool,
    not_before: Option<Instant>,
    last_sent: Option<Instant>,
    /// Blocks the API says are already proved: no more queued/proving for them.
    already_proved: HashSet<u64>,
    delivered: VecDeque<DeliveredReport>,
    delivered_count: u64,
    failed: VecDeque<FailedReport>,
    last_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReporterStatus {
    pub enabled: bool,
    pub state: &'static str,
    pub queue_length: usize,
    pub queued_reports: Vec<String>,
    pub delivered_count: u64,
    pub recent_delivered: Vec<DeliveredReport>,
    pub failed: Vec<FailedReport>,
    pub last_error: Option<String>,
}

pub enum ReporterMsg {
    Wake,
    Sent { outcome: Outcome },
    Status(RpcReplyPort<ReporterStatus>),
}

#[derive(Clone)]
pub struct ReporterHandle {
    state: Shared<ReporterState>,
    enabled: bool,
}

impl ReporterHandle {
    pub fn new(state: Shared<ReporterState>, enabled: bool) -> ReporterHandle {
        ReporterHandle { state, enabled }
    }

    pub fn report(&self, block: u64, status: Status, proved: Option<ProvedReport>) {
        if !self.enabled {
            return;
        }
        self.state.lock().queue.push_back(Report { block, status, proved, raised_at: Instant::now(), attempts: 0 });
        let _ = send(REPORTER, ReporterMsg::Wake);
    }
}

pub struct Reporter {
    pub ctx: Arc<Context>,
    pub client: Option<Arc<EthProofsClient>>,
    pub notifier: NotifierHandle,
}

fn backoff(attempts: u32) -> Duration {
    let base = Duration::from_secs(1u64 << attempts.min(9)).min(MAX_BACKOFF);
    // Jitter spreads retries of several daemons sharing one key.
    let jitter = Duration::from_millis(
        u64::from(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0))
            % 500,
    );
    base + jitter
}

impl Actor for Reporter {
    type Msg = ReporterMsg;
    type State = Shared<ReporterState>;
    type Arguments = Shared<ReporterState>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let _ = myself.cast(ReporterMsg::Wake);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReporterMsg::Status(reply) => {
                let s = state.lock();
                let _ = reply.send(ReporterStatus {
                    enabled: self.client.is_some(),
                    state: if self.client.is_none() {
                        "disabled"
                    } else if s.sending {
                        "sending"
                    } else if s.queue.is_empty() {
                        "idle"
                    } else {
                        "waiting"
                    },
                    queue_length: s.queue.len(),
                    queued_reports: s.queue.iter().map(|r| format!("{} {}", r.block, r.status.as_str())).collect(),
                    delivered_count: s.delivered_count,
                    recent_delivered: s.delivered.iter().cloned().collect(),
                    failed: s.failed.iter().cloned().collect(),
                    last_error: s.last_error.clone(),
                });
            }
            ReporterMsg::Sent { outcome } => {
                self.settle(state, outcome);
                self.pump(&myself, state);
            }
            ReporterMsg::Wake => self.pump(&myself, state),
        }
        Ok(())
    }
}

impl Reporter {
    fn settle(&self, state: &Shared<ReporterState>, outcome: Outcome) {
        let mut s = state.lock();
        s.sending = false;
        let Some(head) = s.queue.front_mut() else { return };
        let (block, status) = (head.block, head.status);
        head.attempts += 1;
        let attempts = head.attempts;
        let age = head.raised_at.elapsed();
        match outcome {
            Outcome::Done => {
                s.queue.pop_front();
                s.delivered_count += 1;
                s.delivered.push_back(DeliveredReport {
                    block,
                    status: status.as_str(),
                    at: super::rfc3339(SystemTime::now()),
                });
                if s.delivered.len() > 50 {
                    s.delivered.pop_front();
                }
                tracing::info!(block, status = status.as_str(), "reported to EthProofs");
            }
            Outcome::AlreadyProved => {
                s.queue.pop_front();
                s.already_proved.insert(block);
                tracing::info!(block, status = status.as_str(), "EthProofs says the block is already proved");
            }
            Outcome::Permanent(reason) => {
                s.queue.pop_front();
                tracing::error!(block, status = status.as_str(), %reason, "EthProofs refused the report; not retried");
                s.failed.push_back(FailedReport { block, status: status.as_str(), reason: reason.clone() });
                if s.failed.len() > 50 {
                    s.failed.pop_front();
                }
                s.last_error = Some(reason.clone());
                self.notifier.alert(
                    Severity::Error,
                    format!("EthProofs report failed permanently: block {block} {}", status.as_str()),
                    reason,
                );
            }
            Outcome::RetryAfter(wait) => {
                tracing::warn!(
                    block,
                    status = status.as_str(),
                    wait_s = wait.as_secs(),
                    "EthProofs rate limit; waiting"
                );
                s.not_before = Some(Instant::now() + wait);
                s.last_error = Some(format!("rate limited for {}s", wait.as_secs()));
            }
            Outcome::Transient(reason) if age > MAX_AGE => {
                s.queue.pop_front();
                s.failed.push_back(FailedReport { block, status: status.as_str(), reason: reason.clone() });
                self.notifier.alert(
                    Severity::Error,
                    format!("EthProofs report given up after 24 h: block {block} {}", status.as_str()),
                    reason,
                );
            }
            Outcome::Transient(reason) => {
                let wait = backoff(attempts);
                tracing::warn!(block, status = status.as_str(), %reason, retry_in_s = wait.as_secs(), "EthProofs call failed; will retry");
                s.not_before = Some(Instant::now() + wait);
                s.last_error = Some(reason);
            }
        }
    }

    fn pump(&self, myself: &ActorRef<ReporterMsg>, state: &Shared<ReporterState>) {
        let Some(client) = self.client.clone() else {
            state.lock().queue.clear();
            return;
        };
        let mut s = state.lock();
        if s.sending {
            return;
        }
        // A late queued/proving for a block the API already holds as proved is dropped.
        while let Some(front) = s.queue.front() {
            if front.status != Status::Proved && s.already_proved.contains(&front.block) {
                s.queue.pop_front();
            } else {
                break;
            }
        }
        let Some(report) = s.queue.front().cloned() else { return };
        let now = Instant::now();
        let paced = s.last_sent.map(|t| t + PACING).filter(|t| *t > now);
        let wait_until = match (s.not_before.filter(|t| *t > now), paced) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(until) = wait_until {
            myself.send_after(until - now, || ReporterMsg::Wake);
            return;
        }
        s.sending = true;
        s.not_before = None;
        s.last_sent = Some(now);
        drop(s);
        tokio::spawn(async move {
            let outcome = match build_call(&report).await {
                Ok(call) => client.send(&call).await,
                Err(reason) => Outcome::Permanent(reason),
            };
            deliver(REPORTER, ReporterMsg::Sent { outcome }).await;
        });
    }
}

async fn build_call(report: &Report) -> Result<Call, String> {
    let proved = match &report.proved {
        None => None,
        Some(p) => {
            let proof = tokio::fs::read(&p.proof_path)
                .await
                .map_err(|e| format!("cannot read the proof {}: {e}", p.proof_path.display()))?;
            if proof.is_empty() {
                return Err(format!("the proof {} is empty", p.proof_path.display()));
            }
            Some(Proved { proving_time_ms: p.proving_time_ms, cycles: p.cycles, proof })
        }
    };
    Ok(Call { block: report.block, status: report.status, proved })
}
