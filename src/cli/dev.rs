//! The offline dev chain for `run --dev`, `doctor --dev` and `devchain`: served on loopback,
//! the settings that point the daemon at it, a fresh dev ledger, and fixtures written from it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use ethproofs_daemon::block::input::{self, Framing, GenerateOptions};
use ethproofs_daemon::config::RunArgs;

#[derive(Args)]
pub(crate) struct DevchainArgs {
    /// How many blocks to produce (the last ones are written).
    #[arg(long, default_value = "3")]
    pub(crate) blocks: u64,
    /// Directory to write `dev-<n>/` fixture directories into.
    #[arg(long)]
    pub(crate) out: PathBuf,
}

/// `run --dev`: an offline chain on loopback, and the settings that point the daemon at it
/// (native re-execution, a target every 5 blocks, outputs under `output/dev`). Returns the
/// chain's URL, for the log once it is set up (in LOG_FORMAT's own format).
pub(crate) async fn start_dev_chain(args: &mut RunArgs) -> anyhow::Result<String> {
    serve_dev_chain(args, true).await
}

/// The dev chain on loopback and the settings that point at it; `fresh` starts a new dev
/// ledger (`run --dev`), otherwise the chain is given a few blocks at once so that a check
/// (`doctor --dev`) finds a target to ask a witness for, and the ledger is left alone.
pub(super) async fn serve_dev_chain(args: &mut RunArgs, fresh: bool) -> anyhow::Result<String> {
    use ethproofs_daemon::outside::devchain;
    if args.output_dir == std::path::Path::new("output") {
        args.output_dir = PathBuf::from("output/dev");
    }
    std::fs::create_dir_all(&args.output_dir)?;
    if fresh {
        fresh_dev_ledger(&args.output_dir)?;
    }
    let config_path = args.output_dir.join("dev-chain-config.json");
    std::fs::write(&config_path, devchain::CONFIG_JSON)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut dev = devchain::DevChain::new()?.with_wall_clock();
    if !fresh {
        for _ in 0..5 {
            dev.produce()?;
        }
    }
    let chain = std::sync::Arc::new(std::sync::Mutex::new(dev));
    tokio::spawn(devchain::serve(chain, listener, Duration::from_secs(args.dev_block_time)));
    args.eth_rpc_url = Some(ethproofs_daemon::config::Secret::new(url.clone()));
    args.eth_ws_url = None;
    args.chain_config = Some(config_path);
    args.zisk_action = ethproofs_daemon::config::ZiskAction::Native;
    if args.block_interval == 100 {
        args.block_interval = 5;
    }
    args.max_backfill_blocks = args.max_backfill_blocks.max(args.block_interval);
    Ok(url)
}

/// Every `run --dev` starts a new dev chain from block 0, so it starts a new ledger too: the old
/// run's ledger and block directories would describe another chain under the same chain id.
/// Done under the instance lock, so a dev daemon that is still running is refused, not wiped.
pub(crate) fn fresh_dev_ledger(dir: &std::path::Path) -> anyhow::Result<()> {
    let ledger = dir.join("ethproofs-daemon.db");
    let _lock = ethproofs_daemon::outside::instance::lock(dir, &ledger)?;
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
pub(crate) fn devchain_fixtures(args: DevchainArgs) -> anyhow::Result<()> {
    use ethproofs_daemon::outside::devchain::{CONFIG_JSON, DevChain};
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
                GenerateOptions { framing, validate: true, expect_block: None },
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
