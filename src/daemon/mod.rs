//! The long-running daemon: a root supervisor and its four actors.
//!
//! ```text
//! Supervisor ─┬─ InputGenerator   head → targets → fetch → input.bin
//!             ├─ Prover           FIFO of inputs → cargo-zisk, one at a time
//!             ├─ Reporter         queued / proving / proved → EthProofs, in order, paced
//!             └─ Notifier         alerts → Slack
//! ```
//!
//! Each actor's work lives in a [`Shared`] state owned by the supervisor and handed to every
//! incarnation of the actor, so a restart loses nothing: a handle pushes work into the state
//! and then wakes the actor by name; an actor that is restarting finds the work in `pre_start`.
//! Long work (HTTP, input building, cargo-zisk) runs in tasks that report back by message,
//! delivered by name so a result reaches whichever incarnation is alive.

pub mod input_generator;
pub mod notifier;
pub mod prover;
pub mod reporter;
pub mod supervisor;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use ractor::{ActorRef, Message};

use crate::chain::NodeClient;
use crate::chainspec::ChainSpec;
use crate::config::Config;
use crate::zisk::{Dialect, ZiskVersion};
use supervisor::SupervisorMsg;

/// Registered actor names: how handles and tasks find the live incarnation.
pub const SUPERVISOR: &str = "supervisor";
pub const INPUT_GENERATOR: &str = "input_generator";
pub const PROVER: &str = "prover";
pub const REPORTER: &str = "reporter";
pub const NOTIFIER: &str = "notifier";

/// State shared between an actor's incarnations (and read by nobody else).
pub struct Shared<T>(Arc<Mutex<T>>);

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared(self.0.clone())
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Self {
        Shared::new(T::default())
    }
}

impl<T> Shared<T> {
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(Mutex::new(value)))
    }
    /// A panic while holding the lock must not make the state unusable for the restarted actor.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What every actor needs to know about the run, fixed at start-up.
pub struct Context {
    pub config: Config,
    pub ledger: Arc<crate::store::Ledger>,
    pub chain: ChainSpec,
    pub node: Arc<NodeClient>,
    pub http: reqwest::Client,
    pub zisk_version: ZiskVersion,
    pub dialect: Dialect,
    pub started_at: SystemTime,
    pub elf_sha256: String,
    /// Set by the admin API: no new input builds or proofs start (running ones finish).
    pub paused: std::sync::atomic::AtomicBool,
    /// Set while OUTPUT_DIR has less than MIN_FREE_DISK_MB free: no new work starts.
    pub disk_low: std::sync::atomic::AtomicBool,
}

impl Context {
    /// Whether new inputs and proofs must wait (operator pause, or not enough disk).
    pub fn is_paused(&self) -> bool {
        self.paused.load(std::sync::atomic::Ordering::SeqCst) || self.disk_low.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Sends to the actor registered under `name` if it is alive now; gives the message back if not.
pub fn send<M: Message>(name: &str, msg: M) -> Result<(), M> {
    match ractor::registry::where_is(name) {
        Some(cell) => {
            let actor: ActorRef<M> = cell.into();
            match actor.cast(msg) {
                Ok(()) => Ok(()),
                Err(ractor::MessagingErr::SendErr(msg)) => Err(msg),
                Err(_) => Ok(()),
            }
        }
        None => Err(msg),
    }
}

/// Delivers a task's result to the actor under `name`, waiting out a restart (up to a minute).
pub async fn deliver<M: Message>(name: &str, mut msg: M) {
    for _ in 0..600 {
        match send(name, msg) {
            Ok(()) => return,
            Err(back) => msg = back,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::error!(actor = name, "result could not be delivered: the actor stayed down for a minute");
}

/// Asks the actor under `name` for something, with a deadline; `None` if it does not answer.
pub async fn ask<M: Message, R: Send + 'static>(
    name: &str,
    timeout: Duration,
    build: impl FnOnce(ractor::RpcReplyPort<R>) -> M,
) -> Option<R> {
    let cell = ractor::registry::where_is(name)?;
    let actor: ActorRef<M> = cell.into();
    match actor.call(build, Some(timeout)).await {
        Ok(ractor::rpc::CallResult::Success(r)) => Some(r),
        _ => None,
    }
}

/// RFC 3339 time for status output.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil-from-days (Howard Hinnant's algorithm), to avoid a date crate for one format.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{d:02}T{h:02}:{m:02}:{s:02}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_683_200)), "2025-11-21T00:00:00Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)), "2000-02-29T00:00:00Z");
    }
}

/// Why the daemon could not start. `Config` errors exit with code 2, the rest with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("the node is unreachable or unusable: {0}")]
    Node(#[from] crate::chain::ChainError),
    #[error(transparent)]
    Chain(#[from] crate::chainspec::ChainSpecError),
    #[error("cargo-zisk: {0}")]
    Zisk(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("EthProofs start-up check: {0} (set ETHPROOFS_STRICT_STARTUP=false to start anyway)")]
    EthProofs(String),
    #[error("{0}")]
    Io(String),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => 2,
            _ => 1,
        }
    }
}

async fn detect_zisk(config: &Config) -> Result<ZiskVersion, StartupError> {
    use crate::config::ZiskVersionSetting;
    match config.zisk_version {
        ZiskVersionSetting::Fixed { major, minor } => Ok(ZiskVersion { major, minor, patch: 0 }),
        // Without ZisK the inputs are framed as the current CLI reads them.
        ZiskVersionSetting::Auto if config.zisk_action == crate::config::ZiskAction::Native => {
            Ok(ZiskVersion { major: 1, minor: 0, patch: 0 })
        }
        ZiskVersionSetting::Auto => {
            let program = &config.cargo_zisk;
            let output = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::process::Command::new(program).arg("--version").kill_on_drop(true).output(),
            )
            .await
            .map_err(|_| StartupError::Zisk(format!("`{} --version` did not answer in 30 s", program.display())))?
            .map_err(|e| {
                StartupError::Zisk(format!(
                    "cannot run `{} --version` ({e}); set CARGO_ZISK to the cargo-zisk binary or ZISK_VERSION explicitly",
                    program.display()
                ))
            })?;
            let text = String::from_utf8_lossy(&output.stdout).to_string() + &String::from_utf8_lossy(&output.stderr);
            ZiskVersion::parse(&text).map_err(|e| StartupError::Zisk(e.to_string()))
        }
    }
}

/// Checks the world (node, chain, prover, ELF), then runs the daemon until a signal or until the
/// supervisor gives up. Returns the process exit code.
pub async fn run(config: Config) -> Result<u8, StartupError> {
    use crate::config::ConfigError;
    let node = Arc::new(NodeClient::new(config.eth_rpc_url.expose(), Duration::from_secs(120))?);
    let mut attempt = 0;
    let node_chain_id = loop {
        match node.chain_id().await {
            Ok(id) => break id,
            Err(e) if e.is_transient() && attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "eth_chainId failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    let chain = match &config.chain_config {
        Some(path) => {
            let spec = ChainSpec::from_file(path)?;
            spec.check_chain_id(node_chain_id)?;
            spec
        }
        None => ChainSpec::by_chain_id(node_chain_id)?,
    };
    let zisk_version = detect_zisk(&config).await?;
    let dialect = zisk_version.dialect().map_err(|e| StartupError::Zisk(e.to_string()))?;
    let native = config.zisk_action == crate::config::ZiskAction::Native;
    if !native && !config.elf_path.is_file() {
        return Err(ConfigError {
            variable: "ELF_PATH",
            message: format!("{} is not a readable file (see guest-elf/README.md)", config.elf_path.display()),
        }
        .into());
    }
    std::fs::create_dir_all(&config.output_dir)
        .map_err(|e| StartupError::Io(format!("cannot create OUTPUT_DIR {}: {e}", config.output_dir.display())))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| StartupError::Io(format!("HTTP client: {e}")))?;
    let poller = Arc::new(crate::chain::HeadPoller::new(config.eth_rpc_url.expose())?);

    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        ethrex = crate::ETHREX_VERSION,
        chain = %chain.origin,
        chain_id = chain.chain_id(),
        node = node.endpoint(),
        zisk = %zisk_version,
        framing = %zisk_version.framing(),
        action = ?config.zisk_action,
        interval = config.block_interval,
        "ethproofs-daemon starting"
    );
    match &config.ethproofs {
        None => tracing::info!(
            "EthProofs reporting is off: ETHPROOFS_RPC_URL, ETHPROOFS_API_KEY and ETHPROOFS_CLUSTER_ID are not set, so nothing will be reported"
        ),
        Some(e) => tracing::info!(cluster_id = e.cluster_id, "reporting to EthProofs"),
    }

    crate::telemetry::install();
    prover::reap_leftover(&config.output_dir);
    let ledger = Arc::new(crate::store::Ledger::open(&config.db_path)?);
    let durable = resume(&ledger, &config)?;
    check_ethproofs(&config, &http).await?;
    let elf_sha256 = if native {
        "none (ZISK_ACTION=native)".to_string()
    } else {
        use sha2::Digest;
        let bytes = std::fs::read(&config.elf_path)
            .map_err(|e| StartupError::Io(format!("cannot read ELF_PATH {}: {e}", config.elf_path.display())))?;
        hex::encode(sha2::Sha256::digest(&bytes))
    };

    let listener = tokio::net::TcpListener::bind((config.health_host, config.health_port)).await.map_err(|e| {
        StartupError::Io(format!("cannot listen on {}:{}: {e}", config.health_host, config.health_port))
    })?;
    let started_detail = format!(
        "version {} (ethrex {}), chain {} ({}), cargo-zisk {zisk_version}, ELF sha256 {elf_sha256}",
        env!("CARGO_PKG_VERSION"),
        crate::ETHREX_VERSION,
        chain.origin,
        chain.chain_id()
    );
    let ctx = Arc::new(Context {
        config,
        ledger,
        chain,
        node,
        http,
        zisk_version,
        dialect,
        started_at: SystemTime::now(),
        elf_sha256,
        paused: std::sync::atomic::AtomicBool::new(false),
        disk_low: std::sync::atomic::AtomicBool::new(false),
    });
    notifier::NotifierHandle::new(durable.notifier.clone()).info("ethproofs-daemon started", started_detail);

    let gave_up = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (supervisor, supervisor_done) = ractor::Actor::spawn(
        Some(SUPERVISOR.to_string()),
        supervisor::Supervisor,
        supervisor::SupervisorArgs {
            ctx: ctx.clone(),
            poller,
            durable,
            restart_backoff: Duration::from_secs(1),
            gave_up: gave_up.clone(),
        },
    )
    .await
    .map_err(|e| StartupError::Io(format!("cannot start the actors: {e}")))?;

    let (stop_health, health_stopped) = tokio::sync::oneshot::channel::<()>();
    let app = crate::health::router(ctx.clone());
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = health_stopped.await;
            })
            .await;
    });

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| StartupError::Io(format!("cannot install the SIGTERM handler: {e}")))?;
    let mut supervisor_done = supervisor_done;
    let code = tokio::select! {
        _ = sigterm.recv() => None,
        _ = tokio::signal::ctrl_c() => None,
        _ = &mut supervisor_done => Some(if gave_up.load(std::sync::atomic::Ordering::SeqCst) { 1 } else { 0 }),
    };
    let code = match code {
        Some(code) => code,
        None => {
            tracing::info!("signal received: stopping");
            let deadline = prover::stop_timeout(ctx.config.prover_kill_grace) + Duration::from_secs(3);
            let stopped = supervisor.call(SupervisorMsg::Shutdown, Some(deadline)).await;
            if !matches!(stopped, Ok(ractor::rpc::CallResult::Success(()))) {
                tracing::warn!("shutdown did not complete in time");
            }
            let _ = tokio::time::timeout(Duration::from_secs(3), supervisor_done).await;
            0
        }
    };
    let _ = stop_health.send(());
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    tracing::info!(code, "ethproofs-daemon stopped");
    Ok(code)
}

/// Rebuilds the actors' work from the ledger: targets to build, inputs to prove (a block
/// interrupted while proving is proved again up to `MAX_PROVE_ATTEMPTS`, then failed). Pending
/// reports are read by the Reporter itself.
pub fn resume(ledger: &crate::store::Ledger, config: &Config) -> Result<supervisor::Durable, StartupError> {
    use crate::store::BlockState;
    let durable = supervisor::Durable::default();
    let mut to_build = Vec::new();
    for record in ledger.unfinished()? {
        let n = record.number;
        let input = record.input_path.clone().filter(|p| p.is_file());
        match (record.state, input) {
            (BlockState::Proving, _) if record.attempts >= config.max_prove_attempts => {
                let reason = format!(
                    "interrupted while proving {} time(s) (MAX_PROVE_ATTEMPTS = {}); not tried again",
                    record.attempts, config.max_prove_attempts
                );
                tracing::error!(block = n, %reason, "giving up on block");
                ledger.mark_failed(n, "prove", &reason)?;
            }
            (BlockState::InputReady | BlockState::Queued | BlockState::Proving, Some(input_path)) => {
                tracing::info!(block = n, state = record.state.as_str(), "resuming: proving again");
                ledger.mark_queued(n)?;
                durable.prover.lock().resume(prover::Job {
                    block: n,
                    input_path,
                    head_seen_at: std::time::Instant::now(),
                    block_timestamp: None,
                });
            }
            _ => {
                tracing::info!(block = n, state = record.state.as_str(), "resuming: building the input again");
                to_build.push(n);
            }
        }
    }
    if config.ethproofs.is_some() {
        for block in ledger.add_missing_proved_reports()? {
            tracing::warn!(block, "proved but its report was never written; reporting it now");
        }
    }
    durable.input.lock().resume(ledger.last_target()?, to_build);
    Ok(durable)
}

/// With reporting configured, the key must see the cluster. Definite answers (a refused key, a
/// cluster the team does not have) stop the daemon unless ETHPROOFS_STRICT_STARTUP=false; an
/// unreachable API does not, since the outbox rides out outages.
async fn check_ethproofs(config: &Config, http: &reqwest::Client) -> Result<(), StartupError> {
    let Some(e) = &config.ethproofs else { return Ok(()) };
    let client = crate::ethproofs::EthProofsClient::new(http.clone(), e.clone());
    match client.check_cluster().await {
        Ok(()) => {
            tracing::info!(cluster_id = e.cluster_id, "EthProofs key and cluster checked");
            Ok(())
        }
        Err(crate::ethproofs::ClusterCheck::Unreachable(reason)) => {
            tracing::warn!(%reason, "cannot reach EthProofs to check the key and cluster; starting anyway");
            Ok(())
        }
        Err(problem) if config.ethproofs_strict_startup => Err(StartupError::EthProofs(problem.to_string())),
        Err(problem) => {
            tracing::warn!(problem = %problem, "EthProofs start-up check failed; starting anyway (ETHPROOFS_STRICT_STARTUP=false)");
            Ok(())
        }
    }
}
