//! The InputGenerator actor: follows the head, records every target since the schedule's
//! cursor in the ledger (one event per head), and builds `seen` blocks' inputs in the background
//! (`MAX_INPUT_BUILDS` at once, oldest first unless `PROVE_ORDER=newest`; overlapping proving).
//!
//! The head rule: a height from `eth_blockNumber` or `newHeads` is believed only once the node
//! answers a block at that height, so one absurd answer can neither schedule targets nor move
//! the ledger's cursor. Blocks above the believed head wait ([`schedule::next_to_build`]). The build task ([`super::input_build`])
//! records `input_built` or `input_failed` itself; the commit wakes the Prover. Its queue is the ledger's `seen` blocks, so a
//! restart finds it where it was.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{Alerts, Context, InFlightTask, InputSettings, Mailbox, rfc3339, survive};
use crate::block::schedule;
use crate::config::ProveOrder;
use crate::decide::{self, head::HeadStep};
use crate::outside::chain::{ChainError, HeadPoller};
use crate::outside::notify::AlertKind;
use crate::runtime::status::{BuildInFlight, InputStatus, MissedBlock, NotServedBlock, Recent};
use crate::store::{BlockState, Stage, StoreError};
use input_build::BuildError;
use watch::{NodeWatch, check_disk};

mod input_build;
mod outcome;
mod status;
mod watch;

use outcome::NotServed;

use status::observed_block_time;

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
    /// A polled head, with, when it was higher than the believed one, whether the node has a block
    /// there (asked in the same round as the poll).
    Polled {
        head: u64,
        exists: Option<bool>,
    },
    /// A head from `newHeads`, with whether the node has a block there (the subscription's task
    /// asks before it hands the head over).
    NewHead {
        head: u64,
        exists: bool,
    },
    PollFailed(ChainError),
    /// A build ended; the ledger already says how.
    Built {
        block: u64,
        result: Result<u64, BuildError>,
    },
    /// Panics, as a bug would (tests of the restart path).
    #[cfg(test)]
    Crash,
}

pub struct InputGenState {
    head: Option<u64>,
    head_seen_at: Option<(Instant, SystemTime)>,
    /// The last head advance (height, when), and the chain's block time as observed from the
    /// advances (a moving average), for the dashboard's countdown.
    advanced: Option<(u64, Instant)>,
    block_time_ms: Option<u64>,
    /// The builds in flight by block: when each started, its task.
    building: std::collections::BTreeMap<u64, (Instant, InFlightTask)>,
    /// The head poll in flight, and when it started.
    polling: Option<(Instant, InFlightTask)>,
    /// `newHeads` over WebSocket, when configured.
    ws: Option<InFlightTask>,
    processed_count: u64,
    missed: Recent<MissedBlock>,
    missed_count: u64,
    /// Whether the node answers the head poll.
    node: NodeWatch,
    /// The last head refused for want of a block, so a node that keeps saying it is logged once.
    refused: Option<u64>,
    /// `seen` blocks above the believed head already logged as waiting, so each is named once.
    waiting: std::collections::BTreeSet<u64>,
    /// Targets the node did not serve though its head says they exist: asked for again with
    /// backoff, shown on `/health`, failed once they leave the backfill window.
    not_served: std::collections::BTreeMap<u64, NotServed>,
}

pub struct InputGenerator {
    pub ctx: Arc<Context>,
    pub settings: Arc<InputSettings>,
    pub poller: Arc<HeadPoller>,
    pub alerts: Alerts,
    pub mailbox: Mailbox<InputGenMsg>,
}

impl Actor for InputGenerator {
    type Msg = InputGenMsg;
    type State = InputGenState;
    type Arguments = ();

    async fn pre_start(&self, myself: ActorRef<Self::Msg>, _: ()) -> Result<Self::State, ActorProcessingErr> {
        let ws = self.settings.ws_url.as_ref().map(|url| {
            let (url, mailbox, node) = (url.expose().to_string(), self.mailbox.clone(), self.ctx.node.clone());
            // Each head is looked up in the subscription's own task: one round, as a polled head.
            InFlightTask::spawn(crate::outside::chain::follow_new_heads(url, move |head| {
                let (mailbox, node) = (mailbox.clone(), node.clone());
                async move {
                    let exists = block_exists(&node, head).await;
                    let _ = mailbox.send(InputGenMsg::NewHead { head, exists });
                }
            }))
        });
        // The disk guard first: nothing is built on a full disk, not even the first target.
        check_disk(&self.ctx, &self.settings, &self.alerts);
        myself.send_interval(Duration::from_secs(1), || InputGenMsg::Tick);
        myself.send_interval(self.settings.poll_interval, || InputGenMsg::Poll);
        let _ = myself.cast(InputGenMsg::Poll);
        Ok(InputGenState {
            head: None,
            head_seen_at: None,
            advanced: None,
            block_time_ms: None,
            building: Default::default(),
            polling: None,
            ws,
            processed_count: 0,
            missed: Recent::new(100),
            missed_count: 0,
            node: NodeWatch::default(),
            refused: None,
            waiting: Default::default(),
            not_served: Default::default(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        s: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            #[cfg(test)]
            InputGenMsg::Crash => panic!("an injected crash"),
            InputGenMsg::Tick => {
                check_disk(&self.ctx, &self.settings, &self.alerts);
                // An idle daemon has no write of its own to find the ledger writable again.
                survive(self.ctx.ledger.probe_write())?;
            }
            InputGenMsg::Poll => self.poll(s),
            InputGenMsg::Wake => {}
            InputGenMsg::Polled { head, exists } => {
                s.polling = None;
                s.node.ok(&self.ctx, &self.alerts);
                self.answered(s, head, exists)?;
            }
            InputGenMsg::NewHead { head, exists } => {
                s.node.ok(&self.ctx, &self.alerts);
                self.answered(s, head, Some(exists))?;
            }
            InputGenMsg::PollFailed(error) => {
                s.polling = None;
                s.node.failed(&self.alerts, &error);
            }
            InputGenMsg::Built { block, result } => {
                s.building.remove(&block);
                self.built(s, block, result);
            }
        }
        if self.ctx.drain.is_draining() {
            s.ws = None;
            s.polling = None;
            // An aborted build leaves its block `seen`: the next start builds it again.
            s.building.clear();
        }
        survive(self.pump(s))?;
        survive(self.publish(s))?;
        Ok(())
    }
}

impl InputGenerator {
    fn poll(&self, s: &mut InputGenState) {
        if self.ctx.drain.is_draining() || s.polling.is_some() {
            return;
        }
        let (poller, node, mailbox) = (self.poller.clone(), self.ctx.node.clone(), self.mailbox.clone());
        let believed = s.head;
        s.polling = Some((
            Instant::now(),
            InFlightTask::spawn(async move {
                let msg = match tokio::time::timeout(POLL_TIMEOUT, poller.head()).await {
                    Ok(Ok(head)) => {
                        // The head rule in the same round: a higher head's block is asked for at once.
                        let higher = decide::head::on_answer(believed, head) == HeadStep::LookUp;
                        let exists = if higher { Some(block_exists(&node, head).await) } else { None };
                        InputGenMsg::Polled { head, exists }
                    }
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

    /// A head answer, with whether the node has its block when that was asked: the same head
    /// refreshes its age; a higher one is believed ([`Self::on_head`]) only if the node has a
    /// block there. (A higher head answered without a look-up was overtaken by another answer:
    /// the next one asks.)
    fn answered(&self, s: &mut InputGenState, head: u64, exists: Option<bool>) -> Result<(), ActorProcessingErr> {
        match (decide::head::on_answer(s.head, head), exists) {
            (HeadStep::Same, _) => s.head_seen_at = Some((Instant::now(), SystemTime::now())),
            (HeadStep::LookUp, Some(exists)) => self.looked_up(s, head, exists)?,
            (HeadStep::LookUp, None) | (HeadStep::Nothing, _) => {}
        }
        Ok(())
    }

    /// A higher head was looked up: believed if the node has its block, else refused (said once).
    fn looked_up(&self, s: &mut InputGenState, head: u64, exists: bool) -> Result<(), ActorProcessingErr> {
        if exists {
            s.refused = None;
            survive(self.on_head(s, head))?;
        } else if s.refused != Some(head) {
            s.refused = Some(head);
            tracing::warn!(head, "head {head} is not believed: the node has no block {head}");
        }
        Ok(())
    }

    /// A higher head the node has a block for: every target since the cursor is recorded in one
    /// ledger event.
    fn on_head(&self, s: &mut InputGenState, head: u64) -> Result<(), StoreError> {
        let now = (Instant::now(), SystemTime::now());
        if self.ctx.drain.is_draining() || s.head.is_some_and(|h| head <= h) {
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
        let cfg = &self.settings;
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
            crate::runtime::telemetry::block_outcome("skipped", Stage::BackfillWindow.as_str());
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
            crate::runtime::block_span!(block).in_scope(|| tracing::info!(head, "new target"));
        }
        Ok(())
    }

    /// Starts building the next `seen` blocks the node has, up to `MAX_INPUT_BUILDS` at once.
    fn pump(&self, s: &mut InputGenState) -> Result<(), StoreError> {
        // A build whose outcome cannot be recorded is wasted: none starts while writes back off.
        if s.building.len() >= self.settings.max_builds
            || self.ctx.drain.is_draining()
            || self.ctx.is_paused()
            || !self.ctx.ledger.write_retry_in().is_zero()
        {
            return Ok(());
        }
        // Before the queue is read: a block given up is not built again.
        self.give_up_out_of_window(s)?;
        let seen: Vec<u64> = self.ctx.ledger.blocks_in(&[BlockState::Seen])?.iter().map(|b| b.number).collect();
        if let Some(head) = s.head {
            // `seen` is oldest first: the blocks above the head are its tail.
            let above: std::collections::BTreeSet<u64> =
                seen[seen.partition_point(|b| *b <= head)..].iter().copied().collect();
            for block in above.difference(&s.waiting) {
                crate::runtime::block_span!(block = *block)
                    .in_scope(|| tracing::info!(head, "block {block} waits: the node's head is {head}"));
            }
            s.waiting = above;
        }
        let now = Instant::now();
        let ready: Vec<u64> =
            seen.into_iter().filter(|b| s.not_served.get(b).is_none_or(|w| w.retry_at <= now)).collect();
        while s.building.len() < self.settings.max_builds {
            let building: Vec<u64> = s.building.keys().copied().collect();
            let Some(block) =
                schedule::next_to_build(&ready, s.head, &building, self.settings.order == ProveOrder::Newest)
            else {
                break;
            };
            let (ctx, settings, mailbox) = (self.ctx.clone(), self.settings.clone(), self.mailbox.clone());
            let started = Instant::now();
            // Every line of the build, the node client's included, names its block.
            let span = crate::runtime::block_span!(block);
            let task = InFlightTask::spawn(tracing::Instrument::instrument(
                async move {
                    let result = input_build::build_and_record(&ctx, &settings, block, started).await;
                    mailbox.deliver(InputGenMsg::Built { block, result }).await;
                },
                span,
            ));
            s.building.insert(block, (started, task));
        }
        Ok(())
    }
}

/// Whether the node has a block at `height` (no answer in time, or an error, is a no: the next
/// poll asks again).
async fn block_exists(node: &crate::outside::chain::NodeClient, height: u64) -> bool {
    match tokio::time::timeout(POLL_TIMEOUT, node.block_hash(height)).await {
        Ok(Ok(hash)) => hash.is_some(),
        Ok(Err(e)) => {
            tracing::debug!(height, error = %e, "the head's block could not be looked up; the next poll tries again");
            false
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests;
