//! `run` (and no subcommand): the daemon itself, on a multi-threaded runtime, with the log set up
//! from the settings and one graceful stop for SIGTERM, SIGHUP and Ctrl-C.

use std::process::ExitCode;
use std::time::Duration;

use ethproofs_daemon::config::{Config, LogFormat, RunArgs};

use super::dev::start_dev_chain;

pub(crate) fn init_logging(config: &Config) {
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
    let ansi = std::io::stderr().is_terminal();
    // One event, one line: text a node or an API wrote cannot forge a log line.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(move || ethproofs_daemon::outside::sanitize::LineSafe::new(std::io::stderr(), ansi));
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

pub(crate) fn run(mut args: RunArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let dev_chain = match args.dev.then(|| runtime.block_on(start_dev_chain(&mut args))) {
        None => None,
        Some(Ok(url)) => Some(url),
        Some(Err(e)) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let log_format = config.log_format;
    if let Some(url) = dev_chain {
        tracing::info!(chain_id = ethproofs_daemon::outside::devchain::CHAIN_ID, %url, "dev chain serving JSON-RPC");
    }
    let result = runtime.block_on(ethproofs_daemon::startup::run(config, shutdown_signal()));
    // Stray tasks (a WebSocket reconnect loop, a delivery retry) must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            // Once, in the log's own format: a JSON line under LOG_FORMAT=json, else the plain
            // `error:` line a person reads (the log is stderr either way).
            match log_format {
                LogFormat::Json => tracing::error!("{e}"),
                LogFormat::Text => eprintln!("error: {e}"),
            }
            ExitCode::from(e.exit_code())
        }
    }
}

/// SIGTERM (systemd, Kubernetes), SIGHUP (a closed terminal, `systemctl reload`) or Ctrl-C: all
/// one graceful stop. A handler that cannot be installed means the daemon can only be stopped by
/// SIGKILL, which the ledger survives: run anyway.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let hup = signal(SignalKind::hangup());
    if let Err(e) = &term {
        eprintln!("warning: cannot install the SIGTERM handler ({e}); Ctrl-C still stops the daemon");
    }
    if let Err(e) = &hup {
        eprintln!("warning: cannot install the SIGHUP handler ({e})");
    }
    let wait = |s: Option<tokio::signal::unix::Signal>| async move {
        match s {
            Some(mut s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    let name = tokio::select! {
        _ = wait(term.ok()) => "SIGTERM",
        _ = wait(hup.ok()) => "SIGHUP",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    };
    tracing::info!(signal = name, "signal received: stopping");
}
