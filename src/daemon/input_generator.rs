//! The InputGenerator actor: follows the head, derives every target since the last handled
//! one, and builds each target's input in the background (one at a time, overlapping proving),
//! handing ready inputs to the Prover. A target that cannot be built is recorded as missed with
//! the stage and the reason; none is dropped silently.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use serde::Serialize;

use super::notifier::NotifierHandle;
use super::prover::{Job, ProverHandle};
use super::{Context, INPUT_GENERATOR, Shared, deliver, rfc3339, send};
use crate::chain::{ChainError, HeadPoller, NodeClient};
use crate::input::{self, GenerateOptions, Generated};
use crate::notify::AlertKind;
use crate::schedule;

/// The head not advancing for this long makes the daemon degraded.
pub const HEAD_STALE_AFTER: Duration = Duration::from_secs(300);
/// The node failing this long raises an alert.
const RPC_DOWN_ALERT_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Serialize)]
pub struct MissedBlock {
    pub block: u64,
    pub stage: &'static str,
    pub reason: String,
    pub at: String,
}

impl InputGenState {
    /// Restores progress from the ledger: where targets resume, and targets still to build.
    pub fn resume(&mut self, last_handled: Option<u64>, to_build: Vec<u64>) {
        self.last_handled = last_handled;
        let now = Instant::now();
        self.pending.extend(to_build.into_iter().map(|b| (b, now)));
    }
}

#[derive(Default)]
pub struct InputGenState {
    last_handled: Option<u64>,
    head: Option<u64>,
    head_seen_at: Option<(Instant, SystemTime)>,
    pending: VecDeque<(u64, Instant)>,
    building: Option<(u64, Instant, tokio::task::JoinHandle<()>)>,
    processed_count: u64,
    missed: VecDeque<MissedBlock>,
    missed_count: u64,
    polling: bool,
    rpc_down_since: Option<Instant>,
    rpc_down_alerted: bool,
    last_rpc_error: Option<String>,
    ws_task: Option<tokio::task::JoinHandle<()>>,
    stopped: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InputGenStatus {
    pub status: &'static str,
    pub state: &'static str,
    pub queue_length: usize,
    pub queued_blocks: Vec<u64>,
    pub building_block: Option<u64>,
    pub processed_count: u64,
    pub head: Option<u64>,
    pub head_seen_at: Option<String>,
    pub head_age_seconds: Option<u64>,
    pub next_target: Option<u64>,
    pub missed_count: u64,
    pub missed_blocks: Vec<MissedBlock>,
    pub rpc_error: Option<String>,
}

pub enum InputGenMsg {
    Tick,
    /// Operator asked for these blocks (any number, not only targets); answers how many were new.
    Manual(Vec<u64>, RpcReplyPort<usize>),
    /// Pause ended: start building again.
    Wake,
    Head(u64),
    PollFailed(String),
    Built {
        block: u64,
        result: Box<Result<Generated, (&'static str, String)>>,
    },
    Status(RpcReplyPort<InputGenStatus>),
    Stop(RpcReplyPort<()>),
}

pub struct InputGenerator {
    pub ctx: Arc<Context>,
    pub poller: Arc<HeadPoller>,
    pub prover: ProverHandle,
    pub notifier: NotifierHandle,
}

impl Actor for InputGenerator {
    type Msg = InputGenMsg;
    type State = Shared<InputGenState>;
    type Arguments = Shared<InputGenState>;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        state: Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        {
            let mut s = state.lock();
            s.polling = false;
            // A build whose task ended while no incarnation was alive lost its result: redo it.
            if s.building.as_ref().is_some_and(|(_, _, task)| task.is_finished())
                && let Some((block, seen, _)) = s.building.take()
            {
                s.pending.push_front((block, seen));
            }
            if let Some(url) = &self.ctx.config.eth_ws_url
                && s.ws_task.as_ref().is_none_or(|t| t.is_finished())
            {
                let url = url.expose().to_string();
                s.ws_task = Some(tokio::spawn(crate::chain::follow_new_heads(url, |n| {
                    let _ = send(INPUT_GENERATOR, InputGenMsg::Head(n));
                })));
            }
        }
        myself.send_interval(self.ctx.config.poll_interval, || InputGenMsg::Tick);
        let _ = myself.cast(InputGenMsg::Tick);
        Ok(state)
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            InputGenMsg::Tick => {
                self.check_disk();
                self.poll(state);
                self.pump(state);
            }
            InputGenMsg::Wake => self.pump(state),
            InputGenMsg::Manual(blocks, reply) => {
                let mut added = 0;
                {
                    let mut s = state.lock();
                    let now = Instant::now();
                    for block in blocks {
                        let known = s.pending.iter().any(|(b, _)| *b == block)
                            || s.building.as_ref().is_some_and(|(b, _, _)| *b == block);
                        if known {
                            continue;
                        }
                        self.ctx.ledger.mark_seen(block)?;
                        tracing::info!(block, "target added by the operator");
                        s.pending.push_back((block, now));
                        added += 1;
                    }
                }
                let _ = reply.send(added);
                self.pump(state);
            }
            InputGenMsg::Head(n) => {
                self.rpc_ok(state);
                self.on_head(state, n)?;
                self.pump(state);
            }
            InputGenMsg::PollFailed(reason) => self.rpc_failed(state, reason),
            InputGenMsg::Built { block, result } => {
                self.on_built(state, block, *result)?;
                self.pump(state);
            }
            InputGenMsg::Status(reply) => {
                let _ = reply.send(self.status(state));
            }
            InputGenMsg::Stop(reply) => {
                let mut s = state.lock();
                s.stopped = true;
                if let Some(t) = s.ws_task.take() {
                    t.abort();
                }
                if let Some((_, _, t)) = s.building.take() {
                    t.abort();
                }
                let _ = reply.send(());
            }
        }
        Ok(())
    }
}

impl InputGenerator {
    /// Pauses new work while OUTPUT_DIR is short of space, and resumes it when space returns.
    fn check_disk(&self) {
        use std::sync::atomic::Ordering;
        let min = self.ctx.config.min_free_disk_mb;
        let Some(free) = crate::health::free_mb(&self.ctx.config.output_dir) else { return };
        let low = free < min;
        let was_low = self.ctx.disk_low.swap(low, Ordering::SeqCst);
        if low && !was_low {
            self.notifier.alert(
                AlertKind::DiskLow,
                "Disk low: new work paused",
                format!("{} has {free} MB free, below MIN_FREE_DISK_MB = {min}", self.ctx.config.output_dir.display()),
            );
        } else if was_low && !low {
            self.notifier.resolve(AlertKind::DiskLow, format!("{free} MB free again; work resumes"));
            let _ = send(super::PROVER, super::prover::ProverMsg::Wake);
        }
    }

    fn poll(&self, state: &Shared<InputGenState>) {
        let mut s = state.lock();
        if s.polling || s.stopped {
            return;
        }
        s.polling = true;
        let poller = self.poller.clone();
        tokio::spawn(async move {
            let msg = match poller.head().await {
                Ok(n) => InputGenMsg::Head(n),
                Err(e) => InputGenMsg::PollFailed(e.to_string()),
            };
            deliver(INPUT_GENERATOR, msg).await;
        });
    }

    fn rpc_ok(&self, state: &Shared<InputGenState>) {
        let mut s = state.lock();
        s.polling = false;
        if let Some(since) = s.rpc_down_since.take()
            && std::mem::take(&mut s.rpc_down_alerted)
        {
            self.notifier.resolve(
                AlertKind::RpcDown,
                format!("{} reachable again after {}s down", self.ctx.node.endpoint(), since.elapsed().as_secs()),
            );
        }
        s.last_rpc_error = None;
    }

    fn rpc_failed(&self, state: &Shared<InputGenState>, reason: String) {
        let mut s = state.lock();
        s.polling = false;
        tracing::warn!(%reason, "polling the head failed");
        crate::telemetry::rpc_error("head", &reason);
        let since = *s.rpc_down_since.get_or_insert_with(Instant::now);
        if since.elapsed() >= RPC_DOWN_ALERT_AFTER && !s.rpc_down_alerted {
            s.rpc_down_alerted = true;
            self.notifier.alert(AlertKind::RpcDown, "Ethereum node unreachable for 60 s", reason.clone());
        }
        s.last_rpc_error = Some(reason);
    }

    fn on_head(&self, state: &Shared<InputGenState>, head: u64) -> Result<(), ActorProcessingErr> {
        let cfg = &self.ctx.config;
        let mut s = state.lock();
        if s.stopped || s.head.is_some_and(|h| head <= h) {
            return Ok(());
        }
        s.head = Some(head);
        let now = Instant::now();
        s.head_seen_at = Some((now, SystemTime::now()));
        let due = schedule::due(s.last_handled, head, cfg.block_interval, cfg.max_backfill_blocks, cfg.start_block);
        for &block in &due.skipped {
            self.ctx.ledger.mark_skipped(block, "older than MAX_BACKFILL_BLOCKS below the head")?;
            crate::telemetry::block_outcome("skipped", "backfill_window");
            record_missed(
                &mut s,
                block,
                "backfill_window",
                format!(
                    "more than MAX_BACKFILL_BLOCKS ({}) below the head {head} when it was seen",
                    cfg.max_backfill_blocks
                ),
            );
        }
        if let Some(&newest) = due.prove.last().or(due.skipped.last()) {
            s.last_handled = Some(newest);
        }
        for block in due.prove {
            tracing::info!(block, head, "new target");
            self.ctx.ledger.mark_seen(block)?;
            s.pending.push_back((block, now));
        }
        Ok(())
    }

    fn pump(&self, state: &Shared<InputGenState>) {
        let mut s = state.lock();
        if s.building.is_some() || s.stopped || self.ctx.is_paused() {
            return;
        }
        let Some((block, seen)) = s.pending.pop_front() else { return };
        let ctx = self.ctx.clone();
        let task = tokio::spawn(async move {
            let result = build(&ctx, block).await;
            deliver(INPUT_GENERATOR, InputGenMsg::Built { block, result: Box::new(result) }).await;
        });
        s.building = Some((block, seen, task));
    }

    fn on_built(
        &self,
        state: &Shared<InputGenState>,
        block: u64,
        result: Result<Generated, (&'static str, String)>,
    ) -> Result<(), ActorProcessingErr> {
        let mut s = state.lock();
        let Some((_, seen, _)) = s.building.take_if(|(b, _, _)| *b == block) else { return Ok(()) };
        match result {
            Ok(generated) => {
                s.processed_count += 1;
                let input_ms = seen.elapsed().as_millis() as u64;
                tracing::info!(block, input_bytes = generated.written.bytes, input_ms, "input ready");
                crate::telemetry::input_generated(input_ms as f64 / 1000.0);
                self.ctx.ledger.mark_input_ready(
                    block,
                    &generated.written.path,
                    generated.summary.gas_used,
                    generated.summary.tx_count,
                    &format!("{:#x}", generated.summary.hash),
                    input_ms,
                )?;
                drop(s);
                self.notifier.resolve(AlertKind::InputFailed, format!("the input of block {block} was built"));
                self.prover.enqueue(
                    Job {
                        block,
                        input_path: generated.written.path.clone(),
                        head_seen_at: seen,
                        block_timestamp: Some(generated.summary.timestamp),
                    },
                    // Without a proof to follow, `queued` would leave the block hanging on the site.
                    self.ctx.config.zisk_action == crate::config::ZiskAction::Prove,
                )?;
            }
            Err((stage, reason)) => {
                self.ctx.ledger.mark_failed(block, stage, &reason)?;
                crate::telemetry::block_outcome("missed", stage);
                if stage.starts_with("fetch") || reason.contains("JSON-RPC error") || reason.contains("null result") {
                    crate::telemetry::rpc_error(stage, &reason);
                }
                self.notifier.alert(
                    AlertKind::InputFailed,
                    format!("Input failed: block {block} ({stage})"),
                    reason.clone(),
                );
                record_missed(&mut s, block, stage, reason);
            }
        }
        Ok(())
    }

    fn status(&self, state: &Shared<InputGenState>) -> InputGenStatus {
        let s = state.lock();
        let interval = self.ctx.config.block_interval;
        let head_age = s.head_seen_at.map(|(i, _)| i.elapsed());
        let stale = head_age.is_some_and(|a| a > HEAD_STALE_AFTER);
        InputGenStatus {
            status: if stale { "degraded" } else { "healthy" },
            state: if s.stopped {
                "stopped"
            } else if self.ctx.is_paused() {
                "paused"
            } else if s.building.is_some() {
                "building"
            } else if s.last_rpc_error.is_some() {
                "rpc_error"
            } else {
                "polling"
            },
            queue_length: s.pending.len(),
            queued_blocks: s.pending.iter().map(|(b, _)| *b).collect(),
            building_block: s.building.as_ref().map(|(b, _, _)| *b),
            processed_count: s.processed_count,
            head: s.head,
            head_seen_at: s.head_seen_at.map(|(_, t)| rfc3339(t)),
            head_age_seconds: head_age.map(|a| a.as_secs()),
            next_target: s.head.map(|h| schedule::newest_target(h, interval) + interval),
            missed_count: s.missed_count,
            missed_blocks: s.missed.iter().cloned().collect(),
            rpc_error: s.last_rpc_error.clone(),
        }
    }
}

fn record_missed(s: &mut InputGenState, block: u64, stage: &'static str, reason: String) {
    tracing::error!(block, stage, %reason, "target missed");
    s.missed_count += 1;
    s.missed.push_back(MissedBlock { block, stage, reason, at: rfc3339(SystemTime::now()) });
    if s.missed.len() > 100 {
        s.missed.pop_front();
    }
}

/// Fetches with a few retries when the failure is the node's or the network's, not the data's.
async fn fetch<F, Fut>(what: &str, f: F) -> Result<Vec<u8>, ChainError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, ChainError>>,
{
    let mut delay = Duration::from_secs(1);
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < 4 => {
                tracing::warn!(what, attempt, error = %e, "fetch failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Fetch, build, validate and write one target's input under `OUTPUT_DIR/<block>/input.bin`.
async fn build(ctx: &Context, block: u64) -> Result<Generated, (&'static str, String)> {
    let node: &NodeClient = &ctx.node;
    let block_json = fetch("block", || node.block_json(block)).await.map_err(|e| ("fetch_block", e.to_string()))?;
    let witness_json =
        fetch("witness", || node.witness_json(block)).await.map_err(|e| ("fetch_witness", e.to_string()))?;
    let dir = ctx.config.output_dir.join(block.to_string());
    tokio::fs::create_dir_all(&dir).await.map_err(|e| ("input", format!("cannot create {}: {e}", dir.display())))?;
    let out = dir.join("input.bin");
    let chain = ctx.chain.config;
    let options = GenerateOptions { framing: ctx.zisk_version.framing(), validate: true };
    tokio::task::spawn_blocking(move || input::generate(block_json, witness_json, &chain, options, &out))
        .await
        .map_err(|e| ("input", format!("input task failed: {e}")))?
        .map_err(|e| ("input", e.to_string()))
}
