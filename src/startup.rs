//! Start-up in phases. [`build`] does everything that can fail — the instance lock (before
//! anything else is touched), the node and its chain, cargo-zisk, the ELF, the ledger and its
//! chain binding, the HTTP listener, the EthProofs check — and returns a [`Built`] daemon;
//! [`Built::spawn`] cannot fail in any way an operator can fix: it starts the actors and the
//! HTTP surface. [`run`] drives both and stops when `shutdown` resolves (a signal in `main`, a
//! future in tests) or when the supervisor gives up.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, SystemTime};

use crate::backend::Backend;
use crate::chain::{ChainError, HeadPoller, NodeClient};
use crate::chainspec::ChainSpec;
use crate::config::{Config, ConfigError, ProverBackend, ZiskAction, ZiskVersionSetting};
use crate::control::Control;
use crate::daemon::{Context, Supervisor, SupervisorArgs, SupervisorMsg};
use crate::instance::InstanceLock;
use crate::status::Board;
use crate::verify::ProofCheck;
use crate::zisk::ZiskVersion;

/// Why the daemon could not start. `Config` errors exit with code 2, the rest with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Instance(#[from] crate::instance::InstanceError),
    #[error("the node is unreachable or unusable: {0}")]
    Node(#[from] ChainError),
    #[error(transparent)]
    Chain(#[from] crate::chainspec::ChainSpecError),
    #[error("cargo-zisk: {0}")]
    Zisk(String),
    #[error("prover backend: {0}")]
    Backend(#[from] crate::backend::BuildError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("EthProofs start-up check: {0} (set ETHPROOFS_STRICT_STARTUP=false to start anyway)")]
    EthProofs(crate::ethproofs::ClusterCheck),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("cannot start the actors: {0}")]
    Actors(String),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) => 2,
            _ => 1,
        }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> StartupError {
    let what = what.into();
    move |source| StartupError::Io { what, source }
}

/// Everything checked and opened, nothing started.
pub struct Built {
    ctx: Arc<Context>,
    poller: Arc<HeadPoller>,
    listener: tokio::net::TcpListener,
    /// The admin API's own listener (loopback by default), when `ADMIN_TOKEN` is set.
    admin_listener: Option<tokio::net::TcpListener>,
    started_notice: (String, String),
    /// Held until the process ends: one daemon per OUTPUT_DIR.
    _lock: InstanceLock,
}

/// The first phase: everything that can fail.
pub async fn build(config: Config) -> Result<Built, StartupError> {
    std::fs::create_dir_all(&config.output_dir)
        .map_err(io(format!("cannot create OUTPUT_DIR {}", config.output_dir.display())))?;
    let lock = crate::instance::lock(&config.output_dir, &config.db_path)?;
    // The prover's helpers that outlive it become ours, so each run's end can sweep them.
    crate::process::become_subreaper();

    let node = Arc::new(
        NodeClient::new(config.eth_rpc_url.expose(), Duration::from_secs(120))?
            .with_max_response_mb(config.max_response_mb),
    );
    let node_chain_id = retry_transient(|| node.chain_id()).await?;
    let chain = ChainSpec::select(config.chain_config.as_deref(), node_chain_id)?;
    // A node without block 0 (pruned, or a test node) binds the ledger by chain id alone.
    let genesis = retry_transient(|| node.block_hash(0)).await?;
    let identity = format!("chain id {node_chain_id}, genesis {}", genesis.as_deref().unwrap_or("unknown"));

    let zisk_version = detect_zisk(&config).await?;
    let dialect = zisk_version.dialect().map_err(|e| StartupError::Zisk(e.to_string()))?;
    let native = config.zisk_action == ZiskAction::Native;
    if !native && !config.elf_path.is_file() {
        return Err(ConfigError {
            variable: "ELF_PATH",
            message: format!("{} is not a readable file (see guest-elf/README.md)", config.elf_path.display()),
        }
        .into());
    }
    let elf = if native {
        None
    } else {
        let bytes = read_guest(&config.elf_path)?;
        Some(check_elf(&config, &bytes, zisk_version)?)
    };
    let elf_sha256 = elf.as_ref().map_or("none (ZISK_ACTION=native)".to_string(), |f| f.sha256.clone());

    let ledger = Arc::new(crate::store::Ledger::open(&config.db_path)?);
    ledger.bind_chain(&identity)?;
    if config.reports_to_ethproofs() {
        for block in ledger.repair_missing_proved_reports()? {
            tracing::warn!(block, "proved but its report was never written; reporting it now");
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| StartupError::Io { what: "HTTP client".into(), source: std::io::Error::other(e) })?;
    check_ethproofs(&config, &http).await?;
    let poller = Arc::new(HeadPoller::new(config.eth_rpc_url.expose())?);
    let listener =
        tokio::net::TcpListener::bind((config.health_host, config.health_port)).await.map_err(io(format!(
            "cannot listen on HEALTH_HOST:HEALTH_PORT {}:{} (another process has the port? set HEALTH_PORT)",
            config.health_host, config.health_port
        )))?;
    let admin_listener = match &config.admin_token {
        None => None,
        Some(_) => Some(tokio::net::TcpListener::bind((config.admin_host, config.admin_port)).await.map_err(io(
            format!("cannot listen on ADMIN_HOST:ADMIN_PORT {}:{}", config.admin_host, config.admin_port),
        ))?),
    };

    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        ethrex = crate::ETHREX_VERSION,
        chain = %chain.origin,
        chain_id = chain.chain_id(),
        node = node.endpoint(),
        prover = %prover_label(&config, zisk_version),
        framing = %zisk_version.framing(),
        action = ?config.zisk_action,
        interval = config.block_interval,
        ledger = ledger.path(),
        "ethproofs-daemon starting"
    );
    match &config.ethproofs {
        None => tracing::info!(
            "EthProofs reporting is off: ETHPROOFS_RPC_URL, ETHPROOFS_API_KEY and ETHPROOFS_CLUSTER_ID are not set, so nothing will be reported"
        ),
        Some(e) => tracing::info!(cluster_id = e.cluster_id, "reporting to EthProofs"),
    }
    if ledger.paused()? {
        tracing::warn!("the operator's pause is still in force (`ethproofs-daemon resume` ends it)");
    }
    let started_notice = (
        "ethproofs-daemon started".to_string(),
        format!(
            "version {} (ethrex {}), chain {} ({}), {}, ELF sha256 {elf_sha256}",
            env!("CARGO_PKG_VERSION"),
            crate::ETHREX_VERSION,
            chain.origin,
            chain.chain_id(),
            prover_label(&config, zisk_version),
        ),
    );
    let verify = verification(&config, zisk_version)?;
    let backend = Backend::from_config(&config, &ledger, zisk_version, dialect, &elf_sha256)?;
    let ctx = Arc::new(Context {
        config,
        ledger,
        chain,
        node,
        http,
        zisk_version,
        dialect,
        backend,
        verify,
        started_at: SystemTime::now(),
        elf_sha256,
        elf,
        disk_low: Arc::new(AtomicBool::new(false)),
        board: Arc::new(Board::default()),
    });
    Ok(Built { ctx, poller, listener, admin_listener, started_notice, _lock: lock })
}

/// Node calls at start-up ride out a node that is briefly unavailable.
async fn retry_transient<T, F, Fut>(f: F) -> Result<T, ChainError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ChainError>>,
{
    let mut attempt = 0;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && attempt < 3 => {
                attempt += 1;
                tracing::warn!(error = %e, attempt, "node call failed at start-up; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// The guest ELF, read only once its size is known to be a guest's, and refused unless its header
/// says RV64 (`/bin/true` or a truncated download is a configuration error, exit 2).
fn read_guest(path: &std::path::Path) -> Result<Vec<u8>, StartupError> {
    let refuse = |message: String| StartupError::from(ConfigError { variable: "ELF_PATH", message });
    let len = std::fs::metadata(path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?.len();
    if len > crate::elf::MAX_ELF_BYTES {
        return Err(refuse(format!("{}: {}", path.display(), crate::elf::NotAGuest::TooLarge(len))));
    }
    let bytes = std::fs::read(path).map_err(|e| refuse(format!("cannot read {}: {e}", path.display())))?;
    crate::elf::check_guest_header(&bytes)
        .map_err(|e| refuse(format!("{} is not a ZisK guest: {e}", path.display())))?;
    Ok(bytes)
}

/// Reads what the ELF was built from, says it, and refuses an ELF whose ethrex writes another
/// input layout (unless `ALLOW_ELF_MISMATCH`); a ziskos of another line than cargo-zisk is a warning.
fn check_elf(
    config: &Config,
    bytes: &[u8],
    zisk_version: ZiskVersion,
) -> Result<crate::elf::Fingerprint, StartupError> {
    let fp = crate::elf::fingerprint(bytes);
    tracing::info!(
        elf = %config.elf_path.display(),
        sha256 = %fp.sha256,
        ethrex = %fp.ethrex.describe(),
        ziskos = %fp.ziskos.describe(),
        "guest ELF"
    );
    if let Err(mismatch) = crate::elf::check_layout(&fp, &config.elf_path.display().to_string()) {
        if !config.allow_elf_mismatch {
            return Err(ConfigError { variable: "ELF_PATH", message: mismatch.to_string() }.into());
        }
        tracing::warn!(%mismatch, "ALLOW_ELF_MISMATCH=true: starting anyway");
    }
    if config.prover_backend == ProverBackend::Cli
        && let Some(warning) = crate::elf::ziskos_mismatch(&fp, zisk_version)
    {
        tracing::warn!("{warning}");
    }
    Ok(fp)
}

/// Whether and how each proof is verified, said once at start-up (`verify::decide`).
fn verification(config: &Config, zisk_version: ZiskVersion) -> Result<Option<ProofCheck>, StartupError> {
    let proving = config.zisk_action == ZiskAction::Prove;
    let check = crate::verify::decide(config.verify_proofs, proving, zisk_version.major, config.program_vk)
        .map_err(|message| ConfigError { variable: "VERIFY_PROOFS", message })?;
    match (&check, proving) {
        (_, false) => {}
        (None, true) => tracing::warn!(
            zisk = %zisk_version,
            "proofs are reported without being verified (VERIFY_PROOFS=off, or a ZisK 0.x prover)"
        ),
        (Some(ProofCheck { program_vk: Some(vk) }), true) => {
            tracing::info!(program_vk = %crate::verify::vk_hex(vk), "every proof is verified for PROGRAM_VK");
        }
        (Some(ProofCheck { program_vk: None }), true) => tracing::warn!(
            "every proof is verified, for any program: set PROGRAM_VK to refuse a proof of another guest"
        ),
    }
    Ok(check)
}

/// What proves, in words: `cargo-zisk 0.16.0`, `ZisK coordinator http://…`, `native re-execution`.
pub fn prover_label(config: &Config, zisk_version: ZiskVersion) -> String {
    match (config.zisk_action, config.prover_backend) {
        (ZiskAction::Native, _) => "native re-execution (no ZisK)".to_string(),
        (_, ProverBackend::Cli) => format!("cargo-zisk {zisk_version}"),
        (_, ProverBackend::Coordinator) => {
            format!("ZisK coordinator {}", crate::chain::scrub_urls(&config.coordinator_url))
        }
    }
}

async fn detect_zisk(config: &Config) -> Result<ZiskVersion, StartupError> {
    if config.prover_backend == ProverBackend::Coordinator && config.zisk_action != ZiskAction::Native {
        // The coordinator's API is 1.x: it reads inputs framed as ZisK 0.16 and later do, and
        // this machine need not have cargo-zisk at all.
        return match config.zisk_version {
            ZiskVersionSetting::Auto | ZiskVersionSetting::Fixed { major: 1, .. } => {
                Ok(ZiskVersion { major: 1, minor: 0, patch: 0 })
            }
            ZiskVersionSetting::Fixed { .. } => Err(ConfigError {
                variable: "ZISK_VERSION",
                message: "the coordinator backend speaks ZisK 1.x; set ZISK_VERSION=1 or auto".into(),
            }
            .into()),
        };
    }
    match config.zisk_version {
        ZiskVersionSetting::Fixed { major, minor } => Ok(ZiskVersion { major, minor, patch: 0 }),
        // Without ZisK the inputs are framed as the current CLI reads them.
        ZiskVersionSetting::Auto if config.zisk_action == ZiskAction::Native => {
            Ok(ZiskVersion { major: 1, minor: 0, patch: 0 })
        }
        ZiskVersionSetting::Auto => {
            crate::zisk::detect(&config.cargo_zisk).await.map_err(|e| StartupError::Zisk(e.to_string()))
        }
    }
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
        Err(problem) if config.ethproofs_strict_startup => Err(StartupError::EthProofs(problem)),
        Err(problem) => {
            tracing::warn!(problem = %problem, "EthProofs start-up check failed; starting anyway (ETHPROOFS_STRICT_STARTUP=false)");
            Ok(())
        }
    }
}

/// A daemon whose actors and HTTP surface run.
pub struct Running {
    supervisor: ractor::ActorRef<SupervisorMsg>,
    supervisor_done: tokio::task::JoinHandle<()>,
    gave_up: Arc<std::sync::atomic::AtomicBool>,
    stop_http: tokio::sync::watch::Sender<bool>,
    /// The public server, and the admin server when there is one.
    http: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
    _lock: InstanceLock,
}

impl Built {
    /// The second phase: start the actors and serve the HTTP surface.
    pub async fn spawn(self) -> Result<Running, StartupError> {
        let Built { ctx, poller, listener, admin_listener, started_notice, _lock } = self;
        crate::telemetry::install();
        let gave_up = Arc::new(AtomicBool::new(false));
        let (supervisor, supervisor_done) = ractor::Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                ctx: ctx.clone(),
                poller,
                restart_backoff: Duration::from_secs(1),
                gave_up: gave_up.clone(),
                started_notice: Some(started_notice),
            },
        )
        .await
        .map_err(|e| StartupError::Actors(e.to_string()))?;
        let surface = crate::surface::Surface {
            board: ctx.board.clone(),
            control: Control::new(ctx.ledger.clone(), ctx.config.reports_to_ethproofs()),
            info: crate::surface::Info {
                started_at: ctx.started_at,
                chain_name: ctx.chain.name(),
                block_interval: ctx.config.block_interval,
                dev: ctx.chain.is_dev(),
                reporting: ctx.config.reports_to_ethproofs(),
                chain_id: ctx.chain.chain_id(),
                zisk_version: ctx.zisk_label(),
                elf_sha256: ctx.elf_sha256.clone(),
                elf_ethrex: ctx.elf.as_ref().map_or("none".into(), |f| f.ethrex.describe()),
                elf_ziskos: ctx.elf.as_ref().map_or("none".into(), |f| f.ziskos.describe()),
                verify_proofs: ctx.verify.is_some(),
                program_vk: ctx.verify.as_ref().and_then(|v| v.program_vk.as_ref()).map(crate::verify::vk_hex),
                output_dir: ctx.config.output_dir.clone(),
                admin_token: ctx.config.admin_token.clone(),
            },
            disk_low: ctx.disk_low.clone(),
        };
        let surface = Arc::new(surface);
        let (stop_http, http_stopped) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let public = crate::health::router(surface.clone())
            .merge(crate::dashboard::router(surface.clone()))
            .merge(crate::blocks::router(surface.clone()));
        let mut http = vec![tokio::spawn(crate::serve::serve(listener, public, stopped(http_stopped.clone())))];
        if let Some(admin_listener) = admin_listener {
            // The admin API on its own address; `/health` there too, so `status` needs one URL.
            let admin = crate::admin::router(surface.clone()).merge(crate::health::router(surface));
            http.push(tokio::spawn(crate::serve::serve(admin_listener, admin, stopped(http_stopped))));
        }
        Ok(Running {
            supervisor,
            supervisor_done,
            gave_up,
            stop_http,
            http,
            grace: ctx.config.prover_kill_grace,
            _lock,
        })
    }
}

impl Running {
    /// Runs until `shutdown` resolves or the supervisor ends; returns the process exit code.
    pub async fn until(self, shutdown: impl Future<Output = ()>) -> u8 {
        let Running { supervisor, mut supervisor_done, gave_up, stop_http, http, grace, _lock } = self;
        let code = tokio::select! {
            _ = shutdown => None,
            _ = &mut supervisor_done => Some(u8::from(gave_up.load(std::sync::atomic::Ordering::SeqCst))),
        };
        let code = match code {
            Some(code) => code,
            None => {
                tracing::info!("stopping");
                let deadline = crate::daemon::supervisor::stop_deadline(grace);
                let stopped = supervisor.call(SupervisorMsg::Shutdown, Some(deadline)).await;
                if !matches!(stopped, Ok(ractor::rpc::CallResult::Success(()))) {
                    tracing::warn!("shutdown did not complete in time");
                }
                let _ = tokio::time::timeout(Duration::from_secs(3), supervisor_done).await;
                0
            }
        };
        let _ = stop_http.send(true);
        for server in http {
            let _ = tokio::time::timeout(Duration::from_secs(3), server).await;
        }
        tracing::info!(code, "ethproofs-daemon stopped");
        code
    }
}

/// Checks, starts, and runs the daemon until `shutdown` or until the supervisor gives up.
/// A shutdown during start-up (a SIGTERM while the node is still being reached) ends it cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<u8, StartupError> {
    let mut shutdown = std::pin::pin!(shutdown);
    let built = tokio::select! {
        built = build(config) => built?,
        () = &mut shutdown => {
            tracing::info!("stopped during start-up");
            return Ok(0);
        }
    };
    let running = built.spawn().await?;
    Ok(running.until(shutdown).await)
}
