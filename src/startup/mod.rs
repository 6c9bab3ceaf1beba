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

use crate::block::chainspec::ChainSpec;
use crate::config::{Config, ConfigError, ZiskAction};
use crate::daemon::{Context, Links, Settings, Supervisor, SupervisorArgs};
use crate::http::control::Control;
use crate::outside::chain::{ChainError, HeadPoller, NodeClient};
use crate::outside::instance::InstanceLock;
use crate::runtime::drain::Drain;
use crate::runtime::status::Board;

mod checks;

pub use checks::prover_label;
use checks::{check_elf, check_emulator, check_ethproofs, detect_zisk, read_guest, retry_transient, verification};

/// Why the daemon could not start. A setting the operator must change (`Config`, and the chain
/// config, which only CHAIN_CONFIG can fix) exits with code 2, the rest with 1.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Instance(#[from] crate::outside::instance::InstanceError),
    #[error("the node is unreachable or unusable: {0}")]
    Node(#[from] ChainError),
    #[error("CHAIN_CONFIG: {0}")]
    Chain(#[from] crate::block::chainspec::ChainSpecError),
    #[error("cargo-zisk: {0}")]
    Zisk(String),
    #[error("prover backend: {0}")]
    Backend(#[from] crate::backend::BackendError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("EthProofs start-up check: {0} (set ETHPROOFS_STRICT_STARTUP=false to start anyway)")]
    EthProofs(crate::outside::ethproofs::ClusterCheck),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("cannot start the actors: {0}")]
    Actors(String),
}

impl StartupError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartupError::Config(_) | StartupError::Chain(_) => 2,
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
    /// Each component's own settings, cut from the configuration.
    settings: Settings,
    /// What the HTTP surface shows and needs of the configuration.
    surface: SurfaceSettings,
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
    let lock = crate::outside::instance::lock(&config.output_dir, &config.db_path)?;
    // Under the lock no writer of ours exists: what a crash left half-written goes now.
    let swept = crate::daemon::sweep_leftovers(&config.output_dir);
    if swept > 0 {
        tracing::info!(swept, "removed files a crash left half-written");
    }
    // The prover's helpers that outlive it become ours, so each run's end can sweep them.
    crate::outside::process::become_subreaper();

    // What this machine alone can say first: a wrong path or version is named before the node is
    // asked anything (and whether or not it answers).
    let zisk_version = detect_zisk(&config).await?;
    let dialect =
        zisk_version.dialect().map_err(|e| ConfigError { variable: zisk_variable(&config), message: e.to_string() })?;
    check_emulator(&config)?;
    let native = config.zisk_action == ZiskAction::Native;
    if !native && !config.elf_path.is_file() {
        return Err(ConfigError {
            variable: "ELF_PATH",
            message: format!("{} is not a readable file (see guest-elf/README.md)", config.elf_path.display()),
        }
        .into());
    }
    let (elf, verify) = if native {
        (None, verification(&config, zisk_version, None)?)
    } else {
        let bytes = read_guest(&config.elf_path)?;
        let fp = check_elf(&config, &bytes, zisk_version)?;
        let verify = verification(&config, zisk_version, Some((&bytes, &fp)))?;
        (Some(fp), verify)
    };
    // How the guest commits its outputs, also for the guest's own check of each input.
    let output_layout = crate::block::elf::output_layout(config.guest_output, elf.as_ref()).ok();
    let elf_sha256 = elf.as_ref().map_or("none (ZISK_ACTION=native)".to_string(), |f| f.sha256.clone());

    let node = Arc::new(
        NodeClient::new(config.eth_rpc_url.expose(), Duration::from_secs(120))?
            .with_max_response_mb(config.max_response_mb),
    );
    let node_chain_id = retry_transient(|| node.chain_id()).await?;
    let chain = ChainSpec::select(config.chain_config.as_deref(), node_chain_id)?;
    // A node without block 0 (pruned, or a test node) binds the ledger by chain id alone.
    let genesis = retry_transient(|| node.block_hash(0)).await?;
    let identity = format!("chain id {node_chain_id}, genesis {}", genesis.as_deref().unwrap_or("unknown"));

    let ledger = Arc::new(crate::store::Ledger::open(&config.db_path)?);
    ledger.bind_chain(&identity)?;
    if config.reports_to_ethproofs() {
        for block in ledger.repair_missing_proved_reports()? {
            crate::runtime::block_span!(block)
                .in_scope(|| tracing::warn!("proved but its report was never written; reporting it now"));
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
    // Said once the port is ours, never before a "cannot listen".
    if config.zisk_action == crate::config::ZiskAction::Native {
        tracing::info!(url = %format!("http://localhost:{}/", config.health_port), "dashboard");
    }

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
    let backend = crate::backend::from_config(&config, &ledger, zisk_version, dialect, &elf_sha256, output_layout)?;
    let settings = Settings::from_config(&config);
    let surface = SurfaceSettings {
        reader: Arc::new(crate::store::Ledger::open_read_only(&config.db_path)?),
        block_interval: config.block_interval,
        proves: config.zisk_action == ZiskAction::Prove,
        reporting: config.reports_to_ethproofs(),
        output_dir: config.output_dir.clone(),
        min_free_disk_mb: config.min_free_disk_mb,
        admin_token: config.admin_token.clone(),
        cohort: config.cohort,
        gpu_hourly_price: config.gpu_hourly_price,
        cluster_gpus: config.cluster_gpus,
    };
    let links = Links {
        dashboard_url: config.dashboard_url.clone(),
        reports_to_ethproofs: config.reports_to_ethproofs(),
        dev_chain: chain.is_dev(),
    };
    let ctx = Arc::new(Context {
        links,
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
        drain: Drain::new(),
    });
    Ok(Built { ctx, settings, surface, poller, listener, admin_listener, started_notice, _lock: lock })
}

/// What the HTTP surface needs of the configuration.
struct SurfaceSettings {
    block_interval: u64,
    proves: bool,
    reporting: bool,
    output_dir: std::path::PathBuf,
    min_free_disk_mb: u64,
    admin_token: Option<crate::config::Secret>,
    cohort: Option<crate::config::Cohort>,
    gpu_hourly_price: Option<f64>,
    cluster_gpus: u32,
    /// The surface's own read-only connection to the ledger.
    reader: Arc<crate::store::Ledger>,
}

/// Which setting names the ZisK version in force: the one given, or the binary asked.
fn zisk_variable(config: &Config) -> &'static str {
    match config.zisk_version {
        crate::config::ZiskVersionSetting::Auto => "CARGO_ZISK",
        crate::config::ZiskVersionSetting::Fixed { .. } => "ZISK_VERSION",
    }
}

/// A daemon whose actors and HTTP surface run.
pub struct Running {
    supervisor_done: tokio::task::JoinHandle<()>,
    gave_up: Arc<std::sync::atomic::AtomicBool>,
    /// The one stop signal: fired here, heard by the actors and the HTTP servers alike.
    drain: Drain,
    /// The public server, and the admin server when there is one.
    http: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
    _lock: InstanceLock,
}

impl Built {
    /// The second phase: start the actors and serve the HTTP surface.
    pub async fn spawn(self) -> Result<Running, StartupError> {
        let Built { ctx, settings, surface, poller, listener, admin_listener, started_notice, _lock } = self;
        let grace = settings.prover.kill_grace;
        crate::runtime::telemetry::install();
        crate::runtime::telemetry::baseline(surface.proves, surface.reporting, ctx.backend.service().is_some());
        let gave_up = Arc::new(AtomicBool::new(false));
        let (_supervisor, supervisor_done) = ractor::Actor::spawn(
            None,
            Supervisor,
            SupervisorArgs {
                ctx: ctx.clone(),
                settings,
                poller,
                restart_backoff: Duration::from_secs(1),
                gave_up: gave_up.clone(),
                started_notice: Some(started_notice),
            },
        )
        .await
        .map_err(|e| StartupError::Actors(e.to_string()))?;
        let surface = crate::http::surface::Surface {
            board: ctx.board.clone(),
            control: Control::new(ctx.ledger.clone(), surface.reader, surface.reporting),
            info: crate::http::surface::Info {
                started_at: ctx.started_at,
                chain_name: ctx.chain.name(),
                block_interval: surface.block_interval,
                proves: surface.proves,
                dev: ctx.chain.is_dev(),
                reporting: surface.reporting,
                chain_id: ctx.chain.chain_id(),
                zisk_version: ctx.zisk_label(),
                elf_sha256: ctx.elf_sha256.clone(),
                elf_ethrex: ctx.elf.as_ref().map_or("none".into(), |f| f.ethrex.describe()),
                elf_ziskos: ctx.elf.as_ref().map_or("none".into(), |f| f.ziskos.describe()),
                verify_proofs: ctx.verify.is_some(),
                program_vk: ctx.verify.as_ref().and_then(|v| v.program_vk.as_ref()).map(crate::block::verify::vk_hex),
                key_from: ctx.verify.as_ref().and_then(|v| v.key_source.as_ref()).map(|k| k.describe()),
                output_layout: ctx.verify.as_ref().and_then(|v| v.layout).map(|l| l.as_str()),
                proofs_unchecked: surface.proves && surface.reporting && ctx.verify.is_none(),
                output_dir: surface.output_dir,
                min_free_disk_mb: surface.min_free_disk_mb,
                admin_token: surface.admin_token,
                cohort: surface.cohort,
                gpu_hourly_price: surface.gpu_hourly_price,
                cluster_gpus: surface.cluster_gpus,
            },
            disk_low: ctx.disk_low.clone(),
            scoreboard: Default::default(),
        };
        let surface = Arc::new(surface);
        let stopped = |drain: Drain| async move { drain.signalled().await };
        let public = crate::http::health::router(surface.clone())
            .merge(crate::http::dashboard::router(surface.clone()))
            .merge(crate::http::blocks::router(surface.clone()))
            .fallback(crate::http::blocks::unknown);
        let probes = crate::http::health::probes(surface.clone());
        let mut http =
            vec![tokio::spawn(crate::http::serve::serve(listener, public, probes.clone(), stopped(ctx.drain.clone())))];
        // The cohort scoreboard, worked out in the background for every page that shows it.
        http.push(tokio::spawn(crate::http::health::keep_scoreboard(surface.clone(), stopped(ctx.drain.clone()))));
        http.push(tokio::spawn(crate::runtime::upkeep::keep(stopped(ctx.drain.clone()))));
        if let Some(admin_listener) = admin_listener {
            // The admin API on its own address; `/health` there too, so `status` needs one URL.
            let admin = crate::http::admin::router(surface.clone()).merge(crate::http::health::router(surface));
            http.push(tokio::spawn(crate::http::serve::serve(
                admin_listener,
                admin,
                probes,
                stopped(ctx.drain.clone()),
            )));
        }
        Ok(Running { supervisor_done, gave_up, drain: ctx.drain.clone(), http, grace, _lock })
    }
}

impl Running {
    /// Runs until `shutdown` resolves or the supervisor ends; returns the process exit code.
    pub async fn until(self, shutdown: impl Future<Output = ()>) -> u8 {
        let Running { mut supervisor_done, gave_up, drain, http, grace, _lock } = self;
        let code = tokio::select! {
            _ = shutdown => None,
            _ = &mut supervisor_done => Some(u8::from(gave_up.load(std::sync::atomic::Ordering::SeqCst))),
        };
        let code = match code {
            Some(code) => code,
            None => {
                tracing::info!("stopping");
                drain.signal();
                let deadline = crate::daemon::supervisor::stop_deadline(grace);
                if tokio::time::timeout(deadline, supervisor_done).await.is_err() {
                    tracing::warn!("shutdown did not complete in time");
                }
                0
            }
        };
        // Also when the supervisor gave up: the HTTP servers hear the same signal.
        drain.signal();
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
