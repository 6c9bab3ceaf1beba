//! The commands the binary runs (part of the binary, not the library): the daemon itself,
//! `generate-input`, `report`, `doctor`, the dev chain, and the admin client calls. `main.rs`
//! parses the arguments and dispatches here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use ethproofs_daemon::block::chainspec::{ChainSelector, ChainSpec};
use ethproofs_daemon::block::input::{self, GenerateOptions};
use ethproofs_daemon::config::{Config, LogFormat, RunArgs};
use ethproofs_daemon::outside::chain::NodeClient;

mod client;
mod dev;

use crate::{DoctorArgs, GenerateInputArgs, ReportArgs, ReportFormat};
pub(crate) use client::{client, status};
use dev::serve_dev_chain;
pub(crate) use dev::{devchain_fixtures, start_dev_chain};

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
pub(crate) async fn shutdown_signal() {
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

pub(crate) fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} file {}", path.display()))
}

pub(crate) fn generate_input(args: GenerateInputArgs) -> anyhow::Result<()> {
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
    let options =
        GenerateOptions { framing: args.framing, validate: !args.no_validate, expect_block: args.block_number };
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

pub(crate) async fn fetch(
    url: &str,
    number: u64,
    chain: Option<&str>,
) -> anyhow::Result<(Vec<u8>, Vec<u8>, ChainSpec)> {
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
    // One after the other: the block's failure, if any, is the one reported.
    let block = node.block_json(number).await?;
    let witness = node.witness_json(number).await?;
    Ok((block, witness, chain))
}

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) { format!("\"{}\"", s.replace('"', "\"\"")) } else { s.to_string() }
}

pub(crate) fn report(args: ReportArgs) -> anyhow::Result<()> {
    use std::time::{SystemTime, UNIX_EPOCH};
    // `--dev` reads the dev daemon's ledger (`run --dev` keeps it under output/dev).
    let output_dir = if args.dev && args.output_dir == std::path::Path::new("output") {
        PathBuf::from("output/dev")
    } else {
        args.output_dir
    };
    let path = args.db_path.unwrap_or_else(|| output_dir.join("ethproofs-daemon.db"));
    if !path.is_file() {
        bail!("no ledger at {} (set DB_PATH or OUTPUT_DIR)", path.display());
    }
    let ledger = ethproofs_daemon::store::Ledger::open_read_only(&path)?;
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let lines = ledger.report_lines(now_ms - args.since.as_millis() as i64)?;
    // A moment that has not happened is `null` in JSON and an empty field in CSV, like every
    // other absent value.
    let time = |ms: Option<i64>| {
        ms.map(|ms| ethproofs_daemon::runtime::status::rfc3339(UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)))
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
                        "job_id": l.job_id, "guest_steps": l.guest_steps,
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows)?);
        }
        ReportFormat::Csv => {
            println!(
                "block,outcome,stage,reason,gas_used,tx_count,input_ms,proving_ms,cycles,attempts,seen_at,proved_at,reported_at,guest_steps,job_id"
            );
            let num = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
            for l in &lines {
                println!(
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
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
                    time(l.seen_at_ms).unwrap_or_default(),
                    time(l.proved_at_ms).unwrap_or_default(),
                    time(l.reported_at_ms).unwrap_or_default(),
                    num(l.guest_steps),
                    csv_field(l.job_id.as_deref().unwrap_or("")),
                );
            }
        }
    }
    Ok(())
}

pub(crate) fn doctor(mut args: DoctorArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    // `doctor --dev` checks what `run --dev` would run: a dev chain of its own, native mode.
    if args.run.dev {
        match runtime.block_on(serve_dev_chain(&mut args.run, false)) {
            Ok(url) => {
                eprintln!(
                    "dev chain (chain id {}) serving JSON-RPC at {url}",
                    ethproofs_daemon::outside::devchain::CHAIN_ID
                )
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        }
    }
    let config = match args.run.into_config() {
        Ok(c) => c,
        Err(e) => {
            for check in ethproofs_daemon::commands::doctor::without_config(&e.to_string()) {
                println!("{}", check.line());
            }
            println!("1 check(s) failed");
            return ExitCode::from(2);
        }
    };
    let checks = runtime.block_on(ethproofs_daemon::commands::doctor::run(&config, args.notify));
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

/// `reproduce`: every kept input of a directory through the configured backend, with no node.
pub(crate) fn reproduce(mut args: crate::ReproduceArgs) -> anyhow::Result<()> {
    use ethproofs_daemon::commands::reproduce;
    // A replay needs no node; this address is never dialled (it only satisfies the settings).
    args.run.eth_rpc_url.get_or_insert_with(|| ethproofs_daemon::config::Secret::new("http://node.invalid"));
    // `--dev`: the dev daemon's inputs, re-executed natively as that daemon did (no ZisK).
    let inputs = args.inputs.clone().unwrap_or_else(|| PathBuf::from("output/dev"));
    if args.run.dev {
        args.run.zisk_action = ethproofs_daemon::config::ZiskAction::Native;
        args.run.input_check = ethproofs_daemon::config::InputCheck::Native;
    }
    let config = args.run.into_config().map_err(|e| anyhow::anyhow!("{e}"))?;
    init_logging(&config);
    // A replay has no node and no record of what each proof must commit to: its proofs cannot
    // be bound to their blocks, so they go to EthProofs only on the operator's explicit off.
    if args.report_to_ethproofs && config.verify_proofs != Some(false) {
        return Err(ethproofs_daemon::config::ConfigError {
            variable: "VERIFY_PROOFS",
            message: "reproduce cannot check that a replayed proof is its block's (no node, no recorded outputs); set VERIFY_PROOFS=off to report replayed proofs unchecked".into(),
        }
        .into());
    }
    let inputs_dir = std::path::absolute(&inputs)?;
    let out = reproduce::check_out(&args.out, &inputs_dir)?;
    let inputs = reproduce::inputs(&inputs_dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let rows = runtime.block_on(async {
        let backend = reproduce::backend(&config, &out, args.action)?;
        let doing = match (backend.name(), args.action) {
            ("native", _) => "re-executing natively".to_string(),
            (name, action) => format!("{} with {name}", format!("{action:?}").to_lowercase()),
        };
        println!("reproducing {} input(s) from {}: {doing}", inputs.len(), inputs_dir.display());
        anyhow::Ok(reproduce::run(backend.as_ref(), args.action, &inputs, &out, &mut std::io::stdout()).await)
    })?;
    if let Some(csv) = &args.report_csv {
        reproduce::write_csv(csv, &rows)?;
        println!("report: {}", csv.display());
    }
    if args.report_to_ethproofs {
        let Some(e) = config.ethproofs.clone() else {
            anyhow::bail!("--report-to-ethproofs needs ETHPROOFS_RPC_URL, ETHPROOFS_API_KEY and ETHPROOFS_CLUSTER_ID");
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
        let client = ethproofs_daemon::outside::ethproofs::EthProofsClient::new(http, e);
        let n = runtime.block_on(reproduce::report(&client, &rows, &out, &mut std::io::stdout()));
        println!("{n} block(s) reported to EthProofs");
    }
    let failed = rows.iter().filter(|r| r.outcome == "failed" || r.outcome == "stopped").count();
    println!("{}", reproduce::summary(&rows, &out));
    if failed > 0 {
        anyhow::bail!("{failed} of {} input(s) failed", rows.len());
    }
    Ok(())
}
