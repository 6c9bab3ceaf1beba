//! Command line entry point: the arguments (clap) and the dispatch to `cli`, which runs the
//! commands. The only place that uses `anyhow` and decides exit codes.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ethproofs_daemon::block::input::Framing;
use ethproofs_daemon::config::RunArgs;

const LONG_VERSION: &str =
    concat!(env!("CARGO_PKG_VERSION"), " (ethrex crates 31.0.0, guest input = ethrex v31 ProgramInput)");

/// With no subcommand the daemon runs (`run`), configured from the environment.
#[derive(Parser)]
#[command(name = "ethproofs-daemon", version, long_version = LONG_VERSION, about, args_conflicts_with_subcommands = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Subcommand)]
pub(crate) enum Command {
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
    /// Show a running daemon's status in a few lines (`--json`: its whole /health document).
    Status(StatusArgs),
    /// Ask a running daemon to prove block N, or `--start N --count K` blocks (any numbers).
    Prove(ProveArgs),
    /// Prove (or execute, or check with the guest) every kept input of a directory again, with
    /// no node: a daemon's OUTPUT_DIR or a copy of one. Never touches a running daemon's ledger.
    Reproduce(Box<ReproduceArgs>),
    /// Ask a running daemon to send a proved block's report to EthProofs again.
    Resubmit(ResubmitArgs),
    /// Ask a running daemon to cancel block N's running proof (cargo-zisk run or coordinator job).
    Cancel(ResubmitArgs),
    /// Ask a running daemon to start no new inputs or proofs (running ones finish).
    Pause(ClientArgs),
    /// Ask a paused daemon to go on.
    Resume(ClientArgs),
    /// Print every setting: README's table (`--format markdown`) or the .env template (`--format env`).
    Settings(SettingsArgs),
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum SettingsFormat {
    Markdown,
    Env,
}

#[derive(Args)]
pub(crate) struct SettingsArgs {
    #[arg(long, value_enum, default_value = "markdown")]
    pub(crate) format: SettingsFormat,
}

#[derive(Args)]
pub(crate) struct DevchainArgs {
    /// How many blocks to produce (the last ones are written).
    #[arg(long, default_value = "3")]
    pub(crate) blocks: u64,
    /// Directory to write `dev-<n>/` fixture directories into.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

#[derive(Args)]
pub(crate) struct DoctorArgs {
    /// Also send a test message to SLACK_WEBHOOK.
    #[arg(long)]
    pub(crate) notify: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Args)]
pub(crate) struct ClientArgs {
    /// The daemon's address. Default: `status` without a token reads the public `/health` on
    /// 127.0.0.1:HEALTH_PORT; the admin commands (and `status` with a token) use 127.0.0.1:ADMIN_PORT.
    #[arg(long, env = "ETHPROOFS_DAEMON_URL")]
    pub(crate) url: Option<String>,
    /// The daemon's admin token (the daemon's own ADMIN_TOKEN).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub(crate) token: Option<ethproofs_daemon::config::Secret>,
    /// The daemon's HEALTH_PORT, for the default address.
    #[arg(long, env = "HEALTH_PORT", default_value = "4000")]
    pub(crate) health_port: u16,
    /// The daemon's ADMIN_PORT, for the default address.
    #[arg(long, env = "ADMIN_PORT", default_value = "4001")]
    pub(crate) admin_port: u16,
}

#[derive(Args)]
pub(crate) struct ReproduceArgs {
    /// A directory of `<block>/input.bin` (a daemon's OUTPUT_DIR, or a copy from another machine).
    /// With --dev: the dev daemon's, `output/dev`.
    #[arg(long, required_unless_present = "dev")]
    pub(crate) inputs: Option<PathBuf>,
    /// `prove`, `execute` (no proof) or `emulate` (the guest's own check only).
    #[arg(long, value_enum, default_value = "prove")]
    pub(crate) action: ethproofs_daemon::commands::reproduce::ReproduceAction,
    /// Write one CSV row per block here (block, input size, steps, proving ms, outcome, reason).
    #[arg(long = "report")]
    pub(crate) report_csv: Option<PathBuf>,
    /// Where the proofs go; never the input directory.
    #[arg(long, default_value = "reproduce")]
    pub(crate) out: PathBuf,
    /// Also report each proved block to EthProofs (with the ETHPROOFS_* settings).
    #[arg(long)]
    pub(crate) report_to_ethproofs: bool,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

#[derive(Args)]
pub(crate) struct StatusArgs {
    /// The whole /health document (with ADMIN_TOKEN: /admin/status), as JSON.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

#[derive(Args)]
pub(crate) struct ProveArgs {
    /// The block to prove.
    #[arg(conflicts_with_all = ["start", "count", "latest"], required_unless_present_any = ["start", "latest"])]
    pub(crate) block: Option<u64>,
    /// The N newest targets (multiples of the daemon's BLOCK_INTERVAL at or below its head).
    #[arg(long, conflicts_with_all = ["start", "count"])]
    pub(crate) latest: Option<u64>,
    /// First block of a range.
    #[arg(long, requires = "count")]
    pub(crate) start: Option<u64>,
    /// How many blocks from --start.
    #[arg(long, requires = "start")]
    pub(crate) count: Option<u64>,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

/// One block of a running daemon (`resubmit`, `cancel`).
#[derive(Args)]
pub(crate) struct ResubmitArgs {
    pub(crate) block: u64,
    #[command(flatten)]
    pub(crate) client: ClientArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum ReportFormat {
    Csv,
    Json,
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// How far back, by when the target was first seen: 90s, 30m, 24h, 7d.
    #[arg(long, default_value = "24h", value_parser = ethproofs_daemon::config::parse_duration)]
    pub(crate) since: Duration,
    #[arg(long, value_enum, default_value = "csv")]
    pub(crate) format: ReportFormat,
    /// The dev daemon's ledger (`run --dev`: output/dev).
    #[arg(long)]
    pub(crate) dev: bool,
    /// The ledger (default OUTPUT_DIR/ethproofs-daemon.db).
    #[arg(long, env = "DB_PATH")]
    pub(crate) db_path: Option<PathBuf>,
    #[arg(long, env = "OUTPUT_DIR", default_value = "output")]
    pub(crate) output_dir: PathBuf,
}

#[derive(Args)]
pub(crate) struct GenerateInputArgs {
    /// `eth_getBlockByNumber(N, true)` response (the result object or the whole envelope).
    #[arg(long, requires = "witness", conflicts_with_all = ["rpc_url", "block_number"])]
    pub(crate) block: Option<PathBuf>,
    /// `debug_executionWitness(N)` response (the result object or the whole envelope).
    #[arg(long, requires = "block")]
    pub(crate) witness: Option<PathBuf>,
    /// Fetch the block and witness from this node instead of files.
    #[arg(long, requires = "block_number")]
    pub(crate) rpc_url: Option<String>,
    /// Block to fetch with --rpc-url.
    #[arg(long, requires = "rpc_url")]
    pub(crate) block_number: Option<u64>,
    /// mainnet | hoodi | sepolia | a chain id | a path to a genesis or config JSON.
    /// Required with files; with --rpc-url the node's eth_chainId picks it.
    #[arg(long)]
    pub(crate) chain: Option<String>,
    /// `raw` for ZisK v0.14/v0.15, `framed` for v0.16 and later.
    #[arg(long)]
    pub(crate) framing: Framing,
    /// Where to write the input (atomically).
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Skip native validation (stateless re-execution) of the input.
    #[arg(long)]
    pub(crate) no_validate: bool,
}

/// An empty variable (`START_BLOCK=` in an env file made from the template) means unset, as it
/// does for most programs; clap would otherwise refuse the empty value.
fn forget_empty_settings() {
    let names = ethproofs_daemon::config::reference::variables();
    for name in names.iter().map(String::as_str).chain(["ETHPROOFS_DAEMON_URL"]) {
        if std::env::var_os(name).is_some_and(|v| v.to_string_lossy().trim().is_empty()) {
            // SAFETY: called first thing in `main`, before any thread exists (the runtime is built later).
            unsafe { std::env::remove_var(name) };
        }
    }
}

/// Two malloc arenas for the whole process, before any thread starts. glibc gives each new
/// thread an arena of its own, up to eight per core; tokio's blocking pool comes and goes, and each
/// arena keeps what it once held: over 10,000 blocks the daemon grew 25 → 65 MB, with two it
/// levels off (README, the cohort benchmark).
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

fn main() -> ExitCode {
    few_malloc_arenas();
    forget_empty_settings();
    let parsed = Cli::parse();
    let result = match parsed.command {
        Some(Command::GenerateInput(args)) => cli::generate_input(args),
        Some(Command::Report(args)) => cli::report(args),
        Some(Command::Devchain(args)) => cli::devchain_fixtures(args),
        Some(Command::Doctor(args)) => return cli::doctor(*args),
        // With the token, everything; without, what `/health` shows.
        Some(Command::Status(s)) => cli::status(s.client, s.json),
        Some(Command::Prove(p)) => match (p.block, p.start, p.count) {
            _ if p.latest.is_some() => {
                cli::client(p.client, "POST", format!("/admin/prove?latest={}", p.latest.unwrap_or(1)))
            }
            (Some(n), _, _) => cli::client(p.client, "POST", format!("/admin/prove/{n}")),
            (None, Some(start), Some(count)) => {
                cli::client(p.client, "POST", format!("/admin/prove?start={start}&count={count}"))
            }
            _ => Err(anyhow::anyhow!("give a block number, or --start and --count")),
        },
        Some(Command::Resubmit(r)) => cli::client(r.client, "POST", format!("/admin/resubmit/{}", r.block)),
        Some(Command::Reproduce(args)) => cli::reproduce(*args),
        Some(Command::Cancel(r)) => cli::client(r.client, "POST", format!("/admin/cancel/{}", r.block)),
        Some(Command::Pause(c)) => cli::client(c, "POST", "/admin/pause".into()),
        Some(Command::Resume(c)) => cli::client(c, "POST", "/admin/resume".into()),
        Some(Command::Run(args)) => return cli::run(*args),
        Some(Command::Settings(args)) => {
            use ethproofs_daemon::config::reference;
            print!(
                "{}",
                match args.format {
                    SettingsFormat::Markdown => reference::markdown_table(),
                    SettingsFormat::Env => reference::env_example(),
                }
            );
            Ok(())
        }
        None => return cli::run(parsed.run),
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
