//! Command line entry point: the command line (clap) and the dispatch to `cli`, where each command
//! has its file and its arguments. The binary is the only place that uses `anyhow` and decides
//! exit codes.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use cli::{
    ClientArgs, DevchainArgs, DoctorArgs, GenerateInputArgs, ProveArgs, ReportArgs, ReproduceArgs, ResubmitArgs,
    SettingsArgs, StatusArgs,
};
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
        Some(Command::Prove(p)) => cli::prove(p),
        Some(Command::Resubmit(r)) => cli::client(r.client, "POST", format!("/admin/resubmit/{}", r.block)),
        Some(Command::Reproduce(args)) => cli::reproduce(*args),
        Some(Command::Cancel(r)) => cli::client(r.client, "POST", format!("/admin/cancel/{}", r.block)),
        Some(Command::Pause(c)) => cli::client(c, "POST", "/admin/pause".into()),
        Some(Command::Resume(c)) => cli::client(c, "POST", "/admin/resume".into()),
        Some(Command::Run(args)) => return cli::run(*args),
        Some(Command::Settings(args)) => {
            cli::settings(args);
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
