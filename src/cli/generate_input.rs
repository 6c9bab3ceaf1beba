//! `generate-input`: one block's guest input, from files or a node, validated natively and
//! written atomically; one JSON line of figures on stdout.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use ethproofs_daemon::block::chainspec::{ChainSelector, ChainSpec};
use ethproofs_daemon::block::input::{self, Framing, GenerateOptions};
use ethproofs_daemon::outside::chain::NodeClient;

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

fn read(path: &PathBuf, what: &str) -> anyhow::Result<Vec<u8>> {
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
    // One after the other: the block's failure, if any, is the one reported.
    let block = node.block_json(number).await?;
    let witness = node.witness_json(number).await?;
    Ok((block, witness, chain))
}
