//! The Reporter actor: the EthProofs outbox. Every call is written to the ledger before it is
//! sent and settled there after; the actor sends them one at a time in the order they were raised
//! (so per block: queued, then proving, then proved), paced under the API's 60 calls per minute,
//! retrying what the API says is worth retrying. After a restart, of the actor or of the process,
//! the pending calls are read back from the ledger and go out again, never twice once accepted.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::notifier::NotifierHandle;
use super::{Context, REPORTER, Shared, deliver, send};
use crate::ethproofs::{Call, EthProofsClient, Outcome, Proved, Status};
use crate::notify::AlertKind;
use crate::store::{Ledger, ReportRow};

/// Calls are spaced at least this far apart: 60/min is the team-wide limit.
const PACING: Duration = Duration::from_millis(1100);

#[derive(Debug, Clone)]
pub struct ProvedReport {
    pub proving_time_ms: u64,
    pub cycles: Option<u64>,
    pub proof_path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeliveredReport {
    pub block: u64,
    pub status: String,
    pub at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct FailedReport {
    pub block: u64,
    pub status: String,
    pub reason: String,
}

#[derive(Default)]
pub struct ReporterState {
    queue: VecDeque<ReportRow>,
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
    /// A call written to the outbox by someone else (admin resubmit).
    Push(ReportRow),
    Sent {
        id: i64,
        outcome: Outcome,
    },
    Status(RpcReplyPort<ReporterStatus>),
}

#[derive(Clone)]
pub struct ReporterHandle {
    state: Shared<ReporterState>,
    ledger: Arc<Ledger>,
    enabled: bool,
}

impl ReporterHandle {
    pub fn new(state: Shared<ReporterState>, ledger: Arc<Ledger>, enabled: bool) -> ReporterHandle {
        ReporterHandle { state, ledger, enabled }
    }

    /// Writes the call to the outbox, then wakes the Reporter. A call that already exists for the
    /// block (or a `queued` after `proving`) is not added again.
    pub fn report(
        &self,
        block: u64,
        status: Status,
        proved: Option<ProvedReport>,
    ) -> Result<(), crate::store::StoreError> {
        if !self.enabled {
            return Ok(());
        }
        let (ms, cycles, path) = match &proved {
            Some(p) => (Some(p.proving_time_ms), p.cycles, Some(p.proof_path.as_path())),
            None => (None, None, None),
        };
        if let Some(row) = self.ledger.add_report(block, status.as_str(), ms, cycles, path)? {
            self.state.lock().queue.push_back(row);
            let _ = send(REPORTER, ReporterMsg::Wake);
        }
        Ok(())
    }
}

pub struct Reporter {
    pub ctx: Arc<Context>,
    pub client: Option<Arc<EthProofsClient>>,
    pub notifier: NotifierHandle,
}

fn status_of(s: &str) -> Status {
    match s {
        "queued" => Status::Queued,
        "proving" => Status::Proving,
        _ => Status::Proved,
    }
}

fn jitter() -> Duration {
    // Spreads retries of several daemons sharing one key.
    Duration::from_millis(
        u64::from(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0)) % 500,
    )
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
        {
            // The ledger is the outbox: whatever is pending there is what remains to send.
            let pending = self.ctx.ledger.pending_reports()?;
            let mut s = state.lock();
            s.queue = pending.into();
            s.sending = false;
        }
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
                    queued_reports: s.queue.iter().map(|r| format!("{} {}", r.block, r.status)).collect(),
                    delivered_count: s.delivered_count,
                    recent_delivered: s.delivered.iter().cloned().collect(),
                    failed: s.failed.iter().cloned().collect(),
                    last_error: s.last_error.clone(),
                });
            }
            ReporterMsg::Sent { id, outcome } => {
                self.settle(state, id, outcome)?;
                self.pump(&myself, state)?;
            }
            ReporterMsg::Wake => self.pump(&myself, state)?,
            ReporterMsg::Push(row) => {
                state.lock().queue.push_back(row);
                self.pump(&myself, state)?;
            }
        }
        Ok(())
    }
}

impl Reporter {
    fn fail(&self, s: &mut ReporterState, row: &ReportRow, reason: String) -> Result<(), ActorProcessingErr> {
        self.ctx.ledger.settle_report(row.id, "failed", Some(&reason))?;
        tracing::error!(block = row.block, status = %row.status, %reason, "EthProofs report failed permanently; not retried");
        s.failed.push_back(FailedReport { block: row.block, status: row.status.clone(), reason: reason.clone() });
        if s.failed.len() > 50 {
            s.failed.pop_front();
        }
        s.last_error = Some(reason.clone());
        self.notifier.alert(
            AlertKind::ReportFailed,
            format!("EthProofs report failed permanently: block {} {}", row.block, row.status),
            reason,
        );
        Ok(())
    }

    fn settle(&self, state: &Shared<ReporterState>, id: i64, outcome: Outcome) -> Result<(), ActorProcessingErr> {
        let mut s = state.lock();
        s.sending = false;
        let Some(row) = s.queue.front().cloned().filter(|r| r.id == id) else { return Ok(()) };
        let ledger = &self.ctx.ledger;
        let age = Duration::from_millis(
            (SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
                - row.created_at_ms)
                .max(0) as u64,
        );
        let (result, status) = match &outcome {
            Outcome::Done => ("done", "2xx".to_string()),
            Outcome::AlreadyProved => ("already_proved", "409".to_string()),
            Outcome::Permanent(m) => ("permanent", crate::telemetry::status_label(m)),
            Outcome::RetryAfter(_) => ("rate_limited", "429".to_string()),
            Outcome::Transient(m) => ("transient", crate::telemetry::status_label(m)),
        };
        crate::telemetry::api_response(&row.status, result, status);
        match outcome {
            Outcome::Done => {
                ledger.settle_report(id, "done", None)?;
                if row.status == "proved" {
                    crate::telemetry::report_latency(age.as_secs_f64());
                }
                s.queue.pop_front();
                s.delivered_count += 1;
                s.delivered.push_back(DeliveredReport {
                    block: row.block,
                    status: row.status.clone(),
                    at: super::rfc3339(SystemTime::now()),
                });
                if s.delivered.len() > 50 {
                    s.delivered.pop_front();
                }
                s.last_error = None;
                tracing::info!(block = row.block, status = %row.status, "reported to EthProofs");
                self.notifier.resolve(AlertKind::ReportFailed, format!("block {} {} accepted", row.block, row.status));
            }
            Outcome::AlreadyProved => {
                ledger.settle_report(id, "already_proved", None)?;
                s.queue.pop_front();
                s.already_proved.insert(row.block);
                tracing::info!(block = row.block, status = %row.status, "EthProofs says the block is already proved");
            }
            Outcome::Permanent(reason) => {
                s.queue.pop_front();
                self.fail(&mut s, &row, reason)?;
            }
            Outcome::RetryAfter(wait) => {
                ledger.retry_report(id, &format!("rate limited for {}s", wait.as_secs()))?;
                tracing::warn!(block = row.block, status = %row.status, wait_s = wait.as_secs(), "EthProofs rate limit; waiting");
                s.not_before = Some(Instant::now() + wait);
                s.last_error = Some(format!("rate limited for {}s", wait.as_secs()));
            }
            Outcome::Transient(reason) if age > self.ctx.config.report_max_age => {
                s.queue.pop_front();
                let hours = self.ctx.config.report_max_age.as_secs() / 3600;
                self.fail(&mut s, &row, format!("still failing after {hours} h: {reason}"))?;
            }
            Outcome::Transient(reason) => {
                let attempts = ledger.retry_report(id, &reason)?;
                if let Some(front) = s.queue.front_mut() {
                    front.attempts = attempts;
                }
                let wait =
                    (Duration::from_secs(1u64 << attempts.min(16))).min(self.ctx.config.report_max_backoff) + jitter();
                tracing::warn!(block = row.block, status = %row.status, %reason, retry_in_ms = wait.as_millis() as u64, "EthProofs call failed; will retry");
                s.not_before = Some(Instant::now() + wait);
                s.last_error = Some(reason);
            }
        }
        Ok(())
    }

    fn pump(&self, myself: &ActorRef<ReporterMsg>, state: &Shared<ReporterState>) -> Result<(), ActorProcessingErr> {
        let Some(client) = self.client.clone() else {
            state.lock().queue.clear();
            return Ok(());
        };
        let ledger = &self.ctx.ledger;
        let mut s = state.lock();
        if s.sending {
            return Ok(());
        }
        while let Some(front) = s.queue.front().cloned() {
            // A late queued/proving for a block the API already holds as proved is dropped.
            if front.status != "proved" && s.already_proved.contains(&front.block) {
                ledger.settle_report(front.id, "already_proved", None)?;
                s.queue.pop_front();
                continue;
            }
            // `proved` needs the block's row on the server, which only queued/proving create.
            if front.status == "proved" {
                let accepted = ["queued", "proving"].iter().any(|st| {
                    matches!(
                        ledger.report_state(front.block, st).ok().flatten().as_deref(),
                        Some("done" | "already_proved")
                    )
                });
                if !accepted {
                    s.queue.pop_front();
                    self.fail(
                        &mut s,
                        &front,
                        "neither queued nor proving was accepted for this block, so the API has no row to prove".into(),
                    )?;
                    continue;
                }
            }
            break;
        }
        let Some(report) = s.queue.front().cloned() else { return Ok(()) };
        let now = Instant::now();
        let paced = s.last_sent.map(|t| t + PACING).filter(|t| *t > now);
        let wait_until = match (s.not_before.filter(|t| *t > now), paced) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if let Some(until) = wait_until {
            myself.send_after(until - now, || ReporterMsg::Wake);
            return Ok(());
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
            deliver(REPORTER, ReporterMsg::Sent { id: report.id, outcome }).await;
        });
        Ok(())
    }
}

async fn build_call(report: &ReportRow) -> Result<Call, String> {
    let status = status_of(&report.status);
    let proved = match status {
        Status::Proved => {
            let path = report.proof_path.as_ref().ok_or("a proved report without a proof path")?;
            let proof =
                tokio::fs::read(path).await.map_err(|e| format!("cannot read the proof {}: {e}", path.display()))?;
            if proof.is_empty() {
                return Err(format!("the proof {} is empty", path.display()));
            }
            Some(Proved { proving_time_ms: report.proving_ms.unwrap_or(1), cycles: report.cycles, proof })
        }
        _ => None,
    };
    Ok(Call { block: report.block, status, proved })
}
