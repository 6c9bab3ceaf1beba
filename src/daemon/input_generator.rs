//! The InputGenerator actor: follows the head, records every target since the schedule's
//! cursor in the ledger (one event per head), and builds the oldest `seen` block's input in the
//! background (one at a time, overlapping proving).
//!
//! The head rule: a height from `eth_blockNumber` or `newHeads` is believed only once the node
//! answers a block at that height, so one absurd answer can neither schedule targets nor move
//! the ledger's cursor. Blocks above the believed head wait ([`schedule::next_to_build`]). The build task ([`super::input_build`])
//! records `input_built` or `input_failed` itself; the commit wakes the Prover. Its queue is the ledger's `seen` blocks, so a
//! restart finds it where it was.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::input_build::{self, BuildError};
use super::watch::{NodeWatch, check_disk};
use super::{Alerts, Context, InFlightTask, Mailbox, rfc3339, survive};
use crate::chain::{ChainError, HeadPoller};
use crate::decide::{self, head::HeadStep};
use crate::notify::AlertKind;
use crate::schedule;
use crate::status::{InputStatus, MissedBlock, Recent};
use crate::store::{BlockState, Stage, StoreError};

/// The head not advancing for this long makes the daemon degraded.
pub const HEAD_STALE_AFTER: Duration = Duration::from_secs(300);
/// One head poll may not take longer than this: a hung call must never stop polling.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);

pub enum InputGenMsg {
    /// Heartbeat: the disk guard, status.
    Tick,
    /// Time to ask the node for its head (every `POLL_INTERVAL_MS`).
    Poll,
    /// The ledger's `seen` blocks may have changed (an operator's blocks, a resume).
    Wake,
    Head(u64),
    /// A new head was looked up: whether the node has a block at that height.
    HeadChecked {
        head: u64,
        exists: bool,
    },
    PollFailed(ChainError),
    /// A build ended; the ledger already says how.
    Built {
        block: u64,
        result: Result<u64, BuildError>,
    },
    Stop,
}

pub struct InputGenState {
    head: Option<u64>,
    head_seen_at: Option<(Instant, SystemTime)>,
    /// The last head advance (height, when), and the chain's block time as observed from the
    /// advances (a moving average), for the dashboard's countdown.
    advanced: Option<(u64, Instant)>,
    block_time_ms: Option<u64>,
    /// The build in flight: its block, when it started, the task.
    building: Option<(u64, Instant, InFlightTask)>,
    /// The head poll in flight, and when it started.
    polling: Option<(Instant, InFlightTask)>,
    /// `newHeads` over WebSocket, when configured.
    ws: Option<InFlightTask>,
    processed_count: u64,
    missed: Recent<MissedBlock>,
    missed_count: u64,
    /// Whether the node answers the head poll.
    node: NodeWatch,
    /// A head not believed yet, and the look-up that confirms (or not) that the node has a block
    /// there.
    checking: Option<(u64, InFlightTask)>,
    /// The last head refused for want of a block, so a node that keeps saying it is logged once.
    refused: Option<u64>,
    /// `seen` blocks above the believed head already logged as waiting, so each is named once.
    waiting: std::collections::BTreeSet<u64>,
    stopped: bool,
}

pub struct InputGenerator {
    pub ctx: Arc<Context>,
    pub poller: Arc<HeadPoller>,
    pub alerts: Alerts,
    pub mailbox: Mailbox<InputGenMsg>,
}

impl Actor for InputGenerator {
    type Msg = InputGenMsg;
    type State = InputGenState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        let ws = self.ctx.config.eth_ws_url.as_ref().map(|url| {
            let (url, mailbox) = (url.expose().to_string(), self.mailbox.clone());
            InFlightTask::spawn(crate::chain::follow_new_heads(url, move |n| {
                let _ = mailbox.send(InputGenMsg::Head(n));
            }))
        });
        // The disk guard first: nothing is built on a full disk, not even the first target.
        check_disk(&self.ctx, &self.alerts);
        myself.send_interval(Duration::from_secs(1), || InputGenMsg::Tick);
        myself.send_interval(self.ctx.config.poll_interval, || InputGenMsg::Poll);
        let _ = myself.cast(InputGenMsg::Poll);
        Ok(InputGenState {
            head: None,
            head_seen_at: None,
            advanced: None,
            block_time_ms: None,
            building: None,
            polling: None,
            ws,
            processed_count: 0,
            missed: Recent::new(100),
            missed_count: 0,
            node: NodeWatch::default(),
            checking: None,
            refused: None,
            waiting: Default::default(),
            stopped: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            InputGenMsg::Tick => {
                check_disk(&self.ctx, &self.alerts);
                // An idle daemon has no write of its own to find the ledger writable again.
                survive(self.ctx.ledger.probe_write())?;
            }
            InputGenMsg::Poll => self.poll(s),
            InputGenMsg::Wake => {}
            InputGenMsg::Head(n) => {
                s.polling = None;
                s.node.ok(&self.ctx, &self.alerts);
                self.check_head(s, n);
            }
            InputGenMsg::HeadChecked { head, exists } => {
                if s.checking.as_ref().is_some_and(|(h, _)| *h == head) {
                    s.checking = None;
                    if exists {
                        s.refused = None;
                        survive(self.on_head(s, head))?;
                    } else if s.refused != Some(head) {
                        s.refused = Some(head);
                        tracing::warn!(head, "head {head} is not believed: the node has no block {head}");
                    }
                }
            }
            InputGenMsg::PollFailed(error) => {
                s.polling = None;
                s.node.failed(&self.alerts, &error);
            }
            InputGenMsg::Built { block, result } => {
                if s.building.as_ref().is_some_and(|(b, _, _)| *b == block) {
                    s.building = None;
                }
                self.built(s, block, result);
            }
            InputGenMsg::Stop => {
                s.stopped = true;
                s.ws = None;
                s.polling = None;
                // An aborted build leaves its block `seen`: the next start builds it again.
                s.building = None;
            }
        }
        survive(self.pump(s))?;
        survive(self.publish(s))?;
        Ok(())
    }
}

impl InputGenerator {
    fn poll(&self, s: &mut InputGenState) {
        if s.stopped || s.polling.is_some() {
            return;
        }
        let (poller, mailbox) = (self.poller.clone(), self.mailbox.clone());
        s.polling = Some((
            Instant::now(),
            InFlightTask::spawn(async move {
                let msg = match tokio::time::timeout(POLL_TIMEOUT, poller.head()).await {
                    Ok(Ok(n)) => InputGenMsg::Head(n),
                    Ok(Err(e)) => InputGenMsg::PollFailed(e),
                    Err(_) => InputGenMsg::PollFailed(ChainError::Transport {
                        method: "eth_blockNumber",
                        endpoint: poller.endpoint().to_string(),
                        message: format!("no answer in {}s", POLL_TIMEOUT.as_secs()),
                    }),
                };
                mailbox.deliver(msg).await;
            }),
        ));
    }

    /// A head answer: the same head refreshes its age; a higher one is looked up on the node and
    /// believed ([`Self::on_head`]) only if the node has a block there.
    fn check_head(&self, s: &mut InputGenState, head: u64) {
        let looking_up = s.checking.as_ref().map(|(h, _)| *h);
        match decide::head::on_answer(s.head, looking_up, head) {
            HeadStep::Same => s.head_seen_at = Some((Instant::now(), SystemTime::now())),
            HeadStep::Nothing => {}
            HeadStep::LookUp if !s.stopped => self.look_up(s, head),
            HeadStep::LookUp => {}
        }
    }

    /// Asks the node for the block at `head`; the answer comes back as `HeadChecked`.
    fn look_up(&self, s: &mut InputGenState, head: u64) {
        let (node, mailbox) = (self.ctx.node.clone(), self.mailbox.clone());
        let check = InFlightTask::spawn(async move {
            let exists = match tokio::time::timeout(POLL_TIMEOUT, node.block_hash(head)).await {
                Ok(Ok(hash)) => hash.is_some(),
                Ok(Err(e)) => {
                    tracing::debug!(head, error = %e, "the head's block could not be looked up; the next poll tries again");
                    false
                }
                Err(_) => false,
            };
            mailbox.deliver(InputGenMsg::HeadChecked { head, exists }).await;
        });
        s.checking = Some((head, check));
    }

    /// A higher head the node has a block for: every target since the cursor is recorded in one
    /// ledger event.
    fn on_head(&self, s: &mut InputGenState, head: u64) -> Result<(), StoreError> {
        let now = (Instant::now(), SystemTime::now());
        if s.stopped || s.head.is_some_and(|h| head <= h) {
            return Ok(());
        }
        let last = self.ctx.ledger.last_scheduled()?;
        // An upgraded v1 ledger gets its cursor from the first believed head (never from a typo).
        let last = match self.ctx.ledger.settle_legacy_cursor(head)? {
            Some(cursor) => {
                tracing::info!(cursor, head, "the upgraded ledger's schedule resumes after block {cursor}");
                Some(cursor)
            }
            None => last,
        };
        let cfg = &self.ctx.config;
        // Targets are built only once CONFIRMATIONS blocks sit on top of them.
        let settled = head.saturating_sub(cfg.confirmations);
        let due = schedule::due(last, settled, cfg.block_interval, cfg.max_backfill_blocks, cfg.start_block);
        let reason = format!(
            "more than MAX_BACKFILL_BLOCKS ({}) below the head {head} when it was seen",
            cfg.max_backfill_blocks
        );
        // Recorded before the head is held: a write that fails leaves the head unbelieved, and the
        // next poll schedules the same range again.
        let new = match due.cursor {
            Some(cursor) => {
                let skipped = due.skipped.map(|(first, last, count)| (first, last, count, reason.as_str()));
                self.ctx.ledger.targets_scheduled(&due.prove, skipped, cursor)?
            }
            None => Vec::new(),
        };
        if let Some((from, at)) = s.advanced {
            s.block_time_ms = observed_block_time(s.block_time_ms, head.saturating_sub(from), at.elapsed());
        }
        s.advanced = Some((head, now.0));
        s.head = Some(head);
        s.head_seen_at = Some(now);
        if let Some((first, last, count)) = due.skipped {
            crate::telemetry::block_outcome("skipped", Stage::BackfillWindow.as_str());
            tracing::error!(first, last, count, %reason, "targets skipped");
            s.missed_count = s.missed_count.saturating_add(count);
            let what = if count == 1 { String::new() } else { format!(" (and {} more up to {last})", count - 1) };
            s.missed.push(MissedBlock {
                detail: None,
                block: first,
                stage: Stage::BackfillWindow.as_str().into(),
                reason: format!("{reason}{what}"),
                at: rfc3339(SystemTime::now()),
            });
        }
        for block in new {
            tracing::info!(block, head, "new target");
        }
        Ok(())
    }

    /// Starts building the oldest `seen` block the node has, if nothing is being built.
    fn pump(&self, s: &mut InputGenState) -> Result<(), StoreError> {
        // A build whose outcome cannot be recorded is wasted: none starts while writes back off.
        if s.building.is_some() || s.stopped || self.ctx.is_paused() || !self.ctx.ledger.write_retry_in().is_zero() {
            return Ok(());
        }
        let seen: Vec<u64> = self.ctx.ledger.blocks_in(&[BlockState::Seen])?.iter().map(|b| b.number).collect();
        if let Some(head) = s.head {
            s.waiting.retain(|b| *b > head && seen.contains(b));
            for &block in seen.iter().filter(|b| **b > head) {
                if s.waiting.insert(block) {
                    tracing::info!(block, head, "block {block} waits: the node's head is {head}");
                }
            }
        }
        let Some(block) = schedule::next_to_build(&seen, s.head) else {
            return Ok(());
        };
        let (ctx, mailbox) = (self.ctx.clone(), self.mailbox.clone());
        let started = Instant::now();
        let task = InFlightTask::spawn(async move {
            let result = input_build::build_and_record(&ctx, block, started).await;
            mailbox.deliver(InputGenMsg::Built { block, result }).await;
        });
        s.building = Some((block, started, task));
        Ok(())
    }

    fn built(&self, s: &mut InputGenState, block: u64, result: Result<u64, BuildError>) {
        match result {
            Ok(input_ms) => {
                s.processed_count += 1;
                crate::telemetry::input_generated(input_ms as f64 / 1000.0);
                self.alerts.resolve(AlertKind::InputFailed, format!("the input of block {block} was built"));
            }
            Err(BuildError::Unrecorded(e)) => {
                tracing::warn!(block, error = %e, "the input's outcome could not be recorded; the block is built again");
            }
            Err(error) => {
                let (stage, reason) = (error.stage().as_str(), error.to_string());
                crate::telemetry::block_outcome("missed", stage);
                if let BuildError::Fetch { error, .. } = &error {
                    crate::telemetry::rpc_error(stage, error.label());
                }
                self.alerts.alert(
                    AlertKind::InputFailed,
                    format!("Input failed: block {block} ({stage})"),
                    format!("{reason}\n{}", self.ctx.block_links(block, false)),
                );
                tracing::error!(block, stage, %reason, "target missed");
                s.missed_count = s.missed_count.saturating_add(1);
                s.missed.push(MissedBlock {
                    block,
                    stage: stage.into(),
                    reason: error.summary(),
                    detail: Some(reason),
                    at: rfc3339(SystemTime::now()),
                });
            }
        }
    }

    fn publish(&self, s: &InputGenState) -> Result<(), StoreError> {
        let interval = self.ctx.config.block_interval;
        let queued: Vec<u64> = self.ctx.ledger.blocks_in(&[BlockState::Seen])?.iter().map(|b| b.number).collect();
        let head_age = s.head_seen_at.map(|(i, _)| i.elapsed());
        let stale = head_age.is_some_and(|a| a > HEAD_STALE_AFTER);
        let building = s.building.as_ref().map(|(b, _, _)| *b);
        let (rpc_error, rpc_error_detail) = s.node.last_error();
        self.ctx.board.input.publish(InputStatus {
            status: if stale { "degraded" } else { "healthy" },
            state: if s.stopped {
                "stopped"
            } else if self.ctx.is_paused() {
                "paused"
            } else if building.is_some() {
                "building"
            } else if rpc_error.is_some() {
                "rpc_error"
            } else {
                "polling"
            },
            queue_length: queued.iter().filter(|b| Some(**b) != building).count(),
            queued_blocks: queued.into_iter().filter(|b| Some(*b) != building).take(100).collect(),
            building_block: building,
            processed_count: s.processed_count,
            head: s.head,
            block_time_ms: s.block_time_ms,
            head_seen_at: s.head_seen_at.map(|(_, t)| rfc3339(t)),
            head_age_seconds: head_age.map(|a| a.as_secs()),
            next_target: s.head.and_then(|h| schedule::newest_target(h, interval).checked_add(interval)),
            missed_count: s.missed_count,
            missed_blocks: s.missed.to_vec(),
            rpc_error,
            rpc_error_detail,
        });
        Ok(())
    }
}

/// The chain's block time from one head advance of `blocks` after `took`, averaged with what
/// was seen before. Jumps of many blocks at once (a restart, a backfill) say nothing about it.
fn observed_block_time(before: Option<u64>, blocks: u64, took: Duration) -> Option<u64> {
    if blocks == 0 || blocks > 16 {
        return before;
    }
    let sample = u64::try_from(took.as_millis()).unwrap_or(u64::MAX) / blocks;
    Some(match before {
        None => sample,
        Some(avg) => (avg.saturating_mul(4).saturating_add(sample)) / 5,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use axum::extract::State;
    use axum::routing::post;
    use ractor::Actor;

    use super::*;
    use crate::daemon::test_support::{context, serve, wait};

    /// A node whose head the test moves; it has a bare header at its head and no other block
    /// (every other fetch answers `null`).
    async fn node(head: Arc<AtomicU64>) -> String {
        async fn rpc(State(head): State<Arc<AtomicU64>>, body: String) -> String {
            let req: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let head = head.load(Ordering::SeqCst);
            let at_head = req["params"][0].as_str() == Some(format!("{head:#x}").as_str());
            let result = match req["method"].as_str() {
                Some("eth_blockNumber") => serde_json::json!(format!("{head:#x}")),
                Some("eth_getBlockByNumber") if at_head => serde_json::json!({"hash": format!("0x{head:064x}")}),
                _ => serde_json::Value::Null,
            };
            serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": result}).to_string()
        }
        serve(axum::Router::new().route("/", post(rpc)).with_state(head)).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_target_is_recorded_a_long_gap_as_one_skip_and_a_failed_build_with_its_stage() {
        let head = Arc::new(AtomicU64::new(250));
        let url = node(head.clone()).await;
        let dir = tempfile::tempdir().unwrap();
        let flags = ["--poll-interval-ms", "100", "--block-interval", "100", "--max-backfill-blocks", "1000"];
        let ctx = context(dir.path(), &url, &flags);
        let mailbox = Mailbox::default();
        let generator = InputGenerator {
            ctx: ctx.clone(),
            poller: Arc::new(HeadPoller::new(&url).unwrap()),
            alerts: Alerts::default(),
            mailbox: mailbox.clone(),
        };
        let (actor, _) = Actor::spawn(None, generator, ()).await.unwrap();
        mailbox.set(Some(actor.clone()));
        let ledger = ctx.ledger.clone();
        let state_of = |n| ledger.block(n).ok().flatten().map(|b| b.state);
        wait("target 200 attempted", || state_of(200) == Some(BlockState::Failed)).await;
        assert_eq!(ledger.last_scheduled().unwrap(), Some(200), "the first start takes the newest target");
        let failed = ledger.block(200).unwrap().unwrap();
        assert!(failed.stage.is_some() && failed.reason.as_deref().is_some_and(|r| r.contains("null")), "{failed:?}");

        head.store(5_050, Ordering::SeqCst);
        wait("targets up to 5000 attempted", || state_of(5_000) == Some(BlockState::Failed)).await;
        assert_eq!(ledger.last_scheduled().unwrap(), Some(5_000));
        let skipped = ledger.skipped_ranges(10).unwrap();
        assert_eq!(skipped.len(), 1, "one record for the whole gap: {skipped:?}");
        // More than 1000 below the head 5050: 300 … 4000.
        assert_eq!((skipped[0].first, skipped[0].last, skipped[0].count), (300, 4_000, 38));
        for n in (4_100..=5_000).step_by(100) {
            assert!(state_of(n).is_some(), "target {n} is in the ledger");
        }
        let status = ctx.board.input.fresh().unwrap();
        assert_eq!(status.head, Some(5_050));
        assert_eq!(status.missed_count, 1 + 38 + 10, "every missed target counted: {status:?}");
        actor.stop(None);
    }
}
