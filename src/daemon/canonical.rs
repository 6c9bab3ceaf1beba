//! Is the block an input was built from still the chain's block at its height? Asked before a
//! run starts, when it ends, and — the check that decides — immediately before `proved` is
//! sent. The answer is closed: a node that errs, stalls or answers null is "cannot say", never
//! "still canonical", and a proof is never reported on hope.

use std::path::Path;
use std::time::Duration;

use super::Context;
use crate::store::StoreError;

/// How long one canonical check may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// What the node says of the block at a height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canonical {
    /// The node's block at this height is the one the input was built from.
    Yes,
    /// It is another block: the input's block was orphaned.
    Left {
        /// The hash the input was built from.
        built_from: String,
        /// Why, in words (both hashes).
        reason: String,
    },
    /// The node cannot say now (an error, a timeout, no block at that height, no hash recorded).
    Unknown(String),
}

/// Asks the node for its block at `block` and compares it with `built_from`.
pub async fn check(ctx: &Context, block: u64, built_from: Option<&str>) -> Canonical {
    let Some(built_from) = built_from else {
        return Canonical::Unknown("no block hash was recorded when the input was built".into());
    };
    let now = match tokio::time::timeout(CHECK_TIMEOUT, ctx.node.block_hash(block)).await {
        Ok(Ok(Some(hash))) => hash,
        Ok(Ok(None)) => return Canonical::Unknown(format!("the node has no block {block}")),
        Ok(Err(e)) => return Canonical::Unknown(e.to_string()),
        Err(_) => return Canonical::Unknown(format!("the node did not answer within {}s", CHECK_TIMEOUT.as_secs())),
    };
    if now.eq_ignore_ascii_case(built_from) {
        Canonical::Yes
    } else {
        let reason = format!("block {block} {built_from} is no longer canonical (the chain now has {now})");
        Canonical::Left { built_from: built_from.to_string(), reason }
    }
}

/// Keeps what was done for an orphaned block (`dir`, its folder) under
/// `<dir>.orphan-<hash>` and records it; the canonical block at this height is built and proved
/// afresh. Blocking (a rename and a ledger write).
pub fn orphan(ctx: &Context, block: u64, dir: &Path, old_hash: &str, reason: &str) -> Result<(), StoreError> {
    let short: String = old_hash.trim_start_matches("0x").chars().take(12).collect();
    let kept = dir.with_file_name(format!("{block}.orphan-{short}"));
    // The ledger first: a move that happened without its record would leave a canonical
    // block's recorded proof path pointing at nothing.
    ctx.ledger.block_reorged(block, Some(old_hash), Some(&kept), reason)?;
    tracing::warn!(%reason, "reorg: the block is built again from the canonical chain");
    if let Err(e) = std::fs::rename(dir, &kept) {
        tracing::warn!(error = %e, kept = %kept.display(), "cannot move the orphan's files aside");
    }
    Ok(())
}
