//! The Reporter actor: the ledger's outbox, sent to EthProofs. Which call goes next and what an
//! answer means are [`crate::decide::outbox`]'s; the send runs in a task that marks the call in
//! doubt before it goes and settles it in the ledger the moment the answer is in. After a
//! restart, of the actor or of the process, the pending calls are simply what the ledger holds.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::canonical::Canonical;
use super::report_call::build_call;
use super::{Alerts, Context, InFlightTask, Mailbox, ReporterSettings, rfc3339};
use crate::decide::outbox::{self, BlockFacts, Next};
use crate::ethproofs::{EthProofsClient, Outcome};
use crate::notify::AlertKind;
use crate::status::{DeliveredReport, FailedReport, Recent, ReporterStatus, public_reason};
use crate::store::{BlockState, ReportKind, ReportRow, Settle, StoreError};

/// Calls are spaced at least this far apart: 60/min is the team-wide limit.
const PACING: Duration = Duration::from_millis(1100);

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

fn jitter() -> Duration {
    // Spreads retries of several daemons sharing one key.
    Duration::from_millis(
        u64::from(SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0)) % 500,
    )
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
                tracing::warn!(block, status = "proved", %why, "not sent");
                if orphaned {
                    crate::telemetry::block_outcome("orphaned", "reorg");
                    self.alerts.info(format!("Reorg at block {block}"), why.clone());
                }
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
        crate::telemetry::api_response(row.kind.as_str(), result, http);
        let (block, status) = (row.block, row.kind.as_str());
        match settle {
            Settle::Done => {
                if row.kind == ReportKind::Proved {
                    let age = now_ms().saturating_sub(row.created_at_ms).max(0);
                    crate::telemetry::report_latency(age as f64 / 1000.0);
                }
                s.delivered_count += 1;
                s.delivered.push(DeliveredReport { block, status, at: rfc3339(SystemTime::now()) });
                s.last_error = None;
                tracing::info!(block, status, "reported to EthProofs");
                self.alerts.resolve(AlertKind::ReportFailed, format!("block {block} {status} accepted"));
            }
            Settle::AlreadyProved => tracing::info!(block, status, "EthProofs says the block is already proved"),
            Settle::Failed(reason) => self.gave_up(s, row, reason),
            Settle::Retry { error, next_at_ms } => {
                let wait_ms = next_at_ms.saturating_sub(now_ms());
                tracing::warn!(block, status, %error, retry_in_ms = wait_ms, "EthProofs call not accepted; will retry");
                s.last_error = Some(error.clone());
            }
            // Recorded and said by the send task (`ReporterMsg::Held`).
            Settle::Wait { .. } => {}
        }
    }

    fn gave_up(&self, s: &mut ReporterState, row: &ReportRow, reason: &str) {
        let (block, status) = (row.block, row.kind.as_str());
        tracing::error!(block, status, %reason, "EthProofs report failed permanently; not retried");
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
                        self.gave_up(s, row, &reason);
                    }
                }
                Next::Send(id) => {
                    let Some(row) = pending.into_iter().find(|r| r.id == id) else { return Ok(()) };
                    let now = Instant::now();
                    if let Some(at) = s.last_sent.map(|t| t + PACING).filter(|t| *t > now) {
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
    fn send(&self, client: Arc<EthProofsClient>, row: ReportRow, hold: crate::drain::Hold) -> InFlightTask {
        let (ctx, mailbox) = (self.ctx.clone(), self.mailbox.clone());
        let policy = self.settings.policy;
        InFlightTask::spawn(async move {
            let _hold = hold;
            if row.kind == ReportKind::Proved
                && let Err((why, orphaned)) = still_canonical(&ctx, &row).await
            {
                mailbox.deliver(ReporterMsg::Held { id: row.id, block: row.block, why, orphaned }).await;
                return;
            }
            let call = match build_call(&row).await {
                Ok(call) => bound_to_its_block(&ctx, &row, call).await,
                Err(e) => Err(e.to_string()),
            };
            // In doubt from here until the answer is recorded: a restart in between asks again.
            if let Err(e) = super::until_recorded(&ctx.ledger, || false, || ctx.ledger.report_sending(row.id)).await {
                tracing::error!(error = %e, block = row.block, "cannot mark the call in doubt; not sent");
                let why = e.to_string();
                mailbox.deliver(ReporterMsg::Held { id: row.id, block: row.block, why, orphaned: false }).await;
                return;
            }
            let outcome = match call {
                Ok(call) => client.send(&call).await,
                Err(reason) => Outcome::Permanent { http: None, reason },
            };
            let settle = outbox::settle(&row, &outcome, policy, now_ms(), jitter());
            // The answer is recorded through a ledger that cannot be written for now; a restart
            // in between finds the call in doubt and asks again.
            if let Err(e) =
                super::until_recorded(&ctx.ledger, || false, || ctx.ledger.report_settled(&row, &settle)).await
            {
                tracing::error!(error = %e, block = row.block, "cannot record the EthProofs answer; the call stays pending");
            }
            mailbox.deliver(ReporterMsg::Sent { row: Box::new(row), outcome, settle }).await;
        })
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

/// Immediately before `proved` goes: the block the proof is of must still be the chain's at its
/// height. `Err` says why the call is not sent now, and whether the block was orphaned; what
/// became of it is already recorded — a node that cannot say keeps the call waiting (with
/// backoff, its reason on `/health` and the block page), and a block that left the chain is
/// orphaned and proved afresh. A ledger that cannot be read or written keeps it waiting too.
async fn still_canonical(ctx: &Arc<Context>, row: &ReportRow) -> Result<(), (String, bool)> {
    let wait = |why: String| {
        let waited = now_ms().saturating_sub(row.created_at_ms).max(0);
        let next_at_ms = now_ms().saturating_add(outbox::canonical_wait_ms(waited));
        let reason = format!("waiting for the node to confirm block {} is still canonical: {why}", row.block);
        // Unrecorded, the call is simply looked at again at the next turn.
        let _ = ctx.ledger.report_settled(row, &Settle::Wait { reason: reason.clone(), next_at_ms });
        Err((reason, false))
    };
    let record = match ctx.ledger.block(row.block) {
        Ok(record) => record,
        Err(e) => return wait(format!("the ledger cannot be read: {e}")),
    };
    let built_from = record.as_ref().and_then(|b| b.block_hash.clone());
    match super::canonical::check(ctx, row.block, built_from.as_deref()).await {
        Canonical::Yes => Ok(()),
        Canonical::Unknown(why) => wait(why),
        Canonical::Left { built_from, reason } => {
            // The block's own folder (`<n>/`), wherever the prover put the proof inside it.
            let dir = record.as_ref().and_then(|b| b.input_path.as_deref()).and_then(std::path::Path::parent);
            let (ctx, block, dir) = (ctx.clone(), row.block, dir.map(std::path::Path::to_path_buf));
            let why = reason.clone();
            let orphaned = tokio::task::spawn_blocking(move || match &dir {
                Some(dir) => super::canonical::orphan(&ctx, block, dir, &built_from, &why),
                None => ctx.ledger.block_reorged(block, Some(&built_from), None, &why),
            })
            .await;
            match orphaned {
                Ok(Ok(())) => {
                    crate::telemetry::proof_orphaned();
                    Err((
                        format!("{reason}: its proof is kept, never reported, and the canonical block is proved"),
                        true,
                    ))
                }
                Ok(Err(e)) => Err((format!("{reason}, but the orphan could not be recorded yet: {e}"), false)),
                Err(e) => Err((format!("{reason}, but the task recording the orphan failed: {e}"), false)),
            }
        }
    }
}

/// A `proved` is sent only with a proof checked for this block and this program, whenever it
/// was accepted: one accepted while checks were off, before this build recorded outputs, or
/// before an operator's resubmit, is checked now (the bytes about to go, off the async
/// threads). `Err` is why it is never sent.
async fn bound_to_its_block(
    ctx: &Arc<Context>,
    row: &ReportRow,
    call: crate::ethproofs::Call,
) -> Result<crate::ethproofs::Call, String> {
    let Some(check) = ctx.verify.clone() else { return Ok(call) };
    let Some(proved) = &call.proved else { return Ok(call) };
    let expected = ctx
        .ledger
        .block(row.block)
        .map_err(|e| e.to_string())?
        .and_then(|b| b.expected_output)
        .and_then(|hex| crate::commitment::BlockOutputs::from_hex(&hex));
    let key = super::proof_run::program_key(ctx);
    let proof = proved.proof.clone();
    let checked = tokio::task::spawn_blocking(move || check.check_bytes(&proof, expected.as_ref(), key.as_ref()))
        .await
        .map_err(|e| format!("the task checking the proof failed: {e}"))?;
    match checked {
        Ok(_) => Ok(call),
        Err(rejected) => {
            crate::telemetry::proof_rejected();
            Err(format!("the proof is not checked for this block and program ({rejected}); never sent"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use axum::extract::{Path, State};
    use axum::routing::post;
    use ractor::Actor;

    use super::*;
    use crate::daemon::test_support::{NodeHash, context, enqueued, node, serve, wait};
    use crate::store::{Accepted, ExitRecord, ReportState};

    type Seen = Arc<Mutex<Vec<(String, u64)>>>;

    /// An EthProofs API that accepts everything and remembers the order.
    async fn api(seen: Seen) -> String {
        async fn accept(State(seen): State<Seen>, Path(status): Path<String>, body: String) -> &'static str {
            let body: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            seen.lock().unwrap().push((status, body["block_number"].as_u64().unwrap_or(0)));
            r#"{"proof_id":1}"#
        }
        serve(axum::Router::new().route("/proofs/{status}", post(accept)).with_state(seen)).await
    }

    const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    /// Block `n` proved with `proof` (reporting on): its three calls pending.
    fn proved(ledger: &crate::store::Ledger, n: u64, proof: &std::path::Path) {
        use sha2::Digest;
        ledger.targets_scheduled(&[n], None, n).unwrap();
        ledger.input_built(n, &enqueued(proof, HASH), true).unwrap();
        ledger.proof_started(n, true).unwrap();
        let bytes = std::fs::read(proof).unwrap();
        let exit = ExitRecord { exit: "code 0", proof: Some((proof, bytes.len() as u64)), proving_ms: 5, cycles: None };
        ledger.prover_exited(n, &exit).unwrap();
        let digest = hex::encode(sha2::Sha256::digest(&bytes));
        ledger.proof_accepted(n, &Accepted { proving_ms: 5, cycles: None, sha256: &digest }, true).unwrap();
    }

    /// A Reporter over `ctx` sending to EthProofs at `settings`.
    async fn reporter(ctx: &Arc<Context>, settings: &crate::daemon::Settings) -> ActorRef<ReporterMsg> {
        let client = Arc::new(EthProofsClient::new(ctx.http.clone(), settings.reporter.ethproofs.clone().unwrap()));
        let mailbox = Mailbox::default();
        let reporter = Reporter {
            ctx: ctx.clone(),
            settings: settings.reporter.clone(),
            client: Some(client),
            alerts: Alerts::default(),
            mailbox: mailbox.clone(),
        };
        let (actor, _) = Actor::spawn(None, reporter, ()).await.unwrap();
        mailbox.set(Some(actor.clone()));
        actor
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sends_each_blocks_calls_in_order_and_holds_a_call_in_doubt() {
        let seen: Seen = Arc::default();
        let url = api(seen.clone()).await;
        let node_url = node(Arc::new(std::sync::Mutex::new(Some(HASH.to_string())))).await;
        let dir = tempfile::tempdir().unwrap();
        let flags = ["--ethproofs-rpc-url", &url, "--ethproofs-api-key", "k", "--ethproofs-cluster-id", "1"];
        let (ctx, settings) = context(dir.path(), &node_url, &flags);
        let ledger = &ctx.ledger;
        let proof = dir.path().join("proof.bin");
        std::fs::write(&proof, [7u8; 64]).unwrap();
        // Block 10: proved, all three calls pending. Block 20: its `proving` went out and the
        // daemon died before the answer, and nothing follows it yet.
        proved(ledger, 10, &proof);
        ledger.targets_scheduled(&[20], None, 20).unwrap();
        ledger.input_built(20, &enqueued(&proof, HASH), false).unwrap();
        ledger.proof_started(20, true).unwrap();
        let in_doubt = ledger.pending_reports().unwrap().into_iter().find(|r| r.block == 20).unwrap();
        ledger.report_sending(in_doubt.id).unwrap();

        let actor = reporter(&ctx, &settings).await;
        wait("block 10's three calls", || seen.lock().unwrap().len() >= 3).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let sent = seen.lock().unwrap().clone();
        let expected: Vec<(String, u64)> =
            ["queued", "proving", "proved"].iter().map(|s| (s.to_string(), 10)).collect();
        assert_eq!(sent, expected, "in order, and block 20's call in doubt is not sent again");
        assert!(ledger.reports_of(10).unwrap().iter().all(|r| r.state == ReportState::Done));
        assert_eq!(ledger.report_state(20, ReportKind::Proving).unwrap(), Some(ReportState::Pending));
        let status = ctx.board.reporter.fresh().unwrap();
        assert_eq!((status.delivered_count, status.state), (3, "waiting"), "block 20's call is still pending");
        actor.stop(None);
    }

    /// Block 10 proved (its proof under `OUTPUT_DIR/10/`), a node answering `answer`, and a
    /// Reporter sending to an API that records what it gets.
    async fn block_10_proved(answer: NodeHash) -> (tempfile::TempDir, Arc<Context>, Seen, ActorRef<ReporterMsg>) {
        let seen: Seen = Arc::default();
        let url = api(seen.clone()).await;
        let node_url = node(answer).await;
        let dir = tempfile::tempdir().unwrap();
        let flags = ["--ethproofs-rpc-url", &url, "--ethproofs-api-key", "k", "--ethproofs-cluster-id", "1"];
        let (ctx, settings) = context(dir.path(), &node_url, &flags);
        let proof = dir.path().join("10").join("proof.bin");
        std::fs::create_dir_all(proof.parent().unwrap()).unwrap();
        std::fs::write(&proof, [7u8; 64]).unwrap();
        proved(&ctx.ledger, 10, &proof);
        let actor = reporter(&ctx, &settings).await;
        (dir, ctx, seen, actor)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proved_waits_while_the_node_cannot_say_the_block_is_canonical_and_goes_once_it_does() {
        let answer = Arc::new(std::sync::Mutex::new(None));
        let (_dir, ctx, seen, actor) = block_10_proved(answer.clone()).await;
        wait("queued and proving sent", || seen.lock().unwrap().len() >= 2).await;
        let proved_call =
            || ctx.ledger.reports_of(10).unwrap().into_iter().find(|r| r.kind == ReportKind::Proved).unwrap();
        wait("the proved call waiting on the node", || {
            proved_call().last_error.is_some_and(|e| e.contains("waiting for the node to confirm block 10"))
        })
        .await;
        assert_eq!(seen.lock().unwrap().len(), 2, "proved is never sent on hope");
        let call = proved_call();
        assert_eq!(
            (call.state, call.attempts, call.in_doubt),
            (ReportState::Pending, 0, false),
            "a wait is no attempt"
        );
        assert!(ctx.board.reporter.fresh().unwrap().last_error.unwrap().contains("canonical"), "shown on /health");

        *answer.lock().unwrap() = Some(HASH.to_string());
        wait("proved sent once the node confirms", || seen.lock().unwrap().len() == 3).await;
        assert_eq!(seen.lock().unwrap()[2], ("proved".to_string(), 10));
        actor.stop(None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proved_block_that_left_the_chain_before_proved_went_is_orphaned_and_built_again() {
        let other = "0x2222222222222222222222222222222222222222222222222222222222222222";
        let (dir, ctx, seen, actor) = block_10_proved(Arc::new(std::sync::Mutex::new(Some(other.to_string())))).await;
        wait("the block orphaned", || ctx.ledger.block(10).unwrap().unwrap().state == BlockState::Seen).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(seen.lock().unwrap().iter().all(|(s, _)| s != "proved"), "the orphan's proof is never reported");
        assert_eq!(ctx.ledger.orphans(5).unwrap().len(), 1);
        assert!(dir.path().join("10.orphan-111111111111/proof.bin").is_file(), "its proof is kept aside");
        assert!(ctx.ledger.reports_of(10).unwrap().iter().all(|r| r.kind != ReportKind::Proved));
        actor.stop(None);
    }
}
