//! The Reporter actor: the ledger's outbox, sent to EthProofs. Which call goes next and what an
//! answer means are [`crate::decide::outbox`]'s; the send runs in a task that marks the call in
//! doubt before it goes and settles it in the ledger the moment the answer is in. After a
//! restart, of the actor or of the process, the pending calls are simply what the ledger holds.

mod report_call;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{Alerts, Context, InFlightTask, Mailbox, ReporterSettings, rfc3339};
use crate::decide::outbox::{self, BlockFacts, Next};
use crate::outside::ethproofs::{EthProofsClient, Outcome};
use crate::outside::notify::AlertKind;
use crate::runtime::status::{DeliveredReport, FailedReport, Recent, ReporterStatus, public_reason};
use crate::store::{BlockState, ReportKind, ReportRow, Settle, StoreError};
use report_call::{prepare, still_canonical};

pub enum ReporterMsg {
    /// The outbox may have changed (a call raised, an operator's resubmit) or a wait ended.
    Wake,
    /// A send ended; its outcome is already in the ledger.
    Sent { row: Box<ReportRow>, outcome: Outcome, settle: Settle },
    /// A `proved` was not sent: the node could not confirm its block is still canonical (it
    /// waits, recorded), or the block left the chain (recorded as orphaned, proved afresh:
    /// `orphaned`).
    Held { id: i64, block: u64, why: String, orphaned: bool },
    /// Heartbeat: publish status, and look again.
    Tick,
    /// Panics, as a bug would (tests of the restart path).
    #[cfg(test)]
    Crash,
}

/// How long a graceful stop waits for the call in flight (it holds the drain open, so that a
/// graceful stop never leaves a call in doubt).
pub const STOP_WAIT: Duration = Duration::from_secs(10);

pub struct ReporterState {
    /// The request being sent.
    sending: Option<(i64, InFlightTask)>,
    last_sent: Option<Instant>,
    delivered: Recent<DeliveredReport>,
    delivered_count: u64,
    failed: Recent<FailedReport>,
    last_error: Option<String>,
    /// The outbox held a pending call at the last look (the status says `waiting`).
    waiting: bool,
}

pub struct Reporter {
    pub ctx: Arc<Context>,
    pub settings: Arc<ReporterSettings>,
    pub client: Option<Arc<EthProofsClient>>,
    pub alerts: Alerts,
    pub mailbox: Mailbox<ReporterMsg>,
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)).unwrap_or(0)
}

impl Actor for Reporter {
    type Msg = ReporterMsg;
    type State = ReporterState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        myself.send_interval(Duration::from_secs(1), || ReporterMsg::Tick);
        let _ = myself.cast(ReporterMsg::Wake);
        Ok(ReporterState {
            sending: None,
            last_sent: None,
            delivered: Recent::new(50),
            delivered_count: 0,
            failed: Recent::new(50),
            last_error: None,
            waiting: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReporterMsg::Wake | ReporterMsg::Tick => {}
            #[cfg(test)]
            ReporterMsg::Crash => panic!("an injected crash"),
            ReporterMsg::Sent { row, outcome, settle } => {
                if s.sending.as_ref().is_some_and(|(id, _)| *id == row.id) {
                    s.sending = None;
                }
                self.answered(s, &row, &outcome, &settle);
            }
            ReporterMsg::Held { id, block, why, orphaned } => {
                if s.sending.as_ref().is_some_and(|(sending, _)| *sending == id) {
                    s.sending = None;
                }
                crate::runtime::block_span!(block, call = ReportKind::Proved.as_str()).in_scope(|| {
                    tracing::warn!(%why, "not sent");
                    if orphaned {
                        crate::runtime::telemetry::block_outcome("orphaned", "reorg");
                        self.alerts.info(format!("Reorg at block {block}"), why.clone());
                    }
                });
                s.last_error = Some(why);
            }
        }
        super::survive(self.pump(&myself, s))?;
        super::survive(self.publish(s))?;
        Ok(())
    }
}

impl Reporter {
    fn answered(&self, s: &mut ReporterState, row: &ReportRow, outcome: &Outcome, settle: &Settle) {
        let (result, http) = match outcome {
            Outcome::Done => ("done", Some(200)),
            Outcome::AlreadyProved => ("already_proved", Some(409)),
            Outcome::Permanent { http, .. } => ("permanent", *http),
            Outcome::RetryAfter(_) => ("rate_limited", Some(429)),
            Outcome::Transient { http, .. } => ("transient", *http),
        };
        crate::runtime::telemetry::api_response(row.kind.as_str(), result, http);
        let (block, status) = (row.block, row.kind.as_str());
        // The turn hears of one call: its lines are that block's.
        let _in = crate::runtime::block_span!(block, call = status).entered();
        match settle {
            Settle::Done => {
                if row.kind == ReportKind::Proved {
                    let age = now_ms().saturating_sub(row.created_at_ms).max(0);
                    crate::runtime::telemetry::report_latency(age as f64 / 1000.0);
                    let block_ms = self.ctx.ledger.block(block).ok().flatten().and_then(|b| b.block_timestamp);
                    let block_ms = block_ms.and_then(|t| i64::try_from(t).ok()).and_then(|t| t.checked_mul(1000));
                    if let Some(ms) = block_ms.and_then(|t| u64::try_from(now_ms().checked_sub(t)?).ok()) {
                        crate::runtime::telemetry::end_to_end(ms);
                    }
                }
                s.delivered_count += 1;
                s.delivered.push(DeliveredReport { block, status, at: rfc3339(SystemTime::now()) });
                s.last_error = None;
                tracing::info!("reported to EthProofs");
                self.alerts.resolve(AlertKind::ReportFailed, format!("block {block} {status} accepted"));
            }
            Settle::AlreadyProved => tracing::info!("EthProofs says the block is already proved"),
            Settle::Failed(reason) => self.gave_up(s, row, reason),
            Settle::Retry { error, next_at_ms } => {
                let wait_ms = next_at_ms.saturating_sub(now_ms());
                tracing::warn!(%error, retry_in_ms = wait_ms, "EthProofs call not accepted; will retry");
                s.last_error = Some(error.clone());
            }
            // Recorded and said by the send task (`ReporterMsg::Held`).
            Settle::Wait { .. } => {}
        }
    }

    /// In the call's span.
    fn gave_up(&self, s: &mut ReporterState, row: &ReportRow, reason: &str) {
        let (block, status) = (row.block, row.kind.as_str());
        tracing::error!(%reason, "EthProofs report failed permanently; not retried");
        s.failed.push(FailedReport { block, status, reason: public_reason(reason), detail: reason.to_string() });
        s.last_error = Some(reason.to_string());
        self.alerts.alert(
            AlertKind::ReportFailed,
            format!("EthProofs report failed permanently: block {block} {status}"),
            format!("{reason}\n{}", self.ctx.links.block(block, false)),
        );
    }

    fn pump(&self, myself: &ActorRef<ReporterMsg>, s: &mut ReporterState) -> Result<(), StoreError> {
        let Some(client) = self.client.clone() else { return Ok(()) };
        // Held before the drain is looked at, as the Prover does: a stop that begins after this
        // look waits for the call's answer to be recorded.
        let hold = self.ctx.drain.hold();
        if s.sending.is_some() || self.ctx.drain.is_draining() {
            return Ok(());
        }
        let ledger = &self.ctx.ledger;
        // Each turn settles one call that can never go (superseded, given up) or sends one; the
        // bound only guards against a ledger write that did not take.
        for _ in 0..1000 {
            let pending = ledger.pending_reports()?;
            let facts = |block: u64| BlockFacts {
                row_accepted: ledger
                    .reports_of(block)
                    .is_ok_and(|rows| rows.iter().any(|r| r.kind != ReportKind::Proved && r.state.accepted())),
                ended_unproved: ledger
                    .block(block)
                    .ok()
                    .flatten()
                    .is_some_and(|b| matches!(b.state, BlockState::Failed | BlockState::Skipped)),
            };
            s.waiting = !pending.is_empty();
            match outbox::next(&pending, facts, now_ms()) {
                Next::Idle | Next::WaitUntil(_) => return Ok(()),
                Next::Supersede(id) => ledger.report_superseded(id)?,
                Next::GiveUp(id, reason) => {
                    if let Some(row) = pending.iter().find(|r| r.id == id) {
                        ledger.report_settled(row, &Settle::Failed(reason.clone()))?;
                        crate::runtime::block_span!(block = row.block, call = row.kind.as_str())
                            .in_scope(|| self.gave_up(s, row, &reason));
                    }
                }
                Next::Send(id) => {
                    let Some(row) = pending.into_iter().find(|r| r.id == id) else { return Ok(()) };
                    let now = Instant::now();
                    if let Some(at) = s.last_sent.map(|t| t + self.settings.pacing).filter(|t| *t > now) {
                        myself.send_after(at - now, || ReporterMsg::Wake);
                        return Ok(());
                    }
                    s.last_sent = Some(now);
                    let task = self.send(client, row, hold);
                    s.sending = Some((id, task));
                    return Ok(());
                }
            }
        }
        tracing::error!("the outbox did not settle in 1000 steps; looking again at the next tick");
        Ok(())
    }

    /// Sends one call; `hold` keeps the daemon's stop waiting (up to STOP_WAIT) for its answer to
    /// be recorded.
    fn send(&self, client: Arc<EthProofsClient>, row: ReportRow, hold: crate::runtime::drain::Hold) -> InFlightTask {
        let (ctx, mailbox) = (self.ctx.clone(), self.mailbox.clone());
        let policy = self.settings.policy;
        // Every line about the call, the canonical check's and the client's included, names its block.
        let span = crate::runtime::block_span!(block = row.block, call = row.kind.as_str());
        InFlightTask::spawn(tracing::Instrument::instrument(
            async move {
                let _hold = hold;
                if row.kind == ReportKind::Proved
                    && let Err((why, orphaned)) = still_canonical(&ctx, &row).await
                {
                    mailbox.deliver(ReporterMsg::Held { id: row.id, block: row.block, why, orphaned }).await;
                    return;
                }
                let call = prepare(&ctx, &row).await;
                // In doubt from here until the answer is recorded: a restart in between asks again.
                if let Err(e) = super::until_recorded(&ctx.ledger, || false, || ctx.ledger.report_sending(row.id)).await
                {
                    tracing::error!(error = %e, "cannot mark the call in doubt; not sent");
                    let why = e.to_string();
                    mailbox.deliver(ReporterMsg::Held { id: row.id, block: row.block, why, orphaned: false }).await;
                    return;
                }
                let outcome = match call {
                    Ok(call) => client.send(&call).await,
                    Err(e) => Outcome::Permanent { http: None, reason: e.to_string() },
                };
                let settle = outbox::settle(&row, &outcome, policy, now_ms(), crate::runtime::backoff::draw());
                // The answer is recorded through a ledger that cannot be written for now; a restart
                // in between finds the call in doubt and asks again.
                if let Err(e) =
                    super::until_recorded(&ctx.ledger, || false, || ctx.ledger.report_settled(&row, &settle)).await
                {
                    tracing::error!(error = %e, "cannot record the EthProofs answer; the call stays pending");
                }
                mailbox.deliver(ReporterMsg::Sent { row: Box::new(row), outcome, settle }).await;
            },
            span,
        ))
    }

    fn publish(&self, s: &ReporterState) -> Result<(), StoreError> {
        self.ctx.board.reporter.publish(ReporterStatus {
            enabled: self.client.is_some(),
            state: if self.client.is_none() {
                "disabled"
            } else if s.sending.is_some() {
                "sending"
            } else if s.waiting {
                "waiting"
            } else {
                "idle"
            },
            delivered_count: s.delivered_count,
            recent_delivered: s.delivered.to_vec(),
            failed: s.failed.to_vec(),
            last_error: s.last_error.as_deref().map(public_reason),
            last_error_detail: s.last_error.clone(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests;
