//! Building one target's input, as a task: fetch the block and its witness (transient errors
//! retried), build, validate and write the guest input, and record `input_built` or
//! `input_failed` in the ledger the moment the outcome is known.

use std::time::{Duration, Instant};

use crate::block::input::{self, GenerateOptions};
use crate::daemon::{Context, InputSettings};
use crate::outside::chain::{ChainError, NodeClient};
use crate::runtime::backoff::Backoff;
use crate::store::Stage;
use crate::store::{Enqueued, StoreError};

/// Why a target's input could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{error}")]
    Fetch { stage: Stage, error: ChainError },
    /// The block and witness do not make a valid input (the input's own error names why).
    #[error("{0}")]
    Input(#[from] crate::block::input::InputError),
    #[error("cannot create {path}: {error}")]
    Folder { path: String, error: std::io::Error },
    /// The blocking task building the input panicked or was cancelled.
    #[error("input task failed: {0}")]
    Task(tokio::task::JoinError),
    /// Built or failed, but the ledger could not record it: the block stays `seen` and is built
    /// again; it is not a missed target.
    #[error("the outcome could not be recorded: {0}")]
    Unrecorded(StoreError),
    /// The node answered "not yet" (null, a rate limit, 5xx, no connection) past
    /// NODE_RETRY_SECONDS for a block its head says exists: nothing is recorded, the block stays
    /// `seen` and is asked for again with backoff while it is in the backfill window.
    #[error("{error}")]
    NotServed { stage: Stage, error: ChainError },
}

impl BuildError {
    pub fn stage(&self) -> Stage {
        match self {
            BuildError::Fetch { stage, .. } | BuildError::NotServed { stage, .. } => *stage,
            BuildError::Input(_) | BuildError::Folder { .. } | BuildError::Task(_) | BuildError::Unrecorded(_) => {
                Stage::Input
            }
        }
    }

    /// In our words, without what the node said (that stays in the whole error).
    pub fn summary(&self) -> String {
        match self {
            BuildError::Fetch { error, .. } | BuildError::NotServed { error, .. } => error.summary(),
            BuildError::Input(_) | BuildError::Folder { .. } | BuildError::Task(_) => self.to_string(),
            BuildError::Unrecorded(_) => "the outcome could not be recorded".into(),
        }
    }
}

/// Fetches, retrying answers that mean "not yet" or "slow down" with backoff (1 s doubling to
/// 10 s) for at most `budget`; other failures are final at once.
async fn fetch<F, Fut>(what: &str, budget: Duration, f: F) -> Result<Vec<u8>, ChainError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, ChainError>>,
{
    let started = Instant::now();
    const FETCH: Backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(10));
    let mut attempt = 1u32;
    loop {
        let delay = FETCH.after(attempt);
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && started.elapsed() + delay <= budget => {
                tracing::warn!(what, attempt, error = %e, retry_in_ms = delay.as_millis() as u64, "fetch failed; retrying");
                tokio::time::sleep(delay).await;
                attempt = attempt.saturating_add(1);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Fetch, build, validate and write one target's input under `OUTPUT_DIR/<block>/input.bin`,
/// and record the outcome in the ledger. Returns the time it took.
pub async fn build_and_record(
    ctx: &Context,
    settings: &InputSettings,
    block: u64,
    started: Instant,
) -> Result<u64, BuildError> {
    let result = match build(ctx, settings, block).await {
        // "Not yet" is not "never": the block is asked for again, nothing recorded.
        Err(BuildError::Fetch { stage, error }) if error.is_transient() => {
            return Err(BuildError::NotServed { stage, error });
        }
        other => other,
    };
    let recorded = match &result {
        Ok(generated) => {
            let input_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            tracing::info!(input_bytes = generated.written.bytes, input_ms, "input ready");
            let hash = format!("{:#x}", generated.summary.hash);
            // What its proof must commit to, known now and never again asked of anyone.
            let outputs = generated.summary.outputs(ctx.chain.config.chain_id).to_hex();
            let built = Enqueued {
                input_path: &generated.written.path,
                gas_used: generated.summary.gas_used,
                tx_count: u64::try_from(generated.summary.tx_count).unwrap_or(u64::MAX),
                block_hash: &hash,
                input_ms,
                timestamp: generated.summary.timestamp,
                expected_output: Some(&outputs),
            };
            let report = settings.raises_reports;
            ctx.ledger.input_built(block, &built, report).map(|()| input_ms)
        }
        Err(e) => ctx.ledger.input_failed(block, e.stage(), &e.to_string()).map(|()| 0),
    };
    match recorded {
        Ok(input_ms) => result.map(|_| input_ms),
        // The block stays `seen` and is built again by the next incarnation or start.
        Err(e) => Err(BuildError::Unrecorded(e)),
    }
}

/// How often a build starts over because the chain reorganised under it.
const REORG_RETRIES: u32 = 3;

async fn build(ctx: &Context, settings: &InputSettings, block: u64) -> Result<input::Generated, BuildError> {
    let node: &NodeClient = &ctx.node;
    let budget = settings.node_retry;
    let mut reorgs = 0;
    let (block_json, witness_json) = loop {
        // The canonical hash before and after the two fetches: if it moved, the block and the
        // witness may belong to different blocks, so both are fetched again.
        let before = node.block_hash(block).await.ok().flatten();
        let block_json = fetch("block", budget, || node.block_json(block))
            .await
            .map_err(|error| BuildError::Fetch { stage: Stage::FetchBlock, error })?;
        let witness_json = fetch("witness", budget, || node.witness_json(block))
            .await
            .map_err(|error| BuildError::Fetch { stage: Stage::FetchWitness, error })?;
        let after = node.block_hash(block).await.ok().flatten();
        match (before, after) {
            (Some(b), Some(a)) if !a.eq_ignore_ascii_case(&b) && reorgs < REORG_RETRIES => {
                reorgs += 1;
                tracing::warn!(before = %b, after = %a, "the chain reorganised while fetching; fetching again");
            }
            _ => break (block_json, witness_json),
        }
    };
    let dir = settings.output_dir.join(block.to_string());
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|error| BuildError::Folder { path: dir.display().to_string(), error })?;
    let out = dir.join("input.bin");
    let chain = ctx.chain.config;
    // With INPUT_CHECK=emulate (or none) the real guest checks the input before it is proved instead.
    let validate = settings.validate_natively;
    let options = GenerateOptions { framing: ctx.zisk_version.framing(), validate, expect_block: Some(block) };
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| input::generate(block_json, witness_json, &chain, options, &out))
    })
    .await
    .map_err(BuildError::Task)?
    .map_err(BuildError::Input)
}
