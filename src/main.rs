//! Command line entry point: parses arguments, runs one command, maps errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use ethproofs_daemon::chain::NodeClient;
use ethproofs_daemon::chainspec::{ChainSelector, ChainSpec};
use ethproofs_daemon::config::{Config, LogFormat, RunArgs};
use ethproofs_daemon::input::{self, Framing, GenerateOptions};

const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (ethrex crates 31.0.0, guest input = ethrex v31 ProgramInput)");

/// With no subcommand the daemon runs (`run`), configured from the environment.
#[derive(Parser)]
#[command(name = "ethproofs-daemon", version, long_version = LONG_VERSION, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: follow the head, prove every BLOCK_INTERVAL-th block, report to EthProofs.
    Run(Box<RunArgs>),
    /// Build the ZisK guest input for one block, validate it natively, and write it.
    GenerateInput(GenerateInputArgs),
    /// Produce dev chain blocks and write them as fixtures (the ../shared/fixtures layout).
    Devchain(DevchainArgs),
    /// Print one row per target block from the ledger (works while the daemon runs).
    Report(ReportArgs),
    /// Check the configuration, node, cargo-zisk, ELF, EthProofs, output directory and Slack.
    Doctor(Box<DoctorArgs>),
    /// Show a running daemon's status (its /health document).
    Status(ClientArgs),
    /// Ask a running daemon to prove block N, or `--start N --count K` blocks (any numbers).
    Prove(ProveArgs),
    /// Ask a running daemon to send a proved block's report to EthProofs again.
    Resubmit(ResubmitArgs),
    /// Ask a running daemon to start no new inputs or proofs (running ones finish).
    Pause(ClientArgs),
    /// Ask a paused daemon to go on.
    Resume(ClientArgs),
}

#[derive(Args)]
struct DevchainArgs {
    /// How many blocks to produce (the last ones are written).
    #[arg(long, default_value = "3")]
    blocks: u64,
    /// Directory to write `dev-<n>/` fixture directories into.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args)]
struct DoctorArgs {
    /// Also send a test message to SLACK_WEBHOOK.
    #[arg(long)]
    notify: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args)]
struct ClientArgs {
    /// The daemon's HTTP address (its HEALTH_HOST:HEALTH_PORT).
    #[arg(long, env = "ETHPROOFS_DAEMON_URL", default_value = "http://127.0.0.1:4000")]
    url: String,
    /// The daemon's admin token.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    token: Option<ethproofs_daemon::config::Secret>,
}

#[derive(Args)]
struct ProveArgs {
    /// The block to prove.
    #[arg(conflicts_with_all = ["start", "count"], required_unless_present = "start")]
    block: Option<u64>,
    /// First block of a range.
    #[arg(long, requires = "count")]
    start: Option<u64>,
    /// How many blocks from --start.
    #[arg(long, requires = "start")]
    count: Option<u64>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
struct ResubmitArgs {
    block: u64,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Csv,
    Json,
}

#[derive(Args)]
struct ReportArgs {
    /// How far back, by when the target was first seen: 90s, 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = ethproofs_daemon::config::parse_duration)]
    since: Duration,
    #[arg(long, value_enum, default_value = "csv")]
    format: ReportFormat,
    /// The ledger (default OUTPUT_DIR/ethproofs-daemon.db).
    #[arg(long, env = "DB_PATH")]
    db_path: Option<PathBuf>,
    #[arg(long, env = "OUTPUT_DIR", default_value = "output")]
    output_dir: PathBuf,
}

#[derive(Args)]
struct GenerateInputArgs {
    /// `eth_getBlockByNumber(N, true)` response (the result object or the whole envelope).
    #[arg(long, requires = "witness", conflicts_with_all = ["rpc_url", "block_number"])]
    block: Option<PathBuf>,
    /// `debug_executionWitness(N)` response (the result object or the whole envelope).
    #[arg(long, requires = "block")]
    witness: Option<PathBuf>,
    /// Fetch the block and witness from this node instead of files.
    #[arg(long, requires = "block_number")]
    rpc_url: Option<String>,
    /// Block to fetch with --rpc-url.
    #[arg(long, requires = "rpc_url")]
    block_number: Option<u64>,
    /// mainnet | hoodi | sepolia | a chain id | a path to a genesis or config JSON.
    /// Required with files; with --rpc-url the node's eth_chainId picks it.
    #[arg(long)]
    chain: Option<String>,
    /// `raw` for ZisK v0.14/v0.15, `framed` for v0.16 and later.
    #[arg(long)]
    framing: Framing,
    /// Where to write the input (atomically).
    #[arg(long)]
    out: PathBuf,
    /// Skip native validation (stateless re-execution) of the input.
    #[arg(long)]
    no_validate: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::GenerateInput(args)) => generate_input(args),
        Some(Command::Report(args)) => report(args),
        Some(Command::Devchain(args)) => devchain_fixtures(args),
        Some(Command::Doctor(args)) => return doctor(*args),
        Some(Command::Status(c)) => client(c, "GET", "/health".into()),
        Some(Command::Prove(p)) => match (p.block, p.start, p.count) {
            (Some(n), _, _) => client(p.client, "POST", format!("/admin/prove/{n}")),
            (None, Some(start), Some(count)) => {
                client(p.client, "POST", format!("/admin/prove?start={start}&count={count}"))
            }
            _ => Err(anyhow::anyhow!("give a block number, or --start and --count")),
        },
        Some(Command::Resubmit(r)) => client(r.client, "POST", format!("/admin/resubmit/{}", r.block)),
        Some(Command::Pause(c)) => client(c, "POST", "/admin/pause".into()),
        Some(Command::Resume(c)) => client(c, "POST", "/admin/resume".into()),
        Some(Command::Run(args)) => return run(*args),
        None => return run(cli.run),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: operators grep for it and CI logs show it whole.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

fn init_logging(config: &Config) {
    use std::io::IsTerminal;
    // A bare level applies to the daemon (and cargo-zisk's output); dependencies stay at `warn`:
    // their debug spans carry request URLs, which may hold a node provider's key.
    let level = config.log_level.trim();
    let directives = if level.contains('=') || level.contains(',') {
        level.to_string()
    } else {
        format!("warn,ethproofs_daemon={level},cargo_zisk={level}")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn run(mut args: RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.dev
        && let Err(e) = runtime.block_on(start_dev_chain(&mut args))
    {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    if config.zisk_action == ethproofs_daemon::config::ZiskAction::Native {
        tracing::info!(url = %format!("http://localhost:{}/", config.health_port), "dashboard");
    }
    let result = runtime.block_on(ethproofs_daemon::startup::run(config, shutdown_signal()));
    // Stray tasks (a WebSocket reconnect loop, a delivery retry) must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// SIGTERM (systemd, Kubernetes) or Ctrl-C. A handler that cannot be installed means the
/// daemon can only be stopped by SIGKILL, which the ledger survives: run anyway.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            eprintln!("warning: cannot install the SIGTERM handler ({e}); Ctrl-C still stops the daemon");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("signal received: stopping");
}

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} file {}", path.display()))
}

fn generate_input(args: GenerateInputArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let (block_json, witness_json, chain) = match (&args.block, &args.witness, &args.rpc_url, args.block_number) {
        (Some(block), Some(witness), None, None) => {
            let Some(chain) = &args.chain else {
                bail!("--chain is required when the block and witness come from files")
            };
            let chain = chain.parse::<ChainSelector>().unwrap_or_else(|e| match e {}).resolve()?;
            (read(block, "block")?, read(witness, "witness")?, chain)
        }
        (None, None, Some(url), Some(number)) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(fetch(url, number, args.chain.as_deref()))?
        }
        _ => bail!("give either --block and --witness files, or --rpc-url and --block-number"),
    };
    let options = GenerateOptions { framing: args.framing, validate: !args.no_validate };
    let generated = input::generate(block_json, witness_json, &chain.config, options, &args.out)?;
    let line = serde_json::json!({
        "block_number": generated.summary.number,
        "block_hash": format!("{:#x}", generated.summary.hash),
        "tx_count": generated.summary.tx_count,
        "gas_used": generated.summary.gas_used,
        "input_bytes": generated.written.bytes,
        "input_sha256": hex::encode(generated.written.sha256),
        "framing": generated.framing.as_str(),
        "validation": generated.validation.as_str(),
        "elapsed_ms": started.elapsed().as_millis() as u64,
    });
    println!("{line}");
    Ok(())
}

async fn fetch(url: &str, number: u64, chain: Option<&str>) -> anyhow::Result<(Vec<u8>, Vec<u8>, ChainSpec)> {
    let node = NodeClient::new(url, Duration::from_secs(120))?;
    let node_chain_id = node.chain_id().await?;
    let chain = match chain {
        Some(c) => {
            let spec = c.parse::<ChainSelector>().unwrap_or_else(|e| match e {}).resolve()?;
            spec.check_chain_id(node_chain_id)?;
            spec
        }
        None => ChainSpec::by_chain_id(node_chain_id)?,
    };
    let (block, witness) = tokio::try_join!(node.block_json(number), node.witness_json(number))?;
    Ok((block, witness, chain))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

fn report(args: ReportArgs) -> anyhow::Result<()> {
    use std::time::{SystemTime, UNIX_EPOCH};
    let path = args.db_path.unwrap_or_else(|| args.output_dir.join("ethproofs-daemon.db"));
    if !path.is_file() {
        bail!("no ledger at {} (set DB_PATH or OUTPUT_DIR)", path.display());
    }
    let ledger = ethproofs_daemon::store::Ledger::open(&path)?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let lines = ledger.report_lines(now_ms - args.since.as_millis() as i64)?;
    let time = |ms: Option<i64>| {
        ms.map(|ms| ethproofs_daemon::daemon::rfc3339(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
            .unwrap_or_default()
    };
    match args.format {
        ReportFormat::Json => {
            let rows: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "block": l.block, "outcome": l.outcome, "stage": l.stage, "reason": l.reason,
                        "gas_used": l.gas_used, "tx_count": l.tx_count, "input_ms": l.input_ms,
                        "proving_ms": l.proving_ms, "cycles": l.cycles, "attempts": l.attempts,
                        "seen_at": time(l.seen_at_ms), "proved_at": time(l.proved_at_ms),
                        "reported_at": time(l.reported_at_ms), "report_state": l.report_state,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        ReportFormat::Csv => {
            println!(
                "block,outcome,stage,reason,gas_used,tx_count,input_ms,proving_ms,cycles,attempts,seen_at,proved_at,reported_at"
            );
            let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            for l in &lines {
                println!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    l.block,
                    l.outcome,
                    csv_field(l.stage.as_deref().unwrap_or("")),
                    csv_field(l.reason.as_deref().unwrap_or("")),
                    num(l.gas_used),
                    num(l.tx_count),
                    num(l.input_ms),
                    num(l.proving_ms),
                    num(l.cycles),
                    l.attempts,
                    time(l.seen_at_ms),
                    time(l.proved_at_ms),
                    time(l.reported_at_ms),
                );
            }
        }
    }
    Ok(())
}

/// One call to a running daemon; prints its JSON answer, fails on a non-2xx status
/// (`status` prints the document even when the daemon answers 503: that is its content).
fn client(args: ClientArgs, method: &str, path: String) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = runtime
        .block_on(ethproofs_daemon::admin::call(&args.url, args.token.as_ref(), method, &path))
        .map_err(anyhow::Error::msg)?;
    println!("{}", serde_json::to_string_pretty(&body)?);
    if (200..300).contains(&status) || (path == "/health" && status == 503) {
        Ok(())
    } else {
        bail!("the daemon answered HTTP {status}: {body}")
    }
}

fn doctor(args: DoctorArgs) -> ExitCode {
    let config = match args.run.into_config() {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL config     {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let checks = runtime.block_on(ethproofs_daemon::doctor::run(&config, args.notify));
    for check in &checks {
        println!("{}", check.line());
    }
    let failed = checks.iter().filter(|c| c.ok == Some(false)).count();
    if failed > 0 {
        println!("{failed} check(s) failed");
        ExitCode::FAILURE
    } else {
        println!("all checks passed");
        ExitCode::SUCCESS
    }
}

/// `run --dev`: an offline chain on loopback, and the settings that point the daemon at it
/// (native re-execution, a target every 5 blocks, outputs under `output/dev`).
async fn start_dev_chain(args: &mut RunArgs) -> anyhow::Result<()> {
    use ethproofs_daemon::devchain;
    if args.output_dir == std::path::Path::new("output") {
        args.output_dir = PathBuf::from("output/dev");
    }
    std::fs::create_dir_all(&args.output_dir)?;
    fresh_dev_ledger(&args.output_dir)?;
    let config_path = args.output_dir.join("dev-chain-config.json");
    std::fs::write(&config_path, devchain::CONFIG_JSON)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let chain = std::sync::Arc::new(std::sync::Mutex::new(devchain::DevChain::new()?));
    tokio::spawn(devchain::serve(chain, listener, Duration::from_secs(args.dev_block_time)));
    eprintln!("dev chain (chain id {}) serving JSON-RPC at {url}", devchain::CHAIN_ID);
    args.eth_rpc_url = Some(ethproofs_daemon::config::Secret::new(url));
    args.eth_ws_url = None;
    args.chain_config = Some(config_path);
    args.zisk_action = ethproofs_daemon::config::ZiskAction::Native;
    if args.block_interval == 100 {
        args.block_interval = 5;
    }
    args.max_backfill_blocks = args.max_backfill_blocks.max(args.block_interval);
    Ok(())
}

/// Every `run --dev` starts a new dev chain from block 0, so it starts a new ledger too: the old
/// run's ledger and block directories would describe another chain under the same chain id.
/// Done under the instance lock, so a dev daemon that is still running is refused, not wiped.
fn fresh_dev_ledger(dir: &std::path::Path) -> anyhow::Result<()> {
    let ledger = dir.join("ethproofs-daemon.db");
    let _lock = ethproofs_daemon::instance::lock(dir, &ledger)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = ledger.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(PathBuf::from(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
    }
    for entry in std::fs::read_dir(dir)?.filter_map(Result::ok) {
        let is_block_dir = entry.file_name().to_str().is_some_and(|n| n.parse::<u64>().is_ok());
        if is_block_dir && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Writes dev chain blocks as fixtures: chain.json, the two responses, and expected.json with
/// the figures and input hashes this build computes for them.
fn devchain_fixtures(args: DevchainArgs) -> anyhow::Result<()> {
    use ethproofs_daemon::devchain::{CONFIG_JSON, DevChain};
    let mut chain = DevChain::new()?;
    for _ in 0..args.blocks {
        let served = chain.produce()?.clone();
        let dir = args.out.join(format!("dev-{}", served.number));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("chain.json"), CONFIG_JSON)?;
        std::fs::write(dir.join("eth_getBlockByNumber.json"), &served.block_json)?;
        std::fs::write(dir.join("debug_executionWitness.json"), &served.witness_json)?;
        let mut expected = serde_json::Map::new();
        for framing in [Framing::Raw, Framing::Framed] {
            let out = dir.join(format!(".input.{framing}"));
            let generated = input::generate(
                served.block_json.clone().into_bytes(),
                served.witness_json.clone().into_bytes(),
                &chain.config(),
                GenerateOptions { framing, validate: true },
                &out,
            )?;
            std::fs::remove_file(&out)?;
            let key = if framing == Framing::Raw { "input_rkyv_sha256" } else { "input_framed_sha256" };
            expected.insert(key.into(), hex::encode(generated.written.sha256).into());
            expected.insert("block_number".into(), generated.summary.number.into());
            expected.insert("block_hash".into(), format!("{:#x}", generated.summary.hash).into());
            expected.insert("tx_count".into(), generated.summary.tx_count.into());
            expected.insert("gas_used".into(), generated.summary.gas_used.into());
            expected.insert("native_validation".into(), generated.validation.as_str().into());
        }
        expected.insert("note".into(), "generated by ethproofs-daemon devchain; hashes computed by this build".into());
        std::fs::write(dir.join("expected.json"), serde_json::to_string_pretty(&expected)? + "\n")?;
        println!("{}", dir.display());
    }
    Ok(())
}
