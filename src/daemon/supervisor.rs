//! The root supervisor: starts the four actors, restarts one that fails (with backoff, handing
//! it the same shared state so its work survives), and gives up past a restart budget so that
//! systemd or Kubernetes restart the whole process. It also runs the orderly shutdown.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use serde::Serialize;

use super::input_generator::{InputGenMsg, InputGenState, InputGenerator};
use super::notifier::{Notifier, NotifierHandle, NotifierState};
use super::prover::{Prover, ProverHandle, ProverMsg, ProverState, stop_timeout};
use super::reporter::{Reporter, ReporterHandle, ReporterState};
use super::{Context, INPUT_GENERATOR, NOTIFIER, PROVER, REPORTER, Shared, ask};
use crate::chain::HeadPoller;
use crate::ethproofs::EthProofsClient;
use crate::notify::Severity;

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
            Child::InputGenerator => INPUT_GENERATOR,
            Child::Prover => PROVER,
            Child::Reporter => REPORTER,
            Child::Notifier => NOTIFIER,
        }
    }
}

/// Everything that must outlive a child's incarnation.
pub struct Durable {
    pub input: Shared<InputGenState>,
    pub prover: Shared<ProverState>,
    pub reporter: Shared<ReporterState>,
    pub notifier: Shared<NotifierState>,
}

pub struct SupervisorArgs {
    pub ctx: Arc<Context>,
    pub poller: Arc<HeadPoller>,
    /// Set when the restart budget is exhausted: the process must exit non-zero.
    pub gave_up: Arc<AtomicBool>,
}

pub struct SupervisorState {
    ctx: Arc<Context>,
    poller: Arc<HeadPoller>,
    durable: Durable,
    notifier: NotifierHandle,
    reporter: ReporterHandle,
    prover: ProverHandle,
    client: Option<Arc<EthProofsClient>>,
    children: HashMap<ActorId, Child>,
    restarts: u64,
    recent: VecDeque<Instant>,
    shutting_down: bool,
    gave_up: Arc<AtomicBool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SupervisorStatus {
    pub restarts: u64,
    pub children: Vec<&'static str>,
}

pub enum SupervisorMsg {
    Restart(Child),
    Ping(RpcReplyPort<()>),
    Status(RpcReplyPort<SupervisorStatus>),
    Shutdown(RpcReplyPort<()>),
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
        let durable = Durable {
            input: Shared::new(InputGenState::default()),
            prover: Shared::new(ProverState::default()),
            reporter: Shared::new(ReporterState::default()),
            notifier: Shared::new(NotifierState::default()),
        };
        let client =
            args.ctx.config.ethproofs.clone().map(|c| Arc::new(EthProofsClient::new(args.ctx.http.clone(), c)));
        let notifier = NotifierHandle::new(durable.notifier.clone());
        let reporter = ReporterHandle::new(durable.reporter.clone(), client.is_some());
        let prover = ProverHandle::new(durable.prover.clone(), reporter.clone());
        let mut state = SupervisorState {
            ctx: args.ctx,
            poller: args.poller,
            durable,
            notifier,
            reporter,
            prover,
            client,
            children: HashMap::new(),
            restarts: 0,
            recent: VecDeque::new(),
            shutting_down: false,
            gave_up: args.gave_up,
        };
        for child in Child::ALL {
            spawn_child(&myself, &mut state, child).await?;
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Ping(reply) => {
                let _ = reply.send(());
            }
            SupervisorMsg::Status(reply) => {
                let mut children: Vec<&'static str> = state.children.values().map(|c| c.name()).collect();
                children.sort();
                let _ = reply.send(SupervisorStatus { restarts: state.restarts, children });
            }
            SupervisorMsg::Restart(child) => {
                if !state.shutting_down {
                    tracing::warn!(actor = child.name(), "restarting actor");
                    if let Err(e) = spawn_child(&myself, state, child).await {
                        tracing::error!(actor = child.name(), error = %e, "restart failed");
                        give_up(&myself, state, format!("{} could not be restarted: {e}", child.name()));
                    }
                }
            }
            SupervisorMsg::Shutdown(reply) => {
                state.shutting_down = true;
                let grace = state.ctx.config.prover_kill_grace;
                let _ = ask(INPUT_GENERATOR, Duration::from_secs(2), InputGenMsg::Stop).await;
                if ask(PROVER, stop_timeout(grace), ProverMsg::Stop).await.is_none() {
                    tracing::warn!("the prover did not confirm its stop in time");
                }
                for cell in myself.get_children() {
                    cell.stop(Some("shutdown".into()));
                }
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
        }
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
        if state.shutting_down {
            return Ok(());
        }
        let now = Instant::now();
        state.recent.retain(|t| now.duration_since(*t) < RESTART_WINDOW);
        state.recent.push_back(now);
        state.restarts += 1;
        state.notifier.alert(Severity::Error, format!("Actor {} {why}", child.name()), "restarting it".to_string());
        if state.recent.len() > RESTART_BUDGET {
            give_up(&myself, state, format!("{} restarts within {}s", state.recent.len(), RESTART_WINDOW.as_secs()));
            return Ok(());
        }
        let backoff = Duration::from_secs(1u64 << (state.recent.len() - 1).min(5));
        tracing::error!(actor = child.name(), %why, backoff_s = backoff.as_secs(), "actor down; restarting after backoff");
        myself.send_after(backoff, move || SupervisorMsg::Restart(child));
        Ok(())
    }
}

fn give_up(myself: &ActorRef<SupervisorMsg>, state: &mut SupervisorState, why: String) {
    tracing::error!(%why, "restart budget exhausted; exiting so the service manager restarts the daemon");
    state.shutting_down = true;
    state.gave_up.store(true, Ordering::SeqCst);
    // Nothing of the prover may outlive us.
    let _ = state.durable.prover.lock().cancel_now();
    for cell in myself.get_children() {
        cell.stop(Some("supervisor giving up".into()));
    }
    myself.stop(Some(why));
}

async fn spawn_child(
    myself: &ActorRef<SupervisorMsg>,
    state: &mut SupervisorState,
    child: Child,
) -> Result<(), ActorProcessingErr> {
    let sup = myself.get_cell();
    let name = Some(child.name().to_string());
    let ctx = state.ctx.clone();
    let cell = match child {
        Child::Notifier => {
            Actor::spawn_linked(name, Notifier { ctx }, state.durable.notifier.clone(), sup).await?.0.get_cell()
        }
        Child::Reporter => {
            let actor = Reporter { ctx, client: state.client.clone(), notifier: state.notifier.clone() };
            Actor::spawn_linked(name, actor, state.durable.reporter.clone(), sup).await?.0.get_cell()
        }
        Child::Prover => {
            let actor = Prover { ctx, reporter: state.reporter.clone(), notifier: state.notifier.clone() };
            Actor::spawn_linked(name, actor, state.durable.prover.clone(), sup).await?.0.get_cell()
        }
        Child::InputGenerator => {
            let actor = InputGenerator {
                ctx,
                poller: state.poller.clone(),
                prover: state.prover.clone(),
                notifier: state.notifier.clone(),
            };
            Actor::spawn_linked(name, actor, state.durable.input.clone(), sup).await?.0.get_cell()
        }
    };
    state.children.insert(cell.get_id(), child);
    Ok(())
}
