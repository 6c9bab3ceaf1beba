//! `reproduce`: every kept input of a directory proved (or executed, or checked) again with no
//! node; the replay itself is the library's (`commands::reproduce`).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ethproofs_daemon::config::RunArgs;

use super::run::init_logging;

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

/// `reproduce`: every kept input of a directory through the configured backend, with no node.
pub(crate) fn reproduce(mut args: ReproduceArgs) -> anyhow::Result<()> {
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
