//! The root supervisor: starts the four actors, restarts one that fails (after a backoff), and
//! gives up past a restart budget so that systemd or Kubernetes restart the whole process. A
//! restarted actor rebuilds its work from the ledger; nothing is handed over in memory. It also
//! wakes the actors on every ledger commit (the ledger announces them) and runs the orderly
//! shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

// tokio's clock, so tests drive the restart window and backoff on a paused clock.
use tokio::time::Instant;

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::input_generator::{InputGenMsg, InputGenerator};
use super::notifier::{Notifier, NotifierMsg};
use super::prover::{Prover, ProverMsg, RunSlots, stop_timeout};
use super::reporter::STOP_WAIT;
use super::reporter::{Reporter, ReporterMsg};
use super::{Alerts, Context, InFlightTask, Mailbox, Settings};
use crate::outside::chain::HeadPoller;
use crate::outside::ethproofs::EthProofsClient;
use crate::outside::notify::AlertKind;
use crate::runtime::backoff::Backoff;
use crate::runtime::status::SupervisorStatus;
use crate::store::BlockState;

/// More restarts than this within [`RESTART_WINDOW`] and the process exits non-zero.
pub const RESTART_BUDGET: usize = 5;
pub const RESTART_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Child {
    InputGenerator,
    Prover,
    Reporter,
    Notifier,
}

impl Child {
    const ALL: [Child; 4] = [Child::Notifier, Child::Reporter, Child::Prover, Child::InputGenerator];

    fn name(self) -> &'static str {
        match self {
            Child::InputGenerator => "input_generator",
            Child::Prover => "prover",
            Child::Reporter => "reporter",
            Child::Notifier => "notifier",
        }
    }
}

/// The typed address of every child, kept pointing at the live incarnation.
#[derive(Clone, Default)]
struct Mailboxes {
    input: Mailbox<InputGenMsg>,
    prover: Mailbox<ProverMsg>,
    reporter: Mailbox<ReporterMsg>,
    notifier: Mailbox<NotifierMsg>,
}

pub struct SupervisorArgs {
    pub ctx: Arc<Context>,
    /// Each child's own settings, handed to each incarnation.
    pub settings: Settings,
    pub poller: Arc<HeadPoller>,
    /// First restart delay; doubles with each restart in the window (capped at 32x).
    pub restart_backoff: Duration,
    /// Set when the restart budget is exhausted: the process must exit non-zero.
    pub gave_up: Arc<AtomicBool>,
    /// Posted once the Notifier is up: the daemon's start-up notice.
    pub started_notice: Option<(String, String)>,
}

pub struct SupervisorState {
    ctx: Arc<Context>,
    settings: Settings,
    poller: Arc<HeadPoller>,
    mailboxes: Mailboxes,
    /// The Prover's runs in flight, outliving any one incarnation of it.
    prover_runs: RunSlots,
    alerts: Alerts,
    client: Option<Arc<EthProofsClient>>,
    children: HashMap<ActorId, Child>,
    restarts: u64,
    recent: VecDeque<Instant>,
    shutting_down: bool,
    gave_up: Arc<AtomicBool>,
    restart_backoff: Duration,
    /// Wakes the actors on every ledger commit, for as long as the supervisor lives.
    _waker: InFlightTask,
    /// Turns the daemon's stop signal into this supervisor's orderly stop.
    _on_drain: InFlightTask,
}

pub enum SupervisorMsg {
    Restart(Child),
    /// Heartbeat: publish status.
    Tick,
    /// The daemon's stop signal fired: wait for the work in flight to record its end, then stop.
    Drain,
    /// Kills a child as a crash would (tests of the restart path).
    #[cfg(test)]
    Kill(Child),
    /// Makes a child panic in its turn, as a bug would (tests of the restart path).
    #[cfg(test)]
    Crash(Child),
}

pub struct Supervisor;

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let client =
            args.settings.reporter.ethproofs.clone().map(|c| Arc::new(EthProofsClient::new(args.ctx.http.clone(), c)));
        let mailboxes = Mailboxes::default();
        let waker = {
            let (m, mut changes) = (mailboxes.clone(), args.ctx.ledger.changes());
            InFlightTask::spawn(async move {
                // Each actor reads its own queue from the ledger: a commit wakes the actors whose
                // queue it changed. An actor that is down rebuilds from the ledger when it comes
                // back; the heartbeat looks again every second whatever happens.
                let mut before = *changes.borrow_and_update();
                while changes.changed().await.is_ok() {
                    let now = *changes.borrow_and_update();
                    if now.to_build != before.to_build {
                        let _ = m.input.send(InputGenMsg::Wake);
                    }
                    if now.to_prove != before.to_prove {
                        let _ = m.prover.send(ProverMsg::Wake);
                    }
                    if now.to_report != before.to_report {
                        let _ = m.reporter.send(ReporterMsg::Wake);
                    }
                    before = now;
                }
            })
        };
        let on_drain = {
            let (drain, myself) = (args.ctx.drain.clone(), myself.clone());
            InFlightTask::spawn(async move {
                drain.signalled().await;
                let _ = myself.cast(SupervisorMsg::Drain);
            })
        };
        let mut state = SupervisorState {
            ctx: args.ctx,
            settings: args.settings,
            poller: args.poller,
            alerts: Alerts(mailboxes.notifier.clone()),
            mailboxes,
            prover_runs: RunSlots::default(),
            client,
            children: HashMap::new(),
            restarts: 0,
            recent: VecDeque::new(),
            shutting_down: false,
            gave_up: args.gave_up,
            restart_backoff: args.restart_backoff,
            _waker: waker,
            _on_drain: on_drain,
        };
        for child in Child::ALL {
            spawn_child(&myself, &mut state, child).await?;
            if child == Child::Notifier
                && let Some((title, detail)) = &args.started_notice
            {
                state.alerts.info(title.clone(), detail.clone());
            }
        }
        myself.send_interval(Duration::from_secs(1), || SupervisorMsg::Tick);
        publish(&state);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Tick => {}
            #[cfg(test)]
            SupervisorMsg::Kill(child) => {
                let m = &state.mailboxes;
                let cell = match child {
                    Child::InputGenerator => m.input.current().map(|a| a.get_cell()),
                    Child::Prover => m.prover.current().map(|a| a.get_cell()),
                    Child::Reporter => m.reporter.current().map(|a| a.get_cell()),
                    Child::Notifier => m.notifier.current().map(|a| a.get_cell()),
                };
                if let Some(cell) = cell {
                    cell.kill();
                }
            }
            #[cfg(test)]
            SupervisorMsg::Crash(child) => {
                let m = &state.mailboxes;
                let _ = match child {
                    Child::InputGenerator => m.input.current().map(|a| a.cast(InputGenMsg::Crash).is_ok()),
                    Child::Prover => m.prover.current().map(|a| a.cast(ProverMsg::Crash).is_ok()),
                    Child::Reporter => m.reporter.current().map(|a| a.cast(ReporterMsg::Crash).is_ok()),
                    Child::Notifier => None,
                };
            }
            SupervisorMsg::Restart(child) => {
                if !state.shutting_down {
                    tracing::warn!(actor = child.name(), "restarting actor");
                    match spawn_child(&myself, state, child).await {
                        Ok(()) => state.alerts.resolve(AlertKind::ActorDown, format!("{} restarted", child.name())),
                        Err(e) => {
                            tracing::error!(actor = child.name(), error = %e, "restart failed");
                            give_up(&myself, state, format!("{} could not be restarted: {e}", child.name()));
                        }
                    }
                }
            }
            SupervisorMsg::Drain => {
                // The actors saw the same signal: nothing new starts, the prover run stops and
                // records it, the EthProofs call in flight gets its answer recorded. Each holds
                // the drain open until then.
                state.shutting_down = true;
                let wait = stop_timeout(state.settings.prover.kill_grace) + STOP_WAIT;
                if tokio::time::timeout(wait, state.ctx.drain.settled()).await.is_err() {
                    tracing::warn!(
                        "the work in flight did not record its end in time; the next start looks at it again"
                    );
                }
                for cell in myself.get_children() {
                    cell.stop(Some("shutdown".into()));
                }
                myself.stop(Some("shutdown".into()));
            }
        }
        publish(state);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, why): (ActorCell, String) = match event {
            SupervisionEvent::ActorFailed(cell, err) => (cell, format!("failed: {err}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                (cell, format!("stopped: {}", reason.unwrap_or_else(|| "no reason".into())))
            }
            _ => return Ok(()),
        };
        let Some(child) = state.children.remove(&cell.get_id()) else { return Ok(()) };
        unset(&state.mailboxes, child);
        if state.shutting_down {
            return Ok(());
        }
        let now = Instant::now();
        state.recent.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        state.recent.push_back(now);
        state.restarts += 1;
        // `/health` shows the child gone (and the restart counted) now, not at the next tick.
        publish(state);
        state.alerts.alert(AlertKind::ActorDown, format!("Actor {} {why}", child.name()), "restarting it".to_string());
        if state.recent.len() > RESTART_BUDGET {
            give_up(&myself, state, format!("{} restarts within {}s", state.recent.len(), RESTART_WINDOW.as_secs()));
            return Ok(());
        }
        let rhythm = Backoff::new(state.restart_backoff, state.restart_backoff.saturating_mul(32));
        let backoff = rhythm.after(u32::try_from(state.recent.len()).unwrap_or(u32::MAX));
        tracing::error!(actor = child.name(), %why, backoff_ms = backoff.as_millis() as u64, "actor down; restarting after backoff");
        myself.send_after(backoff, move || SupervisorMsg::Restart(child));
        Ok(())
    }
}

/// How long an orderly shutdown may take before the process exits anyway.
pub fn stop_deadline(grace: Duration) -> Duration {
    stop_timeout(grace) + STOP_WAIT + Duration::from_secs(4)
}

fn publish(state: &SupervisorState) {
    let mut children: Vec<&'static str> = state.children.values().map(|c| c.name()).collect();
    children.sort();
    state.ctx.board.supervisor.publish(SupervisorStatus { restarts: state.restarts, children });
}

fn unset(m: &Mailboxes, child: Child) {
    match child {
        Child::InputGenerator => m.input.set(None),
        Child::Prover => m.prover.set(None),
        Child::Reporter => m.reporter.set(None),
        Child::Notifier => m.notifier.set(None),
    }
}

fn give_up(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, why: String) {
    tracing::error!(%why, "restart budget exhausted; exiting so the service manager restarts the daemon");
    state.shutting_down = true;
    state.gave_up.store(true, Ordering::SeqCst);
    for cell in myself.get_children() {
        cell.stop(Some("supervisor giving up".into()));
    }
    // The run is told first that the daemon stops (so its end is a stop, not the block's
    // crash), then nothing of the prover may outlive us: the recorded run is ended now.
    state.ctx.drain.signal();
    if let Ok(running) = state.ctx.ledger.blocks_in(&[BlockState::Proving]) {
        for process in running.iter().filter_map(|r| r.process.as_ref()) {
            crate::outside::instance::reap(process);
        }
    }
    myself.stop(Some(why));
}

async fn spawn_child(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    child: Child,
) -> Result<(), ActorProcessingErr> {
    let sup = myself.get_cell();
    let (ctx, m, alerts, settings) =
        (state.ctx.clone(), state.mailboxes.clone(), state.alerts.clone(), state.settings.clone());
    let cell = match child {
        Child::Notifier => {
            let notifier = Notifier { ctx, settings: settings.notifier, mailbox: m.notifier.clone() };
            start(notifier, &m.notifier, sup).await?
        }
        Child::Reporter => {
            let reporter = Reporter {
                ctx,
                settings: settings.reporter,
                client: state.client.clone(),
                alerts,
                mailbox: m.reporter.clone(),
            };
            start(reporter, &m.reporter, sup).await?
        }
        Child::Prover => {
            let runs = state.prover_runs.clone();
            let prover = Prover { ctx, settings: settings.prover, alerts, mailbox: m.prover.clone(), runs };
            start(prover, &m.prover, sup).await?
        }
        Child::InputGenerator => {
            let generator = InputGenerator {
                ctx,
                settings: settings.input,
                poller: state.poller.clone(),
                alerts,
                mailbox: m.input.clone(),
            };
            start(generator, &m.input, sup).await?
        }
    };
    state.children.insert(cell.get_id(), child);
    Ok(())
}

/// Starts one incarnation of `actor` under `sup` and points its mailbox at it. Unnamed: nothing
/// looks actors up by name; the mailboxes are their addresses.
async fn start<A>(actor: A, mailbox: &Mailbox<A::Msg>, sup: ActorCell) -> Result<ActorCell, ActorProcessingErr>
where
    A: Actor<Arguments = ()>,
{
    let (incarnation, _) = Actor::spawn_linked(None, actor, (), sup).await?;
    mailbox.set(Some(incarnation.clone()));
    Ok(incarnation.get_cell())
}

#[cfg(test)]
mod chaos;
#[cfg(test)]
mod tests;
