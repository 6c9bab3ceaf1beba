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
use crate::notify::AlertKind;

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
#[derive(Default)]
pub struct Durable {
    pub input: Shared<InputGenState>,
    pub prover: Shared<ProverState>,
    pub reporter: Shared<ReporterState>,
    pub notifier: Shared<NotifierState>,
}

pub struct SupervisorArgs {
    pub ctx: Arc<Context>,
    pub poller: Arc<HeadPoller>,
    pub durable: Durable,
    /// First restart delay; doubles with each restart in the window (capped at 32x).
    pub restart_backoff: Duration,
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
    restart_backoff: Duration,
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
        let durable = args.durable;
        let client =
            args.ctx.config.ethproofs.clone().map(|c| Arc::new(EthProofsClient::new(args.ctx.http.clone(), c)));
        let notifier = NotifierHandle::new(durable.notifier.clone());
        let ledger = args.ctx.ledger.clone();
        let reporter = ReporterHandle::new(durable.reporter.clone(), ledger.clone(), client.is_some());
        let prover = ProverHandle::new(durable.prover.clone(), reporter.clone(), ledger);
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
            restart_backoff: args.restart_backoff,
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
                    match spawn_child(&myself, state, child).await {
                        Ok(()) => state.notifier.resolve(AlertKind::ActorDown, format!("{} restarted", child.name())),
                        Err(e) => {
                            tracing::error!(actor = child.name(), error = %e, "restart failed");
                            give_up(&myself, state, format!("{} could not be restarted: {e}", child.name()));
                        }
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
        state.notifier.alert(
            AlertKind::ActorDown,
            format!("Actor {} {why}", child.name()),
            "restarting it".to_string(),
        );
        if state.recent.len() > RESTART_BUDGET {
            give_up(&myself, state, format!("{} restarts within {}s", state.recent.len(), RESTART_WINDOW.as_secs()));
            return Ok(());
        }
        let backoff = state.restart_backoff * (1u32 << (state.recent.len() - 1).min(5));
        tracing::error!(actor = child.name(), %why, backoff_ms = backoff.as_millis() as u64, "actor down; restarting after backoff");
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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::chain::NodeClient;
    use crate::chainspec::{ChainSpec, Network};
    use crate::daemon::prover::Job;
    use crate::daemon::{PROVER, SUPERVISOR};
    use crate::zisk::{Dialect, ZiskVersion};

    async fn prover_status() -> Option<crate::daemon::prover::ProverStatus> {
        ask(PROVER, Duration::from_secs(2), ProverMsg::Status).await
    }

    async fn wait<F: Fn() -> bool>(what: &str, f: F) {
        for _ in 0..300 {
            if f() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// One test, because actor names are process-wide.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_killed_actor_comes_back_with_its_work_and_the_budget_ends_the_run() {
        let dir = tempfile::tempdir().unwrap();
        // A "prover" that just runs long, whatever its arguments.
        let zisk = dir.path().join("slow-zisk");
        std::fs::write(&zisk, "#!/bin/sh\necho $$ > \"$(dirname \"$0\")/pid\"\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&zisk, std::fs::Permissions::from_mode(0o755)).unwrap();
        let elf = dir.path().join("g.elf");
        std::fs::write(&elf, "elf").unwrap();
        let input = dir.path().join("42").join("input.bin");
        std::fs::create_dir_all(input.parent().unwrap()).unwrap();
        std::fs::write(&input, [0u8; 16]).unwrap();
        let url = "http://127.0.0.1:9";
        let args = crate::config::test_args(&[
            "--eth-rpc-url",
            url,
            "--cargo-zisk",
            zisk.to_str().unwrap(),
            "--elf-path",
            elf.to_str().unwrap(),
            "--output-dir",
            dir.path().to_str().unwrap(),
            "--poll-interval-ms",
            "60000",
        ])
        .unwrap();
        let ledger = Arc::new(crate::store::Ledger::open(&dir.path().join("ledger.db")).unwrap());
        let ctx = Arc::new(Context {
            ledger: ledger.clone(),
            config: args.into_config().unwrap(),
            chain: ChainSpec::embedded(Network::Mainnet),
            node: Arc::new(NodeClient::new(url, Duration::from_secs(1)).unwrap()),
            http: reqwest::Client::new(),
            zisk_version: ZiskVersion { major: 1, minor: 4, patch: 0 },
            dialect: Dialect::V1,
            started_at: std::time::SystemTime::now(),
            elf_sha256: "test".into(),
            paused: Default::default(),
            disk_low: Default::default(),
        });
        let durable = Durable::default();
        let prover_state = durable.prover.clone();
        let gave_up = Arc::new(AtomicBool::new(false));
        let (_sup, done) = Actor::spawn(
            Some(SUPERVISOR.to_string()),
            Supervisor,
            SupervisorArgs {
                ctx,
                poller: Arc::new(HeadPoller::new(url).unwrap()),
                durable,
                restart_backoff: Duration::from_millis(10),
                gave_up: gave_up.clone(),
            },
        )
        .await
        .unwrap();

        let reporter = ReporterHandle::new(Shared::default(), ledger.clone(), false);
        ProverHandle::new(prover_state, reporter, ledger)
            .enqueue(Job { block: 42, input_path: input, head_seen_at: Instant::now(), block_timestamp: None }, false)
            .unwrap();
        let pid_file = dir.path().join("pid");
        wait("the prover to start", || pid_file.exists()).await;

        // Kill the Prover actor mid-proof: a new incarnation must still hold block 42 in flight.
        let first = ractor::registry::where_is(PROVER).unwrap().get_id();
        ractor::registry::where_is(PROVER).unwrap().kill();
        wait("a new prover", || ractor::registry::where_is(PROVER).is_some_and(|c| c.get_id() != first)).await;
        let status = prover_status().await.expect("the restarted prover answers");
        assert_eq!(status.proving_block, Some(42), "in-flight work survived the restart");
        let restarts = ask(SUPERVISOR, Duration::from_secs(2), SupervisorMsg::Status).await.unwrap().restarts;
        assert_eq!(restarts, 1);

        // Past the budget the supervisor gives up, and takes the prover's process group with it.
        for _ in 0..RESTART_BUDGET {
            let current = ractor::registry::where_is(PROVER).map(|c| c.get_id());
            if let Some(cell) = ractor::registry::where_is(PROVER) {
                cell.kill();
            }
            wait("the kill to land", || ractor::registry::where_is(PROVER).map(|c| c.get_id()) != current).await;
            if gave_up.load(Ordering::SeqCst) {
                break;
            }
            wait("a restart", || ractor::registry::where_is(PROVER).is_some()).await;
        }
        tokio::time::timeout(Duration::from_secs(10), done).await.expect("supervisor stopped").unwrap();
        assert!(gave_up.load(Ordering::SeqCst), "the budget must end the run");
        let pid: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        wait("the prover group to die", || !crate::process::process_alive(pid)).await;
    }
}
