//! `report`: one row per target block from the ledger, read-only (it works while the daemon
//! runs), as CSV or JSON.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;

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

fn csv_field(s: &str) -> String {
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
    let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis()).unwrap_or(i64::MAX);
    // `--since 100000000d` (longer than the epoch) is every row, never an overflow.
    let since_ms = i64::try_from(args.since.as_millis()).unwrap_or(i64::MAX);
    let lines = ledger.report_lines(now_ms.saturating_sub(since_ms))?;
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
